"""Benchmark tokenizer.py against Hugging Face `tokenizers` (report §2 tokenization).

1. Encode throughput (MB/s of UTF-8) on every .py file of the standard library with the
   official Qwen2.5 vocabulary: one thread, and batched (threads) — after checking that both
   sides give identical ids. Target: ours >= 5x faster.
2. BPE training of 8,192 tokens on the same corpus: ours (readable Python) vs HF's BpeTrainer
   (Rust, all cores), same regex, NFC and special tokens. Reported, with the compression each
   vocabulary reaches, and a check that our trained files give the same ids in HF.

    python -m bench.bench_tokenizer [--repeat 3] [--skip-train]
"""
import argparse
import os
import tempfile
import time

import tokenizers
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers

from bench.common import peak_rss_mb, report, timeit
from tokenizer import PATTERN, SPECIAL_TOKENS, Tokenizer, _stdlib_files, official_files


def stdlib_texts():
    texts = []
    for path in _stdlib_files():
        try:
            with open(path, encoding="utf-8") as f:
                texts.append(f.read())
        except UnicodeDecodeError:  # a handful of files test other encodings on purpose
            pass
    return texts


def hf_ids(hf, texts):
    return [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]


def hf_bpe_trainer(texts, vocab_size):
    """HF's own trainer, configured like Qwen's tokenizer.json (and like our save())."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def main(repeat=3, skip_train=False):
    texts = stdlib_texts()
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    ours = Tokenizer.from_pretrained(official_files())
    hf = tokenizers.Tokenizer.from_file(os.path.join(official_files(), "tokenizer.json"))

    ids = ours.encode_batch(texts)
    assert ids == hf_ids(hf, texts), "ids differ from HF tokenizers: no timing of a wrong answer"
    assert ids == [ours.encode(t) for t in texts]
    n_tokens = sum(map(len, ids))

    # Both sides already ran once (the check above), so no extra warm-up run.
    t_ours_1 = timeit(lambda: [ours.encode(t) for t in texts], repeat=repeat, warmup=0)
    t_hf_1 = timeit(lambda: [hf.encode(t, add_special_tokens=False) for t in texts], repeat=repeat, warmup=0)
    t_ours_b = timeit(lambda: ours.encode_batch(texts), repeat=repeat, warmup=0)
    t_hf_b = timeit(lambda: hf.encode_batch(texts, add_special_tokens=False), repeat=repeat, warmup=0)
    rows = [["encode, 1 thread", f"{mb / t_ours_1:.1f} MB/s", f"{mb / t_hf_1:.1f} MB/s", f"{t_hf_1 / t_ours_1:.1f}x"],
            ["encode, batched (threads)", f"{mb / t_ours_b:.1f} MB/s", f"{mb / t_hf_b:.1f} MB/s",
             f"{t_hf_b / t_ours_b:.1f}x"]]
    notes = (f"{len(texts)} stdlib .py files, {mb:.1f} MB, {n_tokens:,} tokens; ids identical on every file. "
             f"Median of {repeat} runs. Target >= 5x.")

    if not skip_train:
        t0 = time.perf_counter()
        trained = Tokenizer.train(texts, 8192, verbose=False)
        t_ours_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        hf_trained = hf_bpe_trainer(texts, 8192)
        t_hf_train = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as d:  # our files, read by HF, give our ids
            trained.save(d)
            ours_ids = trained.encode_batch(texts)
            same = ours_ids == hf_ids(tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json")), texts)
        assert same, "our trained tokenizer gives different ids in HF tokenizers"
        n_ours = sum(map(len, ours_ids))
        n_hf = sum(map(len, hf_ids(hf_trained, texts)))
        rows.append(["train 8,192-token BPE", f"{t_ours_train:.1f} s", f"{t_hf_train:.1f} s",
                     f"{t_hf_train / t_ours_train:.2f}x"])
        notes += (f" Training: one run each; ours is single-process Python, HF's BpeTrainer is Rust on all "
                  f"cores. Bytes per token on the corpus: ours {mb * 1e6 / n_ours:.2f}, HF-trained "
                  f"{mb * 1e6 / n_hf:.2f} (ties between equal counts are broken differently); our saved "
                  f"files give identical ids in HF tokenizers.")
    notes += f" Peak RSS {peak_rss_mb():,.0f} MiB."
    report("Tokenizer: tokenizer.py vs HF tokenizers (official Qwen2.5 vocabulary)",
           ["what", "ours", "HF tokenizers", "ours faster by"], rows, notes)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args()
    main(args.repeat, args.skip_train)
