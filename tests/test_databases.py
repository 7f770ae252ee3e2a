"""Databases: file readers, N2D2's split rule and RNG, label IDs, channel order."""

import gzip

import numpy as np
import pytest

from n2prune.data import (DATABASES, CIFAR10Database, DIRDatabase, DigitsDatabase,
                          MNISTDatabase, N2D2Random, Partition, split_counts)
from n2prune.data.partition import round_half_down, round_half_up


# --- helpers writing the real formats ----------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, n_train=10, n_test=4, gz=False):
    """Images whose first pixel is the stimulus index (train) or 100 + index (test)."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, base in (("train", n_train, 0), ("t10k", n_test, 100)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = base + np.arange(n)
        labels = (np.arange(n) * 3) % 10
        for kind, data in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            payload = idx_bytes(data)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(payload))
            else:
                (folder / name).write_bytes(payload)
    return folder


# --- RNG and split rule ----------------------------------------------------------

def test_n2d2_random_is_the_raw_mt19937_stream_in_bulk_or_one_by_one():
    bulk = N2D2Random(12345).u32(50)
    reference = np.random.RandomState(12345)
    single = [int(reference.randint(0, 2 ** 32, dtype=np.uint64)) for _ in range(50)]
    assert bulk == single


def test_rand_uniform_is_low_plus_int_of_u_scaled():
    u = N2D2Random(7).u32(1)[0]
    assert N2D2Random(7).rand_uniform(3, 12) == 3 + int(u / 2 ** 32 * 10)


def test_rounding_rules():
    assert [round_half_up(x) for x in (2.5, 2.4999, -0.5)] == [3, 2, 0]
    assert [round_half_down(x) for x in (2.5, 2.5001, 0.5)] == [2, 3, 0]


@pytest.mark.parametrize("n, fractions, expected", [
    (10, (0.75, 0.25, 0.0), (8, 2, 0)),        # 7.5 rounds up, 2.5 rounds down
    (7, (0.5, 0.3, 0.2), (4, 2, 1)),           # VT = 3, valid = round_up(1.8)
    (1797, (0.7, 0.1, 0.2), (1258, 180, 359)),
    (5, (0.0, 0.0, 1.0), (0, 0, 5)),
])
def test_split_counts(n, fractions, expected):
    counts = split_counts(n, *fractions)
    assert (counts["Learn"], counts["Validation"], counts["Test"]) == expected


def test_split_fractions_over_one_are_an_error():
    with pytest.raises(ValueError, match="more than 1"):
        split_counts(10, 0.8, 0.3, 0.0)


def test_random_partition_draws_uniform_indexes_into_what_remains():
    partition = Partition(N2D2Random(1))
    partition.add(range(10))
    partition.split(0.5, 0.5, 0.0)
    u = np.random.RandomState(1).randint(0, 2 ** 32, size=10, dtype=np.uint64)
    remaining, expected = list(range(10)), []
    for k in range(10):
        expected.append(remaining.pop(int(u[k] / 2 ** 32 * len(remaining))))
    assert partition.sets["Learn"] == expected[:5]
    assert partition.sets["Validation"] == expected[5:]
    assert partition.unpartitioned == []


def test_partition_without_randomness_takes_file_order():
    partition = Partition(None)
    partition.add(range(6))
    partition.split(0.5, 0.0, 0.5)
    assert partition.sets == {"Learn": [0, 1, 2], "Validation": [], "Test": [3, 4, 5]}


def test_per_label_split_with_equal_label_counts():
    labels = [0, 0, 0, 0, 1, 1]      # 4 of label 0, 2 of label 1 -> 2 per label used
    partition = Partition(None)
    partition.add(range(6))
    partition.split_per_label(labels, 2, 0.5, 0.0, 0.5, equiv_label=True)
    assert partition.sets["Learn"] == [0, 4]
    assert partition.sets["Test"] == [1, 5]
    assert partition.unpartitioned == [2, 3]


# --- MNIST IDX ------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_raw_and_gz_idx_files(tmp_path, gz):
    folder = write_mnist(tmp_path / "mnist", gz=gz)
    db = MNISTDatabase(str(folder), validation=0.2, random_partitioning=False)
    assert (db.size("Learn"), db.size("Validation"), db.size("Test")) == (8, 2, 4)
    assert db.label_names == [str(d) for d in range(10)]
    learn = db["Learn"]
    assert learn.images.shape == (8, 28, 28, 1) and learn.images.dtype == np.uint8
    assert learn.images[:, 0, 0, 0].tolist() == list(range(8))
    assert learn.labels.tolist() == [(3 * i) % 10 for i in range(8)]
    assert db["Test"].images[:, 0, 0, 0].tolist() == [100, 101, 102, 103]


def test_mnist_split_is_reproducible_from_the_seed(tmp_path):
    folder = str(write_mnist(tmp_path / "m", n_train=20))
    first = MNISTDatabase(folder, validation=0.25, seed=5)
    again = MNISTDatabase(folder, validation=0.25, seed=5)
    other = MNISTDatabase(folder, validation=0.25, seed=6)
    ids = lambda db, s: db[s].images[:, 0, 0, 0].tolist()
    assert ids(first, "Learn") == ids(again, "Learn")
    assert ids(first, "Learn") != ids(other, "Learn")
    assert sorted(ids(first, "Learn") + ids(first, "Validation")) == list(range(20))
    assert len(ids(first, "Validation")) == 5


def test_mnist_missing_files_say_where_and_how_to_point_elsewhere(tmp_path):
    with pytest.raises(ValueError) as error:
        MNISTDatabase(str(tmp_path))
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path) in message
    assert "DataPath" in message and "N2D2_DATA" in message


def test_mnist_truncated_file_is_an_error(tmp_path):
    folder = write_mnist(tmp_path / "m")
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        MNISTDatabase(str(folder))


def test_mnist_corrupt_gzip_and_bad_magic_are_errors(tmp_path):
    folder = write_mnist(tmp_path / "m", gz=True)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match="corrupt gzip"):
        MNISTDatabase(str(folder))
    folder = write_mnist(tmp_path / "n")
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01" + bytes(8))
    with pytest.raises(ValueError, match="not an IDX file"):
        MNISTDatabase(str(folder))


def test_mnist_default_path_uses_n2d2_data(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist")
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    assert MNISTDatabase().size("Test") == 4


def test_real_mnist_subset(mnist_dir):
    db = MNISTDatabase(str(mnist_dir), seed=1)
    assert (db.size("Learn"), db.size("Validation"), db.size("Test")) == (8000, 0, 2000)
    assert db["Learn"].images.shape == (8000, 28, 28, 1)
    assert sorted(set(db["Test"].labels.tolist())) == list(range(10))


# --- CIFAR-10 -------------------------------------------------------------------

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
               "ship", "truck"]


def write_cifar(folder, labels_per_batch):
    """Records whose red plane is 10 + record, green 20, blue 30."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR_NAMES) + "\n\n")
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name, labels in zip(files, labels_per_batch):
        records = []
        for k, label in enumerate(labels):
            planes = np.concatenate([np.full(1024, 10 + k), np.full(1024, 20),
                                     np.full(1024, 30)]).astype(np.uint8)
            records.append(bytes([label]) + planes.tobytes())
        (folder / name).write_bytes(b"".join(records))
    return folder


def test_cifar10_label_ids_follow_first_appearance_and_channels_are_bgr(tmp_path):
    folder = write_cifar(tmp_path / "c", [[6, 9], [9, 4], [1, 6], [6, 6], [0, 0], [3, 3]])
    db = CIFAR10Database(str(folder), random_partitioning=False)
    assert db.label_names[:5] == ["frog", "truck", "deer", "automobile", "airplane"]
    assert db["Learn"].labels.tolist() == [0, 1, 1, 2, 3, 0, 0, 0, 4, 4]
    assert db["Test"].labels.tolist() == [5, 5]           # cat, first seen in test_batch
    image = db["Learn"].images[1]
    assert image.shape == (32, 32, 3)
    assert image[0, 0].tolist() == [30, 20, 11]            # blue, green, red


def test_cifar10_use_test_for_validation(tmp_path):
    folder = write_cifar(tmp_path / "c", [[1, 2]] * 5 + [[3, 4, 5]])
    db = CIFAR10Database(str(folder), use_test_for_validation=True, seed=3)
    assert (db.size("Learn"), db.size("Validation"), db.size("Test")) == (10, 3, 3)


def test_cifar10_wrong_size_is_an_error(tmp_path):
    folder = write_cifar(tmp_path / "c", [[1]] * 6)
    (folder / "data_batch_3.bin").write_bytes(bytes(100))
    with pytest.raises(ValueError, match="data_batch_3.bin.*CIFAR records"):
        CIFAR10Database(str(folder))


# --- DIR ------------------------------------------------------------------------

def write_dir(root):
    from PIL import Image
    for label, count in (("cat", 4), ("dog", 2)):
        (root / label).mkdir(parents=True)
        for k in range(count):
            Image.new("RGB", (3, 2), (200 + k, 0, 10)).save(root / label / f"{k}.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    Image.new("L", (3, 2), 77).save(root / "dog" / "grey.bmp")
    return root


def test_dir_database_labels_order_and_bgr(tmp_path):
    pytest.importorskip("PIL")
    root = write_dir(tmp_path / "images")
    db = DIRDatabase(str(root), learn=6, per_label_partitioning=False,
                     random_partitioning=False, valid_extensions=["png"], test=0)
    assert db.label_names == ["/cat", "/dog"]
    assert db["Learn"].labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert db["Learn"].images.shape == (6, 2, 3, 3)
    assert db["Learn"].images[1, 0, 0].tolist() == [10, 0, 201]


def test_dir_database_grey_images_have_one_channel(tmp_path):
    pytest.importorskip("PIL")
    root = write_dir(tmp_path / "images")
    db = DIRDatabase(str(root), learn=0.0, test=1.0, random_partitioning=False)
    test = db["Test"].images
    assert isinstance(test, list) and len(test) == 7       # sizes differ in channels
    assert [i.shape[2] for i in test].count(1) == 1


def test_dir_database_per_label_partitioning(tmp_path):
    pytest.importorskip("PIL")
    root = write_dir(tmp_path / "images")
    db = DIRDatabase(str(root), learn=0.5, valid_extensions=["png"], seed=2)
    # 2 per label (the smallest label), half to Learn; the rest, cats included, to Test.
    assert (db.size("Learn"), db.size("Validation"), db.size("Test")) == (2, 0, 4)
    assert sorted(db["Learn"].labels.tolist()) == [0, 1]


def test_dir_database_learn_plus_validation_of_one_leaves_no_test_fraction(tmp_path):
    pytest.importorskip("PIL")
    root = write_dir(tmp_path / "images")        # 1 - 0.9 - 0.1 is slightly negative
    db = DIRDatabase(str(root), learn=0.9, validation=0.1, valid_extensions=["png"])
    assert (db.size("Learn"), db.size("Validation"), db.size("Test")) == (4, 0, 2)


def test_dir_database_counts_must_be_whole_without_per_label(tmp_path):
    pytest.importorskip("PIL")
    root = write_dir(tmp_path / "images")
    with pytest.raises(ValueError, match="number of stimuli"):
        DIRDatabase(str(root), learn=0.6, per_label_partitioning=False)


def test_dir_database_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="DataPath"):
        DIRDatabase(str(tmp_path / "nope"), learn=1.0)


# --- Digits and the registry ----------------------------------------------------

def test_digits_database_is_8_bit_with_n2d2_split():
    pytest.importorskip("sklearn")
    db = DigitsDatabase(seed=1)
    assert (db.size("Learn"), db.size("Validation"), db.size("Test")) == (1258, 180, 359)
    images = db["Learn"].images
    assert images.shape == (1258, 8, 8, 1) and images.dtype == np.uint8
    assert images.max() == 255
    assert db.label_names == [str(d) for d in range(10)]


def test_registry_and_keys_tables():
    assert {"MNIST_IDX_Database", "CIFAR10_Database", "DIR_Database",
            "Digits_Database"} <= set(DATABASES.names())
    for name in DATABASES.names():
        keys = DATABASES.get(name).KEYS
        assert keys and len({k.ini for k in keys}) == len(keys)
