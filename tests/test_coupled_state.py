"""The Coupled scope's ties are part of the saved state: a state_dict reloads exactly into a
model coupled the same way, is refused by one coupled otherwise (or not at all), and one
saved before the ties were (no entry, an older version) still loads."""

import io
from collections import OrderedDict

import pytest
import torch

import n2prune
from test_prune_coupled import STREAMS, Residual
from nets import RESIDUAL

X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))


def _attached(seed, scope="Coupled"):
    torch.manual_seed(seed)
    model = Residual().eval()
    n2prune.attach(model, include=STREAMS, scope=scope, pattern="Channel",
                   prune_filler="L1Norm", prune_mode="Static", threshold=0.5,
                   **({"example": X[:1]} if scope == "Coupled" else {}))
    return model


def _through_torch_save(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _ties(state, name):
    return bytes(state[f"{name}.quantizer.coupled"].tolist()).decode()


def test_the_ties_are_saved_and_reload_exactly():
    model = _attached(0)
    state = model.state_dict()
    assert _ties(state, "stem") == _ties(state, "conv2") == "stem+conv2"
    assert _ties(state, "down") == _ties(state, "skip") == "down+skip"
    assert all(isinstance(value, torch.Tensor) for value in state.values())   # safetensors
    twin = _attached(1)                 # other weights, so other masks
    assert not torch.equal(twin.stem.quantizer.mask, model.stem.quantizer.mask)
    twin.load_state_dict(_through_torch_save(state))
    for key, value in state.items():
        assert torch.equal(twin.state_dict()[key], value), key
    assert torch.equal(twin(X), model(X))


@pytest.mark.parametrize("strict", [True, False])
def test_a_model_without_the_coupling_refuses_the_state(strict):
    state = _attached(0).state_dict()
    twin = _attached(1, scope="Layer")
    mask = twin.stem.quantizer.mask.clone()
    with pytest.raises(ValueError) as error:
        twin.load_state_dict(state, strict=strict)
    message = str(error.value)
    assert message.startswith("stem.quantizer: the state was saved coupled as stem+conv2 "
                              "(scope='Coupled'), but this cell is not coupled; load it into "
                              "a model attached as it was saved")
    assert "\n" not in message and torch.equal(twin.stem.quantizer.mask, mask)


def test_another_grouping_refuses_the_state():
    state = _attached(0).state_dict()
    state["conv2.quantizer.coupled"] = torch.tensor(list(b"stem+conv2+conv1"),
                                                    dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"^conv2.quantizer: the state was saved coupled as "
                       r"stem\+conv2\+conv1 \(scope='Coupled'\), but this cell is coupled as "
                       r"stem\+conv2;"):
        _attached(1).load_state_dict(state)


def test_a_state_saved_uncoupled_is_refused_by_a_coupled_model():
    state = _through_torch_save(_attached(0, scope="Layer").state_dict())
    with pytest.raises(ValueError, match=r"^stem.quantizer: the state was saved without a "
                       r"coupling, but this cell is coupled \(stem\+conv2, scope='Coupled'\)"):
        _attached(1).load_state_dict(state)


def _older(state, metadata):
    """``state`` as saved before the ties were: no entry, and the PruneCells' version 1
    (``metadata``), or no metadata at all (a safetensors file)."""
    old = OrderedDict((k, v) for k, v in state.items() if not k.endswith(".coupled"))
    if metadata:
        old._metadata = OrderedDict((k, {**v, "version": 1} if k.endswith("quantizer") else v)
                                    for k, v in state._metadata.items())
    return old


@pytest.mark.parametrize("metadata", [True, False])
def test_a_state_saved_before_the_ties_still_loads(metadata):
    model = _attached(0)
    assert model.state_dict()._metadata["stem.quantizer"]["version"] == 2
    twin = _attached(1)
    twin.load_state_dict(_older(model.state_dict(), metadata))
    assert torch.equal(twin(X), model(X))
    assert _ties(twin.state_dict(), "stem") == "stem+conv2"     # the model's own ties kept


def test_an_ini_networks_coupling_is_saved_and_checked(tmp_path):
    """QWeight.PruningScope=Coupled in the INI: the network's state names its ties, and a
    network built without the scope refuses it."""
    coupled, plain = tmp_path / "coupled.ini", tmp_path / "plain.ini"
    coupled.write_text(RESIDUAL)
    plain.write_text(RESIDUAL.replace("QWeight.PruningScope=Coupled\n", ""))
    state = n2prune.load_network(str(coupled)).state_dict()
    assert _ties(state, "layers.b") == "stem+b" and "layers.a.quantizer.coupled" not in state
    n2prune.load_network(str(coupled), seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match=r"^layers.stem.quantizer: the state was saved coupled "
                       r"as stem\+b \(scope='Coupled'\), but this cell is not coupled"):
        n2prune.load_network(str(plain)).load_state_dict(state)
