"""File readers for the databases: IDX (MNIST), CIFAR binary batches, image files.

Images come back as numpy uint8 arrays in OpenCV's layout, [H, W, C] per image
([N, H, W, C] for a file of many), colour as **BGR** and grey as one channel, since that
is what N2D2's pipeline sees. Every problem is a one-line ValueError naming the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import List, Tuple

import numpy as np

_IDX_UBYTE = 0x08
# Extensions OpenCV reads (N2D2's DataFile registrar), minus the non-image ones.
IMAGE_EXTENSIONS = ("bmp", "dib", "jpeg", "jpg", "jpe", "jp2", "png", "webp", "pbm",
                    "pgm", "ppm", "pxm", "pnm", "sr", "ras", "tiff", "tif", "gif")


def find_file(folder: str, name: str, hint: str) -> str:
    """``folder/name``, or ``folder/name.gz``; a ValueError with ``hint`` when neither exists."""
    for candidate in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.isfile(candidate):
            return candidate
    raise ValueError(f"{name} (or {name}.gz) not found in {folder!r}; {hint}")


def read_bytes(path: str) -> bytes:
    """The whole file, gunzipped when it is gzip-compressed (detected by its magic bytes)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"corrupt gzip file {path}: {error}") from None
    return data


def read_idx(path: str, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions (3: images, 1: labels)."""
    data = read_bytes(path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE or data[3] != ndim:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes with {ndim} "
                         f"dimension(s) (magic number {data[:4].hex()})")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "larger than expected"
        raise ValueError(f"{path}: file {what}: {len(data)} bytes for shape {shape}, "
                         f"expected {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(images_path: str, labels_path: str) -> Tuple[np.ndarray, np.ndarray]:
    """MNIST images [N, H, W, 1] and labels [N] from two IDX files of matching length."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} "
                         f"holds {len(labels)} labels")
    return images[..., None], labels


def read_label_names(path: str) -> List[str]:
    """One label name per line, as ``std::getline`` reads them (empty lines kept)."""
    try:
        with open(path, "r", encoding="utf-8", newline="\n") as stream:
            text = stream.read()
    except OSError as error:
        raise ValueError(f"cannot read label names {path}: {error.strerror}") from None
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def read_cifar(path: str, nb_label_bytes: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """A CIFAR binary batch: images [N, 32, 32, 3] **BGR** and label indexes [N, L].

    Each record is the label byte(s) then 1024 red, 1024 green and 1024 blue bytes.
    """
    data = read_bytes(path)
    record = nb_label_bytes + 3 * 32 * 32
    if len(data) == 0 or len(data) % record:
        raise ValueError(f"{path}: {len(data)} bytes is not a whole number of "
                         f"{record}-byte CIFAR records (truncated or not a CIFAR batch)")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    rgb = records[:, nb_label_bytes:].reshape(-1, 3, 32, 32)
    bgr = np.ascontiguousarray(rgb[:, ::-1].transpose(0, 2, 3, 1))
    return bgr, records[:, :nb_label_bytes]


def read_image(path: str) -> np.ndarray:
    """An image file as OpenCV's ``imread(UNCHANGED)`` gives it: [H, W, C], BGR(A) or grey."""
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("reading image files needs Pillow: pip install Pillow") from None
    try:
        with Image.open(path) as image:
            image.load()
            array = _pil_to_array(image)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None
    return array


def _pil_to_array(image) -> np.ndarray:
    """Pillow modes to OpenCV's channel order and depth."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "LA":
        image = image.convert("RGBA")
    elif mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)[..., None]
    elif mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        return array[..., None]
    order = [2, 1, 0, 3][:array.shape[2]]
    return np.ascontiguousarray(array[..., order])
