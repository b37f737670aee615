"""Stage 1: file-level pretraining (report §3.2.1, Fig. 2, Fig. 3).

Next-token prediction on code files, half of the documents turned into fill-in-the-middle
tasks (Fig. 3); the data is data_fim.py's, the loop, FSDP2 and checkpoints trainer.py's.

The report trains stage 1 on 5.2T tokens of files (code, text and math, Table 3) at 8,192
tokens of context, with RoPE base 10,000; stage 2 (repo_pretrain.py) raises the base and the
context. What this file adds to the shared loop is the stage's data and defaults:

- documents are single files, tokenized once and packed into rows of seq_len + 1 tokens
  (data_fim.PackedDataset); held-out repositories are the validation split;
- FIM per document inside the row (`fim_rate` 0.5, Bavarian et al.), in PSM order, the format
  of Fig. 3 and of inference; a quarter of the middles are whole tree-sitter nodes;
- several prepared sources form the report's mixture (`--data code:70 text:20 math:10`,
  data_fim.Mixture); the built-in corpus (this Python's standard library) is prepared on first use.

    python pretrain.py                                   # tiny model, built-in corpus, CPU
    python pretrain.py --model 0.5B --seq-len 8192 --batch-size 4 --grad-accum 8
    torchrun --standalone --nproc_per_node 8 pretrain.py --model 7B ...   # FSDP2
    python pretrain.py --model 32B --dry-run --world-size 64            # memory plan, no work
"""
import os
from dataclasses import dataclass, field

import trainer
from data_fim import Mixture, PackedDataset, prepare
from model import ModelConfig
from trainer import Fatal


@dataclass
class PretrainConfig(trainer.TrainConfig):
    data: list = field(default_factory=list)   # prepared directories, DIR or DIR:WEIGHT; none = the built-in corpus
    rope_theta: float = 0.0        # 0 = 10,000 from scratch (stage 1 of §3.2.2), the checkpoint's with --init
    fim_rate: float = 0.5          # Bavarian et al.: up to 0.9 costs no left-to-right quality
    spm_rate: float = 0.0          # PSM only, the format of Fig. 3 and of inference; 0.5 mixes in SPM (Bavarian et al.)
    syntax_rate: float = 0.25      # FIM middles that are whole tree-sitter nodes (whole lines), not random cuts
    dry_run: bool = False
    world_size: int = 0            # for --dry-run: ranks to plan for (0 = current)


def load_data(cfg, tok, d, level="file"):
    """Train and validation data of --data (one directory, or `DIR:WEIGHT` sources mixed as Table 3;
    validation from the first); prepares the built-in corpus on first use."""
    data = cfg.data or [os.path.join(os.path.dirname(cfg.out.rstrip("/")) or ".", f"data-{level}")]
    sources = [s.rsplit(":", 1) if ":" in s else (s, "1") for s in data]
    for path, _ in sources:
        if os.path.exists(os.path.join(path, "meta.json")):
            continue
        if cfg.data:
            raise Fatal(f"{path} holds no prepared data (no meta.json); run "
                        f"`python data_fim.py prepare --tokenizer {cfg.tokenizer} --out {path}`.")
        if d.main:
            print(f"preparing the built-in corpus into {path} ({level}-level) ...")
        trainer.build_once(os.path.join(path, "meta.json"),
                           lambda: prepare(tok, path, level=level, seq_len=cfg.seq_len), d)
    make = lambda path, split: PackedDataset(path, tok, cfg.seq_len, split=split, seed=cfg.seed, fim_rate=cfg.fim_rate,
                                             spm_rate=cfg.spm_rate, syntax_rate=cfg.syntax_rate)
    with trainer.user_errors(prefix=f"--data {' '.join(data)}: "):
        train = [make(path, "train") for path, _ in sources]
        train = Mixture(train, [float(w) for _, w in sources]) if len(train) > 1 else train[0]
        return train, make(sources[0][0], "val")


def main(cfg, level="file", overrides=None):
    """Run a pretraining stage; repo_pretrain.py calls this with level="repo" and its RoPE."""
    if cfg.dry_run:
        mc = ModelConfig.from_name(cfg.model or "tiny", **(overrides or {}))
        trainer.dry_run(cfg, mc, cfg.world_size or int(os.environ.get("WORLD_SIZE", 1)), cfg.dtype != "fp32")
        return None
    if cfg.init and not os.path.isdir(cfg.init):
        raise Fatal(f"--init {cfg.init} is not a directory; pass a Hugging Face-format checkpoint directory.")
    overrides = dict(overrides or {})
    if cfg.rope_theta or not cfg.init:
        overrides.setdefault("rope_theta", cfg.rope_theta or 10000.0)
    cfg, tok, mc, d = trainer.start(cfg, **overrides)
    try:
        if cfg.seq_len > mc.max_position_embeddings:
            raise Fatal(f"--seq-len {cfg.seq_len} exceeds the model's max_position_embeddings "
                        f"{mc.max_position_embeddings}; use a shorter --seq-len.")
        bf16 = trainer.use_bf16(cfg, d.device)
        train_data, val_data = load_data(cfg, tok, d, level)
        model = trainer.build_model(cfg, mc, d, bf16)
        return trainer.train(cfg, model, train_data, val_data, d=d, tokenizer=tok, bf16=bf16)
    finally:
        trainer.teardown()


if __name__ == "__main__":
    trainer.run_cli(main, trainer.parse(PretrainConfig, description=__doc__))
