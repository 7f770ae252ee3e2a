"""Checkpoints and model.pt: a digest of the contents, verified on reading; damaged or
mis-structured files are refused with one line, never used."""

import struct
import zipfile
from pathlib import Path

import pytest
import torch

from n2prune.cli import train_main
from n2prune.train.checkpoint import MODEL_KEYS, content_digest, load_checkpoint, save_atomic

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")


def flip_tensor_byte(path: Path) -> None:
    """Flip one bit inside the largest tensor's bytes, leaving the zip well formed."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                   info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2 + 1] ^= 0x40
    path.write_bytes(bytes(data))


def test_round_trip_keeps_contents_and_digest(tmp_path):
    obj = {"net": {"w": torch.arange(6.0).reshape(2, 3), "m": torch.ones(3, dtype=torch.bool)},
           "seed": 3, "rows": [{"a": 1.5, "b": None}], "g": torch.Generator().get_state()}
    save_atomic(obj, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt", MODEL_KEYS)
    assert content_digest(back) == content_digest(obj)
    assert torch.equal(back["net"]["w"], obj["net"]["w"]) and back["seed"] == 3
    assert back["rows"] == [{"a": 1.5, "b": None}]


def test_digest_sees_every_value_dtype_and_shape():
    base = {"w": torch.zeros(4), "n": 1}
    variants = [{"w": torch.zeros(4, dtype=torch.float64), "n": 1},
                {"w": torch.zeros(2, 2), "n": 1}, {"w": torch.zeros(4), "n": 2},
                {"w": torch.tensor([0.0, 0.0, 1e-45, 0.0]), "n": 1}, {"w": torch.zeros(4)},
                {"n": 1, "w": torch.zeros(4)}, {"w": torch.zeros(4), "n": 1.0}]
    digests = {content_digest(v) for v in variants}
    assert content_digest(base) not in digests and len(digests) == len(variants)


def test_a_bit_flip_inside_a_well_formed_zip_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    save_atomic({"net": {"w": torch.ones(256)}, "seed": 1}, path)
    flip_tensor_byte(path)
    assert float(torch.load(path, weights_only=True)["net"]["w"].sum()) != 256  # torch loads it
    with pytest.raises(ValueError, match="c.pt: damaged: its contents do not match"):
        load_checkpoint(path)


@pytest.mark.parametrize("content,words", [
    ([1, 2, 3], "holds a list"),
    ({"net": {}}, "no integrity digest"),
])
def test_files_not_written_by_save_atomic_are_refused(tmp_path, content, words):
    torch.save(content, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=words):
        load_checkpoint(tmp_path / "x.pt")


@pytest.mark.parametrize("content,words", [
    ({"seed": 1}, "no 'net' entry"),
    ({"net": [1], "seed": 1}, "entry 'net' is a list, expected dict"),
    ({"net": {}, "seed": True}, "entry 'seed' is a bool, expected int"),
])
def test_wrong_structure_is_one_line(tmp_path, content, words):
    save_atomic(content, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=words):
        load_checkpoint(tmp_path / "x.pt", MODEL_KEYS)


def _train(output, *extra):
    return train_main([DIGITS, "-learn-epoch", "1", "-seed", "5", "--threads", "1", "--quiet",
                       "--output", str(output), *extra])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_resume_from_a_damaged_checkpoint_is_refused(tmp_path, capsys):
    output = tmp_path / "run"
    assert _train(output) == 0
    before = (output / "report.json").read_text()
    flip_tensor_byte(output / "checkpoint.pt")
    capsys.readouterr()
    assert _train(output, "--resume") == 2
    line = _one_error_line(capsys)
    assert "checkpoint.pt: damaged" in line and line.endswith("--overwrite starts afresh")
    assert (output / "report.json").read_text() == before
    (output / "checkpoint.pt").write_bytes((output / "checkpoint.pt").read_bytes()[:100])
    assert _train(output, "--resume") == 2  # truncated: torch's own advice is left out
    line = _one_error_line(capsys)
    assert "unreadable checkpoint, damaged or truncated" in line and len(line) < 300
    assert line.endswith("--overwrite starts afresh")
    assert _train(output, "--overwrite") == 0


@pytest.mark.parametrize("content,words", [
    ("list", "holds a list"),
    ({"seed": 1}, "no 'net' entry"),
    ({"net": {"layers.conv1.weight": torch.zeros(1)}, "seed": 1}, "does not fit"),
    ("flip", "damaged"),
])
def test_test_only_with_a_bad_model_pt_is_one_line(tmp_path, capsys, content, words):
    output = tmp_path / "run"
    assert _train(output) == 0
    model = output / "model.pt"
    if content == "list":
        torch.save([1, 2], model)
    elif content == "flip":
        flip_tensor_byte(model)
    else:
        save_atomic(content, model)
    capsys.readouterr()
    code = train_main([DIGITS, "-test", "-seed", "5", "--quiet", "--output", str(output)])
    assert code == 2 and words in _one_error_line(capsys)


@pytest.mark.parametrize("change,words", [
    (lambda c: c.pop("net"), "no 'net' entry"),
    (lambda c: c["state"].pop("batches"), "state: not an n2prune checkpoint of this kind: "
                                          "no 'batches' entry"),
    (lambda c: c.update(optimizers=[]), "0 solver states"),
    (lambda c: c["state"].update(best={"score": 0.5, "log_point": 2, "state": c["net"]}),
     "best log point is not one of its rows"),
    (lambda c: c["net"].pop("layers.fc2.weight"), "does not fit this one (Error(s) in "
                                                  "loading state_dict"),
    (lambda c: c.update(torch_rng=torch.zeros(3, dtype=torch.uint8)), "random state"),
])
def test_a_checkpoint_of_the_wrong_structure_is_one_line(tmp_path, capsys, change, words):
    output = tmp_path / "run"
    assert _train(output) == 0
    from n2prune.train.checkpoint import RUN_KEYS
    checkpoint = load_checkpoint(output / "checkpoint.pt", RUN_KEYS)
    change(checkpoint)
    save_atomic(checkpoint, output / "checkpoint.pt")
    capsys.readouterr()
    assert _train(output, "--resume") == 2
    assert words in _one_error_line(capsys)
