"""eval_multiple.py through `eval.py multipl-e`: released MultiPL-E rows scored in the real sandbox
(correct -> passed, wrong -> failed, a fake pass -> failed), instruct replies made into programs,
and HumanEval translated into C++, Java and JavaScript, its canonical answers passing."""

import pytest

import eval as ev
import eval_multiple as mp
from conftest import cli, results, write_jsonl


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
        mp.check_toolchain(language, instruct)
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
    assert mp.score_multiple(problems, printing, "js") == ["failed: the program printed something"]
    whole = [{"task_id": "p", "completion": MULTIPLE["js"]["prompt"] + body}]  # instruct: the whole program
    assert mp.score_multiple(problems, whole, "js", instruct=True) == ["passed"]  # MultiPL-E's own rule


def test_multiple_instruct_reply_becomes_a_program():
    reply = ("Here it is:\n```java\nclass Problem {\n    public static long strlen(String string) {\n"
             "        return string.length();\n    }\n    public static void main(String[] args) {\n    }\n}\n```")
    problem = {**MULTIPLE["java"], "test": MULTIPLE["java"]["tests"]}
    program = mp.multiple_program(problem, mp.multiple_extract(reply, problem, "java"), "java", instruct=True)
    assert mp.sandbox.run(program, "java").status == ("passed" if have_toolchain("java") else "failed")
    if not have_toolchain("cpp", instruct=True):
        return
    cpp = {**MULTIPLE["cpp"], "test": MULTIPLE["cpp"]["tests"]}
    code = mp.multiple_extract("```cpp\nlong string_length(std::string s) {\n    return s.size();\n}\n"
                               "int main() {\n}\n```", cpp, "cpp")
    assert mp.sandbox.run(mp.multiple_program(cpp, code, "cpp", instruct=True), "cpp").status == "passed"


@pytest.mark.parametrize("language", ["cpp", "java", "js"])
def test_humaneval_translates_as_multiple(language):
    problems, skipped = mp.humaneval_multiple(language, ev.load_problems())
    assert len(problems) + skipped == 164 and len(problems) >= 110
    p = next(p for p in problems.values() if p["name"] == "HumanEval_53_add")
    indent, close = ("  ", "\n}") if language == "js" else ("    ", "")
    samples = [{"task_id": p["task_id"], "completion": f"{indent}return x {op} y;{close}"} for op in "+-"]  # ok, wrong
    verdicts = mp.score_multiple(problems, samples, language)
    assert verdicts[0] == "passed" or not have_toolchain(language)  # without javatuples Java cannot compile
    assert verdicts[1] != "passed"
