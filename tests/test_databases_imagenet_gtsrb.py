"""ILSVRC2012_Database and GTSRB_DIR_Database on tiny folders of their layouts (issue 22)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fakesection import FakeSection
from n2prune.data import GTSRBDatabase, ILSVRC2012Database, build_database
from n2prune.errors import ConfigError

PIL = pytest.importorskip("PIL.Image", reason="the image databases read files with Pillow")
MODELS = Path(__file__).resolve().parents[2] / "shared" / "n2d2-models" / "models"
if not MODELS.is_dir():
    MODELS = Path("/work/shared/n2d2-models/models")


def _image(path, rgb, size=(6, 5)):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    PIL.new("RGB", size, rgb).save(path)


def write_imagenet(root):
    """train/<synset>/ (2 synsets, listed out of alphabetical order), val/ + val.txt."""
    (root / "synsets.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "synsets.txt").write_text("n02\nn01\n")
    for synset, rgb in (("n01", (10, 20, 30)), ("n02", (200, 100, 50))):
        for i in range(4):
            _image(root / "train" / synset / f"{synset}_{i}.png", rgb)
    _image(root / "val" / "v1.png", (200, 100, 50))
    _image(root / "val" / "v2.png", (10, 20, 30))
    _image(root / "val" / "v3.png", (200, 100, 50))
    (root / "val.txt").write_text("v1.png 0\nv2.png 1\nv3.png 0\n")


def test_ilsvrc_labels_follow_synsets_txt_and_val_is_validation_and_test(tmp_path):
    write_imagenet(tmp_path)
    db = ILSVRC2012Database(str(tmp_path), str(tmp_path / "synsets.txt"), learn=0.5,
                            random_partitioning=False)
    assert db.label_names == ["n02", "n01"]            # synsets.txt order, not sorted
    assert db.size("Learn") == 4 and db.size("Validation") == 3
    assert db.size("Test") == 4 + 3                    # train's rest, then val/ again
    assert db["Validation"].labels.tolist() == [0, 1, 0]
    assert db["Test"].labels.tolist()[-3:] == [0, 1, 0]
    # n02 is label 0; images are BGR as OpenCV reads them
    assert db["Learn"].labels.tolist() == [0, 0, 0, 0]
    assert db["Learn"].images[0][0, 0].tolist() == [50, 100, 200]
    no_val = ILSVRC2012Database(str(tmp_path), str(tmp_path / "synsets.txt"), learn=0.5,
                                use_validation_for_test=False)
    assert no_val.size("Test") == 4


def test_ilsvrc_background_class_takes_label_zero(tmp_path):
    write_imagenet(tmp_path)
    db = ILSVRC2012Database(str(tmp_path), str(tmp_path / "synsets.txt"), learn=1.0,
                            background_class=True, random_partitioning=False)
    assert db.label_names == ["background", "n02", "n01"]
    assert db["Validation"].labels.tolist() == [1, 2, 1]


def test_ilsvrc_from_ini_with_n2d2_data_defaults(tmp_path):
    write_imagenet(tmp_path / "ILSVRC2012")
    section = FakeSection({"Type": "ILSVRC2012_Database", "Learn": "0.75"}, name="database")
    db = build_database(section, 3, environ={"N2D2_DATA": str(tmp_path)})
    assert db.size("Learn") == 6 and db.size("Validation") == 3 and db.size("Test") == 5


def test_ilsvrc_errors_say_which_file(tmp_path):
    write_imagenet(tmp_path)
    (tmp_path / "val.txt").write_text("v1.png 7\n")
    with pytest.raises(ValueError, match=r"val.txt: v1.png: synset index 7 but synsets.txt "
                                         r"names 2 synsets"):
        ILSVRC2012Database(str(tmp_path), str(tmp_path / "synsets.txt"), learn=1.0)
    (tmp_path / "val.txt").unlink()
    with pytest.raises(ValueError, match="could not open validation labels file"):
        ILSVRC2012Database(str(tmp_path), str(tmp_path / "synsets.txt"), learn=1.0)
    with pytest.raises(ConfigError, match="Learn"):
        build_database(FakeSection({"Type": "ILSVRC2012_Database", "DataPath": str(tmp_path)},
                                   name="database"))


HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"


def write_gtsrb(root, classes=(0, 1, 2), per_class=2, size=(10, 12)):
    """Final_Training/Images/<class>/*.ppm + GT-<class>.csv; Final_Test + GT-final_test.csv.
    Each image is one colour per class inside its ROI (2, 3)-(8, 9), white outside."""
    train = root / "Final_Training" / "Images"
    for c in classes:
        folder = train / f"{c:05d}"
        lines = [HEADER]
        for i in range(per_class):
            name = f"{c:05d}_{i:05d}.ppm"
            _gtsrb_image(folder / name, c, size)
            lines.append(f"{name};{size[0]};{size[1]};2;3;8;9;{c}\n")
        (folder / f"GT-{c:05d}.csv").write_text("".join(lines))
    test = root / "Final_Test" / "Images"
    lines = [HEADER]
    for i, c in enumerate(reversed(classes)):
        _gtsrb_image(test / f"{i:05d}.ppm", c, size)
        lines.append(f"{i:05d}.ppm;{size[0]};{size[1]};2;3;8;9;{c}\n")
    (root / "GT-final_test.csv").write_text("".join(lines))


def _gtsrb_image(path, c, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0], 3), 255, np.uint8)
    array[3:9, 2:8] = (40 * c % 256, 80, 120)
    PIL.fromarray(array).save(path)


def test_gtsrb_labels_rois_and_split(tmp_path):
    write_gtsrb(tmp_path)
    db = GTSRBDatabase(str(tmp_path), validation=0.5, seed=1)
    assert db.label_names == ["0", "1", "2"]
    assert db.size("Learn") == 3 and db.size("Validation") == 3 and db.size("Test") == 3
    for name in ("Learn", "Validation"):
        assert sorted(db[name].labels.tolist()) == [0, 1, 2]   # per label
    assert sorted(db["Test"].labels.tolist()) == [0, 1, 2]     # drawn in random order
    ordered = GTSRBDatabase(str(tmp_path), validation=0.5, random_partitioning=False)
    assert ordered["Test"].labels.tolist() == [2, 1, 0]        # file order, CSV labels
    images = ordered["Test"].images
    assert images.shape == (3, 6, 6, 3)                        # cropped, x2/y2 exclusive
    assert images[0, 0, 0].tolist() == [120, 80, 80]           # BGR of class 2, no white


def test_gtsrb_extract_rois_splits_multi_roi_images_and_drops_unannotated(tmp_path):
    write_gtsrb(tmp_path, per_class=1)
    csv = tmp_path / "GT-final_test.csv"
    csv.write_text(csv.read_text() + "00000.ppm;10;12;0;0;4;4;1\n")
    _gtsrb_image(tmp_path / "Final_Test" / "Images" / "zz_unannotated.ppm", 0, (10, 12))
    with pytest.raises(ValueError, match="00000.ppm has 2 ROIs"):
        GTSRBDatabase(str(tmp_path))
    db = GTSRBDatabase(str(tmp_path), extract_rois=True, random_partitioning=False)
    test = db["Test"]
    assert len(test) == 4 and test.labels.tolist() == [2, 1, 0, 1]
    assert [image.shape[:2] for image in test.images][-1] == (4, 4)


def test_gtsrb_missing_folder_is_a_located_error(tmp_path):
    section = FakeSection({"Type": "GTSRB_DIR_Database", "DataPath": str(tmp_path)},
                          name="database")
    with pytest.raises(ConfigError, match="Final_Training"):
        build_database(section)


def _network(tmp_path, model, replace):
    text = (MODELS / model).read_text()
    for pattern, value in replace.items():
        text, count = re.subn(pattern, value, text, flags=re.M)
        assert count == 1, pattern
    path = tmp_path / model
    path.write_text(text)
    return str(path)


@pytest.mark.skipif(not MODELS.is_dir(), reason="../shared/n2d2-models is absent")
def test_n2d2_gtsrb_network_learns_one_step(tmp_path, monkeypatch):
    from n2prune.cli import train_main
    write_gtsrb(tmp_path / "GTSRB", classes=range(43), per_class=5, size=(30, 30))
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    ini = _network(tmp_path, "GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini", {})
    output = tmp_path / "run"
    assert train_main([ini, "-learn", "24", "-seed", "1", "--quiet", "--output",
                       str(output)]) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["sets"] == {"Learn": 172, "Validation": 43, "Test": 43}
    assert report["stimuli"] == 24 and report["test_accuracy"] is not None


@pytest.mark.skipif(not MODELS.is_dir(), reason="../shared/n2d2-models is absent")
def test_n2d2_imagenet_network_learns_one_step(tmp_path, monkeypatch):
    """MobileNet_v1.ini (the smallest ImageNet file) at its smallest listed resolution,
    128, with a batch of 2 instead of 256 so that one step fits a test."""
    from n2prune.cli import train_main
    write_imagenet(tmp_path / "ILSVRC2012")
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    ini = _network(tmp_path, "MobileNet_v1.ini", {r"^\$SIZE=160": "$SIZE=128",
                                                  r"^\$BATCH_SIZE=256": "$BATCH_SIZE=2"})
    output = tmp_path / "run"
    assert train_main([ini, "-learn", "2", "-seed", "1", "--quiet", "--output",
                       str(output)]) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["sets"] == {"Learn": 8, "Validation": 3, "Test": 3}
    assert report["stimuli"] == 2 and report["test_accuracy"] is not None
