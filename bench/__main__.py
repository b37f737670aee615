"""Run every benchmark, one process each (so each reports its own peak memory).

    python -m bench                      # all of them; tables appended to bench/RESULTS.md
    python -m bench model sandbox        # a subset, by name
"""
import subprocess
import sys
import time

BENCHES = ["model", "train", "tokenizer", "data", "sandbox"]


def main(names):
    names = names or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        sys.exit(f"error: unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}.")
    failed = []
    for name in names:
        t0 = time.time()
        print(f"== bench.bench_{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.bench_{name}"]).returncode:
            failed.append(name)
        print(f"== bench.bench_{name}: {time.time() - t0:.0f} s", flush=True)
    if failed:
        sys.exit(f"error: {', '.join(failed)} failed; see the output above.")


if __name__ == "__main__":
    main(sys.argv[1:])
