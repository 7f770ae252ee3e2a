"""Plug-ins on the command line: ``--import MODULE`` and the ``n2prune.plugins`` entry points.

A plug-in is a module that registers members (``@register_criterion("MyScore")``,
``@CELLS.register(...)``, ...) when imported. Every command calls :func:`add_import_option`
on its parser and :func:`load_plugins` first thing, so an INI file naming a plug-in's member
works from the command line::

    n2prune-train net.ini -learn-epoch 10 --import my_criteria

An installed package can instead declare its module under the ``n2prune.plugins`` entry-point
group (``setup.cfg``: ``[options.entry_points] n2prune.plugins = mine = my_pkg.criteria``);
every command then loads it without ``--import``. A failing import is one located line:
``--import my_criteria: my_criteria.py:7: NameError: name 'scroe' is not defined``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from importlib.metadata import entry_points
from typing import List, Sequence

GROUP = "n2prune.plugins"


def add_import_option(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable) on a command's parser (``args.imports``)."""
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE",
                        help=f"import MODULE first (repeatable; found on PYTHONPATH or in "
                        f"the current folder), e.g. one registering a criterion the INI names; "
                        f"the {GROUP} entry points are always loaded")


def load_plugins(modules: Sequence[str] = ()) -> List[str]:
    """Load every ``n2prune.plugins`` entry point, then import ``modules`` in order; returns
    the names loaded. A failure raises ValueError with the file and line where it happened."""
    loaded = []
    for point in entry_points(group=GROUP):
        try:
            point.load()
        except Exception as exc:  # noqa: BLE001 - any error of foreign code, located
            raise ValueError(f"entry point {point.name} = {point.value} ({GROUP}): "
                             f"{_located(exc)}") from None
        loaded.append(point.value)
    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())   # as `python -m` would find it
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name) and \
                    (name == exc.name or name[len(exc.name)] == "."):
                raise ValueError(f"--import {name}: no module {exc.name!r} on the Python path "
                                 f"(the current folder, PYTHONPATH, installed packages)") from None
            raise ValueError(f"--import {name}: {_located(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - any error of foreign code, located
            raise ValueError(f"--import {name}: {_located(exc)}") from None
        loaded.append(name)
    return loaded


def _located(exc: BaseException) -> str:
    """``file:line: Kind: message`` of the innermost frame outside the import machinery."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: SyntaxError: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "importlib" not in f.filename and f.filename != __file__]
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    message = (str(exc).strip().splitlines() or [""])[0]
    return f"{where}{type(exc).__name__}: {message}"
