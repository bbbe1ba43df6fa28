"""Turn the paper's released attributions into two ordinary tuneshift runs.

``tuneshift import-paper --released DIR --dataset FinalDataset.tsv [--ratings AnnotatedDataset.tsv]
--out OUT`` writes ``OUT/llama_7b`` and ``OUT/vicuna_7b``: run directories like those of
``tuneshift attribute`` (manifest + Parquet parts, resumable, refused when made from other
inputs), with one :class:`~tuneshift.methods.attribution.result.Attribution` per prompt, so that
``tuneshift compare OUT/llama_7b OUT/vicuna_7b`` serves the paper's data through the same code
path as our own runs.

Source: Wu et al., NAACL 2024 (arXiv 2310.00492); the released files (the authors'
repository; where to get them and their layout: docs/paper_reproduction.md, and
:func:`tuneshift.data.paper_release.paper_data`) are read with
:mod:`tuneshift.data.paper_release` (restricted unpickler, instruction-mask rules).

What each imported Attribution holds:

* ``raw``: the released matrix as float32 ``[n_prompt_tokens, n_response_tokens]``. It is NOT a
  signed gradient x input like our own runs: the authors stored it clipped, column-scaled and
  discretised to 0..10.
* ``density``, ``instruction_score``: threshold b = 7 applied to the stored values (no
  rescaling), L1/L4 density, score / log2(2 + n) (see :mod:`tuneshift.stats.paper_tables`).
* ``prompt_tokens`` / ``response_tokens``: the released SentencePiece pieces; token ids are
  unknown (no tokenizer) and stored as -1; ``prompt_positions`` are 1..n (BOS at 0).
* ``prompt_roles``: ``instruction`` for masked pieces, else ``prompt``.
* ``rating``: only on the Vicuna run (the human ratings rate Vicuna's responses).
* ``short_response``: fewer than 5 response tokens; ``unlocated_spans``: spans that could not be
  placed (expected none).
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneshift.data.paper_release import RELEASED_MODELS, iter_release, rebuild_text, released_model_dirs
from tuneshift.data.prompts import read_prompts
from tuneshift.errors import InputFileError
from tuneshift.files import MANIFEST, file_sha256
from tuneshift.methods.attribution.importance import ImportanceSettings, released_density_and_score
from tuneshift.methods.attribution.result import Attribution
from tuneshift.storage.attribution import Run, RunWriter

__all__ = ["import_paper", "ImportSummary", "MODEL_INFO", "attribution_from_release", "load_release", "PaperRelease"]

#: description of the two released models (paper README).
MODEL_INFO = {
    "llama_7b": {
        "name": "LLaMA-7B",
        "instruction_tuned": False,
        "description": "pre-trained LLaMA-7B (Touvron et al. 2023)",
    },
    "vicuna_7b": {
        "name": "Vicuna-7B v1.1",
        "instruction_tuned": True,
        "description": "Vicuna-7B v1.1, LLaMA-7B instruction-tuned on ShareGPT conversations",
    },
}
MASK_RULES = "paper-release-v1"  # bump when the rules of tuneshift.data.paper_release change


@dataclass
class ImportSummary:
    """What ``import_paper`` did.

    Attributes:
        out: the output folder (str).
        runs: ``{model: run directory}``.
        n_records: prompts in the dataset (int).
        n_imported: ``{model: records written by this call}``.
        n_done_before: ``{model: records already in the run (resume)}``.
        n_skipped: ``{model: records without a usable released file}`` (reasons in skipped.json).
        skipped: ``{model: {record id: reason}}`` of the records skipped by this call.
        n_short: ``{model: responses shorter than 5 tokens}`` (kept, flagged).
        n_unlocated_spans: ``{model: instruction spans that could not be placed}``.
        n_extra_files: ``{model: released files whose id is not in the dataset}`` (ignored).
        input_problems: problems reading the dataset/ratings (skipped lines).
        seconds: wall time (float).
    """

    out: str
    runs: dict[str, str]
    n_records: int
    n_imported: dict[str, int] = field(default_factory=dict)
    n_done_before: dict[str, int] = field(default_factory=dict)
    n_skipped: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    n_short: dict[str, int] = field(default_factory=dict)
    n_unlocated_spans: dict[str, int] = field(default_factory=dict)
    n_extra_files: dict[str, int] = field(default_factory=dict)
    input_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _folder_digest(d: Path) -> str:
    """SHA-256 over the sorted (file name, file SHA-256) pairs of a folder's ``.pkl`` files."""
    h = hashlib.sha256()
    for p in sorted(d.glob("*.pkl")):
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).hexdigest().encode() + b"\n")
    return h.hexdigest()


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file, a run itself, or a folder holding anything but the two runs."""
    if out.exists() and not out.is_dir():
        raise InputFileError(f"output directory {out} is a file, not a directory")
    if not out.is_dir():
        return
    if (out / MANIFEST).exists():
        raise InputFileError(
            f"output directory {out} is itself a run directory; give a folder for the two runs (llama_7b/, vicuna_7b/)"
        )
    other = sorted(p.name for p in out.iterdir() if p.name not in RELEASED_MODELS)
    if other:
        raise InputFileError(
            f"output directory {out} exists and holds other things ({', '.join(other[:3])}); "
            "give an empty folder or one made by import-paper"
        )


def _identity(key: str, ps, ratings_sha: str | None, files_sha: str | None) -> dict:
    """The run identity of one released model (``rescale: false``: the matrices are already discretised)."""
    options = {
        "importance": {**ImportanceSettings.PAPER.to_dict(), "rescale": False},
        "mask_rules": MASK_RULES,
    }
    if key == "vicuna_7b":
        options["ratings_sha256"] = ratings_sha
    return {
        "model": {
            "spec": f"paper:{key}",
            "kind": "paper-release",
            "name": MODEL_INFO[key]["name"],
            "files_sha256": files_sha,
        },
        "dataset": {"sha256": ps.sha256(), "format": ps.format},
        "options": options,
    }


@dataclass
class PaperRelease:
    """The released attributions of both models, read into two in-memory runs.

    Attributes:
        base, tuned: :class:`~tuneshift.storage.attribution.Run` of LLaMA-7B and Vicuna-7B (not on disk:
            ``path`` is the released model folder); the same records ``import_paper`` writes.
        problems: one line per record that could not be used.
        n_unlocated: instruction spans that could not be placed, both models (int).
    """

    base: Run
    tuned: Run
    problems: list[str] = field(default_factory=list)
    n_unlocated: int = 0


def load_release(
    released: str | os.PathLike, dataset: str | os.PathLike, ratings: str | os.PathLike | None = None, on_record=None
) -> PaperRelease:
    """Read the released attributions of both models as two in-memory runs (nothing written).

    Args:
        released: the folder holding ``ifa_llama_7b/`` and ``ifa_vicuna_7b/``.
        dataset: the paper's FinalDataset.tsv.
        ratings: the paper's AnnotatedDataset.tsv (Vicuna ratings), or None (Table 1 then empty).
        on_record: called with the model key after each record (for progress bars).

    Returns:
        A :class:`PaperRelease`; records whose file is missing or malformed are left out and
        listed in ``problems``.

    Raises:
        InputFileError: missing folders/files, a dataset without records.
        UnsafePickleError: a released file asks for a global outside the allow-list.
    """
    dirs = released_model_dirs(released)
    ps = read_prompts(dataset, ratings=ratings)
    ratings_sha = file_sha256(ratings) if ratings is not None else None
    problems = list(ps.problems)
    runs, n_unl = {}, 0
    for key in RELEASED_MODELS:
        atts, skipped = [], {}
        for rr in iter_release(dirs[key], ps.records):
            if on_record is not None:
                on_record(key)
            if rr.problem is not None:
                problems.append(f"{key}: {rr.record.id}: {rr.problem}")
                skipped[rr.record.id] = rr.problem
                continue
            a = attribution_from_release(rr, key)
            n_unl += len(a.unlocated_spans)
            atts.append(a)
        manifest = {
            "kind": "attribution",
            "status": "complete",
            "identity": _identity(key, ps, ratings_sha, None),
            "info": {"model": MODEL_INFO[key], "source": str(dirs[key])},
        }
        runs[key] = Run(dirs[key], manifest, atts, skipped)
    return PaperRelease(runs["llama_7b"], runs["vicuna_7b"], problems, n_unl)


def attribution_from_release(
    rr,
    model: str,
    threshold: float = ImportanceSettings.DEFAULT_THRESHOLD,
    norm_p: float = ImportanceSettings.DEFAULT_NORM_P,
) -> Attribution:
    """One :class:`Attribution` from a :class:`~tuneshift.data.paper_release.ReleasedRecord`.

    Args:
        rr: a usable ReleasedRecord (``problem`` is None).
        model: ``llama_7b`` or ``vicuna_7b`` (ratings are kept only for ``vicuna_7b``).
        threshold, norm_p: b and p of the stored density and score.

    Returns:
        The Attribution described in the module docstring.
    """
    ra, mk, rec = rr.released, rr.mask, rr.record
    n_in, n_out = ra.shape
    density, score = released_density_and_score(ra.explain, mk.mask, threshold, norm_p)
    if not mk.mask.any():  # none on the 632 released prompts; never silent
        warnings.warn(
            f"{model}: record {rec.id}: no instruction token is left in the prompt; its instruction score is NaN",
            stacklevel=2,
        )
    response = rebuild_text(ra.output_pieces)[0]
    if response.startswith(" "):
        response = response[1:]  # SentencePiece's leading-space marker of the first piece
    return Attribution(
        record_id=rec.id,
        group=rec.group,
        rating=rec.rating if model == "vicuna_7b" else None,
        prompt_token_ids=np.full(n_in, -1, dtype=np.int64),
        prompt_tokens=list(ra.input_pieces),
        prompt_roles=["instruction" if m else "prompt" for m in mk.mask],
        prompt_positions=np.arange(1, n_in + 1, dtype=np.int64),
        response_token_ids=np.full(n_out, -1, dtype=np.int64),
        response_tokens=list(ra.output_pieces),
        response_text=response,
        raw=ra.explain.astype(np.float32),
        instruction_mask=mk.mask.copy(),
        density=density,
        instruction_score=score,
        short_response=n_out < ImportanceSettings.PAPER.min_response_tokens,
        truncated=False,
        ended_with_eos=None,
        n_input_tokens=n_in + 1,
        unlocated_spans=mk.problems,
    )


def import_paper(
    released_dir: str | os.PathLike,
    dataset: str | os.PathLike,
    ratings: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    progress: bool = True,
    batch_size: int = 64,
) -> ImportSummary:
    """Import the released attributions as two runs, ``OUT/llama_7b`` and ``OUT/vicuna_7b``.

    Args:
        released_dir: folder holding ``ifa_llama_7b/`` and ``ifa_vicuna_7b/`` (``<ID>.pkl``).
        dataset: the paper's FinalDataset.tsv (prompts, groups, instruction annotations).
        ratings: the paper's AnnotatedDataset.tsv (Vicuna ratings) or None.
        out: folder for the two runs (created; an earlier import is resumed).
        progress: show a progress bar on stderr.
        batch_size: records per Parquet part (an interruption loses at most one part).

    Returns:
        An :class:`ImportSummary`.

    Raises:
        InputFileError: missing/invalid folders or files, ``out`` is a file or a foreign folder.
        RunMismatchError: ``out`` holds runs imported from other files or with other rules.
        UnsafePickleError: a released file asks for a global outside the allow-list.
    """
    t0 = time.time()
    out = Path(out)
    dirs = released_model_dirs(released_dir)
    _check_out(out)
    ps = read_prompts(dataset, ratings=ratings)
    ids = {r.id for r in ps.records}
    summary = ImportSummary(
        out=str(out),
        runs={k: str(out / k) for k in RELEASED_MODELS},
        n_records=len(ps.records),
        input_problems=list(ps.problems),
    )
    ratings_sha = file_sha256(ratings) if ratings is not None else None
    writers = {}
    paper = ImportanceSettings.PAPER  # the stored density and score (b, p)
    for key in RELEASED_MODELS:
        identity = _identity(key, ps, ratings_sha, _folder_digest(dirs[key]))
        info = {
            "model": {**MODEL_INFO[key], "source": "released attributions of Wu et al. (NAACL 2024)"},
            "dataset_path": str(ps.path),
            "ratings_path": str(ratings) if (ratings is not None and key == "vicuna_7b") else None,
            "source": {
                "released_dir": str(Path(released_dir).resolve()),
                "model_dir": str(dirs[key].resolve()),
                "paper": "Wu et al., From Language Modeling to Instruction Following (NAACL 2024, arXiv 2310.00492)",
                "code_and_data": "github.com/JacksonWuxs/Interpret_Instruction_Tuning_LLMs (GNU GPL v3)",
                "raw_is": "released matrix: clipped at 0, scaled per response token, discretised to 0..10 (not signed gradient x input)",
                "density_is": f"values <= {paper.threshold:g} zeroed (no rescaling), L1/L{paper.norm_p:g} over response "
                "tokens, / max over the prompt",
            },
            "imported_by": "tuneshift import-paper",
            "batch_size": batch_size,
        }
        writers[key] = RunWriter(out / key, identity, info)

    from tuneshift.progress import progress_bar

    for key in RELEASED_MODELS:
        w = writers[key]
        done = w.done_ids()
        todo = [r for r in ps.records if r.id not in done]
        summary.n_done_before[key] = len(ps.records) - len(todo)
        summary.n_extra_files[key] = sum(1 for p in dirs[key].glob("*.pkl") if p.stem not in ids)
        with progress_bar(
            f"import {key}",
            total=len(ps.records),
            unit="records",
            completed=summary.n_done_before[key],
            enabled=progress,
        ) as bar:
            n_imp = n_skip = n_short = n_unl = 0
            batch: list[Attribution] = []
            for rr in iter_release(dirs[key], todo):
                if rr.problem is not None:
                    w.skip(rr.record.id, rr.problem)
                    summary.skipped.setdefault(key, {})[rr.record.id] = rr.problem
                    n_skip += 1
                else:
                    a = attribution_from_release(rr, key)
                    n_short += int(a.short_response)
                    n_unl += len(a.unlocated_spans)
                    batch.append(a)
                    if len(batch) >= batch_size:
                        n_imp += w.add(batch)
                        batch = []
                bar.advance(1)
            n_imp += w.add(batch)
            summary.n_imported[key] = n_imp
            summary.n_skipped[key] = n_skip
            summary.n_short[key] = n_short
            summary.n_unlocated_spans[key] = n_unl
            w.finish(
                n_records=len(ps.records),
                n_attributed_total=summary.n_done_before[key] + n_imp,
                n_skipped=n_skip,
                n_short=n_short,
                n_unlocated_spans=n_unl,
                n_extra_files=summary.n_extra_files[key],
                n_input_problems=len(ps.problems),
                seconds_last_invocation=round(time.time() - t0, 1),
            )
    summary.seconds = time.time() - t0
    return summary
