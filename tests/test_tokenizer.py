"""The challenge's SentencePiece settings, reproducible training, the byte tables and the document encoding."""

from __future__ import annotations

import random

import numpy as np
import pytest

from golf.data.tokenizer import (BOS_ID, SPACE_SYMBOL, byte_tables, encode_documents, load_tokenizer, scored_bytes,
                                 train_tokenizer)
from golf.errors import ConfigError, DataError

VOCAB = 320  # 4 specials + 256 byte pieces + the characters + a few dozen merges


def sample_documents(n: int = 80, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    words = "the king and queen of night speak thou hath love 1999 café naïve crown sword".split()
    return ["\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) for _ in range(20))
            for _ in range(n)]


@pytest.fixture(scope="module")
def sp(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.model"
    train_tokenizer(sample_documents(), VOCAB, path)
    return load_tokenizer(path, expected_vocab_size=VOCAB)


def test_training_is_deterministic(tmp_path):
    first, second = tmp_path / "a.model", tmp_path / "b.model"
    train_tokenizer(sample_documents(), VOCAB, first)
    train_tokenizer(iter(sample_documents()), VOCAB, second)  # any iterable, consumed once
    assert first.read_bytes() == second.read_bytes()


def test_challenge_settings(sp):
    assert sp.get_piece_size() == VOCAB
    assert [sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert sp.bos_id() == 1 and sp.eos_id() == 2 and sp.pad_id() == 0 and sp.unk_id() == 3
    assert [sp.id_to_piece(i) for i in sp.encode("1991")] == ["1", "9", "9", "1"]  # split_digits
    pieces = [sp.id_to_piece(i) for i in sp.encode("the king")]
    assert not pieces[0].startswith(SPACE_SYMBOL), "no dummy prefix: a text's first word has no leading space"
    assert any(piece.startswith(SPACE_SYMBOL) for piece in pieces[1:])
    assert sp.decode(sp.encode("\u03a9")) == "\u03a9"  # an unseen character survives as byte-fallback pieces


def test_a_document_longer_than_sentencepieces_limit_still_trains(tmp_path):
    rng = random.Random(3)
    line_words = "alpha beta gamma delta epsilon zeta".split()
    long_document = "\n".join(" ".join(rng.choice(line_words) for _ in range(10)) for _ in range(4000))  # ~240 KB
    train_tokenizer([long_document], VOCAB, tmp_path / "long.model")
    sp = load_tokenizer(tmp_path / "long.model")
    assert len(sp.encode("alpha beta gamma")) <= 3, "the document's words were learnt, not skipped"


def test_too_large_a_vocabulary_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        train_tokenizer(["a tiny corpus"], 5000, tmp_path / "t.model")
    assert err.value.key == "data.vocab_size"
    assert not (tmp_path / "t.model").exists()


def test_byte_tables_follow_facts(sp):
    padded = VOCAB + 8
    tables = byte_tables(sp, padded)
    assert all(len(a) == padded for a in (tables.base_bytes, tables.has_leading_space, tables.is_boundary))
    assert tables.base_bytes.dtype == np.int32
    for control in (0, 1, 2, 3):  # pad, BOS, EOS are control pieces; 3 is unknown
        assert tables.is_boundary[control] and tables.base_bytes[control] == 0
    assert tables.is_boundary[VOCAB:].all() and not tables.base_bytes[VOCAB:].any()
    byte_piece = sp.piece_to_id("<0xC3>")
    assert sp.is_byte(byte_piece)
    assert tables.base_bytes[byte_piece] == 1 and not tables.is_boundary[byte_piece]
    spaced = [i for i in range(VOCAB) if sp.id_to_piece(i).startswith(SPACE_SYMBOL) and len(sp.id_to_piece(i)) > 2]
    assert spaced, "the tokenizer learnt pieces with a leading space"
    for token_id in spaced:
        rest = sp.id_to_piece(token_id)[1:]
        assert tables.has_leading_space[token_id] and tables.base_bytes[token_id] == len(rest.encode("utf-8"))
    accented = sp.piece_to_id("é")
    assert sp.id_to_piece(accented) == "é" and tables.base_bytes[accented] == 2  # UTF-8 bytes, not characters
    assert not tables.has_leading_space[accented]


def test_unused_pieces_are_boundaries(sp):
    model_pb2 = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")
    import sentencepiece as spm

    proto = model_pb2.ModelProto()
    proto.ParseFromString(sp.serialized_model_proto())
    target = sp.piece_to_id("é")
    proto.pieces[target].type = model_pb2.ModelProto.SentencePiece.UNUSED
    edited = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    tables = byte_tables(edited, VOCAB)
    assert edited.is_unused(target) and tables.is_boundary[target] and tables.base_bytes[target] == 0


def test_encode_documents_adds_bos_and_no_eos(sp):
    texts = ["the king speaks", "", "thou hath love"]
    stream = encode_documents(sp, texts)
    assert stream.dtype == np.uint16
    expected = [token for text in texts for token in [BOS_ID, *sp.encode(text)]]
    assert stream.tolist() == expected
    assert (stream == BOS_ID).sum() == len(texts) and not (stream == sp.eos_id()).any()


def test_scored_bytes_counts_the_decoded_text(sp):
    texts = ["the king speaks", "thou hath love 1999"]
    stream = encode_documents(sp, texts)
    tables = byte_tables(sp, VOCAB)
    assert scored_bytes(stream, tables) == sum(len(sp.decode(sp.encode(t)).encode("utf-8")) for t in texts)
    assert scored_bytes(stream, tables, chunk=3) == scored_bytes(stream, tables)


def test_load_tokenizer_errors(tmp_path, sp):
    with pytest.raises(DataError, match="does not exist") as err:
        load_tokenizer(tmp_path / "missing.model")
    assert str(tmp_path / "missing.model") in str(err.value)
    for content in (b"not a model", b""):
        (tmp_path / "bad.model").write_bytes(content)
        with pytest.raises(DataError) as err:
            load_tokenizer(tmp_path / "bad.model")
        assert str(tmp_path / "bad.model") in str(err.value)
    (tmp_path / "good.model").write_bytes(sp.serialized_model_proto())
    with pytest.raises(ConfigError) as err:
        load_tokenizer(tmp_path / "good.model", expected_vocab_size=1024)
    assert err.value.key == "data.vocab_size"
    assert str(err.value) == (f"data.vocab_size: is 1024 but the tokenizer {tmp_path / 'good.model'} has {VOCAB} "
                              f"pieces; set data.vocab_size={VOCAB} or point data.tokenizer at a matching tokenizer")
