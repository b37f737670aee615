"""The whole pipeline at micro scale (`speedrun.sh --smoke`): every stage runs a few steps
on the output of the one before, so a broken hand-off between stages cannot land."""
import json
import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUTS = ["tokenizer/vocab.json", "data-file/meta.json", "data-repo/meta.json", "pretrain/model.safetensors",
           "repo_pretrain/model.safetensors", "sft-data/sft.jsonl", "sft-data/tasks.jsonl",
           "sft/model.safetensors", "dpo-data/pairs.jsonl", "dpo/model.safetensors", "eval/humaneval.json",
           "eval/humaneval_base.json", "eval/fim.json", "eval/repo.json", "eval/needle.json", "eval/needle.svg",
           "eval/loss.json", "report.md", "loss_pretrain.svg"]


def speedrun(out, **env):
    env = dict(os.environ, OUT=str(out), **env)
    t0 = time.time()
    r = subprocess.run(["bash", "speedrun.sh", "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout, time.time() - t0


def test_every_stage_hands_over_to_the_next(tmp_path):
    out = tmp_path / "out"
    log, first = speedrun(out)
    for path in OUTPUTS:
        assert (out / path).exists(), path
    conf = json.load(open(out / "repo_pretrain" / "config.json"))
    assert conf["rope_theta"] == 1e6 and conf["rope_scaling"] is None  # stage 2's RoPE base; no YaRN, as official
    for stage, eos in (("pretrain", "<|endoftext|>"), ("sft", "<|im_end|>"), ("dpo", "<|im_end|>")):
        tok_conf = json.load(open(out / stage / "tokenizer_config.json"))
        assert tok_conf["eos_token"] == eos and "chat_template" in tok_conf, stage
        assert (out / stage / "generation_config.json").exists(), stage
    report = (out / "report.md").read_text()
    for section in ("## Data", "## Training stages", "Stage 1: file-level pretraining", "DPO", "## Evaluation",
                    "humaneval", "needle", "HumanEval-FIM: the first lines the base model filled"):
        assert section in report, section
    # Rerunning resumes rather than redoes: every stage is found finished, and no stage's
    # script even starts. A `python` that only records its arguments stands in for the real
    # one, so the rerun takes a second instead of importing torch for each check.
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "python").write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$CALLS"\n')
    (stub / "python").chmod(0o755)
    calls = tmp_path / "calls.txt"
    log, second = speedrun(out, PATH=f"{stub}{os.pathsep}{os.environ['PATH']}", CALLS=str(calls))
    assert log.count("done already") == 15, log
    scripts = [c.split()[0] for c in calls.read_text().splitlines() if not c.startswith("-c ")]
    assert scripts == ["report.py"], calls.read_text()   # only the report is written again
