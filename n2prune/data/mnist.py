"""MNIST-style databases: MNIST and Fashion-MNIST IDX files, and the embedded 8x8 digits."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from n2prune.data.databases import (DATABASES, RANDOM_PARTITIONING, VALIDATION, Database,
                                    Seed, check_fraction, n2d2_data, path_key, where_hint)
from n2prune.data.formats import find_file, read_idx_pair
from n2prune.ini.params import Key
from n2prune.ini.values import read_float


@DATABASES.register("MNIST_IDX_Database")
class MNISTDatabase(Database):
    """MNIST IDX files (raw or .gz): train-* split into Learn/Validation, t10k-* as Test.

    Labels "0".."9" are created first, so the label ID is the digit. Images are 28x28x1.
    """

    DEFAULT_DIR = "mnist"
    KEYS = (path_key("DataPath", "data_path", None, "folder of the IDX files "
                     "(default ${N2D2_DATA}/mnist)"),
            path_key("LabelPath", "label_path", None, "folder of the label files "
                     "(default DataPath)"),
            VALIDATION, RANDOM_PARTITIONING)

    def __init__(self, data_path: Optional[str] = None, label_path: Optional[str] = None,
                 validation: float = 0.0, random_partitioning: bool = True, seed: Seed = 0):
        super().__init__(random_partitioning, seed)
        check_fraction("Validation", validation)
        self.data_path = data_path or n2d2_data(self.DEFAULT_DIR)
        self.label_path = label_path or self.data_path
        for digit in range(10):
            self.label_id(str(digit))
        self._load("train")
        self.partition.split(1.0 - validation, validation, 0.0)
        self._load("t10k")
        self.partition.split(0.0, 0.0, 1.0)
        self._finish()

    def _load(self, prefix: str) -> None:
        hint = where_hint(type(self).__name__.replace("Database", ""), self.DEFAULT_DIR)
        images = find_file(self.data_path, f"{prefix}-images-idx3-ubyte", hint)
        labels = find_file(self.label_path, f"{prefix}-labels-idx1-ubyte", hint)
        data, digits = read_idx_pair(images, labels)
        self._add(data, self.label_ids([str(d) for d in range(256)], digits))


@DATABASES.register("Fashion_MNIST_IDX_Database")
class FashionMNISTDatabase(MNISTDatabase):
    """Fashion-MNIST, in MNIST's IDX layout; label IDs 0..9 as in the files."""

    DEFAULT_DIR = os.path.join("fashion-mnist", "data", "fashion")


@DATABASES.register("Digits_Database")
class DigitsDatabase(Database):
    """n2prune's embedded default: scikit-learn's 1797 handwritten 8x8 digits, no download.

    Pixel values 0..16 are scaled to 8-bit 0..255, so N2D2's implicit [0, 1] normalisation
    applies as for MNIST. Label ID = digit. The sets are drawn with N2D2's split rule.
    """

    KEYS = (Key("Learn", "learn", read_float, 0.7, "fraction of stimuli for Learn"),
            Key("Validation", "validation", read_float, 0.1, "fraction for Validation"),
            Key("Test", "test", read_float, None, "fraction for Test (default: the rest)"),
            RANDOM_PARTITIONING)

    def __init__(self, learn: float = 0.7, validation: float = 0.1,
                 test: Optional[float] = None, random_partitioning: bool = True,
                 seed: Seed = 0):
        super().__init__(random_partitioning, seed)
        test = max(0.0, 1.0 - learn - validation) if test is None else test
        for name, value in (("Learn", learn), ("Validation", validation), ("Test", test)):
            check_fraction(name, value)
        images, digits = load_digits()
        for digit in range(10):
            self.label_id(str(digit))
        self._add(images, digits)
        self.partition.split(learn, validation, test)
        self._finish()


def load_digits():
    """scikit-learn's 8x8 digits as uint8 images [1797, 8, 8, 1] and digit labels."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ValueError("Digits_Database needs scikit-learn (pip install scikit-learn)") \
            from None
    bunch = sklearn_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64)
