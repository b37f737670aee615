"""The Qwen2.5-Coder transformer (report §2, Table 1; YaRN long context §3.2.2).

A pre-norm decoder: RMSNorm, rotary embeddings (split halves, rope_theta 1e6; static YaRN
only when asked, as the official checkpoints ship without it), grouped-query attention with q/k/v bias, SwiGLU MLP, tied or untied head.
Parameter names equal Hugging Face's Qwen2ForCausalLM minus the leading `model.`, so an
official checkpoint directory loads as is, and `save_pretrained` writes one transformers loads.

    python model.py --name 32B                       # sizes and FLOPs of a config (built on meta)
    python model.py --load DIR --ids 750,15801,1445 --tokens 64   # greedy continuation of token ids
    python model.py --load DIR --yarn 4 --ids ...    # the same with YaRN x4 (inputs past the trained context)

    from model import Transformer
    model = Transformer.from_pretrained("Qwen2.5-Coder-0.5B", dtype=torch.bfloat16)
    out = model.generate(ids, max_new_tokens=64, stop_ids=(151643,))
"""
import argparse
import json
import math
import os
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
        """An official size (FACTS §1) or a small CPU config; keyword overrides win (e.g. vocab_size)."""
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


class KVCache:
    """One layer's keys and values, preallocated for the whole generation and indexed by position."""
    def __init__(self, max_len):
        self.max_len, self.k, self.v = max_len, None, None

    def update(self, pos, k, v):
        if self.k is None:  # allocate on first use, in the dtype attention runs in (autocast included)
            B, H, _, D = k.shape
            self.k = k.new_zeros(B, H, self.max_len, D)
            self.v = v.new_zeros(B, H, self.max_len, D)
        end = pos + k.shape[2]
        self.k[:, :, pos:end] = k
        self.v[:, :, pos:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class Attention(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.n_head * self.head_dim, bias=True)
        self.k_proj = nn.Linear(c.hidden_size, self.n_kv * self.head_dim, bias=True)
        self.v_proj = nn.Linear(c.hidden_size, self.n_kv * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache=None, pos=0):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(pos, k, v)
        # is_causal aligns the mask top-left, right only when queries start at key 0 (prefill);
        # one new query (decoding) sees every cached key, so it needs no mask at all.
        assert T == 1 or pos == 0, "multi-token steps are only supported from position 0"
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=self.n_kv != self.n_head)
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
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, cache=None, pos=0):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, pos)
        return x + self.mlp(self.post_attention_layernorm(x))


def _token_losses(h, weight, targets, ignore_index):
    """Cross-entropy of one chunk of positions, logits upcast to fp32 (0 where ignored)."""
    logits = F.linear(h, weight).float()
    return F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="none")


def sample(logits, temperature=0.0, top_k=None, top_p=None):
    """Next token per row from (B, V) logits: argmax at temperature 0, else top-k / nucleus sampling."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (the most likely token always stays).
        drop = probs.cumsum(dim=-1) - probs >= top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(dim=-1), 1).squeeze(-1)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
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

    def _hidden(self, input_ids, rope=None, caches=None, pos=0):
        """Final-norm hidden states (B, T, hidden); with caches, tokens sit at positions pos.. ."""
        x = self.embed_tokens(input_ids)
        cos, sin = rope or self._rope(pos, input_ids.shape[1], input_ids.device)
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, None if caches is None else caches[i], pos)
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

    @torch.no_grad()
    def generate(self, input_ids, max_new_tokens, temperature=0.0, top_k=None, top_p=None,
                 stop_ids=(), pad_id=None, on_token=None):
        """Continue each row of input_ids (B, T, all rows the same length) with a KV cache.

        Returns (B, T + n_new). A row that emits a stop id keeps it and is padded with pad_id
        (default: the first stop id) afterwards; generation ends early once every row stopped.
        on_token(column) is called with each new (B, 1) column, e.g. to stream text.
        """
        B, T = input_ids.shape
        caches = [KVCache(T + max_new_tokens) for _ in self.layers]
        cos, sin = self._rope(0, T + max_new_tokens, input_ids.device)
        stop_ids = list(stop_ids)
        stop = torch.tensor(stop_ids, dtype=torch.long, device=input_ids.device)
        if pad_id is None:
            pad_id = stop_ids[0] if stop_ids else 0
        done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        out, tokens = [input_ids], input_ids
        for step in range(max_new_tokens):
            pos = 0 if step == 0 else T + step - 1
            n = tokens.shape[1]
            h = self._hidden(tokens, (cos[pos:pos + n], sin[pos:pos + n]), caches, pos)[:, -1]
            nxt = sample(self.lm_head(h).float(), temperature, top_k, top_p)
            if stop_ids:
                nxt = nxt.masked_fill(done, pad_id)
                done |= torch.isin(nxt, stop)
            tokens = nxt[:, None]
            out.append(tokens)
            if on_token is not None:
                on_token(tokens)
            if stop_ids and bool(done.all()):
                break
        return torch.cat(out, dim=1)

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
