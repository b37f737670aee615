"""trainer.py: the optimizer step written out by hand, FSDP2 under torchrun (the same initial
weights and losses for any number of ranks; checkpointing and compile in torchtitan's order;
a sharded final save), rank 0's long preparation, exact resume, kill-safe saves, MFU, the GPU
precision rules, the fused-attention rule and the dry run. Runs go through stage 1 (pretrain.py)."""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

import pretrain
import trainer
from model import ModelConfig, Transformer, write_pretrained
from conftest import jsonl, losses, run_script, small
from trainer import Fatal, TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_lr_schedule_at_chosen_steps():
    """Linear warmup to the peak, cosine decay to lr * min_lr_ratio, held there after max_steps."""
    cfg = TrainConfig(lr=2.0, warmup=10, max_steps=110, min_lr_ratio=0.1)
    # step: 2 x the value written out by hand (0.1 + 0.9 * (1 + cos(pi t)) / 2 after warmup)
    want = {0: 0.1, 4: 0.5, 9: 1.0, 10: 1.0, 35: 0.868198052, 60: 0.55, 85: 0.231801948, 110: 0.1, 500: 0.1}
    assert {s: trainer.lr_at(cfg, s) / 2 for s in want} == pytest.approx(want, abs=1e-9)
    # No warmup: the peak at step 0; no floor: down to 0.
    cfg = TrainConfig(lr=1.0, warmup=0, max_steps=4, min_lr_ratio=0.0)
    assert [trainer.lr_at(cfg, s) for s in range(6)] == pytest.approx(
        [1.0, 0.853553391, 0.5, 0.146446609, 0.0, 0.0], abs=1e-9)
    # Decay over a single step; and none at all when warmup takes every step.
    assert [trainer.lr_at(TrainConfig(lr=1.0, warmup=3, max_steps=4), s) for s in (2, 3, 4)] == [1.0, 1.0, 0.1]
    assert trainer.lr_at(TrainConfig(lr=1.0, warmup=4, max_steps=4), 4) == 1.0


def is_norm_or_bias(name):
    return name.endswith(".bias") or "norm" in name


def test_weight_decay_on_matrices_not_on_norms_and_biases():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=2, num_key_value_heads=1, head_dim=16))
    opt = trainer.make_optimizer(TrainConfig(lr=0.25, weight_decay=0.3), model)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.3 for p in g["params"]}
    plain = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    names = dict(model.named_parameters())
    assert {n for n, p in names.items() if id(p) in plain} == {n for n in names if is_norm_or_bias(n)}
    assert {n for n, p in names.items() if id(p) in decayed} == {n for n in names if not is_norm_or_bias(n)}
    assert any(n.endswith(".bias") for n in names) and any("norm" in n for n in names)
    # The optimizer of nanoGPT and the Qwen recipes: AdamW, betas (0.9, 0.95), eps 1e-8.
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["eps"] == 1e-8 and opt.defaults["lr"] == 0.25


class RandomRows:
    """In-memory training data: sample g is a fixed random row, its first 3 targets ignored;
    with one_target, only sample 4k keeps a target, its last one: one per global batch of 4."""

    def __init__(self, vocab, seq_len, one_target=False):
        self.vocab, self.seq_len, self.one_target = vocab, seq_len, one_target

    def __len__(self):
        return 1000

    def get_batch(self, indices):
        rows = torch.stack([torch.randint(0, self.vocab, (self.seq_len + 1,), generator=torch.Generator().manual_seed(g))
                            for g in indices])
        y = rows[:, 1:].clone()
        y[:, :3] = -100
        if self.one_target:
            for row, g in enumerate(indices):
                y[row, :-1] = -100
                if g % 4:
                    y[row, -1] = -100
        return rows[:, :-1], y


# lr 1e-2, 4 steps, min_lr_ratio 0.1, by hand: warmup 2 -> 1/2, 1, then cosine from t = 0 (peak) and t = 1/2;
# warmup 0 -> cosine at t = 0, 1/4, 1/2, 3/4.
HAND_LRS = {2: [5e-3, 1e-2, 1e-2, 5.5e-3], 0: [1e-2, 8.68198052e-3, 5.5e-3, 2.31801948e-3]}


@pytest.mark.parametrize("grad_clip,warmup,one_target", [(1e-9, 2, False), (1e3, 0, False), (1e3, 2, True)])
def test_train_steps_equal_clipped_adamw_written_out(tmp_path, grad_clip, warmup, one_target):
    """train()'s update, step by step, equals one written here with torch's own pieces: the
    summed loss over the global batch divided by its target count, the gradient clipped to
    grad_clip, AdamW with decay on everything but norms and biases, the hand-computed lr.
    A tiny clip leaves almost nothing of the update but the weight decay: skipping the clip,
    or decaying the norms, moves the weights far from the reference."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                    num_attention_heads=2, num_key_value_heads=1, head_dim=16))
    model.init_weights()
    ref = Transformer(model.config)
    ref.load_state_dict(model.state_dict())
    data = RandomRows(64, 16, one_target)
    cfg = TrainConfig(out=str(tmp_path), max_steps=4, batch_size=2, grad_accum=2, seq_len=16, lr=1e-2,
                      warmup=warmup, min_lr_ratio=0.1, weight_decay=0.5, grad_clip=grad_clip, save_every=0,
                      log_every=1000, eval_every=1000)
    trainer.train(cfg, model, data, d=trainer.Dist())
    recs = jsonl(tmp_path / "metrics.jsonl")

    named = list(ref.named_parameters())
    opt = torch.optim.AdamW([{"params": [p for n, p in named if not is_norm_or_bias(n)], "weight_decay": 0.5},
                             {"params": [p for n, p in named if is_norm_or_bias(n)], "weight_decay": 0.0}],
                            betas=(0.9, 0.95), eps=1e-8)
    norms, losses = [], []
    for step, lr in enumerate(HAND_LRS[warmup]):
        x, y = data.get_batch(range(4 * step, 4 * step + 4))   # the step's global batch, in one piece
        loss = ref(x, targets=y, reduction="sum")
        loss.backward()
        losses.append(loss.item() / (y != -100).sum().item())
        for p in ref.parameters():
            p.grad /= (y != -100).sum()
        norms.append(float(torch.nn.utils.clip_grad_norm_(ref.parameters(), grad_clip)))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        opt.zero_grad()
    assert [r["lr"] for r in recs] == pytest.approx(HAND_LRS[warmup], rel=1e-8)
    assert [r["grad_norm"] for r in recs] == pytest.approx(norms, rel=1e-4)
    assert [r["loss"] for r in recs] == pytest.approx(losses, rel=1e-5)
    assert min(norms) > 10 * grad_clip or max(norms) < grad_clip / 10   # clipped every step, or never
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        if "k_proj.bias" not in name:   # its gradient is 0 up to rounding (softmax ignores it): AdamW's sign noise
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def run_cli(args, nproc=1, script="pretrain.py", timeout=600):
    """`python SCRIPT ARGS` (under torchrun with nproc > 1) from the repository root; it must succeed."""
    torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    r = subprocess.run([sys.executable, *torchrun, script, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-4000:]
    return r


def test_fsdp_matches_single_process(stage1, tok_dir, file_data, tmp_path):
    """Same global batch, split 1x4, 1x(2 accum x 2) and FSDP2 2 ranks x 2: same losses."""
    common = ["--init", stage1, "--tokenizer", tok_dir, "--data", file_data, "--max-steps", "3",
              "--seq-len", "64", "--dtype", "fp32", "--save-every", "0", "--lr", "1e-3", "--warmup", "1"]
    run_cli(common + ["--out", str(tmp_path / "one"), "--batch-size", "4"])
    run_cli(common + ["--out", str(tmp_path / "accum"), "--batch-size", "2", "--grad-accum", "2"])
    run_cli(common + ["--out", str(tmp_path / "fsdp"), "--batch-size", "2"], nproc=2)
    one, accum, fsdp = (losses(tmp_path / n) for n in ("one", "accum", "fsdp"))
    assert len(one) == len(fsdp) == 3
    for a, b, c in zip(one, accum, fsdp):
        assert abs(a - b) <= 1e-4 and abs(a - c) <= 1e-4, (one, accum, fsdp)
    # Steps after the first prove the sharded optimizer update matched too.
    assert one[2] != one[0]
    # The saved models agree too (weights themselves may differ by AdamW's sign noise on
    # near-zero gradients, so compare what they compute).
    x = torch.randint(0, 1024, (2, 32))
    with torch.no_grad():
        a = Transformer.from_pretrained(str(tmp_path / "fsdp"))(x)
        b = Transformer.from_pretrained(str(tmp_path / "one"))(x)
    assert (a - b).abs().max() < 1e-3


def test_from_scratch_same_losses_for_any_world_size(tok_dir, file_data, tmp_path):
    """No --init: one process and 2 FSDP2 ranks draw the same initial weights, so the same
    per-step losses; the logged MFU divides the global rate by every rank's peak."""
    common = ["--tokenizer", tok_dir, "--data", file_data, "--max-steps", "3", "--seq-len", "64", "--dtype",
              "fp32", "--save-every", "0", "--lr", "3e-3", "--warmup", "1", "--peak-tflops", "0.001"]
    run_cli(common + ["--out", str(tmp_path / "one"), "--batch-size", "4"])
    run_cli(common + ["--out", str(tmp_path / "two"), "--batch-size", "2"], nproc=2)
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 3 and one[2] != one[0]
    assert max(abs(a - b) for a, b in zip(one, two)) <= 1e-4, (one, two)
    rec = jsonl(tmp_path / "two" / "metrics.jsonl")[0]
    fpt = Transformer.from_pretrained(str(tmp_path / "two")).config.flops_per_token(64)
    assert rec["mfu"] == pytest.approx(fpt * rec["tokens_per_s"] / (2 * 1e9))


COMBOS = """
import json, os, sys
from dataclasses import replace
ROOT, tok_dir, data, out = sys.argv[1:5]
sys.path.insert(0, ROOT)
import torch
import safetensors.torch as st
import model as model_py
import pretrain
import trainer
written, real_save = [], st.save_file
def save_file(tensors, filename, metadata=None):   # which rank writes which file
    written.append(os.path.basename(filename))
    real_save(tensors, filename, metadata=metadata)
st.save_file = save_file
model_py.SHARD_BYTES = 2_000_000   # several files, even for the tiny test model
d = trainer.setup_distributed()
tok = trainer.load_tokenizer(tok_dir)
base = pretrain.PretrainConfig(tokenizer=tok_dir, data=[data], max_steps=3, batch_size=2, seq_len=64, lr=3e-3,
                               warmup=1, dtype="fp32", eval_every=1000, eval_batches=1, log_every=1000, save_every=0)
train_data, val_data = pretrain.load_data(base, tok, d)
mc = trainer.model_config(base, tok)
x = torch.randint(0, tok.n_vocab, (2, 32), generator=torch.Generator().manual_seed(0))
for name in ("plain", "ac", "compile", "ac_compile"):
    cfg = replace(base, out=os.path.join(out, name), activation_checkpointing="ac" in name, compile="compile" in name)
    written.clear()
    model = trainer.build_model(cfg, mc, d, bf16=False)
    trainer.train(cfg, model, train_data, val_data, d=d, tokenizer=tok)
    with torch.no_grad():
        logits = model(x)
    model.reshard()
    with open(os.path.join(cfg.out, f"written_{d.rank}.json"), "w") as f:
        json.dump(written, f)
    if d.main:
        torch.save(logits, os.path.join(cfg.out, "logits.pt"))
trainer.teardown()
"""


@pytest.fixture(scope="module")
def combos(tok_dir, file_data, tmp_path_factory):
    """Two gloo ranks from scratch, plain and with activation checkpointing, compile, both."""
    out = tmp_path_factory.mktemp("combos")
    (out / "combos.py").write_text(COMBOS)
    run_cli([ROOT, tok_dir, file_data, str(out)], nproc=2, script=str(out / "combos.py"), timeout=900)
    return out


def test_checkpointing_and_compile_under_fsdp_match_plain(combos):
    """torchtitan's order, AC -> compile -> fully_shard: checkpointing recomputes the same
    numbers (exactly), compiled kernels round differently (1e-4)."""
    plain = losses(combos / "plain")
    assert len(plain) == 3 and plain[2] != plain[0]
    assert losses(combos / "ac") == plain
    for name in ("compile", "ac_compile"):
        assert max(abs(a - b) for a, b in zip(losses(combos / name), plain)) <= 1e-4, name


def test_final_save_is_sharded_across_ranks(combos, tok):
    """Each file of the final save is written by one rank (rank i % 2 keeps file i), with the
    index of the official multi-file downloads, strict keys, and the trained weights."""
    from transformers import Qwen2ForCausalLM
    out = combos / "ac_compile"   # the wrappers' _orig_mod / _checkpoint_wrapped_module never reach the files
    files = sorted(p.name for p in out.glob("model-*-of-*.safetensors"))
    assert len(files) > 2 and not (out / "model.safetensors").exists()
    by_rank = [json.loads((out / f"written_{r}.json").read_text()) for r in (0, 1)]
    assert sorted(by_rank[0] + by_rank[1]) == files
    assert by_rank[0] == files[0::2] and by_rank[1] == files[1::2]
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == files
    model = Transformer.from_pretrained(str(out))   # strict: every tensor, no other
    assert index["metadata"]["total_size"] == 4 * sum(p.numel() for p in model.parameters())
    assert set(index["weight_map"]) == {"model." + k for k in model.state_dict() if k != "lm_head.weight"}
    x = torch.randint(0, tok.n_vocab, (2, 32), generator=torch.Generator().manual_seed(0))
    trained = torch.load(out / "logits.pt")
    with torch.no_grad():
        assert (model(x) - trained).abs().max() <= 1e-5
        theirs = Qwen2ForCausalLM.from_pretrained(str(out), torch_dtype=torch.float32)(x).logits
    assert (theirs - trained).abs().max() <= 1e-4


def test_write_pretrained_layouts_and_strict_keys(tmp_path):
    cfg = ModelConfig.from_name("tiny", vocab_size=256, num_hidden_layers=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    m = Transformer(cfg)
    m.init_weights()
    state = m.state_dict()
    write_pretrained(str(tmp_path), cfg, state, torch.bfloat16, shard_bytes=1_000_000)
    files = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(files) > 1 and files[-1].endswith(f"-of-{len(files):05d}.safetensors")
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    again = Transformer.from_pretrained(str(tmp_path))
    assert again.lm_head.weight.dtype == torch.bfloat16
    assert torch.equal(again.lm_head.weight, m.lm_head.weight.to(torch.bfloat16))
    # Saved again in one file: the numbered files of the earlier save are gone.
    write_pretrained(str(tmp_path), cfg, state, torch.float32)
    assert sorted(p.name for p in tmp_path.glob("model*")) == ["model.safetensors"]
    assert torch.equal(Transformer.from_pretrained(str(tmp_path)).lm_head.weight, m.lm_head.weight)
    with pytest.raises(ValueError, match="do not match the config"):
        write_pretrained(str(tmp_path), cfg, {k: v for k, v in state.items() if k != "lm_head.weight"}, torch.float32)
    with pytest.raises(ValueError, match="do not match the config"):
        write_pretrained(str(tmp_path), cfg, {**state, "layers.2.mlp.up_proj.weight": state["norm.weight"]},
                         torch.float32)


PREPARE = """
import os, sys, time
from datetime import timedelta
sys.path.insert(0, sys.argv[1])
import trainer
path = sys.argv[2]
d = trainer.setup_distributed(timeout=timedelta(seconds=3))
def build():   # longer than the default group's timeout
    time.sleep(8)
    with open(path, "w") as f:
        f.write("data")
trainer.build_once(path, build, d)
assert os.path.exists(path)
total = trainer.all_sum(1.0, d)   # the default group is still usable
print(f"rank {d.rank} waited and sees {total.item():.0f} ranks")
trainer.teardown()
"""


def test_ranks_outwait_rank0_preparation(tmp_path):
    """Rank 0 builds data for longer than the process group's timeout (3 s here, 10 minutes
    by default); the other rank waits it out on the long-timeout group."""
    (tmp_path / "prepare.py").write_text(PREPARE)
    r = run_cli([ROOT, str(tmp_path / "built")], nproc=2, script=str(tmp_path / "prepare.py"), timeout=300)
    assert r.stdout.count("waited and sees 2 ranks") == 2


def test_mfu_is_per_device():
    # 2 ranks at 1,000 tokens/s in all, 1e9 FLOPs per token, 1 TFLOP/s each: 2e12 FLOP/s of 2e12.
    assert trainer.mfu(1e9, 1000.0, 1, 1e12) == pytest.approx(1.0)
    assert trainer.mfu(1e9, 1000.0, 2, 1e12) == pytest.approx(0.5)
    assert trainer.mfu(2e9, 3000.0, 8, 1e12) == pytest.approx(0.75)
    names = {"NVIDIA H100 80GB HBM3": 989, "NVIDIA H100 PCIe": 756, "NVIDIA H200": 989, "NVIDIA A100-SXM4-80GB": 312,
             "NVIDIA A100 80GB PCIe": 312, "NVIDIA L4": 121, "NVIDIA GeForce RTX 4090": 165, "NVIDIA L40S": 0,
             "Tesla V100-SXM2-16GB": 0}
    for name, tflops in names.items():
        assert trainer.device_peak_flops(name) == tflops * 1e12, name


def test_named_configs_from_scratch_fit_the_tokenizer(tok, tmp_path):
    """--model 0.5B from scratch gets the tokenizer's ids rounded up to 128 rows, not the
    official 151,936; a loaded checkpoint keeps its own."""
    from conftest import SMALL_CORPUS
    from tokenizer import Tokenizer
    texts = [open(os.path.join(SMALL_CORPUS[0], "decoder.py"), encoding="utf-8").read()]
    odd = Tokenizer.train(texts, 300, verbose=False)
    for name, rows in (("0.5B", 384), ("7B", 384), ("tiny", 384)):
        mc = trainer.model_config(TrainConfig(model=name), odd)
        assert mc.vocab_size == rows and mc.hidden_size == ModelConfig.from_name(name).hidden_size
    assert trainer.model_config(TrainConfig(model="0.5B"), tok).vocab_size == 1024
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(ModelConfig.from_name("tiny", vocab_size=1280).to_hf()))
    assert trainer.model_config(TrainConfig(init=str(ckpt)), tok).vocab_size == 1280


@pytest.mark.filterwarnings("ignore::UserWarning")   # torch's own reasons for refusing flash
def test_training_attention_never_falls_back_to_math(stage1, tok_dir, file_data, tmp_path, monkeypatch):
    """Inputs no fused kernel takes (dropout here; a mask, fp32 on a GPU or an old GPU there)
    make training stop with one sentence instead of building the T x T matrix."""
    import torch.nn.functional as F
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **kw: real(*a, **kw, dropout_p=0.5))
    cfg = small(tok_dir, file_data, tmp_path, init=stage1, max_steps=1)
    tok = trainer.load_tokenizer(tok_dir)
    train, _ = pretrain.load_data(cfg, tok, trainer.Dist())
    model = trainer.build_model(cfg, trainer.model_config(cfg, tok), trainer.Dist(), bf16=False)
    x = torch.randint(0, 1024, (1, 16))
    model(x, targets=x).backward()   # outside training the math kernel is allowed ...
    with pytest.raises(Fatal, match="no flash or cuDNN kernel"):
        trainer.train(cfg, model, train, None, tokenizer=tok)   # ... in a training step it is not


def test_gpu_training_is_bf16_on_ampere_or_newer(monkeypatch):
    """Checked with a faked GPU: bf16 only from compute capability 8.0 (V100/T4 'support' bf16
    by emulation), and a GPU never trains in fp32 (no flash kernel for it)."""
    d = trainer.Dist(device="cuda:0", fsdp=True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-16GB")
    for cap, auto in (((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, cap=cap: cap)
        assert trainer.use_bf16(TrainConfig(), d.device) is auto
        if auto:
            trainer.check_gpu_training(d, True)
            with pytest.raises(Fatal, match="--dtype fp32 on a GPU"):
                trainer.check_gpu_training(d, False)
        else:
            with pytest.raises(Fatal, match=rf"compute capability {cap[0]}\.{cap[1]}"):
                trainer.check_gpu_training(d, True)
    assert trainer.use_bf16(TrainConfig(dtype="fp32"), "cuda:0") is False
    # Autocast only for a single CPU process: FSDP2's policy casts everywhere else.
    assert isinstance(trainer.autocast_for(d, True), type(trainer.nullcontext()))
    assert isinstance(trainer.autocast_for(trainer.Dist(), True), torch.autocast)


def test_gpu_check_runs_its_cpu_mode():
    """bench/gpu_check.py's code paths (FSDP2 on 2 ranks and on 1, AC, compile, the profiled
    kernel check, the sharded save, generation) at tiny size on CPUs: the GPU figures need a GPU."""
    r = run_cli(["--cpu", "--steps", "4"], script="bench/gpu_check.py", timeout=900)
    assert "attention kernels in a training step: aten::_scaled_dot_product_flash_attention_for_cpu" in r.stdout
    assert "stops training" in r.stdout and "1 vs 2 ranks" in r.stdout and r.stdout.rstrip().endswith("PASSED")


class Crash(Exception):
    pass


class CrashAt:
    """Training data that fails once a step's samples are asked for: a killed run."""

    def __init__(self, data, first_bad_index):
        self.data, self.bad = data, first_bad_index

    def __len__(self):
        return len(self.data)

    def get_batch(self, indices):
        if max(indices) >= self.bad:
            raise Crash
        return self.data.get_batch(indices)


def test_resume_equals_uninterrupted(stage1, tok_dir, file_data, tmp_path):
    tok = trainer.load_tokenizer(tok_dir)

    def run(out, crash_at=None, resume=False):
        cfg = small(tok_dir, file_data, out, init=stage1, max_steps=6, save_every=3, resume=resume)
        d = trainer.Dist()
        train, val = pretrain.load_data(cfg, tok, d)
        model = trainer.build_model(cfg, trainer.model_config(cfg, tok), d, bf16=False)
        if crash_at is not None:
            train = CrashAt(train, crash_at)
        trainer.train(cfg, model, train, val, d=d, tokenizer=tok)

    run(tmp_path / "straight")
    with pytest.raises(Crash):  # dies during step 5, after the checkpoint of step 3
        run(tmp_path / "killed", crash_at=4 * 4)
    run(tmp_path / "killed", resume=True)
    a, b = losses(tmp_path / "straight"), losses(tmp_path / "killed")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-6, (a, b)


def test_kill_during_save_keeps_previous_checkpoint(stage1, tok_dir, file_data, tmp_path):
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {ROOT!r})
        import torch.distributed.checkpoint as dcp
        import pretrain
        calls, real_save = [], dcp.save
        def save(*args, **kw):
            calls.append(1)
            real_save(*args, **kw)
            if len(calls) == 2:   # the second checkpoint is half written: die now
                os.kill(os.getpid(), signal.SIGKILL)
        dcp.save = save
        pretrain.main(pretrain.PretrainConfig(init={stage1!r}, tokenizer={tok_dir!r}, data=[{file_data!r}],
                      out={str(out)!r}, max_steps=6, save_every=2, batch_size=2, seq_len=32, dtype="fp32"))
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]
    with open(out / "ckpt" / "latest") as f:
        assert f.read() == "step_0000002"
    r = run_cli(["--init", stage1, "--tokenizer", tok_dir, "--data", file_data, "--out", str(out),
                 "--max-steps", "6", "--save-every", "2", "--batch-size", "2", "--seq-len", "32",
                 "--dtype", "fp32", "--resume"])
    assert "resumed from" in r.stdout and "step 2" in r.stdout
    assert len(losses(out)) == 6
    assert os.path.exists(out / "model.safetensors")


def test_dry_run_32b_prints_exact_count(capsys, monkeypatch):
    code, out, err = run_script("pretrain.py", ["--model", "32B", "--dry-run", "--world-size", "64",
                                                "--seq-len", "32768", "--batch-size", "1"], capsys, monkeypatch)
    assert code == 0, err
    assert "32,763,876,352 parameters" in out
    # The root FSDP unit stays gathered: embeddings and head (152,064 x 5,120 each) + final norm.
    assert "root group: 1,557,140,480 parameters" in out
    gib = {k: float(v.replace(",", "")) for k, v in re.findall(r"^  (.+?)\s+([\d,.]+) GiB$", out, re.M)}
    assert gib["unsharded root group (bf16 weights+grads)"] == pytest.approx(2 * 1_557_140_480 * 2 / 2**30, abs=0.05)
    with_ac = float(re.search(r"without, ([\d,.]+) GiB with", out).group(1).replace(",", ""))
    parts = [v for k, v in gib.items() if k != "activations, no checkpointing"]
    assert len(parts) == 5
    assert with_ac == pytest.approx(sum(parts), abs=0.3)
