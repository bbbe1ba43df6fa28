"""The report's sections: a registry of view functions, each rendered by its template partial.

A section is two things: a *view function* registered here with :func:`register_section`, which
turns one input of its type (:mod:`.inputs`) into a plain dict, and a *partial*,
``templates/sections/<name>.html.j2``, which renders that dict as ``s`` (the page template
includes the partial of each section by name). Adding a section is those two files::

    @register_section("controls", input_type=AttributionInput)
    def controls_view(item: AttributionInput, ctx: SectionContext) -> dict:
        return {"title": item.title, "rows": [...]}

:func:`page_sections` builds the page's sections: for every input, each section registered for
its type (``isinstance``), ordered by the sections' ``order`` (the findings table, order 0,
opens the page), then by input, then by registration; it adds ``kind`` (the section's name) and
``id`` (a unique anchor, :attr:`SectionContext.id`) to each dict. Input discovery (which path is
which comparison) stays in :mod:`.inputs`.

Numbers are formatted here (:mod:`tuneshift.reports.formatting`); all text -- tokens, record
ids, model names -- stays raw and is escaped by the template (autoescape) or, for the heat-map
data, serialised with :func:`script_json` and drawn as canvas text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from tuneshift.registry import Registry
from tuneshift.reports.compare_report import sign_note
from tuneshift.reports.formatting import num, pval
from tuneshift.reports.html import plots
from tuneshift.reports.html.inputs import AblationInput, AttributionInput, ConceptsInput, FindingsInput, HeadsInput

__all__ = [
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_ORDER",
    "SECTIONS",
    "Section",
    "SectionContext",
    "display_token",
    "attribution_view",
    "heads_view",
    "concepts_view",
    "findings_view",
    "ablation_view",
    "page_sections",
    "register_section",
    "script_json",
    "density_colour",
]

#: records with a full per-record view (the example record and the largest |tuned - base|);
#: the record list always shows every record.
DEFAULT_MAX_RECORDS = 200

#: the ``order`` of a section that does not ask for another (the findings table has 0: first).
DEFAULT_ORDER = 100


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class SectionContext:
    """What a view function gets besides its input.

    Attributes:
        id: the section's anchor id, unique on the page (from its name and the input's title).
        max_records: the page's ``max_records`` (records given a per-record view, >= 0).
    """

    id: str
    max_records: int = DEFAULT_MAX_RECORDS


@dataclass(frozen=True)
class Section:
    """A registered report section.

    Attributes:
        name: the section's kind (``s.kind`` on the page, ``data-kind``) and its partial's name,
            ``templates/sections/<name>.html.j2``.
        input_type: the input class (:mod:`.inputs`) the section shows; every input of this type
            (or a subclass) gets the section.
        view: ``view(item, ctx: SectionContext) -> dict``, the dict the partial renders as ``s``.
        order: place on the page: lower first; equal orders keep the order of the inputs.
    """

    name: str
    input_type: type
    view: Callable[..., dict]
    order: int = DEFAULT_ORDER

    @property
    def template(self) -> str:
        """The partial's name for the template loader."""
        return f"sections/{self.name}.html.j2"


def _same_view(name: str, old: Section, new: Section) -> Exception | None:
    if (old.view.__module__, old.view.__qualname__) != (new.view.__module__, new.view.__qualname__):
        return ValueError(
            f"report section '{name}' is already registered ({old.view.__module__}.{old.view.__qualname__})"
        )
    return None


SECTIONS: Registry[Section] = Registry("report section", sort=False, conflict=_same_view)
"""The report sections (:class:`~tuneshift.registry.Registry`, in registration order)."""


def register_section(name: str, input_type: type, order: int = DEFAULT_ORDER) -> Callable:
    """Decorator registering ``view(item, ctx) -> dict`` as the section ``name`` of inputs of
    ``input_type``; its partial is ``templates/sections/<name>.html.j2``.

    Args:
        name: the section's kind (letters, digits and ``_``).
        input_type: the input class it shows (:mod:`.inputs`).
        order: place on the page (lower first; :data:`DEFAULT_ORDER` by default).

    Returns:
        A decorator returning the view function unchanged.

    Raises:
        ValueError: a bad name, or ``name`` already registered to another view function.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"a report section name is letters, digits and _, not {name!r}")

    def deco(view: Callable[..., dict]) -> Callable[..., dict]:
        SECTIONS.register(name, Section(name, input_type, view, order))
        return view

    return deco


def page_sections(inputs: Sequence[object], max_records: int = DEFAULT_MAX_RECORDS) -> list[dict]:
    """The view dicts of a page, in page order (see the module docstring), each with its
    section's ``kind`` and a unique ``id``.

    Args:
        inputs: report inputs (:mod:`.inputs`). max_records: as :class:`SectionContext`.

    Raises:
        TypeError: an input no registered section shows.
    """
    registered = SECTIONS.values()
    jobs = []
    for i, item in enumerate(inputs):
        mine = [(k, sec) for k, sec in enumerate(registered) if isinstance(item, sec.input_type)]
        if not mine:
            raise TypeError(
                f"no report section shows a {type(item).__name__}; sections: "
                + ", ".join(f"{sec.name} ({sec.input_type.__name__})" for sec in registered)
            )
        jobs += [(sec.order, i, k, sec, item) for k, sec in mine]
    used: set[str] = set()
    out = []
    for _, _, _, sec, item in sorted(jobs, key=lambda j: j[:3]):
        ctx = SectionContext(_slug(f"{sec.name} {item.title}", used), max_records)
        view = sec.view(item, ctx)
        view["kind"], view["id"] = sec.name, ctx.id
        out.append(view)
    return out


def display_token(piece: str) -> str:
    """A token's readable text (``Attribution.prompt_pieces``/``response_pieces``, decoded from
    the tokenizer's bytes, never raw token strings such as ``Ã©``) as shown: newlines as ``↵``."""
    return piece.replace("\r", "").replace("\n", "↵")


def density_colour(d: float) -> str:
    """CSS background for an importance density in [0, 1]: transparent to red (alpha = density);
    a negative density (sign policy ``signed``, in [-1, 0)) is blue with alpha ``|d|``."""
    d = float(d) if np.isfinite(d) else 0.0
    if d < 0:
        return f"rgba(37, 99, 235, {min(-d, 1.0):.3f})"
    return f"rgba(220, 38, 38, {min(d, 1.0):.3f})"


def script_json(obj) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the line
    separators as ``\\uXXXX`` escapes (a token ``</script>`` cannot end the element); NaN -> null."""
    from tuneshift.results import nan_to_none

    text = json.dumps(nan_to_none(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return re.sub(r"[<>&\u2028\u2029]", lambda m: f"\\u{ord(m.group()):04x}", text)


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[-40:] or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


# ----------------------------------------------------------------------------- attribution


def _heat_matrix(raw: np.ndarray, settings, rescale: bool) -> list[list[float]]:
    """The post-processed matrix behind the density, scaled to [0, 1] (2 decimals):
    ``sparsify(raw, L, b, sign) / L`` for our runs (in [-1, 1] for the sign policy ``signed``),
    the thresholded released matrix otherwise."""
    from tuneshift.methods.attribution.importance import sparsify

    raw = np.asarray(raw, dtype=np.float64)
    if raw.size == 0:
        return [[] for _ in range(raw.shape[0])]
    if rescale:
        m = sparsify(raw, settings.levels, settings.threshold, settings.sign) / settings.levels
    else:
        m = np.where(raw > settings.threshold, raw, 0.0)
        top = m.max()
        m = m / top if top > 0 else m
    return np.round(m, 2).tolist()


def _sign_legend(c, item) -> str:
    """The legend sentence on negative attributions: the sign policy used and, when the runs are
    at hand, the share of negative entries in their raw matrices."""
    shares = []
    for side, run in (("base", item.base), ("tuned", item.tuned)):
        if run is not None and run.attributions:
            neg = sum(int((np.asarray(a.raw) < 0).sum()) for a in run.attributions)
            tot = sum(int(np.asarray(a.raw).size) for a in run.attributions)
            if tot:
                shares.append(f"{side} {100 * neg / tot:.0f}%")
    of = f" Negative entries of the raw attribution matrices: {', '.join(shares)}." if shares else ""
    text = sign_note(c)
    return text[0].upper() + text[1:] + "." + of


def _side_view(rec, settings, rescale: bool) -> dict:
    """One model's side of a record: prompt tokens with density and role, greyed template gaps."""
    a = rec.source
    positions = [int(p) for p in a.prompt_positions]
    items, prev = [], -1
    for i, (tok, d, role, pos) in enumerate(zip(a.prompt_pieces, rec.density, a.prompt_roles, positions)):
        if pos > prev + 1:
            items.append({"template": pos - prev - 1})
        items.append(
            {
                "i": i,
                "text": display_token(tok),
                "density": float(d),
                "role": role,
                "bg": density_colour(d),
                "title": f"{role} token {i}: density {float(d):.3f}",
            }
        )
        prev = pos
    after = int(a.n_input_tokens) - (prev + 1)
    if after > 0:
        items.append({"template": after})
    n_resp = rec.n_response
    return {
        "items": items,
        "score": num(rec.score),
        "n_response": n_resp,
        "short": rec.short,
        "response_tokens": [display_token(t) for t in a.response_pieces[:n_resp]],
        "response_text": a.response_text,
        "heat": {
            "prompt": [display_token(t) for t in a.prompt_pieces],
            "response": [display_token(t) for t in a.response_pieces[:n_resp]],
            "values": _heat_matrix(np.asarray(a.raw)[:, :n_resp], settings, rescale),
        },
    }


def _paired_rows(c) -> list[dict]:
    """Rows of the paired table. The sample rule (:mod:`tuneshift.stats.sample_rule`): a row below
    it shows its reason ("too few pairs (5)") instead of a CI and p-values, and is never coloured;
    a row is coloured only where its CI excludes 0. The primary row is labelled."""
    rows = []
    for r in c.paired:
        reason = getattr(r, "reason", None)
        role = getattr(r, "role", "control")
        rows.append(
            {
                "control": r.control + (" (primary)" if role == "primary" else ""),
                "group": r.group,
                "n": r.n_pairs,
                "base": num(r.base_mean),
                "tuned": num(r.tuned_mean),
                "diff": num(r.mean_diff),
                "ci": reason if reason else f"[{num(r.ci_low)}, {num(r.ci_high)}]",
                "wilcoxon_p": "–" if reason else pval(r.wilcoxon_p),
                "p": "–" if reason else pval(r.p),
                "p_holm": ("–" if reason else pval(r.p_holm)) if r.group != "overall" else "",
                "sign": "" if reason else ("pos" if r.ci_low > 0 else "neg" if r.ci_high < 0 else ""),
                "role": role,
            }
        )
    return rows


@register_section("attribution", input_type=AttributionInput)
def attribution_view(item: AttributionInput, ctx: SectionContext) -> dict:
    """The view of one attribution comparison.

    Args:
        item: the comparison and its runs. ctx: the section's id and ``max_records`` (records
            given a full per-record view: example record first, then by ``|tuned - base|``
            descending).

    Returns:
        A dict for ``sections/attribution.html.j2`` (tables, SVG, records, details, heat-map data
        as :func:`script_json` text).
    """
    from tuneshift.stats.compare import effective_settings, score_run

    c = item.comparison
    sid, max_records = ctx.id, ctx.max_records
    records = []
    for r in c.records:
        diff = r.tuned_score - r.base_score
        records.append(
            {
                "id": r.id,
                "group": r.group,
                "base": r.base_score,
                "tuned": r.tuned_score,
                "diff": diff,
                "base_copy": r.base_copy_share,
                "tuned_copy": r.tuned_copy_share,
                "n_base": r.base_n_response,
                "n_tuned": r.tuned_n_response,
                "fmt": {
                    k: num(v)
                    for k, v in (
                        ("base", r.base_score),
                        ("tuned", r.tuned_score),
                        ("diff", diff),
                        ("base_copy", r.base_copy_share),
                        ("tuned_copy", r.tuned_copy_share),
                    )
                },
            }
        )
    by_id = {r["id"]: r for r in records}
    by_abs = sorted(records, key=lambda r: (-abs(r["diff"]) if np.isfinite(r["diff"]) else 0.0, r["id"]))
    chosen = [r["id"] for r in by_abs]
    if c.example_record in chosen:
        chosen.remove(c.example_record)
        chosen.insert(0, c.example_record)
    detailed, details, heat = set(), [], {}
    notes = list(item.notes)
    if item.base is not None and item.tuned is not None and max_records > 0:
        scored = {}
        for side, run in (("base", item.base), ("tuned", item.tuned)):
            settings, rescale = effective_settings(run, c.settings)
            scored[side] = ({s.id: s for s in score_run(run, c.settings)}, settings, rescale)
        for rid in chosen[:max_records]:
            if not all(rid in scored[s][0] for s in ("base", "tuned")):
                continue
            key = f"{sid}-r{len(details)}"
            sides = {}
            for side in ("base", "tuned"):
                recs, settings, rescale = scored[side]
                v = _side_view(recs[rid], settings, rescale)
                heat[f"{key}-{side}"] = v.pop("heat")
                sides[side] = v
            rec = by_id[rid]
            details.append(
                {
                    "key": key,
                    "id": rid,
                    "group": rec["group"],
                    "diff": rec["fmt"]["diff"],
                    "sides": sides,
                    "example": rid == c.example_record,
                }
            )
            detailed.add(rid)

    if item.base is not None and item.tuned is not None and len(records) > len(detailed):
        notes.append(
            f"{len(detailed)} of {len(records)} records have a per-record view (the example record and "
            f"the largest |tuned - base|; raise --max-records for more)"
        )
    keys = {d["id"]: d["key"] for d in details}
    for r in records:
        r["key"] = keys.get(r["id"])
    pos = c.position
    contrasts = [
        {
            "group": m.group,
            "base": f"{num(m.base.mean)} ({num(m.base.std)}, {m.base.n})",
            "tuned": f"{num(m.tuned.mean)} ({num(m.tuned.std)}, {m.tuned.n})",
            "t": num(m.t, 2),
            "p": getattr(m, "reason", None) or pval(m.p),
            "g": num(m.hedges_g, 2),
            "n_pairs": m.n_pairs,
            "wilcoxon_p": getattr(m, "wilcoxon_reason", None) or pval(m.wilcoxon_p),
        }
        for m in c.contrasts
    ]
    followed = [
        {
            "model": f.model,
            "group": f.group,
            "followed": f"{num(f.followed.mean)} ({num(f.followed.std)}, {f.followed.n})",
            "unfollowed": f"{num(f.unfollowed.mean)} ({num(f.unfollowed.std)}, {f.unfollowed.n})",
            "t": num(f.t, 2),
            "p": getattr(f, "reason", None) or pval(f.p),
            "g": num(f.hedges_g, 2),
        }
        for f in c.followed
    ]
    protocol = c.protocol.get("base", {})
    return {
        "title": item.title,
        "base": c.pair.base,
        "tuned": c.pair.tuned,
        "base_label": c.pair.base_label,
        "tuned_label": c.pair.tuned_label,
        "protocol": ", ".join(
            f"{k} {protocol[k]}"
            for k in ("responses", "prompt_form", "chat_template", "join", "max_new_tokens")
            if protocol.get(k) is not None
        ),
        "paired": _paired_rows(c),
        "contrasts": contrasts,
        "followed": followed,
        "position_svg": plots.position_svg(pos, (c.pair.base_label, c.pair.tuned_label))
        if pos.n_records.get("base") or pos.n_records.get("tuned")
        else "",
        "middle_share": {k: num(v) for k, v in pos.middle_share.items()},
        "middle_p": pval(pos.wilcoxon_p),
        "middle_pairs": pos.n_pairs,
        "records": records,
        "details": details,
        "heat_json": script_json(heat),
        "example": c.example_record,
        "warnings": list(c.warnings),
        "notes": notes,
        "sign_note": _sign_legend(c, item),
        "dropped": [
            f"{side} {why}: {', '.join(ids)}"
            for side, d in (("base", c.dropped.base), ("tuned", c.dropped.tuned))
            for why, ids in d.items()
        ],
    }


# ----------------------------------------------------------------------------- heads and concepts


@register_section("heads", input_type=HeadsInput)
def heads_view(item: HeadsInput, ctx: SectionContext) -> dict:
    """The view of one heads comparison: Table 3, per-verb changed heads, Jaccard, rising/falling words."""
    c = item.comparison
    stats = lambda s: f"{num(s.mean)} ({num(s.std)}, {s.n})"  # noqa: E731
    verbs, unchanged = [], []
    for verb, rows in (item.verb_heads or {}).items():
        if not rows:
            unchanged.append(verb)
            continue
        verbs.append(
            {
                "verb": verb,
                "n": len(rows),
                "up": sum(r.change > 0 for r in rows),
                "down": sum(r.change < 0 for r in rows),
                "heads": [
                    {
                        "head": f"L{r.layer}.H{r.head}",
                        "base": r.base,
                        "tuned": r.tuned,
                        "change": f"{r.change:+d}",
                        "gained": ", ".join(r.gained[:8]) + (" ..." if len(r.gained) > 8 else ""),
                        "lost": ", ".join(r.lost[:8]) + (" ..." if len(r.lost) > 8 else ""),
                    }
                    for r in rows
                ],
            }
        )
    return {
        "title": item.title,
        "base": c.base.model,
        "tuned": c.tuned.model,
        "vectors": f"{c.base.vectors} / {c.tuned.vectors}",
        "n_layers": len(c.layers),
        "table3": [
            {
                "group": r.group,
                "layers": _layer_span(r.layers),
                "heads": r.n_heads,
                "instruction": stats(r.instruction),
                "general": stats(r.general),
                "t": num(r.t, 2),
                "p": getattr(r, "reason", None) or pval(r.p),
            }
            for r in c.table3
        ],
        "verbs": verbs,
        "unchanged": unchanged,
        "has_verbs": item.verb_heads is not None,
        "jaccard": [{"layer": j.layer, "mean": num(j.mean), "n": j.n_heads} for j in c.jaccard],
        "rising": [{"word": w.word, "base": w.base, "tuned": w.tuned, "change": f"{w.change:+d}"} for w in c.rising],
        "falling": [{"word": w.word, "base": w.base, "tuned": w.tuned, "change": f"{w.change:+d}"} for w in c.falling],
        "notes": list(c.notes) + list(item.notes),
        "null": _heads_null_view(c, stats),
    }


def _heads_null_view(c, stats) -> dict | None:
    """The random-update null of a heads comparison (None without one): Jaccard per layer, tuned
    beside null, its plot, the summary line and Table 3 base -> null."""
    if c.null is None:
        return None
    rows = c.null_rows()
    return {
        "model": c.null.info.model,
        "seed": c.null.seed,
        "summary": c.null_summary(),
        "svg": plots.jaccard_svg(rows) if rows else "",
        "rows": [{"layer": l, "tuned": num(t), "null": num(n)} for l, t, n in rows],
        "table3": [
            {
                "group": r.group,
                "instruction": stats(r.instruction),
                "general": stats(r.general),
                "t": num(r.t, 2),
                "p": pval(r.p),
            }
            for r in c.null.table3
        ],
        "table3_tuned": {r.group: stats(r.instruction) for r in c.table3},
    }


def _layer_span(layers) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``: the layers actually compared in a group."""
    out, run = [], []
    for l in sorted(layers):
        if run and l == run[-1] + 1:
            run.append(l)
        else:
            if run:
                out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = [l]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


@register_section("concepts", input_type=ConceptsInput)
def concepts_view(item: ConceptsInput, ctx: SectionContext) -> dict:
    """The view of one concepts comparison: rotation per layer (plot and table) and, when both
    runs are annotated, Table 5 and the shares per layer group."""
    c = item.comparison
    shares = c.shares
    return {
        "title": item.title,
        "base": c.base,
        "tuned": c.tuned,
        "rotation_svg": plots.rotation_svg(c.layers, c.null.layers if c.null is not None else None) if c.layers else "",
        "null": None
        if c.null is None
        else {
            "model": c.null.model,
            "seed": c.null.seed,
            "summary": c.null_summary(),
            "rows": [
                {
                    "layer": t.layer,
                    "mean": num(t.angle_mean_degrees, 2),
                    "mean_null": num(z.angle_mean_degrees, 2),
                    "overlap": num(t.overlap, 4),
                    "overlap_null": num(z.overlap, 4),
                    "matched": num(t.share_matched),
                    "matched_null": num(z.share_matched),
                }
                for t, z in c.null_rows()
            ],
        },
        "rotation": [
            {
                "layer": l.layer,
                "ranks": f"{l.rank_base} / {l.rank_tuned}",
                "mean": num(l.angle_mean_degrees, 1),
                "max": num(float(np.degrees(l.angle_max)), 1),
                "overlap": num(l.overlap),
                "matched": f"{l.n_matched} ({num(l.share_matched)})",
            }
            for l in c.layers
        ],
        "threshold": f"{c.layers[0].threshold:g}" if c.layers else "",
        "skipped": c.skipped_layers,
        "table5": [
            {
                "category": r.category,
                "base": f"{num(r.base_mean)} ({num(r.base_std)}, {r.n_runs_base})",
                "tuned": f"{num(r.tuned_mean)} ({num(r.tuned_std)}, {r.n_runs_tuned})",
                "t": num(r.t, 2),
                "p": pval(r.p),
            }
            for r in (shares.table5 if shares else [])
        ],
        "groups_svg": plots.groups_svg(shares) if shares and (shares.groups_base or shares.groups_tuned) else "",
        "notes": list(item.notes),
    }


@register_section("findings", input_type=FindingsInput, order=0)
def findings_view(item: FindingsInput, ctx: SectionContext) -> dict:
    """The view of the findings table (:class:`~tuneshift.stats.findings.Findings`): one row per
    finding of the paper, the same cells as the terminal and ``findings.md``
    (:func:`~tuneshift.reports.findings_report.finding_cells`). A row is coloured only when it
    has a CI or test (the sample rule) and a verdict other than "no detectable difference"."""
    from tuneshift.reports.findings_report import HEADERS, finding_cells

    f = item.findings
    rows = []
    for r in f.rows:
        cls = ""
        if r.verdict.startswith("same direction"):
            cls = "agree"
        elif r.verdict.startswith("opposite"):
            cls = "disagree"
        rows.append({"cells": finding_cells(r), "cls": cls, "role": r.role})
    return {
        "title": f.pair or item.title,
        "headers": HEADERS,
        "rows": rows,
        "notes": list(f.notes) + list(item.notes),
        "min_n": f.min_n,
    }


@register_section("ablation", input_type=AblationInput)
def ablation_view(item: AblationInput, ctx: SectionContext) -> dict:
    """The view of an ablation comparison (:class:`~tuneshift.stats.ablation_compare.AblationComparison`):
    the same tables as the terminal (:func:`~tuneshift.reports.ablation_report.ablation_tables`),
    and per record its instruction score next to its instruction ablation effect under each model
    (the swap, or the first variant run). Nothing is coloured: the tables carry intervals only
    where the sample rule allows them."""
    from tuneshift.reports.ablation_report import READING, ablation_tables

    c = item.comparison
    variants = [r.variant for r in c.records]
    shown = "swap" if "swap" in variants else (variants[0] if variants else "")

    def f(x, nd=3):
        return "–" if x != x else f"{x:+.{nd}f}".replace("-", "−")

    records = [
        [r.record_id, r.group, f(r.base_score), f(r.tuned_score), f(r.base_effect), f(r.tuned_effect)]
        for r in c.records
        if r.variant == shown
    ]
    return {
        "title": item.title,
        "base_label": c.base_model,
        "tuned_label": c.tuned_model,
        "tables": [{"title": t, "headers": h, "rows": rows} for t, h, rows in ablation_tables(c) if rows],
        "records_variant": shown,
        "records": records,
        "reading": READING.format(min_n=c.min_n),
        "notes": list(c.notes) + list(item.notes),
    }
