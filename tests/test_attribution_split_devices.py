"""Models split over devices (``--device auto``, ``device_map``): issue 18, item 4.

Under ``device_map="auto"`` the input embeddings sit on the first device but the backbone's last
block and final norm (hence the last hidden state) on the last one; indexing that hidden state
with index tensors built on the embedding device fails on a real split ("indices should be
either on cpu or on the same device as the indexed tensor"). There is no second device here, so
the split is simulated: a forward hook moves the final norm's output of a tiny model to the
``meta`` device (no computation is needed past the indexing), and a torch function mode records
the devices of the index tensors used on the meta hidden state, then stops the run. On a real
split the fast path and integrated gradients must build them on the hidden state's device.
With the LM head on ``meta`` too (the usual last-device placement), the run gets as far as the
vectorised backward: the response token ids and the identity ``grad_outputs`` must be on the
logits' device.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

import helpers_tiny as H
from tuneshift.methods.attribution import SequencePair, get_target, gradient_x_input
from tuneshift.methods.attribution.methods import make_method


class _Stop(Exception):
    pass


class _RecordIndexing(TorchFunctionMode):
    """Records the devices of the tensor indices of the first ``hidden[...]`` on a meta tensor."""

    def __init__(self):
        super().__init__()
        self.devices: list[torch.device] | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.__getitem__ and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta":
            idx = args[1] if isinstance(args[1], tuple) else (args[1],)
            self.devices = [i.device for i in idx if isinstance(i, torch.Tensor)]
            raise _Stop
        return func(*args, **kwargs)


def _split_model(family: str):
    tok = H.make_tokenizer("bpe")
    model = H.make_tiny_model(tok, family)
    norm = model.base_model.norm if hasattr(model.base_model, "norm") else model.base_model.ln_f
    norm.register_forward_hook(lambda mod, inp, out: out.to("meta"))  # "the last device"
    return tok, model


PAIRS = [SequencePair([1, 5, 9, 12], [7, 3]), SequencePair([1, 4, 8], [6, 2, 11])]


@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
@pytest.mark.parametrize("k", [1, 2])
def test_gradient_indices_on_the_hidden_state_device(family, k):
    _, model = _split_model(family)
    rec = _RecordIndexing()
    with pytest.raises(_Stop), rec:
        gradient_x_input(model, PAIRS, positions_per_backward=k)
    assert rec.devices is not None and len(rec.devices) == 2  # hidden[row_idx, pos]
    assert all(d.type == "meta" for d in rec.devices), rec.devices


def test_integrated_gradients_indices_on_the_hidden_state_device():
    _, model = _split_model("llama")
    method = make_method("integrated_gradients", {"n_steps": 2})
    rec = _RecordIndexing()
    with pytest.raises(_Stop), rec:
        method.attribute(model, PAIRS[:1], target=get_target("probability"))
    assert rec.devices is not None and len(rec.devices) == 2
    assert all(d.type == "meta" for d in rec.devices), rec.devices


class _RecordFactories(TorchFunctionMode):
    """Records the ``device=`` of every ``torch.tensor`` call and stops at the first ``torch.eye``."""

    def __init__(self):
        super().__init__()
        self.tensor_devices: list = []
        self.eye_device = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.eye:
            self.eye_device = torch.device(kwargs.get("device") or "cpu")
            raise _Stop
        if func is torch.tensor:
            self.tensor_devices.append(kwargs.get("device"))
        return func(*args, **kwargs)


def test_token_ids_and_backward_identity_on_the_logits_device():
    _, model = _split_model("llama")
    old = model.lm_head  # an untied head on the "last device"
    model.lm_head = torch.nn.Linear(old.in_features, old.out_features, bias=False, device="meta")
    assert model.get_output_embeddings() is model.lm_head and model.get_input_embeddings().weight.device.type == "cpu"
    rec = _RecordFactories()
    with pytest.raises(_Stop), rec:
        gradient_x_input(model, PAIRS, positions_per_backward=2)
    assert rec.eye_device == torch.device("meta")
    placed = [torch.device(d) for d in rec.tensor_devices if d is not None]  # ids rows are copied into a tensor
    # per response position: row index, position (hidden's device) and token ids (logits' device)
    assert len(placed) == 6 and all(d.type == "meta" for d in placed), placed
