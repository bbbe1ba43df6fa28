"""Tests of tuneshift.data.spans: locating annotated instruction spans (Wu et al. 2024 Method A)."""

from __future__ import annotations

import pytest

from tuneshift.data import locate_span, locate_spans

TEXT = "Rewrite the sentence below.\n\nInput:   If you have\nany questions, call me.\n\nOutput:"


def test_exact_first_occurrence():
    assert locate_span("ab ab ab", "ab") == (0, 2)
    assert locate_span("ab ab ab", "ab", start=1) == (3, 5)
    a, b = locate_span(TEXT, "Rewrite the sentence below.")
    assert (a, b) == (0, 27)
    # exact match keeps surrounding spaces of the span
    assert locate_span(TEXT, "Input: ") == (29, 36)


def test_whitespace_tolerant_returns_original_range():
    span = "If you have any   questions,\ncall me."
    a, b = locate_span(TEXT, span)
    assert TEXT[a:b] == "If you have\nany questions, call me."


def test_surrounding_quotes_and_spaces_trimmed():
    a, b = locate_span(TEXT, '  "Rewrite the sentence below." ')
    assert TEXT[a:b] == "Rewrite the sentence below."
    a, b = locate_span("He said: “stop here” and left.", "“stop here”")
    assert (a, b) == (9, 20)  # exact, with the quotes
    a, b = locate_span("say stop here now", "'stop here'")
    assert "say stop here now"[a:b] == "stop here"


def test_label_stripped_only_when_needed():
    text = "Classify the text.\n\nText: The food was great"
    # the span as annotated carries a label that is not in the prompt in this form
    a, b = locate_span(text, "Input: The food   was great")
    assert text[a:b] == "The food was great"
    # when the labelled span exists verbatim, the label is kept
    a, b = locate_span(text, "Text: The food was great")
    assert text[a:b] == "Text: The food was great"
    # a label alone is never reduced to nothing
    assert locate_span("nothing here", "Input: ") is None


def test_not_found_and_empty():
    assert locate_span(TEXT, "Translate to French") is None
    assert locate_span(TEXT, "rewrite the sentence below.") is None  # no case folding
    assert locate_span(TEXT, "Rewrite the sentence below!") is None  # no punctuation tolerance
    assert locate_span(TEXT, "") is None
    assert locate_span(TEXT, "   \n") is None
    with pytest.raises(TypeError):
        locate_span(TEXT, None)  # type: ignore[arg-type]


def test_locate_spans():
    ranges, missing = locate_spans(TEXT, ["Rewrite the sentence below.", "nope", "", "Output:", "also  nope"])
    assert ranges == [(0, 27), (TEXT.index("Output:"), len(TEXT))]
    assert missing == ["nope", "also  nope"]
    assert locate_spans(TEXT, []) == ([], [])


def test_regex_metacharacters_are_literal():
    text = "Compute (a+b)*2 for a = [1]. Then stop."
    a, b = locate_span(text, "Compute  (a+b)*2 for a\n= [1].")
    assert text[a:b] == "Compute (a+b)*2 for a = [1]."
    assert locate_span(text, "Compute (a.b)") is None
