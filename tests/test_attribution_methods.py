"""The registries of attribution methods and targets, and their use by attribute()/attribute_batch.

The numbers of each method are checked in its own test file (gradient x input:
test_attribution_gradient.py); here: discovery, lookup errors, options, and that the
orchestration passes the method, the target and the options through.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import tuneshift
from tuneshift.data import PromptRecord
from tuneshift.errors import TuneshiftError
from tuneshift.methods.attribution import (
    AttributionMethod,
    AttributionOptions,
    SequencePair,
    attribute_batch,
    gradient_x_input,
    method_names,
    naive_gradient_x_input,
    register_method,
    target_names,
)
from tuneshift.methods.attribution import methods as registry
from tuneshift.methods.attribution.methods import get_method, parse_option_strings

pytestmark = pytest.mark.numeric

PROMPT = "Rewrite the sentence politely.\nInput: send the report now"
INSTRUCTION = "Rewrite the sentence politely."
RESPONSE = " Could you please send the report?"
F32_ATOL = 1e-6  # as in test_attribution_gradient.py


def test_builtin_registries():
    assert {"gradient_x_input", "gradient_x_input_reference"} <= set(method_names())
    assert target_names() == ["log_probability", "logit", "probability"]
    assert get_method("gradient_x_input").name == "gradient_x_input"
    assert "Wu et al." in get_method("gradient_x_input").summary()


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(TuneshiftError) as e:
        get_method("saliency")
    msg = str(e.value)
    assert "unknown attribution method 'saliency'" in msg and "\n" not in msg
    for name in method_names():
        assert name in msg
    with pytest.raises(TuneshiftError, match="registered methods: .*gradient_x_input"):
        AttributionOptions(method="saliency")
    with pytest.raises(TuneshiftError, match="registered targets: log_probability, logit, probability"):
        AttributionOptions(target="entropy")


def test_options_without_identity_options():
    # gradient_x_input has execution options only (path, segment_length, tangents_per_pass):
    # recorded with their defaults, none of them in the run identity
    o = AttributionOptions()
    assert (o.method, o.target, o.method_options) == (
        "gradient_x_input",
        "probability",
        {"path": "auto", "segment_length": 0, "tangents_per_pass": 16},
    )
    assert o.method_identity() == {"name": "gradient_x_input", "target": "probability", "options": {}}
    forced = AttributionOptions(method_options={"path": "forward", "tangents_per_pass": "4"})
    assert forced.method_options["tangents_per_pass"] == 4
    assert forced.method_identity() == o.method_identity()
    with pytest.raises(
        TuneshiftError,
        match="method 'gradient_x_input' has no option 'n_steps' \\(its options: path, segment_length, tangents_per_pass\\)",
    ):
        AttributionOptions(method_options={"n_steps": "4"})
    with pytest.raises(TuneshiftError, match="path must be one of auto, batch, segmented, forward, not 'fast'"):
        AttributionOptions(method_options={"path": "fast"})
    with pytest.raises(TuneshiftError, match="tangents_per_pass must be an integer >= 1"):
        AttributionOptions(method_options={"tangents_per_pass": "0"})


def test_parse_option_strings():
    assert parse_option_strings(["n_steps=32", " rule = riemann_middle "]) == {
        "n_steps": "32",
        "rule": "riemann_middle",
    }
    assert parse_option_strings(["x="]) == {"x": ""}
    assert parse_option_strings([]) == {}
    for bad in (["n_steps"], ["=3"]):
        with pytest.raises(TuneshiftError, match="NAME=VALUE"):
            parse_option_strings(bad)
    with pytest.raises(TuneshiftError, match="given twice"):
        parse_option_strings(["a=1", "a=2"])


# ------------------------------------------------------------------ a method added by one register call


@pytest.fixture
def scaled_method():
    """Registers 'test_scaled_gxi' (gradient x input times a factor) for one test, then removes it."""

    @register_method("test_scaled_gxi")
    class ScaledGxI(AttributionMethod):
        """Gradient x input times a factor (test only)."""

        @dataclasses.dataclass(frozen=True)
        class Options:
            factor: float = 2.0
            negate: bool = False
            chunk: int = dataclasses.field(default=8, metadata={"identity": False})

            def __post_init__(self):
                if self.factor == 0:
                    raise TuneshiftError("factor must not be 0")

        def attribute(self, model, pairs, target, pad_token_id=0, on_token=None):
            sign = -1.0 if self.options.negate else 1.0
            return [
                sign * self.options.factor * m
                for m in gradient_x_input(model, pairs, pad_token_id=pad_token_id, target=target)
            ]

    yield ScaledGxI
    registry.METHODS.unregister("test_scaled_gxi")


def test_registered_method_options_and_identity(scaled_method):
    assert "test_scaled_gxi" in method_names()
    o = AttributionOptions(method="test_scaled_gxi", method_options={"factor": "3.5", "negate": "yes"})
    assert o.method_options == {"factor": 3.5, "negate": True, "chunk": 8}
    # speed/memory-only options are not part of the identity
    assert o.method_identity() == {
        "name": "test_scaled_gxi",
        "target": "probability",
        "options": {"factor": 3.5, "negate": True},
    }
    with pytest.raises(TuneshiftError, match="option 'chunk' of method 'test_scaled_gxi' must be int, not 'many'"):
        AttributionOptions(method="test_scaled_gxi", method_options={"chunk": "many"})
    with pytest.raises(TuneshiftError, match="must be bool"):
        AttributionOptions(method="test_scaled_gxi", method_options={"negate": "perhaps"})
    with pytest.raises(TuneshiftError, match="factor must not be 0"):
        AttributionOptions(method="test_scaled_gxi", method_options={"factor": "0"})
    with pytest.raises(TuneshiftError, match="its options: chunk, factor, negate"):
        AttributionOptions(method="test_scaled_gxi", method_options={"steps": "1"})
    with pytest.raises(ValueError, match="already registered"):
        register_method("gradient_x_input")(scaled_method)


def test_registered_method_runs_through_attribute(scaled_method, tiny_llama):
    # the scaled method wraps the batch path: compare with the same path (float32 rounding differs between paths)
    base = tuneshift.attribute(
        tiny_llama,
        PROMPT,
        response=RESPONSE,
        instruction=[INSTRUCTION],
        target="logit",
        method_options={"path": "batch"},
    )
    scaled = tuneshift.attribute(
        tiny_llama,
        PROMPT,
        response=RESPONSE,
        instruction=[INSTRUCTION],
        target="logit",
        method="test_scaled_gxi",
        method_options={"factor": 3.0},
    )
    np.testing.assert_allclose(scaled.raw, 3.0 * base.raw, rtol=1e-6, atol=0)
    # the density is invariant to a positive scale of every column
    np.testing.assert_allclose(scaled.density, base.density, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ the built-in methods through the API


@pytest.mark.parametrize("target", ["probability", "log_probability", "logit"])
def test_attribute_passes_the_target(target, tiny_llama):
    tok = tiny_llama.tokenizer
    res = tuneshift.attribute(tiny_llama, PROMPT, response=RESPONSE, instruction=[INSTRUCTION], target=target)
    ids = tok(PROMPT)["input_ids"]
    resp = tok(RESPONSE, add_special_tokens=False)["input_ids"]
    full = naive_gradient_x_input(tiny_llama.model, SequencePair(ids, resp), target=target)
    np.testing.assert_allclose(
        res.raw, full[res.prompt_positions], rtol=0, atol=F32_ATOL * max(1.0, np.abs(full).max())
    )


def test_reference_method_equals_fast_method(tiny_llama):
    recs = [
        PromptRecord(id="a", prompt=PROMPT, response=RESPONSE, instruction=[INSTRUCTION]),
        PromptRecord(id="b", prompt="Answer the question with one word.", response=" blue sky"),
    ]
    fast = attribute_batch(tiny_llama, recs, AttributionOptions(responses="given", target="log_probability"))
    calls = []
    ref = attribute_batch(
        tiny_llama,
        recs,
        AttributionOptions(responses="given", target="log_probability", method="gradient_x_input_reference"),
        on_token=lambda j, r: calls.append((j, r)),
    )
    r_max = max(a.shape[1] for a in fast)
    assert calls == [(j, r_max) for j in range(r_max)]
    for f, r in zip(fast, ref):
        assert f.shape == r.shape and np.abs(f.raw).max() > 1e-4
        np.testing.assert_allclose(f.raw, r.raw, rtol=0, atol=1e-5)
