"""One line per cell of a network: what ``n2prune-info`` prints."""

from __future__ import annotations

from typing import Any, List


def synapses(cell: Any) -> int:
    """Parameters of a cell, not counting weights a Mapping table disconnects (as N2D2)."""
    total = sum(p.numel() for p in cell.parameters(recurse=True))
    connection = getattr(cell, "connection", None)
    if connection is not None:
        total -= int((connection.expand_as(cell.weight) == 0).sum())
    return total


def _pruning(cell: Any) -> str:
    q = getattr(cell, "quantizer", None)
    if q is None:
        return "-"
    text = f"{q.prune_mode}/{q.prune_filler} t={q.threshold:g}"
    if q.prune_mode == "Gradual":
        text += f" start={q.start:g} gamma={q.gamma:g} step={q.stepsize or 'epoch'}"
    return text + f" now={q.sparsity():.3f}"


def network_summary(net: Any) -> List[str]:
    """Rows: name, type, inputs, output (C×H×W), parameters, pruning; then the totals."""
    rows = [("cell", "type", "inputs", "output", "params", "pruning")]
    total = pruned_weights = 0
    for name, cell in net.cells.items():
        info = net.info[name]
        c, h, w = info.output_shape
        count = synapses(cell)
        total += count
        if getattr(cell, "quantizer", None) is not None:
            pruned_weights += cell.weight.numel()
        inputs = ",".join("sp" if p == "env" else p for p in info.inputs)
        rows.append((name, info.type, inputs, f"{c}x{h}x{w}", f"{count:,}", _pruning(cell)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(value.ljust(width) if i != 4 else value.rjust(width)
                       for i, (value, width) in enumerate(zip(row[:5], widths))) + "  " + row[5]
             for row in rows]
    c, h, w = net.input_shape
    lines.append(f"input {c}x{h}x{w}; {len(net.info)} cells; {total:,} parameters; "
                 f"{pruned_weights:,} weights under a PruneCell; "
                 f"targets: {', '.join(t.section for t in net.targets) or 'none'}")
    return lines
