"""A stand-in for an ini Section in unit tests: a dict of strings with the Section API."""

from __future__ import annotations

import warnings
from typing import Dict, List

from n2prune.errors import ConfigError, ConfigWarning
from n2prune.ini.params import REQUIRED
from n2prune.ini.values import read_text


class FakeSection:
    """``key in s``, ``s.get(key, reader, default)``, ``keys()``, ``prefixed()``, errors."""

    def __init__(self, values: Dict[str, str] = None, name: str = "cell", path: str = "t.ini"):
        self.values = dict(values or {})
        self.name, self.path = name, path

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def keys(self) -> List[str]:
        return list(self.values)

    def prefixed(self, prefix: str) -> List[str]:
        return [key for key in self.values if key.startswith(prefix)]

    def get(self, key: str, reader=read_text, default=REQUIRED):
        if key not in self.values:
            if default is REQUIRED:
                raise self.error(key, "missing required key")
            return default
        try:
            return reader(self.values[key], lambda message: self.warn(key, message))
        except ValueError as exc:
            raise ConfigError(str(exc), path=self.path, line=self.line(key),
                              section=self.name, key=key, value=self.values[key]) from None

    def line(self, key: str) -> int:
        return list(self.values).index(key) + 1 if key in self.values else None

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, path=self.path, line=self.line(key), section=self.name,
                           key=key)

    def warn(self, key: str, message: str) -> None:
        warnings.warn(ConfigWarning(message, path=self.path, line=self.line(key),
                                    section=self.name, key=key), stacklevel=2)


def make_ctx(values, shapes, names=None, config=None, extras=None, name="cell"):
    """A BuildContext for a cell section ``values`` fed by inputs of (C, H, W) ``shapes``."""
    from n2prune.cells.base import BuildContext
    names = names or [f"in{i}" for i in range(len(shapes))]
    return BuildContext(name, FakeSection(values, name), FakeSection(config or {}, "config"),
                        list(names), list(shapes), dict(extras or {}))


def build_cell(cell_type, values, shapes, names=None, config=None, extras=None):
    """Run the registered builder of ``cell_type``: (module, (C, H, W))."""
    from n2prune.cells.base import CELLS
    return CELLS.get(cell_type)(make_ctx(values, shapes, names, config, extras))
