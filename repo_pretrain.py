"""Stage 2: repository-level pretraining (report §3.2.2, Fig. 4).

Continues a stage-1 checkpoint on whole repositories: each sample is a repository
written as `<|repo_name|>` + `<|file_sep|>`-separated files (imported modules
first), with fill-in-the-middle on the last file, so the model learns to complete
code from cross-file context. The stage changes only what the report changes:

- the data: repo-level documents from `data_fim.py` (`level="repo"`);
- the context: 32,768 tokens in the report (1,024 by default here, for a CPU);
- RoPE: base raised from 10,000 to 1,000,000, so attention decays less over long
  distances.

The saved config.json is shaped as the official checkpoints' are: rope_theta 1e6,
max_position_embeddings = the trained context, and no `rope_scaling`. YaRN (the report's
extrapolation to 4x the trained context, 128K) is applied only when asked, for long
inputs, as the official model cards tell users to: `eval.py needle --yarn 4`,
`model.py --load DIR --yarn 4`, or add `"rope_scaling": {"type": "yarn", "factor": 4.0,
"original_max_position_embeddings": SEQ_LEN}` to config.json. Every later stage (SFT,
DPO, evaluation) thus runs the RoPE the weights were trained with.

Everything else is stage 1's (`pretrain.main`: the data loading, trainer.py's loop), imported,
not copied.

    python repo_pretrain.py --init out/pretrain --out out/repo_pretrain      # tokenizer: the one saved in out/pretrain
    torchrun --standalone --nproc_per_node 8 repo_pretrain.py --init CKPT --seq-len 32768
"""
from dataclasses import dataclass

import pretrain
import trainer


@dataclass
class RepoTrainConfig(pretrain.PretrainConfig):
    init: str = "out/pretrain"         # the stage-1 checkpoint
    out: str = "out/repo_pretrain"
    seq_len: int = 1024
    max_steps: int = 100
    batch_size: int = 2
    lr: float = 3e-4                   # a continuation: lower than stage 1's peak
    warmup: int = 10
    rope_theta: float = 1e6


def main(cfg):
    # The trained window is the model's window, as the official config.json's 32,768.
    overrides = {"rope_theta": cfg.rope_theta, "max_position_embeddings": cfg.seq_len, "rope_scaling": None}
    return pretrain.main(cfg, level="repo", overrides=overrides)


if __name__ == "__main__":
    trainer.run_cli(main, trainer.parse(RepoTrainConfig, description=__doc__))
