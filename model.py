"""The Qwen2.5-Coder transformer (report §2, Table 1; YaRN long context §3.2.2) and its generation.

A pre-norm decoder: RMSNorm, rotary embeddings (split halves, rope_theta 1e6; static YaRN only
when asked, as the official checkpoints ship without it), grouped-query attention with q/k/v
bias, SwiGLU MLP, tied or untied head. Parameter names are transformers' Qwen2ForCausalLM's minus
`model.`: an official checkpoint directory loads as is; `save_pretrained` writes one transformers loads.

Generation, the last part, is a small batched inference engine with nano-vLLM's split scaled
down: `stream` schedules (continuous batching: a waiting prompt takes the slot a finished row
frees), `KVCache` keeps every row's keys in preallocated per-slot rows, `_prefill` and `_decode`
run the model. It lives here (so this file runs past ~600 lines) because `Transformer.generate`
is its entry point and model.py imports nothing of the project; every stage that generates calls it.

    python model.py --name 32B                       # sizes and FLOPs of a config (built on meta)
    python model.py --load DIR --ids 750,15801,1445 --tokens 64   # greedy continuation of token ids
    python model.py --load DIR --yarn 4 --ids ...    # the same with YaRN x4 (inputs past the trained context)

    from model import Transformer
    model = Transformer.from_pretrained("Qwen2.5-Coder-0.5B", dtype=torch.bfloat16)
    new = model.generate([ids_a, ids_b], max_new_tokens=64, stop_ids=(151643,))  # new ids per prompt
"""
import argparse
import collections
import itertools
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# The loss is computed over chunks of about this many logits (rows x vocab): with the
# 151,936-row vocabulary a chunk is ~880 tokens, ~0.5 GB in fp32, whatever the batch size.
LOSS_CHUNK_LOGITS = 2**27
# The YaRN fields of a rope_scaling / rope_parameters dict, as transformers'
# _compute_yarn_parameters reads them; rope_frequencies implements every one.
YARN_FIELDS = ("factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow",
               "mscale", "mscale_all_dim", "truncate")
# Generation: the KV cache's budget (fewer slots than batch_size when long prompts would need
# more), the most prompt tokens one prefill forward takes, and seconds between progress lines.
KV_CACHE_BYTES = 4 * 2**30
PREFILL_TOKENS = 8192
PROGRESS_EVERY = 10.0


@dataclass
class ModelConfig:
    """Hyper-parameters, named exactly as in the official config.json files."""
    vocab_size: int = 8192
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    max_position_embeddings: int = 32768
    rope_theta: float = 1e6
    rope_scaling: dict | None = None  # None as shipped; YaRN: {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True

    @classmethod
    def from_name(cls, name: str, **overrides):
        """An official size (report Table 1, each checkpoint's config.json) or a small CPU config;
        keyword overrides win (e.g. vocab_size)."""
        # name: (hidden, layers, q heads, kv heads, head_dim, intermediate, vocab rows, tied)
        table = {
            "tiny": (256, 4, 4, 2, 64, 768, 8192, True),         # ~5M params: tests, laptop runs
            "small": (512, 8, 8, 2, 64, 1536, 8192, True),       # ~28M params: CPU experiments
            "0.5B": (896, 24, 14, 2, 64, 4864, 151936, True),
            "1.5B": (1536, 28, 12, 2, 128, 8960, 151936, True),
            "3B": (2048, 36, 16, 2, 128, 11008, 151936, True),
            "7B": (3584, 28, 28, 4, 128, 18944, 152064, False),
            "14B": (5120, 48, 40, 8, 128, 13824, 152064, False),  # base 14B/32B ship rms_norm_eps 1e-5
            "32B": (5120, 64, 40, 8, 128, 27648, 152064, False),
        }
        if name not in table:
            raise ValueError(f"unknown model name {name!r}; choose one of {', '.join(table)}.")
        h, n_layer, n_head, n_kv, d, ff, vocab, tied = table[name]
        cfg = dict(vocab_size=vocab, hidden_size=h, intermediate_size=ff, num_hidden_layers=n_layer,
                   num_attention_heads=n_head, num_key_value_heads=n_kv, head_dim=d, tie_word_embeddings=tied)
        return cls(**{**cfg, **overrides})

    @classmethod
    def from_hf(cls, d: dict):
        """From a config.json dict, old layout (rope_theta + rope_scaling) or transformers 5's rope_parameters.

        Every YaRN field transformers reads is kept and implemented (rope_frequencies); any other
        RoPE field is refused, never dropped: a dropped field would give other logits than the
        checkpoint's own."""
        rope = dict(d.get("rope_scaling") or d.get("rope_parameters") or {})
        rope_theta = rope.pop("rope_theta", None) or d.get("rope_theta", 1e6)  # as transformers: the dict's first
        kind = rope.pop("rope_type", None) or rope.pop("type", None) or "default"
        rope.pop("type", None)
        if kind not in ("default", "yarn"):
            raise ValueError(f"rope type {kind!r} is not supported; only default RoPE and 'yarn' are.")
        unknown = sorted(set(rope) - (set(YARN_FIELDS) if kind == "yarn" else set()))
        if unknown:
            raise ValueError(f"rope field(s) {unknown} of a {kind!r} RoPE are not implemented here; "
                             f"remove them from config.json or keep to {kind!r}'s fields {list(YARN_FIELDS)}.")
        scaling = None
        if kind == "yarn":
            # As transformers: a top-level original_max_position_embeddings wins, then the rope dict's,
            # then max_position_embeddings; a missing factor is the ratio of the two lengths.
            orig = d.get("original_max_position_embeddings") or rope.get("original_max_position_embeddings") \
                or d.get("max_position_embeddings", 32768)
            factor = rope.get("factor")
            factor = d.get("max_position_embeddings", 32768) / orig if factor is None else factor
            scaling = {"type": "yarn", "factor": float(factor), "original_max_position_embeddings": orig,
                       **{k: rope[k] for k in YARN_FIELDS[2:] if k in rope}}
        n_head = d["num_attention_heads"]
        return cls(vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
                   intermediate_size=d["intermediate_size"], num_hidden_layers=d["num_hidden_layers"],
                   num_attention_heads=n_head, num_key_value_heads=d.get("num_key_value_heads") or n_head,
                   head_dim=d.get("head_dim") or d["hidden_size"] // n_head,
                   max_position_embeddings=d.get("max_position_embeddings", 32768), rope_theta=float(rope_theta),
                   rope_scaling=scaling, rms_norm_eps=d.get("rms_norm_eps", 1e-6),
                   tie_word_embeddings=d.get("tie_word_embeddings", False))  # transformers' Qwen2 default

    def with_yarn(self, factor: float, original_max_position_embeddings: int | None = None):
        """This config with static YaRN added, as the official model cards tell users to edit
        config.json for inputs past 32,768 tokens: {"type": "yarn", "factor": 4.0,
        "original_max_position_embeddings": 32768}. The window the weights were trained at
        defaults to max_position_embeddings."""
        orig = original_max_position_embeddings or self.max_position_embeddings
        return replace(self, rope_scaling={"type": "yarn", "factor": float(factor),
                                           "original_max_position_embeddings": orig})

    def to_hf(self) -> dict:
        """The config.json dict of the official checkpoints (loads in transformers' Qwen2ForCausalLM)."""
        d = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
             "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True,
             "use_sliding_window": False, "sliding_window": self.max_position_embeddings,
             "max_window_layers": self.num_hidden_layers}
        d.update(asdict(self))
        if self.head_dim * self.num_attention_heads == self.hidden_size:
            del d["head_dim"]  # the official files leave it implicit
        return dict(sorted(d.items()))

    def num_params(self) -> int:
        h, d, ff, n_head, n_kv = (self.hidden_size, self.head_dim, self.intermediate_size,
                                  self.num_attention_heads, self.num_key_value_heads)
        attn = h * n_head * d + n_head * d + 2 * (h * n_kv * d + n_kv * d) + n_head * d * h
        per_layer = attn + 3 * h * ff + 2 * h
        embed = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return embed + self.num_hidden_layers * per_layer + h

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6 per matmul weight (fwd + bwd) plus attention scores (PaLM, App. B)."""
        n = self.num_params() - self.vocab_size * self.hidden_size * (0 if self.tie_word_embeddings else 1)
        attn = 12 * self.num_hidden_layers * self.num_attention_heads * self.head_dim * seq_len
        return 6 * n + attn


def rope_frequencies(config: ModelConfig, device=None) -> tuple[torch.Tensor, float]:
    """Rotary inverse frequencies (head_dim/2,) and the factor both cos and sin are scaled by.

    YaRN (static, as the report's 128K extension, Peng et al. 2023): dimensions rotating more
    than beta_fast (32) times over the original context keep their frequency, those rotating
    less than beta_slow (1) time are interpolated (divided by factor), a linear ramp between
    (its ends rounded outwards unless truncate is false); attention is sharpened by
    0.1 ln(factor) + 1 unless attention_factor (or mscale / mscale_all_dim) says otherwise.
    """
    d, base = config.head_dim, config.rope_theta
    pos_freqs = base ** (torch.arange(0, d, 2, device=device, dtype=torch.int64).float() / d)
    if not config.rope_scaling:
        return 1.0 / pos_freqs, 1.0
    s = config.rope_scaling
    factor = s["factor"]  # never derived from max_position_embeddings when given (a known bug once did)
    orig = s["original_max_position_embeddings"]
    beta_fast, beta_slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1

    def corr(rotations):  # the dimension that turns `rotations` times over the original context
        return d * math.log(orig / (2 * math.pi * rotations)) / (2 * math.log(base))

    low, high = corr(beta_fast), corr(beta_slow)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(d // 2, device=device, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    inv_freq = (1.0 / (factor * pos_freqs)) * ramp + (1.0 / pos_freqs) * (1 - ramp)

    def mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = s.get("attention_factor")
    if attention_factor is None:
        attention_factor = (mscale(factor, s["mscale"]) / mscale(factor, s["mscale_all_dim"])
                            if s.get("mscale") and s.get("mscale_all_dim") else mscale(factor))
    return inv_freq, float(attention_factor)


def apply_rope(x, cos, sin):
    """Rotate (x1, x2) halves of each head: the split-halves (`rotate_half`) layout of Qwen2."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # Normalise in fp32, cast back, then scale: the order the official models were trained with.
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c: ModelConfig, layer: int = 0):
        super().__init__()
        self.layer = layer  # which of the KV cache's layers this one reads and writes
        self.n_head, self.n_kv, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.n_head * self.head_dim, bias=True)
        self.k_proj = nn.Linear(c.hidden_size, self.n_kv * self.head_dim, bias=True)
        self.v_proj = nn.Linear(c.hidden_size, self.n_kv * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache=None):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv != self.n_head)
        else:
            y = cache.attend(self.layer, q, k, v)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU


class Block(nn.Module):
    def __init__(self, c: ModelConfig, layer: int = 0):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c, layer)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


def _token_losses(h, weight, targets, ignore_index):
    """Cross-entropy of one chunk of positions, logits upcast to fp32 (0 where ignored)."""
    logits = F.linear(h, weight).float()
    return F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="none")


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        # RoPE tables are no buffers: they are computed per call on the input's device, so they
        # survive meta construction, to_empty(), dtype casts and FSDP untouched.

    def _tie_weights(self):
        # Moving off the meta device (to_empty, load with assign=True) replaces each module's
        # Parameter separately, which silently unties a shared one: share it again.
        if self.config.tie_word_embeddings and self.lm_head.weight is not self.embed_tokens.weight:
            self.lm_head.weight = self.embed_tokens.weight

    @torch.no_grad()
    def init_weights(self, normal=nn.init.normal_):
        """Initialise every parameter (after `to_empty()` when built on the meta device).

        `normal(tensor, std=...)` draws the random weights, always in the same order; a
        training script may pass one that draws each tensor whole from its own generator and
        keeps its shard, so that the weights do not depend on how they are distributed."""
        self._tie_weights()
        std = 0.02
        normal(self.embed_tokens.weight, std=std)
        if not self.config.tie_word_embeddings:
            normal(self.lm_head.weight, std=std)
        for block in self.layers:
            for lin in (block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj,
                        block.mlp.gate_proj, block.mlp.up_proj):
                normal(lin.weight, std=std)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
            # Projections that write into the residual stream shrink with depth (GPT-2) so the
            # stream's variance stays put at initialisation.
            for lin in (block.self_attn.o_proj, block.mlp.down_proj):
                normal(lin.weight, std=std / math.sqrt(2 * self.config.num_hidden_layers))
            nn.init.ones_(block.input_layernorm.weight)
            nn.init.ones_(block.post_attention_layernorm.weight)
        nn.init.ones_(self.norm.weight)

    def _rope(self, start, length, device):
        inv_freq, scale = rope_frequencies(self.config, device)
        pos = torch.arange(start, start + length, device=device, dtype=torch.float32)
        freqs = torch.outer(pos, inv_freq)
        return freqs.cos() * scale, freqs.sin() * scale

    def _hidden(self, input_ids, rope=None, cache=None):
        """Final-norm hidden states (B, T, hidden); rope: the (cos, sin) of the tokens' positions
        (default 0..T-1); cache: a KVCache set up for a prefill or a decode step."""
        x = self.embed_tokens(input_ids)
        cos, sin = rope or self._rope(0, input_ids.shape[1], input_ids.device)
        for block in self.layers:
            x = block(x, cos, sin, cache)
        return self.norm(x)

    def forward(self, input_ids, targets=None, *, ignore_index=-100, reduction="mean"):
        """Logits (B, T, vocab) in fp32 without targets; else the cross-entropy loss.

        reduction "mean" averages over targets != ignore_index, "sum" adds them, "none" gives
        (B, T) with 0 where ignored. The head and the loss run over chunks of positions, all but
        the last recomputed in the backward pass, so the full (B, T, vocab) logits never exist.
        """
        h = self._hidden(input_ids)
        if targets is None:
            return self.lm_head(h).float()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}.")
        B, T = targets.shape
        rows = max(1, LOSS_CHUNK_LOGITS // self.config.vocab_size)
        chunks = list(zip(h.reshape(B * T, -1).split(rows), targets.reshape(B * T).split(rows)))
        losses = []
        for i, (hc, tc) in enumerate(chunks):
            # The last chunk keeps its logits for backward, which consumes it first: recomputing
            # it would save no peak memory. A batch that fits one chunk is never recomputed.
            if torch.is_grad_enabled() and i < len(chunks) - 1:
                losses.append(checkpoint(_token_losses, hc, self.lm_head.weight, tc, ignore_index,
                                         use_reentrant=False))
            else:
                losses.append(_token_losses(hc, self.lm_head.weight, tc, ignore_index))
        loss = torch.cat(losses)
        if reduction == "none":
            return loss.view(B, T)
        if reduction == "sum":
            return loss.sum()
        return loss.sum() / (targets != ignore_index).sum()

    @classmethod
    def from_pretrained(cls, path, device="cpu", dtype=None, yarn=None):
        """Load a Hugging Face-format directory (the official Qwen2.5-Coder download layout).

        The model is built on the meta device and each tensor is read from the safetensors
        files straight into place (load_state_dict(assign=True)): no second copy in memory.
        dtype None keeps the checkpoint's dtype. yarn=FACTOR applies YaRN at load time (replacing
        any rope_scaling of config.json), as the model cards' config edit for long inputs does.
        """
        from safetensors import safe_open
        cfg_file = os.path.join(path, "config.json")
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path}: no such directory; pass a Hugging Face model directory.")
        if not os.path.isfile(cfg_file):
            raise FileNotFoundError(f"{cfg_file}: missing; a model directory needs config.json and weights.")
        try:
            with open(cfg_file) as f:
                hf = json.load(f)
        except ValueError as e:
            raise ValueError(f"{cfg_file}: not valid JSON ({e}); restore the file from the original download.")
        arch = hf.get("architectures") or ["Qwen2ForCausalLM"]
        if hf.get("model_type") != "qwen2" or "Qwen2ForCausalLM" not in arch:
            raise ValueError(f"{cfg_file}: model_type {hf.get('model_type')!r} / architectures {arch} is not "
                             "a Qwen2ForCausalLM; point to a Qwen2.5(-Coder) checkpoint.")
        if hf.get("use_sliding_window"):
            raise ValueError(f"{cfg_file}: use_sliding_window is true, which Qwen2.5-Coder never uses; "
                             "set it to false.")
        try:
            config = ModelConfig.from_hf(hf)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{cfg_file}: cannot read the model config ({e!r}); "
                             "compare it with an official config.json.")
        if yarn:
            config = config.with_yarn(yarn)

        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.isfile(os.path.join(path, "model.safetensors")):
            files = {"model.safetensors": None}
        elif os.path.isfile(index):
            try:
                with open(index) as f:
                    files = dict.fromkeys(sorted(set(json.load(f)["weight_map"].values())))
            except (ValueError, KeyError, AttributeError) as e:
                raise ValueError(f"{index}: unreadable ({e!r}); it needs a \"weight_map\" of tensor -> file.")
        else:
            raise FileNotFoundError(f"{path}: no model.safetensors or model.safetensors.index.json; "
                                    "download the weights into this directory.")

        with torch.device("meta"):
            model = cls(config)
        expected = {k: v.shape for k, v in model.state_dict().items()}
        if config.tie_word_embeddings:
            del expected["lm_head.weight"]  # tied checkpoints do not store the head
        state = {}
        for name in files:
            fname = os.path.join(path, name)
            if not os.path.isfile(fname):
                raise FileNotFoundError(f"{fname}: missing, but {os.path.basename(index)} lists it; "
                                        "download every shard.")
            with safe_open(fname, framework="pt", device="cpu") as f:
                for key in f.keys():
                    ours = key.removeprefix("model.")
                    if ours not in expected:
                        if ours == "lm_head.weight":
                            continue  # some exports store the tied head too
                        raise ValueError(f"{fname}: unexpected tensor {key}; this is not a Qwen2ForCausalLM "
                                         "checkpoint matching config.json.")
                    t = f.get_tensor(key)
                    if t.shape != expected[ours]:
                        raise ValueError(f"{fname}: {key} has shape {list(t.shape)} but config.json implies "
                                         f"{list(expected[ours])}; the weights and config.json do not match.")
                    state[ours] = t.to(device=device, dtype=dtype or t.dtype)
        missing = sorted(set(expected) - set(state))
        if missing:
            raise ValueError(f"{path}: the weights lack {len(missing)} tensors (e.g. {missing[0]}); "
                             "the checkpoint is incomplete or belongs to another config.")
        if config.tie_word_embeddings:
            state["lm_head.weight"] = state["embed_tokens.weight"]
        model.load_state_dict(state, assign=True)
        model._tie_weights()
        return model.eval()

    def save_pretrained(self, path, dtype=None, generation_config=None):
        """Write config.json and the weights in the official layout (see write_pretrained), and
        generation_config.json when given (its ids come from the tokenizer: Tokenizer.generation_config)."""
        write_pretrained(path, self.config, self.state_dict(), dtype or self.embed_tokens.weight.dtype,
                         generation_config=generation_config)

    # ------------------------------------------------------------------------- generation

    @torch.no_grad()
    def generate(self, prompts, max_new_tokens, temperature=0.0, top_k=None, top_p=None, stop_ids=(),
                 pad_id=None, **options):
        """Continue prompts with the batched engine of `stream`, all rows at once by default.

        A list of prompts (lists of token ids, any lengths) gives, per prompt, the list of its new
        ids (ending with its stop id when it stopped). A (B, T) tensor gives (B, T + n_new): a row
        that stopped keeps its stop id and is padded with pad_id (default: the first stop id).
        `options` are stream's (batch_size, repetition_penalty, stop_strings, seeds, compile, ...).
        """
        kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, stop_ids=stop_ids, **options)
        if not torch.is_tensor(prompts):
            out = [None] * len(prompts)
            for i, ids in self.stream(prompts, max_new_tokens, **kw):
                out[i] = ids
            return out
        B, T = prompts.shape
        kw.setdefault("batch_size", B)
        new = self.generate(prompts.tolist(), max_new_tokens, **kw)
        pad = pad_id if pad_id is not None else (list(stop_ids) or [0])[0]
        out = prompts.new_full((B, T + max(map(len, new))), pad)
        out[:, :T] = prompts
        for i, ids in enumerate(new):
            out[i, T:T + len(ids)] = torch.tensor(ids)
        return out

    @torch.no_grad()
    def stream(self, prompts, max_new_tokens, *, batch_size=16, temperature=0.0, top_k=None, top_p=None,
               repetition_penalty=1.0, stop_ids=(), stop_strings=(), decode=None, seeds=None,
               partial=False, compile=False, progress=None):
        """Continue every prompt (token ids, any lengths); yield (prompt index, new ids) as each ends.

        Continuous batching, nano-vLLM's scheduler scaled down: at most batch_size rows are in
        flight in a preallocated KVCache. Each step either admits waiting prompts into free slots
        (prefill; a prompt already in the cache is copied from its row, so n samples of one prompt
        share one prefill) or advances every running row by one token (decode). A row ends at a
        stop id (kept), once decode(its new ids) contains one of stop_strings (a str, or a compiled
        regex that must match; or one such list per prompt), or after max_new_tokens; its slot goes to the next waiting prompt,
        so no row waits for a slower one.

        seeds: one per prompt for its own torch.Generator, so what a row samples does not depend on
        the batch it ran in, the order, or an interrupted run (default: drawn from the global RNG).
        partial: also yield (index, new ids so far) after every token (streaming a chat reply).
        compile: torch.compile the decode step over fixed shapes (every slot, the whole cache), so
        that on CUDA it is captured once as a CUDA graph. progress: a label; prints done/total,
        tokens/s and the time left every PROGRESS_EVERY seconds.
        """
        prompts = [[int(t) for t in p] for p in prompts]
        if not all(prompts):
            raise ValueError("every prompt needs at least one token.")
        if stop_strings and decode is None:
            raise ValueError("stop_strings need decode, a function from token ids to text.")
        if not prompts:
            return
        if stop_strings and isinstance(stop_strings[0], (list, tuple)):  # one list per prompt
            if len(stop_strings) != len(prompts):
                raise ValueError(f"stop_strings: {len(stop_strings)} lists for {len(prompts)} prompts.")
            row_stops = [list(x) for x in stop_strings]
        else:
            row_stops = [list(stop_strings)] * len(prompts)
        if seeds is None:  # from the global RNG, so torch.manual_seed still decides
            seeds = torch.randint(2**62, (len(prompts),)).tolist()
        c, device = self.config, self.embed_tokens.weight.device
        dtype = (torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type)
                 else self.embed_tokens.weight.dtype)  # the dtype the keys come out in
        max_len = max(map(len, prompts)) + max_new_tokens
        per_slot = 2 * c.num_hidden_layers * c.num_key_value_heads * max_len * c.head_dim * dtype.itemsize
        slots = max(1, min(batch_size, len(prompts), KV_CACHE_BYTES // per_slot))
        cache = KVCache(c, slots, max_len, dtype, device)
        rope = self._rope(0, max_len, device)
        seen = torch.zeros(slots, c.vocab_size, dtype=torch.bool, device=device) if repetition_penalty != 1 else None
        forward = self._step
        if compile:
            for t in cache.k + cache.v:  # CUDA graphs replay fixed addresses: the cache never moves
                torch._dynamo.mark_static_address(t)
            forward = torch.compile(forward, mode="reduce-overhead" if device.type == "cuda" else None,
                                    dynamic=False)
        stops, waiting, running = set(stop_ids), collections.deque(range(len(prompts))), []
        t0 = last_log = time.perf_counter()
        n_done = n_tokens = 0
        while waiting or running:
            if waiting and len(running) < slots:  # admit: prefill new rows into the free slots
                first = len(running)
                rows = [_Row(i, prompts[i], seeds[i]) for i in
                        [waiting.popleft() for _ in range(min(slots - first, len(waiting)))]]
                logits = self._prefill(cache, running, rows, rope)
                if seen is not None:  # the penalty counts the prompt's tokens too, as transformers
                    seen[first:] = False
                    for k, r in enumerate(rows):
                        seen[first + k, torch.tensor(r.prompt, device=device)] = True
            else:  # decode: one token for every running row
                first, rows = 0, running
                logits = self._decode(cache, running, rope, forward, slots if compile else 0)
            nxt = sample(logits, temperature, top_k, top_p, repetition_penalty,
                         None if seen is None else seen[first:first + len(rows)], [r.gen for r in rows])
            if seen is not None:
                seen[torch.arange(first, first + len(rows), device=device), nxt] = True
            finished = []
            for slot, r, t in zip(range(first, first + len(rows)), rows, nxt.tolist()):
                r.new.append(t)
                if (t in stops or len(r.new) >= max_new_tokens
                        or (row_stops[r.index] and _has_stop(decode(r.new), row_stops[r.index]))):
                    finished.append(slot)
                elif partial:
                    yield r.index, list(r.new)
            n_tokens += len(rows)
            for slot in reversed(finished):  # the last running row takes the freed slot
                r, last = running[slot], running.pop()
                if last is not r:
                    running[slot] = last
                    cache.move(len(running), slot, last.pos)
                    if seen is not None:
                        seen[slot] = seen[len(running)]
                n_done += 1
                yield r.index, r.new
            if progress and (time.perf_counter() - last_log >= PROGRESS_EVERY or not (waiting or running)):
                last_log, dt = time.perf_counter(), time.perf_counter() - t0
                left = f", ~{dt / n_done * (len(prompts) - n_done):.0f}s left" if n_done else ""
                print(f"{progress}: {n_done}/{len(prompts)} done, {n_tokens / dt:.1f} tokens/s{left}", flush=True)

    def _prefill(self, cache, running, rows, rope):
        """Write the new rows' prompts into the slots after `running`, which they join; return
        their next-token logits. The prompts go through the model packed into one sequence (large
        matrix products, no padding) and a prompt the cache holds already is copied instead."""
        first, device = len(running), rope[0].device
        slot = {r.key: s for s, r in enumerate(running)}  # where each prompt's keys are (or will be)
        todo = [r.key for k, r in enumerate(rows) if slot.setdefault(r.key, first + k) == first + k]
        running += rows
        while todo:
            n = max(1, sum(1 for _ in itertools.takewhile(lambda used: used <= PREFILL_TOKENS,
                                                          itertools.accumulate(map(len, todo)))))
            chunk, todo = todo[:n], todo[n:]
            ends = list(itertools.accumulate(map(len, chunk)))
            cache.pos, cache.segments = None, [(slot[key], end - len(key), end) for key, end in zip(chunk, ends)]
            ids = torch.tensor([t for key in chunk for t in key], device=device)[None]
            rope_packed = tuple(torch.cat([table[:len(key)] for key in chunk]) for table in rope)
            h = self._hidden(ids, rope_packed, cache)[0, [end - 1 for end in ends]]
            for key, logits in zip(chunk, self._logits(h)):  # one pass over the head's weights
                running[slot[key]].logits = logits
        for k, r in enumerate(rows):
            if slot[r.key] != first + k:
                cache.move(slot[r.key], first + k, len(r.prompt))
            r.logits = running[slot[r.key]].logits
        return torch.stack([r.logits for r in rows])

    def _decode(self, cache, running, rope, forward, fixed=0):
        """Next-token logits of every running row, whose newest tokens sit at different positions.
        fixed: compute that many rows over the whole cache (idle slots too), for fixed shapes."""
        device, idle = rope[0].device, max(0, fixed - len(running))
        tokens = torch.tensor([[r.new[-1]] for r in running] + [[0]] * idle, device=device)
        at = {r.pos for r in running}
        if len(at) == 1 and not fixed:  # all rows at one position (batch 1, a tensor batch): no mask
            p = at.pop()
            cache.pos, cache.mask = p, None
            return forward(tokens, rope[0][p:p + 1], rope[1][p:p + 1], cache)
        pos = torch.tensor([r.pos for r in running] + [0] * idle, device=device)
        keys = torch.arange(rope[0].shape[0] if fixed else max(at) + 1, device=device)
        cache.pos, cache.mask = pos, (keys <= pos[:, None])[:, None, None]
        return forward(tokens, rope[0][pos][:, None, None], rope[1][pos][:, None, None], cache)[:len(running)]

    def _step(self, tokens, cos, sin, cache):
        """The decode step's forward (what `compile` compiles): logits of each row's last token."""
        return self._logits(self._hidden(tokens, (cos, sin), cache)[:, -1])

    def _logits(self, h):
        """fp32 logits of final hidden states (n, hidden). On a CPU in fp32 the head's product
        goes to oneDNN's inner product, the same weights without a copy: with a few rows and a
        large vocabulary it runs 2-2.7x faster than F.linear's MKL call (bench/RESULTS.md)."""
        w = self.lm_head.weight
        if (not torch.compiler.is_compiling()  # (inductor picks its own kernels)
                and w.device.type == "cpu" and w.dtype == h.dtype == torch.float32
                and torch.backends.mkldnn.is_available()):
            return torch.ops.mkldnn._linear_pointwise(h, w, None, "none", [], "")
        return self.lm_head(h).float()


# The official multi-file downloads (7B-32B) hold at most ~5 GB per file, transformers' default.
SHARD_BYTES = 5 * 10**9


def write_pretrained(path, config, state, dtype, gather=lambda t: t, keep=lambda i: True, shard_bytes=None,
                     generation_config=None):
    """config.json (+ generation_config.json when given) and the weights in `dtype`, in the layout
    of the official downloads: one model.safetensors up to shard_bytes, else
    model-0000i-of-0000n.safetensors files and model.safetensors.index.json naming each tensor's
    file. Tied: no lm_head.weight.

    `state` maps our parameter names to tensors and must hold exactly the model's (a mismatch
    is an error, not a silently incomplete checkpoint). Each tensor goes through gather() in
    order, then is kept only by a writer with keep(file index): pretrain.py passes an all-gather
    and one writer per file on each rank, so no rank ever holds the whole model."""
    from safetensors.torch import save_file
    shard_bytes = shard_bytes or SHARD_BYTES
    with torch.device("meta"):
        expected = Transformer(config).state_dict()
    names = [k for k in expected if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    given = set(state) - ({"lm_head.weight"} if config.tie_word_embeddings else set())
    if given != set(names):
        wrong = sorted(set(names) ^ given)
        raise ValueError(f"the weights to save do not match the config: {len(wrong)} names differ (e.g. {wrong[0]}).")
    files, size = [[]], 0
    for k in names:
        nbytes = expected[k].numel() * dtype.itemsize
        if files[-1] and size + nbytes > shard_bytes:
            files.append([])
            size = 0
        files[-1].append(k)
        size += nbytes
    hf = lambda k: k if k == "lm_head.weight" else "model." + k
    n = len(files)
    fname = lambda i: "model.safetensors" if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"
    os.makedirs(path, exist_ok=True)
    for i, keys in enumerate(files):
        tensors = {}
        for k in keys:
            t = gather(state[k].detach().to(dtype))   # every caller takes part, writer or not
            if keep(i):
                tensors[hf(k)] = t.to("cpu").contiguous()
        if keep(i):
            save_file(tensors, os.path.join(path, fname(i)), metadata={"format": "pt"})
    if not keep(0):
        return
    # The writer of the first file writes the rest and removes the weights of an earlier save
    # (a stale model.safetensors would shadow new numbered files when loading).
    new = {fname(i) for i in range(n)} | ({"model.safetensors.index.json"} if n > 1 else set())
    for old in os.listdir(path):
        if old.startswith("model") and old.endswith((".safetensors", ".safetensors.index.json")) and old not in new:
            os.remove(os.path.join(path, old))
    if n > 1:
        index = {"metadata": {"total_size": sum(expected[k].numel() * dtype.itemsize for k in names)},
                 "weight_map": {hf(k): fname(i) for i, keys in enumerate(files) for k in keys}}
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
    hf_config = config.to_hf()
    hf_config["torch_dtype"] = str(dtype).removeprefix("torch.")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2)
    if generation_config is not None:
        with open(os.path.join(path, "generation_config.json"), "w") as f:
            json.dump(generation_config, f, indent=2)

# ----------------------------------------------------------------------------- generation: cache, sampling

class KVCache:
    """Keys and values of `slots` sequences for every layer, allocated once for the whole run.

    Per-slot rows rather than nano-vLLM's paged pool of blocks: scaled_dot_product_attention
    wants each sequence's keys contiguous, so a paged pool would need a gather of every running
    row's blocks per layer and step (SDPA has no paged-attention kernel), while rows cost only
    the unused tail of each slot (bounded by KV_CACHE_BYTES). The running rows always occupy
    slots 0..n-1 (a finished row's slot takes the last row, `move`), so a decode step attends
    over the view [:n, :, :L] without copying anything.

    Before each forward the engine says what it computes: a prefill (`segments`: which slot
    each prompt of the packed sequence goes to, and where it lies in the sequence) or a decode
    step (`pos`: each running row's one new position, `mask`: the keys each row may see; or an
    int and no mask when every row is at the same position).
    """
    def __init__(self, config, slots, max_len, dtype, device):
        shape = (slots, config.num_key_value_heads, max_len, config.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.segments = self.pos = self.mask = None

    def attend(self, layer, q, k, v):
        gqa = q.shape[1] != k.shape[1]
        if self.pos is None:
            # Prefill: prompts packed into one sequence, each attending to itself, causally from
            # its own position 0. On CUDA this is the FlashAttention-2 kernel (is_causal, no
            # mask); on CPU the flash CPU kernel.
            out = []
            for row, a, b in self.segments:
                self.k[layer][row, :, :b - a] = k[0, :, a:b]
                self.v[layer][row, :, :b - a] = v[0, :, a:b]
                out.append(F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b],
                                                          is_causal=True, enable_gqa=gqa))
            return torch.cat(out, dim=2)
        # Decode: one query per row at its own position; rows of different lengths share the
        # step, so a boolean mask hides each row's unused tail. The query heads that share a
        # key/value head enter as that head's queries, (n, kv heads, group, head_dim): the same
        # attention without GQA, which the CPU kernel runs ~10x faster in bf16 than one query
        # with enable_gqa (bench/RESULTS.md). A mask rules out FlashAttention on CUDA: SDPA takes
        # the memory-efficient kernel there; on CPU the flash CPU kernel, which accepts masks.
        (n, heads, _, d), kv = q.shape, k.shape[1]
        if self.mask is None:  # every row at position pos: plain slices, no mask
            self.k[layer][:n, :, self.pos] = k[:, :, 0]
            self.v[layer][:n, :, self.pos] = v[:, :, 0]
            keys, values = self.k[layer][:n, :, :self.pos + 1], self.v[layer][:n, :, :self.pos + 1]
        else:
            rows, length = torch.arange(n, device=q.device), self.mask.shape[-1]
            self.k[layer][rows, :, self.pos] = k[:, :, 0]
            self.v[layer][rows, :, self.pos] = v[:, :, 0]
            keys, values = self.k[layer][:n, :, :length], self.v[layer][:n, :, :length]
        y = F.scaled_dot_product_attention(q.reshape(n, kv, heads // kv, d), keys, values, attn_mask=self.mask)
        return y.reshape(n, heads, 1, d)

    def move(self, src, dst, length):
        """Copy the first `length` positions of slot src into slot dst, in every layer."""
        for k, v in zip(self.k, self.v):
            k[dst, :, :length] = k[src, :, :length]
            v[dst, :, :length] = v[src, :, :length]


def process_logits(logits, temperature=0.0, top_k=None, top_p=None, repetition_penalty=1.0, seen=None):
    """(B, V) fp32 logits after transformers' processors, in its order: the repetition penalty
    (also when greedy), then when sampling temperature, top-k and nucleus (top-p) filtering.

    seen (B, V) bool marks the tokens a row already holds (prompt and reply): their logits are
    divided by repetition_penalty where positive and multiplied where negative (the CTRL paper's
    penalty, as transformers' RepetitionPenaltyLogitsProcessor).
    """
    logits = logits.float()
    if repetition_penalty != 1.0 and seen is not None:
        penalised = torch.where(logits < 0, logits * repetition_penalty, logits / repetition_penalty)
        logits = torch.where(seen, penalised, logits)
    if temperature == 0:
        return logits
    logits = logits / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        # The nucleus needs the tokens in order of probability, but only as far as top_p: order
        # the top_k (else the 1,024) most likely, and sort the whole vocabulary only when those
        # hold less than top_p (a full sort of 151,936 logits per row costs ~20x more).
        probs = logits.softmax(dim=-1)
        top, order = probs.topk(min(top_k or 1024, probs.shape[-1]), dim=-1)
        if not top_k and (top.sum(dim=-1) < top_p).any():
            top, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the most likely token always stays).
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter_(-1, order, top.cumsum(dim=-1) - top < top_p)
        logits = logits.masked_fill(~keep, float("-inf"))
    return logits


def sample(logits, temperature=0.0, top_k=None, top_p=None, repetition_penalty=1.0, seen=None, generators=None):
    """Next token per row from (B, V) logits: argmax at temperature 0, else a draw from the
    processed distribution. generators: one torch.Generator per row, so a row's draws depend on
    its own seed and not on which rows share its batch; without them, the global RNG."""
    logits = process_logits(logits, temperature, top_k, top_p, repetition_penalty, seen)
    if temperature == 0:
        return logits.argmax(dim=-1)
    # An inverse-CDF draw: one uniform number per row picks the token whose slice of the
    # cumulative distribution holds it (torch.multinomial's distribution, one generator per row).
    # The numbers are drawn on the CPU, so a seed gives the same draws on every device.
    cdf = logits.softmax(dim=-1).cumsum(dim=-1)
    u = torch.cat([torch.rand(1, generator=g) for g in generators]) if generators else torch.rand(len(cdf))
    u = u.to(cdf.device)[:, None] * cdf[:, -1:]  # the total is 1 up to rounding
    return torch.searchsorted(cdf, u, right=True).clamp_max(cdf.shape[-1] - 1).squeeze(-1)


def inference_dtype(device, choice="auto"):
    """The weights' dtype for generation: "bf16", "fp32", or "auto": bf16 on GPUs that support it
    and on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX: oneDNN's bf16 matrix products run
    ~2.5x faster than fp32 there, bench/RESULTS.md), else fp32 (emulated bf16 would be slower)."""
    if choice not in ("auto", "bf16", "fp32"):
        raise ValueError(f"dtype {choice!r} is not one of auto, bf16, fp32.")
    if choice == "auto":
        if torch.device(device).type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        # get_cpu_capability() says "AVX512" for AVX512 CPUs with and without the bf16 instructions.
        native = [getattr(torch.cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return torch.bfloat16 if any(native) else torch.float32
    return torch.bfloat16 if choice == "bf16" else torch.float32


class _Row:
    """One sequence in flight: its prompt, the ids generated so far, its own random generator."""
    def __init__(self, index, prompt, seed):
        self.index, self.prompt, self.key, self.new = index, prompt, tuple(prompt), []
        self.gen = torch.Generator().manual_seed(seed)
        self.logits = None  # the prompt's next-token logits, shared with its rows admitted later

    @property
    def pos(self):  # the position of the newest token, the one the cache does not hold yet
        return len(self.prompt) + len(self.new) - 1


def _has_stop(text, stops):
    return any(s.search(text) if isinstance(s, re.Pattern) else s in text for s in stops)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="tiny", help="config to describe: tiny, small, 0.5B ... 32B")
    p.add_argument("--load", help="a Hugging Face-format checkpoint directory to generate with")
    p.add_argument("--ids", default="", help="comma-separated prompt token ids (with --load)")
    p.add_argument("--tokens", type=int, default=32, help="new tokens to generate (with --load)")
    p.add_argument("--yarn", type=float, help="apply YaRN with this factor at load time (inputs past the "
                   "trained context, as the model card's rope_scaling edit)")
    args = p.parse_args()
    if not args.load:
        cfg = ModelConfig.from_name(args.name)
        with torch.device("meta"):
            model = Transformer(cfg)
        n = sum(p.numel() for p in model.parameters())
        print(f"{args.name}: {n:,} parameters, {cfg.flops_per_token(4096) / 1e9:.2f} GFLOPs/token at 4K context")
        print(json.dumps(cfg.to_hf(), indent=2))
        return
    try:
        model = Transformer.from_pretrained(args.load, yarn=args.yarn)
    except (OSError, ValueError) as e:
        raise SystemExit(str(e))
    ids = torch.tensor([[int(t) for t in args.ids.split(",") if t.strip()] or [0]])
    print(model.generate(ids, args.tokens)[0].tolist())


if __name__ == "__main__":
    main()
