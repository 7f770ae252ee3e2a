"""Databases: stimuli split into Learn / Validation / Test, keyed by INI ``Type=`` (spec §5.1).

A set holds its images in OpenCV's layout, numpy uint8 ``[N, H, W, C]`` (colour as BGR,
grey as one channel), or a list of ``[H, W, C]`` arrays when the sizes differ, and int64
labels. Label IDs are the index in ``label_names``, created in N2D2's order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from n2prune.data.exceptions import ParameterError
from n2prune.data.partition import SET_NAMES, N2D2Random, Partition
from n2prune.ini.params import Key
from n2prune.registry import Registry
from n2prune.ini.values import read_bool, read_float, read_text

Images = Union[np.ndarray, List[np.ndarray]]
Seed = Union[int, N2D2Random]

DATABASES: Registry = Registry("database")

RANDOM_PARTITIONING = Key("RandomPartitioning", "random_partitioning", read_bool, True,
                          "draw the sets at random (N2D2's MT19937 stream) or in file order")


def n2d2_data(sub: str, environ: Optional[Mapping[str, str]] = None) -> str:
    """N2D2's default data folder ``N2D2_DATA(sub)``: $N2D2_DATA/sub, else /local/$USER/..."""
    environ = os.environ if environ is None else environ
    root = environ.get("N2D2_DATA")
    if not root:
        user = environ.get("USER")
        root = f"/local/{user}/n2d2_data" if user else "/local/n2d2_data"
    return os.path.join(root, sub)


def where_hint(what: str, default_dir: Optional[str] = None) -> str:
    """How to point a database elsewhere, for 'file not found' messages. N2D2_DATA is the
    folder *above* ``default_dir`` (``${N2D2_DATA}/mnist`` holds the MNIST files)."""
    hint = f"set DataPath= in [database] to the folder that holds the {what} files"
    if default_dir:
        hint += (f", or the N2D2_DATA environment variable to the folder that holds "
                 f"{default_dir}{os.sep} (the default DataPath is ${{N2D2_DATA}}/{default_dir})")
    return hint


@dataclass
class StimuliSet:
    """One set of a database: images in OpenCV layout and their int64 label IDs."""

    images: Images
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


class Database:
    """Base of the databases: label IDs, the N2D2 split, and the finished sets.

    ``seed`` is an int (a fresh N2D2 random stream) or an ``N2D2Random`` shared with later
    consumers of the stream, as in N2D2 where the split draws first (spec §4.8).
    """

    KEYS: tuple = ()
    DEFAULT_DIR: Optional[str] = None   # the default DataPath is N2D2_DATA(DEFAULT_DIR)
    DEFAULT_PATHS: Dict[str, str] = {}  # other path arguments -> N2D2_DATA(sub) default

    def __init__(self, random_partitioning: bool = True, seed: Seed = 0):
        rng = seed if isinstance(seed, N2D2Random) else N2D2Random(seed)
        self.label_names: List[str] = []
        self.partition = Partition(rng if random_partitioning else None)
        self.sets: Dict[str, StimuliSet] = {}
        self._chunks: List[Images] = []
        self._labels: List[int] = []

    def __getitem__(self, set_name: str) -> StimuliSet:
        if set_name not in SET_NAMES:
            raise ValueError(f"unknown set {set_name!r} (known: {', '.join(SET_NAMES)})")
        return self.sets[set_name]

    def size(self, set_name: str) -> int:
        return len(self[set_name])

    @property
    def nb_labels(self) -> int:
        return len(self.label_names)

    def label_id(self, name: str) -> int:
        """N2D2's ``labelID(name)``: the existing ID, or a new one at the end."""
        if name not in self.label_names:
            self.label_names.append(name)
        return self.label_names.index(name)

    def label_ids(self, names: Sequence[str], indexes: np.ndarray) -> np.ndarray:
        """Label IDs of ``names[i]`` for each i of ``indexes``, created by first appearance."""
        values, first = np.unique(indexes, return_index=True)
        lut = np.zeros(int(values.max()) + 1 if len(values) else 1, dtype=np.int64)
        for value in values[np.argsort(first)].tolist():
            if value >= len(names):
                raise ValueError(f"label index {value} has no name ({len(names)} known)")
            lut[value] = self.label_id(names[value])
        return lut[indexes]

    def _add(self, images: Images, labels: Sequence[int]) -> None:
        """Load stimuli into the unpartitioned list (N2D2's load order)."""
        start = len(self._labels)
        self._chunks.append(images)
        self._labels.extend(np.asarray(labels, dtype=np.int64).tolist())
        self.partition.add(range(start, len(self._labels)))

    def _finish(self) -> None:
        """Gather each set's images and labels, in the order the split drew them."""
        pool = _pool(self._chunks)
        labels = np.asarray(self._labels, dtype=np.int64)
        for name in SET_NAMES:
            ids = np.asarray(self.partition.sets[name], dtype=np.int64)
            if isinstance(pool, np.ndarray):
                images: Images = pool[ids]
            else:
                images = _stack_if_same([pool[i] for i in ids])
            self.sets[name] = StimuliSet(images, labels[ids])
        self._chunks, self._labels = [], []

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name} {len(self.sets[name])}" for name in SET_NAMES
                          if name in self.sets)
        return f"{type(self).__name__}({sizes}; {self.nb_labels} labels)"


def empty_database(seed: Seed = 0) -> Database:
    """N2D2's database when the INI has no ``[database]`` section: every set empty, no
    labels (a network that is only described, exported or compacted)."""
    database = Database(seed=seed)
    database._finish()
    return database


def _pool(chunks: List[Images]) -> Images:
    """All loaded images: one array when every chunk is an array of one image size."""
    if chunks and all(isinstance(c, np.ndarray) for c in chunks) \
            and len({c.shape[1:] for c in chunks}) == 1:
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return [image for chunk in chunks for image in chunk]


def _stack_if_same(images: List[np.ndarray]) -> Images:
    if images and len({(i.shape, i.dtype) for i in images}) == 1:
        return np.stack(images)
    return images


def check_fraction(name: str, value: float) -> None:
    """A set fraction must be within [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ParameterError(name, f"{name} must be a fraction within [0, 1], got {value!r}")


def path_key(ini: str, arg: str, default: Optional[str], doc: str) -> Key:
    """A path key: raw text (spaces kept); the ini module already expanded ${ENV}."""
    return Key(ini, arg, read_text, default, doc)


VALIDATION = Key("Validation", "validation", read_float, 0.0,
                 "fraction of the learning files kept for the Validation set")
