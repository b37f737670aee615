"""Small fastText-style classifiers for data cleaning: language identification and quality.

Qwen2.5-Coder report §3.1: code in 92 languages is identified and kept per language, and
text-code data is found by *hierarchical filtering with small classifiers* (fastText, Fig. 1):
a classifier trained from a seed set scores everything, the survivors seed the next, stricter
round, and each document keeps its score. Both classifiers here are the same model:

    features(data)  hashed byte n-grams (n = 1..4) of the first bytes of a file
    HashedLinear    logits = mean of the n-grams' weight rows + bias (fastText's bag of n-grams
                    without the hidden layer: linear, trained by SGD in numpy, ~1 s per round)
    LanguageID      trained on files whose extension names the language, used where the
                    extension is missing, ambiguous (.h: C or C++?) or lies
    QualityFilter   rounds of HashedLinear(bad, good): round 1 learns from seed labels, round
                    r + 1 from round r's survivors (good) against everything removed so far (bad)

This file knows nothing of corpora or files on disk: corpus.py chooses the training texts
(its seed rules say what is good and bad) and applies the result. numpy only, so the worker
processes that score a corpus never touch torch.
"""
import io
import json
from collections import Counter

import numpy as np

BUCKETS = 1 << 18      # hashed n-gram rows: 2^18 x classes float32 (a 10-language model is 10 MB)
ORDERS = (1, 2, 3, 4)   # bytes: keywords ("def ", "#inc", "sub "), punctuation habits, indentation
LANGUAGE_BYTES = 2048  # what language ID reads: the head of a file says it (97% held out, as 4096)
QUALITY_BYTES = 4096   # what the quality rounds read (8192 removes much the same, 1.6x slower)
_PRIME = np.uint64(0x100000001B3)  # FNV's 64-bit prime: the rolling hash's base


def _mix(x):
    """splitmix64's finaliser: spreads a rolling hash evenly over the buckets."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def features(data, limit=LANGUAGE_BYTES, buckets=BUCKETS):
    """Bucket ids of every byte n-gram (n in ORDERS) of data[:limit] (bytes or str).

    The hash of b[i:i+n] is built from the hash of b[i:i+n-1] (h * P + b[i+n-1]), so all
    orders cost one vectorised pass each; uint64 arithmetic wraps, which is fine for a hash.
    """
    if isinstance(data, str):
        data = data[:limit].encode("utf-8", "replace")
    b = np.frombuffer(data[:limit], dtype=np.uint8).astype(np.uint64)
    ids, h = [], np.zeros(len(b), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for n in ORDERS:
            if len(b) < n:
                break
            h = h[:len(b) - n + 1] * _PRIME + b[n - 1:]
            ids.append(_mix(h + np.uint64(n)) % np.uint64(buckets))
    return np.concatenate(ids).astype(np.int32) if ids else np.zeros(0, dtype=np.int32)  # int32: sorts faster


class HashedLinear:
    """p(label | text) = softmax(mean of W[n-gram buckets] + b). Labels are strings."""

    def __init__(self, labels, limit, buckets=BUCKETS):
        self.labels, self.limit, self.buckets = list(labels), limit, buckets
        self.W = np.zeros((buckets, len(self.labels)), dtype=np.float32)
        self.b = np.zeros(len(self.labels), dtype=np.float32)

    def _encode(self, text, cache):
        """(n-gram ids, distinct ids, weights) of a text; weights = counts / sqrt(number of
        n-grams): the sqrt keeps one SGD step's effect on the logits alike for short and long
        files (a plain mean would make a long file's step tiny). cache (a dict) spares the
        rounds of QualityFilter.train from hashing the same texts again."""
        if cache is not None and text in cache:
            return cache[text]
        ids = features(text, self.limit, self.buckets)
        distinct, counts = np.unique(ids, return_counts=True)
        out = ids, distinct, (counts / np.sqrt(max(1, len(ids)))).astype(np.float32)
        if cache is not None:
            cache[text] = out
        return out

    def proba(self, texts, cache=None):
        """(len(texts), labels) probabilities."""
        z = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for k, t in enumerate(texts):
            ids = self._encode(t, cache)[0] if cache is not None else features(t, self.limit, self.buckets)
            # = weights @ W[distinct] + b; take() gathers the same rows as W[ids], several times faster
            z[k] = self.W.take(ids, axis=0).sum(0) / np.sqrt(max(1, len(ids))) + self.b
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def fit(self, texts, labels, epochs=5, lr=0.5, seed=0, cache=None):
        """Softmax regression by SGD one text at a time, the learning rate decaying linearly
        to 0 (fastText's schedule). A text touches only its own buckets' rows."""
        bags = [self._encode(t, cache)[1:] for t in texts]
        y = np.array([self.labels.index(label) for label in labels])
        rng, step, total = np.random.default_rng(seed), 0, epochs * len(bags)
        for _ in range(epochs):
            for i in rng.permutation(len(bags)):
                ids, w = bags[i]
                rows = self.W.take(ids, axis=0)  # a copy (the ids are distinct): gathered once, written back once
                z = w @ rows + self.b
                p = np.exp(z - z.max())
                p /= p.sum()
                p[y[i]] -= 1  # d(cross-entropy)/d(logits)
                rate = lr * (1 - step / total)
                step += 1
                rows -= rate * (w[:, None] * p)  # float32 throughout: rate is a Python float
                self.W[ids] = rows
                self.b -= rate * p
        return self

    def state(self):
        return {"labels": self.labels, "limit": self.limit, "buckets": self.buckets, "W": self.W, "b": self.b}

    @classmethod
    def from_state(cls, s):
        model = cls(s["labels"], s["limit"], s["buckets"])
        model.W, model.b = s["W"], s["b"]
        return model


def _balanced(items, cap, seed):
    """At most `cap` items per label, chosen at random but reproducibly: common languages
    (Python here) must not drown the rare ones, nor good files the few bad ones."""
    rng, by_label, out = np.random.default_rng(seed), {}, []
    for text, label in items:
        by_label.setdefault(label, []).append(text)
    for label in sorted(by_label):
        texts = by_label[label]
        for i in sorted(rng.permutation(len(texts))[:cap]):
            out.append((texts[i], label))
    return out


class LanguageID:
    """Which programming language a file is, from its first bytes."""

    def __init__(self, model, report=None):
        self.model, self.report = model, report or {}

    @classmethod
    def train(cls, labelled, min_files=8, cap=400, holdout=0.2, seed=0):
        """labelled: [(text, language, holdout_score in [0, 1))]. Files scoring < holdout are
        held out for the accuracy in self.report; languages with < min_files files are left out
        (their files keep the extension's word)."""
        counts = Counter(lang for _, lang, _ in labelled)
        keep = sorted(lang for lang, n in counts.items() if n >= min_files)
        if len(keep) < 2:
            return None
        train = [(t, lang) for t, lang, h in labelled if lang in keep and h >= holdout]
        test = [(t, lang) for t, lang, h in labelled if lang in keep and h < holdout]
        model = HashedLinear(keep, LANGUAGE_BYTES).fit(*zip(*_balanced(train, cap, seed)))
        lid = cls(model)
        correct = sum(p == lang for p, lang in zip(lid.predict([t for t, _ in test]), (lang for _, lang in test)))
        lid.report = {"languages": keep, "train_files": len(train), "heldout_files": len(test),
                      "heldout_accuracy": round(correct / max(1, len(test)), 4)}
        return lid

    def predict(self, texts, return_proba=False):
        if not texts:
            return ([], []) if return_proba else []
        p = self.model.proba(texts)
        best = [self.model.labels[i] for i in p.argmax(1)]
        return (best, p) if return_proba else best

    def prob_of(self, proba_row, language):
        return float(proba_row[self.model.labels.index(language)]) if language in self.model.labels else None


class QualityFilter:
    """Hierarchical filtering (Fig. 1): a cascade of good/bad classifiers.

    score(texts) is, per text, the lowest p(good) over the rounds: a document is kept when it
    passes every round (score >= threshold), and later, stricter rounds only lower the scores
    of what they doubt. The score is stored per document, so a mixture can weight by it.
    """

    def __init__(self, rounds, threshold=0.5, report=None, languages=()):
        self.rounds, self.threshold, self.report = rounds, threshold, report or {}
        self.languages = set(languages)  # the groups the rounds learnt from: only these are judged

    @classmethod
    def train(cls, seeds, pool, rounds=2, threshold=0.5, cap=300, min_seeds=20, seed=0):
        """seeds: [(text, group, "good"|"bad")] from the seed rules; pool: [(text, group)], the
        sample the rounds filter. group (the language) balances every training set, so the
        classifier learns good from bad *within* a language, not which language is common;
        only languages with min_seeds of both labels are judged at all."""
        count = Counter((g, lab) for _, g, lab in seeds)
        groups = sorted({g for g, _ in count if min(count[g, "good"], count[g, "bad"]) >= min_seeds})
        models, report, bad_seen, cache = [], [], [(t, g, "bad") for t, g, lab in seeds if lab == "bad"], {}
        train_set, alive = list(seeds), [i for i, (_, g) in enumerate(pool) if g in groups]
        for r in range(rounds if groups else 0):
            chosen = _balanced([(t, (g, lab)) for t, g, lab in train_set if g in groups], cap, seed + r)
            model = HashedLinear(["bad", "good"], QUALITY_BYTES).fit([t for t, _ in chosen],
                                                                    [lab for _, (_, lab) in chosen], seed=seed + r,
                                                                    cache=cache)
            models.append(model)
            p = model.proba([pool[i][0] for i in alive], cache)[:, 1] if alive else np.zeros(0)
            removed = [i for i, q in zip(alive, p) if q < threshold]
            alive = [i for i, q in zip(alive, p) if q >= threshold]
            report.append({"round": r + 1, "trained_on": dict(Counter(lab for _, (_, lab) in chosen)),
                           "pool": len(removed) + len(alive), "removed": len(removed)})
            # the next round: survivors are its good examples, everything removed so far its bad
            bad_seen += [(pool[i][0], pool[i][1], "bad") for i in removed]
            train_set = bad_seen + [(pool[i][0], pool[i][1], "good") for i in alive]
        return cls(models, threshold, {"rounds": report}, groups)

    def score(self, texts):
        if not self.rounds or not texts:
            return np.ones(len(texts), dtype=np.float32)
        return np.min([m.proba(texts)[:, 1] for m in self.rounds], axis=0).astype(np.float32)


# ----------------------------------------------------------------------------- saving both in one file

def save(path, language_id, quality):
    """Both classifiers in one .npz (weights as arrays, the rest as JSON), so every shard of a
    preparation, and a rerun, uses the very same ones."""
    arrays, info = {}, {}
    for name, model in ([("language", language_id.model)] if language_id else []) + \
            [(f"quality{i}", m) for i, m in enumerate(quality.rounds if quality else [])]:
        s = model.state()
        arrays[f"{name}.W"], arrays[f"{name}.b"] = s.pop("W"), s.pop("b")
        info[name] = s
    info["language_report"] = language_id.report if language_id else None
    info["quality"] = ({"threshold": quality.threshold, "report": quality.report, "languages": sorted(quality.languages)}
                       if quality else None)
    buf = io.BytesIO()
    np.savez(buf, info=np.frombuffer(json.dumps(info).encode(), dtype=np.uint8), **arrays)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def load(path):
    """(LanguageID or None, QualityFilter or None) saved by save()."""
    with np.load(path) as z:
        info = json.loads(z["info"].tobytes())
        model = lambda name: HashedLinear.from_state({**info[name], "W": z[f"{name}.W"], "b": z[f"{name}.b"]})
        language_id = LanguageID(model("language"), info["language_report"]) if "language" in info else None
        rounds = [model(f"quality{i}") for i in range(sum(k.startswith("quality") and k[7:].isdigit() for k in info))]
        q = info["quality"]
        quality = QualityFilter(rounds, q["threshold"], q["report"], q["languages"]) if q is not None else None
    return language_id, quality
