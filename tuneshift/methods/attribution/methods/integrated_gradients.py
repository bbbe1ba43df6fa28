"""Integrated gradients over the prompt's input embeddings, computed by Captum.

Source: Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017
(integrated gradients); implementation: Captum's ``captum.attr.IntegratedGradients``
(Kokhlikyan et al. 2020, https://captum.ai), not a hand-written one.

What is computed, for a prompt of P input positions (BOS, chat template and user prompt:
everything before the response) with embeddings ``e = (e_1..e_P)`` and a response
``y = (y_1..y_R)``, for each response token j and target f (``--target``)::

    IG[n, j] = (e_n - b_n) . integral_0^1  d f_j(b + a (e - b)) / d e_n  da

    f_j(z) = f(y_j | prompt embeddings z, response prefix y_<j)

summed over the embedding dimension. Decisions, stated once:

* **what is interpolated**: only the P prompt positions. The response prefix ``y_<j`` keeps
  its real embeddings along the whole path: the question is what the *prompt* contributes to
  each response token given the response so far (as gradient x input, which also keeps only
  the prompt rows). All P positions are interpolated, BOS and template included; the caller
  keeps the user-prompt rows.
* **baseline** ``b``: the zero embedding (``baseline=zero``, default: "no input" in the
  residual stream, the usual choice for embeddings), or ``baseline=pad``: the embedding of the
  padding token at every prompt position. Embeddings are taken as they enter the residual
  stream (Gemma's ``sqrt(d_model)`` scaling included).
* **completeness** (Sundararajan et al., Prop. 1): ``sum_n IG[n, j] = f_j(e) - f_j(b)`` up to
  the quadrature error of ``n_steps`` points, which Captum reports as the convergence delta
  (kept in ``convergence_deltas``; a batch warns when a record's largest ``|delta_j|`` exceeds
  5% of its largest ``|f_j(e) - f_j(b)|``, the accuracy Sundararajan et al. suggest). The stored user-prompt rows alone sum to less when the template has weight.
* **the path is not always smooth, and then ``n_steps`` matters a lot.** Measured:
  GPT-2 style tiny models (learned position embeddings added to the input): completeness
  error ~1e-11 of ``|f(e) - f(b)|`` at 32 points. RMSNorm models without position
  embeddings (Llama, Gemma, Qwen) see ``RMSNorm(a e)`` in their first layer, the same for every
  ``a`` above about ``sqrt(eps) / rms(e)``: a steep step right next to a zero baseline (tiny
  random Llama: error ~40% at 32 points, ~27% at 128). The packaged Gemma-3-270m (one chat
  prompt, probability target) is mostly flat until ``a`` ~ 0.3, then rises steeply and not
  monotonically: the error of its first response token was 53% at 32 points, 2% at 64, 0.2%
  at 128; of its fourth token 35% at 32, 58% at 64, 31% at 128 and 15% at 256. So: keep the
  default 50 points (Captum's default) for a first look, raise ``n_steps`` (128-512) for
  results, and read the warning. ``baseline=pad`` is the alternative baseline (on Gemma the
  pad embedding is a trained, non-zero row; Hugging Face zero-initialises ``padding_idx`` rows,
  so it is zero in randomly initialised test models).
* **quadrature** ``rule``: Captum's ``gausslegendre`` (default, Captum's default too) or
  ``riemann_left`` / ``riemann_right`` / ``riemann_middle``, with ``n_steps`` points (>= 2).
  ``riemann_trapezoid`` is not offered: in Captum 0.8/0.9 its weights sum to (n-1)/n instead of
  1 (end weights 1/(2n) with nodes ``linspace(0, 1, n)``), which breaks completeness by 1/n.
  Captum casts the step weights (and Riemann nodes) to float32, so float64 models get
  attributions with ~1e-7 relative rounding of the weights (not of the gradients).
* **units**: the target's (probability, nats or logit), like gradient x input.

Cost: for each response token, ``n_steps`` forward + backward passes of the prompt and the
response prefix, plus two forward passes per group of positions for the convergence delta
(Captum batches them: ``rows_per_pass`` sequences per pass, response positions of a record
side by side, sequences cut after the last position a pass needs); records of a batch are
done one after the other. ``gradient_x_input`` needs one forward and R backwards per batch.
Measured with the default 50 steps (one prompt, CPU): tiny test Llama (P=16, R=10, 1
thread) 0.97 s vs 0.04 s (~25x); Gemma-3-270m (P=12, R=8, float32) 108 s vs 2.5 s (~43x)
with 1 thread, 237 s vs 20 s with 2 threads on a busy 2-core machine. ``rows_per_pass`` (default 16) only trades memory for speed:
it is not part of the run identity; peak activation memory grows linearly with it.

Options (``--method-option NAME=VALUE``): ``n_steps`` (int, default 50), ``rule`` (str,
default ``gausslegendre``), ``baseline`` (``zero`` or ``pad``, default ``zero``),
``rows_per_pass`` (int, default 16; not in the identity).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from tuneshift.errors import TuneshiftError
from tuneshift.methods.attribution.methods import AttributionMethod, register_method
from tuneshift.methods.attribution.targets import backbone_hidden, logits_from_hidden, upcast

COMPLETENESS_WARN = 0.05  # relative completeness error above which a batch warns

RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle")
BASELINES = ("zero", "pad")


def _captum_integrated_gradients():
    try:
        from captum.attr import IntegratedGradients
    except ImportError:  # pragma: no cover - captum is a dependency of tuneshift
        raise TuneshiftError("--method integrated_gradients needs captum: pip install 'captum>=0.8'") from None
    return IntegratedGradients


@register_method("integrated_gradients")
class IntegratedGradientsMethod(AttributionMethod):
    """Integrated gradients (Sundararajan et al. 2017, via Captum) of the target over the prompt embeddings."""

    @dataclass(frozen=True)
    class Options:
        """Options of integrated gradients.

        Attributes:
            n_steps: quadrature points along the path (>= 2).
            rule: ``gausslegendre``, ``riemann_left``, ``riemann_right`` or ``riemann_middle``.
            baseline: ``zero`` (zero embedding) or ``pad`` (the padding token's embedding).
            rows_per_pass: sequences per forward/backward pass (memory vs speed; not part
                of the run identity).
        """

        n_steps: int = 50
        rule: str = "gausslegendre"
        baseline: str = "zero"
        rows_per_pass: int = field(default=16, metadata={"identity": False})

        def __post_init__(self):
            if not isinstance(self.n_steps, int) or self.n_steps < 2:
                raise TuneshiftError(f"integrated_gradients: n_steps must be an integer >= 2, not {self.n_steps!r}")
            if self.rule not in RULES:
                raise TuneshiftError(f"integrated_gradients: rule must be one of {', '.join(RULES)}, not '{self.rule}'")
            if self.baseline not in BASELINES:
                raise TuneshiftError(
                    f"integrated_gradients: baseline must be one of {', '.join(BASELINES)}, not '{self.baseline}'"
                )
            if not isinstance(self.rows_per_pass, int) or self.rows_per_pass < 1:
                raise TuneshiftError(
                    f"integrated_gradients: rows_per_pass must be an integer >= 1, not {self.rows_per_pass!r}"
                )

    def attribute(self, model, pairs, target, pad_token_id=0, on_token=None):
        """Integrated gradients of a batch, record by record.

        Returns:
            B arrays ``[P_b, R_b]`` (float64 for a float64 model, else float32): entry [n, j] is
            ``IG[n, j]`` of the module docstring, in the target's units. Afterwards
            ``self.convergence_deltas`` holds Captum's convergence delta per record, ``[R_b]``
            float64: ``sum_n IG[n, j] - (f_j(x) - f_j(baseline))``. A batch where a record's
            largest ``|delta_j|`` exceeds 5% of its largest ``|f_j(x) - f_j(baseline)|`` gives
            one ``UserWarning`` (a run prints it).

        Raises:
            ValueError: an empty prompt or response.
            TuneshiftError: captum is missing.
        """
        from tuneshift.methods.attribution.gradient import check_pairs, freeze_parameters

        if not pairs:
            return []
        check_pairs(pairs)
        IntegratedGradients = _captum_integrated_gradients()
        freeze_parameters(model)
        # progress: on_token(j, R_b) after each group of response positions of each record
        done = [self._one(model, pair, target, int(pad_token_id), IntegratedGradients, on_token) for pair in pairs]
        self.convergence_deltas = [d for _, d in done]
        self._warn_if_incomplete([a for a, _ in done], self.convergence_deltas)
        return [a for a, _ in done]

    def _warn_if_incomplete(self, attrs, deltas) -> None:
        """One warning for the batch when, for some record, the largest completeness error
        ``max_j |delta_j|`` exceeds :data:`COMPLETENESS_WARN` of ``max_j |f_j(x) - f_j(baseline)|``
        (record-level, so that a token whose target hardly moves does not warn on rounding)."""
        worst, n_bad = 0.0, 0
        for a, d in zip(attrs, deltas):
            gap = np.abs(a.astype(np.float64).sum(0) - d)  # |f_j(x) - f_j(b)|: sum IG = gap + delta
            err = float(np.abs(d).max())
            rel = err / max(float(gap.max()), 1e-12)
            if rel > COMPLETENESS_WARN and err > 1e-9:
                n_bad += 1
                worst = max(worst, rel)
        if n_bad:
            warnings.warn(
                f"integrated_gradients: {n_bad} of {len(attrs)} records miss completeness by up to "
                f"{100 * worst:.0f}% of max |f(x) - f(baseline)| with n_steps={self.options.n_steps}; raise n_steps "
                "(models with RMSNorm and no position embeddings, e.g. Llama/Gemma, are steep near a zero "
                "baseline: see docs/attribution.md)",
                stacklevel=3,
            )

    def _one(self, model, pair, target, pad_token_id, IntegratedGradients, on_token):
        import torch  # here, not at import: the method registry is read before a model loads

        opts = self.options
        device = model.get_input_embeddings().weight.device  # the first device of a split model
        prompt, resp = list(pair.prompt_ids), list(pair.response_ids)
        P, R = len(prompt), len(resp)
        ids = torch.tensor([prompt + resp[:-1]], dtype=torch.long, device=device)  # y_R is never an input
        with torch.no_grad():
            emb = model.get_input_embeddings()(ids).detach()  # [1, P + R - 1, d]
            if opts.baseline == "pad":
                base_row = model.get_input_embeddings()(torch.tensor([[pad_token_id]], device=device)).detach()
            else:
                base_row = torch.zeros_like(emb[:, :1])
        prompt_emb, prefix_emb = emb[:, :P], emb[:, P:]
        y = torch.tensor(resp, dtype=torch.long, device=device)
        np_dtype = np.float64 if emb.dtype == torch.float64 else np.float32
        result = np.zeros((P, R), dtype=np_dtype)
        deltas = np.zeros(R, dtype=np.float64)

        def forward(x: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
            # x: [N, P, d] interpolated prompt embeddings; j: [N] response positions -> [N] scores
            n = x.shape[0]
            upto = int(j.max()) if n else 0  # the prefix this pass needs: y_1..y_upto
            full = torch.cat([x, prefix_emb[:, :upto].expand(n, -1, -1)], dim=1)
            mask = torch.ones(full.shape[:2], dtype=torch.long, device=device)
            hidden = backbone_hidden(model, full, mask)
            # indices on the hidden state's device (the last device of a device_map split),
            # token ids on the logits' device (the LM head's)
            h = hidden[torch.arange(n, device=hidden.device), (P - 1 + j).to(hidden.device)]
            logits = upcast(logits_from_hidden(model, h))
            return target(logits, y[j].to(logits.device))

        ig = IntegratedGradients(forward, multiply_by_inputs=True)
        chunk = max(1, min(R, opts.rows_per_pass))  # response positions per Captum call
        for start in range(0, R, chunk):
            js = torch.arange(start, min(start + chunk, R), device=device)
            k = len(js)
            inputs = prompt_emb.expand(k, -1, -1).contiguous()
            baselines = base_row.expand(k, P, -1).contiguous()
            attr, delta = ig.attribute(
                inputs,
                baselines=baselines,
                additional_forward_args=(js,),
                n_steps=opts.n_steps,
                method=opts.rule,
                internal_batch_size=opts.rows_per_pass if k * opts.n_steps > opts.rows_per_pass else None,
                return_convergence_delta=True,
            )
            result[:, start : start + k] = (
                attr.sum(-1).detach().to(torch.float64 if np_dtype == np.float64 else torch.float32).cpu().numpy().T
            )
            deltas[start : start + k] = delta.detach().double().cpu().numpy()
            if on_token is not None:
                on_token(start + k - 1, R)
        return result, deltas
