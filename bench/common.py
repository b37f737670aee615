"""Timing helpers shared by the benchmarks: medians, peak memory, a results table."""
import os
import platform
import resource
import statistics
import time
from datetime import datetime, timezone

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def timeit(fn, repeat=5, warmup=1):
    """Call fn() warmup+repeat times; return the median wall time (seconds) of the counted runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine():
    """One line naming the machine, so a figure is never quoted without it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


def report(title, header, rows, notes=""):
    """Print a markdown table and append it, dated and with the machine, to bench/RESULTS.md."""
    lines = [f"### {title}", "", f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {machine()}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(RESULTS, "a") as f:
        f.write(text + "\n")
