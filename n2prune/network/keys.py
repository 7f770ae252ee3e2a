"""Which keys a network file may hold, checked once a cell is built (spec §1.6).

N2D2's parser rejects keys nobody read in the global section, ConfigSections and a few cell
types; n2prune rejects them in every cell section (a misspelt key would silently change the
network) with the nearest spelling, and warns only for the keys N2D2 reads elsewhere and
ignores silently in a cell section (cell parameters, solver and quantizer keys, Mapping(sp)).
"""

from __future__ import annotations

import sys
from typing import Any, List, Set

from n2prune.cells.kinds import kind_of, role_prefixes
from n2prune.ini.params import Key
from n2prune.ini.values import read_bool, read_word
from n2prune.registry import did_you_mean

GLOBAL_KEYS = ("DefaultModel", "DefaultDataType", "InsertBatchNormAfterConv", "CheckWeightRange")
# Keys the network itself reads from every cell section.
COMMON_KEYS = ("Type", "Input", "Model", "DataType")
# Cell sections N2D2 checks for unknown keys (``CellKind.checked``), unless one of the trigger
# keys is present (§1.6).
CHECK_DISABLERS = ("ActivationFunction", "Solvers", "WeightsSolver", "BiasSolver", "QWeight",
                   "QAct")
# Keys N2D2 reads only in a ConfigSection (or with their type key): in a cell section it
# ignores them silently, so do we, with a warning (§1.6). Any other unread key is an error.
IGNORED_PREFIXES = ("Solvers.", "WeightsSolver.", "BiasSolver.", "ScaleSolver.", "QWeight.",
                    "QWeightSolver.", "QAct.", "QActSolver.")


def check_global(ini: Any) -> None:
    """The global section holds only the keys N2D2 consumes there (a hard error otherwise)."""
    section = ini[""]
    for key in section.keys():
        if key.startswith("$") or key.startswith("ProgramMethod("):
            continue
        if key not in GLOBAL_KEYS:
            raise section.error(key, did_you_mean(key, list(GLOBAL_KEYS), "global key"))
    model = section.get("DefaultModel", read_word, "Transcode")
    if model.replace("_CUDA", "") not in ("Frame", "Transcode"):
        raise section.error("DefaultModel", f"model {model!r} is not supported (spiking models "
                                            f"are not ported); use Frame or Frame_CUDA")
    if section.get("InsertBatchNormAfterConv", read_bool, False):
        raise section.error("InsertBatchNormAfterConv", "is not supported yet")
    section.mark_read("DefaultDataType", "CheckWeightRange")


def check_config_names(ini: Any, section: Any, model: str, names: List[str]) -> None:
    """Every ConfigSection name must be a section: a ConfigError at the key otherwise."""
    for config in names:
        if config not in ini:
            key = next(k for k in (f"ConfigSection({model})", "ConfigSection") if k in section)
            raise section.error(key, did_you_mean(config, [n for n in ini.section_names() if n],
                                                  "section").replace("known:", "sections:", 1))


def check_leftovers(cell_type: str, section: Any, config: Any) -> None:
    """Unread keys: errors in a ConfigSection; in a cell section errors too (a misspelt key
    would silently change the network), except the keys N2D2 reads elsewhere and ignores
    here silently (cell parameters, solver and quantizer keys, §1.6), which warn."""
    if config is not None:
        for key in config.unread_keys():
            raise config.unknown_key(key, "parameter", f" for a {cell_type} cell")
    leftovers = [k for k in section.unread_keys() if k not in COMMON_KEYS
                 and not k.startswith("ConfigSection")]
    checked = kind_of(cell_type).checked and not any(k in section for k in CHECK_DISABLERS)
    if leftovers:
        section.note_parameters(cell_parameter_names())
    for key in leftovers:
        ignored = key.startswith(IGNORED_PREFIXES + role_prefixes()
                                 + ("Mapping(sp)", "Mapping(cenv)")) \
            or key in section.parameter_names
        if checked or not ignored:
            raise section.unknown_key(key, "key", f" for a {cell_type} cell")
        if key.startswith(("Mapping(sp)", "Mapping(cenv)")):
            section.warn(key, "ignored, as N2D2 does: the stimuli provider's mapping is "
                              "written Mapping(env)")
            continue
        section.warn(key, f"ignored: N2D2 does not read this key in a {cell_type} cell "
                          f"section (cell parameters belong in a ConfigSection)")
    section.mark_read(*leftovers)


def cell_parameter_names() -> Set[str]:
    """The INI names of every cell parameter table (``Key`` tuples of the modules under
    n2prune.cells and of their classes), plug-in cells included once imported."""
    names: Set[str] = set()
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("n2prune.cells") or module is None:
            continue
        for value in list(vars(module).values()):
            holders = [value] + (list(vars(value).values()) if isinstance(value, type) else [])
            for held in holders:
                if isinstance(held, tuple) and held and all(isinstance(k, Key) for k in held):
                    names.update(key.ini for key in held)
    return names
