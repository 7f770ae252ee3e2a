"""GTSRB_DIR_Database: the German Traffic Sign benchmark's folders, read as N2D2 reads them.

``DataPath/Final_Training/Images/<class>/*.ppm`` with one ``GT-<class>.csv`` per class folder,
and ``DataPath/Final_Test/Images/*.ppm`` with ``DataPath/GT-final_test.csv``. The CSV lines are
``Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId`` (any of ``, ; tab space``
separate; a line whose size is not a number, the header, is skipped). The ClassId text is the
label name, IDs in order of first appearance in the CSV files (sorted folders). Each image is
cropped to its ROI, ``x2``/``y2`` exclusive as N2D2 takes them. The training images are split
per label ``1 - Validation`` / ``Validation`` into Learn / Validation; the test images are Test.
With ``ExtractROIs=1`` an image with several ROIs gives one stimulus per ROI and an image with
none is dropped; otherwise (N2D2's ``extractLabels``) several ROIs on one image is an error.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Callable, Dict, List, Tuple

import numpy as np

from n2prune.data.databases import (DATABASES, RANDOM_PARTITIONING, Database, Seed,
                                    check_fraction, path_key)
from n2prune.data.formats import read_image
from n2prune.ini.params import Key
from n2prune.ini.values import read_bool, read_float

Roi = Tuple[int, int, int, int, int]       # x1, y1, x2, y2 (exclusive), label ID
_SEPARATORS = re.compile(r"[,;\s]+")


@DATABASES.register("GTSRB_DIR_Database")
class GTSRBDatabase(Database):
    """GTSRB's Final_Training / Final_Test folders and their CSV annotations."""

    KEYS = (Key("Validation", "validation", read_float, 0.0,
                "fraction of each class of Final_Training for Validation"),
            path_key("DataPath", "data_path", None, "folder holding Final_Training/ and "
                     "Final_Test/ (and GT-final_test.csv)"),
            Key("ExtractROIs", "extract_rois", read_bool, False,
                "one stimulus per ROI; images without a ROI are dropped"),
            RANDOM_PARTITIONING)
    DEFAULT_DIR = "GTSRB"

    def __init__(self, data_path: str, validation: float = 0.0, extract_rois: bool = False,
                 random_partitioning: bool = True, seed: Seed = 0):
        super().__init__(random_partitioning, seed)
        check_fraction("Validation", validation)
        self.extract_rois = extract_rois
        train = os.path.join(data_path, "Final_Training", "Images")
        if not os.path.isdir(train):
            raise ValueError(f"GTSRB_DIR_Database: folder {train!r} not found; set DataPath= "
                             f"in [database] to the folder holding Final_Training/ and "
                             f"Final_Test/")
        files = _ppm_files(train, depth=1)
        rois: Dict[str, List[Roi]] = {}
        for folder in _folders(train, depth=1):
            for csv in _files(folder, "csv"):
                _read_csv(csv, folder, rois, self.label_id)
        self._load(files, rois)
        self.partition.split_per_label(self._labels, self.nb_labels, 1.0 - validation,
                                       validation, 0.0, False)
        test = os.path.join(data_path, "Final_Test", "Images")
        if not os.path.isdir(test):
            raise ValueError(f"GTSRB_DIR_Database: folder {test!r} not found (the Test set)")
        rois = {}
        _read_csv(os.path.join(data_path, "GT-final_test.csv"), test, rois, self.label_id)
        self._load(_ppm_files(test, depth=0), rois)
        self.partition.split(0.0, 0.0, 1.0)
        self._finish()

    def _load(self, files: List[str], rois: Dict[str, List[Roi]]) -> None:
        """The stimuli of ``files`` cropped to their ROIs, labelled by them."""
        missing = sorted(set(rois) - set(files))
        if missing:   # N2D2 warns and ignores them too
            warnings.warn(f"GTSRB_DIR_Database: {len(missing)} CSV line(s) annotate images "
                          f"that are not there (first: {missing[0]}); ignored", stacklevel=2)
        images, labels, extra = [], [], []
        for path in files:
            found = rois.get(path, [])
            if not found:
                if self.extract_rois:
                    continue   # N2D2's extractROIs removes the stimulus
                raise ValueError(f"GTSRB_DIR_Database: {path} has no ROI in the CSV files; "
                                 f"every image needs its annotation line")
            if len(found) > 1 and not self.extract_rois:
                raise ValueError(f"GTSRB_DIR_Database: {path} has {len(found)} ROIs; labels "
                                 f"can be extracted only with one ROI per image (or set "
                                 f"ExtractROIs=1)")
            image = read_image(path)
            images.append(_crop(image, found[0], path))
            labels.append(found[0][4])
            extra.append([(_crop(image, roi, path), roi[4]) for roi in found[1:]])
        # N2D2 walks the stimuli backwards, appending each extra ROI as a new stimulus
        for more in reversed(extra):
            for crop, label in more:
                images.append(crop)
                labels.append(label)
        self._add(images, labels)


def _read_csv(path: str, folder: str, rois: Dict[str, List[Roi]],
              label_id: Callable[[str], int]) -> None:
    """N2D2's CsvLabelFile: ``name width height x1 y1 x2 y2 label`` lines; label IDs are
    created as the lines are read."""
    try:
        with open(path) as stream:
            lines = stream.read().splitlines()
    except OSError:
        raise ValueError(f"GTSRB_DIR_Database: could not open ROI file {path!r}") from None
    for number, line in enumerate(lines, 1):
        fields = [f for f in _SEPARATORS.split(line.split("#", 1)[0].strip()) if f]
        if not fields:
            continue
        if len(fields) < 3 or not (fields[1].isdigit() and fields[2].isdigit()):
            continue   # the header line: N2D2 warns "unreadable image size" and skips it
        if len(fields) != 8:
            raise ValueError(f"{path}:{number}: expected 'Filename;Width;Height;Roi.X1;"
                             f"Roi.Y1;Roi.X2;Roi.Y2;ClassId', got {len(fields)} fields")
        try:
            x1, y1, x2, y2 = (int(float(v)) for v in fields[3:7])
        except ValueError:
            raise ValueError(f"{path}:{number}: unreadable ROI coordinates "
                             f"{' '.join(fields[3:7])!r}") from None
        rois.setdefault(os.path.join(folder, fields[0]), []).append(
            (x1, y1, x2, y2, label_id(fields[7])))


def _crop(image: np.ndarray, roi: Roi, path: str) -> np.ndarray:
    x1, y1, x2, y2 = (max(0, v) for v in roi[:4])
    crop = image[y1:min(y2, image.shape[0]), x1:min(x2, image.shape[1])]
    if crop.size == 0:
        raise ValueError(f"GTSRB_DIR_Database: {path}: ROI {roi[:4]} is empty inside the "
                         f"{image.shape[1]}x{image.shape[0]} image")
    return np.ascontiguousarray(crop)


def _folders(root: str, depth: int) -> List[str]:
    """``root`` and its sub-folders down to ``depth`` levels, in N2D2's (sorted) order."""
    found = [root]
    if depth:
        for name in sorted(os.listdir(root)):
            if os.path.isdir(os.path.join(root, name)):
                found.extend(_folders(os.path.join(root, name), depth - 1))
    return found


def _files(folder: str, extension: str) -> List[str]:
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, name))
                  and os.path.splitext(name)[1][1:] == extension)


def _ppm_files(root: str, depth: int) -> List[str]:
    return [path for folder in _folders(root, depth) for path in _files(folder, "ppm")]
