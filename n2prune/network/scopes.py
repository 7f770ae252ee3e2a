"""Scopes that read the network's structure (``Scope.bind``: ``Coupled``), bound once an INI
network is built, so that their errors name the cell section and its
``QWeight.PruningScope`` key."""

from __future__ import annotations

from typing import Any

from n2prune.ini.values import read_word
from n2prune.network.routing import config_names
from n2prune.prune.ranking import SCOPES, teams

KEY = "QWeight.PruningScope"


def bind_scopes(net: Any, ini: Any) -> None:
    """Give the PruneCells of every scope with a ``bind`` what it reads from ``net`` (no
    example: an INI network has its own channel graph), then rank each such team; a
    ConfigError at the first cell's ``QWeight.PruningScope`` when it cannot."""
    cells = {name: cell.quantizer for name, cell in net.pruned_cells().items()}
    for scope_name, team in teams(cells.values()).items():
        scope = SCOPES.get(scope_name)
        if scope.bind is None:
            continue
        named = {name: cell for name, cell in cells.items() if cell in team}
        try:
            scope.bind(net, named, None)
            scope.rank(team)
        except ValueError as error:
            raise _located(ini, next(iter(named)), str(error)) from None


def _located(ini: Any, name: str, message: str) -> Exception:
    """The error at the ``QWeight.PruningScope`` key the cell ``name`` reads (its section or
    one of its ConfigSections)."""
    section = ini[name]
    if KEY in section:
        return section.error(KEY, message)
    model = ini[""].get("DefaultModel", read_word, "Frame")
    for config in config_names(section, section.get("Model", read_word, model)):
        if KEY in ini[config]:
            return ini[config].error(KEY, message)
    return section.error(None, message)
