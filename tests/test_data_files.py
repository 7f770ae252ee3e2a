"""Damaged and hostile data files give one-line errors with bounded reads (issue 8 item 4):
gzip bombs and lying IDX headers, decompression-bomb images, FIFOs and devices."""

import gzip
import os
import struct
import zlib

import numpy as np
import pytest

from n2prune.data import formats
from n2prune.data.formats import read_bytes, read_idx, read_image


def idx_header(*shape):
    return bytes([0, 0, 8, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)


def gzip_of_zeros(prefix: bytes, zeros: int) -> bytes:
    """A gzip file of ``prefix`` then ``zeros`` zero bytes, compressed in constant memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunks = [compressor.compress(prefix)]
    block = bytes(2 ** 20)
    for _ in range(zeros // len(block)):
        chunks.append(compressor.compress(block))
    chunks.append(compressor.flush())
    return b"".join(chunks)


def test_a_gzip_bomb_stops_at_the_size_the_idx_header_declares(tmp_path):
    # 10 28x28 images declared (7,840 bytes) followed by 64 MiB of zeros (64 kB compressed).
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of_zeros(idx_header(10, 28, 28), 64 * 2 ** 20))
    with pytest.raises(ValueError) as info:
        read_idx(str(path), 3)
    assert str(info.value) == (f"{path}: file larger than expected: more than 7856 bytes for "
                               "shape (10, 28, 28), expected 7856")


def test_an_idx_header_declaring_terabytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(2 ** 31, 28, 28)))
    with pytest.raises(ValueError) as info:
        read_idx(str(path), 3)
    assert str(info.value) == (f"{path}: the IDX header declares shape (2147483648, 28, 28) "
                               "(1683627180032 bytes), over the limit of 2147483648 bytes")


def test_a_good_gzip_idx_file_still_reads(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_header(3) + bytes([7, 8, 9])))
    assert read_idx(str(path), 1).tolist() == [7, 8, 9]


def test_generic_reads_are_capped(tmp_path, monkeypatch):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(gzip_of_zeros(b"", 4 * 2 ** 20))
    assert len(read_bytes(str(path), limit=4 * 2 ** 20)) == 4 * 2 ** 20
    with pytest.raises(ValueError) as info:
        read_bytes(str(path), limit=2 ** 20)
    assert str(info.value) == (f"{path}: more than 1048576 bytes (once decompressed): not a "
                               "data file of this kind")


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
def test_only_regular_data_files_are_read(tmp_path, kind):
    path = str(tmp_path / "f")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    else:
        path = kind
    for read in (lambda: read_idx(path, 1), lambda: read_bytes(path), lambda: read_image(path)):
        with pytest.raises(ValueError) as info:
            read()
        assert str(info.value) == f"cannot read {path}: not a regular file"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with one tiny (bad) IDAT chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) \
        + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (10_000, 10_000)])
def test_a_decompression_bomb_image_is_refused_from_its_header(tmp_path, width, height):
    # 10**10 pixels: Pillow raises its own error; 10**8: Pillow only warns, and would decode.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(width, height))
    with pytest.raises(ValueError) as info:
        read_image(str(path))
    message = str(info.value)
    assert message.startswith(f"cannot read image {path}: ") and "\n" not in message
    assert "pixels" in message and "decompression bomb" in message


def test_a_normal_image_still_reads(tmp_path, monkeypatch):
    from PIL import Image
    path = tmp_path / "grey.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(path)
    assert read_image(str(path))[..., 0].tolist() == np.arange(12).reshape(3, 4).tolist()
    monkeypatch.setattr(formats, "MAX_IMAGE_PIXELS", 11)
    with pytest.raises(ValueError, match="4 x 3 pixels is over the limit of 11 pixels"):
        read_image(str(path))
