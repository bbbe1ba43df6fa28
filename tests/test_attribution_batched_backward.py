"""The vectorised backward (``positions_per_backward`` > 1, ``is_grads_batched``) equals the
loop over response positions; 16-bit models keep float32 sums; --device/--dtype checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tuneshift
from tuneshift.errors import OptionError
from tuneshift.methods.attribution.api import AttributionOptions
from tuneshift.methods.attribution.gradient import SequencePair, gradient_x_input
from tuneshift.models.devices import resolve_placement

F32_ATOL = 1e-6  # as in test_attribution_gradient.py: |raw| <= 2e-3 here, float32 rounding


def _pairs():
    return [
        SequencePair([1, 5, 9, 4, 7], [3, 8, 2, 6, 11, 4, 9]),
        SequencePair([2, 6], [10, 3, 5]),
        SequencePair([4, 4, 8, 12], [7]),
    ]


@pytest.mark.numeric
@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
@pytest.mark.parametrize("k", [2, 3, 8])
@pytest.mark.parametrize("target", ["probability", "log_probability"])
def test_vectorised_backward_equals_the_loop(tiny_model_dir_factory, family, k, target):
    kind = {"llama": "bpe", "gemma3": "sp", "gpt2": "bpe"}[family]
    m = tuneshift.load_model(str(tiny_model_dir_factory(family=family, tokenizer_kind=kind)), progress=False).model
    loop = gradient_x_input(m, _pairs(), target=target)
    seen = []
    vec = gradient_x_input(m, _pairs(), target=target, positions_per_backward=k, on_token=lambda j, r: seen.append(j))
    assert seen == list(range(7))
    for a, b in zip(loop, vec):
        assert a.shape == b.shape and a.dtype == b.dtype == np.float32
        assert np.abs(a).max() > 0
        assert np.abs(a - b).max() <= F32_ATOL, np.abs(a - b).max()


@pytest.mark.numeric
def test_vectorised_backward_float64_is_exact_to_rounding(tiny_model_dir_factory):
    m = tuneshift.load_model(str(tiny_model_dir_factory()), progress=False, dtype="float64").model
    loop = gradient_x_input(m, _pairs())
    vec = gradient_x_input(m, _pairs(), positions_per_backward=4)
    for a, b in zip(loop, vec):
        assert a.dtype == np.float64
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-15)


def test_bfloat16_model_gives_float32_attributions_close_to_float32(tiny_model_dir_factory):
    d = str(tiny_model_dir_factory())
    ref = gradient_x_input(tuneshift.load_model(d, progress=False).model, _pairs())
    half = gradient_x_input(tuneshift.load_model(d, progress=False, dtype="bfloat16").model, _pairs())
    for a, b in zip(ref, half):
        assert b.dtype == np.float32
        # bfloat16 keeps 8 bits of mantissa: errors of a few % of the largest entry, not more
        assert np.abs(a - b).max() <= 0.1 * np.abs(a).max()


def test_positions_per_backward_is_checked():
    with pytest.raises(ValueError, match="positions_per_backward"):
        gradient_x_input(None, _pairs(), positions_per_backward=0)
    with pytest.raises(OptionError, match="positions_per_backward"):
        AttributionOptions(positions_per_backward=0)
    with pytest.raises(OptionError, match="batched backward"):
        AttributionOptions(positions_per_backward=4, method="gradient_x_input_reference")
    assert AttributionOptions(positions_per_backward=4).positions_per_backward == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors of a machine without a GPU")
def test_device_and_dtype_are_validated_up_front(cli, tmp_path):
    assert resolve_placement("auto").device == "cpu" and resolve_placement("cpu", "bfloat16").dtype == "bfloat16"
    for device, dtype, match in (
        ("cuda", "float32", "sees no CUDA device"),
        ("cuda:3", "float32", "sees no CUDA device"),
        ("tpu", "float32", "must be cpu, cuda, cuda:N or auto"),
        ("", "float32", "must be cpu, cuda, cuda:N or auto, not ''"),
        ("cpu", "float16", "float16 is for GPUs"),
        ("cpu", "int8", "must be one of"),
    ):
        with pytest.raises(OptionError, match=match):
            resolve_placement(device, dtype)
    for cmd in (
        ["attribute", "--model", "nope", "--prompts", "nope.jsonl", "--out", tmp_path / "r"],
        ["heads", "--model", "nope", "--out", tmp_path / "h"],
        ["concepts", "--model", "nope", "--out", tmp_path / "c"],
    ):
        r = cli(*cmd, "--device", "cuda")
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
        assert r.err.startswith("error: --device cuda: torch ") and "sees no CUDA device" in r.err
        r = cli(*cmd, "--dtype", "float16")
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "--dtype float16 is for GPUs" in r.err
    assert not (tmp_path / "r").exists() and not (tmp_path / "h").exists()


def test_non_finite_attributions_skip_the_record(tiny_llama, monkeypatch):
    """A 16-bit overflow (NaN/inf in the matrix) skips the record with a reason, never stores NaN scores."""
    import tuneshift.methods.attribution.methods.gradient_x_input as gxi
    from tuneshift.data.prompts import PromptRecord
    from tuneshift.methods.attribution.api import SkippedRecord, attribute_batch

    real = gxi.gradient_x_input_by_path

    def overflowing(*a, **kw):
        mats = real(*a, **kw)
        mats[0][0, 0] = np.nan
        return mats

    monkeypatch.setattr(gxi, "gradient_x_input_by_path", overflowing)
    recs = [
        PromptRecord(id="a", prompt="Rewrite the sentence politely.", response="Could you please send it?"),
        PromptRecord(id="b", prompt="Summarise the paragraph.", response="The team sent the report."),
    ]
    out = attribute_batch(tiny_llama, recs, AttributionOptions(responses="given"))
    assert isinstance(out[0], SkippedRecord) and "non-finite attributions" in out[0].reason
    assert not isinstance(out[1], SkippedRecord) and np.isfinite(out[1].raw).all()


def test_placement_with_gpus_and_device_map_plumbing(tiny_llama_dir, monkeypatch):
    """Without GPUs here, the GPU branches are checked with a faked device count: cuda:N bounds,
    auto -> device_map="auto" passed to from_pretrained (and no .to())."""
    import importlib.util

    import transformers

    import tuneshift.models.devices as dev

    monkeypatch.setattr(dev, "_cuda_count", lambda: 2)
    assert dev.resolve_placement("cuda:1", "float16") == dev.Placement("cuda:1", "float16", None, "cuda:1")
    with pytest.raises(OptionError, match=r"only 2 CUDA device\(s\) are visible"):
        dev.resolve_placement("cuda:2")
    real_find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "accelerate" else real_find(name, *a)
    )
    assert dev.resolve_placement("auto", "bfloat16").device_map == "auto"
    seen = {}
    real = transformers.AutoModelForCausalLM.from_pretrained

    def capture(*a, **kw):
        seen.update(kw)
        kw.pop("device_map", None)  # load on the CPU: there is no GPU to place layers on
        return real(*a, **kw)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", capture)
    lm = tuneshift.load_model(str(tiny_llama_dir), device="auto", progress=False)
    assert seen["device_map"] == "auto" and lm.device == "cuda:0"
    assert str(next(lm.model.parameters()).device) == "cpu"  # no .to() after a device_map load


def test_positions_per_backward_is_not_part_of_the_run_identity(tiny_llama, tiny_prompts_file, tmp_path):
    from tuneshift.data.prompts import read_prompts
    from tuneshift.pipelines.attribute_run import run_attribution
    from tuneshift.storage.attribution import load_run

    prompts = read_prompts(tiny_prompts_file, limit=2)
    run_attribution(tiny_llama, prompts, tmp_path / "r", AttributionOptions(responses="given"), progress=False)
    more = read_prompts(tiny_prompts_file, limit=4)
    s = run_attribution(
        tiny_llama,
        more,
        tmp_path / "r",
        AttributionOptions(responses="given", positions_per_backward=4),
        progress=False,
    )  # resumed: an execution setting may change
    assert (s.n_done_before, s.n_attributed) == (2, 2) and len(load_run(tmp_path / "r").attributions) == 4
