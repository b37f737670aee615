"""Both pretraining stages: a tiny model learns, its checkpoint loads in transformers, stage 2's
RoPE/YaRN settings, the data mixture and FIM settings from the command line, and one-sentence
errors. The loop itself (FSDP2, resume, the dry run) is tested in test_trainer.py."""
import json
import os
from dataclasses import replace

import pytest
import torch

import pretrain
import repo_pretrain
import trainer
from model import ModelConfig, Transformer
from conftest import jsonl, losses, run_script, small
from trainer import Fatal


def test_tiny_model_learns(stage1):
    ls = losses(stage1)
    assert len(ls) == 40
    # From ln(1024) ~ 6.9 to at least 0.7 nats lower (half the perplexity) in 40 tiny steps.
    assert sum(ls[-5:]) / 5 < ls[0] - 0.7, ls
    rec = jsonl(os.path.join(stage1, "metrics.jsonl"))[-1]
    assert {"step", "loss", "lr", "tokens_per_s", "val_loss"} <= rec.keys()


def test_checkpoint_loads_in_transformers(stage1, tok):
    from transformers import Qwen2ForCausalLM
    ours = Transformer.from_pretrained(stage1)
    theirs = Qwen2ForCausalLM.from_pretrained(stage1, torch_dtype=torch.float32)
    x = torch.tensor([tok.encode("def add(a, b):\n    return a + b\n")])
    with torch.no_grad():
        diff = (ours(x) - theirs(x).logits).abs().max().item()
    assert diff < 1e-4
    # The tokenizer travels with the checkpoint.
    assert os.path.exists(os.path.join(stage1, "vocab.json"))


def test_repo_pretrain_continues_with_new_rope(stage1, tok, tok_dir, tmp_path):
    from conftest import SMALL_CORPUS
    from data_fim import prepare
    data = tmp_path / "data-repo"
    meta = prepare(tok, str(data), inputs=SMALL_CORPUS, level="repo", seq_len=256, verbose=False)
    assert meta["level"] == "repo"
    out = tmp_path / "stage2"
    cfg = repo_pretrain.RepoTrainConfig(init=stage1, tokenizer=tok_dir, data=[str(data)], out=str(out),
                                        seq_len=256, max_steps=3, batch_size=2, dtype="fp32", save_every=0,
                                        rope_theta=1e6)
    repo_pretrain.main(cfg)
    conf = json.load(open(out / "config.json"))
    assert json.load(open(os.path.join(stage1, "config.json")))["rope_theta"] == 10000.0   # stage 1: the report's base
    # shaped as the official checkpoints: the new base, the trained window, no YaRN (opt-in at inference)
    assert conf["rope_theta"] == 1e6 and conf["max_position_embeddings"] == 256 and conf["rope_scaling"] is None
    assert len(losses(out)) == 3 and jsonl(out / "metrics.jsonl")[0]["step"] == 1
    model = Transformer.from_pretrained(str(out), yarn=4)
    assert model.config.rope_scaling == {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256}


def test_data_mixture_from_the_command_line(tok, tok_dir, file_data, tmp_path):
    """--data a:70 b:20 c:10 trains on the report's weighted mixture (Table 3)."""
    from data_fim import Mixture
    cfg = trainer.parse(pretrain.PretrainConfig, ["--tokenizer", tok_dir, "--out", str(tmp_path), "--seq-len", "64",
                                                  "--data", f"{file_data}:70", f"{file_data}:20", f"{file_data}:10"])
    assert cfg.data == [f"{file_data}:70", f"{file_data}:20", f"{file_data}:10"]
    train, val = pretrain.load_data(cfg, tok, trainer.Dist())
    assert isinstance(train, Mixture) and train.counts == [7, 2, 1]
    x, y = train.get_batch(list(range(10)))
    assert x.shape == (10, cfg.seq_len) and len(val) > 0
    with pytest.raises(Fatal, match="no prepared data"):
        pretrain.load_data(replace(cfg, data=[f"{file_data}:1", f"{tmp_path}:1"]), tok, trainer.Dist())


def test_fim_settings_reach_the_training_data(tok, tok_dir, file_data, tmp_path):
    """--fim-rate, --spm-rate and --syntax-rate are what the served samples are made with."""
    from data_fim import PackedDataset
    settings = dict(fim_rate=0.7, spm_rate=0.2, syntax_rate=0.9)
    cfg = small(tok_dir, file_data, tmp_path, seed=11, **settings)
    train, _ = pretrain.load_data(cfg, tok, trainer.Dist())
    same = PackedDataset(file_data, tok, cfg.seq_len, seed=11, **settings)
    assert all((train.window(g) == same.window(g)).all() for g in range(60))
    for other in (dict(fim_rate=0.5), dict(spm_rate=0.5), dict(syntax_rate=0.25)):
        changed = PackedDataset(file_data, tok, cfg.seq_len, seed=11, **{**settings, **other})
        assert any((train.window(g) != changed.window(g)).any() for g in range(60)), other


def test_user_errors_are_one_sentence(stage1, tok_dir, file_data, tmp_path, capsys, monkeypatch):
    with pytest.raises(Fatal, match="unknown model name"):
        pretrain.main(small(tok_dir, file_data, tmp_path / "a", model="13B"))
    with pytest.raises(Fatal, match="not --model 0.5B"):
        pretrain.main(small(tok_dir, file_data, tmp_path / "b", model="0.5B", init=stage1))
    with pytest.raises(Fatal, match="no prepared data"):
        pretrain.main(small(tok_dir, str(tmp_path), tmp_path / "c"))
    with pytest.raises(Fatal, match="train one: "):
        pretrain.main(small(str(tmp_path / "nothing"), file_data, tmp_path / "d"))
    # A checkpoint whose vocabulary is smaller than the tokenizer's.
    narrow = tmp_path / "narrow"
    Transformer(ModelConfig.from_name("tiny", vocab_size=512)).save_pretrained(str(narrow))
    with pytest.raises(Fatal, match="embedding rows"):
        pretrain.main(small(tok_dir, file_data, tmp_path / "e", init=str(narrow)))
    # A corrupt checkpoint on resume names the directory and the way out.
    out = tmp_path / "f"
    pretrain.main(small(tok_dir, file_data, out, init=stage1, max_steps=2, save_every=1))
    ckpt = out / "ckpt" / "step_0000002"
    for name in os.listdir(ckpt):
        if name.endswith(".distcp"):
            (ckpt / name).write_bytes(b"garbage")
    with pytest.raises(Fatal, match="cannot be loaded"):
        pretrain.main(small(tok_dir, file_data, out, init=stage1, max_steps=4, resume=True))
    # The CLI turns it into one line and exit status 1.
    code, _, err = run_script("pretrain.py", ["--model", "13B", "--tokenizer", tok_dir], capsys, monkeypatch)
    assert code == 1 and err.strip().startswith("error: --model: unknown model name")
    assert len(err.strip().splitlines()) == 1
