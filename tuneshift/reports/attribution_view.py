"""Look at one attribution: prompt tokens shaded by importance density, and a heatmap PNG."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from tuneshift.methods.attribution.importance import ImportanceSettings, sparsify
from tuneshift.methods.attribution.result import Attribution


def _clean(piece: str) -> str:
    """A token's readable text (``Attribution.prompt_pieces``, decoded from its bytes, never the
    raw token string such as ``Ã©``) with newlines shown as ``\\n``."""
    return piece.replace("\r", "").replace("\n", "\\n")


def negative_share(a: Attribution) -> float:
    """Share of the entries of ``a.raw`` that are < 0 (NaN for an empty matrix)."""
    raw = np.asarray(a.raw)
    return float((raw < 0).mean()) if raw.size else float("nan")


def sign_caption(sign: str, share: float | None = None) -> str:
    """One sentence on what the shown densities did with negative attributions.

    Args:
        sign: the run's sign policy (``clip``, ``abs``, ``signed``).
        share: share of negative entries to quote (None: not quoted).
    """
    of = "" if share is None or not np.isfinite(share) else f" ({100 * share:.0f}% of this record's entries)"
    return {
        "clip": f"negative attributions{of} are clipped at 0, as in the paper (run option --sign clip)",
        "abs": f"negative attributions{of} count by their magnitude (run option --sign abs; the paper clips them at 0)",
        "signed": f"signed densities: red = net positive, blue = net negative; negative attributions{of} are kept "
        "(run option --sign signed; the paper clips them at 0)",
    }[sign]


def print_attribution(a: Attribution, console=None, sign: str = "clip") -> None:
    """Print the prompt with each token's background shaded by its density (rich).

    Instruction tokens are underlined; the response and the score follow. The header says
    what the run's sign policy ``sign`` did with negative attributions (and how many there are).
    """
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    text = Text()
    for tok, d, role in zip(a.prompt_pieces, a.density, a.prompt_roles):
        level = int(round(min(abs(float(d)), 1.0) * 255))
        style = (
            f"on rgb({255 - level},{255 - level},{255}) black"
            if d < 0
            else f"on rgb({255},{255 - level},{255 - level}) black"
        )
        if role == "instruction":
            style += " underline"
        text.append(_clean(tok), style=style)
    from rich.markup import escape

    console.print(
        f"[bold]{escape(a.record_id)}[/bold] (group {escape(a.group)}) — instruction score {a.instruction_score:.3f}; "
        "darker = denser, underlined = instruction"
    )
    console.print(escape(sign_caption(sign, negative_share(a))))
    console.print(text)
    console.print(Text("response: ", style="bold") + Text(a.response_text))
    top = [i for i in np.argsort(-np.abs(np.asarray(a.density)))[:8] if a.density[i] != 0]
    console.print(
        Text(
            "densest prompt tokens: "
            + ", ".join(
                f"{_clean(a.prompt_pieces[i]).strip() or repr(a.prompt_pieces[i])} {a.density[i]:.2f}" for i in top
            )
        )
    )


def attribution_heatmap(
    a: Attribution,
    path: str | Path,
    levels: int = ImportanceSettings.DEFAULT_LEVELS,
    threshold: float = ImportanceSettings.DEFAULT_THRESHOLD,
    sign: str = "clip",
) -> Path:
    """Write a PNG: the sparsified attribution matrix (prompt tokens x response tokens) and the density.

    Args:
        a: the attribution.
        path: output PNG path.
        levels, threshold, sign: the post-processing parameters used for the display (the
            run's; ``signed`` is drawn on a diverging red/blue scale).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = sparsify(a.raw, levels, threshold, sign)
    n, r = s.shape
    fig_h = max(3.5, 0.18 * n + 2.0)  # room for the title, the caption and the tick labels
    fig_w = max(5.0, 0.22 * r + 3.0)
    fig, (ax, axd) = plt.subplots(
        1, 2, figsize=(fig_w, fig_h), gridspec_kw={"width_ratios": [max(r, 1), 3]}, sharey=True
    )
    if r == 0:  # an empty response: nothing to show but the (zero) density
        s = np.zeros((n, 1))
    if sign == "signed":
        ax.imshow(s, aspect="auto", cmap="RdBu_r", vmin=-levels, vmax=levels, interpolation="nearest")
    else:
        ax.imshow(s, aspect="auto", cmap="Reds", vmin=0, vmax=levels, interpolation="nearest")
    ax.set_yticks(range(n))
    ax.set_yticklabels(
        [(_clean(t) + (" *" if m else "")) for t, m in zip(a.prompt_pieces, a.instruction_mask)], fontsize=7
    )
    ax.set_xticks(range(r))
    ax.set_xticklabels([_clean(t) for t in a.response_pieces], rotation=90, fontsize=7)
    ax.set_xlabel("response token")
    # one figure title (two axis titles collide when the response is short)
    fig.suptitle(
        f"{a.record_id}: instruction score {a.instruction_score:.2f}\n"
        f"sparsified attribution (b={threshold:g}); * = instruction\n"
        + "\n".join(textwrap.wrap(sign_caption(sign, negative_share(a)), 90)),
        fontsize=9,
        x=0.02,
        ha="left",
    )
    axd.barh(
        range(n),
        a.density,
        color=[
            ("#2166ac" if m else "#92c5de") if d < 0 else ("#b2182b" if m else "#999999")
            for m, d in zip(a.instruction_mask, a.density)
        ],
    )
    axd.set_xlim(-1 if sign == "signed" else 0, 1)
    axd.set_xlabel("density")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
