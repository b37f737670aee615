"""The training step (trainer.py) on this machine: eager against torch.compile, and the
peak memory of one 0.5B step with and without activation checkpointing.

Each configuration runs in a fresh process (so its peak resident memory is its own), builds
the model exactly as trainer.build_model does (meta device -> checkpointing -> compile -> init) and
times fwd + bwd + AdamW steps on random tokens.

    python -m bench.bench_train            # tiny eager/compiled, fp32/bf16; 0.5B memory (~3 min)
    python -m bench.bench_train --quick    # tiny only
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from bench.common import peak_rss_mb, report


def one(model_name, dtype, compile_, ac, batch, seq_len, steps):
    """Run in a child process: time `steps` training steps, print one JSON line."""
    import trainer
    from model import ModelConfig
    cfg = trainer.TrainConfig(model=model_name, compile=compile_, activation_checkpointing=ac, dtype=dtype)
    mc = ModelConfig.from_name(model_name)
    bf16 = dtype == "bf16"
    model = trainer.build_model(cfg, mc, trainer.Dist(), bf16)
    opt = trainer.make_optimizer(cfg, model)
    x = torch.randint(0, mc.vocab_size, (batch, seq_len + 1))
    autocast = torch.autocast("cpu", torch.bfloat16, enabled=bf16)
    times = []
    for _ in range(steps + 1):   # the first step compiles / warms up: not counted
        t0 = time.perf_counter()
        with autocast:
            loss = model(x[:, :-1], targets=x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"s": statistics.median(times[1:]), "rss_mb": peak_rss_mb()}))


def child(*args):
    r = subprocess.run([sys.executable, "-m", "bench.bench_train", "--one", json.dumps(args)],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(quick=False):
    rows = []
    batch, seq = 8, 256
    for dtype in ("fp32", "bf16"):
        eager = child("tiny", dtype, False, False, batch, seq, 5)
        comp = child("tiny", dtype, True, False, batch, seq, 5)
        rows.append(["tiny", dtype, f"{batch}x{seq}", f"{batch * seq / eager['s']:,.0f}",
                     f"{batch * seq / comp['s']:,.0f}", f"{eager['s'] / comp['s']:.2f}x"])
    report("Training step on this CPU: eager vs --compile (trainer.py)",
           ["config", "dtype", "batch x seq", "eager tok/s", "compiled tok/s", "compile speed-up"], rows,
           "Median of 5 steps after one warm-up step (which includes compilation). "
           "`torch.compile` is applied per transformer block, as trainer.py does.")
    if quick:
        return
    rows = []
    batch, seq = 2, 512
    for ac in (False, True):
        r = child("0.5B", "bf16", False, ac, batch, seq, 2)
        rows.append(["0.5B", "bf16 autocast", f"{batch}x{seq}", "on" if ac else "off",
                     f"{r['s']:.1f}", f"{r['rss_mb'] / 1024:.2f}"])
    report("One 0.5B training step: activation checkpointing and peak memory",
           ["config", "dtype", "batch x seq", "activation checkpointing", "s/step", "peak RSS GiB"], rows,
           "fp32 weights + grads + AdamW state are ~7.4 GiB of the peak either way (16 bytes/param); "
           "checkpointing trades the saved activations of every block for one recomputed forward.")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--one", help=argparse.SUPPRESS)   # internal: one configuration, in a child process
    a = p.parse_args()
    if a.one:
        one(*json.loads(a.one))
    else:
        main(a.quick)
