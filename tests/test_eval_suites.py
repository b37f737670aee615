"""eval_suites.py through eval.py's subcommands: EvalPlus, CRUXEval and SQL score hand-written samples
in small fixtures of the official release formats (written here): correct -> passed, wrong ->
failed, hostile -> failed without harm. Programs run in the real sandbox. The shared generation
path and the report's figures too; MultiPL-E and math: test_eval_multiple.py, test_eval_math.py."""
import base64
import json
import os
import pickle
import sqlite3

import numpy as np
import pytest

import eval_suites as es
from conftest import cli, headline, jsonl, random_checkpoint, results, write_jsonl

HOSTILE_PY = "import os\nos._exit(0)\n"  # a fake pass: exits 0 before any test ran


# ----------------------------------------------------------------------------- EvalPlus

MBPP = [  # MbppPlus-*.jsonl rows; Mbpp/2's inputs are tuples stored as lists (mbpp_deserialize_inputs)
    {"task_id": "Mbpp/2", "prompt": '"""\nWrite a function to find the shared elements from the given two lists.\n"""\n',
     "entry_point": "similar_elements", "atol": 0,
     "canonical_solution": "\ndef similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
     "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]]], "plus_input": [[[1, 2, 3], [3, 2, 9]], [[], [1]]],
     "assertion": "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"},
    {"task_id": "Mbpp/900", "prompt": '"""\nWrite a function that returns the mean of a list.\n"""\n',
     "entry_point": "mean", "atol": 0, "canonical_solution": "\ndef mean(xs):\n    return sum(xs) / len(xs)\n",
     "base_input": [[[1.0, 2.0]]], "plus_input": [[[0.1, 0.2, 0.3]], [[0.25, 0.3]], [[1e9, 1.0]]], "assertion": ""},
]


def test_mbpp_scores_base_and_plus_as_evalplus(tmp_path, capsys):
    problems = write_jsonl(tmp_path / "MbppPlus.jsonl", MBPP)
    samples = write_jsonl(tmp_path / "s.jsonl", [
        # set-equality oracle: any order of the shared elements, a list instead of a tuple
        {"task_id": "Mbpp/2", "completion": "\ndef similar_elements(a, b):\n    return sorted(x for x in a if x in b)\n"},
        {"task_id": "Mbpp/2", "completion": "\ndef similar_elements(a, b):\n    return (a[0],)\n"},      # wrong
        {"task_id": "Mbpp/2", "completion": HOSTILE_PY},                                                    # hostile
        # floats: a different summation order is within EvalPlus's atol 1e-6 ...
        {"task_id": "Mbpp/900", "completion": "\ndef mean(xs):\n    return sum(reversed(xs)) / len(xs)\n"},
        # ... right on the base test, off on a plus test: base passes, plus fails
        {"task_id": "Mbpp/900", "completion": "\ndef mean(xs):\n    return round(sum(xs) / len(xs), 1)\n"},
        {"task_id": "Mbpp/900", "completion": "\ndef mean(xs):\n    while True:\n        pass\n"},       # hangs
    ])
    code, out, _ = cli(capsys, "mbpp", "--problems", problems, "--samples", samples, "--out", tmp_path / "m.json")
    assert code == 0
    rows = results(samples)
    assert [r["passed"] for r in rows] == [True, False, False, True, True, False]
    assert [r["plus_passed"] for r in rows] == [True, False, False, True, False, False]
    assert headline(out) == {"pass@1": pytest.approx(0.5), "plus_pass@1": pytest.approx(1 / 3),
                                                         "passed": 3, "plus_passed": 2}


def test_mbpp_deserialized_inputs_are_tuples():
    assert es.mbpp_inputs("Mbpp/2", [[[1, 2], [3]]]) == [[(1, 2), (3,)]]
    assert es.mbpp_inputs("Mbpp/252", [["1+2j"]]) == [[1 + 2j]]
    assert es.mbpp_inputs("Mbpp/580", [[[1, [2, 3]]]]) == [((1, (2, 3)),)]
    assert es.mbpp_inputs("Mbpp/3", [[7]]) == [[7]]


def harness_namespace():
    """The functions of EVALPLUS_HARNESS, without running its phases."""
    source = es.EVALPLUS_HARNESS[:es.EVALPLUS_HARNESS.index("_g = {}")]
    ns = {"_INPUTS": base64.b64encode(pickle.dumps([])).decode()}
    exec(source, ns)
    return ns


@pytest.mark.parametrize("a, b, atol", [
    (1.0, 1.0 + 1e-7, 1e-6), (1.0, 1.1, 1e-6), ([1.0, 2.0], [1.0, 2.0000001], 1e-6), ([1.0, 2.0], [1.0, 2.1], 1e-6),
    ([[1.0, 2.0]], [[1.0], [1.0]], 1e-6), ([[1.0], [2.0]], [[1.0, 1.0], [2.0, 2.0]], 1e-6), (float("inf"), float("inf"), 1e-6),
    (float("nan"), float("nan"), 1e-6), (1e9, 1e9 + 50, 1e-6), (1e9, 1e9 + 500, 1e-6), ([1, 2, 3], [1.0, 2.0, 3.0], 0.1),
    (3 + 1j, 3 + 1.0000001j, 1e-6), ([True, 2], [1.0, 2.0], 1e-6),
])
def test_allclose_is_numpys(a, b, atol):
    assert harness_namespace()["_allclose"](a, b, atol) == bool(np.allclose(a, b, rtol=1e-07, atol=atol))


@pytest.mark.parametrize("a, b", [([[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, 4.0]]), (["a"], ["a"]), ([None], [1.0])])
def test_allclose_raises_where_numpy_cannot_compare(a, b):
    with pytest.raises((ValueError, TypeError)):
        harness_namespace()["_allclose"](a, b, 1e-6)


def test_humaneval_plus_uses_the_find_zero_oracle(tmp_path, capsys):
    prompt = ("import math\n\ndef poly(xs, x):\n    return sum(c * math.pow(x, i) for i, c in enumerate(xs))\n\n"
              "def find_zero(xs):\n    \"\"\"A zero of the polynomial xs.\"\"\"\n")
    bisect = ("    lo, hi = -1e3, 1e3\n    for _ in range(200):\n        mid = (lo + hi) / 2\n"
              "        lo, hi = (mid, hi) if poly(xs, lo) * poly(xs, mid) > 0 else (lo, mid)\n    return lo\n")
    problem = {"task_id": "HumanEval/32", "prompt": prompt, "entry_point": "find_zero", "atol": 1e-6,
               "canonical_solution": bisect, "base_input": [[[1.0, 2.0]]], "plus_input": [[[-6.0, 11.0, -6.0, 1.0]]]}
    problems = write_jsonl(tmp_path / "HumanEvalPlus.jsonl", [problem])
    samples = write_jsonl(tmp_path / "s.jsonl", [
        {"task_id": "HumanEval/32", "completion": "    return -xs[0] / xs[1] if len(xs) == 2 else 3.0\n"},  # another zero
        {"task_id": "HumanEval/32", "completion": "    return 0.5\n"}])
    code, out, _ = cli(capsys, "humaneval", "--plus", "--problems", problems, "--samples", samples,
                       "--out", tmp_path / "h.json")
    assert code == 0
    assert [(r["passed"], r["plus_passed"]) for r in results(samples)] == [(True, True), (False, False)]


def test_humaneval_plus_without_problems_names_the_download(tmp_path, capsys):
    code, _, err = cli(capsys, "humaneval", "--plus", "--samples", tmp_path / "x.jsonl")
    assert code == 1 and "HumanEvalPlus" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- CRUXEval

CRUX = [{"id": "sample_0", "code": "def f(s):\n    return s[::-1] + 'a'", "input": "'xy'", "output": "'yxa'"},
        {"id": "sample_1", "code": "def f(n):\n    return [i * i for i in range(n)]", "input": "3", "output": "[0, 1, 4]"}]


def test_cruxeval_output_and_input_prediction(tmp_path, capsys):
    problems = write_jsonl(tmp_path / "cruxeval.jsonl", CRUX)
    out_samples = write_jsonl(tmp_path / "o.jsonl", [
        {"task_id": "sample_0", "completion": "'yxa'"}, {"task_id": "sample_0", "completion": "'xya'"},
        {"task_id": "sample_1", "completion": "f(3)"},                        # calls f on the input: rejected unrun
        {"task_id": "sample_1", "completion": "__import__('os')._exit(0)"}])  # hostile
    code, out, _ = cli(capsys, "cruxeval", "--task", "output", "--problems", problems, "--samples", out_samples,
                       "--out", tmp_path / "c.json")
    assert code == 0 and [r["passed"] for r in results(out_samples)] == [True, False, False, False]
    in_samples = write_jsonl(tmp_path / "i.jsonl", [
        {"task_id": "sample_0", "completion": "f('xy')"}, {"task_id": "sample_1", "completion": "f(3)"},
        {"task_id": "sample_1", "completion": "3"},                           # no call of f
        {"task_id": "sample_1", "completion": "f(2)"}])
    code, out, _ = cli(capsys, "cruxeval", "--task", "input", "--problems", problems, "--samples", in_samples,
                       "--out", tmp_path / "c.json")
    assert [r["passed"] for r in results(in_samples)] == [True, True, False, False]
    assert headline(out)["pass@1"] == pytest.approx(2 / 3)  # mean of 1 and 1/3


def test_cruxeval_answer_extraction_is_the_official_one():
    gen = "Step 1 ...\n[/THOUGHT]\n[ANSWER]\nassert f(\"hi\") == \"bhihia\"\n"
    assert es.crux_answer(gen, "output") == '"bhihia"'
    assert es.crux_answer("[ANSWER]\nassert f(16) == 17\n", "input") == "f(16)"
    assert es.crux_prompt(CRUX[0], "output").endswith("[PYTHON]\ndef f(s):\n    return s[::-1] + 'a'\n"
                                                       "assert f('xy') == ??\n[/PYTHON]\n[THOUGHT]\n")


def test_cruxeval_corpus_default_is_verified_and_labelled():
    problems = es.corpus_cruxeval(limit=6)
    assert len(problems) == 6 and all(pid.startswith("corpus/") for pid in problems)
    samples = [{"task_id": t, "completion": p["output"]} for t, p in problems.items()]
    assert es.score_cruxeval(problems, samples, "output") == ["passed"] * 6
    wrong = [{"task_id": t, "completion": repr(("not", p["output"]))} for t, p in problems.items()]
    assert "passed" not in es.score_cruxeval(problems, wrong, "output")


# ----------------------------------------------------------------------------- SQL

def spider(tmp_path, bird=False):
    db_dir = tmp_path / ("dev_databases" if bird else "database") / "shop"
    db_dir.mkdir(parents=True)
    db = sqlite3.connect(db_dir / "shop.sqlite")
    db.executescript("CREATE TABLE item (id INTEGER, name TEXT, price REAL);"
                     "INSERT INTO item VALUES (1, 'pen', 1.5), (2, 'cup', 4.0), (3, 'map', 9.0);")
    db.commit()
    db.close()
    q = {"db_id": "shop", "question": "Names and prices of items under 5?"}
    q.update({"SQL": "SELECT name, price FROM item WHERE price < 5", "evidence": "under 5: price < 5"} if bird
             else {"query": "SELECT name, price FROM item WHERE price < 5"})
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([q]))
    return str(path), db_dir / "shop.sqlite"


def test_sql_execution_accuracy_and_hostile_queries(tmp_path, capsys):
    questions, db = spider(tmp_path)
    before = db.read_bytes()
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "0", "completion": c} for c in (
        "SELECT price, name FROM item WHERE price < 5 ORDER BY id DESC",   # columns and rows reordered: same table
        "SELECT name, price FROM item",                                    # wrong
        "DROP TABLE item",                                                  # hostile: a write
        "ATTACH DATABASE 'x.db' AS x",                                      # hostile: a new file
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c")])  # never ends
    code, out, _ = cli(capsys, "sql", "--problems", questions, "--samples", samples, "--timeout", 2,
                       "--out", tmp_path / "q.json")
    assert code == 0
    rows = results(samples)
    assert [r["passed"] for r in rows] == [True, False, False, False, False]
    assert rows[4]["result"] == "timed out"
    assert db.read_bytes() == before and not os.path.exists("x.db")


def test_sql_prompt_and_bird_comparison(tmp_path):
    questions, _ = spider(tmp_path, bird=True)
    problems, mode = es.load_sql(questions)
    assert mode == "bird"
    prompt = es.sql_prompt(problems["0"], mode)
    assert prompt.startswith("CREATE TABLE item (id INTEGER, name TEXT, price REAL);\n\n-- External Knowledge: under 5")
    assert prompt.endswith("Question: Names and prices of items under 5?\n")
    # BIRD compares sets of rows: column order matters there
    samples = [{"task_id": "0", "completion": "SELECT name, price FROM item WHERE price < 4.5"},
               {"task_id": "0", "completion": "SELECT price, name FROM item WHERE price < 5"}]
    assert es.score_sql(problems, samples, mode) == ["passed", "failed: different result"]
    assert es.sql_completion("name FROM item;\nQuestion: more", instruct=False) == "SELECT name FROM item "
    assert es.sql_completion("```sql\nSELECT a\nFROM t;\n```", instruct=True) == "SELECT a FROM t"


# ----------------------------------------------------------------------------- generation

def test_generation_path_writes_samples_and_scores_them(tmp_path, capsys, tok_dir):
    random_checkpoint(tmp_path / "tiny", [open(es.__file__, encoding="utf-8").read()], 384)
    problems = write_jsonl(tmp_path / "cruxeval.jsonl", CRUX)
    code, out, err = cli(capsys, "cruxeval", "--model", tmp_path / "tiny", "--problems", problems, "--limit", 1,
                         "--max-new-tokens", 4, "--out", tmp_path / "c.json")
    assert code == 0, err
    assert set(headline(out)) == {"pass@1"}
    assert [s["task_id"] for s in jsonl(tmp_path / "c.samples.jsonl")] == ["sample_0"]
    from test_eval_math import GSM8K
    gsm = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)  # the few-shot base prompt, generated and judged
    code, out, err = cli(capsys, "math", "--model", tmp_path / "tiny", "--problems", gsm, "--limit", 1, "--shots", 2,
                         "--max-new-tokens", 4, "--out", tmp_path / "g.json")
    assert code == 0, err
    assert set(headline(out)) == {"pass@1"}
    assert [s["task_id"] for s in jsonl(tmp_path / "g.samples.jsonl")] == ["0"]


def test_reported_figures_follow_the_checkpoint_named():
    """One table of the report's figures: eval.py shows them for an official checkpoint's directory,
    report.py for the smallest checkpoint of the kind evaluated (base or instruct)."""
    import report
    assert es.reported("mbpp", "models/Qwen2.5-Coder-1.5B/") == (69.2, 58.6)               # Table 5
    assert es.reported("humaneval", "Qwen2.5-Coder-0.5B-Instruct") == (61.6,)              # Table 16
    assert es.reported("humaneval_plus", "qwen2.5-coder-1.5b-instruct") == (70.7, 66.5)
    assert es.reported("mbpp", "out/sft") is None and es.reported("sql", "Qwen2.5-Coder-1.5B") is None
    assert report.reported("humaneval", instruct=False) == "Qwen2.5-Coder-0.5B: HumanEval 28.0% (Table 5)"
    assert report.reported("cruxeval_output", instruct=False) == "Qwen2.5-Coder-1.5B: Output-CoT 34.6% (Table 11)"
    assert report.reported("cruxeval_output", instruct=True) == "–"  # no instruct figure at these sizes
