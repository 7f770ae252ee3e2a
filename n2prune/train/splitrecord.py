"""The seed and data split a weights folder was learnt with, so ``-test -w DIR`` tests the
run's own Test set (N2D2 keeps the seed in ``seed.dat`` beside the program instead).

A learning run writes ``weights/n2prune_split.json`` (atomically) beside the N2D2 weight
files: the seed, the size of each set and a digest of which stimuli went where. A test-only
run importing that folder takes its seed from it; a ``-seed`` that contradicts it is refused.
A folder without the record (weights from N2D2) gives a warning when the Test set depends on
the seed, since nobody can tell which split the weights were learnt on.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from n2prune.atomic import atomic_write_text
from n2prune.data.partition import SET_NAMES

SPLIT_FILE = "n2prune_split.json"
SPLIT_FORMAT = 1


def split_digest(database: Any) -> str:
    """SHA-256 of which loaded stimuli each set holds, in order, and their labels."""
    digest = hashlib.sha256()
    for name in SET_NAMES:
        ids = np.asarray(database.partition.sets[name], dtype=np.int64)
        digest.update(name.encode() + ids.tobytes())
        digest.update(np.asarray(database[name].labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def split_record(seed: int, provider: Any) -> Dict[str, Any]:
    """What a learning run records about its split."""
    return {"format": SPLIT_FORMAT, "seed": int(seed),
            "sets": {name: provider.size(name) for name in SET_NAMES},
            "digest": split_digest(provider.database)}


def write_split_record(folder: Path, seed: int, provider: Any) -> Path:
    """Write ``folder/n2prune_split.json`` atomically."""
    path = Path(folder) / SPLIT_FILE
    atomic_write_text(path, json.dumps(split_record(seed, provider), indent=2) + "\n")
    return path


def read_split_record(folder: str) -> Optional[Dict[str, Any]]:
    """The record in ``folder``, None when there is none; a damaged one is a ValueError."""
    path = Path(folder) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        int(record["seed"]), dict(record["sets"]), str(record["digest"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a split record n2prune can read ({exc}); delete it to "
                         f"test with -seed N instead") from None
    return record


def seed_for_test(weights_dir: str, seed: int) -> int:
    """The seed of a ``-test -w weights_dir`` run: the recorded one (a contradicting
    non-zero ``seed`` is a ValueError), else ``seed`` itself."""
    record = read_split_record(weights_dir)
    if record is None:
        return seed
    recorded = int(record["seed"])
    if seed not in (0, recorded):
        raise ValueError(f"-seed {seed} contradicts -w {weights_dir}: those weights were "
                         f"learnt with -seed {recorded} (its {SPLIT_FILE}); drop -seed to "
                         f"test on their own split")
    return recorded


def check_test_split(weights_dir: str, seed: int, provider: Any) -> None:
    """Warn once when the Test set of this run may not be the one the weights were learnt
    beside: no record and a seed-dependent split, or a record of another split."""
    record = read_split_record(weights_dir)
    database = provider.database
    if record is None:
        if database.partition.test_depends_on_seed:
            warnings.warn(f"-w {weights_dir} has no {SPLIT_FILE} (weights from N2D2?): this "
                          f"database draws its Test set with the seed, here {seed}; give the "
                          f"-seed of the run that learnt them, or some of the Test set may "
                          f"have been learnt on", stacklevel=2)
        return
    if record["digest"] != split_digest(database):
        now = {name: provider.size(name) for name in SET_NAMES}
        warnings.warn(f"-w {weights_dir}: the sets are not those the weights were learnt "
                      f"beside (recorded {record['sets']}, now {now}): the [database] section "
                      f"or its files changed", stacklevel=2)
