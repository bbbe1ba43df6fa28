"""Locate annotated instruction/context spans inside a prompt.

Method A of Wu et al., "From Language Modeling to Instruction Following" (NAACL 2024,
arXiv 2310.00492) asks how much of the attribution of each response token falls on the
*instruction* part of the prompt. The paper's annotations (``Instruct&Context`` column of
FinalDataset.tsv, see the paper README) give the instruction as text spans, not as character
offsets, and some of them differ from the prompt in whitespace, quotes or a leading
``Input:`` label. This module turns such spans into character ranges of the prompt.

Matching rules, tried in this order for each span (the first that succeeds wins):

1. **Exact**: the first occurrence of the span, unchanged, at or after ``start``.
2. **Trimmed**: the span with surrounding whitespace and quote characters
   (``" ' “ ” ‘ ’ ` ``) removed, exact match.
3. **Whitespace-tolerant**: the trimmed span's words (split on whitespace) joined by
   ``\\s+`` and regex-escaped, so any run of whitespace in the span matches any non-empty run of
   whitespace (spaces, tabs, newlines) in the prompt. Nothing else is tolerated: no case
   folding, no punctuation or spelling differences.
4. **Label stripped**: only if 1-3 fail, a leading label of one to three words followed by
   a colon (``Input:``, ``Output:``, ``Question:``, ``Text to summarise:``) is removed and rules
   2-3 are tried on the rest (if anything is left).

Before any of these rules, every *instruction* span goes through :func:`instruction_content`
(the one label rule, shared with the paper-release masks of :mod:`tuneshift.data.paper_release`,
rule S3): a leading ``Input:`` label is never instruction, so it is removed with the whitespace
around it; a span with no content left (``"Input: "``, whitespace or quotes only) is dropped and
reported (:func:`instruction_spans`). 160 of the paper's 632 records have such a span (54 a bare
``Input:``, 106 ``Input: <text>``). The version of these rules is :data:`SPAN_RULES`; it is part of
an attribution run's identity.

Ranges are always half-open ``[a, b)`` character offsets into the ORIGINAL text, so
``text[a:b]`` is the matched piece of the prompt (which may differ from the span in whitespace).
A span that matches nothing is reported, never raised: callers decide what to do with it.
"""

from __future__ import annotations

import re

__all__ = ["SPAN_RULES", "INPUT_LABEL", "instruction_content", "instruction_spans", "locate_span", "locate_spans"]

SPAN_RULES = "spans-v2"
"""Version of the instruction-span rules (part of an attribution run's identity; bump on change).
``spans-v2``: a leading ``Input:`` label is removed from instruction spans and content-free spans
are dropped (:func:`instruction_content`). Runs made before (no entry) marked label tokens as
instruction."""

INPUT_LABEL = "Input:"
"""The label the paper's rule removes (released ``utils.annotate``)."""

_QUOTES = "\"'“”‘’`"
_STRIP_CHARS = " \t\r\n\f\v" + _QUOTES
# One to three words then a colon, at the very start: "Input:", "Output:", "Text to summarise:".
_LABEL_RE = re.compile(r"^\s*[^\W\d_][\w'-]*(?:[ \t]+[\w'-]+){0,2}[ \t]*:\s*")


def _trimmed(span: str) -> str:
    return span.strip(_STRIP_CHARS)


def _find_trimmed_or_tolerant(text: str, span: str, start: int) -> tuple[int, int] | None:
    core = _trimmed(span)
    if not core:
        return None
    i = text.find(core, start)
    if i >= 0:
        return (i, i + len(core))
    words = core.split()
    pattern = r"\s+".join(re.escape(w) for w in words)
    m = re.compile(pattern).search(text, start)
    if m is not None:
        return (m.start(), m.end())
    return None


def instruction_content(text: str) -> str:
    """The instruction part of a span or prompt sentence: a leading ``Input:`` label removed.

    The one label rule of tuneshift, used by both instruction-mask builders: the attribution path
    (:func:`instruction_spans`, before a span is located in the prompt) and the paper-release path
    (:func:`tuneshift.data.paper_release.instruction_sentences`, on the prompt sentences, rule S3).
    It is the paper's rule (released ``utils.annotate``: a sentence starting with ``Input:`` loses
    that prefix and the whitespace around what is left).

    Args:
        text: a span or sentence (str).

    Returns:
        ``text`` unchanged if it does not start (after leading whitespace) with ``Input:``; else
        what follows the label, stripped of surrounding whitespace (str; ``""`` for a bare label).

    Raises:
        TypeError: ``text`` is not a str.

    Source: Wu et al. (NAACL 2024), released code ``utils.annotate``.
    """
    if not isinstance(text, str):
        raise TypeError(f"instruction_content expects a str, got {type(text).__name__}")
    t = text.lstrip()
    if t.startswith(INPUT_LABEL):
        return t[len(INPUT_LABEL) :].strip()
    return text


def instruction_spans(spans) -> tuple[list[str], list[str]]:
    """Instruction spans as they are located: :func:`instruction_content` of each, empties dropped.

    Args:
        spans: annotated instruction spans (list[str], e.g. ``PromptRecord.instruction``).

    Returns:
        ``(kept, empty)``: ``kept`` = the content of each span that has any (list[str], in order;
        a span's ``Input:`` label removed); ``empty`` = the spans as given that have no content
        (a bare ``Input:``, whitespace or quotes only; list[str]); callers warn about them.

    Source: Wu et al. (NAACL 2024), Method A instruction spans; rule of :func:`instruction_content`.
    """
    kept: list[str] = []
    empty: list[str] = []
    for span in spans:
        if not isinstance(span, str):
            continue
        content = instruction_content(span)
        if _trimmed(content):
            kept.append(content)
        else:
            empty.append(span)
    return kept, empty


def locate_span(text: str, span: str, start: int = 0) -> tuple[int, int] | None:
    """Find one annotated span in ``text``; return its character range or None.

    Args:
        text: the prompt (str).
        span: the annotated span (str), ideally a substring of ``text``.
        start: character offset (int, >= 0) where the search starts.

    Returns:
        ``(a, b)`` with ``0 <= a < b <= len(text)``: the half-open character range of the
        first match in the ORIGINAL ``text``, using the rules in the module docstring (exact,
        trimmed of spaces/quotes, whitespace-tolerant, then with a leading ``Label:`` removed).
        ``None`` if nothing matches or the span is empty/whitespace-only. Never raises for a
        span that is not found.

    Raises:
        TypeError: if ``text`` or ``span`` is not a str.

    Source: span annotations of Wu et al. (NAACL 2024), FinalDataset.tsv ``Instruct&Context``.
    """
    if not isinstance(text, str) or not isinstance(span, str):
        raise TypeError("locate_span expects str text and str span")
    if not span.strip():
        return None
    # 1. exact, unchanged
    i = text.find(span, start)
    if i >= 0:
        return (i, i + len(span))
    # 2-3. trimmed, then whitespace-tolerant
    found = _find_trimmed_or_tolerant(text, span, start)
    if found is not None:
        return found
    # 4. leading label stripped (only now, after the whole span failed)
    m = _LABEL_RE.match(span)
    if m is not None:
        rest = span[m.end() :]
        if _trimmed(rest):
            return _find_trimmed_or_tolerant(text, rest, start)
    return None


def locate_spans(text: str, spans: list[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Locate several spans in ``text`` with :func:`locate_span`.

    Args:
        text: the prompt (str).
        spans: annotated spans (list[str]); empty or whitespace-only spans are ignored
            (neither found nor reported).

    Returns:
        ``(ranges, not_found)``: ``ranges`` is a list of ``(a, b)`` character ranges, one per
        found span, in the order of ``spans`` (ranges may overlap; each span is matched at its
        first occurrence independently); ``not_found`` lists the spans (as given) that matched
        nothing. Never raises for a span that is not found.

    Source: Wu et al. (NAACL 2024), Method A instruction spans.
    """
    ranges: list[tuple[int, int]] = []
    missing: list[str] = []
    for span in spans:
        if not isinstance(span, str) or not span.strip():
            continue
        r = locate_span(text, span)
        if r is None:
            missing.append(span)
        else:
            ranges.append(r)
    return ranges, missing
