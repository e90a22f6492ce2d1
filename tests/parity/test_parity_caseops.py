"""golf's CaseOps against the T3 record's lossless_caps.py (2026-04-27): the same encoding and decoding of sample and
generated texts, the same operators, and with the record's own tokenizer the same tokens and the same byte sidecar
as its exporter (prepare_caseops_data.py counts through surface_piece_original_byte_counts)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golf.data import caseops
from golf.data.sidecar import encode_with_byte_counts
from golf.data.tokenizer import BOS_ID, byte_tables, caseops_operator_ids, load_tokenizer

TOKENIZER = "tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
SAMPLES = [
    "The NASA Launch", "McDonald's iPhone XR costs $999 in the USA.", "A I O U", "ABc aBC AbC abC",
    "Wörld ÉCOLE naïve İstanbul ǅemal ﬁne ＡＢＣ", "x\ue001y \ue004\ue004 \ue002\ue003", "HTTP/2 over TLS 1.3",
    "  leading and trailing  \n", "line one\nLine Two\n\nLINE THREE", "日本語 and Emoji 🙂 OK", "",
    "He said: \"Don't SHOUT!\" — then left.", "e\u0301 \u200bZero-width", "CamelCaseIdentifierHTML5Parser",
]
TEXT = st.text(alphabet=st.one_of(st.sampled_from("aAzZ MmcC.'-\n"), st.sampled_from(caseops.OPERATORS),
                                  st.characters(blacklist_categories=("Cs",))), max_size=80)


@pytest.fixture(scope="module")
def record(record_dir):
    folder = record_dir("2026-04-27")
    spec = importlib.util.spec_from_file_location("t3_lossless_caps", folder / "lossless_caps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.TOKENIZER_PATH = folder / TOKENIZER
    return module


def test_same_operators(record):
    assert tuple(record.get_text_transform_control_symbols(record.LOSSLESS_CAPS_CASEOPS_V1)) == caseops.OPERATORS
    assert caseops.NAME == record.LOSSLESS_CAPS_CASEOPS_V1


@pytest.mark.parametrize("text", SAMPLES)
def test_same_encoding_of_samples(record, text):
    forward = record.get_text_transform(record.LOSSLESS_CAPS_CASEOPS_V1)
    inverse = record.get_text_inverse_transform(record.LOSSLESS_CAPS_CASEOPS_V1)
    assert caseops.encode(text) == forward(text)
    assert caseops.decode(forward(text)) == inverse(forward(text)) == text


def test_same_encoding_of_generated_texts(record):
    forward = record.get_text_transform(record.LOSSLESS_CAPS_CASEOPS_V1)

    @settings(max_examples=300, deadline=None)
    @given(TEXT)
    def check(text):
        assert caseops.encode(text) == forward(text)

    check()


def test_the_records_tokenizer_is_read_as_caseops(record):
    sp = load_tokenizer(record.TOKENIZER_PATH, expected_vocab_size=8192)
    assert caseops_operator_ids(sp) == [4, 5, 6, 7]
    assert byte_tables(sp, 8192).needs_sidecar


def record_sidecar(record, sp, text: str) -> tuple[list[int], list[int]]:
    """What the record's exporter writes for one document: BOS + ids, and 0 + the surfaces' original byte counts."""
    transformed = record.encode_lossless_caps_v2(text)
    pieces = sp.encode(transformed, out_type="proto").pieces  # the surfaces encode_as_immutable_proto gave
    counts = record.surface_piece_original_byte_counts((p.surface for p in pieces),
                                                       text_transform_name=record.LOSSLESS_CAPS_CASEOPS_V1)
    return [BOS_ID, *(p.id for p in pieces)], [0, *counts]


def test_same_tokens_and_sidecar_as_the_records_exporter(record):
    sp = load_tokenizer(record.TOKENIZER_PATH)
    tokens, counts = encode_with_byte_counts(sp, SAMPLES)
    expected_tokens, expected_counts = [], []
    for text in SAMPLES:
        ids, nbytes = record_sidecar(record, sp, text)
        expected_tokens += ids
        expected_counts += nbytes
    np.testing.assert_array_equal(tokens, expected_tokens)
    np.testing.assert_array_equal(counts, expected_counts)
    assert counts.sum() > 0 and np.isin(tokens, [4, 5, 6, 7]).sum() > 10


def test_same_sidecar_on_generated_texts(record):
    sp = load_tokenizer(record.TOKENIZER_PATH)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(TEXT, min_size=1, max_size=3))
    def check(texts):
        tokens, counts = encode_with_byte_counts(sp, texts)
        expected = [record_sidecar(record, sp, t) for t in texts]
        assert tokens.tolist() == [i for ids, _ in expected for i in ids]
        assert counts.tolist() == [c for _, nbytes in expected for c in nbytes]

    check()
