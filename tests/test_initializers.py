import math

import pytest
import torch

from fakesection import FakeSection
from n2prune.errors import ConfigError
from n2prune.cells.initializers import (DEFAULT_INITIALIZER, WEIGHT_INITIALIZERS, ConstantFiller, HeFiller,
                                  NormalFiller, UniformFiller, XavierFiller, build_initializer, fans,
                                  he_fill, normal_fill, uniform_fill, xavier_fill)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def stats(tensor):
    return tensor.mean().item(), tensor.std().item()


def test_registry_names():
    assert {"ConstantFiller", "HeFiller", "NormalFiller", "UniformFiller",
            "XavierFiller"} <= set(WEIGHT_INITIALIZERS.names())  # plug-ins may add more


def test_fans_follow_n2d2_size_over_outputs_and_size_over_channels():
    assert fans(torch.empty(16, 6, 5, 3)) == (6 * 15, 16 * 15)   # conv [O, C, kH, kW]
    assert fans(torch.empty(16, 1, 3, 3)) == (9, 16 * 9)          # depthwise [O, C/G, ...]
    assert fans(torch.empty(10, 84)) == (84, 10)                  # fc [O, N_in]
    assert fans(torch.empty(10)) == (10, 1)                       # bias [1,1,O,1]
    with pytest.raises(ValueError, match="has no fan"):
        fans(torch.empty(()))


def test_normal_and_uniform_statistics():
    t = normal_fill(torch.empty(200_000), gen(), mean=0.5, std_dev=2.0)
    mean, std = stats(t)
    assert mean == pytest.approx(0.5, abs=0.02) and std == pytest.approx(2.0, rel=0.01)
    t = uniform_fill(torch.empty(200_000), gen(), min=-1.0, max=3.0)
    assert t.min().item() >= -1.0 and t.max().item() <= 3.0
    assert stats(t)[0] == pytest.approx(1.0, abs=0.02)
    assert stats(t)[1] == pytest.approx(4 / math.sqrt(12), rel=0.01)


def test_he_fan_in_average_fan_out_and_mean_norm_and_scaling():
    w = torch.empty(400, 50, 3, 3)   # fan_in 450, fan_out 3600
    fan_in, fan_out = fans(w)
    he_fill(w, gen(), fan_in, fan_out)
    assert stats(w)[1] == pytest.approx(math.sqrt(2 / 450), rel=0.01)
    he_fill(w, gen(), fan_in, fan_out, variance_norm="FanOut")
    assert stats(w)[1] == pytest.approx(math.sqrt(2 / 3600), rel=0.01)
    he_fill(w, gen(), fan_in, fan_out, variance_norm="Average")
    assert stats(w)[1] == pytest.approx(math.sqrt(2 / 2025), rel=0.01)
    he_fill(w, gen(), fan_in, fan_out, mean_norm=45.0, scaling=3.0)   # mean 45/450 = 0.1
    mean, std = stats(w)
    assert mean == pytest.approx(0.3, abs=0.005)
    assert std == pytest.approx(3 * math.sqrt(2 / 450), rel=0.01)


def test_he_scaling_zero_gives_zeros_as_resnet_templates_use_it():
    w = he_fill(torch.empty(8, 8), gen(), 8, 8, scaling=0.0)
    assert torch.count_nonzero(w) == 0


def test_xavier_uniform_bounds_and_normal_std():
    w = torch.empty(300, 600)   # fan_in 600, fan_out 300
    xavier_fill(w, gen(), 600, 300)
    bound = math.sqrt(3 / 600)
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.99 * bound
    assert stats(w)[1] == pytest.approx(math.sqrt(1 / 600), rel=0.01)
    xavier_fill(w, gen(), 600, 300, variance_norm="Average", distribution="Normal",
                scaling=2.0)
    assert stats(w)[1] == pytest.approx(2 * math.sqrt(1 / 450), rel=0.01)


def test_fill_functions_validate_their_arguments():
    with pytest.raises(ValueError, match="std_dev must be >= 0"):
        normal_fill(torch.empty(3), None, std_dev=-1.0)
    with pytest.raises(ValueError, match="min=2.0 must not exceed max=1.0"):
        uniform_fill(torch.empty(3), None, min=2.0, max=1.0)
    with pytest.raises(ValueError, match="did you mean 'FanIn'"):
        he_fill(torch.empty(3, 3), None, 3, 3, variance_norm="Fanin")
    with pytest.raises(ValueError, match="did you mean 'Normal'"):
        xavier_fill(torch.empty(3, 3), None, 3, 3, distribution="Normale")


def test_same_generator_seed_gives_same_weights():
    a = HeFiller()(torch.empty(4, 3, 3, 3), gen(7))
    b = HeFiller()(torch.empty(4, 3, 3, 3), gen(7))
    assert torch.equal(a, b)


def test_filler_objects_use_tensor_fans_or_given_ones():
    w = torch.empty(200, 500)
    HeFiller()(w, gen())
    assert stats(w)[1] == pytest.approx(math.sqrt(2 / 500), rel=0.02)
    HeFiller()(w, gen(), fan_in=50, fan_out=1)
    assert stats(w)[1] == pytest.approx(math.sqrt(2 / 50), rel=0.02)
    assert torch.all(ConstantFiller(0.25)(torch.empty(3)) == 0.25)


def test_default_filler_is_normal_0_0_05():
    assert DEFAULT_INITIALIZER == NormalFiller(0.0, 0.05)
    assert build_initializer(FakeSection({})) == DEFAULT_INITIALIZER
    assert build_initializer(FakeSection({}), "BiasFiller") == DEFAULT_INITIALIZER


def test_build_filler_reads_parameters():
    section = FakeSection({"WeightsFiller": "XavierFiller",
                           "WeightsFiller.VarianceNorm": "Average",
                           "WeightsFiller.Distribution": "Normal",
                           "WeightsFiller.Scaling": "0.5",
                           "BiasFiller": "ConstantFiller", "BiasFiller.Value": "0.1"})
    assert build_initializer(section) == XavierFiller("Average", "Normal", 0.5)
    assert build_initializer(section, "BiasFiller") == ConstantFiller(0.1)
    assert build_initializer(FakeSection({"WeightsFiller": "UniformFiller",
                                     "WeightsFiller.Max": "0.5"})) == UniformFiller(0.0, 0.5)


def test_constant_filler_without_value_fails_like_vgg16_fc7():
    section = FakeSection({"BiasFiller": "ConstantFiller"})
    with pytest.raises(ConfigError, match=r"\[cell\] BiasFiller.Value: missing"):
        build_initializer(section, "BiasFiller")


def test_build_filler_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"WeightsFiller: unknown filler 'HeFill'; "
                                          r"did you mean 'HeFiller'"):
        build_initializer(FakeSection({"WeightsFiller": "HeFill"}))
    section = FakeSection({"WeightsFiller": "HeFiller", "WeightsFiller.Scale": "2"})
    with pytest.raises(ConfigError, match=r"WeightsFiller.Scale: unknown HeFiller parameter "
                                          r".*did you mean 'WeightsFiller.Scaling'"):
        build_initializer(section)
    section = FakeSection({"WeightsFiller": "HeFiller", "WeightsFiller.VarianceNorm": "fanin"})
    with pytest.raises(ConfigError, match=r"WeightsFiller.VarianceNorm=fanin"):
        build_initializer(section)
    section = FakeSection({"WeightsFiller": "NormalFiller", "WeightsFiller.StdDev": "-1"})
    with pytest.raises(ConfigError, match=r"WeightsFiller.StdDev: must be >= 0"):
        build_initializer(section)


def test_prefixed_keys_without_type_key_are_ignored():
    assert build_initializer(FakeSection({"WeightsFiller.Scaling": "2"})) == DEFAULT_INITIALIZER


def test_ini_lines_round_trip():
    filler = HeFiller("FanOut", 0.0, 0.5)
    lines = filler.ini_lines("WeightsFiller")
    assert lines[0] == "WeightsFiller=HeFiller"
    section = FakeSection(dict(line.split("=", 1) for line in lines))
    assert build_initializer(section) == filler
