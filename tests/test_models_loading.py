"""Model specs and loading: resolve_spec, load_model on tiny local folders, LoRA adapters,
the content-hash memo in the cache, and the one-time GGUF -> safetensors conversion.

Everything is offline: tiny models are built from configs (``helpers_tiny``), adapters with
``peft``, and the GGUF file is written with the ``gguf`` package from a tiny llama.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers_tiny as H
import tuneshift
from tuneshift.errors import AdapterMismatchError, ModelSpecError, TuneshiftError
from tuneshift.files import cache_dir, file_sha256
from tuneshift.models import loading
from tuneshift.models.loading import load_model, weights_sha256
from tuneshift.models.specs import PACKAGED_MODELS, resolve_spec

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

IDS = torch.tensor([[5, 17, 33, 60, 2, 99, 150, 7]])


def _logits(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits.float()


# ------------------------------------------------------------------ resolve_spec


def test_resolve_alias():
    for alias, pm in PACKAGED_MODELS.items():
        r = resolve_spec(alias)
        assert (r.kind, r.spec, r.source) == ("alias", alias, None)
        assert r.packaged is pm and r.instruction_tuned is pm.instruction_tuned
        assert "packaged" not in r.to_dict()
    # surrounding blanks are tolerated
    assert resolve_spec("  gemma-3-270m ").kind == "alias"


def test_resolve_gguf_path(tmp_path):
    f = tmp_path / "x.gguf"
    f.write_bytes(b"")  # resolving reads no weights: an empty file still resolves
    r = resolve_spec(str(f))
    assert r.kind == "gguf" and r.source == str(f.resolve()) and r.weights_sha256 is None
    up = tmp_path / "Y.GGUF"
    up.write_bytes(b"")
    assert resolve_spec(str(up)).kind == "gguf"


def test_resolve_local_dir_and_adapter(tiny_llama_dir, tmp_path):
    r = resolve_spec(str(tiny_llama_dir))
    assert r.kind == "local" and r.source == str(tiny_llama_dir.resolve()) and r.adapter is None
    r = resolve_spec(str(tiny_llama_dir), adapter=tmp_path / "ad")
    assert r.adapter == str(tmp_path / "ad")


def test_resolve_hub_id():
    for hub in ("mistralai/Mistral-7B-v0.1", "HuggingFaceTB/SmolLM2-135M-Instruct", "org/name"):
        r = resolve_spec(hub)
        assert (r.kind, r.source) == ("hub", hub)


@pytest.mark.parametrize("spec", ["no-such-model", "gemma3", "a b/c d", "org/name/extra/x y"])
def test_resolve_unknown_string(spec):
    with pytest.raises(ModelSpecError) as e:
        resolve_spec(spec)
    msg = str(e.value)
    assert "\n" not in msg
    if "unknown model spec" in msg:  # the message lists the packaged aliases
        assert all(a in msg for a in PACKAGED_MODELS)
    else:
        assert "does not exist" in msg


@pytest.mark.parametrize("spec", ["", "   ", None])
def test_resolve_empty(spec):
    with pytest.raises(ModelSpecError, match="empty model spec"):
        resolve_spec(spec)


@pytest.mark.parametrize("name", ["missing.gguf", "missing_dir/", "a/b/c"])
def test_resolve_nonexistent_path(tmp_path, name):
    spec = str(tmp_path / name)
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_spec(spec)
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_spec("./definitely-missing-model-dir")
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_spec("~/definitely-missing-model-dir-xyz")


def test_resolve_not_gguf_and_no_config(tmp_path):
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelSpecError, match="not a .gguf file"):
        resolve_spec(str(f))
    d = tmp_path / "folder"
    d.mkdir()
    with pytest.raises(ModelSpecError, match="no config.json"):
        resolve_spec(str(d))


def test_model_spec_error_is_a_tuneshift_error():
    assert issubclass(ModelSpecError, TuneshiftError) and issubclass(AdapterMismatchError, TuneshiftError)


# ------------------------------------------------------------------ load_model (local folder)


def _documented_weights_sha(model_dir: Path) -> str:
    """``weights_sha256``'s rule: sha256 over (name, sha256 hex of bytes) of the sorted weight files."""
    h = hashlib.sha256()
    for p in sorted(
        p for p in Path(model_dir).iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".gguf")
    ):
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).hexdigest().encode())
    return h.hexdigest()


def test_load_local_frozen_eval_hash(tiny_llama, tiny_llama_dir):
    m = tiny_llama.model
    params = list(m.parameters())
    assert params and not any(p.requires_grad for p in params)
    assert not m.training and not any(mod.training for mod in m.modules())
    assert all(p.dtype == torch.float32 for p in params)
    s = tiny_llama.spec
    assert s.kind == "local" and s.source == str(tiny_llama_dir.resolve())
    assert s.weights_sha256 == _documented_weights_sha(tiny_llama_dir) == weights_sha256(tiny_llama_dir)
    assert s.adapter is None and s.adapter_sha256 is None and s.revision is None
    tok = tiny_llama.tokenizer
    assert tok.pad_token is not None and tok.pad_token_id is not None
    d = tiny_llama.describe()
    assert set(d) >= {
        "spec",
        "kind",
        "source",
        "weights_sha256",
        "adapter",
        "adapter_sha256",
        "family",
        "dtype",
        "n_parameters",
        "tokenizer",
        "vocab_size",
        "chat_template",
    }
    assert d["family"] == "llama" == tiny_llama.family and d["dtype"] == "float32"
    assert d["n_parameters"] == sum(p.numel() for p in params)
    assert d["vocab_size"] == m.config.vocab_size and d["chat_template"] is False
    json.dumps(d)  # JSON-ready
    assert tiny_llama.context_length == 128
    assert tok.eos_token_id in tiny_llama.eos_token_ids
    assert tiny_llama.name == str(tiny_llama_dir)


def test_load_sets_missing_pad_token_to_eos(tmp_path):
    tok = H.make_tokenizer("bpe")
    model = H.make_tiny_model(H.make_tokenizer("bpe"))
    tok.pad_token = None
    d = tmp_path / "nopad"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    lm = load_model(str(d), progress=False)
    assert lm.tokenizer.pad_token == lm.tokenizer.eos_token and lm.tokenizer.pad_token_id == lm.tokenizer.eos_token_id


def test_load_bfloat16(tiny_llama_dir):
    lm = load_model(str(tiny_llama_dir), dtype="bfloat16", progress=False)
    assert lm.dtype == "bfloat16" and lm.describe()["dtype"] == "bfloat16"
    assert all(p.dtype == torch.bfloat16 for p in lm.model.parameters())
    assert not any(p.requires_grad for p in lm.model.parameters())


@pytest.mark.parametrize(
    "dtype, match",
    [
        ("fp32", "must be one of"),
        ("", "must be one of"),
        ("int8", "must be one of"),
        ("float16", "float16 is for GPUs"),
    ],
)
def test_load_bad_dtype(tiny_llama_dir, dtype, match):
    from tuneshift.errors import OptionError

    with pytest.raises(OptionError, match=match):
        load_model(str(tiny_llama_dir), dtype=dtype, progress=False)


def test_load_dir_without_weights(tiny_llama_dir, tmp_path):
    d = tmp_path / "noweights"
    d.mkdir()
    shutil.copy(tiny_llama_dir / "config.json", d / "config.json")
    with pytest.raises(ModelSpecError, match="no weight files"):
        load_model(str(d), progress=False)


def test_load_errors_are_model_spec_errors(tmp_path):
    assert tuneshift.load_model is load_model and tuneshift.LoadedModel is loading.LoadedModel  # public API
    with pytest.raises(ModelSpecError, match="unknown model spec"):
        load_model("no-such-model", progress=False)
    with pytest.raises(ModelSpecError, match="does not exist"):
        load_model(str(tmp_path / "nope"), progress=False)


# ------------------------------------------------------------------ LoRA adapters


@pytest.fixture(scope="module")
def lora_adapter_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """A LoRA adapter (r=2 on q_proj/v_proj) for ``tiny_llama_dir`` whose B matrices are random
    (non-zero), so it changes the model's output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    pm = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    out = tmp_path_factory.mktemp("lora") / "adapter"
    pm.save_pretrained(str(out))
    return out


def test_adapter_logits_match_peft(tiny_llama_dir, lora_adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lm = load_model(str(tiny_llama_dir), adapter=str(lora_adapter_dir), progress=False)
    # merged: a plain model again (every method sees the tuned weights), frozen, eval
    assert type(lm.model).__name__ == "LlamaForCausalLM"
    assert not any("lora" in k for k in lm.model.state_dict())
    assert not any(p.requires_grad for p in lm.model.parameters()) and not lm.model.training
    ref = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), str(lora_adapter_dir)
    ).eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    got, want, plain = _logits(lm.model), _logits(ref), _logits(base)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, rtol=1e-5)
    assert (got - plain).abs().max().item() > 1e-2  # the adapter changes the output
    s = lm.spec
    assert s.adapter == str(lora_adapter_dir)
    assert s.adapter_sha256 == hashlib.sha256((lora_adapter_dir / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert s.weights_sha256 == _documented_weights_sha(tiny_llama_dir)  # the base's identity
    assert lm.name == f"{tiny_llama_dir}+adapter"
    assert lm.describe()["adapter_sha256"] == s.adapter_sha256
    lm.anatomy  # merged model: the anatomy adapter accepts it


def test_adapter_manifest_base_mismatch(tiny_llama_dir, lora_adapter_dir, tmp_path):
    ad = tmp_path / "adapter"
    shutil.copytree(lora_adapter_dir, ad)
    good = weights_sha256(tiny_llama_dir)
    (ad / "tuneshift_adapter.json").write_text(
        json.dumps({"base_spec": "some-other-base", "base_weights_sha256": "0" * 64})
    )
    with pytest.raises(AdapterMismatchError) as e:
        load_model(str(tiny_llama_dir), adapter=str(ad), progress=False)
    assert "some-other-base" in str(e.value) and good[:12] in str(e.value) and "\n" not in str(e.value)
    # the right base is accepted
    (ad / "tuneshift_adapter.json").write_text(json.dumps({"base_spec": "tiny", "base_weights_sha256": good}))
    assert load_model(str(tiny_llama_dir), adapter=str(ad), progress=False).spec.adapter_sha256
    # a broken manifest is a user error, not a crash
    (ad / "tuneshift_adapter.json").write_text("{not json")
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        load_model(str(tiny_llama_dir), adapter=str(ad), progress=False)


def test_adapter_for_another_base_shape(tiny_model_dir_factory, lora_adapter_dir):
    other = tiny_model_dir_factory("llama", hidden_size=48, head_dim=12)
    with pytest.raises(AdapterMismatchError, match="does not fit"):
        load_model(str(other), adapter=str(lora_adapter_dir), progress=False)


def test_adapter_folder_without_config(tiny_llama_dir, tmp_path):
    with pytest.raises(ModelSpecError, match="no adapter_config.json"):
        load_model(str(tiny_llama_dir), adapter=str(tmp_path), progress=False)


# ------------------------------------------------------------------ cache and hash memo


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESHIFT_CACHE", str(tmp_path / "my-cache"))
    assert cache_dir() == tmp_path / "my-cache" and (tmp_path / "my-cache").is_dir()
    monkeypatch.delenv("TUNESHIFT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tuneshift" and cache_dir().is_dir()


def test_test_session_uses_a_private_cache(tiny_cache_dir):
    if tiny_cache_dir is None:
        pytest.skip("TUNESHIFT_CACHE set by the user")
    assert cache_dir() == tiny_cache_dir
    assert Path.home() / ".cache" / "tuneshift" != cache_dir()


def test_file_sha256_is_hashlib_and_memoised(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESHIFT_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "blob.bin"
    data = os.urandom((1 << 22) + 4097)  # more than one 4 MiB read block
    f.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert file_sha256(f) == want
    memo = json.loads((tmp_path / "cache" / "hashes.json").read_text())
    assert want in memo.values() and any(k.startswith(str(f.resolve()) + "|") for k in memo)

    def no_open(*a, **k):
        raise AssertionError("file_sha256 read the file again instead of using its memo")

    monkeypatch.setattr(loading, "open", no_open, raising=False)
    assert file_sha256(f) == want
    assert file_sha256(str(f)) == want
    monkeypatch.undo()
    # a changed file (new size/mtime) is hashed again
    monkeypatch.setenv("TUNESHIFT_CACHE", str(tmp_path / "cache"))
    f.write_bytes(data + b"!")
    assert file_sha256(f) == hashlib.sha256(data + b"!").hexdigest()
    # a corrupt memo is ignored, not fatal
    (tmp_path / "cache" / "hashes.json").write_text("{broken")
    assert file_sha256(f) == hashlib.sha256(data + b"!").hexdigest()


# ------------------------------------------------------------------ GGUF


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF -> GGUF rotary layout of q/k (llama.cpp's convert_hf_to_gguf ``permute``)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path: Path, model, tok) -> Path:
    """Write a tiny llama (float32 tensors) with its byte-level BPE tokenizer as a GGUF file."""
    import gguf

    cfg = model.config
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name("tiny llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = tok.get_vocab()
    tokens = [""] * len(vocab)
    for s, i in vocab.items():
        tokens[i] = s
    special = set(tok.all_special_ids)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for i in range(len(tokens))])
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_add_bos_token(False)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.attn_q.weight", _permute(sd[p + "self_attn.q_proj.weight"], nh))
        w.add_tensor(f"blk.{i}.attn_k.weight", _permute(sd[p + "self_attn.k_proj.weight"], nkv))
        w.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_converted_once_into_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESHIFT_CACHE", str(tmp_path / "cache"))
    tok = H.make_tokenizer("bpe")
    model = H.make_tiny_model(tok, "llama", seed=0)
    path = write_tiny_gguf(tmp_path / "Tiny Llama.gguf", model, tok)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()

    said: list[str] = []
    real_say = loading._say
    monkeypatch.setattr(loading, "_say", lambda msg, progress: (said.append(msg), real_say(msg, False)))
    lm1 = load_model(str(path), progress=False)
    assert lm1.spec.kind == "gguf" and lm1.spec.weights_sha256 == sha and lm1.spec.source == str(path.resolve())
    assert sum("converting" in m for m in said) == 1
    targets = list((tmp_path / "cache" / "models").iterdir())
    assert [t.name for t in targets] == [f"tiny-llama-{sha[:16]}"]  # slug: stem lowercased, blanks -> "-"
    marker = targets[0] / "tuneshift-cache.json"
    meta = json.loads(marker.read_text())
    assert meta["gguf_sha256"] == sha and meta["gguf"] == str(path.resolve())
    assert list(targets[0].glob("*.safetensors"))
    assert not list((tmp_path / "cache" / "models").glob(".convert-*"))  # no temp folder left
    mtime = marker.stat().st_mtime_ns

    # the GGUF holds exactly the original model (q/k permutation undone by transformers)
    ids = tok("Rewrite the sentence politely. send the report now", return_tensors="pt").input_ids
    assert lm1.tokenizer("Rewrite the sentence politely. send the report now")["input_ids"] == ids[0].tolist()
    np.testing.assert_allclose(_logits(lm1.model, ids).numpy(), _logits(model, ids).numpy(), atol=1e-5, rtol=1e-5)

    # second load: read from the cache, no conversion (transformers' GGUF loader is never called)
    said.clear()
    import transformers

    real_from_pretrained = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def guarded(cls, *a, **k):
        assert "gguf_file" not in k, "the GGUF was converted again"
        return real_from_pretrained(cls, *a, **k)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(guarded))
    lm2 = load_model(str(path), progress=False)
    assert not any("converting" in m for m in said)
    assert marker.stat().st_mtime_ns == mtime
    assert lm2.spec.weights_sha256 == sha
    np.testing.assert_array_equal(_logits(lm2.model, ids).numpy(), _logits(lm1.model, ids).numpy())
    assert not any(p.requires_grad for p in lm2.model.parameters())


@pytest.mark.parametrize("content", [b"", b"GGUF garbage", b"not a gguf file at all, just text"])
def test_corrupt_gguf_is_a_model_spec_error(tmp_path, monkeypatch, content):
    monkeypatch.setenv("TUNESHIFT_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "broken.gguf"
    f.write_bytes(content)
    with pytest.raises(ModelSpecError, match="broken.gguf"):
        load_model(str(f), progress=False)
    models = tmp_path / "cache" / "models"
    assert not models.exists() or not any(models.iterdir())  # no half-converted cache entry


def test_a_folder_that_is_no_adapter_is_refused_before_the_weights_load(tiny_llama_dir, tmp_path, monkeypatch):
    # a new-user trial: `--adapter DIR` without adapter_config.json was refused only after the load
    import tuneshift.models.loading as L
    from tuneshift.errors import ModelSpecError

    def no_weights(*a, **k):
        raise AssertionError("the weights were read before the adapter folder was checked")

    monkeypatch.setattr(L, "_materialise", no_weights)
    (tmp_path / "notes.txt").write_text("not an adapter")
    with pytest.raises(ModelSpecError, match="no adapter_config.json"):
        L.load_model(str(tiny_llama_dir), adapter=str(tmp_path))
    with pytest.raises(ModelSpecError, match="does not exist"):
        L.load_model(str(tiny_llama_dir), adapter=str(tmp_path / "missing"))
