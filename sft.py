"""Stage 3: supervised fine-tuning (report §4.2 coarse-to-fine SFT; §4.1's data in sft_data.py).

Turns a pretrained checkpoint into a chat model. In file order:

  render_chat   ChatML ids (Qwen2.5's chat template) + the loss mask: only the replies are trained.
  ChatDataset   rendered conversations by global index, a share turned into FIM tasks
                (mixed tuning, §4.2).
  main          two calls of trainer.py's loop: coarse (every sample), then fine (the
                top-scored ones on the §4.1 checklist).
  chat          a small streaming ChatML chat to try the result.

    python sft.py synth --out out/sft/data                  # sft_data.py: sft.jsonl + tasks.jsonl + stats.json
    python sft.py --init out/repo_pretrain --out out/sft    # synthesises on first use, then trains
    torchrun --standalone --nproc_per_node 8 sft.py --init Qwen2.5-Coder-0.5B --data my.jsonl \\
        --out out/sft-0.5b --lr 5e-5 --warmup 100 --epochs 3 --batch-size 4 --grad-accum 32   # official recipe
    python sft.py chat --model out/sft                      # talk to the result
"""
import json
import math
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field, replace

import torch

import trainer
from data_fim import fim_token_ids, read_jsonl, sample_row, syntax_span, unit_hash
from model import Transformer, inference_dtype
from sft_data import FENCE, SynthConfig, checklist, parse_or_none, synth_main
from tokenizer import CHAT_STOPS, INSTRUCT_GENERATION, Tokenizer

# ----------------------------------------------------------------------------- ChatML (Qwen2.5's chat template)

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ROLES = ("system", "user", "assistant")


def render_chat(messages, tokenizer, add_generation_prompt=False):
    """(ids, mask) of a conversation in ChatML: `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message.

    mask is 1 exactly on each assistant reply and the <|im_end|> closing it (the model must
    learn to stop), 0 on system and user turns, the `<|im_start|>assistant\\n` header and the
    newline after <|im_end|>. As in Qwen2.5's chat template, a conversation without a system
    message gets DEFAULT_SYSTEM. The control tokens are single ids; contents are encoded as
    plain text, so a reply that mentions "<|im_end|>" cannot end its own turn. Header and
    content are encoded separately (as the official finetuning/sft/binarize_data.py does), so
    the mask boundary is exact; the ids equal the tokenized template text unless a content
    starts with a newline (then the template's BPE would merge the two newlines).
    """
    messages = list(messages)
    if not messages or messages[0].get("role") != "system":
        messages.insert(0, {"role": "system", "content": DEFAULT_SYSTEM})
    start, end = tokenizer.special["<|im_start|>"], tokenizer.special["<|im_end|>"]
    newline = tokenizer.encode("\n")
    ids, mask = [], []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise ValueError(f"a message must be {{'role': one of {ROLES}, 'content': str}}, got {m!r:.80}; "
                             "fix the conversation.")
        head, body = [start] + tokenizer.encode(role + "\n"), tokenizer.encode(content) + [end]
        ids += head + body + newline
        mask += [0] * len(head) + [int(role == "assistant")] * len(body) + [0] * len(newline)
    if add_generation_prompt:
        head = [start] + tokenizer.encode("assistant\n")
        ids, mask = ids + head, mask + [0] * len(head)
    return ids, mask


# ----------------------------------------------------------------------------- training data (§4.2)

def pad_batch(seqs, pad_id):
    """(x, y) of (ids, mask) rows padded to the longest: x = ids[:-1], y = the next token where
    mask is 1, else -100, so trainer.lm_loss trains exactly the masked tokens."""
    T = max(len(ids) for ids, _ in seqs) - 1
    x = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    y = torch.full((len(seqs), T), -100, dtype=torch.long)
    for b, (ids, mask) in enumerate(seqs):
        ids, keep = torch.tensor(ids), torch.tensor(mask[1:], dtype=torch.bool)
        x[b, :len(ids) - 1] = ids[:-1]
        y[b, :len(ids) - 1] = torch.where(keep, ids[1:], -100)
    return x, y


class ChatDataset:
    """Rendered conversations served by global index, for trainer.train().

    Sample g reads row data_fim.sample_row(g) (a pure function of (seed, g)). With probability
    fim_rate, decided by (seed, g), the reply's code is served instead as a FIM task on a
    tree-sitter span, all tokens trained (mixed tuning, §4.2). A batch is padded to its
    longest sample, with targets only on the assistant replies.
    """

    def __init__(self, rows, tokenizer, seed=0, fim_rate=0.0, spm_rate=0.5, max_len=None):
        self.rows, self.tok, self.seed = rows, tokenizer, seed
        self.fim_rate, self.spm_rate, self.max_len = fim_rate, spm_rate, max_len

    def __len__(self):
        return len(self.rows)

    def sample(self, g):
        row = self.rows[sample_row(g, len(self.rows), self.seed)]
        rng = random.Random(f"{self.seed}:{g}")
        if self.fim_rate > 0 and row.get("code") and rng.random() < self.fim_rate:
            span = syntax_span(row["code"], rng)
            ids = fim_token_ids(self.tok, *span, spm=rng.random() < self.spm_rate) if span else None
            if ids and (self.max_len is None or len(ids) <= self.max_len + 1):
                return ids, [1] * len(ids)
        return row["ids"], row["mask"]

    def get_batch(self, indices):
        return pad_batch([self.sample(g) for g in indices], self.tok.eot_id)


def _conversation(rec):
    if not isinstance(rec["messages"], list):  # like rec["messages"] itself, a TypeError: "fix that line"
        raise TypeError
    return rec


def load_conversations(paths):
    """Conversations from official-format SFT files ({"messages": [...]} per line)."""
    records = []
    for path in paths:
        if not os.path.isfile(path):
            raise trainer.Fatal(f"--data {path} does not exist; pass sft.jsonl files ({{\"messages\": [...]}} lines).")
        with trainer.user_errors():
            records += [r for _, r in read_jsonl(path, 'a {"messages": [...]} object', _conversation)]
    return records


def prepare_rows(records, tok, seq_len, val_fraction=0.05):
    """(train rows, val rows, counts): rendered, too-long samples dropped (never truncated:
    a cut reply teaches the model to stop mid-sentence), samples with nothing to train dropped."""
    train, val, counts = [], [], Counter()
    for rec in records:
        with trainer.user_errors():
            ids, mask = render_chat(rec["messages"], tok)
        if not any(mask[1:]):
            counts["dropped_no_assistant"] += 1
            continue
        if len(ids) > seq_len + 1:
            counts["dropped_too_long"] += 1
            continue
        score = rec["score"] if "score" in rec else checklist(rec["messages"])[0]
        replies = [m["content"] for m in rec["messages"] if m["role"] == "assistant"]
        code = next((c for c in FENCE.findall(replies[-1]) if c.count("\n") >= 2 and parse_or_none(c)), None)
        row = {"ids": ids, "mask": mask, "score": score, "code": code}
        (val if unit_hash(json.dumps(rec["messages"], sort_keys=True)) < val_fraction else train).append(row)
    counts.update(train=len(train), val=len(val))
    return train, val, counts


# ----------------------------------------------------------------------------- training

@dataclass
class SFTConfig(trainer.TrainConfig):
    """Laptop defaults. The official recipe (finetuning/sft of the Qwen2.5-Coder repository), for a
    real model: --lr 5e-5 --warmup 100 --epochs 3, a global batch of 1024, weight decay 0, cosine."""
    init: str = "out/repo_pretrain"   # a Hugging Face-format checkpoint (ours or an official base model)
    out: str = "out/sft"
    data: list = field(default_factory=list)   # sft.jsonl files; none = synthesise into OUT/data
    seq_len: int = 768                # longer samples are dropped (~4% of the synthesised ones)
    max_steps: int = 0                # coarse phase steps; 0 = from epochs
    epochs: float = 1.0
    lr: float = 1e-3                  # tiny model: val loss 4.83 after 60 steps (3e-4: 5.04)
    min_lr_ratio: float = 0.0
    warmup: int = 10
    weight_decay: float = 0.0
    fim_rate: float = 0.1             # share of samples turned into FIM tasks (mixed tuning)
    spm_rate: float = 0.0             # of those, the share in SPM order (PSM is the inference format)
    eval_every: int = 50
    eval_batches: int = 2
    val_fraction: float = 0.05
    fine_fraction: float = 0.3        # fine phase: the best-scored 30% ...
    fine_min_score: float = 0.0       # ... that also score at least this
    fine_steps: int = 0               # 0 = from fine_epochs; --fine-fraction 0 skips the phase
    fine_epochs: float = 1.0


def main(cfg):
    """Coarse-to-fine SFT: two runs of trainer.train() on one model."""
    if not os.path.isdir(cfg.init):
        raise trainer.Fatal(f"--init {cfg.init} is not a directory; SFT starts from a pretrained checkpoint "
                             "(run pretrain.py / repo_pretrain.py, or pass an official base model directory).")
    cfg, tok, mc, d = trainer.start(cfg)
    try:
        paths = cfg.data
        if not paths:
            paths = [os.path.join(cfg.out, "data", "sft.jsonl")]
            trainer.build_once(paths[0], lambda: synth(SynthConfig(out=os.path.dirname(paths[0]))), d)
        train_rows, val_rows, counts = prepare_rows(load_conversations(paths), tok, cfg.seq_len, cfg.val_fraction)
        if d.main:
            print(f"SFT data: {dict(counts)}")
        if not train_rows:
            raise trainer.Fatal(f"no trainable sample in {', '.join(paths)} (all too long for --seq-len "
                                 f"{cfg.seq_len} or without an assistant reply); check the data or raise --seq-len.")
        make = lambda rows, fim: ChatDataset(rows, tok, cfg.seed, fim, cfg.spm_rate, cfg.seq_len)
        val = make(val_rows, 0.0) if val_rows else None
        bf16 = trainer.use_bf16(cfg, d.device)
        model = trainer.build_model(cfg, mc, d, bf16)
        coarse = replace(cfg, out=os.path.join(cfg.out, "coarse"),
                         max_steps=cfg.max_steps or trainer.steps_for(cfg.epochs, len(train_rows), cfg, d))
        if d.main:
            print(f"coarse phase: {len(train_rows)} samples, {coarse.max_steps} steps")
        trainer.train(coarse, model, make(train_rows, cfg.fim_rate), val, d=d, tokenizer=tok, bf16=bf16, chat=True)
        ranked = sorted(train_rows, key=lambda r: -r["score"])
        fine_rows = [r for r in ranked[:math.ceil(cfg.fine_fraction * len(ranked))] if r["score"] >= cfg.fine_min_score]
        if not fine_rows:
            if d.main:
                print("fine phase: no sample selected, skipped; the model is in " + coarse.out)
            return model
        fine = replace(cfg, max_steps=cfg.fine_steps or trainer.steps_for(cfg.fine_epochs, len(fine_rows), cfg, d))
        if d.main:
            print(f"fine phase: {len(fine_rows)} samples scoring >= {fine_rows[-1]['score']:.3f}, "
                  f"{fine.max_steps} steps")
        return trainer.train(fine, model, make(fine_rows, cfg.fim_rate), val, d=d, tokenizer=tok, bf16=bf16, chat=True)
    finally:
        trainer.teardown()


# ----------------------------------------------------------------------------- chat

@dataclass
class ChatConfig:
    model: str = "out/sft"
    system: str = DEFAULT_SYSTEM
    prompt: str = ""              # answer this one message and exit (no interactive loop)
    max_new_tokens: int = 512
    # Sampling as the official instruct generation_config.json, which every chat checkpoint here
    # writes too (tokenizer.INSTRUCT_GENERATION); temperature 0 is greedy. Without the repetition
    # penalty a small model's greedy reply loops ("getgetget...").
    temperature: float = INSTRUCT_GENERATION["temperature"]
    top_p: float = INSTRUCT_GENERATION["top_p"]
    top_k: int = INSTRUCT_GENERATION["top_k"]
    repetition_penalty: float = INSTRUCT_GENERATION["repetition_penalty"]
    dtype: str = "auto"           # auto: bf16 on GPUs and on CPUs with native bf16, else fp32


def chat(cfg):
    """Interactive ChatML chat, the reply printed as it is generated."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with trainer.user_errors():
        model = Transformer.from_pretrained(cfg.model, device=device, dtype=inference_dtype(device, cfg.dtype))
        tok = Tokenizer.from_pretrained(cfg.model)
    stops = [tok.special[t] for t in CHAT_STOPS]
    messages = [{"role": "system", "content": cfg.system}]
    while True:
        try:
            user = cfg.prompt or input("\nuser> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return messages
        messages.append({"role": "user", "content": user})
        ids, _ = render_chat(messages, tok, add_generation_prompt=True)
        print("assistant> ", end="", flush=True)
        reply, shown = "", 0
        for _, new in model.stream([ids], cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k,
                                   top_p=cfg.top_p, repetition_penalty=cfg.repetition_penalty, stop_ids=stops,
                                   partial=True):
            reply = tok.decode([t for t in new if t not in stops and t < tok.n_vocab])
            if not reply.endswith("\ufffd"):  # hold back a character split across tokens
                print(reply[shown:], end="", flush=True)
                shown = len(reply)
        print(reply[shown:])
        messages.append({"role": "assistant", "content": reply})
        if cfg.prompt:
            return messages


# ----------------------------------------------------------------------------- CLI

synth = trainer.user_errors()(synth_main)   # `sft.py synth`: an unreadable --inputs as one sentence


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["synth"]:
        trainer.run_cli(synth, trainer.parse(SynthConfig, argv[1:], __doc__))
    elif argv[:1] == ["chat"]:
        trainer.run_cli(chat, trainer.parse(ChatConfig, argv[1:], __doc__))
    else:
        trainer.run_cli(main, trainer.parse(SFTConfig, argv, __doc__))
