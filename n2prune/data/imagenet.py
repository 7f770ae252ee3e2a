"""ILSVRC2012_Database: ImageNet's folder layout, read as N2D2 reads it (spec §5.1).

``DataPath/train/<synset>/`` for each synset in the order of ``synsets.txt`` (``LabelPath``;
the order sets the label IDs), split ``Learn`` / ``1 - Learn`` into Learn / Test;
``DataPath/val/`` with ``DataPath/val.txt`` (lines ``<file> <label index>``) is Validation,
and is loaded again as Test when ``UseValidationForTest=1``. Every image is held in memory,
so this suits ImageNet subsets, not the 1.28 million images of the full set.
"""

from __future__ import annotations

import os
from typing import List

from n2prune.data.databases import DATABASES, RANDOM_PARTITIONING, Database, Seed, path_key
from n2prune.data.exceptions import ParameterError
from n2prune.data.formats import IMAGE_EXTENSIONS, read_image
from n2prune.ini.params import REQUIRED, Key
from n2prune.ini.values import read_bool, read_float

BACKGROUND = "background"


@DATABASES.register("ILSVRC2012_Database")
class ILSVRC2012Database(Database):
    """ImageNet folders: ``train/<synset>/``, ``val/`` + ``val.txt``, ``synsets.txt``.

    With ``background_class`` a label named "background" takes ID 0 before the synsets, and
    the indexes of ``val.txt`` (which count synsets) are shifted by one to match.
    """

    KEYS = (Key("Learn", "learn", read_float, REQUIRED,
                "fraction of train/ for Learn (the rest goes to Test)"),
            Key("UseValidationForTest", "use_validation_for_test", read_bool, True,
                "load val/ again as the Test set"),
            Key("BackgroundClass", "background_class", read_bool, False,
                "label 0 is 'background', before the synsets"),
            path_key("DataPath", "data_path", None, "folder holding train/, val/, val.txt"),
            path_key("LabelPath", "label_path", None, "synsets.txt: one synset per line"),
            RANDOM_PARTITIONING)
    DEFAULT_PATHS = {"data_path": "ILSVRC2012", "label_path": "ILSVRC2012/synsets.txt"}

    def __init__(self, data_path: str, label_path: str, learn: float,
                 use_validation_for_test: bool = True, background_class: bool = False,
                 random_partitioning: bool = True, seed: Seed = 0):
        super().__init__(random_partitioning, seed)
        if not 0.0 <= learn <= 1.0:
            raise ParameterError("Learn", f"ILSVRC2012_Database: Learn must be a fraction "
                                          f"within [0, 1], got {learn!r}")
        if background_class:
            self.label_id(BACKGROUND)
        synsets = _synsets(label_path)
        self._background = int(background_class)
        self._load_train(os.path.join(data_path, "train"), synsets)
        self.partition.split(learn, 0.0, 1.0 - learn)
        val_dir, val_txt = os.path.join(data_path, "val"), os.path.join(data_path, "val.txt")
        self._load_validation(val_dir, val_txt)
        self.partition.split(0.0, 1.0, 0.0)
        if use_validation_for_test:
            self._load_validation(val_dir, val_txt)
            self.partition.split(0.0, 0.0, 1.0)
        self._finish()

    def _load_train(self, train_dir: str, synsets: List[str]) -> None:
        """N2D2's ``loadDir(train/<synset>, 0, synset, 0)`` in synsets.txt order."""
        if not os.path.isdir(train_dir):
            raise ValueError(f"ILSVRC2012_Database: folder {train_dir!r} not found; set "
                             f"DataPath= in [database] to the folder holding train/ and val/")
        for synset in synsets:
            folder = os.path.join(train_dir, synset)
            label = self.label_id(synset)
            if not os.path.isdir(folder):
                raise ValueError(f"ILSVRC2012_Database: folder {folder!r} not found: "
                                 f"synsets.txt names {synset!r}, so train/ must hold it")
            files = _images(folder)
            self._add([read_image(path) for path in files], [label] * len(files))

    def _load_validation(self, val_dir: str, val_txt: str) -> None:
        """``val.txt``: ``<file> <label index>`` pairs, the index counting synsets."""
        try:
            with open(val_txt) as stream:
                tokens = stream.read().split()
        except OSError:
            raise ValueError(f"ILSVRC2012_Database: could not open validation labels file "
                             f"{val_txt!r} (lines '<file in val/> <synset index>')") from None
        if len(tokens) % 2:
            raise ValueError(f"{val_txt}: an odd number of fields; each line is "
                             f"'<file in val/> <synset index>'")
        paths, labels = [], []
        for name, index in zip(tokens[0::2], tokens[1::2]):
            label = _index(val_txt, name, index) + self._background
            if label >= self.nb_labels:
                raise ValueError(f"{val_txt}: {name}: synset index {index} but synsets.txt "
                                 f"names {self.nb_labels - self._background} synsets")
            paths.append(os.path.join(val_dir, name))
            labels.append(label)
        self._add([read_image(path) for path in paths], labels)


def _synsets(label_path: str) -> List[str]:
    try:
        with open(label_path) as stream:
            synsets = stream.read().split()
    except OSError:
        raise ValueError(f"ILSVRC2012_Database: could not open labels file {label_path!r}; "
                         f"set LabelPath= in [database] to synsets.txt (one synset a line)") \
            from None
    if not synsets:
        raise ValueError(f"ILSVRC2012_Database: {label_path} names no synset")
    return synsets


def _images(folder: str) -> List[str]:
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if os.path.splitext(name)[1][1:].lower() in IMAGE_EXTENSIONS
                  and os.path.isfile(os.path.join(folder, name)))


def _index(where: str, name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{where}: {name}: synset index must be a non-negative integer, "
                         f"got {text!r}")
    return value

