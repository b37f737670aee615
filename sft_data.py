"""Instruction data for SFT, synthesised from code without a teacher LLM (report §4.1).

The report builds instructions from code with LLMs and keeps what passes a checklist and the
sandbox. Without a teacher, the corpus's documented functions are the instructions: each gives
four kinds of tasks (write it from its docstring, complete it, fill in a tree-sitter block, say
what it returns for an input). In file order:

  extract_functions  documented top-level functions (tree-sitter), with what they depend on
  verify             run the self-contained ones in the sandbox: doctests, then recorded
                     input/output assertions, then the final test file as DPO will run it
  build_samples      the instruction/response pairs of one function
  checklist          the report's checklist as measurable items and a score
  synthesize         all of it, deduplicated and decontaminated against HumanEval

    python sft.py synth --out out/sft-data     # sft.jsonl + tasks.jsonl + stats.json (sft.py's CLI)
"""
import ast
import builtins
import doctest
import hashlib
import itertools
import json
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import sandbox
from data_fim import Repo, decontaminate, load_corpus, syntax_span, tree_sitter_parser


@dataclass
class SynthConfig:
    out: str = "out/sft/data"
    inputs: list = field(default_factory=list)   # corpus (data_fim.load_corpus inputs); none = stdlib
    limit: int = 400              # functions (~1,200 samples, ~4 s); 2000 takes the whole stdlib (~13 s)
    seed: int = 0
    workers: int = 0              # sandbox processes (0 = sandbox's default)
    timeout: float = 10.0         # seconds per sandbox run
    max_calls: int = 12           # generated inputs tried per function
    max_checks: int = 5           # input/output assertions kept per function
    problems: str = "humaneval"   # decontaminate against ("none" to skip)


# Modules whose functions compute without I/O or randomness: a function using only these
# (and builtins, minus NO_IO) is "self-contained" and worth running (§4.1: only
# self-contained snippets are executed).
PURE_MODULES = frozenset(
    "abc base64 binascii bisect calendar cmath collections colorsys copy dataclasses decimal difflib "
    "enum fnmatch fractions functools heapq html itertools keyword math numbers operator posixpath "
    "re reprlib shlex statistics string struct textwrap types typing unicodedata zlib".split())
NO_IO = frozenset("open input print exec eval compile __import__ globals locals vars breakpoint exit "
                  "quit help setattr delattr".split())
BUILTINS = frozenset(dir(builtins))

# Candidate arguments by guessed parameter type (from the annotation, else the name).
POOLS = {
    "bool": [True, False],
    "int": [0, 1, 2, 3, 5, 10, -3, 42],
    "float": [0, 1, 2.5, -1, 0.5, 3, 10],
    "str": ["", "a", "abc", "Hello, World", "  spaced  ", "a1b2c3", "two\nlines", "tab\there", "The quick brown fox"],
    "list": [[], [1], [3, 1, 2], [1, 2, 2, 3], [5, -1, 0, 8], ["b", "a", "c"]],
    "bytes": [b"", b"abc", b"hello world", b"\x00\xff"],
    "dict": [{}, {"a": 1, "b": 2}],
    "tuple": [(), (1, 2), (3, 1, 2)],
    "any": [0, 3, 2.5, "", "abc", "Hello World\n", [], [1, 2, 3]],
}
NAME_HINTS = [  # first match wins
    (r"^(flag|strict|reverse|verbose|quiet|force)$|^(is|has|use|allow)_", "bool"),
    (r"^(buf|buffer|raw)$|bytes$", "bytes"),
    (r"^(n|i|j|k|m|num|count|size|width|height|length|index|idx|pos|level|depth|base|start|stop|end"
     r"|year|month|day|bits|limit|steps?|times|indent|tabsize)$|^n_|_(count|len|size|index)$", "int"),
    (r"^(x|y|z|value|val|number|amount|ratio|rate|r|g|v|h|l|q|a|f)$", "float"),
    (r"^(s|text|string|name|line|word|prefix|suffix|sep|char|ch|c|fmt|pattern|pat|msg|source|src|key"
     r"|label|title|path|filename|url|ident|code)$|(str|text|name|path)$", "str"),
    (r"^(lst|items|seq|sequence|values|xs|elements|arr|array|nums|numbers|words|lines|names|iterable"
     r"|collection|data|args)$|[a-z]s$", "list"),
]


@dataclass
class Function:
    """A documented top-level function of the corpus and what synthesis learned about it."""
    origin: str                   # repo/path:name
    name: str
    source: str                   # the def, from column 0
    header: str                   # signature + docstring: what an instruction shows
    summary: str                  # the docstring's first paragraph, one line
    context: str                  # imports, constants and helper defs it needs, in module order
    runnable: bool                # self-contained: run it in the sandbox
    doctests: list                # doctest examples as python lines (asserts)
    calls: list                   # generated call expressions to record outputs for
    outputs: dict = None          # call -> repr of its result (from the sandbox)
    test: str = ""                # assertions that passed against the reference
    verified: str = "static"      # "executed" (runs, checks pass) | "static" (parses) | "failed"

    @property
    def code(self):
        return f"{self.context}\n\n\n{self.source}" if self.context else self.source

    @property
    def prompt_code(self):
        return f"{self.context}\n\n\n{self.header}" if self.context else self.header


def _names(node):
    """(loaded, bound) identifiers inside a function (scopes flattened: good enough to decide
    self-containment; a wrong guess shows up as a NameError in the sandbox)."""
    loaded, bound = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (loaded if isinstance(n.ctx, ast.Load) else bound).add(n.id)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
        elif isinstance(n, ast.alias):
            bound.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and n.name:
            bound.add(n.name)
    return loaded, bound


def _module_table(tree, text):
    """name -> (kind, line, module or node, source) for a module's top-level imports,
    constant assignments and undecorated functions: what a function may depend on."""
    lines = text.splitlines(keepends=True)
    segment = lambda n: "".join(lines[n.lineno - 1:n.end_lineno]).rstrip()  # top-level: whole lines
    table = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                line = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
                table[a.asname or a.name.split(".")[0]] = ("import", stmt.lineno, a.name.split(".")[0], line)
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            for a in stmt.names:
                line = f"from {stmt.module} import {a.name}" + (f" as {a.asname}" if a.asname else "")
                table[a.asname or a.name] = ("import", stmt.lineno, stmt.module.split(".")[0], line)
        elif (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
              and not (isinstance(stmt.value, ast.Constant) and stmt.value.value is None)):  # `x = None`: state
            table[stmt.targets[0].id] = ("const", stmt.lineno, stmt, segment(stmt))
        elif isinstance(stmt, ast.FunctionDef) and not stmt.decorator_list:
            table[stmt.name] = ("def", stmt.lineno, stmt, segment(stmt))
    return table


def _context(fn, table, max_entries=8):
    """(context source, None) if fn needs only builtins, pure modules and the module's own
    constants/helpers (themselves self-contained); else (None, the reason it is not)."""
    if any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)) for n in ast.walk(fn)):
        return None, "generator"   # its result is no value to check
    needed, todo = {}, [fn]
    while todo:
        node = todo.pop()
        if any(isinstance(n, (ast.Global, ast.Nonlocal)) for n in ast.walk(node)):
            return None, "global_state"
        loaded, bound = _names(node)
        if loaded & NO_IO:
            return None, "io"
        for name in sorted(loaded - bound - BUILTINS - set(needed) - {fn.name}):
            entry = table.get(name)
            if entry is None or (entry[0] == "import" and entry[2] not in PURE_MODULES):
                return None, "module_dependency"
            needed[name] = entry
            if entry[0] != "import":
                todo.append(entry[2])
    if len(needed) > max_entries:
        return None, "module_dependency"
    imports = sorted({e[3] for e in needed.values() if e[0] == "import"})
    others = [e[3] for e in sorted((e for e in needed.values() if e[0] != "import"), key=lambda e: e[1])]
    return "\n\n".join(filter(None, ["\n".join(imports), *others])), None


def _pool(arg):
    annotation = ast.unparse(arg.annotation).lower() if arg.annotation is not None else ""
    guess = [t for _, t in sorted((annotation.find(t), t) for t in POOLS if t in annotation)]  # list[int]: list
    guess += [t for pattern, t in NAME_HINTS if re.search(pattern, arg.arg)]
    return POOLS[(guess or ["any"])[0]]


def _calls(fn, rng, max_calls):
    """Call expressions with simple inputs for fn's required positional parameters (<= 3)."""
    positional = fn.args.posonlyargs + fn.args.args
    required = positional[:len(positional) - len(fn.args.defaults)]
    if len(required) > 3 or None in fn.args.kw_defaults:  # a required keyword-only parameter
        return []
    combos = list(itertools.product(*map(_pool, required)))
    combos = rng.sample(combos, min(max_calls, len(combos)))
    return [f"{fn.name}({', '.join(map(repr, args))})" for args in combos]


def parse_or_none(code, mode="exec"):
    try:
        return ast.parse(code, mode=mode)
    except (SyntaxError, ValueError):
        return None


def doctest_lines(doc):
    """A docstring's doctest examples as plain Python lines (`assert repr(expr) == 'want'`, the
    doctest rule), or [] when they cannot be checked that way (printing, exceptions, directives)."""
    try:
        examples = doctest.DocTestParser().get_examples(doc or "")
    except ValueError:
        return []
    lines = []
    for ex in examples:
        src, want = ex.source.strip(), ex.want.rstrip("\n")
        if ex.exc_msg or ex.options or "print(" in src or "\n" in want:
            return []
        if not want:
            lines.append(src)
        elif parse_or_none(src, "eval") is None:
            return []
        else:  # a literal output reads better as `f(x) == [1, 2]` and means the same
            lines.append(f"assert {src} == {want}" if _is_literal(want) else f"assert repr({src}) == {want!r}")
    return lines


def _is_literal(text):
    try:
        return repr(ast.literal_eval(text)) == text
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def extract_functions(repos, cfg, stats):
    """Documented top-level functions of the corpus's Python files (tree-sitter finds them;
    Python's ast decides what they depend on): at most cfg.limit, from files taken in a
    seeded hash order, so they spread over the corpus and unused files are never parsed."""
    parser, found, seen = tree_sitter_parser("python"), [], set()
    files = sorted(((repo.name, path, text) for repo in repos for path, text in repo.files if path.endswith(".py")),
                   key=lambda f: hashlib.sha1(f"{cfg.seed}:{f[0]}/{f[1]}".encode()).digest())
    for repo_name, path, text in files:
        data, table = text.encode("utf-8"), None
        for node in parser.parse(data).root_node.children:
            if len(found) >= cfg.limit:
                return found
            if node.type == "decorated_definition":  # a decorator changes what the def means
                stats["decorated"] += 1
            if node.type != "function_definition":
                continue
            stats["functions"] += 1
            body = node.child_by_field_name("body")
            first = body.named_children[0] if body and body.named_children else None
            if first is None or first.type != "expression_statement" or first.named_children[0].type != "string":
                stats["no_docstring"] += 1
                continue
            source = data[node.start_byte:node.end_byte].decode("utf-8")
            if not 4 <= source.count("\n") + 1 <= 60 or "<FILL>" in source:
                stats["too_short_or_long"] += 1
                continue
            key = " ".join(source.split())
            if key in seen:  # the stdlib ships a few functions twice
                stats["duplicate_function"] += 1
                continue
            seen.add(key)
            try:
                fn = ast.parse(source).body[0]
                table = table if table is not None else _module_table(ast.parse(text), text)
            except (SyntaxError, ValueError):  # e.g. Python 2 files that tree-sitter tolerates
                stats["syntax_error"] += 1
                continue
            doc = ast.get_docstring(fn) or ""
            summary = " ".join(doc.split("\n\n")[0].split())
            if len(summary.split()) < 3:
                stats["docstring_too_short"] += 1
                continue
            context, why = _context(fn, table)
            stats["not_runnable_" + why if why else "runnable"] += 1
            origin, runnable = f"{repo_name}/{path}:{fn.name}", why is None
            rng = random.Random(f"{cfg.seed}:{origin}")
            found.append(Function(origin, fn.name, source, data[node.start_byte:first.end_byte].decode("utf-8"),
                                  summary, context or "", runnable, doctest_lines(doc) if runnable else [],
                                  _calls(fn, rng, cfg.max_calls) if runnable else []))
    return found


# Runs after the function's code inside the sandbox: the doctest lines in order, then each
# generated call under a timer; prints what it saw as one JSON line.
HARNESS = '''
import ast as _ast, json as _json, signal as _signal

def _alarm(*_):
    raise TimeoutError

def _timed(run, seconds):
    _signal.setitimer(_signal.ITIMER_REAL, seconds)
    try:
        return run()
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)

_signal.signal(_signal.SIGALRM, _alarm)
_passed, _outputs = 0, {}
try:
    for _line in _DOCTESTS:
        _timed(lambda: exec(_line, globals()), 1.0)
        _passed += 1
except BaseException:
    pass
for _call in _CALLS:
    try:  # keep outputs that a test can spell as a literal
        _value = _timed(lambda: eval(_call, globals()), 0.25)
        _text = repr(_value)
        _outputs[_call] = _text if len(_text) <= 200 and _ast.literal_eval(_text) == _value else None
    except BaseException:
        _outputs[_call] = None
print("@@REPORT@@" + _json.dumps({"doctests_passed": _passed, "outputs": _outputs}))
'''


def verify(functions, cfg, stats):
    """Run each self-contained function in the sandbox twice: once to check its doctests and
    record its outputs on generated inputs, once to check the final test file (the reference
    followed by the assertions that passed), exactly as DPO will run it."""
    runnable = [f for f in functions if f.runnable]
    jobs = [dict(code=f"{f.code}\n\n_DOCTESTS = {f.doctests!r}\n_CALLS = {f.calls!r}\n{HARNESS}",
                 timeout=cfg.timeout) for f in runnable]
    results = sandbox.run_batch(jobs, workers=cfg.workers or None) if jobs else []
    tested = []
    for f, res in zip(runnable, results):
        rep = [json.loads(line[10:]) for line in res.stdout.splitlines() if line.startswith("@@REPORT@@")]
        rep = rep[-1] if rep and res.status == "passed" else None
        # Rejected: the code does not even load (or the sandbox killed it), or its own doctests fail.
        why = (f"sandbox_{res.status}" if rep is None
               else "doctest_failed" if rep["doctests_passed"] < len(f.doctests) else None)
        if why:
            f.verified = "failed"
            stats["rejected_" + why] += 1
            continue
        f.outputs = {c: o for c, o in rep["outputs"].items() if o is not None}
        # One check per distinct output first, then the rest; richer (longer) inputs first in each.
        ranked, first = sorted(f.outputs.items(), key=lambda co: -len(co[0])), {}
        for c, o in ranked:
            first.setdefault(o, c)
        chosen = sorted(ranked, key=lambda co: first[co[1]] != co[0])[:cfg.max_checks]
        picked = [f"assert {c} == {o}" for c, o in chosen]
        # A check that every function would pass (one constant output) is no check.
        if not f.doctests and len(first) < 2:
            stats["untested_no_varied_outputs"] += 1
            continue
        f.test = "\n".join(f.doctests + picked) + "\n"
        tested.append(f)
    results = sandbox.run_batch([dict(code=f"{f.code}\n\n\n{f.test}", timeout=cfg.timeout) for f in tested],
                                workers=cfg.workers or None) if tested else []
    for f, res in zip(tested, results):
        f.verified = "executed" if res.status == "passed" else "failed"
        stats["executed" if res.status == "passed" else "rejected_test_failed"] += 1


WRITE = [  # the first is the instruct HumanEval format (qwencoder-eval's instruct prompt)
    "Can you complete the following Python function?\n```python\n{code}\n```\n",
    "Write a Python function `{name}` that does the following: {summary}\n\n```python\n{code}\n```",
    "Implement `{name}` as its docstring describes.\n```python\n{code}\n```",
]
COMPLETE = ["Complete this Python code:\n```python\n{code}\n```",
            "Finish the implementation of `{name}`:\n```python\n{code}\n```"]
FILL = ["Fill in the code marked <FILL> in this Python function. Answer with the missing code only.\n"
        "```python\n{code}\n```"]
EXPLAIN = ["What does `{call}` return, given this function?\n```python\n{code}\n```",
           "Here is a Python function:\n```python\n{code}\n```\nWhat is the result of `{call}`?"]


TRIVIAL = {"''", "None", "[]", "()", "{}", "0", "False", "b''"}


def build_samples(f, rng):
    """The instruction/response pairs one function gives: (kind, user, assistant) tuples."""
    fields_ = dict(name=f.name, summary=f.summary)
    fenced = f"```python\n{f.code}\n```"
    # Outputs recorded from a function whose test passed; the non-trivial ones when there are some.
    outputs = sorted(f.outputs.items()) if f.verified == "executed" else []
    outputs = [co for co in outputs if co[1] not in TRIVIAL] or outputs
    example = ""
    if outputs:
        call, value = rng.choice(outputs)
        example = f"\n\nFor example, `{call}` returns `{value}`."
    out = [("write", rng.choice(WRITE).format(code=f.prompt_code, **fields_), fenced + example)]
    body = f.source[len(f.header):].split("\n")[1:]
    if len(body) >= 2:
        k = rng.randint(1, len(body) // 2)
        partial = f.prompt_code + "\n" + "\n".join(body[:k])
        out.append(("complete", rng.choice(COMPLETE).format(code=partial, **fields_), fenced))
    for _ in range(5):  # a tree-sitter block of the body after the docstring, not a blank one
        span = syntax_span(f.source, rng)
        if span and span[1].strip() and len(span[0]) >= len(f.header) and len(span[1]) < 0.7 * len(f.source):
            pre, mid, suf = span
            code = (f.context + "\n\n\n" if f.context else "") + pre + "<FILL>" + suf
            out.append(("fill", FILL[0].format(code=code), f"```python\n{mid}\n```"))
            break
    if outputs:
        call, value = rng.choice(outputs)
        answer = f"`{call}` returns `{value}`.\n\n`{f.name}`: {f.summary}"
        out.append(("explain", rng.choice(EXPLAIN).format(code=f.code, call=call), answer))
    return out


# The report's checklist (§4.1) as measurable items in [0, 1], and their weights in the score.
CHECKLIST = {
    "consistency": 0.20,   # the answer is about what was asked (names asked for appear in it / fits the hole)
    "difficulty": 0.15,    # statements and control flow of the code involved
    "code": 0.15,          # a fenced code block in the answer (inline code: 0.5)
    "correctness": 0.30,   # executed with passing checks 1, parses 0.5, fails 0
    "clarity": 0.10,       # a question of sane length that reads as a request, a bounded answer
    "comments": 0.10,      # share of comment and docstring lines in the code (0.25 or more: 1)
}
FENCE = re.compile(r"```(?:python|py)?\n(.*?)```", re.S)


def checklist(messages, verified=None):
    """(score, items) of a conversation's last user/assistant pair. verified: "executed",
    "static" or "failed" when synthesis knows; else correctness = "its code parses"."""
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    answer = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
    q_code, a_code = FENCE.findall(user), FENCE.findall(answer)
    items = {"code": 1.0 if a_code else 0.5 if "`" in answer else 0.0}
    if "<FILL>" in user and q_code and a_code:   # fill-in: the answer must fit the hole
        items["consistency"] = float(parse_or_none(q_code[-1].replace("<FILL>", a_code[0].rstrip("\n"))) is not None)
    else:
        asked = set(re.findall(r"(?<!`)`([A-Za-z_]\w*)", user))  # `name` and `name(...)`, not ```python
        asked |= {n for c in q_code for n in re.findall(r"^def (\w+)", c, re.M)}
        said = set(re.findall(r"\w+", answer))
        items["consistency"] = len(asked & said) / len(asked) if asked else 1.0
    # The code judged: the answer's, or the question's when the answer has no whole program.
    whole = a_code and all(map(parse_or_none, a_code))
    code = "\n".join(a_code) if whole else "\n".join(q_code).replace("<FILL>", "pass")
    tree = parse_or_none(code)
    if verified is None:
        verified = "static" if a_code and all(parse_or_none(c) is not None for c in a_code) else None
    items["correctness"] = {"executed": 1.0, "static": 0.5}.get(verified, 0.0)
    branches = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.comprehension, ast.BoolOp, ast.IfExp, ast.Match)
    nodes = list(ast.walk(tree)) if tree else []
    items["difficulty"] = min(1.0, (sum(isinstance(n, ast.stmt) for n in nodes)
                                    + 2 * sum(isinstance(n, branches) for n in nodes)) / 30)
    first_line = user.strip().split("\n")[0]
    items["clarity"] = (float(3 <= len(user.split()) <= 400) + float(first_line.rstrip()[-1:] in ".?:!`")
                        + float(0 < len(answer) <= 4000)) / 3
    lines = [ln.strip() for ln in code.splitlines() if ln.strip()]
    doc_lines = sum(n.value.end_lineno - n.value.lineno + 1 for n in nodes
                    if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str))
    commented = sum(ln.startswith("#") for ln in lines) + doc_lines
    items["comments"] = min(1.0, commented / max(1, len(lines)) / 0.25)
    return sum(CHECKLIST[k] * items[k] for k in CHECKLIST), items


def synthesize(repos, cfg=None):
    """(samples, tasks, stats) from a corpus: see the module docstring."""
    cfg, t0, stats = cfg or SynthConfig(), time.perf_counter(), Counter()
    functions = extract_functions(repos, cfg, stats)
    if cfg.problems != "none":  # §3.1's 10-gram rule, on what the samples will show
        docs = [Repo(str(i), [(f.origin, f.code)]) for i, f in enumerate(functions)]
        bad = {int(d["repo"]) for d in decontaminate(docs, problems=cfg.problems)[1]}
        stats["dropped_contaminated"] = len(bad)
        functions = [f for i, f in enumerate(functions) if i not in bad]
    verify(functions, cfg, stats)
    samples, tasks, seen = [], [], set()
    for f in functions:
        if f.verified == "failed":
            continue
        rng = random.Random(f"{cfg.seed}:{f.origin}:samples")
        for kind, user, answer in build_samples(f, rng):
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            if kind != "fill" and not all(parse_or_none(c) for c in FENCE.findall(answer)):
                stats["dropped_answer_does_not_parse"] += 1
                continue
            key = hashlib.sha1(" ".join((user + answer).split()).encode()).digest()
            if key in seen:
                stats["dropped_duplicate"] += 1
                continue
            seen.add(key)
            score, items = checklist(messages, f.verified)
            samples.append({"messages": messages, "kind": kind, "score": round(score, 4), "verified": f.verified,
                            "checklist": {k: round(v, 3) for k, v in items.items()}, "source": f.origin})
            if kind == "write" and f.verified == "executed":
                tasks.append({"task_id": f"sft/{len(tasks)}", "prompt": user, "reference": f.code,
                              "test": f.test, "entry_point": f.name, "source": f.origin})
    stats.update(Counter(f"kept_{s['kind']}_{s['verified']}" for s in samples))
    stats.update(samples=len(samples), tasks=len(tasks), seconds=round(time.perf_counter() - t0, 1))
    return samples, tasks, dict(sorted(stats.items()))


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(path + ".tmp", path)


def synth_main(cfg):
    """Synthesise, write OUT/sft.jsonl, tasks.jsonl and stats.json. A missing or unreadable input
    raises FileNotFoundError or ValueError naming it (sft.py reports it as one sentence)."""
    repos, corpus = load_corpus(cfg.inputs or None)
    print(f"synthesising from {corpus['repos']} repositories, {corpus['files']} files "
          f"(sandbox: {sandbox.isolation()}) ...", flush=True)
    samples, tasks, stats = synthesize(repos, cfg)
    write_jsonl(os.path.join(cfg.out, "sft.jsonl"), samples)
    write_jsonl(os.path.join(cfg.out, "tasks.jsonl"), tasks)
    scores = sorted(s["score"] for s in samples) or [0.0]
    stats["score_quartiles"] = [scores[len(scores) * q // 4] for q in (1, 2, 3)]
    with open(os.path.join(cfg.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print("\n".join(f"  {k}: {v}" for k, v in stats.items()))
    print(f"wrote {len(samples)} samples to {cfg.out}/sft.jsonl and {len(tasks)} tasks to {cfg.out}/tasks.jsonl")
    return stats
