"""StimuliProvider: pipeline order, implicit normalisation, batching and shuffling."""

import numpy as np
import pytest
import torch

from n2prune.data import (Database, Flip, MNISTDatabase, PadCrop, RangeAffine, Rescale,
                          StimuliProvider, StimuliSet)


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
