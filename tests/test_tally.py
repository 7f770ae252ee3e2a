"""LearnTally counts the learning loss and accuracy as step-by-step counting does, reduced
many steps at once; Progress asks for the numbers it shows only when it shows them."""

import io

import pytest
import torch

from n2prune.train import tally as tally_module
from n2prune.train.progress import Progress
from n2prune.train.tally import LearnTally


def _estimate(scores: torch.Tensor) -> torch.Tensor:
    return scores.flatten(1).argmax(1)


def _steps(count: int = 12, batch: int = 7, classes: int = 5):
    generator = torch.Generator().manual_seed(0)
    for step in range(count):
        scores = torch.randn(batch, classes, 1, 1, generator=generator)
        scores[0, 1:3] = scores[0].max() + 1   # a tie: the first maximum is the estimate
        labels = torch.randint(0, classes, (batch,), generator=generator)
        loss = torch.rand((), generator=generator)
        seen = 0 if step == 4 else batch        # a rank that saw nothing of this batch
        yield loss, scores, labels, seen


def _step_by_step():
    total = {"loss": 0.0, "correct": 0, "seen": 0}
    for loss, scores, labels, seen in _steps():
        total["loss"] += float(loss) * seen
        total["correct"] += int((_estimate(scores) == labels).sum()) if seen else 0
        total["seen"] += seen
    return total


@pytest.mark.parametrize("bound", [tally_module.MAX_KEPT, 30, 1])
def test_totals_equal_step_by_step_counting(monkeypatch, bound):
    monkeypatch.setattr(tally_module, "MAX_KEPT", bound)   # reduced every few steps
    tally = LearnTally(_estimate)
    for loss, scores, labels, seen in _steps():
        tally.add(loss, scores, labels, seen)
    assert tally.totals() == _step_by_step()     # the float sum too, bit for bit
    assert tally.totals() == _step_by_step()     # reading twice changes nothing


def test_running_numbers_are_the_last_loss_and_the_accuracy_so_far():
    tally = LearnTally(_estimate)
    steps = list(_steps(count=3))
    for loss, scores, labels, seen in steps:
        tally.add(loss, scores, labels, seen)
    running = tally.running()
    assert running["loss"] == float(steps[-1][0])
    correct = sum(int((_estimate(s) == y).sum()) for _, s, y, _ in steps)
    assert running["acc"] == correct / sum(n for *_, n in steps)
    assert LearnTally(_estimate).totals() == {"loss": 0.0, "correct": 0, "seen": 0}


def test_progress_asks_for_its_numbers_only_when_it_shows_them():
    asked = []

    def values():
        asked.append(1)
        return {"loss": 0.5}

    quiet = Progress(100, quiet=True)
    for _ in range(10):
        quiet.update(10, values)
    assert asked == [] and quiet.done == 100
    stream = io.StringIO()   # not a terminal: a plain line every `every` seconds
    lines = Progress(100, stream=stream, every=3600.0)
    for _ in range(5):
        lines.update(10, values)
    assert asked == [] and stream.getvalue() == ""
    lines.every = 0.0
    lines.update(10, values)
    assert asked == [1] and "loss 0.5" in stream.getvalue() and "60/100" in stream.getvalue()
