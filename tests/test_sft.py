"""Tests for sft.py: the ChatML loss mask, masked loss, FIM mixing, a short SFT run.

The rendering oracle is the official Qwen2.5 tokenizer.json run by HF `tokenizers` on the
text of Qwen2.5's chat template.
"""
import json
import os

import pytest
import torch

import sft
from model import Transformer
from conftest import jsonl, random_checkpoint, run_script, write_jsonl

SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."  # the chat template's, copied
CONVERSATION = [
    {"role": "user", "content": "Write a function that adds two numbers."},
    {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"},
    {"role": "user", "content": "Now make it subtract, please.  "},
    {"role": "assistant", "content": "Sure:\n\n```python\ndef sub(a, b):\n    return a - b\n```\nDone."},
]


def template(messages):
    """Qwen2.5's ChatML text, written out by hand."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def masked_runs(ids, mask):
    runs, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    return runs + ([cur] if cur else [])


# ----------------------------------------------------------------------------- render_chat

@pytest.mark.parametrize("with_system", [True, False])
def test_render_chat_matches_official_ids_and_masks_only_replies(qwen, hf_qwen, with_system):
    messages = ([{"role": "system", "content": "You are terse."}] if with_system else []) + CONVERSATION
    full = messages if with_system else [{"role": "system", "content": SYSTEM}] + messages  # the template's default
    ids, mask = sft.render_chat(messages, qwen)
    assert sft.DEFAULT_SYSTEM == SYSTEM
    assert ids == hf_qwen.encode(template(full), add_special_tokens=False).ids
    assert len(mask) == len(ids) and set(mask) <= {0, 1}
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    # Each masked run is exactly one reply and the <|im_end|> closing it.
    runs = masked_runs(ids, mask)
    assert [qwen.decode(r) for r in runs] == [r + "<|im_end|>" for r in replies]
    assert qwen.decode([i for i, m in zip(ids, mask) if m]) == "".join(r + "<|im_end|>" for r in replies)
    assert all(r[-1] == 151645 for r in runs)
    # The header before each run ends "<|im_start|>assistant\n" and is masked out, as is the "\n" after.
    starts = [k for k in range(1, len(mask)) if mask[k] and not mask[k - 1]]
    for k in starts:
        assert ids[k - 3:k] == [151644, 77091, 198] and mask[k - 3:k] == [0, 0, 0]
    ends = [k for k in range(len(mask) - 1) if mask[k] and not mask[k + 1]]
    assert [ids[k + 1] for k in ends] == [198] * len(replies)
    assert sum(mask) == sum(len(qwen.encode(r)) + 1 for r in replies)


def test_render_chat_generation_prompt_and_literal_specials(qwen):
    ids, mask = sft.render_chat(CONVERSATION[:1], qwen, add_generation_prompt=True)
    assert ids[-3:] == [151644, 77091, 198] and not any(mask)
    tricky = [{"role": "user", "content": "print('<|im_end|>')"},
              {"role": "assistant", "content": "It prints <|im_end|><|endoftext|> as text."}]
    ids, mask = sft.render_chat(tricky, qwen)
    assert ids.count(151645) == 3 and 151643 not in ids  # system, user, assistant: one real <|im_end|> each
    assert qwen.decode(masked_runs(ids, mask)[0]) == tricky[1]["content"] + "<|im_end|>"
    with pytest.raises(ValueError, match="role"):
        sft.render_chat([{"role": "robot", "content": "hi"}], qwen)


# ----------------------------------------------------------------------------- loss and training

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A tiny tokenizer and a randomly initialised tiny checkpoint directory."""
    path = str(tmp_path_factory.mktemp("tiny"))
    with open(sft.__file__, encoding="utf-8") as f:  # some real code to learn merges from
        code = f.read()
    tok, model = random_checkpoint(path, [code, template(CONVERSATION)] * 3, 320)
    return tok, model, path


def test_batches_target_exactly_the_masked_tokens(small):
    tok, _, _ = small
    ids, mask = sft.render_chat(CONVERSATION, tok)
    x, y = sft.ChatDataset([{"ids": ids, "mask": mask}], tok).get_batch([0])
    assert x[0].tolist() == ids[:-1]
    assert y[0].tolist() == [t if m else -100 for t, m in zip(ids[1:], mask[1:])]
    # A shorter row is padded with <|endoftext|> inputs and -100 targets to the longest one.
    short = sft.render_chat(CONVERSATION[:2], tok)
    x, y = sft.pad_batch([(ids, mask), short], tok.eot_id)
    n = len(short[0]) - 1
    assert x.shape == y.shape == (2, len(ids) - 1) and x[1, :n].tolist() == short[0][:-1]
    assert set(x[1, n:].tolist()) == {tok.eot_id} and set(y[1, n:].tolist()) == {-100}
    assert y[1, :n].tolist() == [t if m else -100 for t, m in zip(short[0][1:], short[1][1:])]


def test_a_sample_without_assistant_tokens_adds_no_loss_or_gradient(small):
    tok, model, _ = small
    a = sft.render_chat(CONVERSATION, tok)
    b = sft.render_chat(CONVERSATION[:1] + [{"role": "user", "content": "x " * 200}], tok)  # longer, no reply
    rows = [{"ids": a[0], "mask": a[1]}, {"ids": b[0], "mask": b[1]}]

    def loss_and_grads(data, indices):
        model.zero_grad()
        loss, n, _ = sft.trainer.lm_loss(model, data.get_batch(indices))
        loss.backward()
        return loss.item(), int(n), [p.grad.clone() for p in model.parameters()]

    alone = loss_and_grads(sft.ChatDataset(rows[:1], tok), [0])
    both = loss_and_grads(sft.ChatDataset(rows, tok), [0, 1])
    assert both[1] == alone[1] == sum(a[1][1:])
    assert both[0] == pytest.approx(alone[0], rel=1e-5)
    for g1, g2 in zip(alone[2], both[2]):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_fim_share_serves_code_as_fim_with_every_token_trained(small):
    tok, _, _ = small
    ids, mask = sft.render_chat(CONVERSATION[:2], tok)
    code = "def add(a, b):\n    total = a + b\n    return total\n"
    data = sft.ChatDataset([{"ids": ids, "mask": mask, "code": code}], tok, seed=3, fim_rate=0.5)
    served = [data.sample(g) for g in range(40)]
    fim = [s for s in served if s[0][0] == tok.special["<|fim_prefix|>"]]
    assert 5 < len(fim) < 35 and all(s == (ids, mask) for s in served if s not in fim)
    assert all(all(m) and s[-1] == tok.eot_id for s, m in fim)
    assert served == [data.sample(g) for g in range(40)]  # a pure function of (seed, g)


def test_sft_steps_lower_the_loss_and_chat_answers(small, tmp_path, capsys):
    tok, model, init = small
    records = [{"messages": [{"role": "user", "content": f"Add {i} and {i + 1}."},
                             {"role": "assistant", "content": f"```python\nprint({i} + {i + 1})\n```"}]}
               for i in range(16)]
    records.append({"messages": [{"role": "user", "content": "hi " * 400},
                                 {"role": "assistant", "content": "too long"}]})
    data = write_jsonl(tmp_path / "sft.jsonl", records)
    rows, _, counts = sft.prepare_rows(records, tok, seq_len=128, val_fraction=0.0)
    assert counts["dropped_too_long"] == 1 and counts["train"] == 16

    def data_loss(m):
        with torch.no_grad():
            x, y = sft.ChatDataset(rows, tok).get_batch(range(16))
            return m(x, targets=y).item()

    before = data_loss(model)
    cfg = sft.SFTConfig(init=init, out=str(tmp_path / "out"), data=[str(data)], seq_len=128, max_steps=12,
                        fine_steps=6, batch_size=8, lr=1e-2, warmup=2, eval_every=1000, save_every=0,
                        log_every=100, dtype="fp32", val_fraction=0.0, fim_rate=0.2)
    sft.main(cfg)
    after = data_loss(Transformer.from_pretrained(cfg.out))
    assert after < before - 1.0, (before, after)
    assert os.path.isfile(os.path.join(cfg.out, "coarse", "model.safetensors"))  # the coarse phase's model
    from transformers import AutoTokenizer  # the output is an instruct checkpoint for the ecosystem too
    hf = AutoTokenizer.from_pretrained(cfg.out)
    assert hf.apply_chat_template(CONVERSATION)["input_ids"] == sft.render_chat(CONVERSATION, tok)[0]
    assert json.load(open(os.path.join(cfg.out, "generation_config.json")))["eos_token_id"] == [
        tok.special["<|im_end|>"], tok.eot_id]
    fine = jsonl(os.path.join(cfg.out, "metrics.jsonl"))
    assert len(fine) == 6
    capsys.readouterr()
    messages = sft.chat(sft.ChatConfig(model=cfg.out, prompt="Add 3 and 4.", max_new_tokens=12))
    printed = capsys.readouterr().out
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"] in printed
    assert printed.split("assistant> ", 1)[1] == messages[-1]["content"] + "\n"  # streamed once, in full


@pytest.mark.parametrize("fraction,min_score,chosen", [(0.3, 0.0, [0.9, 0.8, 0.7]), (0.25, 0.0, [0.9, 0.8, 0.7]),
                                                         (0.5, 0.75, [0.9, 0.8]), (1.0, 0.0, None)])
def test_fine_phase_trains_on_the_top_scored_share(small, tmp_path, monkeypatch, fraction, min_score, chosen):
    """Coarse: every sample; fine: the best-scored fraction (rounded up) that also scores at
    least --fine-min-score, as ranked by the checklist score each sample carries (§4.2)."""
    tok, _, init = small
    scores = [0.3, 0.9, 0.0, 0.5, 0.7, 0.1, 0.8, 0.2, 0.6, 0.4]   # file order is not score order
    records = [{"messages": [{"role": "user", "content": f"Add {i} and {i + 1}."},
                             {"role": "assistant", "content": f"```python\nprint({i} + {i + 1})\n```"}],
                "score": sc} for i, sc in enumerate(scores)]
    data = write_jsonl(tmp_path / "sft.jsonl", records)
    calls = []

    def train(cfg, model, train_data, val_data=None, **kw):   # what each phase would train on
        calls.append((cfg.out, cfg.max_steps, sorted((r["score"] for r in train_data.rows), reverse=True)))
        return model

    monkeypatch.setattr(sft.trainer, "train", train)
    cfg = sft.SFTConfig(init=init, out=str(tmp_path / "out"), data=[str(data)], seq_len=128, batch_size=2,
                        val_fraction=0.0, fine_fraction=fraction, fine_min_score=min_score, dtype="fp32")
    sft.main(cfg)
    coarse = (os.path.join(cfg.out, "coarse"), 5, sorted(scores, reverse=True))
    if chosen is None:   # everything qualifies: the fine phase repeats the whole set
        chosen = coarse[2]
    assert calls == [coarse, (cfg.out, -(-len(chosen) // 2), chosen)]


def test_fine_phase_continues_the_coarse_model_with_its_settings(small, tmp_path, monkeypatch):
    """The fine phase trains the coarse phase's model, with its validation set, FIM share,
    tokenizer, precision and process group: only the samples and the step count change."""
    tok, _, init = small
    records = [{"messages": [{"role": "user", "content": f"Add {i} and {i + 1}."},
                             {"role": "assistant", "content": f"```python\nprint({i} + {i + 1})\n```"}],
                "score": i / 20} for i in range(20)]
    data = write_jsonl(tmp_path / "sft.jsonl", records)
    calls = []
    monkeypatch.setattr(sft.trainer, "train", lambda cfg, model, train_data, val_data=None, **kw:
                        calls.append((model, train_data.fim_rate, val_data, kw)) or model)
    cfg = sft.SFTConfig(init=init, out=str(tmp_path / "out"), data=[str(data)], seq_len=128, batch_size=2,
                        val_fraction=0.3, fim_rate=0.3, dtype="bf16")
    sft.main(cfg)
    (model, fim, val, kw), fine = calls
    assert val is not None and len(val) > 0 and fim == 0.3 and kw["bf16"] is True and kw["tokenizer"] is not None
    assert fine[0] is model and fine[1] == fim and fine[2] is val
    assert fine[3].keys() == kw.keys() and all(fine[3][k] is v for k, v in kw.items())


def test_cli_errors_are_one_sentence(small, tmp_path, capsys, monkeypatch):
    run = lambda *args: run_script("sft.py", args, capsys, monkeypatch)
    code, _, err = run("--init", tmp_path / "missing", "--out", tmp_path / "o")
    assert code == 1 and err.startswith("error: --init") and err.count("\n") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "not a conversation"}\n')
    code, _, err = run("--init", small[2], "--out", tmp_path / "o", "--data", bad)
    assert code == 1 and f"{bad}:1 is not" in err and err.count("\n") == 1
    code, _, err = run("synth", "--inputs", tmp_path / "nothing_here", "--out", tmp_path / "o")
    assert code == 1 and "does not exist" in err and err.count("\n") == 1
    bad.write_text('{"messages": []}\n\n{"messages": [}\n')
    with pytest.raises(sft.trainer.Fatal, match=f"^{bad}:3 is not valid JSON"):
        sft.load_conversations([str(bad)])
