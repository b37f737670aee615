"""model.py against Hugging Face transformers' Qwen2ForCausalLM: same config, weights,
batch and dtype on both sides, checked to compute the same thing before being timed.

    python -m bench.bench_model              # everything below (~15 min on 2 cores)
    python -m bench.bench_model --quick      # tiny config only (a few minutes)
    python -m bench.bench_model --only generation ragged   # some tables only
    python -m bench.bench_model --humaneval 164            # greedy HumanEval end to end, 0.5B

Tables, each printed and appended to bench/RESULTS.md:
  training     training step (forward + backward + AdamW), fp32 and bf16 autocast;
  generation   greedy generation at batch 1 and 8 in tokens/s, fp32 and bf16 (ours eager and with
               the decode step compiled; theirs: `generate`);
  ragged       32 prompts of 20-200 tokens, 48 new tokens each, the ~100M config with the real
               vocabulary: our continuous batching against transformers once per prompt and
               left-padded in one batch; and n=20 samples of a prompt sharing one prefill;
  prefill      an 8K-token prompt with YaRN on (time to the first token), with the peak memory of
               each side measured in a fresh process of its own;
  humaneval    `eval.py humaneval` end to end (generation + sandbox) on a random 0.5B checkpoint
               with the official tokenizer, --max-new-tokens 128 (only with --humaneval N).
"ratio" is always how many times faster ours is (theirs' time / ours). On a shared machine the
sides are timed in turns, so a busy spell slows both.
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
import time

import torch

from bench.common import peak_rss_mb, report, timeit
from model import ModelConfig, Transformer, inference_dtype

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


def in_turns(fns, rounds):
    """Median seconds of each function, timed in turns after one warm-up call each."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    for _ in range(rounds):
        for f, t in zip(fns, times):
            t.append(timeit(f, repeat=1, warmup=0))
    return [statistics.median(t) for t in times]


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
            t_ours, t_theirs = in_turns([lambda: train_step(ours, opts[0], x, y, dt),
                                         lambda: train_step(theirs, opts[1], x, y, dt)], rounds)
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


def hf_greedy(model, ids, new, mask=None):
    """transformers' greedy generate of exactly `new` tokens (no early stop), plain KV cache."""
    return model.generate(ids, attention_mask=torch.ones_like(ids) if mask is None else mask, max_new_tokens=new,
                          min_new_tokens=new, do_sample=False, pad_token_id=0, eos_token_id=None)


def bench_generation(name, batches, prompt, new, rounds, dtypes):
    cfg = ModelConfig.from_name(name)
    ours = build_ours(cfg).eval()
    theirs = build_theirs(cfg, ours).eval()
    rows = []
    for dt in dtypes:
        if dt == "bf16":  # both sides hold bf16 weights, as `--dtype auto` gives on this CPU
            ours.to(torch.bfloat16), theirs.to(torch.bfloat16)
        for B in batches:
            ids = torch.randint(0, cfg.vocab_size, (B, prompt), generator=torch.Generator().manual_seed(2))
            fns = [lambda: ours.generate(ids, new), lambda: ours.generate(ids, new, compile=True),
                   lambda: hf_greedy(theirs, ids, new)]
            a, c, b = (f() for f in fns)  # also the warm-up (and compilation)
            assert a.shape == b.shape == (B, prompt + new) and torch.equal(a[:, prompt], b[:, prompt])
            same = (a[:, prompt:] == b[:, prompt:]).float().mean().item()
            same_c = (a[:, prompt:] == c[:, prompt:]).float().mean().item()
            t_ours, t_comp, t_theirs = in_turns(fns, rounds)
            rows.append((name, dt, B, f"{prompt}+{new}", f"{B * new / t_ours:.1f}", f"{B * new / t_comp:.1f}",
                         f"{B * new / t_theirs:.1f}", f"{t_theirs / t_ours:.2f}x", f"{t_theirs / t_comp:.2f}x",
                         f"{same:.0%}", f"{same_c:.0%}"))
    return rows


RAGGED_CONFIG = dict(vocab_size=151936)  # "small" with the real vocabulary: ~102M parameters


def bench_ragged(rounds, n_prompts=32, new=48):
    """Ragged prompts, our continuous batching against transformers once per prompt and batched."""
    cfg = ModelConfig.from_name("small", **RAGGED_CONFIG)
    ours = build_ours(cfg).eval()
    theirs = build_theirs(cfg, ours).eval()
    g = torch.Generator().manual_seed(4)
    prompts = [torch.randint(0, cfg.vocab_size, (int(n),), generator=g).tolist()
               for n in torch.randint(20, 201, (n_prompts,), generator=g)]
    T = max(map(len, prompts))
    ids, mask = torch.zeros(n_prompts, T, dtype=torch.long), torch.zeros(n_prompts, T, dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding, as transformers' batched generation needs
        ids[i, T - len(p):], mask[i, T - len(p):] = torch.tensor(p), 1
    t0 = time.perf_counter()
    one_by_one = [hf_greedy(theirs, torch.tensor([p]), new)[0, len(p):].tolist() for p in prompts]
    t_each = time.perf_counter() - t0  # the reference ids, and transformers as users call it
    fns = [lambda: ours.generate(prompts, new, batch_size=n_prompts),
           lambda: ours.generate(prompts, new, batch_size=n_prompts, compile=True),
           lambda: hf_greedy(theirs, ids, new, mask)[:, T:].tolist()]
    got, got_c, batched = (f() for f in fns)
    assert got == one_by_one, "continuous batching differs from one prompt at a time"
    same = lambda out: sum(a == b for x, y in zip(out, one_by_one) for a, b in zip(x, y)) / (n_prompts * new)  # noqa
    t_ours, t_comp, t_batched = in_turns(fns, rounds)
    rows = [("ours, continuous batching (32 slots)", f"{t_ours:.2f}", f"{n_prompts * new / t_ours:.0f}", "1.00x",
             f"{same(got):.0%}"),
            ("ours, decode step compiled", f"{t_comp:.2f}", f"{n_prompts * new / t_comp:.0f}",
             f"{t_ours / t_comp:.2f}x", f"{same(got_c):.0%}"),
            ("transformers, one prompt at a time", f"{t_each:.2f}", f"{n_prompts * new / t_each:.0f}",
             f"{t_ours / t_each:.2f}x (ours {t_each / t_ours:.1f}x faster)", "100% (reference)"),
            ("transformers, left-padded batch of 32", f"{t_batched:.2f}", f"{n_prompts * new / t_batched:.0f}",
             f"{t_ours / t_batched:.2f}x (ours {t_batched / t_ours:.2f}x faster)", f"{same(batched):.0%}")]
    # n samples of one prompt (pass@k): 8 prompts x 20 samples share 8 prefills; 160 distinct prompts
    # of the same length need 160, for the same decoding work (greedy: random weights give flat
    # distributions whose nucleus sampling would sort all 151,936 logits and hide the prefill).
    base = [torch.randint(0, cfg.vocab_size, (200,), generator=g).tolist() for _ in range(160)]
    shared = [p for p in base[:8] for _ in range(20)]
    t_shared, t_distinct = in_turns([lambda: ours.generate(shared, 16, batch_size=32),
                                     lambda: ours.generate(base, 16, batch_size=32)], max(1, rounds - 1))
    rows.append(("ours, 8 prompts x 20 samples (shared prefill) vs 160 prompts, 200+16 tokens",
                 f"{t_shared:.2f} vs {t_distinct:.2f}", f"{160 * 16 / t_shared:.0f} vs {160 * 16 / t_distinct:.0f}",
                 f"sharing {t_distinct / t_shared:.2f}x faster", "-"))
    return rows


def bench_humaneval(limit, batch_size, dtype):
    """`eval.py humaneval` end to end on a random 0.5B checkpoint with the official tokenizer."""
    import tempfile

    from tokenizer import Tokenizer, official_files
    with tempfile.TemporaryDirectory() as d:
        build_ours(ModelConfig.from_name("0.5B")).save_pretrained(d)
        Tokenizer.from_pretrained(official_files()).save(d)
        cmd = [sys.executable, "eval.py", "humaneval", "--model", d, "--max-new-tokens", "128", "--limit", str(limit),
               "--batch-size", str(batch_size), "--dtype", dtype, "--out", os.path.join(d, "he.json")]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
        seconds = time.perf_counter() - t0
        if out.returncode:
            raise SystemExit(out.stderr)
        rate = next((line for line in reversed(out.stdout.splitlines()) if "tokens/s" in line), "")
        with open(os.path.join(d, "he.samples.jsonl")) as f:
            n = sum(1 for _ in f)
    if dtype == "auto":
        dtype = f"auto ({str(inference_dtype('cpu')).removeprefix('torch.')} here)"
    return [("0.5B random weights", dtype, batch_size, n, f"{seconds:.0f}", f"{seconds * 164 / n:.0f}",
             rate.split(", ", 1)[-1].split(", ~")[0])]


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
    p.add_argument("--only", nargs="+", choices=TABLES, help="these tables only")
    p.add_argument("--rounds", type=int, default=None, help="timed runs per side (median reported)")
    p.add_argument("--prefill-len", type=int, default=8192, help="prompt length of the prefill benchmark")
    p.add_argument("--threads", type=int, default=None, help="torch threads for both sides (default: torch's)")
    p.add_argument("--humaneval", type=int, metavar="N", help="time `eval.py humaneval` on the first N problems")
    p.add_argument("--batch-size", type=int, default=64, help="eval.py --batch-size for --humaneval")
    p.add_argument("--dtype", default="auto", help="eval.py --dtype for --humaneval")
    p.add_argument("--prefill-side", choices=("ours", "theirs"), help=argparse.SUPPRESS)  # internal
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 5)
    if args.prefill_side:
        return prefill_side(args.prefill_side, args.prefill_len, rounds)
    torch.manual_seed(0)
    if args.humaneval:
        rows = bench_humaneval(args.humaneval, args.batch_size, args.dtype)
        report("Greedy HumanEval end to end (eval.py humaneval --max-new-tokens 128)",
               ["config", "dtype", "batch", "samples", "seconds", "seconds for all 164", "generation"], rows,
               f"Random weights never stop early: each row runs to the cap unless a stop string appears. "
               f"Generation, the sandbox run of every program and the report; {torch.get_num_threads()} "
               f"threads. {load_note()}")
        return
    tables = args.only or TABLES
    names = ["tiny"] if args.quick else ["tiny", "0.5B"]
    if "training" in tables:
        shapes = {"tiny": (8, 256), "0.5B": (1, 128)}
        rows = []
        for name in names:
            rows += bench_training(name, *shapes[name], rounds if name == "tiny" else 2)
        report("Training step (fwd + bwd + AdamW): model.py vs transformers Qwen2ForCausalLM",
               ["config", "dtype", "batch x seq", "ours ms", "transformers ms", "ratio", "fp32 logit diff"], rows,
               f"Median of {rounds} steps (0.5B: 2, one side in memory at a time); {torch.get_num_threads()} torch "
               f"threads. Process peak RSS {peak_rss_mb():.0f} MB. {load_note()}")
    if "generation" in tables:
        rows = []
        for name in names:
            rows += bench_generation(name, (1, 8), 16, 64 if name == "tiny" else 16,
                                     rounds if name == "tiny" else 1, ("fp32", "bf16"))
        report("Greedy generation: model.generate vs transformers generate",
               ["config", "dtype", "batch", "prompt+new", "ours tok/s", "ours compiled tok/s", "transformers tok/s",
                "ratio", "ratio compiled", "same ids", "compiled same ids"], rows,
               f"tok/s counts new tokens over all rows; prompt processing included; compilation is in the "
               f"warm-up, not the timing. {torch.get_num_threads()} threads. {load_note()}")
    if "ragged" in tables and not args.quick:
        rows = bench_ragged(max(2, rounds // 2))
        report("Ragged prompts: 32 prompts of 20-200 tokens, 48 new tokens each, ~100M config, fp32",
               ["generation", "seconds", "new tok/s", "time vs ours", "same ids as one at a time"], rows,
               f"The `small` config with the real 151,936-row vocabulary (102M parameters). Our ids are checked "
               f"equal to transformers' one prompt at a time before timing. {torch.get_num_threads()} threads. "
               f"{load_note()}")
    if "prefill" in tables:
        rows = bench_prefill(args.prefill_len, max(2, rounds // 2))
        report("Prefill of a long prompt, YaRN on (time to first token)",
               ["config", "prompt tokens", "ours s", "transformers s", "ratio", "ours peak MB", "transformers peak MB",
                "logit diff"], rows, "Peak MB: RSS growth over the loaded model during the first prefill, "
               f"each side in a fresh process. YaRN factor 4 over a 4,096-token original context. {load_note()}")


TABLES = ["training", "generation", "ragged", "prefill"]

if __name__ == "__main__":
    main()
