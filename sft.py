"""Stage 3: supervised fine-tuning (report §4.1 instruction data, §4.2 coarse-to-fine SFT).

Turns a pretrained checkpoint into a chat model. In file order:

  render_chat   ChatML ids + the loss mask (FACTS §4): only the assistant replies are trained.
  synthesize    "instruction-from-code" without a teacher LLM: from the corpus's documented
                functions (tree-sitter), four kinds of tasks (write it from its docstring,
                complete it, fill in a tree-sitter block, say what it returns for an input),
                verified by parsing and by running them in the sandbox (doctests and
                input/output assertions recorded from the reference), scored on the report's
                checklist, deduplicated, decontaminated against HumanEval.
  main          two calls of pretrain.py's loop: coarse (every sample), then fine (the
                top-scored ones), with a share of samples turned into FIM tasks (mixed tuning).
  chat          a small streaming ChatML chat to try the result.

    python sft.py synth --out out/sft/data                  # sft.jsonl + tasks.jsonl + stats.json
    python sft.py --init out/repo_pretrain --out out/sft    # synthesises on first use, then trains
    torchrun --standalone --nproc_per_node 8 sft.py --init Qwen2.5-Coder-0.5B --data my.jsonl \\
        --out out/sft-0.5b --lr 5e-5 --warmup 100 --epochs 3 --batch-size 4 --grad-accum 32   # official recipe
    python sft.py chat --model out/sft                      # talk to the result
"""
import argparse
import ast
import builtins
import doctest
import hashlib
import itertools
import json
import math
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, fields, replace

import torch
import torch.distributed as dist

import pretrain
import sandbox
from data_fim import (Repo, decontaminate, fim_token_ids, load_corpus, read_jsonl, sample_row, syntax_span,
                      tree_sitter_parser, unit_hash)
from model import Transformer
from tokenizer import Tokenizer

# ----------------------------------------------------------------------------- ChatML (FACTS §4)

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ROLES = ("system", "user", "assistant")


def render_chat(messages, tokenizer, add_generation_prompt=False):
    """(ids, mask) of a conversation in ChatML: `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message.

    mask is 1 exactly on each assistant reply and the <|im_end|> closing it (the model must
    learn to stop), 0 on system and user turns, the `<|im_start|>assistant\\n` header and the
    newline after <|im_end|>. As in Qwen2.5's chat template, a conversation without a system
    message gets DEFAULT_SYSTEM. The control tokens are single ids; contents are encoded as
    plain text, so a reply that mentions "<|im_end|>" cannot end its own turn. Header and
    content are encoded separately (as the official finetuning/sft/binarize_data.py does), so
    the mask boundary is exact; the ids equal the tokenized template text unless a content
    starts with a newline (then the template's BPE would merge the two newlines).
    """
    messages = list(messages)
    if not messages or messages[0].get("role") != "system":
        messages.insert(0, {"role": "system", "content": DEFAULT_SYSTEM})
    start, end = tokenizer.special["<|im_start|>"], tokenizer.special["<|im_end|>"]
    newline = tokenizer.encode("\n")
    ids, mask = [], []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise ValueError(f"a message must be {{'role': one of {ROLES}, 'content': str}}, got {m!r:.80}; "
                             "fix the conversation.")
        head, body = [start] + tokenizer.encode(role + "\n"), tokenizer.encode(content) + [end]
        ids += head + body + newline
        mask += [0] * len(head) + [int(role == "assistant")] * len(body) + [0] * len(newline)
    if add_generation_prompt:
        head = [start] + tokenizer.encode("assistant\n")
        ids, mask = ids + head, mask + [0] * len(head)
    return ids, mask


# ----------------------------------------------------------------------------- synthesis (§4.1)

@dataclass
class SynthConfig:
    out: str = "out/sft/data"
    inputs: str = ""              # corpus (data_fim.load_corpus inputs, comma-separated); "" = stdlib
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


WRITE = [  # the first is the instruct HumanEval format (FACTS §6)
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
    try:
        repos, corpus = load_corpus([p for p in cfg.inputs.split(",") if p] or None)
    except (FileNotFoundError, ValueError) as e:
        raise pretrain.Fatal(str(e)) from None
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


# ----------------------------------------------------------------------------- training data (§4.2)

def pad_batch(seqs, pad_id):
    """(x, y) of (ids, mask) rows padded to the longest: x = ids[:-1], y = the next token where
    mask is 1, else -100, so pretrain.lm_loss trains exactly the masked tokens."""
    T = max(len(ids) for ids, _ in seqs) - 1
    x = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    y = torch.full((len(seqs), T), -100, dtype=torch.long)
    for b, (ids, mask) in enumerate(seqs):
        ids, keep = torch.tensor(ids), torch.tensor(mask[1:], dtype=torch.bool)
        x[b, :len(ids) - 1] = ids[:-1]
        y[b, :len(ids) - 1] = torch.where(keep, ids[1:], -100)
    return x, y


class ChatDataset:
    """Rendered conversations served by global index, for pretrain.train().

    Sample g reads row data_fim.sample_row(g) (a pure function of (seed, g)). With probability
    fim_rate, decided by (seed, g), the reply's code is served instead as a FIM task on a
    tree-sitter span, all tokens trained (mixed tuning, §4.2). A batch is padded to its
    longest sample, with targets only on the assistant replies.
    """

    def __init__(self, rows, tokenizer, seed=0, fim_rate=0.0, spm_rate=0.5, max_len=None):
        self.rows, self.tok, self.seed = rows, tokenizer, seed
        self.fim_rate, self.spm_rate, self.max_len = fim_rate, spm_rate, max_len

    def __len__(self):
        return len(self.rows)

    def sample(self, g):
        row = self.rows[sample_row(g, len(self.rows), self.seed)]
        rng = random.Random(f"{self.seed}:{g}")
        if self.fim_rate > 0 and row.get("code") and rng.random() < self.fim_rate:
            span = syntax_span(row["code"], rng)
            ids = fim_token_ids(self.tok, *span, spm=rng.random() < self.spm_rate) if span else None
            if ids and (self.max_len is None or len(ids) <= self.max_len + 1):
                return ids, [1] * len(ids)
        return row["ids"], row["mask"]

    def get_batch(self, indices):
        return pad_batch([self.sample(g) for g in indices], self.tok.eot_id)


def load_jsonl(path, what, parse=None):
    """The lines of a .jsonl(.gz) file as parse(object) (data_fim.read_jsonl); a bad line is a
    pretrain.Fatal naming it."""
    try:
        return [row for _, row in read_jsonl(path, what, parse)]
    except ValueError as e:
        raise pretrain.Fatal(str(e)) from None


def _conversation(rec):
    if not isinstance(rec["messages"], list):  # like rec["messages"] itself, a TypeError: "fix that line"
        raise TypeError
    return rec


def load_conversations(paths):
    """Conversations from official-format SFT files ({"messages": [...]} per line)."""
    records = []
    for path in paths:
        if not os.path.isfile(path):
            raise pretrain.Fatal(f"--data {path} does not exist; pass sft.jsonl files ({{\"messages\": [...]}} lines).")
        records += load_jsonl(path, 'a {"messages": [...]} object', _conversation)
    return records


def prepare_rows(records, tok, seq_len, val_fraction=0.05):
    """(train rows, val rows, counts): rendered, too-long samples dropped (never truncated:
    a cut reply teaches the model to stop mid-sentence), samples with nothing to train dropped."""
    train, val, counts = [], [], Counter()
    for rec in records:
        try:
            ids, mask = render_chat(rec["messages"], tok)
        except ValueError as e:
            raise pretrain.Fatal(str(e)) from None
        if not any(mask[1:]):
            counts["dropped_no_assistant"] += 1
            continue
        if len(ids) > seq_len + 1:
            counts["dropped_too_long"] += 1
            continue
        score = rec["score"] if "score" in rec else checklist(rec["messages"])[0]
        replies = [m["content"] for m in rec["messages"] if m["role"] == "assistant"]
        code = next((c for c in FENCE.findall(replies[-1]) if c.count("\n") >= 2 and parse_or_none(c)), None)
        row = {"ids": ids, "mask": mask, "score": score, "code": code}
        (val if unit_hash(json.dumps(rec["messages"], sort_keys=True)) < val_fraction else train).append(row)
    counts.update(train=len(train), val=len(val))
    return train, val, counts


# ----------------------------------------------------------------------------- training

@dataclass
class SFTConfig(pretrain.TrainConfig):
    """Laptop defaults. The official recipe (FACTS §5), for a real model: --lr 5e-5
    --warmup 100 --epochs 3, a global batch of 1024, weight decay 0, cosine."""
    init: str = "out/repo_pretrain"   # a Hugging Face-format checkpoint (ours or an official base model)
    out: str = "out/sft"
    data: str = ""                    # sft.jsonl files (comma-separated); "" = synthesise into OUT/data
    seq_len: int = 768                # longer samples are dropped (~4% of the synthesised ones)
    max_steps: int = 0                # coarse phase steps; 0 = from epochs
    epochs: float = 1.0
    batch_size: int = 8
    lr: float = 1e-3                  # tiny model: val loss 4.83 after 60 steps (3e-4: 5.04)
    min_lr_ratio: float = 0.0
    warmup: int = 10
    weight_decay: float = 0.0
    fim_rate: float = 0.1             # share of samples turned into FIM tasks (mixed tuning)
    eval_every: int = 50
    eval_batches: int = 2
    save_every: int = 100
    val_fraction: float = 0.05
    fine_fraction: float = 0.3        # fine phase: the best-scored 30% ...
    fine_min_score: float = 0.0       # ... that also score at least this
    fine_steps: int = 0               # 0 = from fine_epochs; --fine-fraction 0 skips the phase
    fine_epochs: float = 1.0


def main(cfg):
    """Coarse-to-fine SFT: two runs of pretrain.train() on one model."""
    if not os.path.isdir(cfg.init):
        raise pretrain.Fatal(f"--init {cfg.init} is not a directory; SFT starts from a pretrained checkpoint "
                             "(run pretrain.py / repo_pretrain.py, or pass an official base model directory).")
    cfg = replace(cfg, tokenizer=pretrain.tokenizer_dir(cfg))
    tok = pretrain.load_tokenizer(cfg.tokenizer)
    mc = pretrain.model_config(cfg, tok)
    d = pretrain.setup_distributed()
    try:
        paths = [p for p in cfg.data.split(",") if p]
        if not paths:
            paths = [os.path.join(cfg.out, "data", "sft.jsonl")]
            pretrain.build_once(paths[0], lambda: synth_main(SynthConfig(out=os.path.dirname(paths[0]))), d)
        train_rows, val_rows, counts = prepare_rows(load_conversations(paths), tok, cfg.seq_len, cfg.val_fraction)
        if d.main:
            print(f"SFT data: {dict(counts)}")
        if not train_rows:
            raise pretrain.Fatal(f"no trainable sample in {', '.join(paths)} (all too long for --seq-len "
                                 f"{cfg.seq_len} or without an assistant reply); check the data or raise --seq-len.")
        make = lambda rows, fim: ChatDataset(rows, tok, cfg.seed, fim, cfg.spm_rate, cfg.seq_len)
        val = make(val_rows, 0.0) if val_rows else None
        bf16 = pretrain.use_bf16(cfg, d.device)
        model = pretrain.build_model(cfg, mc, d, bf16)
        coarse = replace(cfg, out=os.path.join(cfg.out, "coarse"),
                         max_steps=cfg.max_steps or pretrain.steps_for(cfg.epochs, len(train_rows), cfg, d))
        if d.main:
            print(f"coarse phase: {len(train_rows)} samples, {coarse.max_steps} steps")
        pretrain.train(coarse, model, make(train_rows, cfg.fim_rate), val, d=d, tokenizer=tok, bf16=bf16)
        ranked = sorted(train_rows, key=lambda r: -r["score"])
        fine_rows = [r for r in ranked[:math.ceil(cfg.fine_fraction * len(ranked))] if r["score"] >= cfg.fine_min_score]
        if not fine_rows:
            if d.main:
                print("fine phase: no sample selected, skipped; the model is in " + coarse.out)
            return model
        fine = replace(cfg, max_steps=cfg.fine_steps or pretrain.steps_for(cfg.fine_epochs, len(fine_rows), cfg, d))
        if d.main:
            print(f"fine phase: {len(fine_rows)} samples scoring >= {fine_rows[-1]['score']:.3f}, "
                  f"{fine.max_steps} steps")
        return pretrain.train(fine, model, make(fine_rows, cfg.fim_rate), val, d=d, tokenizer=tok, bf16=bf16)
    finally:
        if d.world > 1:
            dist.destroy_process_group()


# ----------------------------------------------------------------------------- chat

@dataclass
class ChatConfig:
    model: str = "out/sft"
    system: str = DEFAULT_SYSTEM
    prompt: str = ""              # answer this one message and exit (no interactive loop)
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 0.9


def chat(cfg):
    """Interactive ChatML chat, tokens printed as they are generated."""
    try:
        model, tok = Transformer.from_pretrained(cfg.model), Tokenizer.from_pretrained(cfg.model)
    except (FileNotFoundError, ValueError) as e:
        raise pretrain.Fatal(str(e)) from None
    stops = [tok.special["<|im_end|>"], tok.eot_id]
    messages = [{"role": "system", "content": cfg.system}]
    while True:
        try:
            user = cfg.prompt or input("\nuser> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return messages
        messages.append({"role": "user", "content": user})
        ids, _ = render_chat(messages, tok, add_generation_prompt=True)
        new, shown = [], 0

        def stream(column):  # print the decoded text so far, holding back a split UTF-8 character
            nonlocal shown
            if int(column[0, 0]) in stops:
                return
            new.append(int(column[0, 0]))
            text = tok.decode(new)
            if not text.endswith("\ufffd"):
                print(text[shown:], end="", flush=True)
                shown = len(text)

        print("assistant> ", end="", flush=True)
        model.generate(torch.tensor([ids]), cfg.max_new_tokens, temperature=cfg.temperature,
                       top_p=cfg.top_p if cfg.temperature > 0 else None, stop_ids=stops, on_token=stream)
        reply = tok.decode(new)
        print(reply[shown:])
        messages.append({"role": "assistant", "content": reply})
        if cfg.prompt:
            return messages


# ----------------------------------------------------------------------------- CLI

def parse(cls, argv, lists=("data", "inputs")):
    """pretrain.py's dataclass CLI; `lists` fields take several values (stored comma-separated)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], conflict_handler="resolve")
    pretrain.add_config_args(p, cls)
    for f in fields(cls):
        if f.name in lists:
            p.add_argument("--" + f.name, nargs="*", default=[], help="one or more paths")
    args = vars(p.parse_args(argv))
    return cls(**{k: ",".join(v) if k in lists else v for k, v in args.items()})


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["synth"]:
        pretrain.run_cli(synth_main, parse(SynthConfig, argv[1:]))
    elif argv[:1] == ["chat"]:
        pretrain.run_cli(chat, parse(ChatConfig, argv[1:]))
    else:
        pretrain.run_cli(main, parse(SFTConfig, argv))
