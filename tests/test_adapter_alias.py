"""Packaged adapter aliases: a base spec + a LoRA adapter folder (+ its tokenizer/chat template)."""

from __future__ import annotations

import pytest
import torch

import tuneshift
from tuneshift.errors import ModelSpecError
from tuneshift.models import specs


@pytest.fixture
def adapter_dir(tmp_path, tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    peft_model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(3)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # a non-zero update, so the adapter changes the output
    out = tmp_path / "adapter"
    peft_model.save_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok.save_pretrained(str(out))
    return out


def test_adapter_alias_loads_base_plus_adapter_and_its_template(monkeypatch, tiny_llama_dir, adapter_dir):
    alias = specs.PackagedModel(
        alias="tiny-instruct",
        package="none",
        install="n/a",
        description="test",
        instruction_tuned=True,
        base=str(tiny_llama_dir),
        adapter_in_package=str(adapter_dir),
    )
    monkeypatch.setitem(specs.PACKAGED_MODELS, "tiny-instruct", alias)
    tuned = tuneshift.load_model("tiny-instruct", progress=False)
    same = tuneshift.load_model(str(tiny_llama_dir), adapter=str(adapter_dir), progress=False)
    base = tuneshift.load_model(str(tiny_llama_dir), progress=False)
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        lt, ls, lb = (m.model(ids).logits for m in (tuned, same, base))
    assert torch.allclose(lt, ls, atol=1e-6)
    assert (lt - lb).abs().max() > 1e-3  # the adapter is applied (merged)
    assert tuned.spec.weights_sha256 == base.spec.weights_sha256 and tuned.spec.adapter_sha256
    assert tuned.tokenizer.chat_template and "<|im_start|>assistant" in tuned.tokenizer.chat_template
    assert not base.tokenizer.chat_template
    with pytest.raises(ModelSpecError, match="already includes an adapter"):
        tuneshift.load_model("tiny-instruct", adapter=str(adapter_dir), progress=False)


def test_adapter_alias_with_missing_adapter_folder(monkeypatch, tiny_llama_dir, tmp_path):
    alias = specs.PackagedModel(
        alias="tiny-broken",
        package="tiny-pkg",
        install="pip install tiny-pkg",
        description="t",
        instruction_tuned=True,
        base=str(tiny_llama_dir),
        adapter_in_package=str(tmp_path / "nope"),
    )
    monkeypatch.setitem(specs.PACKAGED_MODELS, "tiny-broken", alias)
    with pytest.raises(ModelSpecError, match="adapter of 'tiny-broken' is missing"):
        tuneshift.load_model("tiny-broken", progress=False)
