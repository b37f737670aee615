"""Cleaning the corpus: language ID, quality rounds, near-dedup, decontamination (report §3.1, §5).

    python clean.py --out out/corpus                                # the standard library, cleaned
    python clean.py --input system --out out/corpus --workers 2     # + the code this machine has
    python clean.py --input shards/ --out /shared/c --shard 0/4     # machine 0 of 4, one shared --out
    python clean.py --out out/corpus --decontaminate humaneval MbppPlus.jsonl cruxeval.jsonl test.jsonl

Writes OUT/part-*.jsonl.gz (a repository per line, each file with its language and quality
score) and OUT/meta.json (what every step did, with examples). tokenizer.py and data_fim.py
take OUT as their --input, so the tokenizer learns from the very text the model trains on.

Each file goes through these steps; the first that rejects it names the count it adds to:
  1. the file rules of corpus.py (unreadable, huge, binary, undecodable, empty, long lines, generated)
  2. language: the extension's (or the #! line's); where there is none, or it is ambiguous
     (.h), the language-ID classifier's; where the classifier gives the extension's language
     p < 0.01 and the file parses as the classifier's language but not as the extension's, the
     classifier's ("relabelled": the extension lied)
  3. quality (Fig. 1): classify.QualityFilter's rounds; a score < 0.5 in a language the rounds
     learnt from is "low_quality". Seeds: documented files that parse are good; generated,
     minified, unparseable files and data tables are bad
  4. decontamination (§5): a 10-gram shared with any benchmark given is "contaminated"
  5. over the whole corpus: exact copies ("duplicate"), then MinHash near-copies
     ("near_duplicate"); the first in corpus order stays

Three streaming passes in --workers processes, each job ~256 KB of a repository's files
(memory: a few jobs per worker, the classifiers' samples, and ~600 bytes per file for the
duplicate decision, ~1 KB per file fingerprinted beside the training; never the corpus):
  0. sample: per language, the 1,000 files whose path hashes lowest teach language ID and the
     quality rounds (a uniform sample, the same whatever the sharding; every shard reads it all)
     -> OUT/scan/classifiers.npz. Training is serial (SGD): the two classifiers train in two
     workers while the others take what of the scan needs no classifier (step 4, the hashes)
  1. scan: steps 1-4 and a MinHash signature -> OUT/scan/scan-I-of-N.npz
  2. once every shard's scan is in OUT/scan/: step 5 over all of them; then stream the kept files
Sharding: repository k (in corpus order) belongs to shard k % N. All shards train the same
classifiers and make the same duplicate decisions, so their parts together are exactly the
one-machine corpus, whatever N and --workers (tested). One file past ~600 lines: the passes
hand each other files of their own format (OUT/scan/*.npz), read and written here alone.
"""
import argparse
import ast
import gzip
import hashlib
import heapq
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

import classify
import dedup
from corpus import (AMBIGUOUS, SKIP_REASONS as FILE_REASONS, Pool, Progress, Repo, extension_language, file_text,
                    is_clean_corpus, repo_refs, runs, shebang_language, unit_hash)

REASONS = FILE_REASONS + ("low_quality", "contaminated", "near_duplicate")
GRAMMARS = {"python": "python", "java": "java", "javascript": "javascript", "cpp": "cpp", "c": "cpp"}
COMMENT = {"python": r"#|\"\"\"|'''", "perl": "#", "shell": "#", "ruby": "#", "r": "#", "yaml": "#",
           "toml": "#", "sql": "--"}  # the rest: C-like comments
_NUMBER = re.compile(r"\b(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?)\b")


@dataclass
class CleanConfig:
    max_bytes: int = 1_000_000
    max_line_length: int = 1000
    source_mb: int = 24          # --input system: at most this many MB of each system source
    language_id: bool = True
    quality_rounds: int = 2      # 0 = no quality filter
    near_dedup: bool = True
    decontaminate: list = field(default_factory=lambda: ["humaneval"])  # benchmark files; [] = none
    sample: float = 1.0          # share of repositories the classifiers' sample is drawn from
    per_language: int = 1000     # sample files per language
    seed: int = 0


# ----------------------------------------------------------------------------- seeds and rules

@lru_cache(maxsize=None)
def tree_sitter_parser(language):
    """A tree-sitter parser for a grammar package (python, java, cpp, javascript)."""
    import importlib
    import tree_sitter
    try:
        grammar = importlib.import_module(f"tree_sitter_{language}")
    except ImportError:
        raise ValueError(f"no tree-sitter grammar for {language!r}; pip install tree-sitter-{language} "
                         "or use python, java, cpp or javascript.") from None
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


def parses(text, language):
    """True/False where a parser can judge the language: CPython's own for Python (Python 2
    files fail), json for JSON, tree-sitter for Java and JavaScript (< 2% of the bytes in ERROR
    nodes). None elsewhere, C and C++ included: their macros trip tree-sitter in good headers."""
    if language == "python":
        try:
            ast.parse(text)
            return True
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    if language == "json":
        try:
            json.loads(text)
            return True
        except ValueError:
            return False
    if language not in ("java", "javascript"):
        return None
    data = text.encode("utf-8", "surrogatepass")
    root = tree_sitter_parser(language).parse(data).root_node
    if not root.has_error:
        return True
    bad, stack = 0, [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            bad += node.end_byte - node.start_byte
        elif node.has_error:
            stack.extend(node.children)
    return bad < 0.02 * len(data)


def seed_label(text, language, reason):
    """The quality seed rule: "bad" for what the file rules reject as generated or minified, for
    data tables (half the words numbers) and files that do not parse; "good" for documented
    files (>= 10% comment or docstring lines) of 10+ lines that parse (or that no parser
    judges); None for the rest, which the rounds learn about from these."""
    if reason in ("generated", "long_lines"):
        return "bad"
    if reason is not None:
        return None
    words = len(text.split())
    if words > 50 and len(_NUMBER.findall(text)) > 0.5 * words:
        return "bad"
    ok = parses(text, language)
    if ok is False:
        return "bad"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    comment = re.compile(COMMENT.get(language, r"//|/\*|\*"))
    documented = sum(bool(comment.match(ln)) for ln in lines) >= 0.1 * len(lines)
    return "good" if len(lines) >= 10 and documented else None


# ----------------------------------------------------------------------------- shared files

def write_atomic(path, content):
    """Write content (text, or a function that writes a given path) to a temporary file, then
    rename it over path: shards sharing a directory never see half a file, and the temporary
    name is this process's own, since several may write the same file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    if callable(content):
        content(tmp)
    else:
        with open(tmp, "w") as f:
            f.write(content)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- pass 0: the classifiers' sample

def _sample_items(job):
    """(group, -hash, path, head, reason, labelled by extension, seed label) of each file of a
    repository whose language its extension or #! line tells (in a worker process)."""
    name, files, cfg = job
    items = []
    for path, data in files:
        text, reason = file_text(data, cfg.max_bytes, cfg.max_line_length)
        by_ext = extension_language(path) if path and os.path.splitext(path)[1].lower() not in AMBIGUOUS else None
        group = (by_ext or shebang_language(text)) if text else None  # a .h file labels nothing: it may be C++
        if group is not None:
            items.append((group, -unit_hash(f"{name}/{path}"), path, text[:classify.QUALITY_BYTES], reason,
                          by_ext is not None, seed_label(text, group, reason)))
    return items


def _sample(inputs, cfg, shard, pool):
    """Per language, the cfg.per_language files whose (repository, path) hash lowest -- a uniform
    sample in bounded memory, the same for every shard -- each with its seed label; and the
    bytes of the corpus and of this shard."""
    heaps, size = {}, [0, 0]

    def jobs():
        for ordinal, ref in repo_refs(inputs, cfg.source_mb):
            size[0] += ref.size
            size[1] += ref.size if ordinal % shard[1] == shard[0] else 0
            if unit_hash(f"sample:{ref.name}") < cfg.sample:
                try:
                    files = ref.read()[1]
                except ValueError:
                    continue
                yield from ((ref.name, run, cfg) for _, run in runs(files))
    for items in pool.map(_sample_items, jobs()):
        for group, key, *rest in items:
            heap = heaps.setdefault(group, [])
            if len(heap) < cfg.per_language:
                heapq.heappush(heap, (key, *rest))
            elif key > heap[0][0]:  # among the lowest hashes so far
                heapq.heapreplace(heap, (key, *rest))
    return {g: sorted(h, reverse=True) for g, h in heaps.items()}, size[0], size[1]


def train_language_id(heaps, cfg):
    """LanguageID (or None) from the sample; its report adds the test on #! scripts."""
    if not cfg.language_id:
        return None
    usable = [(g, *item) for g, items in heaps.items() for item in items if item[3] is None]
    # labels: the extension's word only; #!-told files are the independent test
    lid = classify.LanguageID.train([(text, g, unit_hash(f"holdout:{path}"))
                                     for g, _, path, text, _, by_ext, _ in usable if by_ext], seed=cfg.seed)
    if lid:  # files whose #! line names the language: does the name (extension) or the text tell it?
        shebang = [(text.split("\n", 1)[-1], g, path) for g, _, path, text, _, by_ext, _ in usable
                   if text.startswith("#!") and g in lid.model.labels
                   and (not by_ext or unit_hash(f"holdout:{path}") < 0.2)]
        guess = lid.predict([t for t, _, _ in shebang])
        lid.report["shebang_files"] = len(shebang)
        lid.report["shebang_classifier_accuracy"] = round(sum(p == g for p, (_, g, _) in zip(guess, shebang))
                                                          / max(1, len(shebang)), 4)
        lid.report["shebang_extension_accuracy"] = round(sum(extension_language(p) == g for _, g, p in shebang)
                                                         / max(1, len(shebang)), 4)
    return lid


def train_quality(heaps, cfg):
    """QualityFilter (or None) from the sample: its seed labels, then cfg.quality_rounds rounds."""
    if not cfg.quality_rounds:
        return None
    items = [(g, *item) for g, its in heaps.items() for item in its]
    seeds = [(text, g, label) for g, _, _, text, _, _, label in items if label]
    pool = [(text, g) for g, _, _, text, reason, _, _ in items if reason is None]
    quality = classify.QualityFilter.train(seeds, pool, cfg.quality_rounds, seed=cfg.seed)
    quality.report["seeds"] = {f"{g}:{label}": n for (g, label), n in
                               sorted(Counter((g, label) for _, g, label in seeds).items())}
    return quality


def language_of(path, text, lid):
    """(language, how): how is "extension", "shebang" (the #! line), "classifier" (no extension,
    or an ambiguous one: .h is C or C++) or "relabelled" (the classifier is sure the extension lies)."""
    ext = os.path.splitext(path)[1].lower()
    said, how = extension_language(path) if path else None, "extension"
    if said is None:
        said, how = shebang_language(text), "shebang"
    if lid is None:
        return said or "unknown", how if said else "none"
    (best,), proba = lid.predict([text], return_proba=True)
    if ext in AMBIGUOUS:  # the classifier picks among the languages the extension allows
        choices = [lang for lang in AMBIGUOUS[ext] if lid.prob_of(proba[0], lang) is not None]
        return (max(choices, key=lambda lang: lid.prob_of(proba[0], lang)), "classifier") if choices else (said, how)
    if said is None:
        return best, "classifier"
    p_said = lid.prob_of(proba[0], said)
    # A lie must be shown, not guessed: the classifier is sure, the file parses as its language
    # and not as the extension's. (Guesses alone relabelled Python files that open with a long
    # license comment as Markdown, "# ..." headings and all.)
    if best != said and p_said is not None and p_said < 0.01 and parses(text, best) and not parses(text, said):
        return best, "relabelled"
    return said, how


# ----------------------------------------------------------------------------- pass 1: scan

_WORKER = {}


def _init_worker(state):
    _WORKER.clear()  # (workers <= 1: this process, which may have cleaned another corpus before)
    _WORKER.update(state)


def _classifiers():
    """(LanguageID, QualityFilter), read from OUT/scan/classifiers.npz once per process: the
    workers start before the training ends, and every shard uses that very file."""
    if "lid" not in _WORKER:
        _WORKER["lid"], _WORKER["quality"] = classify.load(_WORKER["classifiers"])
    return _WORKER["lid"], _WORKER["quality"]


def _fingerprint(text):
    """The scan's steps that need no classifier: (the first benchmark n-gram text shares, or None;
    its exact hash; its MinHash signature)."""
    cfg, index = _WORKER["cfg"], _WORKER["index"]
    if index is not None and (hit := index.first_hit(text)):
        return hit, 0, None
    sha = int.from_bytes(hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")
    return None, sha, dedup.minhash(text) if cfg.near_dedup else None


def _fingerprints(job):
    """{(ordinal, index): (path, *_fingerprint)} of a run's usable files (in a worker, while the
    classifiers train: most of the scan's work needs none, and the workers would wait)."""
    ordinal, _, _, first, files, _ = job
    cfg = _WORKER["cfg"]
    texts = ((k, path, file_text(data, cfg.max_bytes, cfg.max_line_length))
             for k, (path, data) in enumerate(files or (), first))
    return {(ordinal, k): (path, *_fingerprint(text)) for k, path, (text, reason) in texts if reason is None}


def _scan(job):
    """Steps 1-4 and the dedup fingerprints of a run of one repository's files (in a worker process)."""
    ordinal, name, source, first, files, prints = job
    cfg, (lid, quality) = _WORKER["cfg"], _classifiers()
    rows = []
    if files is None:  # a malformed JSONL line
        return ordinal, name, source, first, [("", 0, "malformed", "unknown", "none", 1.0, 0, None, None, None)]
    for (path, data), fp in zip(files, prints):
        text, reason = file_text(data, cfg.max_bytes, cfg.max_line_length)
        size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data or b"")
        lang, how, q, sha, sig, extra = "unknown", "none", 1.0, 0, None, None
        if reason is None:
            lang, how = language_of(path, text, lid)
            q = float(quality.score([text])[0]) if quality else 1.0
            if how == "relabelled":
                extra = {"extension": extension_language(path)}
            if quality and q < quality.threshold and lang in quality.languages:
                reason, extra = "low_quality", {"snippet": "\n".join(text.splitlines()[:4])[:300]}
            else:  # made beside the training, unless the repository changed since (or nothing trained)
                hit, sha, sig = fp[1:] if fp and fp[0] == path else _fingerprint(text)
                if hit:
                    reason, extra = "contaminated", {"benchmark": hit[0], "problem": hit[1], "ngram": hit[2]}
        rows.append((path, size, reason, lang, how, round(q, 4), sha, sig, extra, None))
    return ordinal, name, source, first, rows


def _shard_repos(inputs, cfg, shard):
    """(ordinal, ref, name, files) of this shard's repositories, read; name and files are None
    where the input cannot be read."""
    for ordinal, ref in repo_refs(inputs, cfg.source_mb):
        if ordinal % shard[1] == shard[0]:
            try:
                name, files, _ = ref.read()
            except ValueError:
                name, files = None, None
            yield ordinal, ref, name, files


def _jobs(inputs, cfg, shard, progress, prints=None):
    """This shard's runs of files: (ordinal, repository, source, index of its first file, files,
    the fingerprints of those files taken from `prints`, None where it has none)."""
    prints = prints or {}
    for ordinal, ref, name, files in _shard_repos(inputs, cfg, shard):
        progress.add(ref.size)
        for first, run in runs(files):
            yield (ordinal, str(name or ref.name), ref.source, first, run,
                   [prints.pop((ordinal, k), None) for k in range(first, first + len(run or ()))])


def _scan_shard(inputs, cfg, shard, pool, total, path, verbose, prints):
    """Scan this shard's repositories; save the rows to `path` (npz arrays + a JSON of strings)."""
    progress = Progress(f"scan {shard[0]}/{shard[1]}", total, verbose)
    cols = {k: [] for k in ("ordinal", "index", "size", "reason", "quality", "sha")}
    sigs, text = [], {"paths": [], "languages": [], "how": [], "extra": {}, "repos": {}}
    for ordinal, name, source, first, rows in pool.map(_scan, _jobs(inputs, cfg, shard, progress, prints)):
        text["repos"][ordinal] = [name, source]
        for k, (p, size, reason, lang, how, q, sha, sig, extra, _) in enumerate(rows, first):
            if extra:
                text["extra"][len(text["paths"])] = extra
            for col, v in zip(cols, (ordinal, k, size, REASONS.index(reason) if reason else -1, q, sha)):
                cols[col].append(v)
            text["paths"].append(p)
            text["languages"].append(lang)
            text["how"].append(how)
            sigs.append(sig if sig is not None else np.zeros(dedup.NUM_PERM, np.uint32))
    dtypes = {"ordinal": np.int64, "index": np.int32, "size": np.int64, "reason": np.int8, "quality": np.float32,
              "sha": np.uint64}
    arrays = {k: np.array(v, dtype=dtypes[k]) for k, v in cols.items()}
    arrays["sig"] = np.array(sigs, dtype=np.uint32).reshape(-1, dedup.NUM_PERM)
    with open(path + ".json.tmp", "w") as f:
        json.dump(text, f)
    np.savez(path + ".tmp.npz", **arrays)
    os.replace(path + ".json.tmp", path + ".json")
    os.replace(path + ".tmp.npz", path)  # the .npz last: its presence means the scan is complete


# ----------------------------------------------------------------------------- step 5 and the statistics

def _load_scans(paths):
    """All shards' rows, in corpus order."""
    parts = [(dict(np.load(p)), json.load(open(p + ".json"))) for p in paths]
    arrays = {k: np.concatenate([a[k] for a, _ in parts]) for k in parts[0][0]}
    strings = {k: sum((s[k] for _, s in parts), []) for k in ("paths", "languages", "how")}
    offset, extra, repos = 0, {}, {}
    for a, s in parts:
        extra.update({int(i) + offset: e for i, e in s["extra"].items()})
        repos.update({int(o): v for o, v in s["repos"].items()})
        offset += len(a["ordinal"])
    order = np.lexsort((arrays["index"], arrays["ordinal"]))
    arrays = {k: v[order] for k, v in arrays.items()}
    strings = {k: [v[i] for i in order] for k, v in strings.items()}
    back = {int(old): new for new, old in enumerate(order)}
    return arrays, strings, dict(sorted(((back[i], e) for i, e in extra.items()), key=lambda x: x[0])), repos


def decide(arrays, cfg):
    """Step 5 over the whole corpus: reason codes with exact copies, then near-copies, marked
    (the first in corpus order stays); and {dropped row: (kept row, similarity)}."""
    reason, pairs = arrays["reason"].copy(), {}
    first = {}
    for i in np.flatnonzero(reason == -1):
        j = first.setdefault(int(arrays["sha"][i]), int(i))
        if j != i:
            reason[i], pairs[int(i)] = REASONS.index("duplicate"), (j, 1.0)
    if cfg.near_dedup:
        rows = np.flatnonzero(reason == -1)
        for a, b in dedup.near_duplicates(arrays["sig"][rows]).items():
            i, j = int(rows[a]), int(rows[b])
            reason[i], pairs[i] = REASONS.index("near_duplicate"), (j, dedup.jaccard(arrays["sig"][i], arrays["sig"][j]))
    return reason, pairs


def statistics(arrays, strings, extra, repos, reason, pairs, report, quality, bench_info, examples=8):
    """meta.json's account of the cleaning: counts per step, languages and sources, examples."""
    kept = reason == -1
    path = lambda i: f"{repos[int(arrays['ordinal'][i])][0]}:{strings['paths'][i]}"  # repository:path
    langs, sources = {}, {}
    for i in np.flatnonzero(kept):
        lang, src, size = strings["languages"][i], repos[int(arrays["ordinal"][i])][1], int(arrays["size"][i])
        langs.setdefault(lang, Counter()).update(files=1, bytes=size)
        s = sources.setdefault(src, {"repos": set(), "files": 0, "bytes": 0, "languages": Counter()})
        s["repos"].add(int(arrays["ordinal"][i]))
        s["files"], s["bytes"] = s["files"] + 1, s["bytes"] + size
        s["languages"][lang] += size
    how = Counter(strings["how"][i] for i in np.flatnonzero(reason != 0) if strings["how"][i] != "none")
    low = sorted((i for i in extra if reason[i] == REASONS.index("low_quality")), key=lambda i: arrays["quality"][i])
    removed_by_lang = Counter(strings["languages"][i] for i in low)
    contaminated = [{"repo": repos[int(arrays["ordinal"][i])][0], "path": strings["paths"][i], **extra[i]}
                    for i in sorted(extra) if reason[i] == REASONS.index("contaminated")]
    return {
        "corpus": {"repos": len({int(o) for o in arrays["ordinal"][kept]}), "files": int(kept.sum()),
                   "bytes": int(arrays["size"][kept].sum())},
        "skipped": {r: int((reason == k).sum()) for k, r in enumerate(REASONS)},
        "languages": {k: dict(v) for k, v in sorted(langs.items(), key=lambda kv: -kv[1]["bytes"])},
        "sources": {k: {**v, "repos": len(v["repos"]), "languages": dict(v["languages"].most_common())}
                    for k, v in sources.items()},
        "language_id": {**report, "by": dict(how),
                        "classified": dict(Counter(strings["languages"][i] for i in range(len(reason))
                                                   if strings["how"][i] == "classifier" and reason[i] == -1)),
                        "relabelled_examples": [{"path": path(i), "extension": e["extension"],
                                                 "classifier": strings["languages"][i]}
                                                for i, e in list(extra.items()) if "extension" in e][:examples]},
        "quality": {**(quality.report if quality else {}), "languages": sorted(quality.languages) if quality else [],
                    "removed": dict(removed_by_lang),
                    "removed_examples": [{"path": path(i), "language": strings["languages"][i],
                                          "score": float(arrays["quality"][i]), "head": extra[i]["snippet"]}
                                         for i in low[:examples]]},
        "near_dedup": {"exact": int((reason == REASONS.index("duplicate")).sum()),
                       "near": int((reason == REASONS.index("near_duplicate")).sum()),
                       "examples": [{"path": path(i), "kept": path(j), "similarity": round(s, 3)}
                                    for i, (j, s) in pairs.items() if s < 1][:examples]},
        "decontamination": {name: {**info, "files": sum(d["benchmark"] == name for d in contaminated)}
                            for name, info in bench_info.items()},
        "decontaminated": contaminated,
    }


# ----------------------------------------------------------------------------- the pipeline

def clean(inputs, workdir, cfg=None, workers=1, shard=(0, 1), verbose=True, wait_s=None):
    """Run steps 1-5 over inputs; returns (iterator of (ordinal, clean Repo, source) of this shard,
    in corpus order; statistics; names of every kept repository, in order). workdir keeps the
    classifiers and the scans, so a rerun (or a shard restarted) continues where it stopped. A
    corpus this file wrote is read as it is."""
    cfg = cfg or CleanConfig()
    if inputs and len(inputs) == 1 and is_clean_corpus(inputs[0]):  # cleaned already: read it as it is
        with open(os.path.join(inputs[0], "meta.json")) as f:
            stats = json.load(f)
        names = [ref.name for _, ref in repo_refs(inputs)]
        return ((o, _annotated(ref), ref.source) for o, ref in repo_refs(inputs) if o % shard[1] == shard[0]), \
            stats, names
    os.makedirs(workdir, exist_ok=True)
    settings = json.dumps({"inputs": inputs, **asdict(cfg)}, sort_keys=True, default=str)
    stamp = os.path.join(workdir, "settings.json")
    if os.path.exists(stamp) and open(stamp).read() != settings:
        raise ValueError(f"{workdir} holds a scan made with other settings or inputs; delete it or choose another --out.")
    write_atomic(stamp, settings)
    t0, saved = time.time(), os.path.join(workdir, "classifiers.npz")
    index, bench_info = dedup.benchmarks(cfg.decontaminate) if cfg.decontaminate else (None, {})
    scan, prints = lambda i: os.path.join(workdir, f"scan-{i}-of-{shard[1]}.npz"), {}
    # one pool for both passes: the workers start once, and read the classifiers once trained
    with Pool(workers, _init_worker, ({"cfg": cfg, "index": index, "classifiers": saved},)) as pool:
        if os.path.exists(saved):  # a rerun: the classifiers are trained already; only the sizes are needed
            lid, quality = classify.load(saved)
            sizes = [(o % shard[1] == shard[0], ref.size) for o, ref in repo_refs(inputs, cfg.source_mb)]
            total, mine = sum(s for _, s in sizes), sum(s for m, s in sizes if m)
        else:
            heaps, total, mine = _sample(inputs, cfg, shard, pool)
            # The other workers would wait for the training: they take the scan's fingerprints
            # until it ends, no longer, so what waits here in memory is bounded by the training's
            # time, not by the corpus; the scan makes the rest itself.
            training = pool.submit(train_quality, heaps, cfg), pool.submit(train_language_id, heaps, cfg)
            if workers > 1:
                for part in pool.map(_fingerprints, _jobs(inputs, cfg, shard, Progress("", mine, False))):
                    prints.update(part)
                    if all(t.done() for t in training):
                        break
            quality, lid = (t.result() for t in training)
            write_atomic(saved, lambda path: classify.save(path, lid, quality))
            del heaps
        if not os.path.exists(scan(shard[0])):
            _scan_shard(inputs, cfg, shard, pool, mine, scan(shard[0]), verbose, prints)
    report = lid.report if lid else {}
    missing, waited = [i for i in range(shard[1]) if not os.path.exists(scan(i))], 0
    while missing:  # the other machines' scans: the duplicate decision needs all of them
        if waited == 0 and verbose:
            print(f"  waiting for the scans of shards {missing} in {workdir} (run them with --shard I/{shard[1]})",
                  file=sys.stderr, flush=True)
        if wait_s is not None and waited >= wait_s:
            raise ValueError(f"shards {missing} have not finished their scan in {workdir}; run them, then rerun this.")
        time.sleep(1)
        waited += 1
        missing = [i for i in missing if not os.path.exists(scan(i))]
    arrays, strings, extra, repos = _load_scans([scan(i) for i in range(shard[1])])
    reason, pairs = decide(arrays, cfg)
    stats = statistics(arrays, strings, extra, repos, reason, pairs, report, quality, bench_info)
    stats["input_bytes"], stats["scan_seconds"], stats["changed_during_run"] = total, round(time.time() - t0, 2), 0
    names = [repos[o][0] for o in sorted({int(o) for o in arrays["ordinal"][reason == -1]})]
    rows = {(int(o), int(k)): r for o, k, r in zip(arrays["ordinal"], arrays["index"], range(len(reason)))}
    del arrays["sig"]

    def kept_repos():  # pass 2: read this shard's repositories again, keep what step 1-5 kept
        for ordinal, ref, name, files in _shard_repos(inputs, cfg, shard):
            if files is None:  # unreadable: counted in pass 1
                continue
            out, langs, quals = [], [], []
            if repos.get(ordinal, [None])[0] != str(name or ref.name):  # the input changed since pass 1
                stats["changed_during_run"] += len(files)
                continue
            for k, (path, data) in enumerate(files):
                r = rows.get((ordinal, k))
                if r is None or strings["paths"][r] != path:
                    stats["changed_during_run"] += 1
                elif reason[r] == -1:
                    out.append((path, file_text(data, cfg.max_bytes, cfg.max_line_length)[0]))
                    langs.append(strings["languages"][r])
                    quals.append(float(arrays["quality"][r]))
            if out:
                yield ordinal, Repo(str(name or ref.name), out, langs, quals), ref.source
    return kept_repos(), stats, names


def _annotated(ref):
    name, files, info = ref.read()
    return Repo(name, files, [i["language"] for i in info], [i["quality"] for i in info])


def write_corpus(out_dir, inputs, cfg=None, workers=1, shard=(0, 1), verbose=True):
    """clean() into OUT/part-I-of-N.jsonl.gz + OUT/meta.json: the input of tokenizer.py and data_fim.py."""
    t0 = time.time()
    repos, stats, _ = clean(inputs, os.path.join(out_dir, "scan"), cfg, workers, shard, verbose)
    part = os.path.join(out_dir, f"part-{shard[0]:05d}-of-{shard[1]:05d}.jsonl.gz")
    # no name or time in the gzip header: the same corpus gives the same bytes
    with open(part + ".tmp", "wb") as raw, gzip.GzipFile("", "wb", 3, raw, mtime=0) as f:
        for ordinal, repo, source in repos:
            files = [{"path": p, "content": c, "language": lang, "quality": q}
                     for (p, c), lang, q in zip(repo.files, repo.languages, repo.quality)]
            f.write(json.dumps({"repo_name": repo.name, "ordinal": ordinal, "source": source, "files": files},
                               ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
    os.replace(part + ".tmp", part)
    meta = {"format": "corpus/1", "inputs": inputs, "settings": asdict(cfg or CleanConfig()), **stats,
            "seconds": round(time.time() - t0, 2)}
    write_atomic(os.path.join(out_dir, "meta.json"), json.dumps(meta, indent=1))
    return meta  # (every shard writes the same statistics)


def summary(meta):
    """A few lines a person reads after a run."""
    c, s, lid, q, nd = meta["corpus"], meta["skipped"], meta["language_id"], meta["quality"], meta["near_dedup"]
    langs = ", ".join(f"{k} {v['bytes'] / 1e6:.1f}" for k, v in list(meta["languages"].items())[:8])
    lines = [f"{c['repos']} repos, {c['files']} files, {c['bytes'] / 1e6:.1f} MB kept; MB by language: {langs}",
             "skipped: " + ", ".join(f"{k} {v}" for k, v in s.items() if v)]
    if lid.get("heldout_files"):
        lines.append(f"language ID: {lid['heldout_accuracy']:.1%} on {lid['heldout_files']} held-out files; "
                     f"#! scripts: classifier {lid.get('shebang_classifier_accuracy', 0):.1%} vs extension "
                     f"{lid.get('shebang_extension_accuracy', 0):.1%} ({lid.get('shebang_files', 0)} files)")
    if q.get("rounds"):
        lines.append(f"quality: {len(q['rounds'])} rounds over {', '.join(q['languages'])}; removed {q['removed']}")
    lines.append(f"duplicates: {nd['exact']} exact, {nd['near']} near; decontamination: "
                 + ", ".join(f"{k} {v['files']}" for k, v in meta["decontamination"].items()))
    return "\n".join(lines)


def parse_shard(text):
    try:
        i, n = map(int, text.split("/"))
        assert 0 <= i < n
        return i, n
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"--shard {text!r} must be I/N with 0 <= I < N, e.g. 0/4") from None


def add_arguments(p):
    """The cleaning flags, shared with `data_fim.py prepare`."""
    d = CleanConfig()
    p.add_argument("--input", nargs="*", default=None, help="stdlib (default), system, repo dirs, dirs of repos, "
                   ".jsonl(.gz) files or directories of them")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: all cores)")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), help="I/N: this machine's part, --out shared")
    p.add_argument("--source-mb", type=int, default=d.source_mb, help="--input system: MB per system source")
    p.add_argument("--decontaminate", nargs="*", default=d.decontaminate,
                   help="benchmarks: humaneval and/or JSONL files (MBPP+, CRUXEval, MultiPL-E, GSM8K, MATH)")
    p.add_argument("--quality-rounds", type=int, default=d.quality_rounds, help="0 = no quality filter")
    p.add_argument("--no-language-id", action="store_true")
    p.add_argument("--no-near-dedup", action="store_true")
    p.add_argument("--max-bytes", type=int, default=d.max_bytes)
    p.add_argument("--sample", type=float, default=d.sample, help="share of repositories the classifiers sample")


def config_from(args):
    return CleanConfig(max_bytes=args.max_bytes, source_mb=args.source_mb, language_id=not args.no_language_id,
                       quality_rounds=args.quality_rounds, near_dedup=not args.no_near_dedup,
                       decontaminate=list(args.decontaminate), sample=args.sample)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory for part-*.jsonl.gz and meta.json")
    add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        if args.input and len(args.input) == 1 and is_clean_corpus(args.input[0]):
            raise ValueError(f"{args.input[0]} is already a cleaned corpus; pass it to tokenizer.py or data_fim.py.")
        meta = write_corpus(args.out, args.input, config_from(args), args.workers, args.shard)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(summary(meta))
    print(f"wrote {args.out} in {meta['seconds']} s")


if __name__ == "__main__":
    main()
