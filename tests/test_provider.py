"""StimuliProvider: pipeline order, implicit normalisation, batching and shuffling."""

import warnings

import numpy as np
import pytest
import torch

from n2prune.data import (Database, Flip, MNISTDatabase, PadCrop, RangeAffine, Rescale,
                          StimuliProvider, StimuliSet)
from n2prune.data.build import build_database, build_provider, sub_section_kind
from n2prune.errors import ConfigError
from n2prune.ini.inifile import loads
from test_databases import write_mnist


def fake_database(n_learn=10, n_test=3, size=4, channels=1):
    """uint8 images whose pixels all equal 10 * index (Learn) or 200 + index (Test)."""
    db = Database()
    db.label_names = [str(d) for d in range(10)]

    def make(values):
        images = np.empty((len(values), size, size, channels), dtype=np.uint8)
        images[:] = (np.asarray(values, dtype=np.int64) % 256)[:, None, None, None]
        return StimuliSet(images, np.arange(len(values), dtype=np.int64) % 10)
    db.sets = {"Learn": make([10 * i for i in range(n_learn)]),
               "Validation": make([]), "Test": make([200 + i for i in range(n_test)])}
    return db


def test_batches_shapes_labels_and_last_partial_batch():
    provider = StimuliProvider(fake_database(), 1, 4, 4, batch_size=4)
    batches = list(provider.batches("Learn"))
    assert [x.shape for x, _ in batches] == [(4, 1, 4, 4)] * 2 + [(2, 1, 4, 4)]
    assert all(x.dtype == torch.float32 for x, _ in batches)
    assert torch.cat([y for _, y in batches]).tolist() == list(range(10))
    assert provider.epoch_size == 10 and provider.size("Validation") == 0
    assert list(provider.batches("Validation")) == []


def test_8_bit_data_is_normalised_to_0_1():
    provider = StimuliProvider(fake_database(), 1, 4, 4, batch_size=10)
    x, _ = next(provider.batches("Learn"))
    assert x[:, 0, 0, 0].tolist() == pytest.approx([10 * i / 255 for i in range(10)])


def test_data_signed_mapping():
    provider = StimuliProvider(fake_database(), 1, 4, 4, batch_size=3,
                               data_signed_mapping=True)
    x, _ = next(provider.batches("Test"))
    assert x[:, 0, 0, 0].tolist() == pytest.approx([72 / 128, 73 / 128, 74 / 128])


def test_a_float_transformation_disables_the_normalisation_per_set():
    affine = RangeAffine("Plus", [1.0])
    provider = StimuliProvider(fake_database(), 1, 4, 4, batch_size=3,
                               transformations=[(affine, False, "LearnOnly")])
    learn, _ = next(provider.batches("Learn"))
    test, _ = next(provider.batches("Test"))
    assert learn[:, 0, 0, 0].tolist() == [1.0, 11.0, 21.0]
    assert test[:, 0, 0, 0].tolist() == pytest.approx([200 / 255, 201 / 255, 202 / 255])


def test_cacheable_transformations_run_before_on_the_fly_ones():
    steps = [(PadCrop(4, 4), True, "All"), (Rescale(2, 2), False, "All")]
    provider = StimuliProvider(fake_database(), 1, 4, 4, transformations=steps)
    x, _ = next(provider.batches("Learn"))
    assert x.shape == (1, 1, 4, 4)


def test_on_the_fly_integer_pipeline_is_normalised_after_the_transformations():
    steps = [(Flip(random_horizontal_flip=True), True, "All")]
    provider = StimuliProvider(fake_database(), 1, 4, 4, batch_size=5, transformations=steps)
    x, _ = next(provider.batches("Learn", generator=torch.Generator().manual_seed(0)))
    assert x[:, 0, 0, 0].tolist() == pytest.approx([10 * i / 255 for i in range(5)])


def test_shuffle_is_reproducible_from_the_generator_and_covers_the_set():
    provider = StimuliProvider(fake_database(), 1, 4, 4, batch_size=4)
    draw = lambda seed: torch.cat([y for _, y in provider.batches(
        "Learn", shuffle=True, generator=torch.Generator().manual_seed(seed))]).tolist()
    assert draw(3) == draw(3) and sorted(draw(3)) == list(range(10))
    assert draw(3) != draw(4)
    assert draw(3) == torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()


def test_random_flips_are_reproducible_and_vary_by_image():
    steps = [(Flip(random_horizontal_flip=True), True, "LearnOnly")]
    db = fake_database(n_learn=32)
    db.sets["Learn"].images[:, :, 0] = 0           # left column black: flips show
    provider = StimuliProvider(db, 1, 4, 4, batch_size=32, transformations=steps)
    first, _ = next(provider.batches("Learn", generator=torch.Generator().manual_seed(9)))
    again, _ = next(provider.batches("Learn", generator=torch.Generator().manual_seed(9)))
    assert torch.equal(first, again)
    flipped = first[1:, 0, 0, 3] == 0
    assert 0 < int(flipped.sum()) < 31


def test_random_batch_draws_with_replacement():
    provider = StimuliProvider(fake_database(), 1, 4, 4, batch_size=6)
    x, y = provider.random_batch("Learn", torch.Generator().manual_seed(0))
    expected = torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(0))
    assert x.shape == (6, 1, 4, 4) and y.tolist() == expected.tolist()


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="NbChannels=1, SizeY=4, SizeX=4.*SizeY=8"):
        StimuliProvider(fake_database(), 1, 8, 8)


def test_ragged_sets_become_one_tensor_after_a_rescale():
    db = fake_database()
    images = [np.zeros((3 + i, 5, 1), dtype=np.uint8) for i in range(3)]
    db.sets["Test"] = StimuliSet(images, np.zeros(3, dtype=np.int64))
    provider = StimuliProvider(db, 1, 4, 4, batch_size=3,
                               transformations=[(Rescale(4, 4), False, "All")])
    x, _ = next(provider.batches("Test"))
    assert x.shape == (3, 1, 4, 4)


def test_real_mnist_through_the_provider(mnist_dir):
    db = MNISTDatabase(str(mnist_dir), validation=0.2, seed=1)
    provider = StimuliProvider(db, 1, 32, 32, batch_size=128,
                               transformations=[(Rescale(32, 32), False, "All")])
    assert provider.epoch_size == 6400 and provider.size("Test") == 2000
    x, y = next(provider.batches("Test"))
    assert x.shape == (128, 1, 32, 32) and 0.0 <= float(x.min()) < float(x.max()) <= 1.0
    assert int(y.max()) <= 9


# --- INI glue ----------------------------------------------------------------------

LENET = """
[database]
Type=MNIST_IDX_Database
DataPath={path}
Validation=0.2
{database}
[sp]
SizeX=32
SizeY=32
BatchSize=4
{sp}
[sp.Transformation_1]
Type=RescaleTransformation
Width=[sp]SizeX
Height=[sp]SizeY
{more}
[after]
Epochs=$([sp]_EpochSize * 2)
"""


def lenet(tmp_path, database="", sp="", more=""):
    folder = write_mnist(tmp_path / "mnist", n_train=10, n_test=4)
    text = LENET.format(path=folder, database=database, sp=sp, more=more)
    return loads(text, str(tmp_path / "net.ini"))


def test_build_provider_from_ini_sets_epoch_size(tmp_path):
    ini = lenet(tmp_path)
    provider = build_provider(ini, seed=1)
    assert (provider.size("Learn"), provider.size("Validation")) == (8, 2)
    assert provider.shape == (1, 32, 32) and provider.batch_size == 4
    assert ini["after"]["Epochs"] == "16"
    x, _ = next(provider.batches("Test"))
    assert x.shape == (4, 1, 32, 32) and float(x.max()) <= 1.0


def test_sub_sections_in_file_order_cacheable_before_on_the_fly(tmp_path):
    more = ("[sp.OnTheFlyTransformation-5]\nType=FlipTransformation\nApplyTo=LearnOnly\n"
            "RandomHorizontalFlip=1\n[sp.config]\nAnything=1\n"
            "[sp.Transformation-6]\nType=PadCropTransformation\nWidth=32\nHeight=32\n")
    provider = build_provider(lenet(tmp_path, more=more), seed=1)
    kinds = [(type(t).__name__, fly, apply_to) for t, fly, apply_to in
             provider.transformations]
    assert kinds == [("Rescale", False, "All"), ("Flip", True, "LearnOnly"),
                     ("PadCrop", False, "All")]
    assert [type(t).__name__ for t in provider.steps("Learn", False)] == ["Rescale",
                                                                         "PadCrop"]


@pytest.mark.parametrize("where, text, message", [
    ("database", "Validaton=0.1",
     r"net.ini:6: \[database\] Validaton=0.1: .*did you mean 'Validation'"),
    ("sp", "BatchSise=8", "BatchSise.*did you mean 'BatchSize'"),
    ("more", "[sp.Transformation_2]\nType=FlipTransformation\nRandomHorizontalFlip=1\n"
             "HorizontalFlipp=1", "HorizontalFlipp.*did you mean 'HorizontalFlip'"),
    ("more", "[sp.Transformation_2]\nType=FlipTransformaton",
     "unknown transformation 'FlipTransformaton'; did you mean 'FlipTransformation'"),
    ("more", "[sp.MyTransformation]\nType=FlipTransformation", "must start with"),
    ("more", "[sp.ChannelTransformation]\nType=FlipTransformation", "not supported"),
    ("sp", "CompositeStimuli=1", "CompositeStimuli is not supported"),
    ("more", "[sp.Transformation_2]\nType=ColorSpaceTransformation\nColorSpace=HSV",
     r"net.ini:\d+: \[sp.Transformation_2\] ColorSpace=HSV: .*not supported"),
])
def test_ini_errors_are_located(tmp_path, where, text, message):
    ini = lenet(tmp_path, **{where: text})
    with pytest.raises(ConfigError, match=message):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_provider(ini, seed=1)


def test_missing_data_is_a_config_error_naming_data_path(tmp_path):
    ini = loads("[database]\nType=MNIST_IDX_Database\nDataPath=/nowhere\n"
                "[sp]\nSizeX=28\nSizeY=28\n", str(tmp_path / "net.ini"))
    with pytest.raises(ConfigError, match=r"net.ini:3: \[database\] DataPath.*not found"):
        build_provider(ini)


def test_shape_mismatch_is_located_at_sp(tmp_path):
    ini = lenet(tmp_path, sp="NbChannels=3")
    with pytest.raises(ConfigError, match=r"\[sp\].*NbChannels=3"):
        build_provider(ini)


def test_a_transformation_failing_on_the_data_names_its_section(tmp_path):
    more = ("[sp.Transformation_2]\nType=SliceExtractionTransformation\nWidth=40\n"
            "Height=40\n")
    with pytest.raises(ConfigError, match=r"\[sp.Transformation_2\].*AllowPadding"):
        build_provider(lenet(tmp_path, more=more))


def test_random_transformation_in_a_cacheable_section_warns(tmp_path):
    more = "[sp.Transformation_2]\nType=FlipTransformation\nRandomVerticalFlip=1\n"
    with pytest.warns(UserWarning, match="drawn once and cached"):
        build_provider(lenet(tmp_path, more=more))


def test_stimuli_data_statistics_feed_later_values(tmp_path):
    more = ("[sp.StimuliData-normalize]\nApplyTo=LearnOnly\n"
            "[sp.Transformation-normalize]\nType=RangeAffineTransformation\n"
            "FirstOperator=Minus\nFirstValue=[sp.StimuliData-normalize]_GlobalValue.mean\n"
            "SecondOperator=Divides\n"
            "SecondValue=[sp.StimuliData-normalize]_GlobalValue.stdDev\n")
    ini = lenet(tmp_path, more=more)
    provider = build_provider(ini, seed=1)
    learn = torch.from_numpy(provider.database["Learn"].images).permute(0, 3, 1, 2)
    values = Rescale(32, 32)(learn).double()
    stats = ini["sp.StimuliData-normalize"]
    assert stats["_GlobalValue.maxVal"] == "%#.6g" % float(values.max())
    assert stats["_GlobalValue.mean"] == "%#.6g" % float(values.mean())
    assert stats["_GlobalValue.stdDev"] == "%#.6g" % float(values.std(unbiased=False))
    x = torch.cat([b for b, _ in provider.batches("Learn")])
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(x.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)


def test_data_signed_mapping_from_the_sp_config_section(tmp_path):
    ini = lenet(tmp_path, sp="ConfigSection=sp.config",
                more="[sp.config]\nDataSignedMapping=1\n")
    x, _ = next(build_provider(ini).batches("Test"))
    assert float(x.min()) == -1.0


def test_sub_section_kinds():
    assert sub_section_kind("sp.Transformation") == "cacheable"
    assert sub_section_kind("sp.OnTheFlyTransformation_3") == "on-the-fly"
    assert sub_section_kind("sp.config") is None and sub_section_kind("conv1") is None
    assert sub_section_kind("sp.BadTransformation") == "invalid"


def test_embedded_digits_database_from_ini():
    pytest.importorskip("sklearn")
    ini = loads("[database]\nType=Digits_Database\n[sp]\nSizeX=8\nSizeY=8\nBatchSize=32\n")
    provider = build_provider(ini, seed=1)
    assert provider.epoch_size == 1258 and ini["sp"]["_EpochSize"] == "1258"


def test_build_database_alone(tmp_path):
    folder = write_mnist(tmp_path / "m")
    ini = loads(f"[database]\nType=MNIST_IDX_Database\nDataPath={folder}\n")
    assert build_database(ini["database"], seed=3).size("Learn") == 10


def test_real_lenet_ini_with_the_mnist_subset(n2d2_models, mnist_dir, tmp_path):
    (tmp_path / "mnist").symlink_to(mnist_dir)
    path = n2d2_models / "models" / "LeNet.ini"
    ini = loads(path.read_text(), str(path), environ={"N2D2_DATA": str(tmp_path)})
    provider = build_provider(ini, seed=1)
    assert (provider.epoch_size, provider.size("Validation")) == (6400, 1600)
    assert ini["sp"]["_EpochSize"] == "6400"
    x, y = next(provider.batches("Learn", shuffle=True,
                                 generator=torch.Generator().manual_seed(0)))
    assert x.shape == (128, 1, 32, 32) and y.dtype == torch.int64
