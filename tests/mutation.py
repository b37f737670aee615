"""Mutation testing of the scorers, the schedule and the data settings, with mutmut 3.

    pip install mutmut==3.8.1 && python tests/mutation.py [--max-children 2]
    python tests/mutation.py --report      # the table again, from the stored results

mutmut copies the project to mutants/, generates the mutants of every function of the
files named in pyproject.toml ([tool.mutmut]) and runs, for each mutant, only the targeted
fast tests listed there that reach its function. Here only the functions below are run;
for `train` and SFT's `main` only the mutants of the lines named (the gradient scaling,
clipping and learning rate of the step; the fine phase's selection), not their logging or
checkpointing. The table at the end is the mutation score per function; `mutmut show NAME`
prints a surviving mutant's diff.
"""
import argparse
import ast
import collections
import difflib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# module.function: None = every mutant of the function, else the source lines that count.
TARGETS = {
    "trainer.lr_at": None,
    "trainer.make_optimizer": None,
    "trainer.train": ("lr = lr_at(cfg, step)", 'group["lr"] = lr', "ls.backward()",
                       "loss_sum, count = loss_sum + ls.detach().float(), count + float(n)",
                       "scale = d.world / max(count, 1.0)", "if p.grad is not None:", "p.grad.mul_(scale)",
                       "gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)",
                       "opt.step()", "opt.zero_grad(set_to_none=True)"),
    "dpo.dpo_loss": None,
    "dpo.make_loss_fn": None,
    "sft.main": ('ranked = sorted(train_rows, key=lambda r: -r["score"])',
                 'fine_rows = [r for r in ranked[:math.ceil(cfg.fine_fraction * len(ranked))]',
                 "if not fine_rows:",
                 "fine = replace(cfg, max_steps=cfg.fine_steps or trainer.steps_for(cfg.fine_epochs, len(fine_rows), cfg, d))",
                 "return trainer.train(fine, model, make(fine_rows, cfg.fim_rate), val, d=d, tokenizer=tok, bf16=bf16"),
    "eval.pass_at_k": None,
    "eval_fim.levenshtein": None,
    "eval_fim.edit_similarity": None,
    "eval_fim.exact_match": None,
    "eval_suites.truncate": None,
    "dedup.decontaminate": None,
}
KILLED = {"killed", "timeout", "caught by type check"}


def mutmut(*args):
    return subprocess.run(["mutmut", *args], cwd=ROOT, text=True, capture_output=args[0] != "run", check=True).stdout


def function_sources(module):
    """{function name: its source lines} of mutants/MODULE.py, mutants included."""
    with open(os.path.join(ROOT, "mutants", module + ".py"), encoding="utf-8") as f:
        src = f.read()
    lines = src.splitlines()
    return {n.name: lines[n.lineno:n.end_lineno] for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)}


def line_mutants(target, wanted):
    """Names of the mutants of module.function that change one of the `wanted` lines."""
    module, func = target.split(".")
    funcs = function_sources(module)
    orig = funcs[f"x_{func}__mutmut_orig"]
    names = []
    for name, body in funcs.items():
        if not name.startswith(f"x_{func}__mutmut_") or name.endswith("_orig"):
            continue
        ops = difflib.SequenceMatcher(None, orig, body, autojunk=False).get_opcodes()
        changed = [orig[i].strip() for tag, i1, i2, _, _ in ops if tag != "equal" for i in range(i1, i2)]
        if any(line.startswith(w) for line in changed for w in wanted):
            names.append(f"{module}.{name}")
    return names


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-children", default="2", help="mutants run in parallel (default 2)")
    p.add_argument("--report", action="store_true", help="print the table of the last run, run nothing")
    args = p.parse_args()
    whole = [f"{m}.x_{f}__mutmut_*" for m, f in (t.split(".") for t, lines in TARGETS.items() if lines is None)]
    if not args.report:
        mutmut("run", "--max-children", args.max_children, *whole)   # also generates every mutant
    chosen = {t: line_mutants(t, lines) for t, lines in TARGETS.items() if lines is not None}
    if not args.report:
        mutmut("run", "--max-children", args.max_children, *[n for names in chosen.values() for n in names])
    status = dict(line.strip().rsplit(": ", 1) for line in mutmut("results", "--all", "true").splitlines()
                  if ": " in line)
    table = collections.defaultdict(collections.Counter)
    survivors = []
    for target, lines in TARGETS.items():
        module, func = target.split(".")
        names = chosen.get(target) or [n for n in status if n.startswith(f"{module}.x_{func}__mutmut_")]
        for n in names:
            killed = status.get(n) in KILLED
            table[target]["killed" if killed else "survived"] += 1
            if not killed:
                survivors.append(f"{n}: {status.get(n)}")
    print(f"\n{'function':<28} {'mutants':>7} {'killed':>7} {'score':>6}")
    for target, c in table.items():
        n = c["killed"] + c["survived"]
        print(f"{target:<28} {n:>7} {c['killed']:>7} {100 * c['killed'] / max(n, 1):>5.0f}%")
    total = sum(c["killed"] for c in table.values()), sum(sum(c.values()) for c in table.values())
    print(f"{'all':<28} {total[1]:>7} {total[0]:>7} {100 * total[0] / max(total[1], 1):>5.0f}%")
    print("\nsurvivors (mutmut show NAME):\n  " + "\n  ".join(survivors) if survivors else "\nno survivor")


if __name__ == "__main__":
    sys.exit(main())
