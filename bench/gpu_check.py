"""The GPU path of trainer.py, checked in one command (< 8 minutes on one GPU):

    python bench/gpu_check.py           # every visible GPU; appends its table to bench/RESULTS.md
    python bench/gpu_check.py --cpu     # the same code paths at tiny size, 2 CPU processes (gloo)

1. attention: the kernels of one profiled training step of the model below must include flash
   (or cuDNN) attention and no math or memory-efficient one, and an input flash cannot take
   (fp32 on a GPU, dropout on a CPU) must stop training instead of falling back;
2. training: 20 steps of the 0.5B config (the `speedrun.sh --gpu` shape: 32,768-token
   vocabulary, 8K context) in bf16 with FSDP2, activation checkpointing and torch.compile on
   all N visible GPUs, through trainer.build_model/train: tokens/s, MFU per GPU, peak memory;
3. when N > 1, the same 20 steps on one GPU (N accumulation steps: the same global batch and
   samples): the per-step losses must agree;
4. generation: the model the run saved (bf16 safetensors, loaded back with strict keys)
   continues a (B, 128) prompt by 256 tokens with `model.generate`: new tokens/s.

Training data is synthetic and addressed by global index like the stages' data: sample i is a
random half-sequence written twice, so the loss can fall (the second half is a copy) and no
tokenizer or corpus is needed. The outputs go to a temporary directory, removed at the end.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from bench.common import peak_rss_mb, report  # noqa: E402

GPU = dict(model="0.5B", vocab=32768, seq_len=8192, batch_size=4, steps=20, nproc=0, prompt=128, new=256)
CPU = dict(model="tiny", vocab=1024, seq_len=128, batch_size=2, steps=20, nproc=2, prompt=32, new=32)
LOSS_TOLERANCE = 1e-2      # bf16 compute: 1 vs N ranks differ only in the order of fp32 sums


class Copies:
    """Synthetic samples by global index (PackedDataset's interface): (x, y) batches."""

    def __init__(self, vocab, seq_len, seed=0):
        self.vocab, self.seq_len, self.seed = vocab, seq_len, seed

    def __len__(self):
        return 2**31

    def get_batch(self, indices):
        rows = []
        for i in indices:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            half = torch.randint(0, self.vocab, (self.seq_len // 2 + 1,), generator=g)
            rows.append(torch.cat([half, half])[: self.seq_len + 1])
        t = torch.stack(rows)
        return t[:, :-1], t[:, 1:]


# The kernels SDPA dispatches to (flash's CPU kernel is ..._flash_attention_for_cpu).
SDPA_OPS = ("aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_cudnn_attention",
            "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_attention_math")


def sdpa_kernels(model, batch, d):
    """The SDPA kernels one profiled forward + backward of the training model runs."""
    import trainer
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if d.device.startswith("cuda") else [])
    with trainer.fused_attention(), profile(activities=acts) as prof:
        model(batch[0], targets=batch[1], reduction="sum").backward()
    model.zero_grad(set_to_none=True)
    return sorted({e.key for e in prof.key_averages() if e.key.startswith(SDPA_OPS)})


def worker(a):
    """One run under torchrun: built and trained exactly as the stages do (trainer.py), then reported."""
    import torch.distributed as dist
    import trainer
    from model import ModelConfig
    d = trainer.setup_distributed()
    cfg = trainer.TrainConfig(model=a.model, out=a.out, max_steps=a.steps, batch_size=a.batch_size,
                               grad_accum=a.grad_accum, seq_len=a.seq_len, lr=3e-4, warmup=5, compile=True,
                               activation_checkpointing=True, save_every=0, log_every=5, eval_every=10**9)
    mc = ModelConfig.from_name(a.model, vocab_size=a.vocab, rope_theta=10000.0)
    bf16 = trainer.use_bf16(cfg, d.device)
    model = trainer.build_model(cfg, mc, d, bf16)
    data = Copies(a.vocab, a.seq_len)
    trainer.train(cfg, model, data, None, d=d, bf16=bf16)
    ops = sdpa_kernels(model, trainer.to_device(data.get_batch(list(range(a.batch_size))), d.device), d)
    cuda = d.device.startswith("cuda")
    # GPUs: the allocator's peak; CPUs: the process's peak resident memory.
    peak = torch.tensor(float(torch.cuda.max_memory_allocated(d.device)) if cuda else peak_rss_mb() * 2**20,
                        device=d.device)
    if d.world > 1:
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    if d.main:
        with open(os.path.join(a.out, "check.json"), "w") as f:
            json.dump({"sdpa_ops": ops, "peak_gib": peak.item() / 2**30, "bf16": bf16, "world": d.world,
                       "device": torch.cuda.get_device_name(d.device) if cuda else "CPU"}, f)
    trainer.teardown()


def run(spec, nproc, grad_accum, out):
    """torchrun this file's worker on nproc ranks; its metrics and check.json."""
    args = dict(spec, grad_accum=grad_accum, out=out)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           os.path.abspath(__file__), "--worker", json.dumps(args)]
    t0 = time.time()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"error: the {nproc}-rank run failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
    with open(os.path.join(out, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    with open(os.path.join(out, "check.json")) as f:
        check = json.load(f)
    return recs, check, time.time() - t0


def refuses_math_fallback(device, mc):
    """Training attention on an input no fused kernel takes must stop, not fall back."""
    import torch.nn.functional as F
    import trainer
    q = torch.randn(1, mc.num_attention_heads, 64, mc.head_dim, device=device)
    k = v = torch.randn(1, mc.num_key_value_heads, 64, mc.head_dim, device=device)
    extra = {} if device.startswith("cuda") else {"dropout_p": 0.5}   # fp32 is enough on a GPU
    try:
        with trainer.fused_attention():
            F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True, **extra)
    except trainer.Fatal:
        return True
    return False


def generation(out, device, prompt, new):
    """Greedy continuation with the saved model: new tokens/s at batch 1 and 8."""
    from model import Transformer
    model = Transformer.from_pretrained(out, device=device, dtype=torch.bfloat16 if "cuda" in device else None)
    sync = torch.cuda.synchronize if "cuda" in device else (lambda: None)
    rates = {}
    for b in (1, 8):
        ids = torch.randint(0, model.config.vocab_size, (b, prompt), device=device)
        model.generate(ids, 8)   # warm-up
        sync()
        t0 = time.perf_counter()
        got = model.generate(ids, new)
        sync()
        assert got.shape == (b, prompt + new)
        rates[b] = b * new / (time.perf_counter() - t0)
    return rates


def main(a):
    spec = dict(CPU if a.cpu else GPU)
    spec.update({k: v for k, v in (("steps", a.steps), ("nproc", a.nproc)) if v})
    cuda = torch.cuda.is_available() and not a.cpu
    if not cuda and not a.cpu:
        sys.exit("error: no GPU visible; run with --cpu for the same code paths at tiny size on CPUs.")
    n = spec.pop("nproc") or torch.cuda.device_count()
    prompt, new = spec.pop("prompt"), spec.pop("new")
    from model import ModelConfig
    mc = ModelConfig.from_name(spec["model"], vocab_size=spec["vocab"])
    device = "cuda:0" if cuda else "cpu"
    tmp = tempfile.mkdtemp(prefix="gpu_check_")
    failures, rows = [], []
    try:
        recs, check, secs = run(spec, n, 1, os.path.join(tmp, f"ranks{n}"))
        steady = recs[len(recs) // 4:]   # the first steps compile
        tps = statistics.median(r["tokens_per_s"] for r in steady)
        mfu = statistics.median(r["mfu"] for r in steady) if "mfu" in recs[0] else None
        ops = check["sdpa_ops"]
        fused = [o for o in ops if "flash" in o or "cudnn" in o]
        kernels_ok = bool(fused) and not [o for o in ops if "math" in o or "efficient" in o]
        refuses = refuses_math_fallback(device, mc)
        print(f"attention kernels in a training step: {', '.join(ops) or 'none seen'}; "
              f"an input flash cannot take {'stops training' if refuses else 'FALLS BACK'}")
        if not kernels_ok:
            failures.append(f"training attention ran {ops or 'no visible SDPA kernel'}, not flash/cuDNN")
        if not refuses:
            failures.append("an input no fused kernel takes fell back to another kernel")
        print(f"{n} rank(s), {spec['model']}, {'bf16' if check['bf16'] else 'fp32'}, FSDP2 + AC + compile: "
              f"{tps:,.0f} tokens/s, MFU {f'{100 * mfu:.1f}%' if mfu is not None else 'n/a'}, "
              f"peak {check['peak_gib']:.1f} GiB, {secs:.0f} s")
        diff = None
        if n > 1:
            ref, _, secs1 = run(spec, 1, n, os.path.join(tmp, "ranks1"))
            diff = max(abs(x["loss"] - y["loss"]) for x, y in zip(recs, ref))
            print(f"1 vs {n} ranks, same global batch: max per-step loss difference {diff:.2e} ({secs1:.0f} s)")
            if len(ref) != len(recs) or diff > LOSS_TOLERANCE:
                failures.append(f"1-rank and {n}-rank losses differ by {diff:.2e} > {LOSS_TOLERANCE}")
        gen = generation(os.path.join(tmp, f"ranks{n}"), device, prompt, new)
        print(f"generation, {prompt}+{new} tokens: " + ", ".join(f"batch {b}: {r:,.0f} tok/s" for b, r in gen.items()))
        rows.append([check["device"], n, spec["model"], f"{spec['batch_size']}x{spec['seq_len']}",
                     f"{tps:,.0f}", f"{100 * mfu:.1f}%" if mfu is not None else "n/a", f"{check['peak_gib']:.1f}",
                     f"{diff:.1e}" if diff is not None else "-", ", ".join(o.removeprefix("aten::") for o in fused),
                     f"{gen[1]:,.0f} / {gen[8]:,.0f}"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if cuda and not failures:
        report("GPU check: 0.5B, bf16, FSDP2 + activation checkpointing + compile (bench/gpu_check.py)",
               ["device", "GPUs", "config", "batch x seq per GPU", "tokens/s (all GPUs)", "MFU per GPU",
                "peak GiB", "1 vs N loss diff", "attention kernel", "generate tok/s (batch 1 / 8)"], rows,
               f"Median over steps {spec['steps'] // 4 + 1}-{spec['steps']} (the first compile). "
               f"Generation: greedy, {prompt}-token prompt, {new} new tokens, bf16, model.generate.")
    if failures:
        sys.exit("FAILED: " + "; ".join(failures))
    print("PASSED")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="tiny config on CPU processes (gloo): the same code paths")
    p.add_argument("--steps", type=int, default=0, help="training steps (default 20)")
    p.add_argument("--nproc", type=int, default=0, help="ranks (default: every GPU; 2 with --cpu)")
    p.add_argument("--worker", help=argparse.SUPPRESS)   # internal: one torchrun rank
    a = p.parse_args()
    if a.worker:
        worker(argparse.Namespace(**json.loads(a.worker)))
    else:
        main(a)
