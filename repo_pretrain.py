"""Stage 2: repository-level pretraining (report §3.2.2, Fig. 4).

Continues a stage-1 checkpoint on whole repositories: each sample is a repository
written as `<|repo_name|>` + `<|file_sep|>`-separated files (imported modules
first), with fill-in-the-middle on the last file, so the model learns to complete
code from cross-file context. The stage changes only what the report changes:

- the data: repo-level documents from `data_fim.py` (`level="repo"`);
- the context: 32,768 tokens in the report (1,024 by default here, for a CPU);
- RoPE: base raised from 10,000 to 1,000,000, so attention decays less over long
  distances;
- YaRN: written into the saved config.json (`rope_scaling`, factor 4), so the model
  extrapolates to 4x its training context at inference (128K in the report).

Everything else is `pretrain.py`'s loop, imported, not copied.

    python repo_pretrain.py --init out/pretrain --out out/repo_pretrain      # tokenizer: the one saved in out/pretrain
    torchrun --standalone --nproc_per_node 8 repo_pretrain.py --init CKPT --seq-len 32768
"""
from dataclasses import dataclass

import pretrain


@dataclass
class RepoTrainConfig(pretrain.TrainConfig):
    init: str = "out/pretrain"         # the stage-1 checkpoint
    out: str = "out/repo_pretrain"
    seq_len: int = 1024
    max_steps: int = 100
    batch_size: int = 2
    lr: float = 3e-4                   # a continuation: lower than stage 1's peak
    warmup: int = 10
    rope_theta: float = 1e6
    yarn_factor: float = 4.0           # 1 = no YaRN in the saved config


def main(cfg):
    overrides = {"rope_theta": cfg.rope_theta,
                 "max_position_embeddings": cfg.seq_len}
    final = {}
    if cfg.yarn_factor > 1:
        # Static YaRN (FACTS §2): trained at seq_len, usable up to yarn_factor * seq_len.
        final = {"rope_scaling": {"type": "yarn", "factor": cfg.yarn_factor,
                                  "original_max_position_embeddings": cfg.seq_len},
                 "max_position_embeddings": int(cfg.seq_len * cfg.yarn_factor)}
    return pretrain.main(cfg, level="repo", overrides=overrides, final_overrides=final)


if __name__ == "__main__":
    pretrain.run_cli(main, pretrain.parse(RepoTrainConfig, description=__doc__))
