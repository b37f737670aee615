"""eval_suites.py through eval.py's subcommands: each family scores hand-written samples in
small fixtures of the official release formats (written here): correct -> passed, wrong ->
failed, hostile -> failed without harm. Programs run in the real sandbox."""
import base64
import json
import os
import pickle
import sqlite3

import numpy as np
import pytest

import eval as ev
import eval_math as em
import eval_suites as es


def cli(capsys, *argv):
    try:
        ev.main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def write_jsonl(path, rows):
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return str(path)


def results(samples_path):
    with open(str(samples_path) + "_results.jsonl") as f:
        return [json.loads(line) for line in f]


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
    assert json.loads(out.strip().splitlines()[-1]) == {"pass@1": pytest.approx(0.5), "plus_pass@1": pytest.approx(1 / 3),
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
    assert json.loads(out.strip().splitlines()[-1])["pass@1"] == pytest.approx(2 / 3)  # mean of 1 and 1/3


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


# ----------------------------------------------------------------------------- MultiPL-E

MULTIPLE = {  # humaneval-LANG.jsonl rows in MultiPL-E's format
    "cpp": {"name": "HumanEval_23_strlen", "language": "cpp", "stop_tokens": ["\n}"],
            "prompt": "#include<assert.h>\n#include<bits/stdc++.h>\n// Return length of given string\n"
                      "long string_length(std::string string) {\n",
            "tests": "}\nint main() {\n    auto candidate = string_length;\n    assert(candidate((\"\")) == (0));\n"
                     "    assert(candidate((\"abc\")) == (3));\n}\n"},
    "java": {"name": "HumanEval_23_strlen", "language": "java", "stop_tokens": ["\n    }\n"],
             "prompt": "import java.util.*;\nimport org.javatuples.*;\nclass Problem {\n    // Return length of given string\n"
                       "    public static long strlen(String string) {\n",
             "tests": "    }\n    public static void main(String[] args) {\n    assert(strlen((\"\")) == (0l));\n"
                      "    assert(strlen((\"abc\")) == (3l));\n    }\n\n}\n"},
    "js": {"name": "HumanEval_23_strlen", "language": "js", "stop_tokens": ["\nfunction ", "\n/*", "\n//", "\nconsole.log"],
           "prompt": "//Return length of given string\nfunction strlen(string){\n",
           "tests": "const assert = require('node:assert');\n\n\nfunction test() {\n  let candidate = strlen;\n"
                    "  assert.deepEqual(candidate(\"\"),0);\n  assert.deepEqual(candidate(\"abc\"),3);\n}\n\ntest();"},
}
COMPLETIONS = {  # correct, wrong, hostile (a fake pass: exit 0 before the tests)
    "cpp": ["    return string.size();", "    return 1;", "    _exit(0);"],
    "java": ["    return string.length();", "    return 1l;", "    System.exit(0); return 0l;"],
    "js": ["  return string.length;\n}", "  return 1;\n}", "  process.exit(0);\n}"],
}


def have_toolchain(language, instruct=False):
    """Whether this machine runs MultiPL-E's LANGUAGE programs (javatuples for Java, boost's headers
    for instruct C++: what .ci/run and speedrun.sh install with apt). Where it does not, as on a
    fresh machine, the command's one-sentence error naming the package is what gets checked."""
    try:
        es.check_toolchain(language, instruct)
        return True
    except ValueError as e:
        assert "apt-get install" in str(e), e
        return False


@pytest.mark.parametrize("language", ["cpp", "java", "js"])
def test_multiple_scores_programs_in_the_sandbox(tmp_path, capsys, language):
    problems = write_jsonl(tmp_path / f"humaneval-{language}.jsonl", [MULTIPLE[language]])
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval_23_strlen", "completion": c}
                                                 for c in COMPLETIONS[language]])
    code, out, err = cli(capsys, "multipl-e", "--language", language, "--problems", problems, "--samples", samples,
                         "--out", tmp_path / "m.json")
    if not have_toolchain(language):
        assert code == 1 and "apt-get install" in err
        return
    assert code == 0, err
    assert [r["passed"] for r in results(samples)] == [True, False, False]


def test_multiple_base_javascript_fails_on_any_output(tmp_path):
    problems = {"p": {**MULTIPLE["js"], "test": MULTIPLE["js"]["tests"]}}
    body = "  console.log('hi');\n  return string.length;\n}"
    printing = [{"task_id": "p", "completion": body}]
    assert es.score_multiple(problems, printing, "js") == ["failed: the program printed something"]
    whole = [{"task_id": "p", "completion": MULTIPLE["js"]["prompt"] + body}]  # instruct: the whole program
    assert es.score_multiple(problems, whole, "js", instruct=True) == ["passed"]  # MultiPL-E's own rule


def test_multiple_instruct_reply_becomes_a_program():
    reply = ("Here it is:\n```java\nclass Problem {\n    public static long strlen(String string) {\n"
             "        return string.length();\n    }\n    public static void main(String[] args) {\n    }\n}\n```")
    problem = {**MULTIPLE["java"], "test": MULTIPLE["java"]["tests"]}
    program = es.multiple_program(problem, es.multiple_extract(reply, problem, "java"), "java", instruct=True)
    assert es.sandbox.run(program, "java").status == ("passed" if have_toolchain("java") else "failed")
    if not have_toolchain("cpp", instruct=True):
        return
    cpp = {**MULTIPLE["cpp"], "test": MULTIPLE["cpp"]["tests"]}
    code = es.multiple_extract("```cpp\nlong string_length(std::string s) {\n    return s.size();\n}\n"
                               "int main() {\n}\n```", cpp, "cpp")
    assert es.sandbox.run(es.multiple_program(cpp, code, "cpp", instruct=True), "cpp").status == "passed"


@pytest.mark.parametrize("language", ["cpp", "java", "js"])
def test_humaneval_translates_as_multiple(language):
    problems, skipped = es.humaneval_multiple(language, ev.load_problems())
    assert len(problems) + skipped == 164 and len(problems) >= 110
    p = next(p for p in problems.values() if p["name"] == "HumanEval_53_add")
    body = {"cpp": "    return x + y;", "java": "    return x + y;", "js": "  return x + y;\n}"}[language]
    wrong = {"cpp": "    return x - y;", "java": "    return x - y;", "js": "  return x - y;\n}"}[language]
    samples = [{"task_id": p["task_id"], "completion": c} for c in (body, wrong)]
    verdicts = es.score_multiple(problems, samples, language)
    assert verdicts[0] == "passed" or not have_toolchain(language)  # without javatuples Java cannot compile
    assert verdicts[1] != "passed"


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


# ----------------------------------------------------------------------------- math (eval_math.py)

GSM8K = [  # openai/grade-school-math test.jsonl rows
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips to her "
                 "friends in May. How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
               "in April and May.\n#### 72"},
    {"question": "A shop sells 1,000 pens a day at $1.20 each. How much does it take in a day?",
     "answer": "1000 * 1.2 = <<1000*1.2=1200>>1200\n#### 1200"},
]
MATH = [  # hendrycks/math test rows as JSONL (problem, level, type, solution)
    {"problem": "Simplify $\\sqrt{\\frac{1}{4}}$.", "level": "Level 1", "type": "Algebra",
     "solution": "We have $\\sqrt{\\frac{1}{4}} = \\boxed{\\frac{1}{2}}$."},
    {"problem": "Expand $(x+1)^2$.", "level": "Level 2", "type": "Algebra",
     "solution": "$(x+1)^2 = \\boxed{x^2+2x+1}$."},
    {"problem": "Which is the largest? (A) 1 (B) 2 (C) 3", "level": "Level 1", "type": "Prealgebra",
     "solution": "3 is the largest, so the answer is $\\boxed{\\text{(C)}}$."},
    {"problem": "On what interval is $\\sqrt{x-2}/\\sqrt{5-x}$ defined?", "level": "Level 5", "type": "Algebra",
     "solution": "We need $x \\ge 2$ and $x < 5$: $\\boxed{[2,5)}$."},
    {"problem": "Is 7 prime?", "level": "Level 1", "type": "Number Theory", "solution": "Yes: $\\boxed{\\text{yes}}$."},
]


def test_math_scores_gsm8k_and_math_as_qwen_math_does(tmp_path, capsys):
    gsm = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    samples = write_jsonl(tmp_path / "g.jsonl", [
        {"task_id": "0", "completion": "In May she sold 24, so 48 + 24 = 72. The answer is 72."},
        {"task_id": "0", "completion": "She sold 48 + 48 = 96 clips."},                     # last number, wrong
        {"task_id": "1", "completion": "It takes $\\boxed{\\$1,200.00}$ dollars a day."},  # $, separator, .00
        {"task_id": "1", "completion": "It takes one thousand two hundred dollars. The answer is one thousand two hundred"},
        {"task_id": "1", "completion": "The answer is 1200 apples."}])   # a unit word
    code, out, err = cli(capsys, "math", "--dataset", "gsm8k", "--problems", gsm, "--samples", samples,
                         "--out", tmp_path / "g.json")
    assert code == 0, err
    assert [r["passed"] for r in results(samples)] == [True, False, True, True, True]
    assert json.loads(out.strip().splitlines()[-1]) == {"pass@1": 0.75}

    math_file = write_jsonl(tmp_path / "math.jsonl", MATH)
    samples = write_jsonl(tmp_path / "m.jsonl", [
        {"task_id": "0", "completion": "... so the answer is $\\boxed{0.5}$."},                   # sympy: 1/2 = 0.5
        {"task_id": "0", "completion": "... $\\boxed{\\frac{1}{3}}$."},
        {"task_id": "1", "completion": "$\\boxed{(x+1)(x+1)}$"},                                  # simplify
        {"task_id": "1", "completion": "$\\boxed{x^{9^{9^{9^{9}}}}}$"},                           # runs out of time
        {"task_id": "1", "completion": "$\\boxed{x^2+2x+2}$"},
        {"task_id": "2", "completion": "Comparing them, the answer is (C) 3."},                   # a letter
        {"task_id": "2", "completion": "The answer is \\boxed{B}"},
        {"task_id": "3", "completion": "Final Answer: The final answer is $[2, 5)$. I hope it is correct."},
        {"task_id": "3", "completion": "\\boxed{[2, 6)}"},
        {"task_id": "4", "completion": "\\boxed{\\text{Yes}}"},
        # Python for sympy's parse_expr: the official grader runs it (and so passes this); here it is text.
        {"task_id": "0", "completion": "\\boxed{__import__('sympy').Rational(1,2)}"}])
    code, out, err = cli(capsys, "math", "--dataset", "math", "--problems", math_file, "--samples", samples,
                         "--out", tmp_path / "m.json")
    assert code == 0, err
    assert [r["passed"] for r in results(samples)] == [True, False, True, False, False, True, False, True, False,
                                                        True, False]


# (prediction, gold, verdict) as Qwen2.5-Math's evaluation/grader.py math_equal gives it after
# parser.py strip_string; several are the grader's own examples (its _test_math_equal).
MATH_EQUAL_CASES = [
    ("\\frac{1}{2}", "0.5", True), ("0.5", "\\dfrac12", True), ("1/2", "\\frac{1}{2}", True),
    ("0.0833333333333333", "\\frac{1}{12}", True), ("\\frac{100}{3}", "33.3", False), ("0.7", "0.75", False),
    ("5", "5\\text{ cm}", True), ("5\\text{ dollars}", "5", True), ("12 cm", "12", True), ("5\\text{ cm}^2", "5", False),
    ("50\\%", "0.5", True), ("10", "1000", True), ("10%", "0.2", False),        # the gold also as x/100, x*100
    ("1,000", "1000", True), ("\\$1,000.00", "1000", True), ("1,000", "10", True), ("1,000", "100", False),
    ("[2,5)", "[2, 5)", True), ("(0.6,2.6667]", "(\\frac{3}{5},\\frac{8}{3}]", True), ("(1,4.5)", "(1,\\frac{9}{2})", True),
    ("(2,5)", "[2,5]", True),  # the grader compares interval ends part by part, not the brackets
    ("(1,2)", "(2,1)", False), ("\\{1,2\\}", "\\{2,1\\}", True),
    ("x^2+2x+1", "(x+1)^2", True), ("x^2+2x+2", "(x+1)^2", False), ("\\frac{x}{7}+\\frac{2}{7}", "\\frac{x+2}{7}", True),
    ("3\\sqrt{2}", "\\sqrt{18}", True), ("\\frac{\\sqrt{2}}{2}", "0.7071", True), ("\\frac{1+\\sqrt{5}}{2}", "2", False),
    ("x+1", "x+2n+1", False), ("2\\pi", "6.2832", False), ("63\\pi", "63 \\pi", True),
    ("-34x-45y+20z-100=0", "34x+45y-20z+100=0", True), ("y = 3+2x", "2x+3", True), ("x = y", "x = z", False),
    ("\\begin{pmatrix}0.5\\\\2\\end{pmatrix}", "\\begin{pmatrix}\\frac{1}{2}\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&5\\end{bmatrix}", False),
    ("seven", "7", True), ("twenty five", "25", True), ("C", "\\text{(C)}", True), ("B", "\\text{(C)}", False),
    ("\\sec^2(y)", "\\tan^2(y)+1", False),  # "sec" is a unit word to parser.py (seconds): \^2(y) is left
    ("(+5)(b+2)", "(a+5)(b+2)", True),      # and so is "a": both sides lose it
    ("\\frac{1}{3}", "\\frac{1}{2}", False), ("72", "96", False), ("", "0", False),
]


@pytest.mark.parametrize("pred, gold, verdict", MATH_EQUAL_CASES)
def test_math_equal_as_the_official_grader(pred, gold, verdict):
    assert em.math_equal(em.strip_string(pred), em.strip_string(gold)) is verdict


def test_math_equal_branches_strip_string_would_hide():
    assert em.math_equal("x = 0.5", "\\frac{1}{2}") and em.math_equal("\\frac{1}{2}", "k = 0.5")  # x = v vs v
    assert em.math_equal("2x+3y=6", "6=3y+2x") and not em.math_equal("2x+3y=6", "6=3y+2x+1")      # equations
    assert em.math_equal("A", "(A)") and em.math_equal("the choice (D)", "D") and not em.math_equal("(B)", "D")


def test_math_sympy_never_runs_an_answer():
    import sympy
    assert em._parse_expr("sqrt(2)/2 + x**2") == sympy.sqrt(2) / 2 + sympy.Symbol("x") ** 2
    for text in ("__import__('os')", "x.func", "(x).evalf()", "ｘ.＿＿class＿＿", "S('1')"):
        with pytest.raises(ValueError):
            em._parse_expr(text)
    names = em._namespace()  # what parse_expr may call: no route to eval, files or printing
    assert names["__builtins__"] == {} and "sqrt" in names and "Rational" in names
    assert not {"sympify", "S", "parse_expr", "lambdify", "preview", "var", "latex", "open", "eval", "chr"} & set(names)
    assert em._parse_expr("open(x)") == sympy.Function("open")(sympy.Symbol("x"))  # a name, not the builtin
    assert not em._symbolic_equal("__import__('sympy').Rational(1,2)", "\\frac{1}{2}")  # N() would sympify it


def test_math_grader_without_its_dependencies_says_what_to_install(tmp_path, monkeypatch):
    worker = tmp_path / "worker.py"  # a worker whose sympy cannot parse LaTeX (no ANTLR 4.11 runtime)
    worker.write_text("print('ImportError: LaTeX parsing requires the antlr4 Python package')\n")
    monkeypatch.setattr(em, "__file__", str(worker))
    with pytest.raises(ValueError, match=r"antlr4.*pip install -r requirements.txt"):
        em.Grader().equal("1", "1")


def test_math_answer_extraction():
    assert em.extract_answer("so $x = \\boxed{\\dfrac{\\sqrt{3}}{2}}$.") == "\\frac{\\sqrt{3}}{2}"
    assert em.extract_answer("first \\boxed{1}, then \\boxed{\\{1, \\{2\\}\\}}") == "{1,{2}}"  # the last, nested
    assert em.extract_answer("thus \\boxed 5$ apples") == "5"
    assert em.extract_answer("Final Answer: The final answer is $\\frac12$. I hope it is correct.") == "\\frac{1}{2}"
    assert em.extract_answer("We get 3.\nThe answer is: 1,234.") == "1,234"
    assert em.extract_answer("We have 2,500 and then 48 + 24 = 72 clips") == "72"
    assert em.extract_answer("答案是 7\n\n其余") == "7" and em.extract_answer("no number here") == ""
    assert em.prediction("The answer is (C) 3", "C") == "C"   # a letter gold re-reads the completion
    assert em.prediction("\\boxed{3}", "ACD") == ""           # several letters: only letters count


def test_math_word_numbers_as_word2number():
    from word2number import w2n

    def official(text):  # parser.py convert_word_number
        try:
            return str(w2n.word_to_num(text))
        except Exception:
            return text

    for text in ("seven", "Twenty-Five", "one hundred and five", "two million three thousand", "point five",
                 "one point two five", "one point twenty", "point", "five thousand", "thousand five",
                 "two thousand million", "nine hundred ninety nine thousand nine hundred ninety nine", "05",
                 "x", "1/2", "-5", "²", "one and a half", "a billion and one", "ten point zero"):
        assert em.word_number(text) == official(text), text


def test_math_loader_and_prompts(tmp_path, capsys):
    problems = em.load_math(write_jsonl(tmp_path / "math.jsonl", MATH), "math")
    assert [p["gold"] for p in problems.values()] == ["\\frac{1}{2}", "x^2+2x+1", "(C)", "[2,5)", "yes"]
    assert problems["4"]["question"] == "Is 7 prime? (Yes or No)"  # parse_question's hint for a yes/no gold
    assert em.load_math(write_jsonl(tmp_path / "g.jsonl", GSM8K), "gsm8k")["1"]["gold"] == "1200"
    with pytest.raises(ValueError, match="no single '#### N'"):
        em.load_math(write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "42"}]), "gsm8k")

    # utils.py construct_prompt, "cot": exemplars joined by two blank lines, no space after the last "Answer:"
    assert em.base_prompt("What is 1+1?", "gsm8k", 0) == "Question: What is 1+1?\nAnswer:"
    prompt = em.base_prompt("What is 1+1?", "math", 4)
    blocks = prompt.split("\n\n\nQuestion: ")
    assert len(blocks) == 5 and blocks[0].startswith("Question: Kevin Kangaroo") and blocks[-1].endswith("\nAnswer:")
    assert blocks[3].endswith("The answer is 0") and "Expand $(2z^2" not in prompt
    assert em.base_prompt("q", "gsm8k", 8).count("The answer is") == 8
    assert es.truncate("2 + 2 = 4. The answer is 4.\n\nQuestion: What", em.BASE_STOPS) == "2 + 2 = 4. The answer is 4."
    code, _, err = cli(capsys, "math", "--dataset", "math", "--problems", tmp_path / "math.jsonl",
                       "--model", tmp_path / "none", "--shots", 6, "--out", tmp_path / "x.json")
    assert code == 1 and "--shots 6" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- generation

def test_generation_path_writes_samples_and_scores_them(tmp_path, capsys, tok_dir):
    from conftest import random_checkpoint
    texts = [open(os.path.join(os.path.dirname(ev.__file__), f), encoding="utf-8").read() for f in ("eval_suites.py",)]
    random_checkpoint(tmp_path / "tiny", texts, 384)
    problems = write_jsonl(tmp_path / "cruxeval.jsonl", CRUX)
    code, out, err = cli(capsys, "cruxeval", "--model", tmp_path / "tiny", "--problems", problems, "--limit", 1,
                         "--max-new-tokens", 4, "--out", tmp_path / "c.json")
    assert code == 0, err
    headline = json.loads(out.strip().splitlines()[-1])
    assert set(headline) == {"pass@1"}
    with open(tmp_path / "c.samples.jsonl") as f:
        assert [json.loads(line)["task_id"] for line in f] == ["sample_0"]
    gsm = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)  # the few-shot base prompt, generated and judged
    code, out, err = cli(capsys, "math", "--model", tmp_path / "tiny", "--problems", gsm, "--limit", 1, "--shots", 2,
                         "--max-new-tokens", 4, "--out", tmp_path / "g.json")
    assert code == 0, err
    assert set(json.loads(out.strip().splitlines()[-1])) == {"pass@1"}
    with open(tmp_path / "g.samples.jsonl") as f:
        assert [json.loads(line)["task_id"] for line in f] == ["0"]


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
