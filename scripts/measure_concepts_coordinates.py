"""Measure what the concepts coordinates change on ``gemma-3-270m`` (the numbers in docs/concepts.md).

Independently of tuneshift's anatomy and concepts code (only the loader and the vocabulary's
tokenisation are reused), from the model's state dict:

* the gain ranges of ``post_feedforward_layernorm`` (``1 + w``) per layer and of the final norm;
* the explained-variance ratio of the first three components of the raw down-projection rows
  ``W_down`` (tuneshift's reading before method version 2) and of the residual-stream rows
  ``W_down * (1 + w_post)`` (numpy SVD of the centred rows, float64);
* the Jaccard overlap of the top-15 words (``|v . e_w|``, 20,000 wordfreq words) of the first
  three components: residual rows vs raw rows, and final norm folded into the LM head vs not.

Usage::

    OMP_NUM_THREADS=1 python scripts/measure_concepts_coordinates.py [--layers 0,9,17]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    import tuneshift
    from tuneshift.data.vocabulary import load_vocabulary, tokenize_vocabulary

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--layers", default="0,9,17")
    args = ap.parse_args()
    loaded = tuneshift.load_model(args.model, progress=False)
    sd = {k: v.detach().double().numpy() for k, v in loaded.model.state_dict().items()}
    tv = tokenize_vocabulary(load_vocabulary(None), loaded.tokenizer)
    head = sd["lm_head.weight"] if "lm_head.weight" in sd else sd["model.embed_tokens.weight"]
    g_final = 1.0 + sd["model.norm.weight"]
    print(f"final norm gain: {g_final.min():.2f} .. {g_final.max():.0f}")
    mean_rows = np.stack([head[ids].mean(axis=0) for ids in tv.token_ids])

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    e_fold, e_none = unit(mean_rows * g_final), unit(mean_rows)

    def pca(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, s, vt = np.linalg.svd(m - m.mean(axis=0), full_matrices=False)
        return vt, s**2 / (s**2).sum()

    def top(e: np.ndarray, v: np.ndarray) -> set:
        return set(np.argsort(-np.abs(e @ v), kind="stable")[:15].tolist())

    def jac(a: set, b: set) -> float:
        return len(a & b) / len(a | b)

    for layer in (int(x) for x in args.layers.split(",")):
        w = sd[f"model.layers.{layer}.mlp.down_proj.weight"].T
        g = 1.0 + sd[f"model.layers.{layer}.post_feedforward_layernorm.weight"]
        v_raw, evr_raw = pca(w)
        v_res, evr_res = pca(w * g)
        print(
            f"layer {layer}: post-FFN gain {g.min():.2f} .. {g.max():.0f}; first-3 EVR raw rows "
            f"{np.round(evr_raw[:3], 4).tolist()}, residual rows {np.round(evr_res[:3], 4).tolist()}"
        )
        print(
            "  top-15 Jaccard, residual (fold) vs raw (none):",
            [round(jac(top(e_fold, v_res[c]), top(e_none, v_raw[c])), 3) for c in range(3)],
            "; residual, fold vs none:",
            [round(jac(top(e_fold, v_res[c]), top(e_none, v_res[c])), 3) for c in range(3)],
        )


if __name__ == "__main__":
    main()
