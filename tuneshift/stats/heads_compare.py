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

Heads are matched by (layer, head) index, so both runs must come from models with the same
number of layers and heads (e.g. a pre-trained model and its fine-tuned counterpart); only
layers finished in both runs are compared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from tuneshift.errors import InputFileError
from tuneshift.stats.tests import SampleStats, welch_t

__all__ = ["INSTRUCTION_VERBS", "general_verbs", "layer_groups", "word_fractions", "compare_heads", "compare_knowledge",
           "HeadsComparison"]

INSTRUCTION_VERBS: tuple[str, ...] = (
    "act", "analyze", "clarify", "classify", "compose", "correct", "create", "demonstrate", "describe", "design",
    "detect", "develop", "edit", "estimate", "evaluate", "explain", "find", "follow", "format", "generate", "give",
    "have", "help", "identify", "interpret", "make", "output", "predict", "recommend", "repeat", "retrieve", "revise",
    "say", "solve", "summarize", "tell", "translate", "write",
)
"""The instruction verbs of Wu et al. (2024), Table 3."""


def general_verbs() -> list[str]:
    """The bundled general-verb list (3,000 frequent WordNet verbs; see its header)."""
    text = resources.files("tuneshift.data").joinpath("bundled/general_verbs.txt").read_text(encoding="utf-8")
    return [w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#")]


def layer_groups(n_layers: int, n_groups: int = 4) -> list[tuple[str, list[int]]]:
    """Consecutive groups of layers by depth (``np.array_split``), labelled ``"L0-4"``."""
    if n_groups < 1:
        raise InputFileError(f"the number of layer groups must be >= 1, got {n_groups}")
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


def word_fractions(base_counts: dict, tuned_counts: dict, heads: Sequence[tuple[int, int]], words: Sequence[str]) -> dict[str, float]:
    """Per word: among ``heads`` whose count of the word changed, the fraction where it increased.

    Returns:
        ``{word: fraction}``; NaN for a word whose count changed in no head.
    """
    words = [w.lower() for w in words]
    b = np.array([[base_counts.get(h, Counter()).get(w, 0) for h in heads] for w in words], dtype=np.int64).reshape(len(words), len(heads))
    t = np.array([[tuned_counts.get(h, Counter()).get(w, 0) for h in heads] for w in words], dtype=np.int64).reshape(len(words), len(heads))
    changed = (b != t).sum(axis=1)
    inc = (t > b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(changed > 0, inc / np.maximum(changed, 1), np.nan)
    return dict(zip(words, frac.tolist()))


@dataclass
class HeadsComparison:
    """Result of :func:`compare_heads` (JSON via :meth:`to_dict`, Markdown via :meth:`to_markdown`)."""

    base: dict
    tuned: dict
    layers: list[int]
    table3: list[dict]
    jaccard: list[dict]
    rising: list[dict]
    falling: list[dict]
    word_scores: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"base": self.base, "tuned": self.tuned, "layers": self.layers, "table3": self.table3,
                "jaccard": self.jaccard, "rising": self.rising, "falling": self.falling,
                "word_scores": self.word_scores, "notes": self.notes}

    def to_markdown(self) -> str:
        def f(x, n=3):
            return "nan" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{n}f}"

        lines = [
            f"# Heads comparison: {self.base['model']} -> {self.tuned['model']}", "",
            f"Vectors: base {self.base['vectors']}, tuned {self.tuned['vectors']}. Layers compared: {len(self.layers)}.", "",
            "## Table 3: fraction of changed heads where the word's knowledge count increased", "",
            "| layers | instruction verbs mean (std, n) | general verbs mean (std, n) | Welch t | p (two-sided) |",
            "|---|---|---|---|---|",
        ]
        for r in self.table3:
            i, g = r["instruction"], r["general"]
            lines.append(f"| {r['group']} | {f(i['mean'])} ({f(i['std'])}, {i['n']}) | {f(g['mean'])} ({f(g['std'])}, {g['n']}) "
                         f"| {f(r['t'], 2)} | {f(r['p'], 4)} |")
        lines += ["", "## Knowledge overlap (Jaccard, mean over heads)", "", "| layer | mean Jaccard | heads |", "|---|---|---|"]
        for r in self.jaccard:
            lines.append(f"| {r['layer']} | {f(r['mean'])} | {r['n_heads']} |")
        lines += ["", "## Words whose total count rises most", "", "| word | base | tuned | change |", "|---|---|---|---|"]
        lines += [f"| {r['word']} | {r['base']} | {r['tuned']} | {r['change']:+d} |" for r in self.rising]
        lines += ["", "## Words whose total count falls most", "", "| word | base | tuned | change |", "|---|---|---|---|"]
        lines += [f"| {r['word']} | {r['base']} | {r['tuned']} | {r['change']:+d} |" for r in self.falling]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def save(self, out_dir) -> dict[str, Path]:
        from tuneshift.files import atomic_write_bytes, atomic_write_json

        d = Path(out_dir)
        if d.exists() and not d.is_dir():
            raise InputFileError(f"output directory {d} is a file, not a directory")
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(d / "heads_comparison.json", _jsonable(self.to_dict()))
        atomic_write_bytes(d / "heads_comparison.md", self.to_markdown().encode())
        return {"json": d / "heads_comparison.json", "markdown": d / "heads_comparison.md"}


def _jsonable(obj):
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def compare_knowledge(base_k: dict, tuned_k: dict, n_layers: int, n_groups: int = 4,
                      instruction: Sequence[str] | None = None, general: Sequence[str] | None = None,
                      top_n: int = 20, base_info: dict | None = None, tuned_info: dict | None = None) -> HeadsComparison:
    """Table 3, Jaccard and rising/falling words from two knowledge maps ``{(layer, head): set of pairs}``.

    Only (layer, head) keys present in both maps are compared.

    Raises:
        InputFileError: no head in common.
    """
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
        t, p = welch_t(a, b, alternative="two-sided")
        table3.append({"group": label, "layers": ls, "n_heads": len(hs), "instruction": SampleStats.of(a).to_dict(),
                       "general": SampleStats.of(b).to_dict(), "t": t, "p": p})
        scores[label] = {"instruction": {w: v for w, v in fi.items() if np.isfinite(v)}}
    jac = []
    for l in layers:
        vals = []
        for h in [h for h in heads if h[0] == l]:
            A, B = base_k[h], tuned_k[h]
            u = len(A | B)
            vals.append(len(A & B) / u if u else float("nan"))
        v = np.array(vals, dtype=float)
        fin = v[np.isfinite(v)]
        jac.append({"layer": l, "mean": float(fin.mean()) if fin.size else float("nan"), "n_heads": int(fin.size),
                    "per_head": [None if not np.isfinite(x) else float(x) for x in v]})
    tb, tt = Counter(), Counter()
    for h in heads:
        tb.update(bc[h])
        tt.update(tc[h])
    words = sorted(set(tb) | set(tt))
    diff = [(w, tb.get(w, 0), tt.get(w, 0), tt.get(w, 0) - tb.get(w, 0)) for w in words]
    rising = [{"word": w, "base": b, "tuned": t, "change": d} for w, b, t, d in sorted(diff, key=lambda x: (-x[3], x[0]))[:top_n] if d > 0]
    falling = [{"word": w, "base": b, "tuned": t, "change": d} for w, b, t, d in sorted(diff, key=lambda x: (x[3], x[0]))[:top_n] if d < 0]
    return HeadsComparison(base_info or {"model": "base", "vectors": "?"}, tuned_info or {"model": "tuned", "vectors": "?"},
                           layers, table3, jac, rising, falling, scores)


def compare_heads(base_dir, tuned_dir, n_groups: int = 4, instruction: Sequence[str] | None = None,
                  general: Sequence[str] | None = None, top_n: int = 20) -> HeadsComparison:
    """Compare two ``tuneshift heads`` directories (see the module docstring).

    Raises:
        InputFileError: unreadable runs, different numbers of layers/heads, no layer in common.
    """
    from tuneshift.methods.heads.store import load_heads

    b, t = load_heads(base_dir), load_heads(tuned_dir)
    if (b.n_layers, b.n_heads) != (t.n_layers, t.n_heads):
        raise InputFileError(
            f"heads are matched by (layer, head): {b.path} has {b.n_layers} layers x {b.n_heads} heads but "
            f"{t.path} has {t.n_layers} x {t.n_heads}; compare a model with its own fine-tuned counterpart"
        )
    if not b.layers or not t.layers:
        raise InputFileError(f"{b.path if not b.layers else t.path} has no finished layer yet")
    info = lambda r: {"model": r.model_name, "vectors": r.vectors, "path": str(r.path),  # noqa: E731
                      "vocabulary": r.manifest.get("identity", {}).get("vocabulary", {}),
                      "top_k": r.manifest.get("identity", {}).get("options", {}).get("top_k")}
    c = compare_knowledge(b.knowledge(), t.knowledge(), b.n_layers, n_groups, instruction, general, top_n, info(b), info(t))
    if b.vectors != t.vectors:
        c.notes.append(f"the runs used different word vectors ({b.vectors} vs {t.vectors}); counts are not comparable")
    if info(b)["vocabulary"].get("sha256") != info(t)["vocabulary"].get("sha256"):
        c.notes.append("the runs used different vocabularies; a word missing from one counts 0 there")
    if info(b)["top_k"] != info(t)["top_k"]:
        c.notes.append(f"the runs used different top_k ({info(b)['top_k']} vs {info(t)['top_k']})")
    if set(b.layers) != set(t.layers):
        c.notes.append(f"only the {len(c.layers)} layers finished in both runs are compared")
    return c

