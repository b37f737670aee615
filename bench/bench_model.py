"""model.py against Hugging Face transformers' Qwen2ForCausalLM (issue 11): same config, weights,
batch and dtype on both sides, checked to compute the same thing before being timed.

    python -m bench.bench_model            # tiny and 0.5B configs (a few minutes on 2 cores)
    python -m bench.bench_model --quick    # tiny config only (about a minute)

Three tables, each printed and appended to bench/RESULTS.md:
  1. training step (forward + backward + AdamW), fp32 and bf16 autocast;
  2. greedy generation in tokens/s, batch 1 and 8 (ours: preallocated KV cache; theirs: `generate`);
  3. prefill of an 8K-token prompt with YaRN on (time to the first new token), with the peak
     memory of each side measured in a fresh process of its own.
"ratio" is always how many times faster ours is (theirs' time / ours). On a shared machine the
two sides are timed in turns, so a busy spell slows both.
"""
import argparse
import contextlib
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys

import torch

from bench.common import peak_rss_mb, report, timeit
from model import ModelConfig, Transformer

DTYPES = ("fp32", "bf16")
# The prefill model: tiny, with the report's YaRN factor 4 over a 4K original context, so an
# 8K prompt runs past the context the rotary frequencies were "trained" for.
PREFILL_CONFIG = dict(rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096},
                      max_position_embeddings=16384)


def build_ours(cfg, seed=0):
    torch.manual_seed(seed)
    with torch.device("meta"):  # the documented path: no default init, then one init_weights()
        model = Transformer(cfg)
    model.to_empty(device="cpu")
    model.init_weights()
    return model


def build_theirs(cfg, ours):
    """transformers' model (sdpa attention, its default) holding a copy of our weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    theirs = Qwen2ForCausalLM(Qwen2Config(**cfg.to_hf()))
    state = {("" if k == "lm_head.weight" else "model.") + k: v for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state)  # copies, so training one side never moves the other
    return theirs


def autocast(dtype):
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()


def loss_of(model, x, y, dtype):
    with autocast(dtype):
        if isinstance(model, Transformer):
            return model(x, y)
        return model(input_ids=x, labels=y, shift_labels=y).loss  # y is already shifted


def train_step(model, opt, x, y, dtype):
    loss_of(model, x, y, dtype).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def in_turns(fa, fb, rounds):
    """Median seconds of fa() and fb(), timed alternately after one warm-up call each."""
    fa(), fb()
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(timeit(fa, repeat=1, warmup=0))
        tb.append(timeit(fb, repeat=1, warmup=0))
    return statistics.median(ta), statistics.median(tb)


def check_same(ours, theirs, x, y):
    """Both sides must agree before anything is timed: fp32 logits, and the loss in each dtype."""
    with torch.no_grad():
        diff = (ours(x[:1]) - theirs(x[:1]).logits).abs().max().item()
        losses = {dt: (loss_of(ours, x, y, dt).item(), loss_of(theirs, x, y, dt).item()) for dt in DTYPES}
    assert diff < 1e-3, f"logits differ by {diff}"
    for dt, (a, b) in losses.items():
        assert abs(a - b) < (1e-4 if dt == "fp32" else 3e-2), f"{dt} losses differ: {a} vs {b}"
    return diff


def bench_training(name, B, T, rounds):
    cfg = ModelConfig.from_name(name)
    x = torch.randint(0, cfg.vocab_size, (B, T), generator=torch.Generator().manual_seed(1))
    y = x.roll(-1, dims=1)
    ours = build_ours(cfg)
    theirs = build_theirs(cfg, ours)
    diff = check_same(ours, theirs, x, y)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-5) for m in (ours, theirs)]
    rows = []
    if cfg.num_params() < 1e8:
        for dt in DTYPES:
            t_ours, t_theirs = in_turns(lambda: train_step(ours, opts[0], x, y, dt),
                                        lambda: train_step(theirs, opts[1], x, y, dt), rounds)
            rows.append((name, dt, f"{B}x{T}", t_ours, t_theirs))
    else:
        # A 0.5B model with its AdamW state is ~8 GB: keep one side in memory at a time.
        times = {}
        for side, model, opt in (("ours", ours, opts[0]), ("theirs", theirs, opts[1])):
            for dt in DTYPES:
                times[side, dt] = timeit(lambda: train_step(model, opt, x, y, dt), repeat=rounds, warmup=1)
            model.to("meta")  # frees this side's weights, gradients and AdamW state
            opt.state.clear()
            gc.collect()
        rows = [(name, dt, f"{B}x{T}", times["ours", dt], times["theirs", dt]) for dt in DTYPES]
    del ours, theirs, opts
    gc.collect()
    return [(n, dt, bt, f"{a * 1e3:.0f}", f"{b * 1e3:.0f}", f"{b / a:.2f}x", f"{diff:.1e}")
            for n, dt, bt, a, b in rows]


def bench_generation(name, batches, prompt, new, rounds):
    cfg = ModelConfig.from_name(name)
    ours = build_ours(cfg).eval()
    theirs = build_theirs(cfg, ours).eval()
    rows = []
    for B in batches:
        ids = torch.randint(0, cfg.vocab_size, (B, prompt), generator=torch.Generator().manual_seed(2))

        def run_ours():
            return ours.generate(ids, new)

        def run_theirs():  # exactly `new` greedy tokens, no early stop, plain KV cache
            return theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                                   min_new_tokens=new, do_sample=False, pad_token_id=0, eos_token_id=None)
        a, b = run_ours(), run_theirs()
        assert a.shape == b.shape == (B, prompt + new) and torch.equal(a[:, prompt], b[:, prompt])
        same = (a[:, prompt:] == b[:, prompt:]).float().mean().item()
        t_ours, t_theirs = in_turns(run_ours, run_theirs, rounds)
        rows.append((name, B, f"{prompt}+{new}", f"{B * new / t_ours:.1f}", f"{B * new / t_theirs:.1f}",
                     f"{t_theirs / t_ours:.2f}x", f"{same:.0%}"))
    return rows


def load_note():
    """Other work on a shared machine skews timings: say how busy it was."""
    return f"1-min load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."


def rss_mb(field):
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field + ":"))) / 1024


def prefill_side(side, length, rounds):
    """One side of the prefill benchmark, run in its own process so its peak memory is its own.
    Prints JSON: the cold run's peak RSS over the baseline, the median time, the next-token logits."""
    cfg = ModelConfig.from_name("tiny", **PREFILL_CONFIG)
    model = build_ours(cfg)
    if side == "theirs":
        model = build_theirs(cfg, model)
    model.eval()
    ids = torch.randint(0, cfg.vocab_size, (1, length), generator=torch.Generator().manual_seed(3))
    if side == "ours":
        def run():
            return model.generate(ids, 1)
    else:
        def run():
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False,
                                  pad_token_id=0, eos_token_id=None)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so no side starts with spare memory
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets the peak RSS (VmHWM) to the current RSS
        f.write("5")
    base = rss_mb("VmRSS")
    token = run()[0, -1].item()
    peak = rss_mb("VmHWM") - base
    seconds = timeit(run, repeat=rounds, warmup=0)
    with torch.no_grad():  # next-token logits through the plain forward, to check both sides agree
        logits = model(ids)[0, -1] if side == "ours" else model(ids, logits_to_keep=1).logits[0, -1]
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "token": token, "logits": logits.tolist()}))


def bench_prefill(length, rounds):
    res = {}
    for side in ("ours", "theirs"):
        out = subprocess.run([sys.executable, "-m", "bench.bench_model", "--prefill-side", side,
                              "--prefill-len", str(length), "--rounds", str(rounds),
                              "--threads", str(torch.get_num_threads())],
                             capture_output=True, text=True, check=True)
        res[side] = json.loads(out.stdout.strip().splitlines()[-1])
    a, b = res["ours"], res["theirs"]
    diff = (torch.tensor(a["logits"]) - torch.tensor(b["logits"])).abs().max().item()
    assert diff < 1e-3 and a["token"] == b["token"], f"prefill disagrees: logits differ by {diff}"
    return [("tiny+YaRN", length, f"{a['seconds']:.2f}", f"{b['seconds']:.2f}", f"{b['seconds'] / a['seconds']:.2f}x",
             f"{a['peak_mb']:.0f}", f"{b['peak_mb']:.0f}", f"{diff:.1e}")]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny config only, fewer rounds")
    p.add_argument("--rounds", type=int, default=None, help="timed runs per side (median reported)")
    p.add_argument("--prefill-len", type=int, default=8192, help="prompt length of the prefill benchmark")
    p.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's)")
    p.add_argument("--prefill-side", choices=("ours", "theirs"), help=argparse.SUPPRESS)  # internal
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 5)
    if args.prefill_side:
        return prefill_side(args.prefill_side, args.prefill_len, rounds)
    torch.manual_seed(0)
    names = ["tiny"] if args.quick else ["tiny", "0.5B"]
    shapes = {"tiny": (8, 256), "0.5B": (1, 128)}
    rows = []
    for name in names:
        rows += bench_training(name, *shapes[name], rounds if name == "tiny" else 2)
    report("Training step (fwd + bwd + AdamW): model.py vs transformers Qwen2ForCausalLM",
           ["config", "dtype", "batch x seq", "ours ms", "transformers ms", "ratio", "fp32 logit diff"], rows,
           f"Median of {rounds} steps (0.5B: 2, one side in memory at a time); {torch.get_num_threads()} torch "
           f"threads. Process peak RSS {peak_rss_mb():.0f} MB. {load_note()}")
    rows = []
    for name in names:
        rows += bench_generation(name, (1, 8), 16, 64 if name == "tiny" else 16, rounds if name == "tiny" else 1)
    report("Greedy generation, fp32: model.generate vs transformers generate",
           ["config", "batch", "prompt+new", "ours tok/s", "transformers tok/s", "ratio", "same ids"], rows,
           f"tok/s counts new tokens over all rows; prompt processing included. {load_note()}")
    rows = bench_prefill(args.prefill_len, max(2, rounds // 2))
    report("Prefill of a long prompt, YaRN on (time to first token)",
           ["config", "prompt tokens", "ours s", "transformers s", "ratio", "ours peak MB", "transformers peak MB",
            "logit diff"], rows, "Peak MB: RSS growth over the loaded model during the first prefill, "
           f"each side in a fresh process. YaRN factor 4 over a 4,096-token original context. {load_note()}")


if __name__ == "__main__":
    main()
