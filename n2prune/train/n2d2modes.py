"""N2D2's one-shot options on a trained network: ``-fuse``, ``-export ONNX``, ``-test-index``.

- ``-fuse``: the Test set (and ``-export``) runs on a copy of the network whose BatchNorm cells
  are folded into the Conv/Fc before them (``n2prune.network.fuse``); the weights a learning
  run saves stay unfused, so they still match the INI file.
- ``-export ONNX``: the network (fused with ``-fuse``) written as
  ``<output>/export_ONNX_float32/<ini name>.onnx``, N2D2's folder name, by
  ``n2prune.export.export_onnx`` (masks baked in, checked in onnxruntime, written
  atomically); then the run stops, as N2D2's does.
- ``-test-index i``: only the i-th stimulus of the Test set is tested; ``test_report.json``
  gives its label, the estimated label and the target cell's outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from n2prune.export import export_onnx
from n2prune.network.fuse import fuse_batchnorm
from n2prune.train.metrics import Confusion

EXPORT_FOLDER = "export_{type}_float32"   # N2D2: export_<TYPE>_float<bits> (no quantisation)


def network_for_test(trainer: Any) -> Tuple[Any, Optional[List[str]]]:
    """The network the Test set (and ``-export``) runs on, and the BatchNorm cells folded
    (None without ``-fuse``)."""
    if not trainer.options.fuse:
        return trainer.net, None
    return fuse_batchnorm(trainer.net.eval())


def export_network(trainer: Any) -> Dict[str, Any]:
    """``-export ONNX``: write the network; returns the report printed by the command line."""
    net, folded = network_for_test(trainer)
    net = net.cpu().eval()
    folder = Path(trainer.output) / EXPORT_FOLDER.format(type=trainer.options.export)
    path = folder / f"{Path(trainer.ini_path).stem}.onnx"
    written = None
    if trainer.writes_files:
        folder.mkdir(parents=True, exist_ok=True)
        written = export_onnx(net, _example(trainer), path, input_names=["input"])
    return {"export": str(path), "fused_batchnorm": folded,
            "max_difference": written.max_difference if written else None}


def _example(trainer: Any) -> torch.Tensor:
    """Up to 8 stimuli of the first non-empty set (Test, Validation, Learn): the input the
    export is checked on; random values when every set is empty."""
    generator = torch.Generator().manual_seed(trainer.seed + 2)
    for name in ("Test", "Validation", "Learn"):
        size = trainer.provider.size(name)
        if size:
            x, _ = trainer.provider.batch(name, torch.arange(min(size, 8)), generator)
            return x.cpu()
    return torch.randn(2, *trainer.net.input_shape, generator=generator)


@torch.no_grad()
def test_stimulus(trainer: Any, net: Any) -> Tuple[Confusion, Dict[str, Any]]:
    """``-test-index i``: the confusion matrix of the i-th Test stimulus alone, and what the
    report says about it."""
    index, size = trainer.options.test_index, trainer.provider.size("Test")
    if index >= size:
        raise ValueError(f"-test-index {index}: the Test set has {size} stimuli (valid: 0 to "
                         f"{size - 1})" if size else f"-test-index {index}: the Test set is "
                         f"empty")
    objective = trainer.objectives[0]
    generator = torch.Generator().manual_seed(trainer.seed + 2)
    x, labels = trainer.provider.batch("Test", torch.tensor([index]), generator)
    net.eval()
    outputs = net.outputs(x.to(trainer.device), [objective.target.cell])
    estimated = objective.estimated(outputs)
    confusion = Confusion(objective.nb_outputs)
    confusion.add(labels, estimated)
    scores = outputs[objective.target.cell].flatten().tolist()
    entry = {"test_index": index, "label": int(labels[0]), "estimated": int(estimated[0]),
             "outputs": scores}
    return confusion, entry

