"""The three exact paths of gradient x input (methods/attribution/paths.py) agree, and the cost model.

``segmented`` (forward in segments, key/value cache in the graph, backward over ancestors) and
``forward`` (Jacobian-vector products, one per prompt position) against ``batch`` (one forward,
one backward per response position; itself checked against finite differences and the naive
algorithm in test_attribution_gradient.py), in float64 on every supported family, on a padded
batch of two pairs with different prompt and response lengths. The tiny models run a float64
eager attention and float64 norms (test_attribution_gradient.py explains why), so the paths
compute the same function and agree to ~1e-17; the bound is 1e-10 absolute on entries of ~1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_attribution_gradient import _F64_ATTN, INSTRUCTION, PROMPT, RESPONSE, _f64_model, _register_f64_attention

import tuneshift
from tuneshift.methods.attribution import SequencePair, gradient_x_input
from tuneshift.methods.attribution.forward_mode import forward_gradient_x_input
from tuneshift.methods.attribution.methods.gradient_x_input import gradient_x_input_by_path
from tuneshift.methods.attribution.paths import CPU_COST_MODEL, CostModel, choose_path, segment_bounds, segment_length
from tuneshift.methods.attribution.segmented import segmented_gradient_x_input
from tuneshift.models.anatomy import SUPPORTED_FAMILIES

pytestmark = pytest.mark.numeric

CASES = [(f, "sp" if f.startswith("gemma") and f != "gemma2" else "bpe") for f in SUPPORTED_FAMILIES]


def _pairs(tok):
    p1 = tok(PROMPT)["input_ids"]
    r1 = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    # a shorter prompt with a longer response: padding, and rows whose positions sit in different segments
    return [SequencePair(p1, r1), SequencePair(p1[:-3], (r1 * 3)[:13])]


@pytest.mark.parametrize("family,kind", CASES, ids=[f for f, _ in CASES])
def test_paths_equal_the_batch_path_in_float64(family, kind):
    _register_f64_attention()
    tok, model = _f64_model(family, kind, _attn_implementation=_F64_ATTN)
    pairs = _pairs(tok)
    ref = gradient_x_input(model, pairs, pad_token_id=tok.pad_token_id)
    scale = max(np.abs(r).max() for r in ref)
    assert scale > 1e-4
    runs = {
        "segmented L=1": segmented_gradient_x_input(model, pairs, tok.pad_token_id, segment_length=1),
        "segmented L=3": segmented_gradient_x_input(model, pairs, tok.pad_token_id, segment_length=3),
        "segmented L=64": segmented_gradient_x_input(model, pairs, tok.pad_token_id, segment_length=64),
        "forward k=1": forward_gradient_x_input(model, pairs, tok.pad_token_id, tangents_per_pass=1),
        "forward k=5": forward_gradient_x_input(model, pairs, tok.pad_token_id, tangents_per_pass=5),
    }
    for name, got in runs.items():
        for g, r in zip(got, ref):
            assert g.dtype == np.float64 and g.shape == r.shape, name
            assert np.abs(g - r).max() <= 1e-10, f"{family} {name}: {np.abs(g - r).max():.1e}"


@pytest.mark.parametrize("family,kind", [("llama", "bpe"), ("gemma3", "sp"), ("gpt2", "bpe")])
def test_forward_path_with_sdpa_switches_to_eager_and_back(family, kind):
    # float32, the model's own (sdpa) attention: forward mode runs eager, then sdpa is restored
    import helpers_tiny as H

    tok = H.make_tokenizer(kind)
    model = H.make_tiny_model(tok, family)
    assert model.config._attn_implementation == "sdpa"
    pairs = _pairs(tok)
    ref = gradient_x_input(model, pairs, pad_token_id=tok.pad_token_id)
    got = forward_gradient_x_input(model, pairs, tok.pad_token_id)
    assert model.config._attn_implementation == "sdpa"
    for g, r in zip(got, ref):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-6)


def test_paths_through_the_api_give_equal_attributions(tiny_llama):
    runs = {
        p: tuneshift.attribute(
            tiny_llama, PROMPT, response=RESPONSE, instruction=[INSTRUCTION], method_options={"path": p}
        )
        for p in ("auto", "batch", "segmented", "forward")
    }
    for p, a in runs.items():
        np.testing.assert_allclose(a.raw, runs["batch"].raw, rtol=0, atol=1e-6, err_msg=p)
        np.testing.assert_allclose(a.density, runs["batch"].density, rtol=0, atol=1e-5, err_msg=p)


def test_forward_progress_reports_every_position_once_in_order():
    import helpers_tiny as H

    tok = H.make_tokenizer("bpe")
    model = H.make_tiny_model(tok, "llama")
    pairs = _pairs(tok)
    seen = []
    forward_gradient_x_input(
        model, pairs, tok.pad_token_id, on_token=lambda j, r: seen.append((j, r)), tangents_per_pass=3
    )
    r_max = max(len(p.response_ids) for p in pairs)
    assert seen == [(j, r_max) for j in range(r_max)]


def test_bad_path_arguments():
    with pytest.raises(ValueError, match="segment_length must be >= 1"):
        segment_bounds([3], 5, 0)
    with pytest.raises(ValueError, match="tangents_per_pass must be >= 1"):
        forward_gradient_x_input(None, [SequencePair([1], [2])], tangents_per_pass=0)
    with pytest.raises(ValueError, match="path must be one of"):
        gradient_x_input_by_path(None, [SequencePair([1], [2])], path="fast")


# ------------------------------------------------------------------ the cost model, by hand


def test_segment_bounds_by_hand():
    assert segment_bounds([3, 5], 9, 2) == [(0, 3), (3, 5), (5, 7), (7, 9)]
    assert segment_bounds([4], 4, 8) == [(0, 4)]


def test_cost_model_by_hand():
    m = CostModel(weight_read=2.0, tangent=1.0)
    # P = 3, R = 2, T = 5: two backward passes over 5 positions, each with one fixed cost 2
    assert m.batch_cost([3], [2]) == 2 * (2 + 5)
    # L = 1, segments (0,3) (3,4) (4,5): token 0 is predicted at position 2 (segment 0: 1 x 2 + 3),
    # token 1 at position 3 (segments 0-1: 2 x 2 + 4); token 2 does not exist
    assert m.segmented_cost([3], [2], 1) == (2 + 3) + (4 + 4)
    # k = 2: ceil(3 / 2) = 2 calls of (2 Q + T) = 9, plus c P T = 15 tangent positions
    assert m.forward_cost([3], [2], 2) == 2 * 9 + 15


def test_choose_path_follows_the_cost_model():
    # a short prompt and a long response: forward mode (few products instead of many backwards)
    assert choose_path([40], [300], 16)[0] == "forward"
    # a long prompt and a short response: a reverse path
    path, L = choose_path([400], [4], 16)
    assert path in ("batch", "segmented")
    assert 1 <= segment_length([40], [300]) <= 300
    for P, R in [(40, 300), (100, 50), (10, 3)]:
        path, L = choose_path([P], [R], 16)
        costs = {
            "batch": CPU_COST_MODEL.batch_cost([P], [R]),
            "segmented": CPU_COST_MODEL.segmented_cost([P], [R], segment_length([P], [R])),
            "forward": CPU_COST_MODEL.forward_cost([P], [R], 16),
        }
        assert costs[path] == min(costs.values())


def test_auto_with_a_vectorised_backward_takes_the_batch_path(monkeypatch):
    import tuneshift.methods.attribution.forward_mode as forward_mode
    import tuneshift.methods.attribution.gradient as gradient

    called = []
    monkeypatch.setattr(gradient, "gradient_x_input", lambda *a, **k: called.append(a[-1]) or ["batch"])
    monkeypatch.setattr(forward_mode, "forward_gradient_x_input", lambda *a, **k: ["forward"])
    out = gradient_x_input_by_path(None, [SequencePair([1], list(range(300)))], positions_per_backward=4)
    assert out == ["batch"] and called == [4]
    assert gradient_x_input_by_path(None, [SequencePair([1], list(range(300)))]) == ["forward"]


def test_no_graph_left_behind():
    # forward mode keeps no autograd graph: the results are plain arrays and no parameter has a gradient
    import helpers_tiny as H

    tok = H.make_tokenizer("bpe")
    model = H.make_tiny_model(tok, "llama")
    forward_gradient_x_input(model, _pairs(tok), tok.pad_token_id)
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    assert torch.is_grad_enabled()


def test_auto_keeps_a_segment_length_the_user_set():
    # with no fixed cost per segment and costly tangents the segmented path wins; a segment
    # length set by the user is the one costed and returned
    m = CostModel(weight_read=0.0, tangent=100.0)
    assert choose_path([20], [40], 16, model=m) == ("segmented", 1)
    assert choose_path([20], [40], 16, model=m, fixed_segment_length=7) == ("segmented", 7)


@pytest.mark.slow  # a subprocess: the warning comes only on the first jvp of a process
def test_forward_mode_passes_on_no_torch_internal_deprecation_warning():
    # torch's first jvp scripts its decompositions (torch.jit.script, deprecated): not shown to users
    import subprocess
    import sys

    code = (
        "import sys, warnings; sys.path.insert(0, 'tests'); warnings.simplefilter('always')\n"
        "import helpers_tiny as H\n"
        "from tuneshift.methods.attribution.forward_mode import forward_gradient_x_input\n"
        "from tuneshift.methods.attribution.gradient import SequencePair\n"
        "tok = H.make_tokenizer('bpe'); m = H.make_tiny_model(tok, 'llama')\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    forward_gradient_x_input(m, [SequencePair([5, 6, 7], [8, 9])])\n"
        "print(sum('torch.jit.script' in str(x.message) for x in w))\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0", out.stdout + out.stderr


def test_head_gradients_in_chunks_equal_one_pass():
    """g_j through the LM head, 3 rows per backward (chunks of 3, 3, 1), equals all 7 rows in one."""
    from tuneshift.methods.attribution.forward_mode import head_gradients
    from tuneshift.methods.attribution.targets import get_target

    _, model = _f64_model("llama", "bpe")
    torch.manual_seed(0)
    h = torch.randn(7, model.config.hidden_size, dtype=torch.float64)
    y = torch.randint(0, model.config.vocab_size, (7,))
    target = get_target("probability")
    whole = head_gradients(model, h, y, target, rows_per_pass=100)
    chunked = head_gradients(model, h, y, target, rows_per_pass=3)
    assert chunked.shape == (7, model.config.hidden_size)
    assert whole.abs().max() > 0
    assert torch.allclose(chunked, whole, atol=1e-14, rtol=0)
    # row j's gradient depends on row j only: perturbing row 0 leaves g_6 unchanged
    h2 = h.clone()
    h2[0] += 1.0
    assert torch.equal(head_gradients(model, h2, y, target, rows_per_pass=3)[6], chunked[6])
