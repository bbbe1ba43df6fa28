"""Readable token text (issue 18 item 6): byte-level BPE tokens are shown decoded ("café", not
"cafÃ©") in `show` and the HTML report, for new runs (pieces stored at attribution time) and for
old runs (pieces derived on read from the raw token strings, without the tokenizer)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from helpers_tiny import make_tokenizer
from tuneshift.data.token_text import is_byte_level, looks_byte_level, token_pieces

TEXT = "café naïve 日本 déjà vu\nend"


def _tokens(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return ids, tok.convert_ids_to_tokens(ids)


def test_byte_level_pieces_are_the_decoded_text():
    tok = make_tokenizer("bpe")
    ids, toks = _tokens(tok, TEXT)
    assert any("Ã" in t for t in toks)  # the raw strings are mojibake
    assert is_byte_level(tok) and looks_byte_level(toks)
    pieces = token_pieces(toks, byte_level=True)
    assert len(pieces) == len(toks)
    # independent: the tokenizer's own decoding, of the whole and of every prefix
    assert "".join(pieces) == tok.decode(ids)
    for i in range(len(ids) + 1):
        prefix = tok.decode(ids[:i])
        if "\ufffd" not in prefix:  # a prefix that ends inside a character has no clean decoding
            assert "".join(pieces[:i]) == prefix, i
    assert "é" in "".join(pieces) and not any("Ã" in p or "Ġ" in p for p in pieces)


def test_sentencepiece_pieces():
    tok = make_tokenizer("sp")
    ids, toks = _tokens(tok, "the cat sat\nhere")
    assert not is_byte_level(tok) and not looks_byte_level(toks)
    assert "".join(token_pieces(toks, byte_level=False)).strip() == tok.decode(ids).strip()
    # SentencePiece byte fallback: <0xC3><0xA9> is "é", given to the token that completes it
    assert token_pieces(["▁caf", "<0xC3>", "<0xA9>"], byte_level=False) == [" caf", "", "é"]
    # Gemma-style pieces hold real characters: never read as byte-level
    assert not looks_byte_level(["caf", "é", "▁naïve"]) and not looks_byte_level(["a\n"])


@pytest.fixture(scope="module")
def cafe_run(tiny_llama_dir, tmp_path_factory):
    from tuneshift.cli import main

    root = tmp_path_factory.mktemp("cafe")
    prompts = root / "p.jsonl"
    prompts.write_text(
        json.dumps(
            {
                "id": "cafe",
                "prompt": "Write about the café in Zürich.",
                "instruction": "Write about",
                "response": "Le café est délicieux.",
            },
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as e:
        main(
            [
                "attribute",
                "--model",
                str(tiny_llama_dir),
                "--prompts",
                str(prompts),
                "--out",
                str(root / "run"),
                "--responses",
                "given",
            ]
        )
    assert e.value.code == 0
    return root / "run"


def _assert_readable(text):
    assert "café" in text and "Zürich" in text and "délicieux" in text, text
    assert "Ã" not in text and "Ġ" not in text


def test_show_prints_decoded_tokens(cli, cafe_run):
    from tuneshift.storage.attribution import load_run

    a = load_run(cafe_run).attributions[0]
    assert any("Ã" in t for t in a.prompt_tokens)  # raw strings are kept (for matching)
    assert "".join(a.prompt_pieces).strip() == "Write about the café in Zürich."
    assert "".join(a.response_pieces) == a.response_text
    r = cli("show", str(cafe_run))
    assert r.code == 0, r.err
    _assert_readable(r.out)


def test_old_run_without_pieces_is_converted_on_read(cli, cafe_run, tmp_path):
    import shutil

    from tuneshift.storage.attribution import load_run

    old = tmp_path / "old"
    shutil.copytree(cafe_run, old)
    for p in (old / "results").glob("*.parquet"):  # as written before pieces were stored
        t = pq.read_table(p)
        pq.write_table(t.drop_columns(["prompt_pieces", "response_pieces"]), p)
    a = load_run(old).attributions[0]
    assert "".join(a.prompt_pieces).strip() == "Write about the café in Zürich."
    assert a.prompt_pieces == load_run(cafe_run).attributions[0].prompt_pieces
    r = cli("show", str(old))
    assert r.code == 0, r.err
    _assert_readable(r.out)


def test_report_shows_decoded_tokens(cafe_run, tmp_path):
    """The HTML report of a new run against an old one (pieces dropped): token spans and the
    heat-map labels read "café", never "cafÃ©"."""
    import html
    import re
    import shutil

    from tuneshift.reports.html import collect_inputs, render_report

    old = tmp_path / "old"
    shutil.copytree(cafe_run, old)
    for p in (old / "results").glob("*.parquet"):
        pq.write_table(pq.read_table(p).drop_columns(["prompt_pieces", "response_pieces"]), p)
    page = render_report(collect_inputs([cafe_run, old]))
    assert "Ã" not in page and "Ġ" not in page
    shown = "".join(
        html.unescape(t) for t in re.findall(r'<span class="tok[^"]*" data-i="\d+"[^>]*>([^<]*)</span>', page)
    )
    assert shown.count("Write about the café in Zürich.") == 2, shown  # both sides: new and old run
    resp = "".join(html.unescape(t) for t in re.findall(r'<span class="rtok" data-j="\d+">([^<]*)</span>', page))
    assert resp.count("Le café est délicieux.") == 2, resp
    heat = json.loads(
        re.search(r'<script type="application/json" class="heat-data">(.*?)</script>', page, re.S).group(1)
    )
    assert len(heat) == 2 and all(
        "".join(v["prompt"]).strip() == "Write about the café in Zürich."
        and "".join(v["response"]) == "Le café est délicieux."
        for v in heat.values()
    )
