"""One line per cell of a network: what ``n2prune-info`` prints."""

from __future__ import annotations

from typing import Any, List

from n2prune.prune.sparsity import cell_counts


def synapses(cell: Any) -> int:
    """Parameters of a cell, not counting weights a Mapping table disconnects (as N2D2)."""
    total = sum(p.numel() for p in cell.parameters(recurse=True))
    connection = getattr(cell, "connection", None)
    if connection is not None:
        total -= int((connection.expand_as(cell.weight) == 0).sum())
    return total


def _pruning(cell: Any) -> str:
    """Mode/filler, target, pattern, scope, schedule (with its parameters), sparsity now."""
    q = getattr(cell, "quantizer", None)
    if q is None:
        return "-"
    text = f"{q.prune_mode}/{q.prune_filler} t={q.threshold:g}"
    text += f" pattern={getattr(q, '_pattern', None) or getattr(q, 'pattern', '-')}"
    scope = getattr(q, "scope", "Layer")
    text += f" scope={scope}" + (f"(min_keep={q.min_keep:g})" if scope == "Global"
                                 and getattr(q, "min_keep", 0) else "")
    if getattr(q, "count", "All") != "All":
        text += f" count={q.count}"
    if q.prune_mode == "Gradual":
        text += " schedule=" + _schedule(q) + (" regrow" if getattr(q, "regrow", False) else "")
    return text + f" now={q.sparsity():.3f}"


def _schedule(q: Any) -> str:
    name = getattr(q, "schedule", "Linear")
    if name == "Linear":
        return f"Linear(start={q.start:g} gamma={q.gamma:g} step={q.stepsize or 'epoch'})"
    args = q.params["schedule"]
    window = [f"{key}={args[key]:g}" for key in ("begin", "end", "begin_epochs", "end_epochs",
                                                  "steps") if args.get(key) is not None]
    if args.get("end") is None and args.get("end_epochs") is None:
        window.append("end=75%run")
    if getattr(q, "rewind", None) is not None:
        window.append(f"rewind={q.rewind:g}")
    return f"{name}({' '.join(window)})"


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
            pruned_weights += cell_counts(cell)[1]
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
