"""Integrated gradients (Sundararajan et al. 2017) through Captum, as the method ``integrated_gradients``.

IG[n, j] = (e_n - b_n) . integral_0^1 d f_j(b + a (e - b)) / d e_n da, over the P prompt positions
(the response prefix keeps its embeddings), f_j the target of response token j.

Two references, both independent of the method's code:

* completeness: sum_n IG[n, j] = f_j(e) - f_j(b), with f_j(e) and f_j(b) from the model's own
  forward; the gap must be Captum's convergence delta, and tiny where the path is smooth;
* a hand-written quadrature (below), with the same rule: nodes and weights from numpy
  (Gauss-Legendre) or the textbook Riemann points, gradients from the model's full forward on
  ``inputs_embeds``, one alpha and one response token at a time. Captum casts its step weights to
  float32 (``torch.tensor(step_sizes).float()``) and computes Riemann nodes with a float32
  ``torch.linspace``; the reference rounds the weights the same way (that is part of "the same
  rule"), so in float64 the two agree to float64 rounding for Gauss-Legendre; Riemann nodes may
  differ by one float32 ulp (~6e-8 relative), hence a looser bound there.

Float64: GPT-2 (LayerNorm) is float64 all through. Llama's RMSNorm computes in float32 in
Hugging Face; the test replaces it on its own model instance by the same formula in the input
dtype (as test_attribution_gradient.py does).
"""

from __future__ import annotations

import json
import types
import warnings

import numpy as np
import pytest
import torch

import helpers_tiny as H
from tuneshift.errors import TuneshiftError
from tuneshift.methods.attribution import AttributionOptions, SequencePair, get_target
from tuneshift.methods.attribution.methods import get_method, make_method
from tuneshift.storage.attribution import load_run

pytestmark = pytest.mark.numeric

PROMPT = "Rewrite the sentence politely.\nInput: send the report now"
RESPONSE = " Could you please send the report?"

FORMULAS = {  # the targets by their textbook formulas, on one position's logits [vocab]
    "probability": lambda z, y: torch.softmax(z, dim=-1)[y],
    "log_probability": lambda z, y: torch.log_softmax(z, dim=-1)[y],
    "logit": lambda z, y: z[y],
}


def _full_precision_norms(model) -> None:
    for mod in model.modules():
        if type(mod).__name__.endswith("RMSNorm"):
            eps = getattr(mod, "variance_epsilon", getattr(mod, "eps", None))

            def forward(self, x, _eps=eps):
                return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + _eps) * self.weight

            mod.forward = types.MethodType(forward, mod)


def _f64(family: str):
    tok = H.make_tokenizer("bpe")
    model = H.make_tiny_model(tok, family).double()
    _full_precision_norms(model)
    prompt = tok(PROMPT)["input_ids"]
    resp = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    return tok, model, prompt, resp


def _nodes_weights(rule: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = (x + 1) / 2, w / 2
    else:
        k = np.arange(n)
        alphas = {"riemann_left": k / n, "riemann_right": (k + 1) / n, "riemann_middle": (k + 0.5) / n}[rule]
        alphas = alphas.astype(np.float32).astype(np.float64)
        weights = np.full(n, 1.0 / n)
    return alphas, weights.astype(np.float32).astype(np.float64)  # Captum's float32 step weights


def reference_ig(model, prompt, resp, target, n_steps, rule, baseline_row) -> np.ndarray:
    """Hand-written IG over the prompt embeddings; [P, R] float64."""
    P, R = len(prompt), len(resp)
    with torch.no_grad():
        emb = model.get_input_embeddings()(torch.tensor([prompt + resp]))[0]
    e, prefix = emb[:P], emb[P:]
    b = baseline_row.expand(P, -1)
    alphas, weights = _nodes_weights(rule, n_steps)
    total = torch.zeros(R, P, emb.shape[-1], dtype=torch.float64)
    for a, w in zip(alphas, weights):
        for j in range(R):
            x = (b + float(a) * (e - b)).detach().requires_grad_(True)
            full = torch.cat([x, prefix[:j]])[None]
            logits = model(inputs_embeds=full, use_cache=False).logits[0, P - 1 + j]
            (g,) = torch.autograd.grad(FORMULAS[target](logits, resp[j]), x)
            total[j] += float(w) * g
    return ((e - b)[None] * total).sum(-1).T.detach().numpy()


def _score(model, prompt, resp, target, prompt_rows=None) -> np.ndarray:
    """f_j for every response token with the prompt embeddings replaced by ``prompt_rows``."""
    P = len(prompt)
    with torch.no_grad():
        emb = model.get_input_embeddings()(torch.tensor([prompt + resp]))
        if prompt_rows is not None:
            emb[0, :P] = prompt_rows
        logits = model(inputs_embeds=emb, use_cache=False).logits[0]
        return np.array([FORMULAS[target](logits[P - 1 + j], y).item() for j, y in enumerate(resp)])


def _ig(model, prompt, resp, target="probability", **options):
    method = make_method("integrated_gradients", options)
    (a,) = method.attribute(model, [SequencePair(prompt, resp)], get_target(target))
    return a, method.convergence_deltas[0]


# ------------------------------------------------------------------ against the hand-written reference


CASES = [
    ("gpt2", "gausslegendre", "probability", 16),
    ("llama", "gausslegendre", "log_probability", 8),
    ("gpt2", "riemann_middle", "logit", 8),
]


@pytest.mark.filterwarnings("ignore:integrated_gradients")  # few steps: completeness warnings are expected
@pytest.mark.parametrize("family,rule,target,n_steps", CASES, ids=[f"{f}-{r}-{t}" for f, r, t, _ in CASES])
def test_matches_hand_written_integrated_gradients(family, rule, target, n_steps):
    _, model, prompt, resp = _f64(family)
    got, _ = _ig(model, prompt, resp, target, n_steps=n_steps, rule=rule, rows_per_pass=7)
    ref = reference_ig(
        model, prompt, resp, target, n_steps, rule, torch.zeros(1, model.config.hidden_size, dtype=torch.float64)
    )
    assert got.dtype == np.float64 and got.shape == ref.shape == (len(prompt), len(resp))
    scale = np.abs(ref).max()
    assert scale > 1e-4
    tol = 1e-10 if rule == "gausslegendre" else 1e-6
    assert np.abs(got - ref).max() <= tol * scale, np.abs(got - ref).max() / scale


# ------------------------------------------------------------------ completeness


def test_completeness_on_a_smooth_path():
    # GPT-2 adds learned position embeddings to the input, so the path from a zero baseline is smooth
    _, model, prompt, resp = _f64("gpt2")
    zero = torch.zeros(model.config.hidden_size, dtype=torch.float64)
    gap = _score(model, prompt, resp, "probability") - _score(model, prompt, resp, "probability", zero)
    errors = {}
    for n in (4, 32):
        with warnings.catch_warnings():
            # 32 points: no completeness warning on a smooth path (4 points may warn)
            warnings.simplefilter("error" if n == 32 else "ignore")
            got, delta = _ig(model, prompt, resp, n_steps=n)
        err = got.sum(0) - gap
        # Captum's convergence delta is exactly the completeness error (up to float64 rounding)
        np.testing.assert_allclose(err, delta, rtol=0, atol=1e-12)
        errors[n] = np.abs(err).max()
    scale = np.abs(gap).max()
    assert scale > 1e-4
    # Captum's float32 step weights sum to 1 within ~1e-7: the floor of the completeness error
    assert errors[32] <= 1e-7 * scale
    assert errors[4] > 100 * errors[32]  # the bound is not vacuous: 4 points are visibly worse


def test_completeness_warning_on_rmsnorm_zero_baseline():
    # Llama: RMSNorm and no position embeddings: f changes mostly within a ~1e-2 of the zero
    # baseline, which a few quadrature points cannot resolve (docs/attribution.md)
    _, model, prompt, resp = _f64("llama")
    zero = torch.zeros(model.config.hidden_size, dtype=torch.float64)
    gap = _score(model, prompt, resp, "probability") - _score(model, prompt, resp, "probability", zero)
    with pytest.warns(
        UserWarning, match=r"integrated_gradients: 1 of 1 records miss completeness by up to \d+% of max .*n_steps=8"
    ):
        got, delta = _ig(model, prompt, resp, n_steps=8)
    np.testing.assert_allclose(got.sum(0) - gap, delta, rtol=0, atol=1e-12)
    assert np.abs(delta).max() > 0.05 * np.abs(gap).max()


def test_pad_baseline():
    # baseline=pad: the embedding of the padding token at every prompt position (made non-zero here)
    tok = H.make_tokenizer("bpe")
    model = H.make_tiny_model(tok, "gpt2").double()
    pad = tok.pad_token_id
    with torch.no_grad():
        model.get_input_embeddings().weight[pad] = torch.linspace(-0.3, 0.3, model.config.hidden_size)
    prompt = tok(PROMPT)["input_ids"]
    resp = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    method = make_method("integrated_gradients", {"baseline": "pad", "n_steps": 16})
    (got,) = method.attribute(model, [SequencePair(prompt, resp)], get_target("logit"), pad_token_id=pad)
    row = model.get_input_embeddings().weight[pad].detach()[None]
    ref = reference_ig(model, prompt, resp, "logit", 16, "gausslegendre", row)
    assert np.abs(got - ref).max() <= 1e-10 * np.abs(ref).max()
    gap = _score(model, prompt, resp, "logit") - _score(model, prompt, resp, "logit", row[0])
    np.testing.assert_allclose(got.sum(0) - gap, method.convergence_deltas[0], rtol=0, atol=1e-12)
    assert np.abs(got.sum(0) - gap).max() <= 1e-4 * np.abs(gap).max()  # 16 points, smooth path


# ------------------------------------------------------------------ batching, options, float32


def test_batch_and_rows_per_pass_do_not_change_results():
    tok = H.make_tokenizer("bpe")
    model = H.make_tiny_model(tok, "gpt2")  # float32
    texts = [(PROMPT, RESPONSE), ("Answer the question with one word.", " blue")]
    pairs = [SequencePair(tok(p)["input_ids"], tok(r, add_special_tokens=False)["input_ids"]) for p, r in texts]
    calls = []
    method = make_method("integrated_gradients", {"n_steps": 6, "rows_per_pass": 4})
    batched = method.attribute(model, pairs, get_target("probability"), on_token=lambda j, r: calls.append((j, r)))
    assert calls[-1] == (0, 1) and (len(pairs[0].response_ids) - 1, len(pairs[0].response_ids)) in calls
    for pair, got in zip(pairs, batched):
        (alone,) = make_method("integrated_gradients", {"n_steps": 6, "rows_per_pass": 64}).attribute(
            model, [pair], get_target("probability")
        )
        assert got.dtype == np.float32 and got.shape == (len(pair.prompt_ids), len(pair.response_ids))
        assert np.abs(alone).max() > 1e-4
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"n_steps": "1"}, "n_steps must be an integer >= 2"),
        ({"n_steps": "many"}, "option 'n_steps' of method 'integrated_gradients' must be int"),
        (
            {"rule": "riemann_trapezoid"},
            "rule must be one of gausslegendre, riemann_left, riemann_right, riemann_middle",
        ),
        ({"baseline": "mean"}, "baseline must be one of zero, pad"),
        ({"rows_per_pass": "0"}, "rows_per_pass must be an integer >= 1"),
        ({"steps": "8"}, "its options: baseline, n_steps, rows_per_pass, rule"),
    ],
)
def test_option_errors(options, needle):
    with pytest.raises(TuneshiftError, match=needle.replace("(", r"\(")):
        AttributionOptions(method="integrated_gradients", method_options=options)


def test_options_and_identity():
    o = AttributionOptions(method="integrated_gradients", method_options={"n_steps": "8", "rows_per_pass": "2"})
    assert o.method_options == {"n_steps": 8, "rule": "gausslegendre", "baseline": "zero", "rows_per_pass": 2}
    assert o.method_identity() == {
        "name": "integrated_gradients",
        "target": "probability",
        "options": {"n_steps": 8, "rule": "gausslegendre", "baseline": "zero"},
    }
    assert "Sundararajan" in get_method("integrated_gradients").summary()


# ------------------------------------------------------------------ through the CLI (no CLI edit needed)


def test_cli_integrated_gradients_run(cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    out = tmp_path / "run"
    args = [
        "attribute",
        "--model",
        tiny_llama_dir,
        "--prompts",
        tiny_prompts_file,
        "--out",
        out,
        "--responses",
        "given",
        "--limit",
        "2",
        "--method",
        "integrated_gradients",
        "--target",
        "log_probability",
        "--method-option",
        "n_steps=4",
    ]
    r = cli(*args)
    assert r.code == 0, r.err
    run = load_run(out)
    assert run.method == {
        "name": "integrated_gradients",
        "target": "log_probability",
        "options": {"n_steps": 4, "rule": "gausslegendre", "baseline": "zero"},
    }
    assert json.loads((out / "manifest.json").read_text())["info"]["method_options"]["rows_per_pass"] == 16
    assert len(run.attributions) == 2 and all(
        np.isfinite(a.raw).all() and np.abs(a.raw).max() > 0 for a in run.attributions
    )
    # rows_per_pass does not change results: free to change on resume
    r = cli(*args, "--method-option", "rows_per_pass=3")
    assert r.code == 0 and "0 attributed, 2 already done" in r.err, r.err
    # n_steps does: refused with one line
    r = cli(*args[:-1], "n_steps=5")
    assert r.code == 2 and "Traceback" not in r.err
    lines = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "method.options.n_steps: existing 4, requested 5" in lines[0], r.err
