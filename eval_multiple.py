"""MultiPL-E: HumanEval in C++, Java and JavaScript (report §6, Table 6 base, Table 17 instruct), run
as the official harness runs it; offline, HumanEval translated into those languages.

In this order: the loader of the released humaneval-LANG.jsonl files, the instruct reply made a
program, the programs a sample becomes and their verdicts in sandbox.py; then the translator of
HumanEval's Python problems (types from annotations or tests, literals and signatures in three
languages), the default without --problems. eval.py's `multipl-e` drives it all; paths are
qwencoder-eval's (the evaluation folder of the public QwenLM/Qwen2.5-Coder repository).
"""
import ast
import json
import os
import re
import shutil

import sandbox
from corpus import read_jsonl
from eval_suites import run, verdict


# Base (base/benchmarks/multiple-eval/): prompt = prompt.strip() + "\n", greedy, 500 new tokens,
# the completion cut at the problem's stop_tokens (utils/utils.py cleanup_code); the program is
# the missing #includes (C++), the prompt, "\n", the completion, "\n", the tests
# (human_eval/evaluation.py); 10 s; a JavaScript run passes only with empty stdout and stderr
# (human_eval/execution.py). Instruct (instruct/multipl_e/chat/evaluate.py): ChatML with the
# system "You are a helpful assistant.", greedy, 1,024 new tokens; the reply's code block is
# completed into a program by extract_func, then "\n" + the tests.

MULTIPLE_NEED = ("name", "prompt", "tests", "stop_tokens")
MULTIPLE_LANGUAGES = {"cpp": "cpp", "java": "java", "js": "javascript"}
MULTIPLE_STOPS = {"cpp": ["\n}"], "java": ["\n    }\n"], "js": ["\nfunction ", "\n/*", "\n//", "\nconsole.log"]}
MULTIPLE_SYSTEM = "You are a helpful assistant."
MULTIPLE_USER = ("Please continue to complete the function and return all completed code in a codeblock. "
                 "Here is the given code to do completion:\n```{language}\n{prompt}\n```")
CPP_INCLUDES = ["#include<stdlib.h>", "#include<algorithm>", "#include<math.h>", "#include<stdio.h>",
                "#include<vector>", "#include<string>", "#include<climits>", "#include<cstring>",
                "#include<iostream>", "#include<cassert>"]  # human_eval/evaluation.py IMPORT_HELPER
CPP_INCLUDES_INSTRUCT = ["#include<optional>", "#include<cassert>", "#include<stdlib.h>", "#include<algorithm>",
                         "#include<cmath>", "#include<math.h>", "#include<numeric>", "#include<stdio.h>",
                         "#include<vector>", "#include<set>", "#include<map>", "#include<queue>", "#include<stack>",
                         "#include<list>", "#include<deque>", "#include<boost/any.hpp>", "#include<string>",
                         "#include<climits>", "#include<cstring>", "#include<iostream>", "#include<sstream>",
                         "#include<fstream>"]  # instruct evaluate.py IMPORT_HELPER
JAVA_IMPORTS = ["import java.util.*;", "import java.lang.reflect.*;", "import org.javatuples.*;",
                "import java.security.*;", "import java.math.*;", "import java.io.*;", "import java.util.stream.*;"]
MULTIPLE_TOOLS = {"cpp": ("g++", "apt-get install g++"), "java": ("javac", "apt-get install default-jdk-headless "
                  "libjavatuples-java"), "js": ("node", "apt-get install nodejs")}


def load_multiple(path):
    """{name: problem} of a MultiPL-E file (humaneval-LANG.jsonl); "test" defaults to "tests"."""
    rows = read_jsonl(path, need=MULTIPLE_NEED)
    return {r.get("task_id", r["name"]): {**r, "test": r.get("test", r["tests"])} for _, r in rows}


def check_toolchain(language, instruct=False):
    """One sentence naming what to install when a language's toolchain is missing here."""
    tool, how = MULTIPLE_TOOLS[language]
    if not shutil.which(tool, path=sandbox.SANDBOX_PATH):
        raise ValueError(f"multipl-e --language {language} needs {tool}; install it ({how}).")
    if language == "cpp" and instruct and not os.path.exists("/usr/include/boost/any.hpp"):
        raise ValueError("multipl-e --language cpp --instruct needs boost's headers, which the official programs "
                         "include; install them (apt-get install libboost-dev).")
    if language == "java" and not sandbox.JAVA_LIBS:
        raise ValueError("multipl-e --language java needs the javatuples jar that MultiPL-E's Java prompts "
                         "import; install it (apt-get install libjavatuples-java).")


def _drop_nth_last_brace(code, n):
    """instruct evaluate.py remove_nth_from_last_brace: cut before the n-th line, from the end,
    that is only '}'."""
    lines, count, index = code.split("\n"), 0, 0
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() == "}":
            count, index = count + 1, i
            if count == n:
                return "\n".join(lines[:i])
    return "\n".join(lines[:index])


def _drop_block(code, marker):
    """Remove the brace-balanced block whose first line contains `marker` (a main())."""
    lines, depth, start = code.split("\n"), 0, -1
    for i, line in enumerate(lines):
        if start < 0 and marker in line:
            start = i
        if start >= 0:
            for c in line:
                depth += (c == "{") - (c == "}")
                if c == "}" and depth == 0:
                    return "\n".join(lines[:start] + lines[i + 1:])
    return code


def multiple_extract(reply, problem, language):
    """The program text an instruct reply becomes before its tests (evaluate.py extract_func)."""
    block = re.search(r"```.*?\n(.*?)```", reply, flags=re.DOTALL)
    code = block.group(1) if block else reply
    if language == "js":
        return code if "function " in code else problem["prompt"] + code
    if language == "java":
        name = re.search(r"assert\((.*?)\(.*?\)\);\n", problem["tests"], flags=re.DOTALL)
        if name is None or re.search(rf"public static .*? {re.escape(name.group(1))}\(.*?\)", code, re.DOTALL) is None:
            code = problem["prompt"] + "\n" + code
        elif "class Problem" not in code:
            code = "class Problem {\n" + code
        code = code.replace("public class Problem", "class Problem")
        if "public static void main" in code:
            code = _drop_block(code, "public static void main")
        balance = code.count("{") - code.count("}")
        if balance in (0, 1):
            code = _drop_nth_last_brace(code, 2 - balance)
        return "\n".join(JAVA_IMPORTS) + "\n" + code
    if "main()" in code:  # cpp
        code = _drop_block(code, "main()")
    if int(problem["name"].split("_")[1]) not in (147, 159):
        code = code.replace("using namespace std;", "")
    includes = "".join(s + "\n" for s in CPP_INCLUDES_INSTRUCT if s not in code)
    return _drop_nth_last_brace(includes + "\n" + code + "\n", 1)


def multiple_program(problem, completion, language, instruct=False):
    if instruct:  # completion: the program extract_func made of the reply
        return completion + "\n" + problem["test"]
    code = problem["prompt"] + "\n" + completion
    if language == "cpp":
        code = "".join(s + "\n" for s in CPP_INCLUDES if s not in problem["prompt"]) + "\n" + code
    return code + "\n" + problem["test"]


def score_multiple(problems, samples, language, instruct=False, timeout=10.0):
    jobs = [{"code": multiple_program(problems[s["task_id"]], s["completion"], language, instruct),
             "language": MULTIPLE_LANGUAGES[language], "timeout": timeout} for s in samples]
    out = []
    for r in run(jobs):
        v = verdict(r)
        # base JavaScript: execution.py counts any output on stdout or stderr as a failure
        if v == "passed" and language == "js" and not instruct and (r.stdout or r.stderr):
            v = "failed: the program printed something"
        out.append(v)
    return out


# ----------------------------------------------------------------------------- the offline default
# HumanEval translated as MultiPL-E's translators do (nuprl/MultiPL-E
# dataset_builder/humaneval_to_{cpp,java,js}.py): the docstring as comments, the signature in the
# target's types, each `assert candidate(...) == ...` of check() as the target's assertion.
# Problems whose types or tests do not translate are left out and counted.

def _py_type(node):
    """A Python annotation as ('int'|'float'|'str'|'bool'|'list'|'dict'|'tuple'|'optional', args)."""
    if isinstance(node, ast.Name):
        return {"int": ("int",), "float": ("float",), "str": ("str",), "bool": ("bool",)}.get(node.id)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        inner = [_py_type(a) for a in args]
        if None in inner:
            return None
        kind = {"List": "list", "Dict": "dict", "Tuple": "tuple", "Optional": "optional"}.get(node.value.id)
        return (kind, *inner) if kind else None
    return None


def _infer(values):
    """The type of a position from its values in the tests, for an unannotated HumanEval signature
    (MultiPL-E translates its own annotated copy; this reads the same types off the tests)."""
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return ("bool",)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return ("int",)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return ("float",)
    if all(isinstance(v, str) for v in values):
        return ("str",)
    if all(isinstance(v, list) for v in values):
        inner = _infer([x for v in values for x in v])
        return ("list", inner) if inner else None
    if all(isinstance(v, tuple) for v in values) and len({len(v) for v in values}) == 1:
        parts = [_infer([v[i] for v in values]) for i in range(len(values[0]))]
        return ("tuple", *parts) if parts and None not in parts else None
    if all(isinstance(v, dict) for v in values):
        k, w = _infer([x for v in values for x in v]), _infer([x for v in values for x in v.values()])
        return ("dict", k, w) if k and w else None
    return None


def _cpp_type(t):
    k = t[0]
    if k in ("int", "float", "str", "bool"):
        return {"int": "long", "float": "float", "str": "std::string", "bool": "bool"}[k]
    if k == "list":
        return f"std::vector<{_cpp_type(t[1])}>"
    if k == "dict":
        return f"std::map<{_cpp_type(t[1])},{_cpp_type(t[2])}>"
    if k == "tuple":
        return f"std::tuple<{', '.join(_cpp_type(a) for a in t[1:])}>"
    return f"std::optional<{_cpp_type(t[1])}>"


def _java_type(t, boxed=False):
    k = t[0]
    if k in ("int", "float", "str", "bool"):
        return ({"int": "Long", "float": "Float", "str": "String", "bool": "Boolean"} if boxed else
                {"int": "long", "float": "float", "str": "String", "bool": "boolean"})[k]
    if k == "list":
        return f"ArrayList<{_java_type(t[1], True)}>"
    if k == "dict":
        return f"HashMap<{_java_type(t[1], True)},{_java_type(t[2], True)}>"
    if k == "tuple":
        names = {2: "Pair", 3: "Triplet", 4: "Quartet"}
        return f"{names[len(t) - 1]}<{', '.join(_java_type(a, True) for a in t[1:])}>"
    return f"Optional<{_java_type(t[1], True)}>"


def _value(v, t, lang):
    """A Python test value in the target language, typed by t (MultiPL-E's gen_* functions)."""
    k = t[0]
    if k == "optional":
        if v is None:
            return {"cpp": "std::nullopt", "java": "Optional.empty()", "js": "undefined"}[lang]
        inner = _value(v, t[1], lang)
        return {"cpp": inner, "java": f"Optional.of({inner})", "js": inner}[lang]
    if k == "bool" and isinstance(v, bool):
        return "true" if v else "false"
    if k == "int" and isinstance(v, int) and not isinstance(v, bool):
        return {"cpp": f"({v})", "java": f"({v}l)", "js": str(v)}[lang]
    if k == "float" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"cpp": f"({float(v)!r})", "java": f"({float(v)!r}f)", "js": repr(float(v))}[lang]
    if k == "str" and isinstance(v, str):
        return json.dumps(v) if lang == "js" else f"({json.dumps(v)})"
    if k == "list" and isinstance(v, (list, tuple)):
        items = [_value(x, t[1], lang) for x in v]
        if lang == "js":
            return "[" + ", ".join(items) + "]"
        if lang == "cpp":
            return f"(std::vector<{_cpp_type(t[1])}>({{" + ", ".join(items) + "}))"
        return f"(new ArrayList<{_java_type(t[1], True)}>(Arrays.asList(" + ", ".join(items) + ")))"
    if k == "tuple" and isinstance(v, (list, tuple)) and len(v) == len(t) - 1:
        items = [_value(x, a, lang) for x, a in zip(v, t[1:])]
        if lang == "js":
            return "[" + ", ".join(items) + "]"
        if lang == "cpp":
            return f"(std::make_tuple({', '.join(items)}))"
        return f"{_java_type(t).split('<')[0]}.with({', '.join(items)})"
    if k == "dict" and isinstance(v, dict) and lang == "js":
        return "{" + ", ".join(f"{_value(a, t[1], lang)}: {_value(b, t[2], lang)}" for a, b in v.items()) + "}"
    raise ValueError(f"no {lang} value for {v!r} as {t}")


def _camel(name):
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def translate_humaneval(problem, lang):
    """One HumanEval problem as a MultiPL-E problem in lang ("cpp", "java", "js"); ValueError when
    its types or tests do not translate."""
    tree = ast.parse(problem["prompt"])
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"]), None)
    if fn is None:
        raise ValueError("no function")
    calls = []
    check = ast.parse(problem["test"])
    for node in ast.walk(check):
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1 \
                and isinstance(node.test.ops[0], ast.Eq) and isinstance(node.test.left, ast.Call) \
                and getattr(node.test.left.func, "id", "") == "candidate":
            try:  # an assertion on computed values (e.g. inside a loop) has no literal translation: left out
                calls.append(([ast.literal_eval(a) for a in node.test.left.args],
                              ast.literal_eval(node.test.comparators[0])))
            except ValueError:
                continue
    if not calls:
        raise ValueError("no literal assertion to translate")
    params, ret = [], _py_type(fn.returns) if fn.returns is not None else _infer([w for _, w in calls])
    for i, a in enumerate(fn.args.args):
        params.append((a.arg, _py_type(a.annotation) if a.annotation is not None
                       else _infer([args[i] for args, _ in calls if len(args) > i])))
    if ret is None or any(t is None for _, t in params):
        raise ValueError("a type without a translation")
    if lang != "js" and any(t[0] == "dict" for _, t in params + [("", ret)]):
        raise ValueError("a dict")  # kept simple: MultiPL-E's C++/Java maps are left out here
    doc = ast.get_docstring(fn) or ""
    name = problem["entry_point"]
    comment = lambda indent: "".join(f"{indent}//{' ' if line else ''}{line}\n" for line in doc.split("\n"))
    tests = []
    for args, want in calls:
        if len(args) != len(params):
            raise ValueError("a call with defaults")
        a = ", ".join(_value(x, t, lang) for x, (_, t) in zip(args, params))
        w = _value(want, ret, lang)
        tests.append({"js": f"  assert.deepEqual(candidate({a}),{w});",
                      "cpp": f"    assert(candidate({a}) == {w});",
                      "java": f"    assert({_camel(name)}({a}).equals({w}));" if ret[0] not in ("int", "float", "bool")
                      else f"    assert({_camel(name)}({a}) == {w});"}[lang])
    if lang == "js":
        prompt = comment("") + f"function {name}({', '.join(p for p, _ in params)}){{\n"
        test = ("const assert = require('node:assert');\n\n\nfunction test() {\n  let candidate = " + name + ";\n"
                + "\n".join(tests) + "\n}\n\ntest();")
    elif lang == "cpp":
        sig = f"{_cpp_type(ret)} {name}({', '.join(f'{_cpp_type(t)} {p}' for p, t in params)}) {{\n"
        prompt = "#include<assert.h>\n#include<bits/stdc++.h>\n" + comment("") + sig
        test = "}\nint main() {\n    auto candidate = " + name + ";\n" + "\n".join(tests) + "\n}\n"
    else:
        sig = (f"    public static {_java_type(ret)} {_camel(name)}("
               + ", ".join(f"{_java_type(t)} {p}" for p, t in params) + ") {\n")
        prompt = "".join(s + "\n" for s in JAVA_IMPORTS) + "class Problem {\n" + comment("    ") + sig
        test = "    }\n    public static void main(String[] args) {\n" + "\n".join(tests) + "\n    }\n\n}\n"
    return {"name": f"{problem['task_id'].replace('/', '_')}_{name}", "language": lang, "prompt": prompt,
            "tests": test, "stop_tokens": MULTIPLE_STOPS[lang]}


def humaneval_multiple(lang, humaneval_problems):
    """({name: problem}, problems left out) for the offline default of `multipl-e`."""
    out, skipped = {}, 0
    for p in humaneval_problems.values():
        try:
            t = translate_humaneval(p, lang)
        except (ValueError, KeyError, SyntaxError):
            skipped += 1
            continue
        out[t["name"]] = {**t, "test": t["tests"], "task_id": t["name"]}
    return out, skipped
