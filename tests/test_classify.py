"""Tests for classify.py: the hashed n-gram features (against a plain-Python reimplementation),
the linear model's training, language ID on held-out files, the quality rounds' cascade, and
saving both classifiers.
"""
import random

import numpy as np
import pytest

import classify as C

M64 = 2**64 - 1


def mix(x):
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def reference_features(data, limit, buckets=C.BUCKETS):
    """features() written the slow way: the polynomial hash of each n-gram, byte by byte."""
    data, out = data[:limit], []
    for n in C.ORDERS:
        for i in range(len(data) - n + 1):
            h = 0
            for b in data[i:i + n]:
                h = (h * 0x100000001B3 + b) & M64
            out.append(mix((h + n) & M64) % buckets)
    return out


def test_features_are_hashed_byte_ngrams():
    for data in (b"def f(x):\n    return x\n", b"a", b"", "caf\u00e9 \u00fc".encode()):
        assert C.features(data, 64).tolist() == reference_features(data, 64)
    assert len(C.features(b"abcd", 64)) == 4 + 3 + 2 + 1
    assert C.features(b"x" * 100, 10).tolist() == reference_features(b"x" * 10, 10)  # only the first bytes
    assert C.features("é", 8).tolist() == C.features("é".encode(), 8).tolist()  # str is read as UTF-8


def snippets(lang, rng, n):
    """Small, varied programs of one language (names and numbers drawn at random)."""
    out = []
    for _ in range(n):
        name, k = rng.choice(["total", "count", "size", "value", "items"]), rng.randrange(100)
        lines = {
            "python": [f"def {name}_{k}(xs):", f"    '''Return the {name}.'''", f"    return sum(x * {k} for x in xs)",
                       "", "if __name__ == '__main__':", f"    print({name}_{k}([1, 2]))"],
            "java": [f"public class {name.title()}{k} {{", f"    /** The {name}. */",
                     f"    public static int {name}(int[] xs) {{", f"        int s = {k};",
                     "        for (int x : xs) { s += x; }", "        return s;", "    }", "}"],
            "javascript": [f"const {name}{k} = (xs) => {{", f"  // the {name}", f"  let s = {k};",
                           "  for (const x of xs) { s += x; }", "  return s;", "};", f"module.exports = {{ {name}{k} }};"],
            "c": ["#include <stdio.h>", f"/* the {name} */", f"int {name}_{k}(const int *xs, int n) {{",
                  f"    int s = {k};", "    for (int i = 0; i < n; i++) s += xs[i];", "    return s;", "}"],
        }[lang]
        out.append("\n".join(lines[:rng.randrange(4, len(lines) + 1)]) + "\n")
    return out


def test_hashed_linear_learns_a_separable_problem():
    rng = random.Random(0)
    texts = snippets("python", rng, 40) + snippets("java", rng, 40)
    labels = ["python"] * 40 + ["java"] * 40
    model = C.HashedLinear(["java", "python"], 256).fit(texts, labels)
    test = snippets("python", rng, 20) + snippets("java", rng, 20)
    p = model.proba(test)
    assert np.allclose(p.sum(1), 1) and p.shape == (40, 2)
    assert (p.argmax(1) == np.array([1] * 20 + [0] * 20)).all()
    untrained = C.HashedLinear(["java", "python"], 256).proba(test)
    assert np.allclose(untrained, 0.5)  # zero weights: no opinion before training


def test_language_id_held_out_and_rare_languages():
    rng = random.Random(1)
    labelled = [(t, lang, rng.random()) for lang in ("python", "java", "javascript", "c")
                for t in snippets(lang, rng, 60)]
    labelled += [(t, "rare", rng.random()) for t in snippets("c", rng, 3)]  # too few files: not a class
    lid = C.LanguageID.train(labelled, min_files=8)
    assert lid.model.labels == ["c", "java", "javascript", "python"]
    assert lid.report["heldout_files"] > 20 and lid.report["heldout_accuracy"] >= 0.95
    fresh = [(t, lang) for lang in ("python", "java", "javascript", "c") for t in snippets(lang, rng, 10)]
    assert np.mean([p == lang for p, (_, lang) in zip(lid.predict([t for t, _ in fresh]), fresh)]) >= 0.95
    best, proba = lid.predict(snippets("java", rng, 1), return_proba=True)
    assert best == ["java"] and lid.prob_of(proba[0], "java") == proba[0].max() and lid.prob_of(proba[0], "go") is None
    assert C.LanguageID.train([(t, "python", 0.5) for t in snippets("python", rng, 20)]) is None  # one language


def junk(rng):
    return "DATA = [" + ", ".join(f"0x{rng.randrange(65536):04x}" for _ in range(200)) + "]\n"


def test_quality_rounds_cascade():
    rng = random.Random(2)
    good, bad = snippets("python", rng, 60), [junk(rng) for _ in range(60)]
    seeds = [(t, "python", "good") for t in good[:30]] + [(t, "python", "bad") for t in bad[:30]]
    pool = [(t, "python") for t in good[30:] + bad[30:]] + [(t, "java") for t in snippets("java", rng, 10)]
    q = C.QualityFilter.train(seeds, pool, rounds=2, min_seeds=20)
    assert len(q.rounds) == 2 and q.languages == {"python"}  # java had no seeds: it is not judged
    r1, r2 = q.report["rounds"]
    assert r1["pool"] == 60 and r1["removed"] >= 25  # round 1 removes the junk of the pool
    assert r2["pool"] == 60 - r1["removed"]  # round 2 filters only round 1's survivors ...
    assert r2["trained_on"]["good"] == min(300, r2["pool"])  # ... and learnt from them as good
    texts = good[30:35] + bad[30:35]
    per_round = [m.proba(texts)[:, 1] for m in q.rounds]
    assert np.allclose(q.score(texts), np.minimum(*per_round), atol=1e-6)  # a text must pass every round
    assert (q.score(good[30:35]) >= 0.5).all() and (q.score(bad[30:35]) < 0.5).all()
    none = C.QualityFilter.train(seeds, pool, rounds=2, min_seeds=31)  # 30 of each is not enough
    assert none.rounds == [] and (none.score(texts) == 1).all()


def test_save_and_load_give_the_same_classifiers(tmp_path):
    rng = random.Random(3)
    lid = C.LanguageID.train([(t, lang, rng.random()) for lang in ("python", "java") for t in snippets(lang, rng, 30)])
    seeds = [(t, "python", "good") for t in snippets("python", rng, 25)] + [(junk(rng), "python", "bad") for _ in range(25)]
    q = C.QualityFilter.train(seeds, [(t, g) for t, g, _ in seeds], rounds=2)
    C.save(tmp_path / "c.npz", lid, q)
    lid2, q2 = C.load(tmp_path / "c.npz")
    texts = snippets("java", rng, 5) + snippets("python", rng, 5)
    assert np.array_equal(lid.model.proba(texts), lid2.model.proba(texts)) and lid2.report == lid.report
    assert np.array_equal(q.score(texts), q2.score(texts)) and q2.languages == q.languages
    C.save(tmp_path / "none.npz", None, None)
    assert C.load(tmp_path / "none.npz") == (None, None)


@pytest.mark.parametrize("limit", [C.LANGUAGE_BYTES, C.QUALITY_BYTES])
def test_proba_reads_only_the_head(limit):
    model = C.HashedLinear(["a", "b"], limit)
    model.W[:] = np.random.default_rng(0).normal(size=model.W.shape).astype(np.float32)
    head = "x = 1\n" * (limit // 6 + 1)
    assert np.allclose(model.proba([head]), model.proba([head + "completely different tail" * 100]))
