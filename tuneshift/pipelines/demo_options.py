"""Settings of ``tuneshift demo`` (:class:`DemoOptions`), shared by its driver and its workers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tuneshift.errors import OptionError
from tuneshift.models.pair import DEMO_PAIR, ModelPair
from tuneshift.stats.sample_rule import check_min_n

__all__ = ["DemoOptions", "METHODS", "attribution_options", "options_to_dict", "options_from_dict", "TEMPLATE_FILE"]

METHODS = ("attribution", "heads", "concepts")
"""The paper's three methods, in the order the demo runs them."""

TEMPLATE_FILE = "prompt_template.jinja"
"""``OUT/prompt_template.jinja``: the tuned model's chat template, the prompt form of both models."""


@dataclass
class DemoOptions:
    """Settings of ``tuneshift demo``.

    Attributes:
        pair: the two models (default: the packaged Gemma 3 270M and its shipped instruct adapter).
        max_new_tokens: generation limit per own response (tokens); 32 keeps the demo within its
            15-minute budget on a 2-core CPU (the paper: 300).
        batch_size: prompts per forward/backward batch.
        limit: only the first N bundled prompts (None: all 28).
        protocols: response protocols to run, each compared separately (``own``, ``gold``).
        device: where the models run (:func:`~tuneshift.models.loading.load_model`'s ``device``).
        dtype: the weights dtype of both models (``float32`` default; in each run's identity).
        methods: which of :data:`METHODS` to run (default all three).
        workers: processes that run the steps side by side (None: 2 where 2 cores are usable,
            else 1). Each loads its own models.
        threads: torch threads per worker (None: the usable cores divided by the workers, at
            least 1; on a 2-core machine 1 each). Single-threaded workers do not spin-wait, so a
            busy core costs them only its fair share (docs/scale.md, "Threads").
        null_seed: seed of the random update of the null model (heads and concepts).
        annotator: annotator of the concept sample (``local:SPEC``; default the packaged SmolLM2).
        annotate_components: principal components annotated per layer (rank order; 0: none).
        annotate_runs: annotation repetitions per component (the paper: 5).
        annotate_batch_size: requests per batched generation of the local annotator (None: its default).
        min_n: the minimum sample size for a CI, a test or a colour (:mod:`tuneshift.stats`).
        ablation: run the causal check (``tuneshift ablate``, all variants and spans) on both gold
            attribution runs and compare them (``OUT/gold/ablation_comparison.json``; a findings row).
    """

    pair: ModelPair = field(default_factory=lambda: DEMO_PAIR)
    max_new_tokens: int = 32
    batch_size: int = 4
    limit: int | None = None
    protocols: tuple[str, ...] = ("own", "gold")
    device: str = "cpu"
    dtype: str = "float32"
    methods: tuple[str, ...] = METHODS
    workers: int | None = None
    threads: int | None = None
    null_seed: int = 0
    annotator: str = "local:smollm2-135m-instruct"
    annotate_components: int = 1
    annotate_runs: int = 1
    annotate_batch_size: int | None = None
    min_n: int = 10
    ablation: bool = True

    def __post_init__(self):
        self.protocols = tuple(self.protocols)
        self.methods = tuple(self.methods)
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise OptionError("methods", f": unknown {', '.join(bad)} (choose from {', '.join(METHODS)})")
        for name in ("workers", "threads", "annotate_batch_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise OptionError(name, f"must be >= 1, got {v}")
        if self.annotate_components < 0 or self.annotate_runs < 1:
            raise OptionError("annotate_components", "must be >= 0 (and annotate_runs >= 1)")
        check_min_n(self.min_n)


def options_to_dict(options: DemoOptions) -> dict:
    """JSON-ready dict of ``options`` (what a worker process receives)."""
    d = dataclasses.asdict(options)
    d["pair"] = dataclasses.asdict(options.pair)
    return d


def options_from_dict(d: dict) -> DemoOptions:
    """Inverse of :func:`options_to_dict`."""
    d = dict(d)
    d["pair"] = ModelPair(**d["pair"])
    return DemoOptions(**d)


def attribution_options(out: Path, options: DemoOptions, protocol: str):
    """The :class:`~tuneshift.methods.attribution.api.AttributionOptions` of the demo's ``protocol``
    runs: both models get the prompt form in ``OUT/prompt_template.jinja`` (raw without it)."""
    from tuneshift.methods.attribution.api import AttributionOptions

    template_file = Path(out) / TEMPLATE_FILE
    return AttributionOptions(
        responses=protocol,
        max_new_tokens=options.max_new_tokens,
        batch_size=options.batch_size,
        chat_template=str(template_file) if template_file.is_file() else "none",
    )
