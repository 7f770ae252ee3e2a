"""CIFAR-10 and CIFAR-100 binary batches (spec §5.1).

N2D2 writes each image as a BGR .ppm and reads it back with OpenCV, so channel 0 is
**blue**. Label IDs follow the first appearance of each label name in the files, not
CIFAR's numbering.
"""

from __future__ import annotations

import os
from typing import Optional

from n2prune.data.databases import (DATABASES, RANDOM_PARTITIONING, VALIDATION, Database,
                                    Seed, check_fraction, n2d2_data, path_key, where_hint)
from n2prune.data.formats import read_cifar, read_label_names
from n2prune.ini.params import Key
from n2prune.ini.values import read_bool

USE_TEST_FOR_VALIDATION = Key("UseTestForValidation", "use_test_for_validation", read_bool,
                              False, "use test_batch as the Validation set as well")


class _CIFARDatabase(Database):
    """Shared loading: one label-names file, records of label byte(s) + RGB planes."""

    def __init__(self, data_path: Optional[str], label_path: Optional[str],
                 validation: float, random_partitioning: bool, seed: Seed):
        super().__init__(random_partitioning, seed)
        check_fraction("Validation", validation)
        self.data_path = data_path or n2d2_data(self.DEFAULT_DIR)
        self.label_path = label_path or self.data_path

    def _load(self, file_name: str, names_file: str, label_bytes: int = 1,
              label_column: int = 0) -> None:
        hint = where_hint(type(self).__name__.replace("Database", ""), self.DEFAULT_DIR)
        data_file = os.path.join(self.data_path, file_name)
        names_path = os.path.join(self.label_path, names_file)
        for path in (data_file, names_path):
            if not os.path.isfile(path):
                raise ValueError(f"{os.path.basename(path)} not found in "
                                 f"{os.path.dirname(path)!r}; {hint}")
        names = read_label_names(names_path)
        images, labels = read_cifar(data_file, label_bytes)
        self._add(images, self.label_ids(names, labels[:, label_column]))


@DATABASES.register("CIFAR10_Database")
class CIFAR10Database(_CIFARDatabase):
    """data_batch_1..5.bin split into Learn/Validation, test_batch.bin as Test."""

    DEFAULT_DIR = "cifar-10-batches-bin"

    KEYS = (path_key("DataPath", "data_path", None,
                     "folder of the .bin batches (default ${N2D2_DATA}/cifar-10-batches-bin)"),
            path_key("LabelPath", "label_path", None, "folder of batches.meta.txt"),
            VALIDATION, USE_TEST_FOR_VALIDATION, RANDOM_PARTITIONING)

    def __init__(self, data_path: Optional[str] = None, label_path: Optional[str] = None,
                 validation: float = 0.0, use_test_for_validation: bool = False,
                 random_partitioning: bool = True, seed: Seed = 0):
        super().__init__(data_path, label_path, validation, random_partitioning, seed)
        for batch in range(1, 6):
            self._load(f"data_batch_{batch}.bin", "batches.meta.txt")
        # As N2D2: the learning batches are split even when the test batch validates.
        self.partition.split(1.0 - validation, validation, 0.0)
        if use_test_for_validation:
            self._load("test_batch.bin", "batches.meta.txt")
            self.partition.split(0.0, 1.0, 0.0)
        self._load("test_batch.bin", "batches.meta.txt")
        self.partition.split(0.0, 0.0, 1.0)
        self._finish()


@DATABASES.register("CIFAR100_Database")
class CIFAR100Database(_CIFARDatabase):
    """train.bin split into Learn/Validation, test.bin as Test; fine labels unless UseCoarse."""

    DEFAULT_DIR = "cifar-100-binary"

    KEYS = (path_key("DataPath", "data_path", None,
                     "folder of train.bin/test.bin (default ${N2D2_DATA}/cifar-100-binary)"),
            path_key("LabelPath", "label_path", None, "folder of the label-name files"),
            VALIDATION, Key("UseCoarse", "use_coarse", read_bool, False,
                            "use the 20 coarse labels instead of the 100 fine ones"),
            USE_TEST_FOR_VALIDATION, RANDOM_PARTITIONING)

    def __init__(self, data_path: Optional[str] = None, label_path: Optional[str] = None,
                 validation: float = 0.0, use_coarse: bool = False,
                 use_test_for_validation: bool = False, random_partitioning: bool = True,
                 seed: Seed = 0):
        super().__init__(data_path, label_path, validation, random_partitioning, seed)
        names = "coarse_label_names.txt" if use_coarse else "fine_label_names.txt"
        column = 0 if use_coarse else 1
        self._load("train.bin", names, 2, column)
        # N2D2 loads test.bin before splitting train.bin here, leaving Learn empty; we split
        # first, as its CIFAR-10 does.
        self.partition.split(1.0 - validation, validation, 0.0)
        if use_test_for_validation:
            self._load("test.bin", names, 2, column)
            self.partition.split(0.0, 1.0, 0.0)
        self._load("test.bin", names, 2, column)
        self.partition.split(0.0, 0.0, 1.0)
        self._finish()
