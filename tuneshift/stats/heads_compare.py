"""Compare two heads runs: the paper's Table 3 (instruction verbs vs general verbs), and more.

Wu et al. (NAACL 2024), Table 3. For each head of a model, its *knowledge* is the set of word
pairs (lower-cased, order-free) that occur in more than one of its dimensions (pairs whose two
words are equal after lower-casing are ignored). For a word ``w`` and each head, count the
pairs of the head's knowledge that contain ``w``, in the base and in the tuned model. Among the
heads of a layer group where the count *changed*, the fraction where it *increased* after tuning
is the word's score (a word with no changed head has no score and is left out). The scores are
averaged over the words of a list -- the paper's instruction verbs
(:data:`INSTRUCTION_VERBS`) and general verbs (bundled ``general_verbs.txt``, see
``scripts/make_general_verbs.py``) --, per layer group (quarters of depth by default) and over
all layers; the two lists are compared with Welch's two-sided t-test over the per-word scores
(mean, population std and number of words reported).

Beyond the paper: the Jaccard overlap of each head's knowledge between the two models (per
layer: mean over heads; heads whose knowledge is empty in both are left out), and the words
whose total count over all heads rises and falls most.

With a null (``compare_heads(..., null=DIR)``, ``tuneshift compare-heads --null``): a heads run
of the base plus a random update of the tuned model's per-tensor Frobenius norm
(:mod:`tuneshift.models.random_update`), compared with the base in the same way: per layer the
mean Jaccard base-vs-tuned beside base-vs-null, and Table 3 for base -> null beside base ->
tuned. The tuned model changes a layer's head knowledge more than the null when its Jaccard
is lower.

Heads are matched by (layer, head) index, so both runs must come from models with the same
number of layers and heads (e.g. a pre-trained model and its fine-tuned counterpart); only
layers finished in both runs are compared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tuneshift.errors import InputFileError, OptionError, RunMismatchError
from tuneshift.results import Result
from tuneshift.stats.sample_rule import DEFAULT_MIN_N, check_min_n, two_sample_reason
from tuneshift.stats.tests import SampleStats, welch_t

__all__ = [
    "INSTRUCTION_VERBS",
    "general_verbs",
    "layer_groups",
    "word_fractions",
    "compare_heads",
    "compare_knowledge",
    "HeadsComparison",
    "HeadsRunInfo",
    "Table3Row",
    "LayerJaccard",
    "WordChange",
    "WordScores",
    "HeadChange",
    "verb_head_changes",
    "HeadsNull",
]

INSTRUCTION_VERBS: tuple[str, ...] = (
    "act",
    "analyze",
    "clarify",
    "classify",
    "compose",
    "correct",
    "create",
    "demonstrate",
    "describe",
    "design",
    "detect",
    "develop",
    "edit",
    "estimate",
    "evaluate",
    "explain",
    "find",
    "follow",
    "format",
    "generate",
    "give",
    "have",
    "help",
    "identify",
    "interpret",
    "make",
    "output",
    "predict",
    "recommend",
    "repeat",
    "retrieve",
    "revise",
    "say",
    "solve",
    "summarize",
    "tell",
    "translate",
    "write",
)
"""The instruction verbs of Wu et al. (2024), Table 3."""


def general_verbs() -> list[str]:
    """The bundled general-verb list (3,000 frequent WordNet verbs; see its header)."""
    text = resources.files("tuneshift.data").joinpath("bundled/general_verbs.txt").read_text(encoding="utf-8")
    return [w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#")]


def layer_groups(n_layers: int, n_groups: int = 4) -> list[tuple[str, list[int]]]:
    """Consecutive groups of layers by depth (``np.array_split``), labelled ``"L0-4"``.

    Returns:
        ``[(label, [layer, ...]), ...]``: at most ``n_groups`` non-empty groups, shallow to deep.

    Raises:
        OptionError: ``n_groups`` < 1.
    """
    if n_groups < 1:
        raise OptionError("n_groups", f"must be >= 1, got {n_groups}")
    out = []
    for g in np.array_split(np.arange(n_layers), min(n_groups, max(1, n_layers))):
        if g.size:
            out.append((f"L{g[0]}-{g[-1]}" if g.size > 1 else f"L{g[0]}", [int(x) for x in g]))
    return out


def _counts(knowledge: dict[tuple[int, int], set[frozenset]]) -> dict[tuple[int, int], Counter]:
    out = {}
    for key, pairs in knowledge.items():
        c: Counter = Counter()
        for p in pairs:
            c.update(p)
        out[key] = c
    return out


def word_fractions(
    base_counts: dict, tuned_counts: dict, heads: Sequence[tuple[int, int]], words: Sequence[str]
) -> dict[str, float]:
    """Per word: among ``heads`` whose count of the word changed, the fraction where it increased.

    Returns:
        ``{word: fraction}``; NaN for a word whose count changed in no head.
    """
    words = [w.lower() for w in words]
    b = np.array([[base_counts.get(h, Counter()).get(w, 0) for h in heads] for w in words], dtype=np.int64).reshape(
        len(words), len(heads)
    )
    t = np.array([[tuned_counts.get(h, Counter()).get(w, 0) for h in heads] for w in words], dtype=np.int64).reshape(
        len(words), len(heads)
    )
    changed = (b != t).sum(axis=1)
    inc = (t > b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(changed > 0, inc / np.maximum(changed, 1), np.nan)
    return dict(zip(words, frac.tolist()))


@dataclass
class HeadsRunInfo:
    """Where one side of a heads comparison comes from.

    Attributes:
        model: model spec of the run. vectors: word vectors used (e.g. ``glove-6b-50d``).
        path: the heads directory ("" when the knowledge was given directly).
        vocabulary: the run manifest's vocabulary identity (path, sha256, size; may be empty).
        top_k: K of the run (None when unknown).
        rms_factor: the run's ``rms_factor`` (``none``, the paper's, for runs made before the option).
    """

    model: str
    vectors: str = "?"
    path: str = ""
    vocabulary: dict[str, Any] = field(default_factory=dict)
    top_k: int | None = None
    rms_factor: str = "none"


@dataclass
class Table3Row:
    """One row of Table 3: the per-word scores of the two verb lists in one layer group.

    Attributes:
        group: layer-group label (``"L0-4"``) or ``"all"``. layers: the layers compared in it.
        n_heads: heads compared in the group.
        instruction, general: :class:`SampleStats` of the per-word scores (fractions in
            [0, 1]; std with ddof = 0; ``n`` = words with a score).
        t, p: Welch's two-sided t-test of instruction vs general scores (NaN when undefined, and
            below the sample rule: fewer than ``min_n`` verbs with a score in either list, or a
            list whose scores are all identical; :mod:`tuneshift.stats.sample_rule`).
        reason: why t and p are NaN (``"too few (3)"``, ``"no variance"``), None when computed.
    """

    group: str
    layers: list[int]
    n_heads: int
    instruction: SampleStats
    general: SampleStats
    t: float
    p: float
    reason: str | None = None


@dataclass
class LayerJaccard:
    """Knowledge overlap of one layer: Jaccard index per head (NaN: empty in both models).

    Attributes:
        layer: layer index. mean: mean over heads with a defined index (NaN if none).
        n_heads: heads with a defined index. per_head: ``[n_heads of the layer]`` in head order.
    """

    layer: int
    mean: float
    n_heads: int
    per_head: list[float]


@dataclass
class WordChange:
    """A word's total pair count over all compared heads, in both models (``change = tuned - base``)."""

    word: str
    base: int
    tuned: int
    change: int


@dataclass
class WordScores:
    """Per-word scores of one layer group: ``instruction = {verb: fraction}`` (verbs with a score)."""

    instruction: dict[str, float] = field(default_factory=dict)


@dataclass
class HeadsNull:
    """The random-update null beside a heads comparison: the base compared with base + R.

    Attributes:
        info: :class:`HeadsRunInfo` of the null run (``model``: ``random-update(...)``).
        seed: the random update's seed.
        table3: :class:`Table3Row` per layer group and ``"all"``, base -> null.
        jaccard: :class:`LayerJaccard` per layer, base vs null.
    """

    info: HeadsRunInfo
    seed: int | None
    table3: list[Table3Row]
    jaccard: list[LayerJaccard]


@dataclass
class HeadsComparison(Result):
    """Result of :func:`compare_heads` (``to_dict``/``from_dict``/``save``/``load``; its Markdown:
    :func:`tuneshift.reports.heads_report.heads_markdown`).

    Attributes:
        base, tuned: :class:`HeadsRunInfo` of the two runs.
        layers: layers compared (finished in both runs).
        table3: :class:`Table3Row` per layer group, then ``"all"``.
        jaccard: :class:`LayerJaccard` per compared layer.
        rising, falling: :class:`WordChange` of the words whose total count rises / falls most.
        word_scores: ``{group: WordScores}``.
        notes: warnings about what makes the runs less comparable.
        null: the random-update null (:class:`HeadsNull`), or None (comparisons saved before
            the null existed load with None).
        min_n: the sample rule's minimum for Table 3's t-tests (saved; older comparisons: 10).
    """

    FILE = "heads_comparison.json"

    base: HeadsRunInfo
    tuned: HeadsRunInfo
    layers: list[int]
    table3: list[Table3Row]
    jaccard: list[LayerJaccard]
    rising: list[WordChange]
    falling: list[WordChange]
    word_scores: dict[str, WordScores] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    null: HeadsNull | None = None
    min_n: int = DEFAULT_MIN_N

    def null_rows(self) -> list[tuple[int, float, float]]:
        """``(layer, Jaccard base-vs-tuned, Jaccard base-vs-null)`` for the layers in both (empty without a null)."""
        if self.null is None:
            return []
        nj = {j.layer: j.mean for j in self.null.jaccard}
        return [(j.layer, j.mean, nj[j.layer]) for j in self.jaccard if j.layer in nj]

    def null_summary(self) -> str:
        """One line: in how many layers the tuned model changes head knowledge more than the null
        (lower mean Jaccard with the base); "" without a null."""
        rows = [(l, t, n) for l, t, n in self.null_rows() if np.isfinite(t) and np.isfinite(n)]
        if self.null is None:
            return ""
        k = sum(t < n for _l, t, n in rows)
        return (
            f"tuned changes head knowledge more than a random update of the same size (lower mean Jaccard with "
            f"the base) in {k} of {len(rows)} layers"
        )


@dataclass
class HeadChange:
    """How one head's pairs containing a word changed after tuning (:func:`verb_head_changes`).

    Attributes:
        layer, head: the head. base, tuned: its pairs containing the word in each model.
        change: ``tuned - base``. gained, lost: partner words of the pairs only in the tuned /
            only in the base model (sorted; the pairs with the word itself).
    """

    layer: int
    head: int
    base: int
    tuned: int
    change: int
    gained: list[str]
    lost: list[str]


def verb_head_changes(
    base_k: dict, tuned_k: dict, words: Sequence[str], layers: Sequence[int] | None = None
) -> dict[str, list[HeadChange]]:
    """Per word, the heads whose pairs containing the word differ between the two models.

    This is the per-head detail behind a word's Table 3 score: the score is the fraction of
    these heads (in a layer group) with ``change > 0``; heads whose pairs with the word changed
    partners but not in number (``change == 0``) are listed too.

    Args:
        base_k, tuned_k: knowledge maps ``{(layer, head): {frozenset({word, word}), ...}}``.
        words: the words (lower-cased before matching), e.g. :data:`INSTRUCTION_VERBS`.
        layers: only heads of these layers (default: every head in both maps).

    Returns:
        ``{word: [HeadChange]}`` for every word (an empty list when no head changed), each list
        sorted by ``|change|`` descending, then layer and head.
    """
    heads = sorted(set(base_k) & set(tuned_k))
    if layers is not None:
        keep = set(layers)
        heads = [h for h in heads if h[0] in keep]
    out: dict[str, list[HeadChange]] = {}
    for w in (w.lower() for w in words):
        rows = []
        for h in heads:
            a = {p for p in base_k[h] if w in p}
            b = {p for p in tuned_k[h] if w in p}
            if a != b:
                partner = lambda ps: sorted(next(iter(p - {w})) for p in ps)  # noqa: E731, B023  (called within this iteration only)
                rows.append(HeadChange(h[0], h[1], len(a), len(b), len(b) - len(a), partner(b - a), partner(a - b)))
        out[w] = sorted(rows, key=lambda r: (-abs(r.change), r.layer, r.head))
    return out


def compare_knowledge(
    base_k: dict,
    tuned_k: dict,
    n_layers: int,
    n_groups: int = 4,
    instruction: Sequence[str] | None = None,
    general: Sequence[str] | None = None,
    top_n: int = 20,
    base_info: HeadsRunInfo | None = None,
    tuned_info: HeadsRunInfo | None = None,
    min_n: int = DEFAULT_MIN_N,
) -> HeadsComparison:
    """Table 3, Jaccard and rising/falling words from two knowledge maps ``{(layer, head): set of pairs}``.

    Only (layer, head) keys present in both maps are compared.

    Args:
        base_k, tuned_k: ``{(layer, head): {frozenset({word, word}), ...}}`` (see the module docstring).
        n_layers: layers of the models (for the layer groups). n_groups: groups by depth.
        instruction, general: word lists (default: :data:`INSTRUCTION_VERBS`, :func:`general_verbs`).
        top_n: rising / falling words kept. base_info, tuned_info: where the runs come from
            (default: models named ``base`` and ``tuned``).
        min_n: the sample rule for Table 3's t-test (default 10 verbs with a score in each list).

    Raises:
        InputFileError: no head in common.
    """
    min_n = check_min_n(min_n)
    instruction = [w.lower() for w in (INSTRUCTION_VERBS if instruction is None else instruction)]
    general = [w.lower() for w in (general_verbs() if general is None else general)]
    heads = sorted(set(base_k) & set(tuned_k))
    if not heads:
        raise InputFileError("the two heads runs have no (layer, head) in common; run both on the same layers")
    layers = sorted({l for l, _ in heads})
    bc, tc = _counts(base_k), _counts(tuned_k)
    table3, scores = [], {}
    groups = [(label, [l for l in ls if l in layers]) for label, ls in layer_groups(n_layers, n_groups)]
    groups = [(label, ls) for label, ls in groups if ls] + [("all", layers)]
    for label, ls in groups:
        hs = [h for h in heads if h[0] in ls]
        fi = word_fractions(bc, tc, hs, instruction)
        fg = word_fractions(bc, tc, hs, general)
        a, b = np.array(list(fi.values())), np.array(list(fg.values()))
        why = two_sample_reason(a, b, min_n)
        t, p = (float("nan"), float("nan")) if why else welch_t(a, b, alternative="two-sided")
        table3.append(Table3Row(label, ls, len(hs), SampleStats.of(a), SampleStats.of(b), t, p, why))
        scores[label] = WordScores({w: v for w, v in fi.items() if np.isfinite(v)})
    jac = []
    for l in layers:
        vals = []
        for h in [h for h in heads if h[0] == l]:
            A, B = base_k[h], tuned_k[h]
            u = len(A | B)
            vals.append(len(A & B) / u if u else float("nan"))
        v = np.array(vals, dtype=float)
        fin = v[np.isfinite(v)]
        jac.append(LayerJaccard(l, float(fin.mean()) if fin.size else float("nan"), int(fin.size), v.tolist()))
    tb, tt = Counter(), Counter()
    for h in heads:
        tb.update(bc[h])
        tt.update(tc[h])
    words = sorted(set(tb) | set(tt))
    diff = [WordChange(w, tb.get(w, 0), tt.get(w, 0), tt.get(w, 0) - tb.get(w, 0)) for w in words]
    rising = [d for d in sorted(diff, key=lambda x: (-x.change, x.word))[:top_n] if d.change > 0]
    falling = [d for d in sorted(diff, key=lambda x: (x.change, x.word))[:top_n] if d.change < 0]
    return HeadsComparison(
        base_info or HeadsRunInfo("base"),
        tuned_info or HeadsRunInfo("tuned"),
        layers,
        table3,
        jac,
        rising,
        falling,
        scores,
        min_n=min_n,
    )


def compare_heads(
    base_dir,
    tuned_dir,
    n_groups: int = 4,
    instruction: Sequence[str] | None = None,
    general: Sequence[str] | None = None,
    top_n: int = 20,
    null=None,
    min_n: int = DEFAULT_MIN_N,
) -> HeadsComparison:
    """Compare two ``tuneshift heads`` directories (see the module docstring).

    Args:
        base_dir, tuned_dir: the two heads runs. n_groups, instruction, general, top_n: as
            :func:`compare_knowledge`.
        null: optional heads run of the base + a random update like the tuned model
            (``tuneshift heads --random-update-like``), made with the base run's settings; adds
            :attr:`HeadsComparison.null`.
        min_n: the sample rule for Table 3's t-tests (:func:`compare_knowledge`).

    Raises:
        InputFileError: unreadable runs, the same directory twice, different numbers of layers/heads,
            no layer in common.
        RunMismatchError: runs made with different ``rms_factor`` settings; a ``null`` that is not
            a random update of the base's model like the tuned one, or made with other settings.
    """
    from tuneshift.storage.heads import load_heads

    b, t = load_heads(base_dir), load_heads(tuned_dir)
    if Path(b.path).resolve() == Path(t.path).resolve():
        raise InputFileError(
            f"{b.path} is given as both heads runs; compare the base model's run with the tuned model's"
        )
    if (b.n_layers, b.n_heads) != (t.n_layers, t.n_heads):
        raise InputFileError(
            f"heads are matched by (layer, head): {b.path} has {b.n_layers} layers x {b.n_heads} heads but "
            f"{t.path} has {t.n_layers} x {t.n_heads}; compare a model with its own fine-tuned counterpart"
        )
    if not b.layers or not t.layers:
        raise InputFileError(f"{b.path if not b.layers else t.path} has no finished layer yet")
    bi, ti = _run_info(b), _run_info(t)
    if bi.rms_factor != ti.rms_factor:  # another reading of the weights, as compare-concepts' final_norm
        raise RunMismatchError(
            f"heads runs {b.path} and {t.path} were made with different --rms-factor ({bi.rms_factor} vs "
            f"{ti.rms_factor}): their word pairs are not comparable; run both with the same setting"
        )
    z = None
    if null is not None:
        from tuneshift.stats.null_runs import check_null_run

        z = load_heads(null)
        check_null_run(b, t, z, "heads", legacy={"rms_factor": "none"})
    bk = b.knowledge()
    c = compare_knowledge(bk, t.knowledge(), b.n_layers, n_groups, instruction, general, top_n, bi, ti, min_n)
    if z is not None:
        from tuneshift.stats.null_runs import null_seed

        zk = {h: v for h, v in z.knowledge().items() if h[0] in set(c.layers)}
        if not zk:
            raise InputFileError(f"the null run {z.path} has none of the compared layers finished")
        cz = compare_knowledge(bk, zk, b.n_layers, n_groups, instruction, general, 0, bi, _run_info(z), min_n)
        c.null = HeadsNull(_run_info(z), null_seed(z), cz.table3, cz.jaccard)
        if len(cz.layers) < len(c.layers):
            c.notes.append(f"the null run has only {len(cz.layers)} of the {len(c.layers)} compared layers")
    if b.vectors != t.vectors:
        c.notes.append(f"the runs used different word vectors ({b.vectors} vs {t.vectors}); counts are not comparable")
    if bi.vocabulary.get("sha256") != ti.vocabulary.get("sha256"):
        c.notes.append("the runs used different vocabularies; a word missing from one counts 0 there")
    if bi.top_k != ti.top_k:
        c.notes.append(f"the runs used different top_k ({bi.top_k} vs {ti.top_k})")
    if set(b.layers) != set(t.layers):
        c.notes.append(f"only the {len(c.layers)} layers finished in both runs are compared")
    return c


def _run_info(r) -> HeadsRunInfo:
    identity = r.manifest.get("identity", {})
    return HeadsRunInfo(
        r.model_name,
        r.vectors,
        str(r.path),
        identity.get("vocabulary", {}),
        identity.get("options", {}).get("top_k"),
        str(identity.get("rms_factor", "none")),
    )
