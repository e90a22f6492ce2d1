"""CaseOps: the records' lossless case transform (lossless_caps_caseops_v1), so a tokenizer sees lowercase words.

Over each maximal run of ASCII letters:
- a lowercase word stays as it is;
- a word of two or more capitals becomes ALLCAPS + the word in lowercase;
- a word whose first letter alone is a capital becomes TITLE + the word in lowercase;
- any other word: TITLE first if its first letter is a capital, then its letters in lowercase, each capital after the
  first preceded by CAPNEXT.
A literal operator character in the text is written ESC + the character; everything else (non-ASCII letters
included) is left alone. The four operators are private-use characters that SentencePiece keeps as user-defined
symbols, one token each.

`decode` inverts `encode` exactly and refuses any string `encode` cannot produce, so the two are a bijection between
all texts and their encodings. Bits per byte are billed on the original text: `original_byte_weights` says which
bytes of an encoding are original text (1) and which are operators (0); golf/data/sidecar.py sums them per token.
"""

from __future__ import annotations

import re

import numpy as np

TITLE = "\ue001"
ALLCAPS = "\ue002"
CAPNEXT = "\ue003"
ESC = "\ue004"
OPERATORS = (TITLE, ALLCAPS, CAPNEXT, ESC)  # in this order the records' tokenizer holds them (ids 4-7)
NAME = "lossless_caps_caseops_v1"  # the records' name for this transform

_WORD_OR_OPERATOR = re.compile("[A-Za-z]+|[\ue001-\ue004]")
# An encoding, piece by piece: an escaped operator, a word (with its optional mode), or an operator out of place.
_ENCODED = re.compile("\ue004(?P<escaped>[\ue001-\ue004])|(?P<mode>[\ue001\ue002]?)(?P<word>(?:\ue003?[a-z])+)"
                      "|(?P<stray>[\ue001-\ue004])")
# The same in UTF-8: each operator is EE 80 81..84; an escape pair is ESC + operator. UTF-8 never puts a lead byte
# EE inside another character, so a left-to-right scan of the bytes finds exactly the characters.
_OPERATOR_BYTES = re.compile(b"\xee\x80\x84\xee\x80[\x81-\x84]|\xee\x80[\x81-\x84]")
OPERATOR_UTF8_BYTES = 3


class CaseOpsError(ValueError):
    """A string that is not the CaseOps encoding of any text."""


def _encode_word(match: re.Match) -> str:
    word = match.group()
    if word in OPERATORS:
        return ESC + word
    if word.islower():
        return word
    lower = word.lower()
    if len(word) > 1 and word.isupper():
        return ALLCAPS + lower
    if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
        return TITLE + lower
    marked = (CAPNEXT + c.lower() if c.isupper() else c for c in word[1:])
    return (TITLE if word[0].isupper() else "") + lower[0] + "".join(marked)


def encode(text: str) -> str:
    """The CaseOps encoding of `text`."""
    return _WORD_OR_OPERATOR.sub(_encode_word, text)


def _decode_piece(match: re.Match) -> str:
    if match.group("escaped"):
        return match.group("escaped")
    if match.group("stray"):
        raise CaseOpsError(f"operator U+{ord(match.group('stray')):04X} at character {match.start()} is not "
                           f"followed by what it marks")
    letters = match.group("word")
    word = re.sub("\ue003([a-z])", lambda m: m.group(1).upper(), letters)
    mode = match.group("mode")
    if mode == ALLCAPS:
        return word.upper()
    if mode == TITLE:
        return word[0].upper() + word[1:]
    return word


def decode(encoded: str) -> str:
    """The text whose encoding is `encoded`; CaseOpsError when there is none (an operator out of place, or marks
    that `encode` would have written otherwise, such as CAPNEXT on every letter of a capitalized word)."""
    text = _ENCODED.sub(_decode_piece, encoded)
    if encode(text) != encoded:
        raise CaseOpsError("the string is not in CaseOps' canonical form (encode would write this text as "
                           f"{encode(text)[:80]!r})")
    return text


def original_byte_weights(encoded_utf8: bytes) -> np.ndarray:
    """Per byte of an encoding (UTF-8): 1 where it is a byte of the original text, 0 where it belongs to an operator
    that marks case or an escape. The escaped operator itself is original text. Sums to len(decode(...) in UTF-8)."""
    weights = np.ones(len(encoded_utf8), dtype=np.int64)
    for match in _OPERATOR_BYTES.finditer(encoded_utf8):
        weights[match.start(): match.start() + OPERATOR_UTF8_BYTES] = 0  # the marker or the ESC of a pair
    return weights
