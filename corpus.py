"""The pretraining corpus read as repositories, from the sources this machine has (report §3.1).

    python corpus.py                                 # the built-in sources here: repos, languages, MB
    python corpus.py --input system --source-mb 64  # ... with a larger share of each system source

Inputs, each read lazily as a list of repositories in a fixed order (clean.py filters them,
data_fim.py tokenizes them):
  stdlib      this Python's standard library, each package a repository and the top-level
              modules one more (test/ is left out: 2/3 of the bytes, many deliberately broken
              files). The default: nothing to download.
  system      the stdlib plus the source code already on this machine: C/C++ headers
              (/usr/include), the JDK's sources (lib/src.zip), Perl modules, shell scripts,
              JavaScript packages, installed Python packages. Each source gives at most
              --source-mb of whole repositories, chosen by a hash of their names.
  DIR         a repository (it has .git, or files at its top level), a directory of repositories,
              or a directory of JSONL(.gz) shards (e.g. what `clean.py --out` wrote)
  FILE        JSONL(.gz), one {"repo_name", "files": [{"path", "content"}]} or {"text"} per line

File rules (StarCoder's and The Stack's, and why): a file is skipped, and counted, when it is
unreadable, huge, binary, not UTF-8, empty, has a line longer than 1,000 characters
(minified or data), carries a generator's banner in its first five lines, or repeats an earlier
file byte for byte. Bad input is never fatal: a broken JSONL line is one more count.

Passes over the corpus (clean.py's, data_fim.py's tokenizing) cut each repository's files into
runs of ~256 KB (runs) and map a function over them in --workers processes (Pool): in corpus
order, a few jobs in flight, so memory never holds the corpus.
"""
import argparse
import gc
import glob
import gzip
import hashlib
import heapq
import json
import multiprocessing
import os
import re
import sys
import sysconfig
import time
import zipfile
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

LANGUAGES = {  # extension -> language; ".h" says C, but may be C++: language ID decides (clean.py)
    **dict.fromkeys(".py .pyi .pyw".split(), "python"), ".c": "c", ".h": "c",
    **dict.fromkeys(".cc .cpp .cxx .c++ .hpp .hh .hxx .tcc .ipp .inl".split(), "cpp"),
    ".java": "java", **dict.fromkeys(".js .mjs .cjs .jsx".split(), "javascript"),
    **dict.fromkeys(".ts .tsx".split(), "typescript"), ".go": "go", ".rs": "rust", ".rb": "ruby",
    ".php": "php", ".cs": "csharp", ".kt": "kotlin", ".scala": "scala", ".swift": "swift",
    **dict.fromkeys(".sh .bash .zsh".split(), "shell"), ".sql": "sql", ".lua": "lua", ".r": "r",
    ".jl": "julia", **dict.fromkeys(".pl .pm".split(), "perl"), ".md": "markdown", ".rst": "rst",
    ".txt": "text", ".toml": "toml", **dict.fromkeys(".yaml .yml".split(), "yaml"), ".json": "json",
    **dict.fromkeys(".html .htm".split(), "html"), ".css": "css"}
CODE_EXTENSIONS = frozenset(LANGUAGES)
AMBIGUOUS = {".h": ("c", "cpp")}  # extensions that do not settle the language: not training labels
INTERPRETERS = {"python": "python", "perl": "perl", "sh": "shell", "bash": "shell", "dash": "shell",
                "zsh": "shell", "ksh": "shell", "node": "javascript", "nodejs": "javascript", "ruby": "ruby",
                "php": "php", "lua": "lua", "Rscript": "r", "julia": "julia"}
SKIP_REASONS = ("unreadable", "malformed", "huge", "binary", "undecodable", "empty", "long_lines", "generated",
                "duplicate")
# A generator's banner in the first lines (StarCoder's rule): code tables and dumps teach a small
# model to repeat "0x00a0: 0x00a0," (the stdlib's 68 codec tables), not to write code.
GENERATED = re.compile(r"auto-?generated|automatically generated|do not (?:edit|change)"
                       r"|generated (?:by|from|with)\b[^\n]*\.py\b", re.IGNORECASE)
STDLIB_EXCLUDE = {"test", "site-packages"}  # test/ holds deliberately broken files and 2/3 of the bytes


@dataclass
class Repo:
    name: str
    files: list[tuple[str, str]]  # (path inside the repository, content); path "" = a plain text document
    languages: list | None = None  # per file, once clean.py knows them
    quality: list | None = None    # per file: the quality classifier's score


@dataclass
class RepoRef:
    """A repository not read yet: read() gives (name or None, [(path, bytes | str | None)], per-file
    info or None); a JSONL line names its repository itself, a corpus clean.py wrote adds each
    file's language and quality. Sources list these cheaply; only the shard that owns one reads it;
    read() raises ValueError for a malformed line."""
    name: str
    source: str
    size: int  # bytes it holds (progress, ETA, --source-mb)
    read: Callable = field(repr=False)


# ----------------------------------------------------------------------------- JSONL

def read_jsonl(path, what=None, parse=None, need=()):
    """(line number, parse(object)) for each non-blank line of a .jsonl(.gz) file; with `need`, each
    object must have those keys (`what` then defaults to "a JSON object with KEYS"). Every file
    of the project is read here, so every bad one ends alike: a missing or unreadable file, a
    line that is not JSON or one parse rejects, in one sentence naming the file, line and `what`."""
    what = what or f"a JSON object with {', '.join(need)}"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist; pass a JSONL file with {what} per line.")
    try:
        with (gzip.open if str(path).endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno} is not valid JSON ({e.msg}); write {what} per line.") from None
                try:
                    if need and (not isinstance(row, dict) or any(k not in row for k in need)):
                        raise KeyError
                    row = parse(row) if parse else row
                except (KeyError, TypeError, ValueError, AssertionError):
                    raise ValueError(f"{path}:{lineno} is not {what}; fix that line.") from None
                yield lineno, row
    except (OSError, EOFError, UnicodeDecodeError) as e:  # not UTF-8, a truncated .gz
        raise ValueError(f"{path} cannot be read as UTF-8 JSON lines ({e}); pass a JSONL file with {what} "
                         "per line.") from None


def _corpus_line(line):
    """(repo name or None, [(path, content)], per-file info or None) of one JSONL corpus line;
    {"text"} has path "". Raises ValueError on anything else (the line is then counted malformed)."""
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    files, name, info = None, None, None
    if isinstance(row, dict) and isinstance(row.get("files"), list):
        files = [(f.get("path"), f.get("content")) for f in row["files"] if isinstance(f, dict)]
        name = row.get("repo_name")
        if all("language" in f for f in row["files"]):  # a corpus clean.py wrote
            info = [{"language": f["language"], "quality": f.get("quality", 1.0)} for f in row["files"]]
    elif isinstance(row, dict) and "text" in row:
        files = [("", row["text"])]  # no path: a plain document, never in repo format
    if not files or not all(isinstance(p, str) and isinstance(c, str) for p, c in files):
        raise ValueError("not a corpus line")
    return name, files, info


def _jsonl_refs(path, source):
    """One RepoRef per line, parsed only when read: a shard skips others' lines unparsed."""
    stem = os.path.basename(path).split(".jsonl")[0]
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield RepoRef(f"{stem}/{lineno}", source, len(line), lambda line=line: _corpus_line(line))
    except (OSError, EOFError):  # a truncated .gz: what was read counts, the rest is lost
        yield RepoRef(f"{stem}/truncated", source, 0, lambda: (_ for _ in ()).throw(ValueError("truncated")))


# ----------------------------------------------------------------------------- directories and sources

def _text_head(path, n=64):
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _accept(name, path, extensions, bare):
    """Is this file source code by its name: a known extension, or (bare) no extension at all,
    or a script whose first line names its interpreter (#!)."""
    ext = os.path.splitext(name)[1].lower()
    if ext:
        return ext in extensions
    return bare or _text_head(path, 2) == b"#!"


def _walk(root, extensions=CODE_EXTENSIONS, bare=False):
    """(path relative to root, absolute path, size) of the source files under root, sorted, so
    the corpus never depends on the filesystem's order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and _accept(name, path, extensions, bare):
                out.append((os.path.relpath(path, root).replace(os.sep, "/"), path, os.path.getsize(path)))
    return out


def _read_files(entries):
    files = []
    for rel, path, _ in entries:
        try:
            with open(path, "rb") as f:
                files.append((rel, f.read()))
        except OSError:  # permissions, a file gone since the listing: counted as unreadable
            files.append((rel, None))
    return None, files, None


def _ref(name, source, entries):
    return RepoRef(name, source, sum(e[2] for e in entries), lambda: _read_files(entries))


def _tree_refs(root, source, prefix, bare=False, extensions=CODE_EXTENSIONS, skip=()):
    """Each subdirectory of root a repository (paths keep the directory: "json/decoder.py"),
    and the files at root's top level one more, named prefix."""
    refs, top = [], []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if entry.startswith(".") or entry in skip or entry == "__pycache__":
            continue
        if os.path.isdir(path):
            entries = [(f"{entry}/{rel}", p, s) for rel, p, s in _walk(path, extensions, bare)]
            if entries:
                refs.append(_ref(f"{prefix}/{entry}", source, entries))
        elif os.path.isfile(path) and _accept(entry, path, extensions, bare):
            top.append((entry, path, os.path.getsize(path)))
    return refs + ([_ref(prefix, source, top)] if top else [])


def _stdlib_refs():
    """Listed as they are read (a generator): a pass's workers start on the first package while
    the rest is still being listed."""
    root = sysconfig.get_paths()["stdlib"]
    modules = []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if os.path.isfile(os.path.join(path, "__init__.py")) and entry not in STDLIB_EXCLUDE:
            yield _ref(f"python/{entry}", "stdlib", [(f"{entry}/{r}", p, s) for r, p, s in _walk(path)])
        elif entry.endswith(".py") and os.path.isfile(path):
            modules.append((entry, path, os.path.getsize(path)))
    yield _ref("python/stdlib", "stdlib", modules)


def _zip_refs(path, source, depth=3):
    """A JDK's src.zip: each package (module/a/b) a repository, read from the zip directly."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):
        return []
    groups = {}
    for info in archive.infolist():
        name = info.filename
        if not info.is_dir() and os.path.splitext(name)[1].lower() in CODE_EXTENSIONS:
            groups.setdefault("/".join(name.split("/")[:-1][:depth]), []).append(info)

    def read(infos):  # paths from the module's root: "java/util/List.java", as the package names it
        with zipfile.ZipFile(path) as z:  # one handle per read: safe in any process
            return None, [(i.filename.split("/", 1)[-1], z.read(i)) for i in infos], None
    return [RepoRef(f"{source}/{g}", source, sum(i.file_size for i in infos), lambda infos=infos: read(infos))
            for g, infos in sorted(groups.items())]


def _system_sources():
    """(source, [RepoRef]) for every system source found on this machine."""
    found = {}
    if os.path.isdir("/usr/include"):
        found["include"] = _tree_refs("/usr/include", "include", "include", bare=True)  # <vector> has no extension
    zips = [p for p in sorted(glob.glob("/usr/lib/jvm/*/lib/src.zip") + glob.glob("/usr/lib/jvm/*/src.zip"))
            if os.path.isfile(p)]
    if zips:
        found["jdk"] = _zip_refs(zips[-1], "jdk")
    for source, roots in (
            ("perl", glob.glob("/usr/share/perl/5*") + glob.glob("/usr/lib/*/perl-base") + ["/usr/share/perl5"]),
            ("javascript", ["/usr/lib/node_modules", "/usr/local/lib/node_modules", "/usr/share/javascript",
                            "/usr/share/nodejs"]),
            ("site-packages", [sysconfig.get_paths()["purelib"]])):
        for root in (r for r in roots if os.path.isdir(r)):
            tag = root.removeprefix("/usr/").replace("/", "-") if source != "site-packages" else source
            found.setdefault(source, []).extend(  # a package's metadata directories hold no code
                r for r in _tree_refs(root, source, f"{source}/{tag}") if not r.name.endswith(("-info", "-info/")))
    scripts = [(f"{os.path.basename(d)}/{n}", os.path.join(d, n), os.path.getsize(os.path.join(d, n)))
               for d in ("/usr/bin", "/usr/sbin", "/usr/local/bin") if os.path.isdir(d)
               for n in sorted(os.listdir(d)) if "." not in n and os.path.isfile(os.path.join(d, n))
               and _text_head(os.path.join(d, n), 2) == b"#!"]
    if scripts:  # scripts: the extension is missing, the first line names the language
        found["shell"] = [_ref("scripts/" + d, "shell", [e for e in scripts if e[0].startswith(d + "/")])
                          for d in sorted({e[0].split("/")[0] for e in scripts})]
    return found


def _capped(refs, source_mb):
    """Whole repositories, in the order of a hash of their names, while they fit in source_mb."""
    room, chosen = source_mb * 1e6, []
    for ref in sorted(refs, key=lambda r: unit_hash(r.name)):
        if 0 < ref.size <= room:
            chosen.append(ref)
            room -= ref.size
    return sorted(chosen, key=lambda r: r.name)


def is_clean_corpus(path):
    """A directory clean.py wrote: its meta.json says so."""
    try:
        with open(os.path.join(path, "meta.json")) as f:
            return json.load(f).get("format") == "corpus/1"
    except (OSError, ValueError, AttributeError):
        return False


def _clean_corpus_refs(path):
    """The repositories of a clean corpus in their original order, whatever shards wrote them
    (each part is in order; a heap merges them by the "ordinal" every line carries)."""
    def lines(part):
        with gzip.open(part, "rb") as f:
            for line in f:
                yield json.loads(line)["ordinal"], line
    parts = sorted(glob.glob(os.path.join(path, "*.jsonl.gz")))
    for _, line in heapq.merge(*map(lines, parts)):
        row = json.loads(line)
        yield RepoRef(row["repo_name"], row.get("source", "corpus"), len(line), lambda line=line: _corpus_line(line))


def sources(inputs, source_mb=24):
    """[(source name, iterator of RepoRef)] for inputs (None = ["stdlib"])."""
    inputs = ["stdlib"] if inputs is None else [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    out = []
    for inp in map(str, inputs):
        if inp == "stdlib":
            out.append(("stdlib", _stdlib_refs()))
        elif inp == "system":
            out.append(("stdlib", _stdlib_refs()))
            out += [(name, _capped(refs, source_mb)) for name, refs in _system_sources().items()]
        elif not os.path.exists(inp):
            raise FileNotFoundError(f"{inp} does not exist; pass stdlib, system, a directory of repositories, "
                                    "one repository directory or a .jsonl file.")
        elif os.path.isfile(inp):
            out.append((inp, _jsonl_refs(inp, inp)))
        elif is_clean_corpus(inp):
            out.append((inp, _clean_corpus_refs(inp)))
        elif glob.glob(os.path.join(inp, "*.jsonl*")) and not any(
                os.path.isdir(os.path.join(inp, e)) for e in os.listdir(inp) if not e.startswith(".")):
            out += [(inp, (r for p in sorted(glob.glob(os.path.join(inp, "*.jsonl*"))) for r in _jsonl_refs(p, inp)))]
        elif os.path.isdir(os.path.join(inp, ".git")) or any(os.path.isfile(os.path.join(inp, e))
                                                             for e in os.listdir(inp) if not e.startswith(".")):
            out.append((inp, [_ref(os.path.basename(os.path.abspath(inp)), inp, _walk(inp))]))
        else:
            out.append((inp, [_ref(sub, inp, _walk(os.path.join(inp, sub))) for sub in sorted(os.listdir(inp))
                              if os.path.isdir(os.path.join(inp, sub)) and not sub.startswith(".")]))
    return out


def repo_refs(inputs, source_mb=24):
    """Every RepoRef of inputs, in the corpus order, with its ordinal: (ordinal, ref)."""
    return enumerate(ref for _, refs in sources(inputs, source_mb) for ref in refs)


# ----------------------------------------------------------------------------- passes: jobs in worker processes

JOB_BYTES = 1 << 18  # a job of a pass: a run of one repository's files of about this many bytes


def runs(files, limit=None):
    """(index of the first file, files) of consecutive runs of about JOB_BYTES: the jobs of a pass.
    Whole repositories make uneven jobs: the standard library's own (python/stdlib) is 37% of
    the built-in corpus, and it comes last, so one worker would scan it while the others wait."""
    start, size = 0, 0
    for k, (_, data) in enumerate(files or ()):
        size += len(data or b"")
        if size >= (limit or JOB_BYTES) or k == len(files) - 1:
            yield start, files[start:k + 1]
            start, size = k + 1, 0
    if not files:  # an empty repository, or None for a malformed line: still a job, which says so
        yield 0, files


class Pool:
    """Jobs in `workers` processes (fork where the OS has it: no re-import per worker), or in this
    one for workers <= 1. map() yields results in job order with at most window x workers jobs
    in flight: memory holds a few jobs, never the corpus. submit() starts a job beside them."""

    def __init__(self, workers, initializer=None, initargs=()):
        self.workers, self.executor = max(1, workers), None
        if workers > 1:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            self.executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
        elif initializer:
            initializer(*initargs)

    def __enter__(self):
        # A pass allocates objects by the million (ast.parse: one per node), and each full
        # collection would walk every object alive, torch's ~170k included: a third of clean.py's
        # sample pass. Frozen, they are skipped, and forked workers do not copy their pages either.
        # Frozen here, before the first job forks a worker (ProcessPoolExecutor forks on submit).
        gc.freeze()
        return self

    def __exit__(self, *exc):
        if self.executor:
            self.executor.shutdown(cancel_futures=True)
        gc.unfreeze()

    def submit(self, fn, *args):
        if self.executor:
            return self.executor.submit(fn, *args)
        done = Future()
        done.set_result(fn(*args))
        return done

    def map(self, fn, jobs, window=4):
        pending = deque()
        for job in jobs:
            pending.append(self.submit(fn, job))
            if len(pending) >= window * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class Progress:
    """One line of MB done, MB/s and ETA, at most once a second (rewritten in place on a terminal)."""

    def __init__(self, what, total, verbose):
        self.what, self.total, self.verbose, self.done, self.t0, self.last = what, total, verbose, 0, time.time(), 0

    def add(self, n):
        self.done += n
        now = time.time()
        if self.verbose and (now - self.last > 1 or self.done >= self.total) and now > self.t0 + 0.5:
            self.last, rate = now, self.done / max(1e-9, now - self.t0)
            eta = (self.total - self.done) / rate if rate else 0
            print(f"  {self.what}: {self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB, {rate / 1e6:.2f} MB/s, "
                  f"ETA {int(eta) // 60}:{int(eta) % 60:02d}", file=sys.stderr, flush=True,
                  end="\r" if sys.stderr.isatty() and self.done < self.total else "\n")


# ----------------------------------------------------------------------------- file rules

def file_text(data, max_bytes=1_000_000, max_line_length=1000):
    """(text, None) for a usable file, else (None, reason). data: bytes, str (from JSONL) or
    None (unreadable). Exact duplicates are found by whoever sees the whole corpus."""
    if data is None:
        return None, "unreadable"
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")  # a lone surrogate then fails to decode below
    if len(data) > max_bytes:
        return None, "huge"
    if b"\0" in data[:8192]:  # git's heuristic: a NUL byte early on means binary
        return None, "binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "undecodable"
    if not text.strip():
        return None, "empty"
    if max(map(len, text.splitlines())) > max_line_length:  # minified, or a data dump
        return text, "long_lines"
    if GENERATED.search("\n".join(text.split("\n", 5)[:5])):
        return text, "generated"
    return text, None  # (rejected texts still come back: clean.py's quality seeds learn from them)


def extension_language(path):
    """The language a file's name says (".h": "c"), None when it says nothing."""
    return LANGUAGES.get(os.path.splitext(path)[1].lower())


def shebang_language(text):
    """The language of a script's #! line ("#!/usr/bin/env python3" -> python), else None."""
    if not text.startswith("#!"):
        return None
    parts = text[2:text.find("\n") if "\n" in text else None].split()
    name = os.path.basename(parts[0]) if parts else ""
    if name == "env":  # "#!/usr/bin/env -S python3 -u": the first word that is not an option
        name = next((p for p in parts[1:] if not p.startswith("-")), "")
    return INTERPRETERS.get(name.rstrip("0123456789.") or name)


def load_corpus(inputs=None, *, max_bytes=1_000_000, max_line_length=1000, source_mb=24):
    """Repositories of `inputs` (None = the standard library) in memory, with the file rules
    applied and counted in stats["skipped"]. For a small corpus or a look at one; clean.py
    streams a large one, and adds language ID, quality rounds, near-dedup, decontamination."""
    repos, skipped, seen = [], Counter(dict.fromkeys(SKIP_REASONS, 0)), set()
    for _, ref in repo_refs(inputs, source_mb):
        try:
            name, files, info = ref.read()
        except ValueError:
            skipped["malformed"] += 1
            continue
        kept, kept_info = [], []
        for k, (path, data) in enumerate(files):
            text, reason = file_text(data, max_bytes, max_line_length)
            digest = text is not None and reason is None and hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()
            if reason is None and digest in seen:
                reason = "duplicate"
            if reason:
                skipped[reason] += 1
                continue
            seen.add(digest)
            kept.append((path, text))
            kept_info.append(info[k] if info else None)
        if kept:
            repos.append(Repo(str(name or ref.name), kept, *(([i["language"] for i in kept_info],
                                                            [i["quality"] for i in kept_info]) if info else ())))
    stats = {"repos": len(repos), "files": sum(len(r.files) for r in repos),
             "bytes": sum(len(c.encode("utf-8", "surrogatepass")) for r in repos for _, c in r.files),
             "skipped": dict(skipped)}
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


def main(argv=None):
    """What the inputs hold, before any cleaning: repositories, files and MB per source and language."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", nargs="*", default=None, help="stdlib (default), system, directories, .jsonl files")
    ap.add_argument("--source-mb", type=int, default=24, help="--input system: MB per system source")
    args = ap.parse_args(argv)
    try:
        found = sources(args.input, args.source_mb)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    for name, refs in found:
        refs, langs = list(refs), Counter()
        for ref in refs:
            try:
                files = ref.read()[1]
            except ValueError:
                files = [("(malformed)", "")]
            for path, data in files:
                langs[extension_language(path) or "(none)"] += len(data or "")
        print(f"{name}: {len(refs)} repos, {sum(r.size for r in refs) / 1e6:.1f} MB; MB by extension: "
              + ", ".join(f"{k} {v / 1e6:.2f}" for k, v in langs.most_common(8)))


if __name__ == "__main__":
    main()
