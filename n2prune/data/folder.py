"""DIR_Database: image files in folders, one sub-folder per label (spec §5.1).

Files and sub-folders are visited in sorted order, as N2D2 does, so label IDs follow
the sorted folder names. Images are read with Pillow: colour as BGR, grey as 1 channel.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

from n2prune.data.databases import (DATABASES, RANDOM_PARTITIONING, Database, Seed,
                                    check_fraction, path_key)
from n2prune.data.exceptions import ParameterError
from n2prune.data.formats import IMAGE_EXTENSIONS, read_image
from n2prune.ini.params import REQUIRED, Key
from n2prune.ini.values import read_bool, read_float, read_int, read_list, read_word


@DATABASES.register("DIR_Database")
class DIRDatabase(Database):
    """Images under ``data_path``; the label of a file is its folder path below data_path.

    ``depth`` is how many folder levels are visited (negative: all), ``label_depth`` how
    many of them name the label (0: deeper folders keep the parent's label; negative: no
    label). With ``per_label_partitioning`` the fractions apply to each label, and what is
    left goes to Test; otherwise ``learn``, ``validation`` and ``test`` are numbers of
    stimuli, as in N2D2.
    """

    KEYS = (path_key("DataPath", "data_path", REQUIRED, "root folder of the images"),
            Key("Depth", "depth", read_int, 1, "folder levels to visit (negative: all)"),
            Key("LabelName", "label_name", read_word, "", "label of the files in DataPath"),
            Key("LabelDepth", "label_depth", read_int, 1, "folder levels naming the label"),
            Key("PerLabelPartitioning", "per_label_partitioning", read_bool, True,
                "apply the fractions to each label"),
            Key("EquivLabelPartitioning", "equiv_label_partitioning", read_bool, True,
                "every label uses the stimulus count of the smallest label"),
            Key("Learn", "learn", read_float, REQUIRED, "fraction (or count) for Learn"),
            Key("Validation", "validation", read_float, 0.0, "fraction for Validation"),
            Key("Test", "test", read_float, None, "fraction for Test (default: the rest)"),
            Key("ValidExtensions", "valid_extensions", read_list(read_word), (),
                "lower-case file extensions to load (default: every image type)"),
            Key("LoadInMemory", "load_in_memory", read_bool, False,
                "accepted; n2prune always loads in memory"),
            RANDOM_PARTITIONING)

    def __init__(self, data_path: str, learn: float, validation: float = 0.0,
                 test: Optional[float] = None, depth: int = 1, label_name: str = "",
                 label_depth: int = 1, per_label_partitioning: bool = True,
                 equiv_label_partitioning: bool = True, valid_extensions: Sequence[str] = (),
                 load_in_memory: bool = False, random_partitioning: bool = True,
                 seed: Seed = 0):
        super().__init__(random_partitioning, seed)
        if not os.path.isdir(data_path):
            raise ValueError(f"DIR_Database: folder {data_path!r} not found; set DataPath= "
                             f"in [database] to the folder of the images")
        self.data_path = data_path
        self.valid_extensions = tuple(valid_extensions)
        files: List[Tuple[str, int]] = []
        self._scan(data_path, depth, label_name, label_depth, files)
        if not files:
            raise ValueError(f"DIR_Database: no image file found in {data_path!r}")
        self._add([read_image(path) for path, _ in files], [label for _, label in files])
        if per_label_partitioning:
            self._split_per_label(learn, validation, test, equiv_label_partitioning)
        else:
            self._split_counts(learn, validation, test)
        self._finish()

    def _scan(self, folder: str, depth: int, label_name: str, label_depth: int,
              files: List[Tuple[str, int]]) -> None:
        """N2D2's ``loadDir``: this folder's files (sorted), then its sub-folders (sorted)."""
        entries = sorted(os.path.join(folder, name) for name in os.listdir(folder))
        images = [path for path in entries if os.path.isfile(path) and self._wanted(path)]
        if images:
            label = self.label_id(label_name) if label_depth >= 0 else -1
            files.extend((path, label) for path in images)
        if depth == 0:
            return
        for sub in (path for path in entries if os.path.isdir(path)):
            if label_depth > 0:
                self._scan(sub, depth - 1, f"{label_name}/{os.path.basename(sub)}",
                           label_depth - 1, files)
            else:
                self._scan(sub, depth - 1, label_name, label_depth, files)

    def _wanted(self, path: str) -> bool:
        extension = os.path.splitext(path)[1][1:].lower()
        if self.valid_extensions and extension not in self.valid_extensions:
            return False
        return extension in IMAGE_EXTENSIONS

    def _split_per_label(self, learn: float, validation: float, test: Optional[float],
                         equiv: bool) -> None:
        if learn + validation > 1.0:
            raise ParameterError("Validation", f"DIR_Database: Learn ({learn}) + "
                                               f"Validation ({validation}) cannot be > 1.0")
        test = max(0.0, 1.0 - learn - validation) if test is None else test
        for name, value in (("Learn", learn), ("Validation", validation), ("Test", test)):
            check_fraction(name, value)
        self.partition.split_per_label(self._labels, self.nb_labels, learn, validation,
                                       test, equiv)
        self.partition.split(0.0, 0.0, 1.0)

    def _split_counts(self, learn: float, validation: float, test: Optional[float]) -> None:
        total = len(self._labels)
        test = total - learn - validation if test is None else test
        for name, value in (("Learn", learn), ("Validation", validation), ("Test", test)):
            if value < 0 or value != int(value):
                raise ParameterError(name, f"DIR_Database: with PerLabelPartitioning=0, "
                                           f"{name} is a number of stimuli, got {value!r} "
                                           f"({total} found)")
            self.partition.take(int(value), name)
