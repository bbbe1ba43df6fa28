"""The report's static plots: matplotlib figures rendered to inline SVG (no script, no network)."""

from __future__ import annotations

import io

import numpy as np

__all__ = ["svg", "position_svg", "rotation_svg", "groups_svg"]


def svg(fig) -> str:
    """A matplotlib figure as an ``<svg>`` element (the XML prologue dropped); closes the figure.

    Text stays text (``svg.fonttype = none``, escaped by matplotlib) and ids are stable
    (``svg.hashsalt``), so the same data gives the same page.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tuneshift"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _axes(w: float = 6.4, h: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h))


def position_svg(profile, labels: tuple[str, str] = ("base", "tuned")) -> str:
    """Mean importance density by relative position in the prompt (a
    :class:`~tuneshift.stats.compare.PositionProfile`), one line per model."""
    fig, ax = _axes()
    edges = np.asarray(profile.bin_edges, dtype=float)
    mids = (edges[:-1] + edges[1:]) / 2
    for values, label, style in ((profile.base, labels[0], "--"), (profile.tuned, labels[1], "-")):
        ax.plot(mids, np.asarray(values, dtype=float), style, marker="o", label=label)
    ax.set_xlabel("relative position in the prompt")
    ax.set_ylabel("mean importance density")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return svg(fig)


def rotation_svg(layers, null_layers=None) -> str:
    """Mean and max principal angle (degrees) and subspace overlap per layer (a list of
    :class:`~tuneshift.stats.concepts_rotation.LayerRotation`); with ``null_layers`` (base vs a
    random update of the same size) also the null's mean angle and overlap, in grey."""
    fig, ax = _axes()
    xs = [l.layer for l in layers]
    ax.plot(xs, [l.angle_mean_degrees for l in layers], "-", marker="o", label="mean principal angle: tuned")
    ax.plot(xs, [float(np.degrees(l.angle_max)) for l in layers], ":", marker=".", label="max principal angle: tuned")
    if null_layers:
        ax.plot(
            [l.layer for l in null_layers],
            [l.angle_mean_degrees for l in null_layers],
            "-",
            marker="x",
            color="0.5",
            label="mean principal angle: random update (null)",
        )
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("degrees")
    ax.set_ylim(0, 92)
    ax2 = ax.twinx()
    ax2.plot(xs, [l.overlap for l in layers], "--", color="C2", label="overlap (mean cos$^2$): tuned")
    if null_layers:
        ax2.plot(
            [l.layer for l in null_layers],
            [l.overlap for l in null_layers],
            "--",
            color="0.7",
            label="overlap: random update (null)",
        )
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("overlap")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower center", ncol=3 if not null_layers else 2, frameon=False)
    fig.tight_layout(rect=(0, 0.08 if not null_layers else 0.2, 1, 1))
    return svg(fig)


def jaccard_svg(rows) -> str:
    """Mean Jaccard overlap of head knowledge with the base per layer, tuned and random update
    (null): ``rows`` are ``(layer, tuned, null)`` (:meth:`~tuneshift.stats.heads_compare.HeadsComparison.null_rows`)."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = _axes()
    xs = [r[0] for r in rows]
    ax.plot(xs, [r[1] for r in rows], "-", marker="o", label="tuned")
    ax.plot(xs, [r[2] for r in rows], "-", marker="x", color="0.5", label="random update (null)")
    ax.set_xlabel("layer")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mean Jaccard with the base")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return svg(fig)


def groups_svg(shares) -> str:
    """The concept shares per layer group (Figure 3) of a
    :class:`~tuneshift.stats.concepts_shares.SharesComparison`."""
    from tuneshift.stats.concepts_shares import groups_figure

    return svg(groups_figure(shares.groups_base, shares.groups_tuned))
