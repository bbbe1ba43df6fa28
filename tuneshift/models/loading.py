"""Load a model pair member: spec -> (model, tokenizer, resolved spec, anatomy).

GGUF files (packaged aliases or a user's path) are dequantised once by transformers'
GGUF loader and written to a local safetensors cache (``$TUNESHIFT_CACHE``, default
``~/.cache/tuneshift``), keyed by the GGUF's sha256; later loads read the cache in
seconds and need no network (``HF_HUB_OFFLINE=1`` works). A PEFT/LoRA adapter is applied
and merged into the weights (``merge_and_unload``), so every method, including the
weight-based ones, sees the tuned weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tuneshift.errors import AdapterMismatchError, ModelSpecError
from tuneshift.files import atomic_write_text, cache_dir, file_sha256
from tuneshift.models.devices import DTYPES as _DTYPES
from tuneshift.models.devices import resolve_placement
from tuneshift.models.specs import (
    PACKAGED_MODELS,
    ResolvedSpec,
    check_assemble_module,
    check_packaged,
    packaged_adapter_dir,
    packaged_gguf_path,
    resolve_spec,
)

log = logging.getLogger("tuneshift")

_CACHE_MARKER = "tuneshift-cache.json"


def _quiet_transformers_progress(fn):
    """Decorator: transformers' own progress bars (``Loading weights``, GGUF conversion) are
    off while ``fn`` runs, and the user's setting is restored afterwards (library use keeps
    theirs); tuneshift says what it loads itself (``loading ...``, ``loaded ... (N s)``)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from transformers.utils import logging as hf_logging

        was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_on:
                hf_logging.enable_progress_bar()

    return wrapper


def _say(msg: str, progress: bool) -> None:
    log.info(msg)
    if progress:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, soft_wrap=True).print(f"[dim]tuneshift:[/dim] {escape(msg)}", highlight=False)


def weights_sha256(directory: str | os.PathLike) -> str:
    """Content hash of a model directory's weight files (sorted names and bytes)."""
    d = Path(directory)
    files = sorted(p for p in d.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".gguf"))
    if not files:
        raise ModelSpecError(f"model directory {d} has no weight files (.safetensors/.bin)")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def _torch_dtype(dtype: str):
    import torch

    if dtype not in _DTYPES:
        raise ModelSpecError(f"unknown dtype '{dtype}'; choose one of {', '.join(_DTYPES)}")
    return getattr(torch, dtype)


def _convert_gguf_to_cache(gguf_path: Path, sha: str, slug: str, progress: bool) -> Path:
    """Dequantise a GGUF once and save it (model + tokenizer) as safetensors in the cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / f"{slug}-{sha[:16]}"
    if (target / _CACHE_MARKER).exists():
        return target
    _say(f"converting {gguf_path.name} to a safetensors cache (one time; about a minute)...", progress)
    t0 = time.time()
    folder, name = str(gguf_path.parent), gguf_path.name
    with open(gguf_path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelSpecError(f"{gguf_path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as e:  # corrupt or unsupported GGUF: one clear line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelSpecError(f"cannot read GGUF file {gguf_path}: {first[:300]}") from None
    # transformers refuses to save a model "quantized with gguf"; the weights are already
    # dequantised float32, so drop the quantisation markers before saving.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    tmp = Path(
        tempfile.mkdtemp(dir=target.parent if target.parent.exists() else _mk(target.parent), prefix=".convert-")
    )
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        list_added_tokens(tmp)
        (tmp / _CACHE_MARKER).write_text(
            json.dumps(
                {"gguf": str(gguf_path), "gguf_sha256": sha, "converted_seconds": round(time.time() - t0, 1)}, indent=1
            )
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _say(f"cached in {target} ({time.time() - t0:.0f} s)", progress)
    return target


def list_added_tokens(folder: str | os.PathLike) -> bool:
    """List a saved tokenizer's added tokens in its ``tokenizer_config.json`` (``added_tokens_decoder``).

    Without that entry transformers (5.x) takes its legacy path and parses the whole
    ``tokenizer.json`` a second time only to read its ``added_tokens`` (Gemma 3's is 33 MB: about
    2 s of every load), and its ``save_pretrained`` does not write the entry. Written here once,
    for the folders of tuneshift's own model cache (:func:`_convert_gguf_to_cache`, and older
    caches at their next load): the same ``AddedToken`` entries the legacy path builds (id ->
    ``content``, ``single_word``, ``lstrip``, ``rstrip``, ``normalized``, ``special``), so the
    tokenizer is the same. Left alone: a config that has the entry, a folder with the other legacy
    inputs (``special_tokens_map.json``, ``added_tokens.json``), unreadable files, a read-only cache.

    Returns:
        True when the config was rewritten.
    """
    folder = Path(folder)
    cfg_path, tok_path = folder / "tokenizer_config.json", folder / "tokenizer.json"
    if not (cfg_path.is_file() and tok_path.is_file()):
        return False
    if (folder / "special_tokens_map.json").exists() or (folder / "added_tokens.json").exists():
        return False
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if not isinstance(cfg, dict) or "added_tokens_decoder" in cfg:
            return False
        added = json.loads(tok_path.read_text(encoding="utf-8")).get("added_tokens")
        if not isinstance(added, list) or not all(isinstance(t, dict) and "id" in t for t in added):
            return False
        cfg["added_tokens_decoder"] = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added}
        atomic_write_text(cfg_path, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    except (OSError, ValueError):
        return False
    return True


def _in_model_cache(folder: str) -> bool:
    """A folder tuneshift converted into its model cache (it holds the cache marker)."""
    return (Path(folder) / _CACHE_MARKER).is_file()


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _cached_dir_for_alias(resolved: ResolvedSpec, progress: bool) -> Path:
    pm = resolved.packaged
    assert pm is not None
    if pm.gguf_in_package:
        gguf = packaged_gguf_path(pm)
        sha = file_sha256(gguf)
        resolved.source = str(gguf)
        resolved.weights_sha256 = sha
        return _convert_gguf_to_cache(gguf, sha, pm.alias, progress)
    # a package that assembles its .gguf from chunks and states its sha256
    check_assemble_module(pm)
    import importlib

    mod = importlib.import_module(pm.assemble_module)
    sha = getattr(mod, "EXPECTED_SHA256", None)
    name = getattr(mod, "MODEL_NAME", f"{pm.alias}.gguf")
    if sha:
        target = cache_dir() / "models" / f"{pm.alias}-{sha[:16]}"
        if (target / _CACHE_MARKER).exists():
            resolved.source = f"{pm.package}:{name}"
            resolved.weights_sha256 = sha
            return target
    work = _mk(cache_dir() / "gguf")
    _say(f"assembling {name} from the {pm.package} package...", progress)
    gguf = Path(mod.assemble(work / name))
    sha = sha or file_sha256(gguf)
    resolved.source = f"{pm.package}:{name}"
    resolved.weights_sha256 = sha
    target = _convert_gguf_to_cache(gguf, sha, pm.alias, progress)
    gguf.unlink(missing_ok=True)  # the cache holds the converted weights; the package can re-assemble
    return target


@dataclass
class LoadedModel:
    """A loaded causal LM with everything tuneshift needs about it.

    Attributes:
        model: the ``transformers`` model, in eval mode, all parameters frozen
            (``requires_grad=False``); a LoRA adapter, if any, is merged.
        tokenizer: its (fast) tokenizer; ``pad_token`` set (to EOS if it had none).
        spec: the :class:`~tuneshift.models.specs.ResolvedSpec`, with content hashes.
        dtype: ``float32`` (default), ``bfloat16``, ``float16`` or ``float64``.
        load_seconds: wall time of the load.
        device: where the input embeddings live (``cpu``, ``cuda:N``; the first GPU of a split model).
    """

    model: object
    tokenizer: object
    spec: ResolvedSpec
    dtype: str = "float32"
    load_seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    device: str = "cpu"

    @property
    def name(self) -> str:
        """The spec string the user gave (plus ``+adapter`` when one is applied; an adapter alias
        such as ``gemma-3-270m-instruct`` is its own name)."""
        shipped = self.spec.packaged is not None and self.spec.packaged.base
        return self.spec.spec + (f"+{Path(self.spec.adapter).name}" if self.spec.adapter and not shipped else "")

    @cached_property
    def anatomy(self):
        """The per-architecture :class:`~tuneshift.models.anatomy.Anatomy` adapter."""
        from tuneshift.models.anatomy import get_anatomy

        return get_anatomy(self.model)

    @property
    def family(self) -> str:
        return str(self.model.config.model_type)

    @property
    def context_length(self) -> int:
        """Maximum positions the model accepts (``max_position_embeddings``, or ``n_positions``)."""
        cfg = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            v = getattr(cfg, key, None)
            if isinstance(v, int) and v > 0:
                return v
        return 2048

    @property
    def eos_token_ids(self) -> list[int]:
        """Every token id that ends a response (generation config's and tokenizer's EOS)."""
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, (list, tuple)):
            ids.update(int(e) for e in eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return sorted(ids)

    def describe(self) -> dict:
        """JSON-ready identity of the model for manifests."""
        return {
            **self.spec.to_dict(),
            "family": self.family,
            "dtype": self.dtype,
            "n_parameters": int(sum(p.numel() for p in self.model.parameters())),
            "tokenizer": type(self.tokenizer).__name__,
            "vocab_size": int(self.model.config.vocab_size),
            "chat_template": bool(getattr(self.tokenizer, "chat_template", None)),
        }


def _adapter_folder(adapter: str) -> Path:
    """The folder of a PEFT adapter, checked (before any weights are read).

    Raises:
        ModelSpecError: it does not exist or has no ``adapter_config.json``.
    """
    path = Path(adapter).expanduser()
    if not path.exists():
        raise ModelSpecError(f"adapter {adapter} does not exist")
    if not (path / "adapter_config.json").exists():
        raise ModelSpecError(f"adapter {adapter} is not a PEFT adapter folder (no adapter_config.json)")
    return path


def _apply_adapter(model, adapter: str, resolved: ResolvedSpec, progress: bool):
    """Load a PEFT adapter on top of ``model`` and merge it; raise on a base mismatch."""
    path = _adapter_folder(adapter)
    manifest = path / "tuneshift_adapter.json"
    if manifest.exists():
        try:
            meta = json.loads(manifest.read_text())
        except ValueError as e:
            raise ModelSpecError(f"adapter manifest {manifest} is not valid JSON: {e}") from None
        want = meta.get("base_weights_sha256")
        if want and resolved.weights_sha256 and want != resolved.weights_sha256:
            raise AdapterMismatchError(
                f"adapter {adapter} was trained on base {meta.get('base_spec', '?')} (weights {want[:12]}), "
                f"not on {resolved.spec} (weights {resolved.weights_sha256[:12]})"
            )
    from peft import PeftModel

    _say(f"applying adapter {path.name}...", progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=False)
        except (RuntimeError, ValueError, KeyError) as e:
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
            informative = [ln for ln in lines if "size mismatch" in ln or "not found" in ln.lower()]
            first = (informative or lines or [type(e).__name__])[0]
            raise AdapterMismatchError(
                f"adapter {adapter} does not fit base model {resolved.spec}: {first[:300]}"
            ) from None
    bad = [
        str(w.message) for w in caught if "missing" in str(w.message).lower() or "unexpected" in str(w.message).lower()
    ]
    if bad:
        raise AdapterMismatchError(
            f"adapter {adapter} does not fit base model {resolved.spec}: {bad[0].splitlines()[0][:300]}"
        )
    weight_files = sorted(path.glob("adapter_model.*"))
    if weight_files:
        resolved.adapter_sha256 = file_sha256(weight_files[0])
    return peft_model.merge_and_unload()


@_quiet_transformers_progress
def load_model(
    spec: str,
    adapter: str | os.PathLike | None = None,
    dtype: str = "float32",
    progress: bool = True,
    device: str = "cpu",
) -> LoadedModel:
    """Load a model by spec, ready for the three methods.

    Args:
        spec: packaged alias (see ``tuneshift models``), path to a ``.gguf``, local model
            directory, Hugging Face hub id, or an adapter folder made by ``tuneshift tune``
            (loaded as its recorded base + the adapter).
        adapter: optional PEFT/LoRA adapter folder, merged into the weights. If the folder has
            tokenizer files, they are used; if it has only ``chat_template.jinja`` (as
            ``tuneshift tune`` writes), that template is set on the base tokenizer.
        dtype: ``float32`` (default; exact attributions), ``bfloat16``, ``float16`` (GPU only) or
            ``float64``.
        progress: print what is happening to stderr.
        device: ``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto`` (every visible GPU through
            ``device_map="auto"``; the CPU without a GPU); see :mod:`tuneshift.models.devices`.

    Returns:
        A :class:`LoadedModel` (eval mode, parameters frozen).

    Raises:
        ModelSpecError: unknown spec, missing file or package, unreadable weights.
        OptionError: a device or dtype this machine cannot use (checked before loading).
        AdapterMismatchError: the adapter was made for another base model.
        UnsupportedArchitectureError: (lazily, from ``.anatomy``) unknown family.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    placement = resolve_placement(device, dtype)
    torch_dtype = _torch_dtype(dtype)
    folder_as_adapter = _adapter_folder_base(spec)
    if folder_as_adapter is not None:
        # a folder holding only an adapter (e.g. `tuneshift tune --out DIR`): its base + it
        if adapter is not None:
            raise ModelSpecError(f"{spec} is an adapter folder; give its base as the model and it as the adapter")
        return load_model(folder_as_adapter, adapter=spec, dtype=dtype, progress=progress, device=device)
    resolved, folder, local = _resolve_and_materialise(spec, adapter, progress)

    _say(
        f"loading {spec} ({dtype}, {placement.device}{', device_map auto' if placement.device_map else ''})...",
        progress,
    )
    tok_src = _tokenizer_source(resolved, folder)
    if _in_model_cache(tok_src):
        list_added_tokens(tok_src)  # once per cache folder: later loads parse tokenizer.json once less
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_src, local_files_only=local or None)
        extra = {"device_map": placement.device_map} if placement.device_map else {}
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch_dtype, local_files_only=local or None, **extra
        )
    except OSError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelSpecError(f"cannot load model '{spec}': {msg[:300]}") from None
    except ValueError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelSpecError(f"cannot load model '{spec}': {msg[:300]}") from None
    if resolved.kind == "hub":
        resolved.revision = getattr(model.config, "_commit_hash", None)
    _adapter_template(tokenizer, resolved, tok_src, folder)
    if resolved.adapter:
        model = _apply_adapter(model, resolved.adapter, resolved, progress)
    if placement.device_map is None and placement.device != "cpu":
        model.to(placement.device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        spec=resolved,
        dtype=dtype,
        load_seconds=time.time() - t0,
        device=placement.device,
    )
    _say(
        f"loaded {loaded.name}: {loaded.family}, {loaded.describe()['n_parameters'] / 1e6:.0f}M parameters ({loaded.load_seconds:.0f} s)",
        progress,
    )
    return loaded


def _resolve_and_materialise(spec: str, adapter, progress: bool) -> tuple[ResolvedSpec, str, bool]:
    """``spec`` (+ ``adapter``) -> its :class:`ResolvedSpec`, the folder (or hub id) its base
    weights load from (a packaged GGUF converted to the cache once) and whether that is local."""
    resolved = resolve_spec(spec, adapter)
    if resolved.adapter:
        _adapter_folder(resolved.adapter)  # a wrong folder is refused before a minute's load
    if resolved.kind == "alias" and resolved.packaged.base:
        # an alias naming a base model + a LoRA adapter shipped in a package
        pm = resolved.packaged
        if resolved.adapter:
            raise ModelSpecError(
                f"'{spec}' already includes an adapter; give it as the adapter of its base '{pm.base}' instead"
            )
        base = resolve_spec(pm.base)
        folder, local = _materialise(base, progress)
        resolved.source, resolved.weights_sha256, resolved.revision = base.source, base.weights_sha256, base.revision
        resolved.adapter = str(packaged_adapter_dir(pm))
    else:
        folder, local = _materialise(resolved, progress)
    return resolved, folder, local


def _tokenizer_source(resolved: ResolvedSpec, folder: str) -> str:
    """Where the tokenizer loads from: an adapter folder that carries its own tokenizer files
    (e.g. a chat template added during instruction tuning) provides it, else the model folder."""
    if resolved.adapter and (Path(resolved.adapter).expanduser() / "tokenizer_config.json").exists():
        return str(Path(resolved.adapter).expanduser())
    return str(folder)


def _adapter_template(tokenizer, resolved: ResolvedSpec, tok_src: str, folder: str) -> None:
    """An adapter made by `tuneshift tune` ships only its chat template (the base vocabulary is
    unchanged, and a 262k-token tokenizer.json would not fit in a package): set it."""
    template = Path(resolved.adapter).expanduser() / "chat_template.jinja" if resolved.adapter else None
    if template is not None and tok_src == str(folder) and template.is_file():
        tokenizer.chat_template = template.read_text(encoding="utf-8")


def load_tokenizer(spec: str, adapter: str | os.PathLike | None = None, progress: bool = True):
    """The tokenizer :func:`load_model` would give ``spec``, without reading the model weights
    (chat template included: an adapter folder's own tokenizer or ``chat_template.jinja``).

    A packaged GGUF is still converted to the safetensors cache the first time (its tokenizer
    lives there), so a later :func:`load_model` in another process only reads the cache.

    Returns:
        A ``transformers`` tokenizer.

    Raises:
        ModelSpecError: as :func:`load_model`.
    """
    from transformers import AutoTokenizer

    folder_as_adapter = _adapter_folder_base(spec)
    if folder_as_adapter is not None:
        if adapter is not None:
            raise ModelSpecError(f"{spec} is an adapter folder; give its base as the model and it as the adapter")
        return load_tokenizer(folder_as_adapter, adapter=spec, progress=progress)
    resolved, folder, local = _resolve_and_materialise(spec, adapter, progress)
    tok_src = _tokenizer_source(resolved, folder)
    if _in_model_cache(tok_src):
        list_added_tokens(tok_src)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_src, local_files_only=local or None)
    except (OSError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelSpecError(f"cannot load the tokenizer of '{spec}': {msg[:300]}") from None
    _adapter_template(tokenizer, resolved, tok_src, folder)
    return tokenizer


def _adapter_folder_base(spec: str) -> str | None:
    """If ``spec`` is a folder with an adapter but no model (``adapter_config.json``, no
    ``config.json``), the base spec it was made for: ``tuneshift_adapter.json``'s ``base_spec``,
    else peft's ``base_model_name_or_path``; otherwise None.

    Raises:
        ModelSpecError: an adapter folder that names no base.
    """
    if spec in PACKAGED_MODELS:  # an alias wins over a folder of the same name (as in resolve_spec)
        return None
    path = Path(spec).expanduser()
    if not (path.is_dir() and (path / "adapter_config.json").exists() and not (path / "config.json").exists()):
        return None
    for name, key in (("tuneshift_adapter.json", "base_spec"), ("adapter_config.json", "base_model_name_or_path")):
        try:
            base = json.loads((path / name).read_text()).get(key)
        except (OSError, ValueError):
            base = None
        if base:
            return str(base)
    raise ModelSpecError(
        f"{spec} is a LoRA adapter folder that does not name its base model; "
        "give the base as the model and this folder as the adapter"
    )


def _materialise(resolved: ResolvedSpec, progress: bool) -> tuple[str, bool]:
    """Local folder (or hub id) to load a resolved spec from; fills in its content hash.

    Returns:
        ``(folder_or_hub_id, is_local)``.
    """
    if resolved.kind == "alias":
        return str(_cached_dir_for_alias(resolved, progress)), True
    if resolved.kind == "gguf":
        gguf = Path(resolved.source)
        sha = file_sha256(gguf)
        resolved.weights_sha256 = sha
        return str(_convert_gguf_to_cache(gguf, sha, gguf.stem.lower().replace(" ", "-")[:40], progress)), True
    if resolved.kind == "local":
        resolved.weights_sha256 = weights_sha256(resolved.source)
        return str(resolved.source), True
    return str(resolved.source), False


def list_packaged_models() -> list[dict]:
    """The packaged aliases with their description and whether their package is installed."""
    rows = []
    for pm in PACKAGED_MODELS.values():
        try:
            check_packaged(resolve_spec(pm.alias))
            installed = True
        except ModelSpecError:
            installed = False
        rows.append(
            {
                "alias": pm.alias,
                "instruction_tuned": pm.instruction_tuned,
                "installed": installed,
                "description": pm.description,
                "install": pm.install,
            }
        )
    return rows


def resolve_without_loading(spec: str, adapter: str | os.PathLike | None = None) -> ResolvedSpec | None:
    """The :class:`ResolvedSpec` that :func:`load_model` would record for ``spec`` (content
    hashes included), without reading or converting weights: for deciding that a finished run
    needs no model at all (``tuneshift demo`` re-run, a finished ``--ray`` run).

    Hashes come from the memoised file hashes (:func:`~tuneshift.files.file_sha256`), a packaged
    model's stated sha256, or a local folder's weight files. Returns None when the identity
    cannot be known before a load (a hub model's revision; a packaged model whose sha256 is
    neither stated nor in its package): the caller then loads as usual.

    Raises:
        ModelSpecError: as :func:`~tuneshift.models.specs.resolve_spec` (an unknown spec...).
    """
    folder_as_adapter = _adapter_folder_base(spec)
    if folder_as_adapter is not None:
        if adapter is not None:
            return None  # load_model refuses this; let it say so
        return resolve_without_loading(folder_as_adapter, adapter=spec)
    resolved = resolve_spec(spec, adapter)
    target = resolved
    if resolved.kind == "alias" and resolved.packaged.base:
        if resolved.adapter:
            return None  # refused by load_model
        target = resolve_spec(resolved.packaged.base)
        resolved.adapter = str(packaged_adapter_dir(resolved.packaged))
    if target.kind == "alias":
        pm = target.packaged
        if pm.gguf_in_package:
            try:
                sha = file_sha256(packaged_gguf_path(pm))
            except (OSError, ModelSpecError):
                return None
        else:
            import importlib

            try:
                sha = getattr(importlib.import_module(pm.assemble_module), "EXPECTED_SHA256", None)
            except ImportError:
                return None
        if not sha:
            return None
    elif target.kind == "gguf":
        sha = file_sha256(target.source)
    elif target.kind == "local":
        try:
            sha = weights_sha256(target.source)
        except (OSError, ModelSpecError):
            return None
    else:
        return None  # hub: the revision is known only after a download check
    resolved.weights_sha256, resolved.revision = sha, None
    if resolved.adapter:
        path = Path(resolved.adapter).expanduser()
        weight_files = sorted(path.glob("adapter_model.*")) if path.is_dir() else []
        resolved.adapter_sha256 = file_sha256(weight_files[0]) if weight_files else None
    return resolved
