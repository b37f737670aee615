"""Side-by-side benchmarks: each ours-vs-theirs comparison is one module here.

Run one with `python -m bench.bench_tokenizer`, all of them with `python -m bench`.
Each checks that both sides compute the same thing before timing them, prints a
table (median of several runs, the ratio, the machine) and appends it to
bench/RESULTS.md.
"""
