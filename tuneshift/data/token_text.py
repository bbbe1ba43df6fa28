"""Readable text of each token ("pieces"), for display: never the raw token strings.

Raw token strings are the tokenizer's vocabulary entries, not text. Byte-level BPE tokenizers
(GPT-2, SmolLM2, Llama 3, Qwen 2) spell every byte as one printable character of GPT-2's
``bytes_to_unicode`` table (a space is ``Ġ``, a newline ``Ċ``, and "é" -- bytes C3 A9 -- is
``Ã©``), so printing them shows mojibake ("cafÃ©" for "café"). SentencePiece tokenizers (Gemma,
LLaMA 2) mark a space with ``▁`` and spell bytes they have no piece for as ``<0xNN>``.

:func:`token_pieces` turns a record's token strings into pieces whose concatenation is the
decoded text: each token's bytes go through one incremental UTF-8 decoder, so a character whose
bytes are split over several tokens (SmolLM2 spells "日" as ``Ġæ``, ``Ĺ``, ``¥``) is given to the
token that completes it (the earlier ones get what they complete, possibly ""). Bytes that never
form valid UTF-8 are shown as U+FFFD.

* With the tokenizer (at attribution time): :func:`is_byte_level` reads its decoder (a
  ``ByteLevel`` decoder anywhere in the fast tokenizer's decoder pipeline).
* Without it (runs written before pieces were stored): :func:`looks_byte_level` decides from
  the token strings: byte-level if every character of every token is in the
  ``bytes_to_unicode`` table (no ``▁``, no raw newline or space, which that table never uses)
  and their bytes decode as UTF-8. A SentencePiece record passes this test only if it has no
  space and no newline at all, and then only printable ASCII, where both readings agree.

The ``bytes_to_unicode`` table is the one in ``transformers`` (not a copy).
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

__all__ = ["token_pieces", "is_byte_level", "looks_byte_level", "pieces_for_display"]

_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


def is_byte_level(tokenizer) -> bool:
    """True if ``tokenizer`` (a ``transformers`` tokenizer) decodes with a byte-level decoder.

    Fast tokenizers: a ``ByteLevel`` step in ``backend_tokenizer.decoder``. Slow ones: a
    ``byte_decoder`` attribute (GPT-2's slow tokenizer). Anything else: False.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    dec = getattr(backend, "decoder", None) if backend is not None else None
    if dec is not None:
        try:
            return b'"type":"ByteLevel"' in dec.__getstate__()
        except Exception:  # noqa: BLE001 - an unusual decoder object: fall back to the attribute
            pass
    return isinstance(getattr(tokenizer, "byte_decoder", None), dict)


def looks_byte_level(tokens: list[str]) -> bool:
    """True if every token string is byte-level BPE spelling whose bytes decode as UTF-8.

    Args:
        tokens: raw token strings (``convert_ids_to_tokens``), e.g. one record's prompt and
            response tokens together.
    """
    table = _byte_decoder()
    try:
        data = bytes(table[c] for t in tokens for c in t)
    except KeyError:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _token_bytes(tok: str, byte_level: bool) -> bytes:
    if byte_level:
        table = _byte_decoder()
        if all(c in table for c in tok):
            return bytes(table[c] for c in tok)
        return tok.encode("utf-8")  # an added token spelled outside the table
    m = _BYTE_FALLBACK.fullmatch(tok)
    if m:
        return bytes([int(m.group(1), 16)])
    return tok.replace("▁", " ").encode("utf-8")


def token_pieces(tokens: list[str], byte_level: bool) -> list[str]:
    """The readable text of each token (see the module docstring).

    Args:
        tokens: ``[n]`` raw token strings of one sequence, in order.
        byte_level: the tokenizer is byte-level BPE (:func:`is_byte_level` or
            :func:`looks_byte_level`); otherwise SentencePiece conventions (``▁`` -> space,
            ``<0xNN>`` -> that byte) and other tokens as they are.

    Returns:
        ``[n]`` strings; ``"".join`` of them is the UTF-8 decoding of the tokens' bytes (invalid
        bytes as U+FFFD). A character split over tokens goes to the token that completes it.
    """
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = [dec.decode(_token_bytes(t, byte_level)) for t in tokens]
    tail = dec.decode(b"", final=True)
    if tail and out:
        out[-1] += tail
    return out


def pieces_for_display(prompt_tokens: list[str], response_tokens: list[str]) -> tuple[list[str], list[str]]:
    """Pieces of a stored record without its tokenizer (old runs): byte-level if
    :func:`looks_byte_level` says so for the record's prompt and response tokens together."""
    bl = looks_byte_level(list(prompt_tokens) + list(response_tokens))
    return token_pieces(list(prompt_tokens), bl), token_pieces(list(response_tokens), bl)
