"""Models split over devices (``--device auto``, ``device_map``): issue 18, item 4.

Under ``device_map="auto"`` the input embeddings sit on the first device but the backbone's last
block and final norm (hence the last hidden state) on the last one; indexing that hidden state
with index tensors built on the embedding device fails on a real split ("indices should be
either on cpu or on the same device as the indexed tensor"). There is no second device here, so
the split is simulated: a forward hook moves the final norm's output of a tiny model to the
``meta`` device (no computation is needed past the indexing), and a torch function mode records
the devices of the index tensors used on the meta hidden state, then stops the run. On a real
split the fast path and integrated gradients must build them on the hidden state's device.
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
