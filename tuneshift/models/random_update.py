"""A random-update null model: the base plus a random update of the tuned model's size.

For the weight-based methods (heads, concepts: Wu et al., NAACL 2024, sections on the
self-attention and feed-forward explanations) a shift between a base model and its tuned
counterpart needs a baseline: how much would heads and concepts change under *any* update of
that size? :func:`random_update_model` builds ``base + R`` where, for every parameter tensor
whose values differ between the base and the tuned model, ``R`` has the same Frobenius norm
as ``tuned - base`` for that tensor:

* a weight adapted by a LoRA adapter of rank ``r`` (read from the tuned model's adapter folder,
  or from its unmerged PEFT layers) gets a random low-rank ``R = U @ V`` with gaussian
  ``U [out, r]`` and ``V [r, in]`` (in the stored layout of the weight), scaled to the norm;
* any other changed tensor (full fine-tuning, ``modules_to_save``, norm gains) gets a dense
  gaussian ``R`` of its shape, scaled to the norm;
* tensors equal in both models are left bit-identical.

Each tensor's generator is seeded from ``sha256(seed, parameter name)``, so the result does not
depend on the order in which tensors are visited. The gaussians are drawn in float64 on the
CPU, in blocks of rows of a fixed size (so a 7B model's embedding never needs a whole float64
copy); ``base + R`` is computed in float64 and rounded once to the weight's dtype.

Memory: the call holds the base, the tuned and the null weights at once (three models), unless
``in_place=True``, which turns the base itself into the null (two models; the base object must
not be used as the base afterwards). Deltas are computed tensor by tensor, in blocks of rows;
no copy of a whole model is made besides the null itself.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tuneshift.errors import ModelSpecError
from tuneshift.models.loading import LoadedModel

__all__ = [
    "RandomUpdateModel",
    "random_update_model",
    "load_random_update",
    "check_random_update_specs",
    "random_update_tensor",
    "adapter_ranks",
    "tensor_seed",
    "RULE",
]

RULE = "same Frobenius norm per tensor; rank r for LoRA-adapted weights"
"""The rule recorded in a null model's identity."""

_BLOCK_ELEMENTS = 1 << 22  # about 4M elements (32 MB in float64) per block of rows


def tensor_seed(seed: int, name: str) -> int:
    """The generator seed of parameter ``name``: the first 63 bits of ``sha256("seed:name")``."""
    digest = hashlib.sha256(f"tuneshift-random-update:{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class RandomUpdateModel(LoadedModel):
    """A :class:`~tuneshift.models.loading.LoadedModel` that is ``base + R`` (see the module docstring).

    ``model``, ``tokenizer``, ``spec`` and ``dtype`` are the base's (``model`` with the random
    update added). :meth:`describe` never passes for the base: it is
    ``{"spec": name, "random_update": {"of": base identity, "like": tuned identity, "seed",
    "rule", "n_tensors_updated", "n_low_rank", "ranks"}, "family", "dtype", ...}``.

    Attributes:
        random_update: the ``random_update`` entry of the identity.
    """

    random_update: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``random-update(BASE, like TUNED, seed S)``."""
        ru = self.random_update
        return f"random-update({ru['of'].get('spec', '?')}, like {ru['like_name']}, seed {ru['seed']})"

    def describe(self) -> dict:
        """JSON-ready identity: what it is a random update of, like which tuned model, the seed
        and the rule (the base's spec fields are only under ``random_update.of``)."""
        d = super().describe()
        ru = {k: v for k, v in self.random_update.items() if k != "like_name"}
        return {
            "spec": self.name,
            "random_update": ru,
            **{k: d[k] for k in ("family", "dtype", "n_parameters", "tokenizer", "vocab_size", "chat_template")},
        }


def adapter_ranks(adapter_dir: str | Path) -> dict[str, int]:
    """The LoRA rank of every weight a PEFT adapter folder adapts, keyed by the parameter name of
    the plain (merged) model, e.g. ``{"model.layers.0.self_attn.q_proj.weight": 16}``.

    Reads only the tensor shapes of ``adapter_model.safetensors`` (``lora_A`` is ``[r, in]``,
    ``lora_embedding_A`` ``[r, num_embeddings]``), so ``rank_pattern`` entries are honoured.

    Raises:
        ModelSpecError: no ``adapter_model.safetensors`` in the folder.
    """
    from safetensors import safe_open

    path = Path(adapter_dir).expanduser() / "adapter_model.safetensors"
    if not path.is_file():
        raise ModelSpecError(f"adapter {adapter_dir} has no adapter_model.safetensors: cannot read its LoRA ranks")
    out: dict[str, int] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            for marker in (".lora_A.weight", ".lora_embedding_A"):
                if key.endswith(marker):
                    module = key[: -len(marker)]
                    module = module[len("base_model.model.") :] if module.startswith("base_model.model.") else module
                    out[module + ".weight"] = int(f.get_slice(key).get_shape()[0])
    return out


def _plain_root(model):
    """The transformers model inside a PEFT wrapper (``PeftModel`` -> ``LoraModel`` -> model)."""
    try:
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTuner
    except ImportError:  # pragma: no cover - peft is a dependency
        return model
    if isinstance(model, PeftModel):
        model = model.base_model
    if isinstance(model, BaseTuner):
        model = model.model
    return model


_PEFT_SEGMENTS = ("base_layer", "original_module")


def _plain_name(name: str) -> str | None:
    """A PEFT-wrapped parameter name as the plain model names it; None for adapter parameters."""
    parts = name.split(".")
    if any(p.startswith("lora_") for p in parts):
        return None
    out, i = [], 0
    while i < len(parts):
        if parts[i] in _PEFT_SEGMENTS:
            i += 1
        elif parts[i] == "modules_to_save":
            i += 2  # modules_to_save.<adapter name>
        else:
            out.append(parts[i])
            i += 1
    return ".".join(out)


def _tuned_tensor(root, name: str):
    """The value of plain parameter ``name`` in the (possibly PEFT-wrapped) tuned model: the
    effective weight of an unmerged LoRA layer (base + delta), a ``modules_to_save`` copy, or
    the parameter itself."""
    from tuneshift.models.anatomy.base import _is_tuner_layer, base_layer, effective_weight

    module_path, _, attr = name.rpartition(".")
    try:
        module = root.get_submodule(module_path) if module_path else root
    except AttributeError:
        return None
    if attr == "weight" and (_is_tuner_layer(module) or hasattr(module, "modules_to_save")):
        return effective_weight(module)
    value = getattr(base_layer(module), attr, None)
    return value.detach() if value is not None else None


def _live_ranks(root) -> dict[str, int]:
    """LoRA ranks of unmerged, active PEFT LoRA layers (sum over active adapters)."""
    from tuneshift.models.anatomy.base import _is_tuner_layer

    out = {}
    for mname, module in root.named_modules():
        if not _is_tuner_layer(module) or module.merged or module.disable_adapters:
            continue
        ranks = getattr(module, "r", {}) or {}
        active = [a for a in module.active_adapters if a in ranks]
        if active:
            out[(_plain_name(mname) or mname) + ".weight"] = int(sum(ranks[a] for a in active))
    return out


def _row_blocks(shape) -> list[slice]:
    rows = shape[0] if len(shape) else 1
    per_row = max(1, int(_prod(shape[1:])))
    step = max(1, _BLOCK_ELEMENTS // per_row)
    return [slice(i, min(rows, i + step)) for i in range(0, rows, step)]


def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def _delta_norm(base_p, tuned_p) -> float:
    """``||tuned - base||_F`` in float64, by blocks of rows."""
    import torch

    if base_p.ndim == 0:
        return float((tuned_p.double() - base_p.double()).abs())
    total = 0.0
    for s in _row_blocks(base_p.shape):
        d = tuned_p[s].to("cpu", torch.float64) - base_p[s].to("cpu", torch.float64)
        total += float((d * d).sum())
    return total**0.5


def random_update_tensor(name: str, shape, norm: float, seed: int = 0, rank: int | None = None):
    """The random update ``R`` of one tensor, float64 on the CPU (used by :func:`random_update_model`;
    the whole tensor at once, for tests and small tensors).

    Args:
        name: the parameter name (seeds the generator with :func:`tensor_seed`).
        shape: the tensor's shape. norm: the Frobenius norm ``R`` gets.
        seed: the null's seed. rank: ``r`` for a LoRA-adapted 2-D weight (``U [out, r] @ V [r, in]``,
            ``r`` capped at ``min(out, in)``), None for a dense gaussian.

    Returns:
        ``R`` of ``shape``, float64, ``||R||_F == norm`` (0 when ``norm`` is 0).
    """
    import torch

    blocks = list(_blocks_of_update(name, tuple(shape), norm, seed, rank))
    if not blocks:
        return torch.zeros(tuple(shape), dtype=torch.float64)
    return torch.cat([b for _s, b in blocks]) if len(shape) else blocks[0][1]


def _blocks_of_update(name: str, shape: tuple, norm: float, seed: int, rank: int | None):
    """Yield ``(row slice, R[rows])`` float64 blocks of the random update of one tensor."""
    import torch

    if norm == 0.0:
        return
    g = torch.Generator(device="cpu")
    if rank is not None and len(shape) == 2:
        r = max(1, min(int(rank), shape[0], shape[1]))
        g.manual_seed(tensor_seed(seed, name))
        u = torch.randn((shape[0], r), generator=g, dtype=torch.float64)
        v = torch.randn((r, shape[1]), generator=g, dtype=torch.float64)
        fro = float(torch.trace((u.T @ u) @ (v @ v.T)).clamp_min(0.0)) ** 0.5  # ||U V||_F without forming U V
        scale = norm / fro
        for s in _row_blocks(shape):
            yield s, (u[s] @ v) * scale
        return
    if len(shape) == 0:
        g.manual_seed(tensor_seed(seed, name))
        x = torch.randn((), generator=g, dtype=torch.float64)
        yield None, x / x.abs() * norm
        return
    blocks = _row_blocks(shape)
    sq = 0.0
    g.manual_seed(tensor_seed(seed, name))
    for s in blocks:  # pass 1: the norm of the gaussian, block by block
        x = torch.randn((s.stop - s.start, *shape[1:]), generator=g, dtype=torch.float64)
        sq += float((x * x).sum())
    scale = norm / sq**0.5
    g.manual_seed(tensor_seed(seed, name))
    for s in blocks:  # pass 2: the same draws again, scaled
        yield s, torch.randn((s.stop - s.start, *shape[1:]), generator=g, dtype=torch.float64) * scale


def random_update_model(
    base: LoadedModel, tuned: LoadedModel, seed: int = 0, in_place: bool = False, ranks: dict[str, int] | None = None
) -> RandomUpdateModel:
    """``base + R``: a random update with the tuned model's per-tensor Frobenius norms (the null
    of the weight-based comparisons; see the module docstring).

    Args:
        base: the pre-trained model (plain, not PEFT-wrapped).
        tuned: its tuned counterpart, same architecture and parameter names; merged (as
            :func:`~tuneshift.models.loading.load_model` returns it, its adapter folder in
            ``tuned.spec.adapter`` gives the LoRA ranks) or an unmerged PEFT LoRA model.
        seed: the null's seed (each tensor: ``sha256(seed, name)``).
        in_place: add ``R`` to ``base.model`` itself instead of a deep copy (saves one model's
            memory; ``base`` is then the null and must not be used as the base).
        ranks: ``{parameter name: r}`` to use instead of the adapter's (tests, other tools).

    Returns:
        A :class:`RandomUpdateModel` (the base's tokenizer; eval mode, parameters frozen).

    Raises:
        ModelSpecError: a PEFT-wrapped base; a tuned model with a parameter the base lacks, or
            of another shape (not a tuned version of the base); unreadable adapter ranks;
            identical models (nothing to be the size of).
    """
    import torch

    root_b = base.model
    if _plain_root(root_b) is not root_b or any(_plain_name(n) != n for n, _ in root_b.named_parameters()):
        raise ModelSpecError("the base of a random update must be a plain model (merge its adapter first)")
    root_t = _plain_root(tuned.model)
    if ranks is None:
        ranks = _live_ranks(root_t)
        if tuned.spec.adapter:
            ranks = {**adapter_ranks(tuned.spec.adapter), **ranks}
    base_params = dict(root_b.named_parameters())
    tuned_names = {_plain_name(n) for n, _ in root_t.named_parameters()} - {None}
    extra = sorted(tuned_names - set(base_params))
    if extra:
        raise ModelSpecError(
            f"the tuned model {tuned.name} has parameter {extra[0]} that the base {base.name} lacks: "
            "a random update needs a tuned version of the same base"
        )
    plan = []  # (name, norm, rank) of the tensors that differ
    for name, p in base_params.items():
        t = _tuned_tensor(root_t, name)
        if t is None or tuple(t.shape) != tuple(p.shape):
            got = "no such parameter" if t is None else f"shape {tuple(t.shape)}"
            raise ModelSpecError(
                f"parameter {name} of the base {base.name} has shape {tuple(p.shape)}, the tuned "
                f"model {tuned.name} {got}: a random update needs a tuned version of the same base"
            )
        if torch.equal(t.to(p.device), p.detach()):
            continue
        plan.append((name, _delta_norm(p.detach(), t.to(p.device)), ranks.get(name) if p.ndim == 2 else None))
    if not plan:
        raise ModelSpecError(
            f"{base.name} and {tuned.name} have identical weights: a random update of their size is zero"
        )
    model = root_b if in_place else copy.deepcopy(root_b)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, norm, rank in plan:
            p = params[name]
            for s, block in _blocks_of_update(name, tuple(p.shape), norm, seed, rank):
                target = p.data if s is None else p.data[s]
                target.copy_((target.to("cpu", torch.float64) + block).to(p.dtype))
    model.eval()
    model.requires_grad_(False)
    low = [r for _n, _norm, r in plan if r is not None]
    like = json.loads(json.dumps(tuned.describe(), default=str))
    info = {
        "of": json.loads(json.dumps(base.describe(), default=str)),
        "like": like,
        "seed": int(seed),
        "rule": RULE,
        "n_tensors_updated": len(plan),
        "n_low_rank": len(low),
        "ranks": sorted(set(low)),
        "like_name": tuned.name,
    }
    return RandomUpdateModel(
        model=model,
        tokenizer=base.tokenizer,
        spec=base.spec,
        dtype=base.dtype,
        load_seconds=base.load_seconds,
        extra=dict(base.extra),
        device=base.device,
        random_update=info,
    )


def check_random_update_specs(base_spec: str, like_spec: str, like_adapter=None, seed: int = 0) -> None:
    """The checks :func:`load_random_update` makes before any load: both specs resolve, an
    adapter folder exists, the seed is >= 0, and the tuned model is not the base itself.

    Raises:
        ModelSpecError: an unknown spec, a missing adapter folder, the base given as its own tuned model.
        OptionError: ``seed`` < 0.
    """
    from tuneshift.errors import OptionError
    from tuneshift.models.loading import _adapter_folder, _adapter_folder_base
    from tuneshift.models.specs import resolve_spec

    if int(seed) < 0:
        raise OptionError("null_seed", f"must be >= 0, got {seed}")
    resolve_spec(base_spec)
    if _adapter_folder_base(like_spec) is None:
        resolve_spec(like_spec, like_adapter)
    if like_adapter is not None:
        _adapter_folder(str(like_adapter))
    if like_adapter is None and str(like_spec) == str(base_spec):
        raise ModelSpecError(
            f"--random-update-like {like_spec} is the base model itself: a random update of its "
            "size is zero; give the tuned model"
        )


def load_random_update(
    base_spec: str,
    like_spec: str,
    like_adapter=None,
    seed: int = 0,
    dtype: str = "float32",
    device: str = "cpu",
    progress: bool = True,
) -> RandomUpdateModel:
    """Load ``base_spec`` and ``like_spec`` (+ ``like_adapter``) and return the base + a random
    update of the tuned model's size (:func:`random_update_model`, ``in_place=True``: the tuned
    model is dropped before returning, so the peak is two models' weights and one remains).

    Raises:
        As :func:`check_random_update_specs`, :func:`~tuneshift.models.loading.load_model` and
        :func:`random_update_model`.
    """
    import gc

    from tuneshift.models.loading import _say, load_model

    check_random_update_specs(base_spec, like_spec, like_adapter, seed)
    base = load_model(base_spec, dtype=dtype, progress=progress, device=device)
    tuned = load_model(like_spec, adapter=like_adapter, dtype=dtype, progress=progress, device=device)
    null = random_update_model(base, tuned, seed=seed, in_place=True)
    del tuned, base
    gc.collect()
    ru = null.random_update
    _say(
        f"random update of {ru['of'].get('spec')} like {ru['like_name']} (seed {ru['seed']}): "
        f"{ru['n_tensors_updated']} tensors, {ru['n_low_rank']} of them low rank {ru['ranks']}",
        progress,
    )
    return null
