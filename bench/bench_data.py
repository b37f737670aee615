"""Benchmark data_fim.py against what training consumes (issue 11; report §3.2 data pipeline).

1. Preparation throughput: `prepare()` on the built-in corpus (the standard library) with the
   official Qwen2.5 vocabulary, file level and repo level (MB of source per second, all of
   it: reading, filters, split, HumanEval decontamination, import ordering, tokenizing, writing).
2. Serving throughput: `PackedDataset.get_batch` tokens/s at seq_len 256 and 1024 with
   fim_rate 0.5 (context-level FIM re-encodes every FIM'd fragment), against the tiny model's
   training step (fwd + bwd + AdamW, the batch shapes of pretrain.py / repo_pretrain.py) run
   in the same process. Target: serving >= 20x training, i.e. data costs < 5% of a step.

Before timing it checks that serving is deterministic (two datasets, same global indices,
same batch), exact in shape and within the vocabulary.

    python -m bench.bench_data [--repeat 3]
"""
import argparse
import itertools
import tempfile

import torch

from bench.common import peak_rss_mb, report, timeit
from data_fim import PackedDataset, prepare
from model import ModelConfig, Transformer
from tokenizer import Tokenizer, official_files


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
    """Tokens/s of get_batch over fresh global indices (every call reads new samples)."""
    counter = itertools.count()

    def serve():
        for _ in range(batches_per_call):
            k = next(counter)
            ds.get_batch(range(k * batch, (k + 1) * batch))

    return batches_per_call * batch * ds.seq_len / timeit(serve, repeat=repeat, warmup=1)


def check(data_dir, tok, seq_len):
    a = PackedDataset(data_dir, tok, seq_len, fim_rate=0.5, seed=7)
    b = PackedDataset(data_dir, tok, seq_len, fim_rate=0.5, seed=7)
    idx = [5, 17, 3, 1000, 99]
    (xa, ya), (xb, yb) = a.get_batch(idx), b.get_batch(idx)
    assert torch.equal(xa, xb) and torch.equal(ya, yb), "serving is not deterministic"
    assert xa.shape == (len(idx), seq_len) and int(xa.max()) < tok.n_vocab
    assert (xa == tok.special["<|fim_prefix|>"]).any(), "no FIM at fim_rate 0.5"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    tok = Tokenizer.from_pretrained(official_files())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        meta = {}

        def prep(level):
            meta[level] = prepare(tok, f"{tmp}/{level}", level=level, seq_len=1024, verbose=False)

        for level, warmup in (("file", 1), ("repo", 0)):
            t = timeit(lambda: prep(level), repeat=args.repeat, warmup=warmup)
            mb, tokens = meta[level]["corpus"]["bytes"] / 1e6, meta[level]["splits"]["train"]["tokens"]
            rows.append((f"prepare, {level} level", f"built-in corpus, {mb:.1f} MB, official vocab",
                         f"{mb / t:.2f} MB/s ({tokens / t / 1e3:,.0f}k tok/s, {t:.1f} s)", "-", "-", "reported"))
        train_speed = {}
        for level, seq_len, batch in (("file", 256, 8), ("file", 1024, 2), ("repo", 1024, 2)):
            check(f"{tmp}/{level}", tok, seq_len)
            if (batch, seq_len) not in train_speed:
                train_speed[batch, seq_len] = train_tokens_per_s(batch, seq_len, args.repeat)
            train = train_speed[batch, seq_len]
            for fim_rate in (0.5, 0.0) if level == "file" and seq_len == 1024 else (0.5,):
                ds = PackedDataset(f"{tmp}/{level}", tok, seq_len, fim_rate=fim_rate, seed=0)
                serve = serve_tokens_per_s(ds, batch, args.repeat)
                rows.append((f"serve, {level} level, fim_rate {fim_rate}", f"seq_len {seq_len}, batch {batch}",
                             f"{serve / 1e3:,.0f}k tok/s", f"tiny train step {train / 1e3:,.1f}k tok/s",
                             f"{serve / train:.0f}x", ">= 20x" if fim_rate else "reported"))
    report("data_fim.py: preparation and serving vs training consumption",
           ["what", "setting", "ours", "training consumes", "ratio", "target"], rows,
           notes=f"Medians of {args.repeat} runs, {torch.get_num_threads()} torch threads, "
                 f"peak RSS {peak_rss_mb():,.0f} MiB. Serving runs in the training process "
                 "(pretrain.py calls get_batch inline), so ratio = step time / data time.")


if __name__ == "__main__":
    main()
