"""Stage 1: file-level pretraining (report §3.2.1, Fig. 2).

Next-token prediction on code, with half of the documents turned into
fill-in-the-middle tasks (Fig. 3) by `data_fim.py`. This file also holds THE
training loop: repo-level pretraining, SFT and DPO import `train()` from here and
bring only their own data and loss.

    python pretrain.py                                   # tiny model, built-in corpus, CPU
    python pretrain.py --model 0.5B --seq-len 8192 --batch-size 4 --grad-accum 8
    torchrun --standalone --nproc_per_node 8 pretrain.py --model 7B ...   # FSDP2
    python pretrain.py --model 32B --dry-run --world-size 64            # memory plan, no work

Scale is a flag: the same loop runs a 5M-parameter model on two CPU cores and
the 32B config sharded with FSDP2 (one `fully_shard` per transformer block, then
the root, as torchtitan does). Data is addressed by global sample index, so a
step sees the same samples whatever the number of ranks or accumulation steps,
and a resumed run continues exactly where it stopped.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.distributed as dist

# Single-process checkpoints go through torch.distributed.checkpoint too (one format for
# every scale); it warns each time that no process group exists, which is intended here.
warnings.filterwarnings("ignore", message="torch.distributed is disabled")

from data_fim import Mixture, PackedDataset, prepare
from model import ModelConfig, Transformer
from tokenizer import Tokenizer


@dataclass
class TrainConfig:
    model: str = ""                # a ModelConfig.from_name name; "" = tiny, or --init's shape
    tokenizer: str = ""             # "" = --init's own tokenizer files if it has them, else out/tokenizer
    data: str = ""                 # a `data_fim.py prepare` directory; "" = the built-in corpus
    out: str = "out/pretrain"
    init: str = ""                 # start from a Hugging Face-format checkpoint directory
    max_steps: int = 300
    batch_size: int = 8            # micro-batch per rank
    grad_accum: int = 1
    seq_len: int = 256
    rope_theta: float = 0.0        # 0 = 10,000 from scratch (stage 1 of §3.2.2), the checkpoint's with --init
    lr: float = 1e-3
    min_lr_ratio: float = 0.1      # cosine decays to lr * min_lr_ratio
    warmup: int = 30
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1337
    dtype: str = "auto"            # auto (bf16 where the hardware has it) | bf16 | fp32
    compile: bool = False
    activation_checkpointing: bool = False
    fim_rate: float = 0.5          # Bavarian et al.: up to 0.9 costs no left-to-right quality
    spm_rate: float = 0.0          # PSM only, the format of Fig. 3 and of inference; 0.5 mixes in SPM (Bavarian et al.)
    syntax_rate: float = 0.25      # FIM middles that are whole tree-sitter nodes (whole lines), not random cuts
    eval_every: int = 100
    eval_batches: int = 4
    log_every: int = 10
    save_every: int = 100
    resume: bool = False
    dry_run: bool = False
    world_size: int = 0            # for --dry-run: ranks to plan for (0 = current)
    peak_tflops: float = 0.0       # for MFU on hardware not in PEAK_TFLOPS


# Dense bf16 peak of common accelerators (TFLOP/s), for MFU. CPUs have no meaningful
# single figure: pass --peak-tflops to get MFU there.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0,
               "L4": 121.0, "4090": 165.0, "3090": 71.0, "V100": 125.0}


class Fatal(Exception):
    """An error the user can fix: printed as one sentence, no stack trace."""


# ----------------------------------------------------------------------------- setup

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self):
        return self.rank == 0


def setup_distributed():
    """One process, or one per rank under torchrun (NCCL on GPUs, gloo on CPUs)."""
    cuda = torch.cuda.is_available()
    if "RANK" not in os.environ:
        return Dist(device="cuda" if cuda else "cpu")
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, local, f"cuda:{local}" if cuda else "cpu")


def use_bf16(cfg, device):
    if cfg.dtype == "auto":
        if device.startswith("cuda"):
            return torch.cuda.is_bf16_supported()
        return torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX")
    if cfg.dtype not in ("bf16", "fp32"):
        raise Fatal(f"--dtype {cfg.dtype!r} is not one of auto, bf16, fp32.")
    return cfg.dtype == "bf16"


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
    """Run build() on rank 0 when the data file `path` is missing; the other ranks wait for it."""
    if not os.path.exists(path) and d.main:
        build()
    if d.world > 1:
        dist.barrier()


def load_tokenizer(path):
    try:
        return Tokenizer.from_pretrained(path)
    except (FileNotFoundError, ValueError) as e:
        raise Fatal(f"{e} (train one: `python clean.py --out out/corpus && python tokenizer.py train "
                    f"--input out/corpus --out {path}`, "
                    "or pass --tokenizer DIR)") from None


def load_data(cfg, tok, d, level="file"):
    """Train/validation data; prepares the built-in corpus on first use.

    --data DIR, or several weighted sources for the report's mixture (Table 3):
    --data code:70,text:20,math:10 (directories, each prepared by data_fim.py). The
    validation split is the first source's."""
    data = cfg.data or os.path.join(os.path.dirname(cfg.out.rstrip("/")) or ".", f"data-{level}")
    sources = [s.rsplit(":", 1) if ":" in s else (s, "1") for s in data.split(",")]
    for path, _ in sources:
        if os.path.exists(os.path.join(path, "meta.json")):
            continue
        if cfg.data:
            raise Fatal(f"{path} holds no prepared data (no meta.json); run "
                        f"`python data_fim.py prepare --tokenizer {cfg.tokenizer} --out {path}`.")
        if d.main:
            print(f"preparing the built-in corpus into {path} ({level}-level) ...")
        build_once(os.path.join(path, "meta.json"), lambda: prepare(tok, path, level=level, seq_len=cfg.seq_len), d)
    try:
        make = lambda path, split: PackedDataset(path, tok, cfg.seq_len, split=split, seed=cfg.seed,
                                                 fim_rate=cfg.fim_rate, spm_rate=cfg.spm_rate,
                                                 syntax_rate=cfg.syntax_rate)
        train = [make(path, "train") for path, _ in sources]
        train = Mixture(train, [float(w) for _, w in sources]) if len(train) > 1 else train[0]
        return train, make(sources[0][0], "val")
    except (FileNotFoundError, ValueError) as e:
        raise Fatal(f"--data {data}: {e}") from None


def model_config(cfg, tok, **overrides):
    """The shape to train: --init's config.json, else --model (CPU sizes fitted to the tokenizer)."""
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
        mc = named
        if name in ("tiny", "small"):   # CPU sizes: exactly the tokenizer's ids, rounded up to 64 rows
            mc = replace(mc, vocab_size=-(-tok.n_vocab // 64) * 64)
    if mc.vocab_size < tok.n_vocab:
        raise Fatal(f"the tokenizer {cfg.tokenizer} has {tok.n_vocab} ids but the model has only "
                    f"{mc.vocab_size} embedding rows; use a matching tokenizer or model.")
    return replace(mc, **overrides)


def build_model(cfg, mc, d, bf16):
    """Meta device -> activation checkpointing -> compile -> FSDP2 -> real memory -> weights."""
    with torch.device("meta"):
        model = Transformer(mc)
    for block in model.layers:
        if cfg.activation_checkpointing:
            from torch.distributed._composable import checkpoint
            checkpoint(block)          # keeps parameter names, unlike wrapper modules
        if cfg.compile:
            block.compile()
    if d.world > 1:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
        for block in model.layers:
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)   # the root: embeddings, final norm, head (tied with the embeddings)
    model.to_empty(device=d.device)
    # On GPUs the DTensor RNG draws each shard as a slice of the full tensor; on CPU it
    # cannot, so ranks get different seeds (one seed would repeat rows across shards).
    cpu_sharded = d.world > 1 and not d.device.startswith("cuda")
    torch.manual_seed(cfg.seed + (d.rank if cpu_sharded else 0))
    model.init_weights()   # ties the head to the embeddings again after to_empty()
    if cfg.init:
        load_weights(model, cfg.init, d)
    return model


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


def first_tensor(batch):
    """The input ids of a batch (a tensor, a tuple/list or a dict of tensors)."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, dict):
        return first_tensor(batch.get("input_ids", next(iter(batch.values()))))
    return first_tensor(batch[0])


@torch.no_grad()
def evaluate(cfg, model, data, d, loss_fn, autocast):
    model.eval()
    tot, n = 0.0, 0.0
    for i in range(cfg.eval_batches):
        # Validation samples are a fixed set: rank r takes every world-th micro-batch.
        idx = [(i * d.world + d.rank) * cfg.batch_size + j for j in range(cfg.batch_size)]
        idx = [k % len(data) for k in idx]
        with autocast:
            loss_sum, count, _ = loss_fn(model, to_device(data.get_batch(idx), d.device))
        tot, n = tot + float(loss_sum), n + float(count)
    if hasattr(model, "reshard"):
        model.reshard()   # FSDP2 keeps the root unsharded after a forward with no backward
    model.train()
    tot, n = all_sum([tot, n], d).tolist()
    return tot / max(n, 1)


def train(cfg, model, train_data, val_data=None, loss_fn=lm_loss, d=None, tokenizer=None,
          bf16=False, final_config=None):
    """The training loop every stage shares: AdamW, warmup+cosine, accumulation, clipping,
    validation, logs, atomic resumable checkpoints, the final model in Hugging Face format.

    `train_data.get_batch(indices)` gives a batch; `loss_fn(model, batch)` gives
    (summed loss, number of items it sums over, extra metrics). Gradients are scaled by the
    global item count, so every split of a global batch gives the same update."""
    d = d or Dist()
    os.makedirs(cfg.out, exist_ok=True)
    opt = make_optimizer(cfg, model)
    start = load_checkpoint(cfg, model, opt, d) if cfg.resume else 0
    sharded = d.world > 1
    autocast = torch.autocast(d.device.split(":")[0], torch.bfloat16) if bf16 and not sharded else nullcontext()
    flops_per_token = model.config.flops_per_token(cfg.seq_len)
    peak = peak_flops(cfg, d)
    metrics_f = open_metrics(os.path.join(cfg.out, "metrics.jsonl"), start) if d.main else None
    if d.main:
        print(f"training {model.config.num_params() / 1e6:.1f}M parameters for {cfg.max_steps} steps "
              f"from step {start}: batch {cfg.batch_size} x {cfg.grad_accum} accumulation x {d.world} rank(s) "
              f"of up to {cfg.seq_len} tokens on {d.device}, "
              f"{'bf16' if bf16 else 'fp32'}")
    model.train()
    t0 = time.perf_counter()
    for step in range(start, cfg.max_steps):
        lr = lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum, count, tokens, extra = 0.0, 0.0, 0, {}
        for idx in micro_batches(cfg, d, step):
            batch = to_device(train_data.get_batch(idx), d.device)
            tokens += first_tensor(batch).numel()   # SFT/DPO batches are padded only to their longest row
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
        if peak:
            rec["mfu"] = flops_per_token * rec["tokens_per_s"] / peak
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
    save_final(cfg, model, d, tokenizer, final_config)
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
    if cfg.peak_tflops:
        return cfg.peak_tflops * 1e12
    if d.device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        for key, tf in PEAK_TFLOPS.items():
            if key in name:
                return tf * 1e12
    return 0.0


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


def save_final(cfg, model, d, tokenizer=None, final_config=None):
    """The trained model in Hugging Face format in OUT/, with the tokenizer files beside it,
    so `--init OUT`, eval.py and transformers all load it directly."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if d.main:
        with torch.device("meta"):
            out = Transformer(final_config or model.config)
        out.load_state_dict(sd, assign=True, strict=False)
        if out.config.tie_word_embeddings:
            out.lm_head.weight = out.embed_tokens.weight
        out.save_pretrained(cfg.out)
        if tokenizer is not None:
            tokenizer.save(cfg.out)
        print(f"saved the model to {cfg.out}")
    if d.world > 1:
        dist.barrier()


# ----------------------------------------------------------------------------- dry run

def dry_run(cfg, mc, world, bf16=True):
    """What a run of this shape needs per rank: why 32B needs FSDP and how many GPUs."""
    with torch.device("meta"):
        model = Transformer(mc)
    n = sum(p.numel() for p in model.parameters())
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
    block_params = n / max(L, 1)
    working = 2 * block_params * act                # two blocks unsharded at a time (prefetch)
    print(f"model {cfg.model}: {n:,} parameters, {mc.flops_per_token(t) / 1e9:.2f} GFLOPs/token "
          f"at seq_len {t}")
    print(f"per rank, {world} rank(s), micro-batch {b} x {t}:")
    print(f"  weights+grads+AdamW (fp32, sharded 1/{world})  {gib(state)}")
    print(f"  unsharded working blocks ({'bf16' if bf16 else 'fp32'})        {gib(working)}")
    print(f"  activations, no checkpointing              {gib(no_ac)}")
    print(f"  activations, activation checkpointing      {gib(with_ac)}")
    print(f"  loss chunk logits                          {gib(logits)}")
    print(f"  total: {gib(state + working + no_ac + logits)} without, "
          f"{gib(state + working + with_ac + logits)} with activation checkpointing")
    return n


# ----------------------------------------------------------------------------- main

def main(cfg, level="file", overrides=None, final_overrides=None):
    """Run a pretraining stage; repo_pretrain.py calls this with level="repo"."""
    if cfg.dry_run:
        mc = ModelConfig.from_name(cfg.model or "tiny", **(overrides or {}))
        dry_run(cfg, mc, cfg.world_size or int(os.environ.get("WORLD_SIZE", 1)), cfg.dtype != "fp32")
        return None
    if cfg.init and not os.path.isdir(cfg.init):
        raise Fatal(f"--init {cfg.init} is not a directory; pass a Hugging Face-format checkpoint directory.")
    cfg = replace(cfg, tokenizer=tokenizer_dir(cfg))
    tok = load_tokenizer(cfg.tokenizer)
    overrides = dict(overrides or {})
    if cfg.rope_theta or not cfg.init:
        overrides.setdefault("rope_theta", cfg.rope_theta or 10000.0)
    mc = model_config(cfg, tok, **overrides)
    if cfg.seq_len > mc.max_position_embeddings:
        raise Fatal(f"--seq-len {cfg.seq_len} exceeds the model's max_position_embeddings "
                    f"{mc.max_position_embeddings}; use a shorter --seq-len.")
    d = setup_distributed()
    try:
        bf16 = use_bf16(cfg, d.device)
        train_data, val_data = load_data(cfg, tok, d, level)
        model = build_model(cfg, mc, d, bf16)
        final = replace(mc, **final_overrides) if final_overrides else None
        return train(cfg, model, train_data, val_data, d=d, tokenizer=tok, bf16=bf16, final_config=final)
    finally:
        if d.world > 1:
            dist.destroy_process_group()


def add_config_args(p, cls, defaults=None):
    """One --flag per dataclass field (underscores become dashes)."""
    defaults = defaults or cls()
    for f in fields(cls):
        v = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=v)
        else:
            p.add_argument(flag, type=type(v), default=v)
    return p


def parse(cls, argv=None, description=__doc__):
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


if __name__ == "__main__":
    run_cli(main, parse(TrainConfig))
