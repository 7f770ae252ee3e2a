"""PruneCell reads as one class, in one module with no mixins: what other modules use of it is
public (the members its arguments name, its input parts, the cell it is attached to, its flags),
none of them reaches a private member, and a PruneCell pickled with the old private names still
loads."""

import ast
import pickle
from pathlib import Path

import torch

import n2prune
from n2prune.cells import Conv, Fc
from n2prune.prune.prunecell import PruneCell

PACKAGE = Path(n2prune.__file__).parent
PARTS = {"prunecell.py"}
OLD_FLAGS = ("_waiting", "_calibrating", "_ranked_later")


def _private_members():
    """PruneCell's own private names (not nn.Module's, which its overrides share)."""
    names = {"_cell_ref"}
    for cls in PruneCell.__mro__:
        if cls.__module__.startswith("n2prune"):
            names |= {n for n in vars(cls) if n.startswith("_") and not n.startswith("__")}
    return names - set(dir(torch.nn.Module))


def test_prunecell_is_one_class_in_one_module():
    ours = [cls for cls in PruneCell.__mro__ if cls.__module__.startswith("n2prune")]
    assert ours == [PruneCell] and PruneCell.__module__ == "n2prune.prune.prunecell"


def test_no_module_reaches_a_private_prunecell_member():
    private, reached = _private_members(), []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "prune" and path.name in PARTS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in private and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                reached.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in OLD_FLAGS:
                reached.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert reached == []


def test_the_public_interface_other_modules_use():
    conv = Conv(6, 4, kernel_dims=[1, 1], input_channels=[2, 4])
    cell = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="Magnitude",
                     pattern="Channel")
    assert cell.attached_cell is None
    conv.quantizer = cell
    assert cell.attached_cell is conv and cell.cell is conv
    assert cell.input_parts() == [slice(0, 2), slice(2, 6)]
    assert str(cell.pattern_rule) == "Channel" and cell.schedule_rule is not None
    assert cell.comparison is not None
    assert not (cell.waiting or cell.calibrating or cell.ranked_later)
    cell.mask.fill_(1.0)
    cell.refill()
    assert float((cell.mask == 0).float().mean()) == 0.5


def test_a_prunecell_pickled_with_the_old_private_names_loads():
    fc = Fc(4, 2)
    fc.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="Magnitude",
                             pattern="Channel")
    state = fc.quantizer.__getstate__()
    for old, new in (("_pattern", "pattern_rule"), ("_compare", "comparison"),
                     ("_schedule", "schedule_rule")):
        state[old] = state.pop(new)
    state.pop("waiting", None)
    state["_waiting"] = True
    old = PruneCell.__new__(PruneCell)
    old.__setstate__(state)
    assert str(old.pattern_rule) == "Channel" and old.waiting
    assert "_pattern" not in old.__dict__
    copy = pickle.loads(pickle.dumps(fc))
    assert torch.equal(copy.effective_weight(), fc.effective_weight())
