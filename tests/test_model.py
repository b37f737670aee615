"""model.py against its oracle, Hugging Face transformers' Qwen2ForCausalLM, on tiny random configs (CPU)."""
import collections
import copy
import json
import math
import os
import re
import time
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM  # the oracle (requirements-dev.txt)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

import model as model_module
from model import KVCache, ModelConfig, Transformer, rope_frequencies

YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 24}

# (name, config overrides, sequence length). GQA ratios 1, 2 and 7; head_dim 32 and 64; tied and
# untied; YaRN with sequences longer than original_max_position_embeddings.
CONFIGS = [
    ("mha-d32-tied", dict(num_attention_heads=2, num_key_value_heads=2, head_dim=32, hidden_size=64), 20),
    ("gqa2-d64-untied", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=64, hidden_size=256,
                             tie_word_embeddings=False), 20),
    ("gqa7-d32-yarn", dict(num_attention_heads=7, num_key_value_heads=1, head_dim=32, hidden_size=224,
                           rope_theta=1e4, rope_scaling=YARN), 60),
    ("gqa2-d64-yarn-untied", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=64, hidden_size=256,
                                  rope_scaling=YARN, tie_word_embeddings=False), 60),
]


def hf_model(seed=0, **overrides):
    """A random transformers Qwen2ForCausalLM (eager attention) with weights spread wide enough
    that any mistake shows in the logits (norm weights and biases too, not just 1 and 0)."""
    cfg = dict(vocab_size=96, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
               num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=96,
               rope_theta=1e6, rope_scaling=None, rms_norm_eps=1e-6, tie_word_embeddings=True)
    cfg.update(copy.deepcopy(overrides))  # transformers edits rope dicts in place
    torch.manual_seed(seed)
    hf = Qwen2ForCausalLM(Qwen2Config(**cfg, attn_implementation="eager")).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0, 0.15)
    return hf


def load_ours(hf, tmp_path):
    hf.save_pretrained(tmp_path / "hf")
    return Transformer.from_pretrained(tmp_path / "hf")


@pytest.mark.parametrize("name,overrides,T", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_logits_match_transformers(name, overrides, T, tmp_path):
    hf = hf_model(**overrides)
    if "rope_scaling" in overrides:  # make sure the oracle really runs YaRN, with the factor we gave it
        assert hf.model.rotary_emb.rope_type == "yarn"
        assert hf.model.rotary_emb.attention_scaling == pytest.approx(0.1 * math.log(4) + 1)
        assert T > YARN["original_max_position_embeddings"]
    ours = load_ours(hf, tmp_path)
    assert ours.config.rope_scaling == (YARN if "rope_scaling" in overrides else None)
    assert ours.config.tie_word_embeddings == overrides.get("tie_word_embeddings", True)
    ids = torch.randint(0, 96, (2, T))
    with torch.no_grad():
        expected = hf(ids).logits
        got = ours(ids)
    assert got.dtype == torch.float32 and got.shape == (2, T, 96)
    assert expected.abs().max() > 1  # the comparison below is not trivially small
    assert (got - expected).abs().max() <= 1e-4


@pytest.mark.parametrize("name,overrides,T", CONFIGS[1:3], ids=[c[0] for c in CONFIGS[1:3]])
def test_greedy_generate_matches_transformers(name, overrides, T, tmp_path):
    hf = hf_model(**overrides)
    ours = load_ours(hf, tmp_path)
    ids = torch.randint(0, 96, (2, 12))
    expected = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=T - 12, do_sample=False,
                           pad_token_id=0, eos_token_id=None)
    got = ours.generate(ids, max_new_tokens=T - 12)
    assert got.shape == expected.shape == (2, T)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("tied", [True, False])
def test_save_pretrained_loads_in_transformers(tied, tmp_path):
    cfg = ModelConfig.from_name("tiny", vocab_size=96, hidden_size=64, num_hidden_layers=2, head_dim=32,
                                num_attention_heads=2, num_key_value_heads=1, intermediate_size=128,
                                rope_scaling=YARN, tie_word_embeddings=tied)
    torch.manual_seed(0)
    ours = Transformer(cfg)
    ours.init_weights()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["model_type"] == "qwen2"
    assert config["rope_theta"] == 1e6 and config["rope_scaling"] == YARN
    assert config["torch_dtype"] == "float32" and config["tie_word_embeddings"] is tied
    from safetensors import safe_open
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert ("lm_head.weight" in keys) is not tied
    assert "model.layers.1.self_attn.q_proj.bias" in keys and len(keys) == 2 * 12 + 2 + (not tied)

    hf = Qwen2ForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert hf.model.rotary_emb.attention_scaling == pytest.approx(0.1 * math.log(4) + 1)
    ids = torch.randint(0, 96, (1, 40))
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids)).abs().max() <= 1e-4
    again = Transformer.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert again.embed_tokens.weight.dtype == torch.bfloat16
    assert (again.lm_head.weight is again.embed_tokens.weight) is tied


def test_sharded_checkpoint_loads(tmp_path):
    hf = hf_model(tie_word_embeddings=False)
    hf.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    ours = Transformer.from_pretrained(tmp_path)
    ids = torch.randint(0, 96, (1, 16))
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids)).abs().max() <= 1e-4
    shard = sorted(tmp_path.glob("model-*-of-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=f"{shard.name}: missing, but model.safetensors.index.json lists it"):
        Transformer.from_pretrained(tmp_path)


# The exact parameter counts of the official checkpoints (their model cards and safetensors index).
OFFICIAL = {"0.5B": 494_032_768, "1.5B": 1_543_714_304, "3B": 3_085_938_688, "7B": 7_615_616_512,
            "14B": 14_770_033_664, "32B": 32_763_876_352}


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_parameter_counts_on_meta(name):
    cfg = ModelConfig.from_name(name)
    with torch.device("meta"):
        model = Transformer(cfg)
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL[name] == cfg.num_params()


def test_meta_construction_of_32b_is_instant():
    t0 = time.perf_counter()
    with torch.device("meta"):
        model = Transformer(ModelConfig.from_name("32B"))
    assert time.perf_counter() - t0 < 3.0
    assert len(model.layers) == 64 and model.lm_head.weight.shape == (152064, 5120)


def test_small_configs():
    tiny, small = ModelConfig.from_name("tiny"), ModelConfig.from_name("small", vocab_size=5000)
    assert 4e6 < tiny.num_params() < 6e6 and tiny.vocab_size == 8192
    assert 20e6 < small.num_params() < 40e6 and small.vocab_size == 5000
    with pytest.raises(ValueError, match="unknown model name"):
        ModelConfig.from_name("2B")
    # 6N + attention: for 0.5B at 4K context, ~3.5 GFLOPs/token
    assert ModelConfig.from_name("0.5B").flops_per_token(4096) == pytest.approx(
        6 * 494_032_768 + 12 * 24 * 14 * 64 * 4096)


def yarn_by_hand(d, base=1e6, factor=4.0, orig=32768):
    """YaRN (arXiv 2309.00071 §3; transformers' _compute_yarn_parameters) in float64, independent of model.py."""
    corr = lambda r: d * math.log(orig / (2 * math.pi * r)) / (2 * math.log(base))  # noqa: E731
    low, high = max(math.floor(corr(32)), 0), min(math.ceil(corr(1)), d - 1)
    extrap = [base ** (-2 * i / d) for i in range(d // 2)]
    ramp = [min(max((i - low) / (high - low), 0), 1) for i in range(d // 2)]
    return low, high, [e / factor * r + e * (1 - r) for e, r in zip(extrap, ramp)], extrap


@pytest.mark.parametrize("d,low,high", [(64, 11, 20), (128, 23, 40)])
def test_yarn_frequencies_match_facts(d, low, high):
    cfg = ModelConfig.from_name("0.5B", head_dim=d, rope_scaling={"type": "yarn", "factor": 4.0,
                                                                   "original_max_position_embeddings": 32768})
    inv_freq, scale = rope_frequencies(cfg)
    lo, hi, expected, extrap = yarn_by_hand(d)
    assert (lo, hi) == (low, high)
    assert torch.allclose(inv_freq.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=0)
    assert inv_freq[low].item() == pytest.approx(extrap[low], rel=1e-6)               # still extrapolated
    assert inv_freq[high].item() == pytest.approx(extrap[high] / 4, rel=1e-6)         # fully interpolated
    assert scale == pytest.approx(0.1 * math.log(4.0) + 1)
    plain, one = rope_frequencies(ModelConfig.from_name("0.5B", head_dim=d))
    assert one == 1.0 and torch.allclose(plain.double(), torch.tensor(extrap, dtype=torch.float64), rtol=1e-6)
    # and transformers' own YaRN on the official config numbers gives the same
    hf_cfg = Qwen2Config(**{**cfg.to_hf(), "head_dim": d})
    hf_inv, hf_scale = ROPE_INIT_FUNCTIONS["yarn"](hf_cfg)
    assert torch.allclose(inv_freq, hf_inv, rtol=1e-6) and hf_scale == pytest.approx(scale)


def test_config_reads_both_rope_layouts():
    old = ModelConfig.from_name("7B", rope_scaling={"type": "yarn", "factor": 4.0,
                                                    "original_max_position_embeddings": 32768}).to_hf()
    assert old["rope_theta"] == 1e6 and "head_dim" not in old and old["tie_word_embeddings"] is False
    new = {k: v for k, v in old.items() if k not in ("rope_theta", "rope_scaling")}
    new["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
                              "rope_theta": 1e6}
    assert ModelConfig.from_hf(old) == ModelConfig.from_hf(new) == ModelConfig.from_name("7B", **{
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}})
    plain = dict(new, rope_parameters={"rope_type": "default", "rope_theta": 1e4})
    assert ModelConfig.from_hf(plain).rope_scaling is None and ModelConfig.from_hf(plain).rope_theta == 1e4


# Every YaRN field transformers' _compute_yarn_parameters reads, each in a config where it changes the logits.
YARN_FIELDS = [
    ("beta-truncate", {"factor": 2.5, "beta_fast": 16, "beta_slow": 2, "truncate": False}),
    ("attention-factor", {"factor": 4.0, "attention_factor": 1.25}),
    ("mscale", {"factor": 4.0, "mscale": 0.707, "mscale_all_dim": 1.0}),
]


@pytest.mark.parametrize("name,fields", YARN_FIELDS, ids=[f[0] for f in YARN_FIELDS])
def test_every_yarn_field_is_kept_and_matches_transformers(name, fields, tmp_path):
    scaling = {"type": "yarn", "original_max_position_embeddings": 24, **fields}
    hf = hf_model(num_attention_heads=4, num_key_value_heads=2, head_dim=32, hidden_size=128,
                  rope_theta=1e4, rope_scaling=scaling)
    ours = load_ours(hf, tmp_path)
    assert ours.config.rope_scaling == scaling  # nothing dropped
    ids = torch.randint(0, 96, (2, 60))
    with torch.no_grad():
        expected = hf(ids).logits
        assert (ours(ids) - expected).abs().max() <= 1e-4
        # the field matters: without it (plain YaRN, same factor) the logits are another model's
        plain = {k: scaling[k] for k in ("type", "factor", "original_max_position_embeddings")}
        ours.config = replace(ours.config, rope_scaling=plain)
        assert (ours(ids) - expected).abs().max() > 1e-3


def test_unimplemented_rope_fields_are_refused_in_one_sentence(tmp_path):
    cfg = ModelConfig.from_name("tiny").to_hf()
    longrope_field = dict(cfg, rope_scaling={"type": "yarn", "factor": 4.0, "long_factor": [1.0] * 32})
    with pytest.raises(ValueError, match=r"rope field\(s\) \['long_factor'\] of a 'yarn' RoPE are not implemented"):
        ModelConfig.from_hf(longrope_field)
    partial = dict(cfg, rope_parameters={"rope_type": "default", "rope_theta": 1e6, "partial_rotary_factor": 0.5})
    partial.pop("rope_scaling")
    with pytest.raises(ValueError, match=r"\['partial_rotary_factor'\] of a 'default' RoPE"):
        ModelConfig.from_hf(partial)
    # as transformers: a missing factor is max_position_embeddings / original_max_position_embeddings
    implicit = dict(cfg, max_position_embeddings=4096, rope_scaling={"type": "yarn", "original_max_position_embeddings": 1024})
    assert ModelConfig.from_hf(implicit).rope_scaling["factor"] == 4.0


def test_yarn_at_load_time_equals_the_model_card_config_edit(tmp_path):
    hf = hf_model(num_attention_heads=4, num_key_value_heads=2, head_dim=32, hidden_size=128)
    hf.save_pretrained(tmp_path / "plain")
    assert ModelConfig.from_hf(json.loads((tmp_path / "plain" / "config.json").read_text())).rope_scaling is None
    ours = Transformer.from_pretrained(tmp_path / "plain", yarn=4)
    # the model card: add {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    # (the trained window, max_position_embeddings) to config.json
    edited = hf_model(num_attention_heads=4, num_key_value_heads=2, head_dim=32, hidden_size=128,
                      rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 96})
    edited.load_state_dict(hf.state_dict())
    ids = torch.randint(0, 96, (1, 200))
    with torch.no_grad():
        assert (ours(ids) - edited(ids).logits).abs().max() <= 1e-4
        assert (ours(ids) - hf(ids).logits).abs().max() > 1e-3


def tiny_model(seed=0, **overrides):
    cfg = ModelConfig.from_name("tiny", **{**dict(vocab_size=64, hidden_size=64, num_hidden_layers=2, head_dim=32,
                                                  num_attention_heads=4, num_key_value_heads=2,
                                                  intermediate_size=128), **overrides})
    torch.manual_seed(seed)
    with torch.device("meta"):
        model = Transformer(cfg)
    model.to_empty(device="cpu")
    model.init_weights()
    with torch.no_grad():  # spread the weights so the argmax is decisive
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def test_saved_chat_model_stops_at_im_end_in_transformers(tmp_path):
    """A chat checkpoint's generation_config.json makes transformers' generate stop at <|im_end|>."""
    from transformers import AutoModelForCausalLM
    from tokenizer import SPECIAL_TOKENS, Tokenizer
    tok = Tokenizer(range(256), [], {t: 256 + k for k, t in enumerate(SPECIAL_TOKENS)})  # bytes + specials
    im_end = tok.special["<|im_end|>"]
    model = tiny_model(vocab_size=320)
    ids = torch.tensor([tok.encode("def add(a, b):")])
    free = model.generate(ids, 12)[0, ids.shape[1]:].tolist()
    # Relabel the first new token not seen before as <|im_end|> (swap the two rows of the tied
    # embedding): the same model, which now emits <|im_end|> at step k.
    k = next(i for i, t in enumerate(free) if i >= 2 and t not in free[:i] + ids[0].tolist())
    with torch.no_grad():
        w = model.embed_tokens.weight
        w[[free[k], im_end]] = w[[im_end, free[k]]]
    assert model.generate(ids, 12)[0, ids.shape[1] + k].item() == im_end
    model.save_pretrained(tmp_path, generation_config=tok.generation_config(chat=True))
    tok.save(tmp_path, chat=True)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert hf.generation_config.eos_token_id == [im_end, tok.eot_id] and hf.generation_config.top_k == 20
    greedy = dict(do_sample=False, repetition_penalty=1.0, max_new_tokens=12)
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), **greedy)[0, ids.shape[1]:].tolist()
    assert out == model.generate(ids, 12)[0, ids.shape[1]:ids.shape[1] + k + 1].tolist()  # stops at it
    (tmp_path / "generation_config.json").unlink()  # without the file, nothing tells it to stop there
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert len(hf.generate(ids, attention_mask=torch.ones_like(ids), **greedy)[0]) == ids.shape[1] + 12


def test_meta_to_empty_init_weights():
    model = tiny_model()
    assert model.lm_head.weight is model.embed_tokens.weight  # still tied after leaving meta
    assert len(list(model.parameters())) == 2 * 12 + 2
    ids = torch.randint(0, 64, (2, 10))
    logits = model(ids)
    assert torch.isfinite(logits).all()
    # RoPE works off meta: the same weights in a model built directly give the same logits
    direct = Transformer(model.config)
    direct.load_state_dict(model.state_dict())
    assert torch.allclose(direct(ids), logits, atol=1e-6)
    assert model.layers[0].self_attn.q_proj.bias.abs().max() > 0


def recompute(model, prompt, n, stop=None):
    """Greedy continuation without a cache: the whole sequence through the model for each token."""
    seq, new = torch.tensor([prompt]), []
    with torch.no_grad():
        while len(new) < n and (not new or new[-1] != stop):
            new.append(model(seq)[0, -1].argmax().item())
            seq = torch.cat([seq, torch.tensor([new[-1:]])], dim=1)
    return new


def ragged_prompts(lengths=(1, 7, 3, 19, 7, 30, 2, 11), seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 64, (n,), generator=g).tolist() for n in lengths]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_ragged_greedy_equals_each_prompt_alone(batch_size):
    model = tiny_model(rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8})
    prompts = ragged_prompts()
    prompts.append(prompts[2])  # the same prompt twice: the second copies the first one's cache
    free = [recompute(model, p, 14) for p in prompts]
    firsts = lambda t: [f.index(t) if t in f else None for f in free]  # noqa: E731
    # A stop id that ends rows at different steps and leaves at least one row running to the limit.
    stop = max((t for t in range(64) if None in firsts(t)), key=lambda t: len(set(firsts(t))))
    assert len({i for i in firsts(stop) if i is not None}) >= 2
    got = model.generate(prompts, 14, batch_size=batch_size, stop_ids=[stop])
    assert got == [f[:f.index(stop) + 1] if stop in f else f for f in free]  # no padding, stop id kept
    assert len(set(map(len, got))) > 2 and len({t for f in free for t in f}) > 5  # not a degenerate run


def test_generate_tensor_pads_stopped_rows_and_streams():
    model = tiny_model()
    ids = torch.randint(0, 64, (3, 4))
    free = model.generate(ids, max_new_tokens=12)
    assert torch.equal(free, torch.cat([ids, torch.tensor([recompute(model, r, 12) for r in ids.tolist()])], 1))
    stop = free[0, 6].item()  # row 0 emits this at its third new token
    out = model.generate(ids, max_new_tokens=12, stop_ids=(stop,), pad_id=63)
    for row in range(3):
        new = free[row, 4:].tolist()
        cut = new.index(stop) + 1 if stop in new else len(new)
        assert out[row, 4:4 + cut].tolist() == new[:cut]          # identical up to and including the stop
        assert (out[row, 4 + cut:] == 63).all()                   # then padding
    stopped_all = all(stop in free[r, 4:].tolist() for r in range(3))
    assert (out.shape[1] < 16) == stopped_all  # ends early only when every row stopped
    short = model.generate(ids[:1], max_new_tokens=12, stop_ids=(stop,))
    cut = free[0, 4:].tolist().index(stop) + 1
    assert short.shape[1] == 4 + cut and short[0, -1] == stop  # a single row stops at once
    # partial=True streams every row's reply as it grows; its last report is the whole reply
    steps = list(model.stream([ids[0].tolist()], 12, stop_ids=(stop,), partial=True))
    assert [new for _, new in steps] == [free[0, 4:4 + k].tolist() for k in range(1, cut + 1)]


def first_token(model, prompt):
    with torch.no_grad():
        return model(torch.tensor([prompt]))[0, -1].argmax().item()


def test_continuous_batching_refills_a_freed_slot_at_once(monkeypatch):
    model = tiny_model()
    g = torch.Generator().manual_seed(3)
    pool = [torch.randint(0, 64, (int(n),), generator=g).tolist() for n in torch.randint(2, 12, (80,), generator=g)]
    stop = collections.Counter(first_token(model, p) for p in pool).most_common(1)[0][0]
    quick = [p for p in pool if first_token(model, p) == stop][:3]   # stop at their first token
    slow = next(p for p in pool if stop not in recompute(model, p, 10))  # runs to the limit
    assert len(quick) == 3
    allocated, widths = [], []
    monkeypatch.setattr(model_module, "KVCache", lambda *a: allocated.append(a) or KVCache(*a))
    step = model._step
    monkeypatch.setattr(model, "_step", lambda tokens, *a: widths.append(len(tokens)) or step(tokens, *a))
    order = [i for i, _ in model.stream([slow] + quick, 10, batch_size=2, stop_ids=[stop])]
    # With two slots, the quick prompts pass through the second slot while the slow one runs:
    # a freed slot takes the next prompt at once instead of waiting for the batch's slowest row.
    assert order == [1, 2, 3, 0]
    assert len(allocated) == 1 and allocated[0][1] == 2  # one cache, allocated once, two slots
    assert len(widths) == 9 and max(widths) == 1  # the slow row's 9 decode steps, alone


def test_samples_of_one_prompt_share_its_prefill_and_own_their_seeds(monkeypatch):
    model = tiny_model()
    p, q = ragged_prompts((9, 5))
    prefilled = []
    hidden = model._hidden
    monkeypatch.setattr(model, "_hidden", lambda ids, rope=None, cache=None: (
        cache is not None and cache.pos is None and prefilled.append(ids.numel())) or hidden(ids, rope, cache))
    prompts, seeds = [p] * 5 + [q], [11, 12, 13, 14, 15, 16]
    got = model.generate(prompts, 8, batch_size=8, temperature=1.0, seeds=seeds)
    assert sum(prefilled) == len(p) + len(q)  # five samples, one prefill
    assert len({tuple(r) for r in got[:5]}) > 1  # different seeds, different samples
    # A row's sample depends on its seed only: alone, in any order, at any batch size.
    prefilled.clear()
    assert got == [model.generate([x], 8, temperature=1.0, seeds=[s])[0] for x, s in zip(prompts, seeds)]
    assert got[::-1] == model.generate(prompts[::-1], 8, batch_size=2, temperature=1.0, seeds=seeds[::-1])
    kw = dict(temperature=0.8, top_k=5, top_p=0.9, repetition_penalty=1.3)
    assert (model.generate(prompts, 8, batch_size=3, seeds=seeds, **kw)
            == model.generate(prompts, 8, batch_size=6, seeds=seeds, **kw))
    # A sample admitted later copies the prompt from a sibling still running: seed b stops at its
    # first token, so the third sample takes its slot while seed a's row runs on.
    alone = {s: model.generate([p], 8, temperature=1.0, seeds=[s])[0] for s in range(12)}
    a, b = next((a, b) for a in alone for b in alone if alone[b][0] not in alone[a])
    prefilled.clear()
    got = model.generate([p] * 3, 8, batch_size=2, temperature=1.0, seeds=[a, b, b + 100], stop_ids=[alone[b][0]])
    assert sum(prefilled) == len(p) and got[:2] == [alone[a], alone[b][:1]]


def test_stop_strings_end_rows_in_the_loop():
    model = tiny_model()
    prompts = ragged_prompts()
    decode = lambda ids: "".join(chr(65 + t % 26) for t in ids)  # noqa: E731  a stand-in tokenizer
    free = [recompute(model, p, 16) for p in prompts]
    stop = decode(free[0])[5:7]  # appears in row 0's text, and may appear in others

    def cut(ids, hit):  # the shortest prefix whose text shows a stop
        return next((ids[:k] for k in range(1, len(ids) + 1) if hit(decode(ids[:k]))), ids)

    got = model.generate(prompts, 16, stop_strings=[stop], decode=decode)
    assert got == [cut(f, lambda s: stop in s) for f in free] and len(got[0]) <= 7
    pattern = re.compile(r"[A-H][A-H]")
    got = model.generate(prompts, 16, stop_strings=["ZZZ", pattern], decode=decode)
    assert got == [cut(f, lambda s: "ZZZ" in s or pattern.search(s)) for f in free]
    assert any(len(r) < 16 for r in got) and any(len(r) == 16 for r in got)
    with pytest.raises(ValueError, match="stop_strings need decode"):
        model.generate(prompts, 4, stop_strings=["x"])


def test_a_small_cache_budget_takes_fewer_rows_at_once(monkeypatch):
    model = tiny_model()
    prompts = ragged_prompts()
    expected = [recompute(model, p, 6) for p in prompts]
    # room for two slots of the longest prompt + 6 new tokens (2 layers x k, v x 2 heads x 32 x 4 bytes)
    monkeypatch.setattr(model_module, "KV_CACHE_BYTES", 2 * (30 + 6) * 2 * 2 * 2 * 32 * 4)
    allocated = []
    monkeypatch.setattr(model_module, "KVCache", lambda *a: allocated.append(a) or KVCache(*a))
    assert model.generate(prompts, 6, batch_size=16) == expected and allocated[0][1] == 2


def test_compiled_decode_step_gives_the_same_ids():
    model = tiny_model()
    prompts = ragged_prompts()
    eager = model.generate(prompts, 10, batch_size=3)
    assert model.generate(prompts, 10, batch_size=3, compile=True) == eager


def test_progress_lines(monkeypatch, capsys):
    monkeypatch.setattr(model_module, "PROGRESS_EVERY", 0.0)
    model = tiny_model()
    list(model.stream(ragged_prompts()[:3], 4, batch_size=2, progress="demo"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("demo: 3/3 done, ") and "tokens/s" in lines[-1] and "s left" in lines[-1]
    assert lines[0].startswith("demo: 0/3 done")


def test_sampling_draws_from_the_processed_distribution():
    model = tiny_model()
    ids = torch.randint(0, 64, (2, 4))
    greedy = model.generate(ids, 8)
    assert torch.equal(model.generate(ids, 8, temperature=1.0, top_k=1), greedy)
    assert torch.equal(model.generate(ids, 8, temperature=0.7, top_p=1e-6), greedy)
    torch.manual_seed(1)
    a = model.generate(ids, 8, temperature=1.0)
    torch.manual_seed(1)
    assert torch.equal(model.generate(ids, 8, temperature=1.0), a) and not torch.equal(a, greedy)
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]]).repeat(20000, 1)
    freq = torch.bincount(model_module.sample(logits, temperature=1.0), minlength=4) / 20000
    assert torch.allclose(freq, logits[0].softmax(-1), atol=0.015)  # the inverse-CDF draw is unbiased
    gens = [torch.Generator().manual_seed(s) for s in range(20000)]
    freq = torch.bincount(model_module.sample(logits, temperature=1.0, generators=gens), minlength=4) / 20000
    assert torch.allclose(freq, logits[0].softmax(-1), atol=0.015)
    assert set(model_module.sample(logits[:2000], temperature=1.0, top_k=2).tolist()) == {2, 3}
    nucleus = model_module.sample(logits[:2000], temperature=1.0, top_p=0.7)  # p(3)=.64, p(2)=.24: {3, 2}
    assert set(nucleus.tolist()) == {2, 3}


@pytest.mark.parametrize("temperature,top_k,scale", [(0.0, 20, 3.0), (0.7, 20, 3.0), (0.7, None, 8.0),
                                                     (0.7, None, 0.1)])
def test_logits_processing_matches_transformers(temperature, top_k, scale):
    from transformers.generation.logits_process import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor,
                                                        TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)
    torch.manual_seed(0)
    # 2,000 logits: peaked ones keep their nucleus within the 1,024 most likely, flat ones do not
    logits, ids = scale * torch.randn(6, 2000), torch.randint(0, 2000, (6, 12))
    seen = torch.zeros(6, 2000, dtype=torch.bool).scatter_(1, ids, True)
    hf = [RepetitionPenaltyLogitsProcessor(1.1)]  # the official instruct generation_config's settings
    if temperature:
        hf += [TemperatureLogitsWarper(temperature)] + ([TopKLogitsWarper(top_k)] if top_k else [])
        hf += [TopPLogitsWarper(0.8)]
    expected = LogitsProcessorList(hf)(ids, logits.clone())
    got = model_module.process_logits(logits, temperature, top_k=top_k, top_p=0.8, repetition_penalty=1.1,
                                      seen=seen)
    assert torch.equal(torch.isinf(got), torch.isinf(expected))
    assert torch.allclose(got[~torch.isinf(got)], expected[~torch.isinf(expected)], atol=1e-6)
    assert (got != logits / (temperature or 1)).any()  # the processors did something
    kept = (~torch.isinf(got)).sum(-1)  # sampling: a nucleus of more than one token, wider than 1,024 if flat
    assert temperature == 0 or ((kept < 2000).all() and (kept > 1).any() and (kept > 1024).any() == (scale < 1))


def test_greedy_repetition_penalty_matches_transformers(tmp_path):
    hf = hf_model(**CONFIGS[1][1])
    ours = load_ours(hf, tmp_path)
    ids = torch.randint(0, 96, (2, 6))
    expected = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False,
                           repetition_penalty=1.3, pad_token_id=0, eos_token_id=None)
    got = ours.generate(ids, 24, repetition_penalty=1.3)
    assert torch.equal(got, expected) and not torch.equal(got, ours.generate(ids, 24))


def test_inference_dtype(monkeypatch):
    assert model_module.inference_dtype("cpu", "fp32") == torch.float32
    assert model_module.inference_dtype("cpu", "bf16") == torch.bfloat16
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert model_module.inference_dtype("cpu") == (torch.bfloat16 if native else torch.float32)
    with pytest.raises(ValueError, match="not one of auto, bf16, fp32"):
        model_module.inference_dtype("cpu", "fp16")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_matches_full_logits(reduction, monkeypatch):
    monkeypatch.setattr(model_module, "LOSS_CHUNK_LOGITS", 64 * 7)  # 7 rows per chunk: 5 uneven chunks
    model = tiny_model(tie_word_embeddings=False).train()
    ids = torch.randint(0, 64, (3, 11))
    targets = torch.randint(0, 64, (3, 11))
    targets[0, :4] = -100
    targets[2, 7] = -100
    loss = model(ids, targets, reduction=reduction)
    loss_grads = torch.autograd.grad(loss.sum(), list(model.parameters()))
    logits = model(ids)
    ref = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction=reduction)
    ref = ref.view(3, 11) if reduction == "none" else ref
    ref_grads = torch.autograd.grad(ref.sum(), list(model.parameters()))
    assert loss.shape == ref.shape and torch.allclose(loss, ref, atol=1e-5)
    if reduction == "none":
        assert (loss[0, :4] == 0).all() and loss[2, 7] == 0
    for g, r in zip(loss_grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(model(ids, targets, reduction=reduction), ref, atol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        model(ids, targets, reduction="avg")


def test_loss_never_keeps_the_full_logits(monkeypatch):
    monkeypatch.setattr(model_module, "LOSS_CHUNK_LOGITS", 96 * 7)  # 7 positions per chunk
    model = tiny_model(vocab_size=96).train()
    ids = torch.randint(0, 96, (3, 11))
    saved = []  # shapes autograd keeps for backward (checkpointed chunks keep nothing)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(tuple(t.shape)) or t, lambda t: t):
        loss = model(ids, ids)
    loss.backward()
    logit_rows = [s[0] for s in saved if len(s) == 2 and s[1] == 96 and s != (64, 96)]  # not the weight
    assert logit_rows and max(logit_rows) == 33 - 4 * 7  # only the last (5-position) chunk is kept
    assert model.embed_tokens.weight.grad.abs().sum() > 0


def test_bad_directories_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        Transformer.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json: missing"):
        Transformer.from_pretrained(tmp_path)
    hf = hf_model()
    good = tmp_path / "good"
    hf.save_pretrained(good)
    config = json.loads((good / "config.json").read_text())

    def broken(name, config_changes=None, drop_weights=False, state=None):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({**config, **(config_changes or {})}))
        if not drop_weights:
            if state is None:
                os.link(good / "model.safetensors", d / "model.safetensors")
            else:
                from safetensors.torch import save_file
                save_file(state, d / "model.safetensors")
        return d

    with pytest.raises(FileNotFoundError, match="no model.safetensors or model.safetensors.index.json"):
        Transformer.from_pretrained(broken("noweights", drop_weights=True))
    with pytest.raises(ValueError, match=r"config.json: model_type 'llama'"):
        Transformer.from_pretrained(broken("llama", {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(ValueError, match=r"model.safetensors: model.embed_tokens.weight has shape \[96, 64\] "
                                         r"but config.json implies \[128, 64\]"):
        Transformer.from_pretrained(broken("shape", {"vocab_size": 128}))
    state = {k: v.contiguous() for k, v in hf.state_dict().items() if "layers.1.mlp.up_proj" not in k
             and k != "lm_head.weight"}
    with pytest.raises(ValueError, match=r"lack 1 tensors \(e.g. layers.1.mlp.up_proj.weight\)"):
        Transformer.from_pretrained(broken("missing", state=state))
    with pytest.raises(ValueError, match="rope type 'longrope' is not supported"):
        Transformer.from_pretrained(broken("rope", {"rope_parameters": {"rope_type": "longrope"}}))
    (tmp_path / "badjson").mkdir()
    (tmp_path / "badjson" / "config.json").write_text("{")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        Transformer.from_pretrained(tmp_path / "badjson")
