"""The random-update null model (tuneshift.models.random_update): norms, ranks, seeds, identity."""

from __future__ import annotations

import pytest
import torch

import tuneshift
from tuneshift.errors import ModelSpecError
from tuneshift.models.random_update import RULE, adapter_ranks, random_update_model, random_update_tensor, tensor_seed

RANK = 2


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, tiny_llama_dir):
    """A rank-2 LoRA adapter on q_proj, v_proj and down_proj of the tiny llama (non-zero update)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    peft_model = get_peft_model(
        base, LoraConfig(r=RANK, lora_alpha=4, target_modules=["q_proj", "v_proj", "down_proj"])
    )
    torch.manual_seed(3)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(str(out))
    return out


def _load(path, adapter=None):
    return tuneshift.load_model(str(path), adapter=str(adapter) if adapter else None, dtype="float64", progress=False)


@pytest.fixture(scope="module")
def lora_pair(tiny_llama_dir, lora_dir):
    return _load(tiny_llama_dir), _load(tiny_llama_dir, lora_dir)


def _params(m):
    return dict(m.model.named_parameters())


def test_adapter_ranks_names_the_plain_parameters(lora_dir):
    ranks = adapter_ranks(lora_dir)
    assert ranks and set(ranks.values()) == {RANK}
    assert "model.layers.0.self_attn.q_proj.weight" in ranks and "model.layers.1.mlp.down_proj.weight" in ranks
    assert not any("k_proj" in k for k in ranks)


def test_lora_null_matches_norms_and_ranks_and_keeps_the_rest(lora_pair, lora_dir):
    base, tuned = lora_pair
    null = random_update_model(base, tuned, seed=0)
    pb, pt, pn = _params(base), _params(tuned), _params(null)
    assert set(pb) == set(pn)
    ranks = adapter_ranks(lora_dir)
    n_changed = 0
    for name, b in pb.items():
        delta = pt[name].double() - b.double()
        r = pn[name].double() - b.double()
        if torch.equal(pt[name], b):
            assert torch.equal(pn[name], b), name  # unchanged tensors: bit-identical
            continue
        n_changed += 1
        assert name in ranks, name  # only the adapted weights changed
        torch.testing.assert_close(torch.linalg.norm(r), torch.linalg.norm(delta), rtol=1e-6, atol=0)
        assert int(torch.linalg.matrix_rank(r)) == RANK, name
        assert not torch.allclose(r, delta)  # a random direction, not the tuned one
    assert n_changed == len(ranks)
    assert null.random_update["n_low_rank"] == n_changed and null.random_update["ranks"] == [RANK]
    assert pn is not pb and not torch.equal(
        pn["model.layers.0.self_attn.q_proj.weight"], pb["model.layers.0.self_attn.q_proj.weight"]
    )


def test_dense_update_for_full_fine_tuning(tiny_llama_dir, tiny_llama_other_dir):
    # two random models of the same shape: every tensor differs, no adapter -> dense gaussian R
    base, other = _load(tiny_llama_dir), _load(tiny_llama_other_dir)
    null = random_update_model(base, other, seed=5)
    pb, po, pn = _params(base), _params(other), _params(null)
    for name, b in pb.items():
        r = pn[name].double() - b.double()
        torch.testing.assert_close(
            torch.linalg.norm(r), torch.linalg.norm(po[name].double() - b.double()), rtol=1e-6, atol=0
        )
        if b.ndim == 2:
            assert int(torch.linalg.matrix_rank(r)) == min(b.shape), name  # dense, full rank
    assert null.random_update["n_low_rank"] == 0


def test_seeds_and_order_independence(lora_pair):
    base, tuned = lora_pair
    a, b, c = (random_update_model(base, tuned, seed=s) for s in (0, 0, 1))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))
    assert not torch.equal(_params(a)[name], _params(c)[name])
    # each tensor is its own function of (seed, name): the whole-tensor helper gives the same R
    delta = _params(tuned)[name].double() - _params(base)[name].double()
    r = random_update_tensor(name, delta.shape, float(torch.linalg.norm(delta)), seed=0, rank=RANK)
    torch.testing.assert_close(_params(a)[name].double() - _params(base)[name].double(), r, rtol=0, atol=1e-12)
    assert tensor_seed(0, name) != tensor_seed(0, name.replace("0", "1")) != tensor_seed(1, name)


def test_identity_is_not_the_base(lora_pair):
    base, tuned = lora_pair
    null = random_update_model(base, tuned, seed=3)
    d = null.describe()
    assert d != base.describe() and "weights_sha256" not in d
    ru = d["random_update"]
    assert ru["of"] == base.describe() and ru["like"] == tuned.describe()
    assert ru["seed"] == 3 and ru["rule"] == RULE
    assert null.name.startswith("random-update(") and "seed 3" in null.name
    assert random_update_model(base, tuned, seed=4).describe() != d


def test_unmerged_peft_tuned_model_gives_the_same_null(tiny_llama_dir, lora_dir, lora_pair):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, merged = lora_pair
    raw = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float64)
    wrapped = PeftModel.from_pretrained(raw, str(lora_dir))
    tuned = tuneshift.models.loading.LoadedModel(
        model=wrapped, tokenizer=base.tokenizer, spec=base.spec, dtype="float64"
    )
    a = random_update_model(base, tuned, seed=0)  # ranks from the live PEFT layers, names unwrapped
    b = random_update_model(base, merged, seed=0)
    assert a.random_update["n_tensors_updated"] == b.random_update["n_tensors_updated"] > 0
    # PEFT's effective weight is summed in float32, the merged one in float64: equal up to float32 rounding
    for (n, x), y in zip(a.model.named_parameters(), b.model.parameters()):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-7, msg=n)


def test_in_place_and_refusals(tiny_llama_dir, lora_dir, tiny_gpt2_dir):
    base, tuned = _load(tiny_llama_dir), _load(tiny_llama_dir, lora_dir)
    with pytest.raises(ModelSpecError, match="identical weights"):
        random_update_model(base, _load(tiny_llama_dir))
    with pytest.raises(ModelSpecError, match="tuned version of the same base"):
        random_update_model(base, _load(tiny_gpt2_dir))
    keep = {n: p.clone() for n, p in base.model.named_parameters()}
    null = random_update_model(base, tuned, seed=0, in_place=True)
    assert null.model is base.model
    assert not torch.equal(
        keep["model.layers.0.self_attn.q_proj.weight"], _params(null)["model.layers.0.self_attn.q_proj.weight"]
    )
