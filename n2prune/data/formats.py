"""File readers for the databases: IDX (MNIST), CIFAR binary batches, image files.

Images come back as numpy uint8 arrays in OpenCV's layout, [H, W, C] per image
([N, H, W, C] for a file of many), colour as **BGR** and grey as one channel, since that
is what N2D2's pipeline sees. Every problem is a one-line ValueError naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import warnings
import zlib
from typing import List, Tuple

import numpy as np

_IDX_UBYTE = 0x08
# MNIST's largest file is 47 MB, a CIFAR-100 batch 150 MB: 2 GiB (decompressed) leaves room
# for larger IDX/CIFAR-style sets while a gzip bomb or a lying header stops at a known size.
MAX_DATA_FILE_BYTES = 2 ** 31
# Pillow's own default (about 89 M pixels: a 9,500 x 9,500 image); Pillow only warns up to
# twice that, we refuse from the limit on.
MAX_IMAGE_PIXELS = 89_478_485
# Extensions OpenCV reads (N2D2's DataFile registrar), minus the non-image ones.
IMAGE_EXTENSIONS = ("bmp", "dib", "jpeg", "jpg", "jpe", "jp2", "png", "webp", "pbm",
                    "pgm", "ppm", "pxm", "pnm", "sr", "ras", "tiff", "tif", "gif")


def find_file(folder: str, name: str, hint: str) -> str:
    """``folder/name``, or ``folder/name.gz``; a ValueError with ``hint`` when neither exists."""
    for candidate in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
        if os.path.isfile(candidate):
            return candidate
    raise ValueError(f"{name} (or {name}.gz) not found in {folder!r}; {hint}")


def _open_regular(path: str):
    """``path`` opened for reading; a ValueError unless it is a regular file (a FIFO or a
    device would block or never end)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise ValueError(f"cannot read {path}: not a regular file")
    return os.fdopen(descriptor, "rb")


def _reader(stream, path: str):
    """A stream of the file's contents, gunzipped when it starts with gzip's magic bytes."""
    magic = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
    return gzip.GzipFile(fileobj=stream, mode="rb") if magic == b"\x1f\x8b" else stream


def _read_at_most(stream, size: int, path: str) -> bytes:
    """Up to ``size`` bytes of ``stream``; a one-line ValueError for a corrupt gzip file."""
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"corrupt gzip file {path}: {error}") from None


def read_bytes(path: str, limit: int = MAX_DATA_FILE_BYTES) -> bytes:
    """The whole file, gunzipped when it is gzip-compressed (detected by its magic bytes);
    a ValueError when it holds (or decompresses to) more than ``limit`` bytes."""
    with _open_regular(path) as raw:
        data = _read_at_most(_reader(raw, path), limit + 1, path)
    if len(data) > limit:
        raise ValueError(f"{path}: more than {limit} bytes (once decompressed): not a data "
                         "file of this kind")
    return data


def read_idx(path: str, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions (3: images, 1: labels).

    The header gives the size: no more than that is decompressed (a gzip bomb stops there)
    and a header declaring more than MAX_DATA_FILE_BYTES is refused before reading on.
    """
    header = 4 + 4 * ndim
    with _open_regular(path) as raw:
        stream = _reader(raw, path)
        head = _read_at_most(stream, header, path)
        if len(head) < header:
            raise ValueError(f"{path}: truncated IDX header ({len(head)} bytes)")
        if head[0] != 0 or head[1] != 0 or head[2] != _IDX_UBYTE or head[3] != ndim:
            raise ValueError(f"{path}: not an IDX file of unsigned bytes with {ndim} "
                             f"dimension(s) (magic number {head[:4].hex()})")
        shape = tuple(int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
        size = math.prod(shape)
        if size > MAX_DATA_FILE_BYTES:
            raise ValueError(f"{path}: the IDX header declares shape {shape} ({size} bytes), "
                             f"over the limit of {MAX_DATA_FILE_BYTES} bytes")
        body = _read_at_most(stream, size + 1, path)
    if len(body) != size:
        found = f"{header + len(body)} bytes" if len(body) < size else \
            f"more than {header + size} bytes"
        what = "truncated" if len(body) < size else "larger than expected"
        raise ValueError(f"{path}: file {what}: {found} for shape {shape}, "
                         f"expected {header + size}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


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
    """An image file as OpenCV's ``imread(UNCHANGED)`` gives it: [H, W, C], BGR(A) or grey.

    Only regular files are opened, and the pixel count is checked from the header before
    decoding (a decompression bomb is refused, not decoded).
    """
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("reading image files needs Pillow: pip install Pillow") from None
    with _open_regular(path) as stream:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(stream) as image:
                    width, height = image.size
                    if width * height > MAX_IMAGE_PIXELS:
                        raise ValueError(f"{width} x {height} pixels is over the limit of "
                                         f"{MAX_IMAGE_PIXELS} pixels (decompression bomb?)")
                    image.load()
                    array = _pil_to_array(image)
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as error:
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
