"""CaseOps, the lossless case transform: its rules on examples, bijectivity over arbitrary Unicode, the refusal of
strings it cannot produce, and which bytes of an encoding are original text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golf.data import caseops
from golf.data.caseops import ALLCAPS, CAPNEXT, ESC, OPERATORS, TITLE, CaseOpsError, decode, encode
from golf.data.tokenizer import CASEOPS_PIECES

# Text where case matters: ASCII letters of both cases, the operators themselves, accents and other scripts.
CASE_HEAVY = st.text(alphabet=st.one_of(st.sampled_from("aAbBzZqQ"), st.sampled_from(OPERATORS),
                                        st.sampled_from(" .-'\n\u00e9\u00c9\u0130\u03a9\U0001f642"),
                                        st.characters()), max_size=60)
ENCODABLE = CASE_HEAVY.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))  # no lone surrogates: UTF-8


@pytest.mark.parametrize("text, encoded", [
    ("the cat", "the cat"),
    ("The NASA Launch", f"{TITLE}the {ALLCAPS}nasa {TITLE}launch"),
    ("A I", f"{TITLE}a {TITLE}i"),  # one capital: TITLE, never ALLCAPS
    ("McDonald", f"{TITLE}mc{CAPNEXT}donald"),
    ("iPhone", f"i{CAPNEXT}phone"),
    ("ABc", f"{TITLE}a{CAPNEXT}bc"),
    ("Wörld", f"{TITLE}wörld"),  # runs are ASCII letters only: "W" and "rld"
    ("ÉCOLE", f"É{ALLCAPS}cole"),  # É is not ASCII and stays
    (f"x{TITLE}y", f"x{ESC}{TITLE}y"),
    (ESC, ESC + ESC),
    ("", ""),
])
def test_the_rules(text, encoded):
    assert encode(text) == encoded
    assert decode(encoded) == text


@settings(max_examples=400, deadline=None)
@given(CASE_HEAVY)
def test_decode_inverts_encode_on_arbitrary_unicode(text):
    encoded = encode(text)
    assert decode(encoded) == text
    assert not any(c.isascii() and c.isupper() for c in encoded), "no ASCII capital survives"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from([*OPERATORS, "a", "b", " "]), max_size=12))
def test_decode_accepts_exactly_the_encodings(candidate):
    """Over strings full of operators: decode either refuses or returns the one text that encodes to the string."""
    try:
        text = decode(candidate)
    except CaseOpsError:
        return
    assert encode(text) == candidate


@pytest.mark.parametrize("bad", [TITLE, f"{TITLE} a", f"{ALLCAPS}a", f"{CAPNEXT}a", f"a{TITLE}b", f"{ESC}x",
                                 f"{ALLCAPS}a{CAPNEXT}b", f"{TITLE}{CAPNEXT}ab"])
def test_strings_encode_cannot_write_are_refused(bad):
    with pytest.raises(CaseOpsError):
        decode(bad)


@settings(max_examples=300, deadline=None)
@given(ENCODABLE)
def test_original_byte_weights_sum_to_the_original_text(text):
    encoded = encode(text).encode("utf-8")
    weights = caseops.original_byte_weights(encoded)
    assert len(weights) == len(encoded)
    assert int(weights.sum()) == len(text.encode("utf-8"))


def test_escaped_operators_are_text_and_markers_are_not():
    encoded = encode(f"A{ESC}b").encode("utf-8")  # TITLE a ESC ESC b
    weights = caseops.original_byte_weights(encoded).tolist()
    assert weights == [0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]


def test_the_tokenizer_module_spells_the_same_operators():
    assert CASEOPS_PIECES == OPERATORS == ("\ue001", "\ue002", "\ue003", "\ue004")
