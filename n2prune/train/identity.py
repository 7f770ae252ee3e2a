"""What defines a run, recorded in its checkpoint and compared when it resumes.

A run is defined by the contents of every configuration file its INI reader read (the main
INI, ``[x@file.tpl]`` templates, ``{% include %}`` files), by the environment variables read
while loading the network and its data (``${VAR}`` in the INI, ``N2D2_DATA``), and by the
options that change results (``TrainOptions`` fields not marked cosmetic). ``--resume`` on a
checkpoint whose identity differs is refused with one line naming the differences.

>>> environ = RecordingEnviron({"N2D2_DATA": "/data"})
>>> environ.get("N2D2_DATA"), environ.get("HOME")
('/data', None)
>>> environ.reads
{'N2D2_DATA': '/data', 'HOME': None}
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple


class RecordingEnviron(Mapping[str, str]):
    """A read-only view of an environment that records each variable looked up (``None``
    for one that is unset)."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ
        self.reads: Dict[str, Optional[str]] = {}

    def __getitem__(self, name: str) -> str:
        value = self._environ.get(name)
        self.reads[name] = value
        if value is None:
            raise KeyError(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        value = self._environ.get(name)
        self.reads[name] = value
        return default if value is None else value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return self.get(name) is not None

    def __iter__(self) -> Iterator[str]:  # a whole-environment walk is not recorded
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def run_identity(files: Sequence[Tuple[str, str]], environ: Mapping[str, Optional[str]],
                 options: Mapping[str, Any]) -> Dict[str, Any]:
    """The record stored in a checkpoint: files as [path, sha256] in reading order, the
    environment variables read (name -> value or None), the options that define the run."""
    return {"files": [[str(path), digest] for path, digest in files],
            "environ": dict(sorted(environ.items())), "options": dict(options)}


def differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> List[str]:
    """What differs between two identities, one short phrase each (empty when the same).

    Files are compared by contents in reading order, not by path, so a run resumed from
    another working directory (another relative path to the same files) is the same run.
    """
    found = []
    old_files, new_files = list(saved.get("files", [])), list(now.get("files", []))
    for index in range(max(len(old_files), len(new_files))):
        if index >= len(old_files):
            found.append(f"{new_files[index][0]} is now read, it was not")
        elif index >= len(new_files):
            found.append(f"{old_files[index][0]} is no longer read")
        elif old_files[index][1] != new_files[index][1]:
            found.append(f"{new_files[index][0]} changed")
    old_env, new_env = saved.get("environ", {}), now.get("environ", {})
    for name in sorted(set(old_env) | set(new_env)):
        if name in old_env and name in new_env and old_env[name] != new_env[name]:
            found.append(f"environment variable {name} was {_shown(old_env[name])}, now "
                         f"{_shown(new_env[name])}")
    old_opt, new_opt = saved.get("options", {}), now.get("options", {})
    for name in sorted(set(old_opt) | set(new_opt)):
        if old_opt.get(name) != new_opt.get(name):
            found.append(f"option {_option(name)} was {old_opt.get(name)!r}, now "
                         f"{new_opt.get(name)!r}")
    return found


def _shown(value: Optional[str]) -> str:
    return "unset" if value is None else repr(value)


_N2D2_OPTIONS = {"learn", "learn_epoch", "log", "log_epoch", "test_only", "seed", "weights_dir",
                 "valid_metric", "fuse", "export", "test_index", "find_lr"}


def _option(name: str) -> str:
    """The command-line spelling: N2D2's options take one dash, n2prune's two."""
    spelled = {"weights_dir": "w", "test_only": "test"}.get(name, name).replace("_", "-")
    return ("-" if name in _N2D2_OPTIONS else "--") + spelled
