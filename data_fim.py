"""Pretraining documents for a code LLM: file- and repo-level FIM, tokenized once, served by index.

Qwen2.5-Coder report §3.2.1 (file-level fill-in-the-middle, Fig. 3) and §3.2.2 (repo-level
pretraining, Fig. 4), on a corpus cleaned as §3.1 and §5 say (corpus.py reads it, clean.py
cleans it). FIM itself follows Bavarian et al. 2022. One file past ~600 lines because prepare
writes and PackedDataset reads one on-disk format (uint32 shards, DOC_INDEX, meta.json).

    python data_fim.py show --tokenizer DIR                        # FIM and repo-level examples
    python data_fim.py prepare --tokenizer DIR --out data/file     # clean + tokenize the built-in corpus
    python data_fim.py prepare --tokenizer DIR --out data/repo --level repo --seq-len 4096
    python data_fim.py prepare --tokenizer DIR --out data/sys --input system --workers 8
    python data_fim.py prepare --tokenizer DIR --out /shared/d --input shards/ --shard 3/8   # machine 3 of 8

The pipeline, in file order:
  format_fim / fim_prompt / format_repo    the exact strings of Fig. 3 and Fig. 4
  random_span / syntax_span                character-level (Bavarian) or tree-sitter spans
  order_files    imported modules before the files importing them (Fig. 4's order)
  prepare        clean (clean.py), split by repository, tokenize in --workers processes into
                 uint32 shards (np.memmap) + a per-document index (language, quality) + meta.json
  PackedDataset  global sample index -> row of tokens -> context-level FIM -> (x, y)
  Mixture        weighted sources as a pure function of the global index

Serving is a pure function of (seed, global index g). Sample g of epoch e = g // len reads
row pi_e(g % len), where pi_e is a permutation seeded by (seed, e) (epoch_order: stored, 4 bytes
per row, for corpora up to ~2T tokens), and draws all its FIM choices from an RNG seeded by
(seed, g). So batches are identical whatever the ranks or gradient-accumulation split, and resuming needs
nothing but the next global index. Rows: at level "file" the token stream cut every seq_len
tokens (rows of seq_len + 1 overlap by one, so each token is a target exactly once per
epoch); at level "repo" whole repository chunks packed into rows and padded, so a chunk is
never split between samples unless it is longer than a row.
FIM comes after packing, per document fragment inside the row ("context-level", Bavarian et
al.), so a middle is never cut off by the row's edge: the fragment is decoded, split, and its
pieces re-encoded around the sentinel ids; the row keeps its exact length by trimming the
suffix (never the middle) or padding with <|fim_pad|> (target -100). Each document's language
(from the per-document index) picks its tree-sitter grammar for syntax spans: Python, Java,
C/C++ and JavaScript; other languages get character spans. FIM is PSM, the format of Fig. 3
and of inference (spm_rate > 0 mixes in SPM, as Bavarian et al. do).

The built-in corpus is code only (the standard library; `--input system` adds the C/C++, Java,
Perl, shell, JavaScript and Python this machine holds); the 70:20:10 mixture of Table 3
(Mixture) is for sources you prepare yourself, each into its own directory.
"""
import argparse
import hashlib
import heapq
import json
import math
import os
import random
import sys
import time
from functools import lru_cache

import numpy as np
import torch

from clean import (GRAMMARS, CleanConfig, add_arguments, clean, config_from, summary, tree_sitter_parser,  # noqa: F401
                   write_atomic)
from dedup import decontaminate  # noqa: F401  (sft_data.py imports it from here)
from corpus import (Pool, Repo, load_corpus, read_jsonl, runs, split_repos,  # noqa: F401  (their importers use data_fim)
                    unit_hash)
from tokenizer import Tokenizer

# ----------------------------------------------------------------------------- FIM formats (Fig. 3, Fig. 4)

def format_fim(prefix, middle, suffix, spm=False):
    """File-level FIM training text, PSM (Fig. 3) or SPM (Bavarian et al.: suffix, then prefix + middle)."""
    if spm:
        return f"<|fim_prefix|><|fim_suffix|>{suffix}<|fim_middle|>{prefix}{middle}<|endoftext|>"
    return f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}<|endoftext|>"


def fim_token_ids(tok, prefix, middle, suffix, spm=False):
    """format_fim as ids: the sentinels as single ids, each piece encoded as plain text, so
    file text can never turn into a control token."""
    sp = tok.special
    fp, fm, fs = sp["<|fim_prefix|>"], sp["<|fim_middle|>"], sp["<|fim_suffix|>"]
    pre, mid, suf = (tok.encode(t) for t in (prefix, middle, suffix))
    ids = [fp, fs] + suf + [fm] + pre + mid if spm else [fp] + pre + [fs] + suf + [fm] + mid
    return ids + [tok.eot_id]


def fim_prompt(prefix, suffix):
    """What a model sees at inference: PSM up to <|fim_middle|>; it writes the middle and stops."""
    return f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"


def format_repo(repo_name, files, fim_file=None):
    """Repo-level text (Fig. 4). With fim_file = (prefix, middle, suffix), those pieces
    replace the last file's content and it is written in FIM form, ending the document."""
    if fim_file is None:
        return f"<|repo_name|>{repo_name}\n" + "".join(f"<|file_sep|>{p}\n{c}\n" for p, c in files)
    *context, (path, _) = files
    return format_repo(repo_name, context) + f"<|file_sep|>{path}\n" + format_fim(*fim_file)


def random_span(text, rng):
    """(prefix, middle, suffix) cut at two uniform character positions (Bavarian et al. §3)."""
    a, b = sorted((rng.randint(0, len(text)), rng.randint(0, len(text))))
    return text[:a], text[a:b], text[b:]


SYNTAX_NODES = ("statement", "definition", "declaration", "block")  # node-type suffixes in all 4 grammars


def syntax_span(text, rng, language="python"):
    """(prefix, middle, suffix) where the middle is one whole, error-free tree-sitter node:
    a statement, a block (e.g. a function body) or a definition. None if there is none.
    A node that begins its line takes the line's indentation with it, so the middle is whole
    lines, as in the line-infilling benchmarks (HumanEval-FIM masks "    return x")."""
    data = text.encode("utf-8")
    stack, spans = list(tree_sitter_parser(language).parse(data).root_node.children), []
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.is_named and not node.has_error and node.type.endswith(SYNTAX_NODES) \
                and node.end_byte > node.start_byte:
            spans.append((node.start_byte, node.end_byte))
    if not spans:
        return None
    a, b = spans[rng.randrange(len(spans))]
    line_start = data.rfind(b"\n", 0, a) + 1
    if not data[line_start:a].strip(b" \t"):
        a = line_start
    return data[:a].decode("utf-8"), data[a:b].decode("utf-8"), data[b:].decode("utf-8")


# ----------------------------------------------------------------------------- repo-level order

def _module(path):
    """Dotted module name of a .py path: "pkg/sub/mod.py" -> "pkg.sub.mod", "pkg/__init__.py" -> "pkg"."""
    parts = path[:-3].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def _import_query():
    import tree_sitter
    query = "[(import_statement) (import_from_statement)] @imp"
    return tree_sitter.Query(tree_sitter_parser("python").language, query)


def _imports(path, content):
    """Dotted names a Python file imports ("from a import b" -> "a.b"), relative ones resolved.
    tree-sitter, not ast: 2-3x faster, and it reads Python 2 files too (they exist in the wild)."""
    import tree_sitter
    data = content.encode("utf-8")
    text = lambda node: data[node.start_byte:node.end_byte].decode("utf-8")
    package = _module(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    names = []
    tree = tree_sitter_parser("python").parse(data)
    for node in tree_sitter.QueryCursor(_import_query()).captures(tree.root_node).get("imp", []):
        targets = [n.child_by_field_name("name") or n for n in node.children_by_field_name("name")]  # drop "as x"
        if node.type == "import_statement":
            names += [text(n) for n in targets]
            continue
        module = text(node.child_by_field_name("module_name"))
        base, level = module.lstrip("."), len(module) - len(module.lstrip("."))
        if level:  # from . import x / from ..pkg import y
            base = ".".join(package[:len(package) - level + 1] + ([base] if base else []))
        names += [f"{base}.{text(n)}" for n in targets] or [base]  # "b" in "from a import b" may be a module
    return names


def order_files(files):
    """Files ordered so that imported modules come before the files importing them (Fig. 4)."""
    return [files[i] for i in import_order(files)]


def import_order(files):
    """The indices of files [(path, content)] in Fig. 4's order: a stable topological sort
    (Kahn's algorithm, the earliest ready file first); a cycle is broken by releasing its
    earliest file. Non-Python files keep their relative place."""
    python = [(i, _module(path)) for i, (path, _) in enumerate(files) if path.endswith(".py")]
    modules = {name: i for i, name in python}
    for i, name in python:  # then shorter suffixes, for src/ layouts ("src.pkg.m" -> "pkg.m")
        parts = name.split(".")
        for k in range(1, len(parts)):
            modules.setdefault(".".join(parts[k:]), i)
    deps = [set() for _ in files]
    for i, _ in python:
        for name in _imports(*files[i]):  # the longest prefix that is a file of this repo
            parts = name.split(".")
            j = next((modules[p] for p in (".".join(parts[:k]) for k in range(len(parts), 0, -1))
                      if p in modules), i)
            if j != i:
                deps[i].add(j)
    users, waiting = [[] for _ in files], [len(d) for d in deps]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    done, order = [False] * len(files), []
    while len(order) < len(files):
        i = heapq.heappop(ready) if ready else done.index(False)  # empty heap = a cycle
        done[i] = True
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0 and not done[u]:
                heapq.heappush(ready, u)
    return order


# ----------------------------------------------------------------------------- prepare: clean, split, tokenize once

FINGERPRINT_TEXT = "def fim(a, b):\n    return f'{a}<|fim_middle|>{b}'  # ünïcödé 2024\n"
DOC_INDEX = np.dtype([("end", np.int64), ("language", np.int16), ("quality", np.float32)])


def tokenizer_fingerprint(tok):
    """A short hash that changes whenever the tokenizer would produce different ids."""
    probe = [tok.n_vocab, sorted(tok.special.items()), tok.encode(FINGERPRINT_TEXT)]
    return hashlib.sha256(json.dumps(probe).encode()).hexdigest()[:16]


def _repo_documents(tok, repo, seq_len):
    """(ids, index of the file it ends with) of the Fig. 4 documents of one repository: files in
    import order, split on file boundaries into chunks of at most seq_len tokens (plus
    <|endoftext|>), each with the <|repo_name|> header. Ids are built piece by piece so file text
    never becomes a control token."""
    if all(p == "" for p, _ in repo.files):  # {"text"} documents have no repository structure
        return [(tok.encode(c), k) for k, (_, c) in enumerate(repo.files)]
    head = [tok.special["<|repo_name|>"]] + tok.encode(f"{repo.name}\n")
    docs, cur, last = [], [], None
    for k in import_order(repo.files):
        p, c = repo.files[k]
        piece = [tok.special["<|file_sep|>"]] + tok.encode(f"{p}\n{c}\n")
        if len(cur) > len(head) and len(cur) + len(piece) > seq_len:
            docs.append((cur, last))
            cur = []
        cur, last = (cur or list(head)) + piece, k
    return docs + [(cur, last)]


_TOKENIZE = {}


def _init_tokenize(tok, level, seq_len, languages):
    _TOKENIZE.update(tok=tok, level=level, seq_len=seq_len, languages=languages)


def _tokenize(job):
    """A repository's (or at level "file", a run of its files') documents as (uint32 ids ending in
    <|endoftext|>, language id, quality); a repo-level document takes its last file's language
    (the FIM target) and its files' mean quality."""
    first, split, repo = job
    tok, languages = _TOKENIZE["tok"], _TOKENIZE["languages"]
    langs = repo.languages or ["unknown"] * len(repo.files)
    quality = repo.quality or [1.0] * len(repo.files)
    if _TOKENIZE["level"] == "file":
        docs = [(tok.encode(c), k) for k, (_, c) in enumerate(repo.files)]
        q = quality
    else:
        docs = _repo_documents(tok, repo, _TOKENIZE["seq_len"])
        q = [sum(quality) / len(quality)] * len(repo.files)
    return first, split, len(repo.files), [(np.asarray(ids + [tok.eot_id], dtype=np.uint32),
                                            languages.index(langs[k]) if langs[k] in languages else -1, q[k])
                                           for ids, k in docs]


class _Writer:
    """Documents into {split}_{tag}00000.bin, ... (uint32 ids; a document never straddles two
    files, so each is a self-contained stream) and a .docs.npy index per file (DOC_INDEX)."""

    def __init__(self, out_dir, name, shard_tokens):
        self.out_dir, self.name, self.shard_tokens, self.shards, self.f, self.index = out_dir, name, shard_tokens, [], None, []

    def write(self, ids, language, quality):
        if self.f is None or (self.shards[-1]["tokens"] and self.shards[-1]["tokens"] + len(ids) > self.shard_tokens):
            self._close()
            file = f"{self.name}{len(self.shards):05d}.bin"
            self.shards.append({"file": file, "index": file[:-4] + ".docs.npy", "tokens": 0, "docs": 0})
            self.f = open(os.path.join(self.out_dir, file), "wb")
        self.f.write(ids.tobytes())
        self.shards[-1]["tokens"] += len(ids)
        self.shards[-1]["docs"] += 1
        self.index.append((self.shards[-1]["tokens"], language, quality))

    def _close(self):
        if self.f:
            self.f.close()
            np.save(os.path.join(self.out_dir, self.shards[-1]["index"]), np.array(self.index, dtype=DOC_INDEX))
        self.f, self.index = None, []

    def close(self):
        self._close()
        return self.shards


def _merge_parts(out_dir, n):
    """meta.json from every shard's meta part, once all are there (whichever shard ends last
    writes it; all would write the same)."""
    paths = [os.path.join(out_dir, f"meta-{i}-of-{n}.json") for i in range(n)]
    if not all(os.path.exists(p) for p in paths):
        return None
    parts = [json.load(open(p)) for p in paths]
    splits = {split: {"shards": [sh for p in parts for sh in p["splits"][split]["shards"]],
                      **{k: sum(p["splits"][split][k] for p in parts) for k in ("tokens", "docs", "repos", "files")}}
              for split in parts[0]["splits"]}
    meta = {**parts[0], "splits": splits, "seconds": max(p["seconds"] for p in parts)}
    write_atomic(os.path.join(out_dir, "meta.json"), json.dumps(meta, indent=1))
    return meta


def prepare(tokenizer, out_dir, inputs=None, level="file", seq_len=1024, *, val_fraction=0.1,
            problems="humaneval", seed=0, shard_tokens=2**28, max_bytes=1_000_000, verbose=True,
            workers=1, shard=(0, 1), clean_config=None):
    """Clean (clean.py), split, and tokenize a corpus once; write shards + meta.json.

    level "file": one document per file. level "repo": one document per repository chunk
    in Fig. 4 format (chunks fit seq_len). problems: the benchmarks to decontaminate against
    (None skips); clean_config, if given, sets every cleaning step instead. inputs may be a
    corpus `clean.py --out` wrote: it is then tokenized as it is. With shard=(i, n), n machines
    sharing out_dir each prepare their part; the last to finish writes meta.json over all parts.
    Returns this shard's meta dict.
    """
    if level not in ("file", "repo"):
        raise ValueError(f"level must be 'file' or 'repo', not {level!r}.")
    t0 = time.time()
    problems = [] if problems in (None, "none") else [problems] if isinstance(problems, (str, dict)) else problems
    cfg = clean_config or CleanConfig(max_bytes=max_bytes, decontaminate=list(problems))
    listed = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    repos, stats, names = clean(listed, os.path.join(out_dir, "scan"), cfg, workers, shard, verbose)
    if not names:
        raise ValueError(f"no usable source files in {inputs or 'the standard library'}; "
                         "check the path and the file extensions.")
    val = {r.name for r in split_repos([Repo(n, []) for n in dict.fromkeys(names)], val_fraction, seed)[1]}
    languages = sorted(stats["languages"])
    os.makedirs(out_dir, exist_ok=True)
    tag = "" if shard[1] == 1 else f"{shard[0]}of{shard[1]}-"
    writers = {s: _Writer(out_dir, f"{s}_{tag}", shard_tokens) for s in ("train", "val")}
    counts = {s: {"repos": 0, "files": 0} for s in writers}

    def jobs():  # file-level documents: runs of a repository's files, so a big one is not one worker's
        for _, r, _ in repos:
            split = "val" if r.name in val else "train"
            for first, files in runs(r.files) if level == "file" else [(0, r.files)]:
                part = slice(first, first + len(files))
                yield first, split, Repo(r.name, files, r.languages and r.languages[part],
                                         r.quality and r.quality[part])
    with Pool(workers, _init_tokenize, (tokenizer, level, seq_len, languages)) as pool:
        for first, split, files, docs in pool.map(_tokenize, jobs()):
            counts[split]["repos"] += first == 0
            counts[split]["files"] += files
            for ids, lang, q in docs:
                writers[split].write(ids, lang, q)
    splits = {s: {"shards": w.close(), **counts[s]} for s, w in writers.items()}
    for s in splits.values():
        s["tokens"], s["docs"] = sum(x["tokens"] for x in s["shards"]), sum(x["docs"] for x in s["shards"])
    meta = {"format": "data_fim/2", "level": level, "seq_len": seq_len, "dtype": "uint32",
            "inputs": None if inputs is None else [str(i) for i in listed],
            "tokenizer": {"n_vocab": tokenizer.n_vocab, "fingerprint": tokenizer_fingerprint(tokenizer),
                          "eot_id": tokenizer.eot_id},
            "doc_languages": languages, "val_repos": [n for n in dict.fromkeys(names) if n in val],
            **{k: v for k, v in stats.items() if k not in ("format", "inputs", "seconds")},
            "splits": splits, "seconds": round(time.time() - t0, 2)}
    name = "meta.json" if shard[1] == 1 else f"meta-{shard[0]}-of-{shard[1]}.json"
    with open(os.path.join(out_dir, name), "w") as f:
        json.dump(meta, f, indent=1)
    if shard[1] > 1:
        _merge_parts(out_dir, shard[1])
    return meta


# ----------------------------------------------------------------------------- serving: packing + context-level FIM

@lru_cache(maxsize=16)   # per (rows, seed, epoch): a run reads one or two epochs of each source at a time
def epoch_order(n, seed, epoch):
    """The order in which epoch `epoch` visits n rows: numpy's permutation seeded by (seed, epoch).

    Stored: 4 bytes per row on every rank, computed once per epoch (seconds per 100M rows). 1 GiB
    is 268M rows, 2.2T tokens of the report's 8,192-token rows: 40% of its whole stage 1 (5.2T
    tokens), over a thousand times what this project's speedrun reads (~4M tokens on a CPU, ~2B
    on 8 GPUs). A corpus that large wants a stateless keyed permutation (a Feistel network over
    the row index) instead. numpy does not promise the same stream across versions: resume a run
    with the numpy it started with."""
    order = np.random.default_rng([seed % 2**64, epoch]).permutation(n)   # seeds must be >= 0
    return order.astype(np.uint32) if n < 2**32 else order


def sample_row(g, n, seed):
    """The row (of n) that global sample g reads: epoch g // n visits every row once, in the
    order epoch_order(n, seed, epoch). Every training stage serves its data this way."""
    epoch, i = divmod(int(g), n)
    return int(epoch_order(n, seed, epoch)[i])


class PackedDataset:
    """Fixed-length training samples from a prepare()d directory, by global index.

    get_batch(indices) -> (x, y), LongTensors of shape (len(indices), seq_len); y is the
    next token, -100 where the position is padding. See the module docstring for the design.
    """

    def __init__(self, data_dir, tokenizer, seq_len, split="train", fim_rate=0.5, spm_rate=0.0, seed=0,
                 syntax_rate=0.25, language="python"):
        path = os.path.join(data_dir, "meta.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found; run `python data_fim.py prepare --tokenizer DIR "
                                    f"--out {data_dir}` first.")
        with open(path) as f:
            self.meta = json.load(f)
        if self.meta["tokenizer"]["fingerprint"] != tokenizer_fingerprint(tokenizer):
            raise ValueError(f"{data_dir} was prepared with a different tokenizer; rerun "
                             "`python data_fim.py prepare` with this one.")
        info = self.meta["splits"].get(split, {})
        if info.get("tokens", 0) < 2:
            raise ValueError(f"{data_dir} has no {split!r} data; prepare more repositories "
                             "or a larger --val-fraction.")
        self.tok, self.seq_len, self.seed = tokenizer, seq_len, seed
        self.fim_rate, self.spm_rate, self.syntax_rate, self.language = fim_rate, spm_rate, syntax_rate, language
        self.eot, self.pad = tokenizer.eot_id, tokenizer.special["<|fim_pad|>"]
        self.headers = np.array([tokenizer.special["<|repo_name|>"], tokenizer.special["<|file_sep|>"]])
        self.shards = [np.memmap(os.path.join(data_dir, s["file"]), dtype=np.uint32, mode="r")
                       for s in info["shards"]]
        # each document's end and language (a directory from before the index: `language` for all)
        self.doc_end = [np.load(os.path.join(data_dir, s["index"]), mmap_mode="r")["end"] if "index" in s else None
                        for s in info["shards"]]
        self.doc_language = [np.load(os.path.join(data_dir, s["index"]))["language"] if "index" in s else None
                             for s in info["shards"]]
        self.languages = self.meta.get("doc_languages", [])  # what the index's language ids name
        self.rows = None
        if self.meta["level"] == "repo":  # rows packed from whole documents: stored, one per sample
            self.rows = np.array([(k, start, length) for k, shard in enumerate(self.shards)
                                  for start, length in self._pack(shard)], dtype=np.int64).reshape(-1, 3)
            self.n_rows = len(self.rows)
        else:  # the stream cut every seq_len tokens: computed on the fly, O(shards) memory
            self.first_row = np.cumsum([0] + [(len(s) - 2) // seq_len + 1 for s in self.shards])
            self.n_rows = int(self.first_row[-1])

    def _pack(self, shard):
        """(start, length <= seq_len + 1) of rows holding whole documents (next-fit; the rest of
        a row is padding). A document longer than a row is cut like the file-level stream."""
        rows, start, doc_start, width = [], 0, 0, self.seq_len + 1
        for end in (np.flatnonzero(shard == self.eot) + 1).tolist():
            if end - start > width:  # the open row cannot take this document whole
                if doc_start > start and end - doc_start <= width:  # a fresh row can: close this one
                    rows.append((start, doc_start - start))
                    start = doc_start
                while end - start > width:  # consecutive cut rows overlap by one token: no target lost
                    rows.append((start, width))
                    start += self.seq_len
            doc_start = end
        return rows + ([(start, len(shard) - start)] if len(shard) - start > 1 else [])

    def _row(self, i):
        """(shard, start, length) of row i."""
        if self.rows is not None:
            return self.rows[i]
        k = int(np.searchsorted(self.first_row, i, side="right")) - 1
        start = (i - int(self.first_row[k])) * self.seq_len  # rows overlap by one token: each is a target once
        return k, start, min(self.seq_len + 1, len(self.shards[k]) - start)

    def __len__(self):
        return self.n_rows

    def _language(self, shard, pos):
        """The tree-sitter grammar of the document holding token `pos` of a shard, or None."""
        if self.doc_end[shard] is None:
            return self.language
        k = int(np.searchsorted(self.doc_end[shard], pos, side="right"))
        lang = int(self.doc_language[shard][min(k, len(self.doc_language[shard]) - 1)])
        return GRAMMARS.get(self.languages[lang]) if lang >= 0 else None

    def _fim_fragment(self, frag, rng, language="python"):
        """One document fragment (ends with <|endoftext|> unless the window cut it) in FIM form,
        or None to keep it as is. Repo-level fragments: the FIM target is the content of the
        last file (text after the last control token and its path line). Syntax spans need a
        grammar for the document's language; without one, a character span."""
        has_eot = frag[-1] == self.eot
        body = frag[:-1] if has_eot else frag
        ctrl = np.flatnonzero(np.isin(body, self.headers))
        k = int(ctrl[-1]) + 1 if len(ctrl) else 0
        text, line = self.tok.decode(body[k:].tolist()), ""
        if k:  # skip the path (or repo name) line; Fig. 4's FIM file has no newline before <|endoftext|>
            cut = text.find("\n") + 1
            if cut == 0:
                return None
            line, text = text[:cut], text[cut:]
            if has_eot and text.endswith("\n"):
                text = text[:-1]
        if not text:
            return None
        span = (syntax_span(text, rng, language) if rng.random() < self.syntax_rate and language else None) \
            or random_span(text, rng)
        ids = fim_token_ids(self.tok, *span, spm=rng.random() < self.spm_rate)
        if not has_eot:  # the row's edge cut this fragment: it does not end the document
            ids.pop()
        head = body[:k].tolist() + (self.tok.encode(line) if line else [])
        excess = len(head) + len(ids) - len(frag)
        if excess > 0:  # trim the suffix, never the middle; too short a suffix: no FIM here
            fs, fm = ids.index(self.tok.special["<|fim_suffix|>"]), ids.index(self.tok.special["<|fim_middle|>"])
            if fm - fs - 1 <= excess:  # the suffix sits right before <|fim_middle|> in PSM and SPM
                return None
            del ids[fm - excess:fm]
        return head + ids + [self.pad] * max(0, -excess)

    def window(self, g):
        """Tokens of sample g: seq_len + 1 ids (a row, FIM per fragment, <|fim_pad|> to the end)."""
        shard, start, length = self._row(sample_row(g, self.n_rows, self.seed))
        w = np.asarray(self.shards[shard][start:start + length], dtype=np.int64)
        if self.fim_rate > 0:
            rng = random.Random(f"{self.seed}:{g}")  # per-sample seed: independent of ranks and workers
            pieces, pos = [], start
            for frag in np.split(w, np.flatnonzero(w[:-1] == self.eot) + 1):  # each ends at its <|endoftext|>
                fim = None
                if rng.random() < self.fim_rate and len(frag) > 1:
                    fim = self._fim_fragment(frag, rng, self._language(shard, pos))
                pieces.append(frag if fim is None else fim)
                pos += len(frag)
            w = np.concatenate(pieces)
        return np.concatenate([w, np.full(self.seq_len + 1 - len(w), self.pad, dtype=np.int64)])

    def get_batch(self, indices):
        tokens = torch.from_numpy(np.stack([self.window(g) for g in indices]))
        x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].clone()
        y[(y == self.pad) | (x == self.pad)] = -100  # padding is neither predicted nor predicts
        return x, y


class Mixture:
    """Weighted sources (Table 3: code:text:math = 70:20:10) as a pure function of g.

    The weights become integer counts per block (70:20:10 -> 7, 2, 1 in blocks of 10);
    a smooth weighted round-robin fixes which source serves each position of a block,
    and source s's k-th sample overall is its own sample k: exact proportions, no
    running counters, every source read in its own order. One epoch = one epoch of
    the first source.
    """

    def __init__(self, sources, weights=None):
        if weights is None:
            weights = (70, 20, 10) if len(sources) == 3 else (1,) * len(sources)
        if len(weights) != len(sources) or min(weights) <= 0:
            raise ValueError("Mixture needs one positive weight per source.")
        if len({s.seq_len for s in sources}) != 1:
            raise ValueError("Mixture sources must share one seq_len; build each PackedDataset with the same one.")
        counts = [max(1, round(w / sum(weights) * 1000)) for w in weights]
        counts = [c // math.gcd(*counts) for c in counts]
        self.sources, self.counts, self.block = sources, counts, sum(counts)
        credit, self.schedule, self.rank = [0] * len(counts), [], []
        for _ in range(self.block):
            credit = [c + w for c, w in zip(credit, counts)]
            s = credit.index(max(credit))
            credit[s] -= self.block
            self.rank.append(self.schedule.count(s))
            self.schedule.append(s)

    def __len__(self):
        return math.ceil(len(self.sources[0]) * self.block / self.counts[0])

    def source_index(self, g):
        """(source, index inside that source) of global sample g."""
        block, pos = divmod(int(g), self.block)
        s = self.schedule[pos]
        return s, block * self.counts[s] + self.rank[pos]

    def get_batch(self, indices):
        where = [self.source_index(g) for g in indices]
        x = torch.empty(len(where), self.sources[0].seq_len, dtype=torch.long)
        y = torch.empty_like(x)
        for s, source in enumerate(self.sources):
            rows = [b for b, (t, _) in enumerate(where) if t == s]
            if rows:
                x[rows], y[rows] = source.get_batch([where[b][1] for b in rows])
        return x, y


# ----------------------------------------------------------------------------- CLI

def _shorten(content, lines=3):
    kept = content.splitlines(keepends=True)
    return "".join(kept[:lines]) + (f"# ... ({len(kept) - lines} more lines)" if len(kept) > lines else "")


def show(tokenizer=None, inputs=None, seed=0):
    """Print FIM (PSM and SPM, random and syntax spans) and repo-level examples."""
    repos, _ = load_corpus(inputs)
    rng = random.Random(seed)
    files = [f for r in repos for f in r.files if f[0].endswith(".py")] or [f for r in repos for f in r.files]
    path, text = min(files, key=lambda f: abs(len(f[1]) - 500))  # a file short enough to read
    examples = []
    for kind in ("random", "syntax"):
        span = (syntax_span(text, rng) if kind == "syntax" else None) or random_span(text, rng)
        for spm in (False, True):
            examples.append((f"file-level FIM, {'SPM' if spm else 'PSM'}, {kind} span, {path}",
                             format_fim(*span, spm=spm)))
    repo = next((r for r in repos if r.name == "python/json"), min(repos, key=lambda r: sum(map(len, r.files))))
    ordered = [(p, _shorten(c)) for p, c in order_files(repo.files)]
    examples.append((f"repo-level, {repo.name}, files in import order (shortened to 3 lines)",
                     format_repo(repo.name, ordered)))
    last = ordered[-1][1]
    examples.append(("repo-level FIM on the last file (Fig. 4), syntax span",
                     format_repo(repo.name, ordered, syntax_span(last, rng) or random_span(last, rng))))
    for title, example in examples:
        print(f"==== {title}\n{example}")
        if tokenizer is not None:
            ids = tokenizer.encode(example, allowed_special="all")
            found = {t: i for t, i in tokenizer.special.items() if i in ids}
            print(f"---- {len(ids)} tokens; the control tokens are single ids: {found}")
        print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="clean and tokenize a corpus into shards + meta.json")
    p.add_argument("--tokenizer", required=True, help="directory with vocab.json + merges.txt")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--level", choices=("file", "repo"), default="file")
    p.add_argument("--seq-len", type=int, default=1024, help="repo level: chunk repositories to fit this")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    add_arguments(p)  # --input, --workers, --shard and the cleaning steps: clean.py's flags
    s = sub.add_parser("show", help="print FIM and repo-level examples")
    s.add_argument("--tokenizer", default=None)
    s.add_argument("--input", nargs="*", default=None)
    s.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        tok = Tokenizer.from_pretrained(args.tokenizer) if args.tokenizer else None
        if args.cmd == "show":
            return show(tok, args.input, args.seed)
        meta = prepare(tok, args.out, args.input, args.level, args.seq_len, val_fraction=args.val_fraction,
                       seed=args.seed, workers=args.workers, shard=args.shard, clean_config=config_from(args))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    c, sp = meta["corpus"], meta["splits"]
    print(f"{c['repos']} repos, {c['files']} files, {c['bytes'] / 1e6:.1f} MB -> "
          f"train {sp['train']['tokens']:,} tokens ({sp['train']['docs']} docs), "
          f"val {sp['val']['tokens']:,} tokens ({len(meta['val_repos'])} repos: {', '.join(meta['val_repos'][:8])}"
          f"{', ...' if len(meta['val_repos']) > 8 else ''})")
    print(summary(meta))
    print(f"decontaminated: {len(meta['decontaminated'])} files"
          + "".join(f"\n  {d['repo']}/{d['path']} ~ {d['problem']}: {d['ngram']!r}" for d in meta['decontaminated'][:20]))
    print(f"wrote {args.out}/meta.json in {meta['seconds']} s")


if __name__ == "__main__":
    main()
