"""The Trainer's learning step computes exactly what the plain step it was tuned from does:
a forward walk of the Input= graph cell by cell, ``zero_grad(set_to_none=False)``, backward,
the solvers, every PruneCell's ``update``, the arg-max accuracy. Two Trainers built with the
same seed, one stepped each way on the same batches (the random number generator replayed
for both), hold bit-identical weights, masks, counters and solver state after every step,
Gradual steps included."""

import os
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import torch

from n2prune.train.tally import LearnTally
from n2prune.train.trainer import TrainOptions, Trainer

NETWORKS = Path(__file__).resolve().parent.parent / "networks"


def _plain_outputs(net: Any, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Every cell's output by name, each cell called on its Input= cells' outputs; a 2-D
    output made N x C x 1 x 1 with two unsqueezes."""
    outputs: Dict[str, torch.Tensor] = {}
    for name, cell in net.cells.items():
        inputs = [outputs.get(source, x) for source in net.info[name].inputs]
        y = cell(*inputs)
        outputs[name] = y.unsqueeze(2).unsqueeze(3) if y.dim() == 2 else y
    return outputs


def _plain_step(trainer: Trainer, x: torch.Tensor, labels: torch.Tensor):
    trainer.net.train()
    outputs = _plain_outputs(trainer.net, x)
    loss = sum(objective.loss(outputs, labels) for objective in trainer.objectives)
    for optimizer in trainer.optimizers:
        optimizer.zero_grad(set_to_none=False)
    loss.backward()
    for optimizer in trainer.optimizers:
        optimizer.step()
    fired = [cell.update(len(labels)) for cell in trainer.pruner.cells.values()]
    estimated = trainer.objectives[0].estimated(outputs)
    return float(loss.detach()), int((estimated == labels).sum()), any(fired)


def _state(trainer: Trainer) -> Dict[str, torch.Tensor]:
    state = dict(trainer.net.state_dict())
    for i, optimizer in enumerate(trainer.optimizers):
        for key, values in optimizer.state_dict()["state"].items():
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    state[f"solver{i}.{key}.{name}"] = value
    return state


def _assert_identical(ours: Trainer, theirs: Trainer, when: str) -> None:
    a, b = _state(ours), _state(theirs)
    assert a.keys() == b.keys(), when
    for name in a:
        x, y = a[name], b[name]
        same = torch.equal(x, y) and (not x.is_floating_point()
                                      or torch.equal(x.signbit(), y.signbit()))
        assert same, f"{name} differs {when}"


def _compare(tmp_path: Path, ini: str, environ: Optional[Dict[str, str]] = None) -> None:
    def make(name: str) -> Trainer:
        options = TrainOptions(learn_epoch=2, seed=3, threads=1, quiet=True,
                               output=str(tmp_path / name), environ=environ)
        return Trainer(str(NETWORKS / ini), options)

    ours, theirs = make("ours"), make("theirs")
    try:
        _assert_identical(ours, theirs, "before learning")
        size, batch = ours.provider.epoch_size, ours.batch_size
        order = torch.randperm(size, generator=torch.Generator().manual_seed(0))
        steps = size // batch + 3   # past the first Gradual step (one epoch)
        fired = 0
        for step in range(steps):
            first = (step * batch) % (size - batch)
            x, labels = ours.provider.batch("Learn", order[first:first + batch])
            rng = torch.get_rng_state()
            loss, scores = ours._step(x, labels)
            tally = LearnTally(ours.objectives[0].estimate)
            tally.add(loss, scores, labels, len(labels))
            totals = tally.totals()
            torch.set_rng_state(rng)   # Dropout draws the same for both
            expected = _plain_step(theirs, x, labels)
            assert (totals["loss"], totals["correct"]) == \
                (expected[0] * len(labels), expected[1]), f"step {step}"
            fired += expected[2]
            _assert_identical(ours, theirs, f"after step {step}")
        assert fired >= 1   # a Gradual step happened and was identical too
        assert all(int(c.position) == steps * batch for c in ours.pruner.cells.values())
    finally:
        ours.close()
        theirs.close()


def test_digits_step_is_bit_identical_to_the_plain_step(tmp_path):
    _compare(tmp_path, "digits.ini")


def test_lenet_step_is_bit_identical_to_the_plain_step(tmp_path, mnist_dir):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(mnist_dir.resolve())
    _compare(tmp_path, "lenet.ini", dict(os.environ, N2D2_DATA=str(tmp_path / "data")))
