"""Options shared by several commands, defined once: flag spelling, help and choices.

Each option has one spelling everywhere (``--threshold/-b``, ``--norm-p/-p``, ``--levels/-L``
are the paper's b, p and L in every command that takes them). Every choice is case-insensitive
(``--dtype BFloat16``, ``--device CPU``, ``--responses GOLD``): enum options are declared with
``case_sensitive=False`` and free-text choices are lower-cased by :func:`lower`. Every command
that loads a model takes ``--threads``, ``--device`` and ``--dtype`` (Threads, DeviceOpt,
DtypeOpt; tests/test_cli_flags.py walks the commands). Defaults are not written here:
each command takes them from the library's option dataclass or function signature through
:func:`default_of`, so the CLI and the Python API cannot drift apart.
"""

import dataclasses
import inspect
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

__all__ = [
    "default_of",
    "Model",
    "Adapter",
    "Threads",
    "OutDir",
    "ReportDir",
    "Json",
    "BatchSize",
    "MaxNewTokens",
    "Limit",
    "Threshold",
    "NormP",
    "Levels",
    "MinResponseTokens",
    "Vocab",
    "Layers",
    "IncludeShort",
    "Responses",
    "Join",
    "FinalNorm",
    "Sign",
    "SignOpt",
    "DtypeOpt",
    "DeviceOpt",
    "ChatTemplateOpt",
    "JoinOpt",
    "ResponsesOpt",
    "ResponsesFrom",
    "MethodOptions",
    "lower",
    "choice",
    "template_choice",
]


def lower(value):
    """Typer callback: a free-text choice (``--dtype``, ``--device``) compared case-insensitively."""
    return value.strip().lower() if isinstance(value, str) else value


def choice(*decls: str, **kw):
    """``typer.Option`` of an enum choice, case-insensitive (``--sign ABS`` is ``--sign abs``)."""
    return typer.Option(*decls, case_sensitive=False, **kw)


def default_of(obj: Any, name: str) -> Any:
    """The default of field/parameter ``name`` of a dataclass or a function.

    Raises:
        KeyError: ``obj`` has no such field/parameter with a default (a programming error).
    """
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                    return f.default_factory()  # type: ignore[misc]
        raise KeyError(f"{obj.__name__} has no field {name!r} with a default")
    p = inspect.signature(obj).parameters.get(name)
    if p is None or p.default is inspect.Parameter.empty:
        raise KeyError(f"{getattr(obj, '__name__', obj)} has no parameter {name!r} with a default")
    return p.default


class Responses(str, Enum):
    """The response protocol (generate and given are the older names of own and gold)."""

    own = "own"
    gold = "gold"
    cross = "cross"
    generate = "generate"
    given = "given"


class Sign(str, Enum):
    """What happens to negative attributions (tuneshift.methods.attribution.importance.SIGN_POLICIES)."""

    clip = "clip"
    abs = "abs"
    signed = "signed"


class Join(str, Enum):
    """How a forced response follows a raw prompt."""

    none = "none"
    space = "space"


class FinalNorm(str, Enum):
    """concepts: fold the final norm's gain into the LM head (``fold``) or not (``none``);
    the library's ``FINAL_NORM_CHOICES``."""

    fold = "fold"
    none = "none"


THREADS_HELP = (
    "torch CPU threads (default: one per core not busy with other work, from the load average; "
    "torch's spin-waiting threads collapse on busy cores)."
)

Model = Annotated[
    str, typer.Option("--model", help="Packaged alias, .gguf path, model directory, tune output folder or hub id.")
]
Adapter = Annotated[
    Optional[Path], typer.Option("--adapter", help="PEFT/LoRA adapter folder applied on top of --model.")
]
Threads = Annotated[Optional[int], typer.Option("--threads", help=THREADS_HELP)]
RandomUpdateLike = Annotated[
    Optional[str],
    typer.Option(
        "--random-update-like",
        help="Run on the null instead: --model plus a random update with this tuned model's "
        "Frobenius norm per tensor (rank r for LoRA-adapted weights); --adapter is then this tuned model's adapter "
        "(docs/heads.md, docs/concepts.md). In the run identity.",
    ),
]
NullSeed = Annotated[
    Optional[int], typer.Option("--null-seed", help="Seed of the random update (with --random-update-like; default 0).")
]
NullDir = Annotated[
    Optional[Path],
    typer.Option(
        "--null",
        help="A run of the base + a random update (made with --random-update-like, same settings as BASE): shown beside the tuned shift.",
    ),
]
OutDir = Annotated[
    Path,
    typer.Option("--out", help="Output directory (created; an existing one made with the same settings is resumed)."),
]
ReportDir = Annotated[
    Optional[Path], typer.Option("--out", help="Also save the result here (JSON and its Markdown twin).")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Prompts (or examples) per batch.")]
MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", help="Generation limit per response, in tokens.")]
Limit = Annotated[Optional[int], typer.Option("--limit", help="Only the first N records.")]
Threshold = Annotated[
    float, typer.Option("--threshold", "-b", help="Sparsification threshold b: discretised values <= b are zeroed.")
]
NormP = Annotated[float, typer.Option("--norm-p", "-p", help="p of the L1/Lp importance density (> 1).")]
Levels = Annotated[int, typer.Option("--levels", "-L", help="Discretisation levels L.")]
SIGN_HELP = (
    "Negative attributions: clip (at 0, the paper's), abs (absolute value) or signed (kept: "
    "magnitude threshold, net density, scores may be negative; docs/attribution.md)."
)
SignOpt = Annotated[Sign, choice("--sign", help=SIGN_HELP)]
MinResponseTokens = Annotated[
    int, typer.Option("--min-response-tokens", help="Shorter responses are flagged and excluded from statistics.")
]
IncludeShort = Annotated[bool, typer.Option("--include-short", help="Keep responses shorter than the minimum length.")]
Vocab = Annotated[
    Optional[str],
    typer.Option(
        "--vocab",
        help="Word file (one per line, or word<TAB>frequency) or wordfreq:N; default the 20,000 most frequent English words.",
    ),
]
Layers = Annotated[Optional[str], typer.Option("--layers", help="Layers, e.g. 0,5,10-12 (default all).")]
ResponsesOpt = Annotated[
    Responses,
    choice(
        "--responses",
        metavar="PROTOCOL",
        help="own: the model's greedy answer (the paper's); gold: force-decode the record's response; cross: force-decode the answers of the run given by --responses-from.",
    ),
]


def template_choice(value):
    """Typer callback: ``auto`` / ``none`` in any case (``NONE``), unless a file of that name exists."""
    from pathlib import Path as _P

    if isinstance(value, str) and value.lower() in ("auto", "none") and not _P(value).exists():
        return value.lower()
    return value


ChatTemplateOpt = Annotated[
    str,
    typer.Option(
        "--chat-template",
        metavar="auto|none|FILE",
        callback=template_choice,
        help="auto: the model's chat template if it has one; none: raw prompt; FILE: this Jinja template for every model (one prompt form for a pair).",
    ),
]
JoinOpt = Annotated[
    Join,
    choice(
        "--join",
        help="How a forced response follows a raw prompt: none (appended as tokenized alone) or space (the paper's prompt + ' ' + response).",
    ),
]
ResponsesFrom = Annotated[
    Optional[Path], typer.Option("--responses-from", help="With --responses cross: the run whose answers are forced.")
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        metavar="DTYPE",
        callback=lower,
        help="Weights dtype: float32 (exact; default), bfloat16 or float16 (half the memory; float16 on GPUs only) or float64. Attribution keeps the target and the gradient x input sums in float32 (docs/scale.md).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="DEVICE",
        callback=lower,
        help="cpu (default), cuda, cuda:N, or auto (every visible GPU via device_map=auto, for a model larger than one GPU; the CPU without a GPU). Checked before anything loads.",
    ),
]
MethodOptions = Annotated[
    List[str],
    typer.Option(
        "--method-option",
        metavar="NAME=VALUE",
        help="NAME=VALUE option of the method (repeatable). gradient_x_input (the default): "
        "path=auto, batch, segmented or forward (auto, the default: the cheapest by a measured cost model; every "
        "path gives the same result to float rounding), segment_length=L (segmented path; 0: chosen), "
        "tangents_per_pass=K (forward path, default 16). integrated_gradients: n_steps=N, baseline, rule, "
        "rows_per_pass. An unknown NAME is refused with the method's list. docs/attribution.md.",
    ),
]


MIN_N_HELP = (
    "Minimum sample for a CI, a test or a colour: pairs (compare), verbs per list (compare-heads), runs per "
    'model (compare-concepts\' Table 5). Below it: no CI, no p, "too few (n)" (>= 2).'
)
MinN = Annotated[int, typer.Option("--min-n", help=MIN_N_HELP)]
