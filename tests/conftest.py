"""Fixtures shared by the stage tests: a small trained tokenizer and prepared data.

Built once per test session from a few standard-library packages, so every stage is
tested on real code at a size that trains in seconds."""
import os
import sysconfig

import pytest

STDLIB = sysconfig.get_paths()["stdlib"]
# A few packages: real code, ~1 MB, different enough for held-out repositories.
SMALL_CORPUS = [os.path.join(STDLIB, p) for p in ("json", "email", "http", "urllib", "xmlrpc", "wsgiref", "logging")]


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory):
    """A 1,024-token BPE tokenizer trained on the small corpus, saved in HF layout."""
    from tokenizer import Tokenizer
    texts = []
    for root in SMALL_CORPUS:
        for dirpath, _, names in os.walk(root):
            for n in sorted(names):
                if n.endswith(".py"):
                    with open(os.path.join(dirpath, n), encoding="utf-8") as f:
                        texts.append(f.read())
    path = str(tmp_path_factory.mktemp("tokenizer"))
    Tokenizer.train(texts, 1024, verbose=False).save(path)
    return path


@pytest.fixture(scope="session")
def tok(tok_dir):
    from tokenizer import Tokenizer
    return Tokenizer.from_pretrained(tok_dir)


@pytest.fixture(scope="session")
def file_data(tok, tmp_path_factory):
    """The small corpus prepared at file level (one document per file)."""
    from data_fim import prepare
    path = str(tmp_path_factory.mktemp("data-file"))
    prepare(tok, path, inputs=SMALL_CORPUS, level="file", seq_len=128, verbose=False)
    return path
