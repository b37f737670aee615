"""The training machinery every stage shares (report §3.2 pretraining, §4.2 SFT and DPO).

One loop, `train()`, with its distributed setup and its checkpoints; pretrain.py,
repo_pretrain.py, sft.py and dpo.py import it and bring only their data, loss and defaults.

- The loop: AdamW, warmup + cosine (`lr_at`), micro-batches and accumulation, clipping,
  validation, a log line with MFU, OUT/metrics.jsonl. `train_data.get_batch(indices)` serves
  global sample indices; `loss_fn(model, batch)` returns (summed loss, items summed, metrics),
  and gradients are scaled by the global item count: any split of a global batch over ranks
  and accumulation steps gives the same update.
- Scale is a flag; the model file knows nothing of parallelism. `build_model` applies, in
  torchtitan's order, activation checkpointing, torch.compile and FSDP2 (per block, then the
  root); initial weights are drawn whole, then sharded, so nothing depends on the number of
  ranks. Every GPU run is FSDP2 (bf16 compute; fp32 weights, gradients, AdamW state, reduction).
- Checkpoints: sharded (torch.distributed.checkpoint), atomic, resumed to the exact losses of an
  uninterrupted run; the final model in Hugging Face format with its tokenizer. `dry_run`: the
  memory per rank of a shape, without allocating it.

Conventions of the training stages:
- User errors: a stage raises `Fatal`, which `run_cli` prints as one sentence (exit status 1).
  The modules below the trainer (tokenizer, corpus, clean, data_fim, sft_data) do not import
  it: they raise ValueError or FileNotFoundError carrying that sentence, and the stage calls
  them inside `with user_errors():`, which turns it into Fatal.
- Flags: one `--flag` per field of the stage's config dataclass. A list-valued field takes its
  values space-separated (`nargs="+"`): `--data a.jsonl b.jsonl`; a weighted mixture is
  `path:weight` items, `--data code:70 text:20 math:10`.

Past the ~600 lines of a stage script: it is the part every stage would otherwise copy.
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields, replace
from datetime import timedelta

import torch
import torch.distributed as dist

# Single-process checkpoints go through torch.distributed.checkpoint too (one format for
# every scale); it warns each time that no process group exists, which is intended here.
warnings.filterwarnings("ignore", message="torch.distributed is disabled")

from torch.distributed.tensor import DTensor, distribute_tensor

from model import ModelConfig, Transformer, write_pretrained
from tokenizer import Tokenizer


@dataclass
class TrainConfig:
    """The loop's settings, shared by every stage; each stage's config adds its data's fields."""
    model: str = ""                # a ModelConfig.from_name name; "" = tiny, or --init's shape
    tokenizer: str = ""             # "" = --init's own tokenizer files if it has them, else out/tokenizer
    out: str = "out/pretrain"
    init: str = ""                 # start from a Hugging Face-format checkpoint directory
    max_steps: int = 300
    batch_size: int = 8            # micro-batch per rank
    grad_accum: int = 1
    seq_len: int = 256
    lr: float = 1e-3
    min_lr_ratio: float = 0.1      # cosine decays to lr * min_lr_ratio
    warmup: int = 30
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1337
    dtype: str = "auto"            # auto (bf16 where the hardware has it) | bf16 | fp32 (CPUs only)
    compile: bool = False
    activation_checkpointing: bool = False
    eval_every: int = 100
    eval_batches: int = 4
    log_every: int = 10
    save_every: int = 100
    resume: bool = False
    peak_tflops: float = 0.0       # one device's peak, for MFU on hardware not in PEAK_TFLOPS


# Dense (no sparsity) bf16 tensor-core peak of one device, TFLOP/s, from NVIDIA's data
# sheets; matched as whole words in torch.cuda.get_device_name(), first match first (so
# "L4" is not an L40S and an H100 PCIe is not an SXM H100). CPUs have no meaningful single
# figure: pass --peak-tflops to get MFU there.
PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
               ("A100", 312.0), ("L4", 121.0), ("RTX 4090", 165.0)]

# Rank 0 alone prepares a corpus, synthesises SFT tasks or samples DPO pairs (build_once),
# which can take hours, while the other ranks wait. They wait on a gloo group with this
# timeout; the default group keeps its short one, so a hung collective in training still
# fails within minutes.
PREPARE_TIMEOUT = timedelta(hours=24)


class Fatal(Exception):
    """An error the user can fix: printed as one sentence, no stack trace."""


@contextmanager
def user_errors(prefix="", suffix=""):
    """The ValueError or FileNotFoundError of a module below the trainer (its sentence) as Fatal."""
    try:
        yield
    except (FileNotFoundError, ValueError) as e:
        raise Fatal(f"{prefix}{e}{suffix}") from None


# ----------------------------------------------------------------------------- setup

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"
    fsdp: bool = False             # parameters sharded by FSDP2 (whenever there is a process group)
    wait_group: object = None      # the long-timeout group build_once waits on

    @property
    def main(self):
        return self.rank == 0


def setup_distributed(timeout=None):
    """One process per rank under torchrun (NCCL on GPUs, gloo on CPUs). A plain process on a
    GPU gets a one-rank group, so that it runs FSDP2 too: one precision policy on GPUs, whatever
    the number of them. Only a plain process on a CPU has no group (and no FSDP2)."""
    cuda = torch.cuda.is_available()
    torchrun = "RANK" in os.environ
    if not torchrun and not cuda:
        return Dist()
    if torchrun:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        kw = {}
    else:
        rank, world, local = 0, 1, 0
        kw = {"store": dist.HashStore(), "rank": 0, "world_size": 1}
    device = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local)
        kw["device_id"] = torch.device(device)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout, **kw)
    wait = dist.new_group(backend="gloo", timeout=PREPARE_TIMEOUT) if world > 1 else None
    return Dist(rank, world, device, fsdp=True, wait_group=wait)


def teardown():
    if dist.is_initialized():
        dist.destroy_process_group()


def use_bf16(cfg, device):
    if cfg.dtype not in ("auto", "bf16", "fp32"):
        raise Fatal(f"--dtype {cfg.dtype!r} is not one of auto, bf16, fp32.")
    if cfg.dtype == "auto":
        if device.startswith("cuda"):
            # Not torch.cuda.is_bf16_supported(): it says yes on V100/T4, which only emulate bf16.
            return torch.cuda.get_device_capability(device) >= (8, 0)
        return torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX")
    return cfg.dtype == "bf16"


def check_gpu_training(d, bf16):
    """Training on a GPU is bf16 on compute capability >= 8.0: the only GPUs with bf16 tensor
    cores and PyTorch's flash attention, the one attention kernel training may use."""
    if not d.device.startswith("cuda"):
        return
    major, minor = torch.cuda.get_device_capability(d.device)
    if (major, minor) < (8, 0):
        raise Fatal(f"{torch.cuda.get_device_name(d.device)} has compute capability {major}.{minor}: no bf16 "
                    "tensor cores and no flash attention; train on a GPU of compute capability 8.0 or newer "
                    "(A100, L4, RTX 30xx/40xx, H100, ...).")
    if not bf16:
        raise Fatal("--dtype fp32 on a GPU: flash attention runs in bf16 only; drop --dtype (auto is bf16 here).")


def autocast_for(d, bf16):
    """bf16 compute for a single CPU process; under FSDP2 (every GPU run) the MixedPrecisionPolicy
    of build_model casts instead, and autocast stays off."""
    if bf16 and not d.fsdp:
        return torch.autocast(d.device.split(":")[0], torch.bfloat16)
    return nullcontext()


@contextmanager
def fused_attention():
    """Training attention may only use the fused kernels (flash; cuDNN on GPUs). Where neither
    applies (a mask, a dtype or a GPU rules them out), SDPA raises instead of falling back to
    the math kernel, whose T x T score matrix alone is 4 GiB per head at 32K tokens."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    try:
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION], set_priority=True):
            yield
    except RuntimeError as e:
        if "No available kernel" not in str(e):
            raise
        raise Fatal("scaled_dot_product_attention has no flash or cuDNN kernel for this run (the warnings "
                    "above say why) and training refuses the T x T math fallback; train in bf16 on a GPU "
                    "of compute capability 8.0 or newer, or on a CPU.") from None


def tokenizer_dir(cfg):
    """--tokenizer; else --init's own tokenizer files (every stage saves them beside its model,
    as every official download has them); else the speedrun's out/tokenizer."""
    if cfg.tokenizer:
        return cfg.tokenizer
    return cfg.init if cfg.init and os.path.isfile(os.path.join(cfg.init, "vocab.json")) else "out/tokenizer"


def steps_for(epochs, n, cfg, d):
    """Optimizer steps for `epochs` passes over n samples at the global batch of cfg and d."""
    return max(1, math.ceil(epochs * n / (cfg.batch_size * cfg.grad_accum * d.world)))


def build_once(path, build, d):
    """Run build() on rank 0 when the data file `path` is missing; the other ranks wait for it
    on the group of PREPARE_TIMEOUT (a corpus, SFT synthesis or DPO sampling can take hours)."""
    if not os.path.exists(path) and d.main:
        build()
    if d.world > 1:
        dist.barrier(group=d.wait_group)


def load_tokenizer(path):
    with user_errors(suffix=f" (train one: `python clean.py --out out/corpus && python tokenizer.py train "
                            f"--input out/corpus --out {path}`, or pass --tokenizer DIR)"):
        return Tokenizer.from_pretrained(path)


def model_config(cfg, tok, **overrides):
    """The shape to train: --init's config.json (its vocabulary included), else --model with
    exactly the tokenizer's ids as embedding rows, rounded up to a multiple of 128."""
    name = cfg.model or ("" if cfg.init else "tiny")
    try:
        named = ModelConfig.from_name(name) if name else None
    except (KeyError, ValueError) as e:
        raise Fatal(f"--model: {e}") from None
    if cfg.init:
        path = os.path.join(cfg.init, "config.json")
        if not os.path.exists(path):
            raise Fatal(f"--init {cfg.init} has no config.json; pass a Hugging Face-format checkpoint directory.")
        with open(path) as f:
            mc = ModelConfig.from_hf(json.load(f))
        shape = lambda c: (c.hidden_size, c.num_hidden_layers, c.num_attention_heads)
        if named and shape(named) != shape(mc):   # an explicit --model must agree with the checkpoint
            raise Fatal(f"--init {cfg.init} is a {mc.num_hidden_layers}-layer, hidden {mc.hidden_size} "
                        f"model, not --model {name}; drop --model or pick the matching checkpoint.")
    else:
        # From scratch, rows the tokenizer never emits would only cost memory and FLOPs (the
        # official 151,936 rows under a 32K tokenizer are ~107M unused parameters at 0.5B);
        # a multiple of 128 keeps the head's matmul on tensor-core-friendly shapes.
        mc = replace(named, vocab_size=-(-tok.n_vocab // 128) * 128)
    if mc.vocab_size < tok.n_vocab:
        raise Fatal(f"the tokenizer {cfg.tokenizer} has {tok.n_vocab} ids but the model has only "
                    f"{mc.vocab_size} embedding rows; use a matching tokenizer or model.")
    return replace(mc, **overrides)


def start(cfg, **overrides):
    """A stage's first steps: (cfg with its tokenizer_dir, that tokenizer, the model's shape, the ranks)."""
    cfg = replace(cfg, tokenizer=tokenizer_dir(cfg))
    tok = load_tokenizer(cfg.tokenizer)
    return cfg, tok, model_config(cfg, tok, **overrides), setup_distributed()


def build_model(cfg, mc, d, bf16):
    """Meta device -> activation checkpointing -> compile -> FSDP2 -> real memory -> weights.

    torchtitan's order (models/llama3/infra/parallelize.py): each block is wrapped for
    checkpointing, the wrapper compiled as a module of its own, and the compiled module
    sharded, so FSDP2's all-gathers and reduce-scatters run in hooks outside the compiled
    graphs. The wrappers add `_checkpoint_wrapped_module.` / `_orig_mod.` to parameter names;
    torch.distributed.checkpoint's state dicts (all this file saves and loads) drop them."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    check_gpu_training(d, bf16)
    with torch.device("meta"):
        model = Transformer(mc)
    for name, block in model.layers.named_children():
        if cfg.activation_checkpointing:
            block = checkpoint_wrapper(block, preserve_rng_state=False)   # no dropout: no RNG to replay
        if cfg.compile:
            block = torch.compile(block)   # the blocks are alike: one graph, compiled once
        model.layers.register_module(name, block)
    if d.fsdp:
        # bf16 copies of the weights for compute, fp32 weights, gradients and AdamW state, fp32
        # gradient reduction: the policy of every GPU run, one GPU included.
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
        for block in model.layers:
            fully_shard(block, mp_policy=mp)
        # The root: embeddings, final norm and head. The head is tied to the embeddings in the
        # small models, and the chunked loss reads lm_head.weight without calling the module, so
        # they stay in the root's unit, which is gathered for the whole step (see dry_run).
        fully_shard(model, mp_policy=mp)
    model.to_empty(device=d.device)
    torch.manual_seed(cfg.seed)
    model.init_weights(normal=whole_tensor_normal(cfg.seed, d.device))   # ties the head again, too
    if cfg.init:
        load_weights(model, cfg.init, d)
    return model


def whole_tensor_normal(seed, device):
    """init_weights' `normal`: every tensor is drawn whole, in init order, from one generator
    seeded by --seed, and a sharded one keeps its own rows. The initial weights are then the
    same for one process as for any number of ranks (drawing each shard on its own would not
    be; DTensor's random ops do not run on CPU meshes at all). One whole tensor at a time is
    the only extra memory: 3 GiB for the 32B embeddings."""
    gen = torch.Generator(device).manual_seed(seed)

    def normal(t, std):
        full = torch.empty(t.shape, dtype=t.dtype, device=device).normal_(0.0, std, generator=gen)
        if isinstance(t, DTensor):
            t.to_local().copy_(distribute_tensor(full, t.device_mesh, t.placements, src_data_rank=None).to_local())
        else:
            t.copy_(full)
    return normal


def load_weights(model, path, d):
    """A Hugging Face-format checkpoint into a (possibly sharded) model: rank 0 reads the
    file, the other ranks receive their shards from it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    sd = {}
    if d.main:
        sd = Transformer.from_pretrained(path, device="cpu", dtype=torch.float32).state_dict()
    opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=d.world > 1)
    set_model_state_dict(model, sd, options=opts)


# ----------------------------------------------------------------------------- the loop

def lr_at(cfg, step):
    """Linear warmup, then cosine decay to lr * min_lr_ratio at max_steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.max_steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def lm_loss(model, batch):
    """Summed next-token loss and the number of targets (targets -100 are ignored)."""
    x, y = batch
    return model(x, targets=y, reduction="sum"), (y != -100).sum(), {}


def make_optimizer(cfg, model):
    # No weight decay on norms and biases (1-D tensors): decaying them only hurts.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def all_sum(t, d):
    t = torch.as_tensor(t, dtype=torch.float64, device=d.device).clone()
    if d.world > 1:
        dist.all_reduce(t)
    return t


def micro_batches(cfg, d, step):
    """Global sample indices of this rank's micro-batches at a step.

    The step owns samples [step*G, (step+1)*G), G = batch * accum * world; micro-batch a
    of rank r is the slice (a*world + r): the split changes, the set does not."""
    g = cfg.batch_size * cfg.grad_accum * d.world
    for a in range(cfg.grad_accum):
        start = step * g + (a * d.world + d.rank) * cfg.batch_size
        yield list(range(start, start + cfg.batch_size))


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return type(batch)(to_device(v, device) for v in batch)


@torch.no_grad()
def evaluate(cfg, model, data, d, loss_fn, autocast):
    model.eval()
    tot, n = 0.0, 0.0
    for i in range(cfg.eval_batches):
        # Validation samples are a fixed set: rank r takes every world-th micro-batch.
        idx = [(i * d.world + d.rank) * cfg.batch_size + j for j in range(cfg.batch_size)]
        idx = [k % len(data) for k in idx]
        with autocast, fused_attention():
            loss_sum, count, _ = loss_fn(model, to_device(data.get_batch(idx), d.device))
        tot, n = tot + float(loss_sum), n + float(count)
    if hasattr(model, "reshard"):
        model.reshard()   # FSDP2 keeps the root unsharded after a forward with no backward
    model.train()
    tot, n = all_sum([tot, n], d).tolist()
    return tot / max(n, 1)


def train(cfg, model, train_data, val_data=None, loss_fn=lm_loss, d=None, tokenizer=None,
          bf16=False, chat=False):
    """Train `model` for cfg.max_steps steps, then save it to cfg.out (the module docstring says
    what a step does). A batch is (x, y, ...) or a dict with "x": its inputs count as tokens."""
    d = d or Dist()
    os.makedirs(cfg.out, exist_ok=True)
    opt = make_optimizer(cfg, model)
    start = load_checkpoint(cfg, model, opt, d) if cfg.resume else 0
    autocast = autocast_for(d, bf16)
    flops_per_token = model.config.flops_per_token(cfg.seq_len)
    peak = peak_flops(cfg, d)
    metrics_f = open_metrics(os.path.join(cfg.out, "metrics.jsonl"), start) if d.main else None
    if d.main:
        precision = "fp32" if not bf16 else "bf16 (FSDP2 mixed precision)" if d.fsdp else "bf16 autocast"
        print(f"training {model.config.num_params() / 1e6:.1f}M parameters for {cfg.max_steps} steps "
              f"from step {start}: batch {cfg.batch_size} x {cfg.grad_accum} accumulation x {d.world} rank(s) "
              f"of up to {cfg.seq_len} tokens on {d.device}{' with FSDP2' if d.fsdp else ''}, {precision}")
    model.train()
    t0 = time.perf_counter()
    for step in range(start, cfg.max_steps):
        lr = lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum, count, tokens, extra = 0.0, 0.0, 0, {}
        for idx in micro_batches(cfg, d, step):
            batch = to_device(train_data.get_batch(idx), d.device)
            # Tokens in the inputs: SFT and DPO batches are padded only to their longest row.
            tokens += (batch["x"] if isinstance(batch, dict) else batch[0]).numel()
            # Forward and backward (with the checkpointed blocks' recomputation) on fused kernels only.
            with fused_attention():
                with autocast:
                    ls, n, m = loss_fn(model, batch)
                ls.backward()
            loss_sum, count = loss_sum + ls.detach().float(), count + float(n)
            for k, v in m.items():
                extra[k] = extra.get(k, 0.0) + float(v)
        loss_sum, count, tokens = all_sum([float(loss_sum), count, tokens], d).tolist()
        # FSDP averages gradients over ranks; we want the sum over the global batch / item count.
        scale = d.world / max(count, 1.0)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        gnorm = float(gnorm.full_tensor() if hasattr(gnorm, "full_tensor") else gnorm)
        opt.step()
        opt.zero_grad(set_to_none=True)

        dt, t0 = time.perf_counter() - t0, time.perf_counter()
        loss = loss_sum / max(count, 1.0)
        rec = {"step": step + 1, "loss": loss, "lr": lr, "grad_norm": gnorm, "tokens_per_s": tokens / dt}
        if peak:   # tokens_per_s is global (summed over ranks): the MFU of one device
            rec["mfu"] = mfu(flops_per_token, rec["tokens_per_s"], d.world, peak)
        if extra:
            extra = dict(zip(extra, all_sum(list(extra.values()), d).tolist()))
            rec.update({k: v / d.world / cfg.grad_accum for k, v in extra.items()})
        last = step + 1 == cfg.max_steps
        if val_data is not None and ((step + 1) % cfg.eval_every == 0 or last):
            rec["val_loss"] = evaluate(cfg, model, val_data, d, loss_fn, autocast)
        if d.main:
            metrics_f.write(json.dumps(rec) + "\n")
            metrics_f.flush()
            if (step + 1) % cfg.log_every == 0 or step == start or last or "val_loss" in rec:
                print(format_log(rec, cfg.max_steps), flush=True)
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and not last:
            save_checkpoint(cfg, model, opt, step + 1, d)
    save_checkpoint(cfg, model, opt, cfg.max_steps, d)
    # bf16 on GPUs, as the official downloads; fp32 on CPUs: eval.py computes in the
    # checkpoint's dtype, and many CPUs have no fast bf16.
    dtype = torch.bfloat16 if d.device.startswith("cuda") else torch.float32
    save_final(cfg, model, d, tokenizer, dtype, chat)
    if metrics_f:
        metrics_f.close()
    return model


def open_metrics(path, start):
    """metrics.jsonl for appending; on resume, the steps after the checkpoint are dropped
    (the killed run logged them, the resumed run does them again)."""
    kept = []
    if start and os.path.exists(path):
        with open(path) as f:
            kept = [line for line in f if line.strip() and json.loads(line)["step"] <= start]
    f = open(path, "w")
    f.writelines(kept)
    return f


def format_log(rec, max_steps):
    s = f"step {rec['step']:>6}/{max_steps} | loss {rec['loss']:.4f} | lr {rec['lr']:.2e} | gnorm {rec['grad_norm']:.2f}"
    s += f" | {rec['tokens_per_s'] / 1e3:.1f}k tok/s"
    if "mfu" in rec:
        s += f" | mfu {100 * rec['mfu']:.1f}%"
    for k in ("val_loss", "rewards/margins", "rewards/accuracies"):
        if k in rec:
            s += f" | {k} {rec[k]:.4f}"
    return s


def peak_flops(cfg, d):
    """One device's peak FLOP/s: --peak-tflops, else this GPU's from PEAK_TFLOPS (0: unknown)."""
    if cfg.peak_tflops:
        return cfg.peak_tflops * 1e12
    return device_peak_flops(torch.cuda.get_device_name(d.device)) if d.device.startswith("cuda") else 0.0


def device_peak_flops(name):
    for key, tflops in PEAK_TFLOPS:
        if re.search(rf"\b{re.escape(key)}\b", name):
            return tflops * 1e12
    return 0.0


def mfu(flops_per_token, tokens_per_s, world, peak):
    """Model FLOPs utilisation of one device: the FLOP/s of all `world` ranks (tokens_per_s is
    their sum) over the peak of all of them (PaLM, App. B)."""
    return flops_per_token * tokens_per_s / (world * peak)


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(cfg, model, opt, step, d):
    """Model + optimizer (sharded, torch.distributed.checkpoint) and the step, written to a
    temporary directory that only becomes `latest` once complete: a run killed while saving
    leaves the previous checkpoint intact."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict
    root = os.path.join(cfg.out, "ckpt")
    name = f"step_{step:07d}"
    tmp = os.path.join(root, name + ".tmp")
    if d.main:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    if d.world > 1:
        dist.barrier()
    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=tmp, no_dist=d.world == 1)
    if d.world > 1:
        dist.barrier()
    if d.main:
        with open(os.path.join(tmp, "train_state.json"), "w") as f:
            json.dump({"step": step, "config": asdict(cfg), "world": d.world}, f)
        final = os.path.join(root, name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        with open(os.path.join(root, "latest.tmp"), "w") as f:
            f.write(name)
        os.replace(os.path.join(root, "latest.tmp"), os.path.join(root, "latest"))
        for old in os.listdir(root):   # keep only the newest complete checkpoint
            if old.startswith("step_") and old != name:
                shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    if d.world > 1:
        dist.barrier()


def load_checkpoint(cfg, model, opt, d):
    """Restore the newest complete checkpoint; returns the step to continue from (0 if none)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    root = os.path.join(cfg.out, "ckpt")
    if not os.path.exists(os.path.join(root, "latest")):
        if d.main:
            print(f"--resume: no checkpoint in {root}, starting from step 0")
        return 0
    with open(os.path.join(root, "latest")) as f:
        path = os.path.join(root, f.read().strip())
    try:
        with open(os.path.join(path, "train_state.json")) as f:
            state = json.load(f)
        msd, osd = get_state_dict(model, opt)
        sd = {"model": msd, "optim": osd}
        dcp.load(sd, checkpoint_id=path, no_dist=d.world == 1)
        set_state_dict(model, opt, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    except (Exception, dcp.api.CheckpointException) as e:  # a user file: say which and what to do
        raise Fatal(f"the checkpoint {path} cannot be loaded ({type(e).__name__}: {str(e)[:200]}); "
                    f"delete {root} to start over, or point --out at another run.") from None
    if d.main:
        print(f"resumed from {path} at step {state['step']}")
    return int(state["step"])


def save_final(cfg, model, d, tokenizer=None, dtype=torch.bfloat16, chat=False):
    """The trained model in Hugging Face format in OUT/, with the tokenizer files beside it,
    so `--init OUT`, eval.py and transformers all load it directly: in `dtype`, as one
    model.safetensors or, past 5 GB, numbered files and model.safetensors.index.json as the
    official 7B-32B downloads; chat (SFT, DPO): the eos token and generation_config.json of an
    official instruct checkpoint, else a base one's.

    The full model is never on one rank: tensors are gathered one at a time (every rank takes
    part in each all-gather) and file i is kept and written by rank i % world."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict
    state = get_model_state_dict(model)   # this rank's shards, under the model's own names
    gather = lambda t: t.full_tensor() if isinstance(t, DTensor) else t
    write_pretrained(cfg.out, model.config, state, dtype, gather=gather,
                     keep=lambda i: i % d.world == d.rank,
                     generation_config=tokenizer and tokenizer.generation_config(chat))
    if d.world > 1:
        dist.barrier()
    if d.main:
        if tokenizer is not None:
            tokenizer.save(cfg.out, chat)
        print(f"saved the model to {cfg.out}")


# ----------------------------------------------------------------------------- dry run

def dry_run(cfg, mc, world, bf16=True):
    """What a run of this shape needs per rank: why 32B needs FSDP and how many GPUs."""
    with torch.device("meta"):
        model = Transformer(mc)
    n = sum(p.numel() for p in model.parameters())
    blocks = sum(p.numel() for p in model.layers.parameters())
    root = n - blocks                               # embeddings, final norm, untied head
    gib = lambda b: f"{b / 2**30:,.1f} GiB"
    b, t, h, L = cfg.batch_size, cfg.seq_len, mc.hidden_size, mc.num_hidden_layers
    qkv = (mc.num_attention_heads + 2 * mc.num_key_value_heads) * mc.head_dim
    act = 2 if bf16 else 4
    # Saved for backward per block (flash attention keeps no T x T matrix): norm outputs,
    # q/k/v, attention output, residuals, and the four SwiGLU tensors of width intermediate.
    per_block = act * b * t * (6 * h + qkv + 4 * mc.intermediate_size)
    no_ac = L * per_block
    with_ac = L * act * b * t * h + per_block      # block inputs + one block recomputed
    logits = 4 * b * min(t, 1024) * mc.vocab_size * 2   # fp32 logits of one loss chunk + grad
    state = 16 * n / world                          # fp32 weights + grads + AdamW m, v, sharded
    working = 2 * (blocks / max(L, 1)) * act        # two blocks unsharded at a time (prefetch)
    # The root unit is gathered for the whole step, and its unsharded gradients (the head's
    # come first in backward) wait for the root's reduce-scatter at the very end.
    root_bytes = 2 * root * act
    fixed = state + working + root_bytes + logits
    p = "bf16" if bf16 else "fp32"
    print(f"model {cfg.model}: {n:,} parameters, {mc.flops_per_token(t) / 1e9:.2f} GFLOPs/token "
          f"at seq_len {t}")
    print(f"per rank, {world} rank(s), micro-batch {b} x {t}:")
    for label, nbytes in ((f"weights+grads+AdamW (fp32, sharded 1/{world})", state),
                          (f"unsharded working blocks ({p})", working),
                          (f"unsharded root group ({p} weights+grads)", root_bytes),
                          ("activations, no checkpointing", no_ac),
                          ("activations, activation checkpointing", with_ac),
                          ("loss chunk logits", logits)):
        print(f"  {label:<44} {gib(nbytes)}")
    print(f"  total: {gib(fixed + no_ac)} without, {gib(fixed + with_ac)} with activation checkpointing")
    print(f"  (the root group: {root:,} parameters of embeddings, final norm and head, unsharded all step)")
    return n


# ----------------------------------------------------------------------------- command line

def add_config_args(p, cls):
    """One --flag per dataclass field, underscores as dashes (the convention of the module docstring)."""
    for f in fields(cls):
        v = getattr(cls(), f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=v)
        elif isinstance(v, list):
            p.add_argument(flag, nargs="+", default=v)
        else:
            p.add_argument(flag, type=type(v), default=v)
    return p


def parse(cls, argv=None, description=""):
    """A `cls` from the command line; the help shows the first paragraph of `description`."""
    p = argparse.ArgumentParser(description=description.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    args = add_config_args(p, cls).parse_args(argv)
    return cls(**vars(args))


def run_cli(fn, *args):
    """Run a stage; a user error ends in one sentence and exit status 1."""
    try:
        fn(*args)
    except Fatal as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
