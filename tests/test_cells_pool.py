import pytest
import torch
import torch.nn.functional as F

from fakesection import FakeSection
from n2prune.cells.activation_functions import Rectifier
from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.pool import Pool, pool_output_size
from n2prune.errors import ConfigError, ConfigWarning

EYE3 = torch.eye(3, dtype=torch.bool)


def ctx(values, shapes, names=None):
    names = names or [f"in{i}" for i in range(len(shapes))]
    return BuildContext("pool", FakeSection(values, "pool"), FakeSection({}, "config"),
                        names, list(shapes))


def build(values, shapes, names=None):
    return CELLS.get("Pool")(ctx(values, shapes, names))


def x_of(c=3, h=6, w=5, seed=0):
    return torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_one_to_one_max_is_torch_max_pool_and_dims_are_x_first():
    x = x_of()
    pool = Pool(3, pool_dims=[3, 2], stride_dims=[2, 1], mapping=EYE3)
    expected = F.max_pool2d(x, kernel_size=(2, 3), stride=(1, 2))
    assert torch.equal(pool(x), expected)
    assert pool.output_size(6, 5) == tuple(expected.shape[2:]) == (5, 2)


def test_average_counts_padding_and_max_ignores_it():
    x = torch.ones(1, 1, 2, 2)
    avg = Pool(1, [2, 2], [1, 1], [1, 1], "Average", mapping=torch.ones(1, 1, dtype=torch.bool))
    assert avg(x)[0, 0].tolist() == [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]
    neg = -torch.ones(1, 1, 2, 2)
    mx = Pool(1, [2, 2], [1, 1], [1, 1], "Max", mapping=torch.ones(1, 1, dtype=torch.bool))
    assert torch.all(mx(neg) == -1.0)      # padding is not a 0 candidate


def test_padding_wider_than_half_the_window_gives_zero_for_all_padding_windows():
    x = -torch.ones(1, 1, 1, 1)
    mx = Pool(1, [1, 1], [1, 1], [1, 1], "Max", mapping=torch.ones(1, 1, dtype=torch.bool))
    assert mx(x)[0, 0].tolist() == [[0, 0, 0], [0, -1, 0], [0, 0, 0]]
    av = Pool(1, [1, 1], [1, 1], [1, 1], "Average", mapping=torch.ones(1, 1, dtype=torch.bool))
    assert av(x)[0, 0].tolist() == [[0, 0, 0], [0, -1, 0], [0, 0, 0]]


def test_no_mapping_pools_across_all_channels():
    x = x_of()
    y = Pool(2, [2, 2], [2, 2], pooling="Max")(x)
    per_channel = F.max_pool2d(x, 2, 2)
    assert y.shape == (2, 2, 3, 2)
    assert torch.equal(y[:, 0], per_channel.amax(dim=1))
    assert torch.equal(y[:, 1], per_channel.amax(dim=1))
    y = Pool(1, [2, 2], [2, 2], pooling="Average")(x)
    assert torch.allclose(y[:, 0], F.avg_pool2d(x, 2, 2).mean(dim=1))


def test_arbitrary_map_max_and_mean_over_mapped_channels():
    x = x_of(c=3)
    mapping = torch.tensor([[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    per = F.max_pool2d(x, 2, 1)
    y = Pool(4, [2, 2], [1, 1], pooling="Max", mapping=mapping)(x)
    assert torch.equal(y[:, 0], torch.maximum(per[:, 0], per[:, 1]))
    assert torch.equal(y[:, 1], per[:, 2])
    assert torch.equal(y[:, 2], torch.maximum(per[:, 0], per[:, 2]))
    assert torch.equal(y[:, 3], torch.zeros_like(y[:, 3]))     # unconnected output
    avg = F.avg_pool2d(x, 2, 1)
    y = Pool(4, [2, 2], [1, 1], pooling="Average", mapping=mapping)(x)
    assert torch.allclose(y[:, 0], (avg[:, 0] + avg[:, 1]) / 2)
    assert torch.allclose(y[:, 2], (avg[:, 0] + avg[:, 2]) / 2)
    assert torch.equal(y[:, 3], torch.zeros_like(y[:, 3]))


def test_gradient_flows_to_the_max_only():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 0.0], [0.0, 0.0]]]], requires_grad=True)
    Pool(1, [2, 2], [2, 2], pooling="Max")(x).sum().backward()
    assert x.grad.flatten().tolist() == [0, 0, 0, 0, 1, 0, 0, 0]


def test_one_dimensional_dims_extend_to_n_by_1():
    pool = Pool(3, [2], [2], [1], mapping=EYE3)
    assert (pool.pool_dims, pool.stride_dims, pool.padding_dims) == ([2, 1], [2, 1], [1, 0])
    x = x_of(w=7)
    assert torch.equal(pool(x), F.max_pool2d(x, (1, 2), (1, 2), (0, 1)))


def test_activation_is_applied_after_pooling():
    x = -torch.ones(1, 3, 2, 2)
    assert torch.all(Pool(3, [2, 2], mapping=EYE3, activation=Rectifier())(x) == 0)
    assert torch.all(Pool(3, [2, 2], mapping=EYE3, activation="Rectifier")(x) == 0)


def test_constructor_validation():
    with pytest.raises(ValueError, match="pooling='max'"):
        Pool(1, [2, 2], pooling="max")
    with pytest.raises(ValueError, match="3-D dims are not supported"):
        Pool(1, [2, 2, 2])
    with pytest.raises(ValueError, match="stride_dims=\\[0, 1\\]: values must be >= 1"):
        Pool(1, [2, 2], stride_dims=[0, 1])
    with pytest.raises(ValueError, match="mapping must be a bool \\[nb_outputs=2"):
        Pool(2, [2, 2], mapping=EYE3)
    with pytest.raises(ValueError, match="mapping has 3 channels, the input has 2"):
        Pool(3, [2, 2], mapping=EYE3)(torch.zeros(1, 2, 4, 4))


@pytest.mark.parametrize("size,k,s,p", [(28, 2, 2, 0), (7, 3, 2, 1), (5, 2, 2, 0),
                                        (13, 3, 2, 0), (6, 3, 3, 1)])
def test_floor_formula_matches_actual_output(size, k, s, p):
    pool = Pool(1, [k, k], [s, s], [p, p], mapping=torch.ones(1, 1, dtype=torch.bool))
    y = pool(torch.zeros(1, 1, size, size))
    assert y.shape[2] == y.shape[3] == pool_output_size(size, k, s, p) \
        == (size + 2 * p - k + s) // s


def test_build_lenet_pool1():
    module, shape = build({"PoolDims": "2 2", "NbOutputs": "6", "Stride": "2",
                           "Pooling": "Max", "Mapping.Size": "1"}, [(6, 28, 28)], ["conv1"])
    assert shape == (6, 14, 14) and module.mode == "identity"
    x = x_of(6, 28, 28)
    assert module(x).shape == (2,) + shape
    assert torch.equal(module(x), F.max_pool2d(x, 2, 2))


def test_build_depthwise_by_channels_per_group_and_pool_size_keys():
    module, shape = build({"PoolSize": "3", "NbOutputs": "4", "StrideX": "2", "PaddingY": "1",
                           "Pooling": "Average", "Mapping.ChannelsPerGroup": "1",
                           "ActivationFunction": "Rectifier"}, [(4, 7, 9)])
    assert (module.pool_dims, module.stride_dims, module.padding_dims) == (
        [3, 3], [2, 1], [0, 1])
    assert shape == (4, 7, 4) and module(x_of(4, 7, 9)).shape == (2, 4, 7, 4)
    assert isinstance(module.activation, Rectifier)


def test_build_without_mapping_is_the_full_map():
    module, shape = build({"PoolWidth": "2", "PoolHeight": "2", "NbOutputs": "1",
                           "Stride": "2", "Pooling": "Max"}, [(3, 4, 4)])
    assert module.mode == "full" and shape == (1, 2, 2)


def test_build_googlenet_concat_of_parents_with_offsets():
    values = {"PoolDims": "3 3", "NbOutputs": "5", "Stride": "1", "Padding": "1",
              "Pooling": "Max", "Mapping.Size": "1", "Mapping(a).NbIterations": "2",
              "Mapping(b).OffsetX": "2", "Mapping(b).NbIterations": "3"}
    module, shape = build(values, [(2, 4, 4), (3, 4, 4)], ["a", "b"])
    assert shape == (5, 4, 4) and module.mode == "identity"
    a, b = x_of(2, 4, 4, 1), x_of(3, 4, 4, 2)
    assert torch.equal(module(a, b), F.max_pool2d(torch.cat([a, b], 1), 3, 1, 1))


def test_build_errors_are_located():
    base = {"PoolDims": "2 2", "NbOutputs": "3", "Mapping.Size": "1"}
    with pytest.raises(ConfigError, match=r"\[pool\] Pooling: missing required key"):
        build(base, [(3, 4, 4)])
    with pytest.raises(ConfigError, match=r"Pooling=max: .*did you mean 'Max'"):
        build({**base, "Pooling": "max"}, [(3, 4, 4)])
    with pytest.raises(ConfigError, match=r"Input: 2D input expected for a Pool cell, 'fc' "
                                          r"is 1x1"):
        build({**base, "Pooling": "Max"}, [(3, 1, 1)], ["fc"])
    with pytest.raises(ConfigError, match=r"PoolDims: pooling a 4x4 input gives an empty"):
        build({**base, "Pooling": "Max", "PoolDims": "5 5"}, [(3, 4, 4)])
    with pytest.raises(ConfigError, match=r"PoolDims: pool_dims=\[2, 2, 2\].*3-D"):
        build({**base, "Pooling": "Max", "PoolDims": "2 2 2"}, [(3, 4, 4)])
    with pytest.raises(ConfigError, match=r"Input: inputs must have the same width and height"):
        build({**base, "Pooling": "Max"}, [(1, 4, 4), (2, 5, 4)])


def test_build_warns_about_unconnected_outputs():
    with pytest.warns(ConfigWarning, match="output map #3 has no input connection"):
        build({"PoolDims": "2 2", "NbOutputs": "4", "Pooling": "Max", "Mapping.Size": "1",
               "Mapping.NbIterations": "3"}, [(3, 4, 4)])
