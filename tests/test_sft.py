"""Tests for sft.py: the ChatML loss mask, masked loss, FIM mixing, a short SFT run.

The rendering oracle is the official Qwen2.5 tokenizer.json run by HF `tokenizers` on the
template text of FACTS §4.
Run: python -m pytest tests/test_sft.py
"""
import json
import os
import subprocess
import sys

import pytest
import tokenizers
import torch

import sft
from model import Transformer
from tokenizer import Tokenizer, official_files
from conftest import random_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."  # FACTS §4, copied
CONVERSATION = [
    {"role": "user", "content": "Write a function that adds two numbers."},
    {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"},
    {"role": "user", "content": "Now make it subtract, please.  "},
    {"role": "assistant", "content": "Sure:\n\n```python\ndef sub(a, b):\n    return a - b\n```\nDone."},
]


def template(messages):
    """FACTS §4's ChatML text, written out by hand."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


@pytest.fixture(scope="module")
def qwen():
    return Tokenizer.from_pretrained(official_files())


@pytest.fixture(scope="module")
def hf_qwen():
    return tokenizers.Tokenizer.from_file(os.path.join(official_files(), "tokenizer.json"))


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
        loss, n, _ = sft.pretrain.lm_loss(model, data.get_batch(indices))
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
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    rows, _, counts = sft.prepare_rows(records, tok, seq_len=128, val_fraction=0.0)
    assert counts["dropped_too_long"] == 1 and counts["train"] == 16

    def data_loss(m):
        with torch.no_grad():
            x, y = sft.ChatDataset(rows, tok).get_batch(range(16))
            return m(x, targets=y).item()

    before = data_loss(model)
    cfg = sft.SFTConfig(init=init, out=str(tmp_path / "out"), data=str(data), seq_len=128, max_steps=12,
                        fine_steps=6, batch_size=8, lr=1e-2, warmup=2, eval_every=1000, save_every=0,
                        log_every=100, dtype="fp32", val_fraction=0.0, fim_rate=0.2)
    sft.main(cfg)
    after = data_loss(Transformer.from_pretrained(cfg.out))
    assert after < before - 1.0, (before, after)
    assert os.path.isfile(os.path.join(cfg.out, "coarse", "model.safetensors"))  # the coarse phase's model
    fine = [json.loads(line) for line in open(os.path.join(cfg.out, "metrics.jsonl"))]
    assert len(fine) == 6
    capsys.readouterr()
    messages = sft.chat(sft.ChatConfig(model=cfg.out, prompt="Add 3 and 4.", max_new_tokens=12))
    printed = capsys.readouterr().out
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"] in printed
    assert printed.split("assistant> ", 1)[1] == messages[-1]["content"] + "\n"  # streamed once, in full


def test_cli_errors_are_one_sentence(small, tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "sft.py", *args], cwd=REPO, capture_output=True, text=True)
    r = run("--init", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and r.stderr.startswith("error: --init") and r.stderr.count("\n") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "not a conversation"}\n')
    r = run("--init", small[2], "--out", str(tmp_path / "o"), "--data", str(bad))
    assert r.returncode == 1 and f"{bad}:1 is not" in r.stderr and r.stderr.count("\n") == 1
    r = run("synth", "--inputs", str(tmp_path / "nothing_here"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "does not exist" in r.stderr and r.stderr.count("\n") == 1
    bad.write_text('{"messages": []}\n\n{"messages": [}\n')
    with pytest.raises(sft.pretrain.Fatal, match=f"^{bad}:3 is not valid JSON"):
        sft.load_conversations([str(bad)])
