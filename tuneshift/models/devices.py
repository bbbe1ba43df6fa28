"""Where a model runs and in which precision: ``--device`` and ``--dtype``, checked before any load.

Devices:

* ``cpu`` (default): the whole model on the CPU.
* ``cuda`` / ``cuda:N``: the whole model on one GPU (``cuda`` = ``cuda:0``).
* ``auto``: every visible GPU through transformers' ``device_map="auto"`` (layers split over
  the GPUs, in order, spilling to CPU memory if they do not fit: a model larger than one GPU,
  e.g. a 70B pair in bfloat16 on 2-4 80 GB GPUs); the CPU when no GPU is visible. Needs the
  ``accelerate`` package with a GPU.

Dtypes: ``float32`` (default; exact), ``bfloat16`` and ``float16`` (half the memory; GPUs),
``float64`` (tests and references). With a 16-bit model the attribution still takes the
softmax/target in float32 and accumulates the gradient x input dot product over the hidden
dimension in float32 (:func:`tuneshift.methods.attribution.gradient.gradient_x_input`); the
error against float32 measured on the packaged model is in docs/scale.md. ``float16`` is refused
on the CPU (many CPU kernels lack it, and it overflows where bfloat16 does not); use bfloat16.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuneshift.errors import OptionError

__all__ = ["DTYPES", "DEVICES", "Placement", "resolve_placement"]

DTYPES = ("float32", "bfloat16", "float16", "float64")
DEVICES = ("cpu", "cuda", "cuda:N", "auto")


@dataclass(frozen=True)
class Placement:
    """A resolved ``--device``/``--dtype``.

    Attributes:
        device: ``cpu`` or ``cuda:N`` (the device of the input embeddings; the first GPU under
            ``device_map``). device_map: ``"auto"`` to split the model over the GPUs, else None.
        dtype: one of :data:`DTYPES`. requested: the ``--device`` value as given.
    """

    device: str
    dtype: str = "float32"
    device_map: str | None = None
    requested: str = "cpu"


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_placement(device: str = "cpu", dtype: str = "float32", check_hardware: bool = True) -> Placement:
    """Check ``device`` and ``dtype`` on this machine and resolve them.

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (see the module docstring).
        dtype: one of :data:`DTYPES`.
        check_hardware: also check that this machine has the GPU (False: only the spelling,
            for a Ray driver whose workers run elsewhere; each worker checks its own).

    Returns:
        A :class:`Placement`.

    Raises:
        OptionError: an unknown value; a GPU asked for where torch sees none (or not that
            many); ``float16`` on the CPU; ``auto`` over several GPUs without ``accelerate``.
    """
    d = "cpu" if device is None else str(device).strip().lower()
    if dtype not in DTYPES:
        raise OptionError("dtype", f"must be one of {', '.join(DTYPES)}, not '{dtype}'")
    # torch is asked about GPUs only for a GPU device: `--device cpu` (and a misspelt device) is
    # checked without importing it
    gpu_device = d == "auto" or re.fullmatch(r"cuda(:\d+)?", d) is not None
    n_gpu = _cuda_count() if check_hardware and gpu_device else 1_000_000
    if d == "cpu":
        resolved, device_map = "cpu", None
    elif d == "auto":
        resolved, device_map = ("cuda:0", "auto") if n_gpu else ("cpu", None)
    elif re.fullmatch(r"cuda(:\d+)?", d):
        index = int(d.split(":")[1]) if ":" in d else 0
        if n_gpu == 0:
            import torch

            build = (
                "a CPU-only build"
                if torch.version.cuda is None
                else f"CUDA {torch.version.cuda}, but no GPU is visible"
            )
            raise OptionError(
                "device", f"{device}: torch {torch.__version__} sees no CUDA device ({build}); use --device cpu"
            )
        if index >= n_gpu:
            raise OptionError("device", f"{device}: only {n_gpu} CUDA device(s) are visible (cuda:0..cuda:{n_gpu - 1})")
        resolved, device_map = f"cuda:{index}", None
    else:
        raise OptionError("device", f"must be cpu, cuda, cuda:N or auto, not '{device}'")
    if dtype == "float16" and resolved == "cpu":
        raise OptionError(
            "dtype",
            "float16 is for GPUs (many CPU kernels lack it and it overflows where bfloat16 "
            "does not); on the CPU use bfloat16 or float32",
        )
    if device_map == "auto" and n_gpu > 1 and check_hardware:
        import importlib.util

        if importlib.util.find_spec("accelerate") is None:
            raise OptionError("device", "auto over several GPUs needs the accelerate package (pip install accelerate)")
    return Placement(resolved, dtype, device_map, d)
