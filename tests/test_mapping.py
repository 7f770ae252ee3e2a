import pytest
import torch

from fakesection import FakeSection
from n2prune.errors import ConfigError, ConfigWarning
from n2prune.cells.mapping import (combined_map, connection_map, full_map, function_map, group_map,
                             groups_of, matrix_map, unconnected_outputs)

LENET_CONV2 = """\
1 0 0 0 1 1 1 0 0 1 1 1 1 0 1 1 \
1 1 0 0 0 1 1 1 0 0 1 1 1 1 0 1 \
1 1 1 0 0 0 1 1 1 0 0 1 0 1 1 1 \
0 1 1 1 0 0 1 1 1 1 0 0 1 0 1 1 \
0 0 1 1 1 0 0 1 1 1 1 0 1 1 0 1 \
0 0 0 1 1 1 0 0 1 1 1 1 0 1 1 1"""


def ints(mapping):
    return mapping.int().tolist()


def test_nothing_specified_is_the_full_map():
    m = connection_map(FakeSection({}), "conv1", 3, 4)
    assert m.dtype == torch.bool and m.shape == (3, 4) and bool(m.all())


def test_lenet_conv2_table_rows_are_channels_columns_are_outputs():
    section = FakeSection({"Mapping(pool1)": LENET_CONV2})
    m = connection_map(section, "pool1", 16, 6)
    assert m.shape == (16, 6)
    assert int(m.sum()) == 60                     # 60 of 96 kernels, as N2D2 reports
    assert ints(m[0]) == [1, 1, 1, 0, 0, 0]       # column 0 of the table
    assert ints(m[15]) == [1, 1, 1, 1, 1, 1]      # last column: all channels
    assert ints(m[:, 0]) == [1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1]  # row 0
    assert groups_of(m) is None


def test_matrix_is_per_parent_name():
    section = FakeSection({"Mapping(other)": "1 0 0 1"})
    assert bool(connection_map(section, "pool1", 2, 2).all())          # full map for pool1
    assert ints(connection_map(section, "other", 2, 2)) == [[1, 0], [0, 1]]


def test_stimuli_provider_is_called_env():
    section = FakeSection({"Mapping(env)": "1 0 0 1 1 1"})    # 3 channels x 2 outputs
    for parent in ("env", "sp", "cenv"):
        assert ints(connection_map(section, parent, 2, 3)) == [[1, 0, 1], [0, 1, 1]]


def test_matrix_value_count_and_values_are_checked():
    with pytest.raises(ConfigError) as info:
        connection_map(FakeSection({"Mapping(p)": "1 0 1"}), "p", 2, 2)
    assert "[cell] Mapping(p): 3 values given, expected 2 rows (input channels) x " \
           "2 columns (outputs) = 4" in str(info.value)
    with pytest.raises(ConfigError, match=r"Mapping\(p\): a mapping matrix holds only 0 and 1 "
                                          r"\(found '2'\)"):
        connection_map(FakeSection({"Mapping(p)": "1 0 2 1"}), "p", 2, 2)


def test_groups_even_and_uneven_outputs():
    assert ints(connection_map(FakeSection({"Mapping.NbGroups": "2"}), "p", 4, 4)) == [
        [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    # 5 outputs in 2 groups: group 0 gets 5 // 2 = 2, group 1 the remaining 3
    m = connection_map(FakeSection({"Mapping.ChannelsPerGroup": "2"}), "p", 5, 4)
    assert ints(m) == [[1, 1, 0, 0], [1, 1, 0, 0],
                       [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert groups_of(m) is None                  # not a torch grouped conv
    # 7 outputs in 3 groups: 7//3 = 2, then 5//2 = 2, then 3
    assert group_map(7, 3, 3).sum(dim=0).tolist() == [2, 2, 3]


def test_channels_per_group_one_is_depthwise_one_to_one():
    m = connection_map(FakeSection({"Mapping.ChannelsPerGroup": "1"}), "p", 4, 4)
    assert torch.equal(m, torch.eye(4, dtype=torch.bool))
    assert groups_of(m) == 4


def test_group_errors_name_the_key():
    both = FakeSection({"Mapping.NbGroups": "2", "Mapping.ChannelsPerGroup": "2"})
    with pytest.raises(ConfigError, match="mutually exclusive"):
        connection_map(both, "p", 4, 4)
    with pytest.raises(ConfigError, match=r"Mapping.NbGroups: 6 input channels cannot be split "
                                          r"into 4 groups"):
        connection_map(FakeSection({"Mapping.NbGroups": "4"}), "p", 4, 6)
    with pytest.raises(ConfigError, match=r"Mapping.NbGroups: must be between 1 and the 4"):
        connection_map(FakeSection({"Mapping.NbGroups": "0"}), "p", 4, 4)
    with pytest.raises(ConfigError, match=r"Mapping.ChannelsPerGroup: must be between 1"):
        connection_map(FakeSection({"Mapping.ChannelsPerGroup": "8"}), "p", 4, 4)
    with pytest.raises(ConfigError, match=r"Mapping.ChannelsPerGroup: 5 input channels cannot"):
        connection_map(FakeSection({"Mapping.ChannelsPerGroup": "2"}), "p", 4, 5)


def test_channels_per_group_leaving_channels_out_warns_as_n2d2_connects_only_k():
    with pytest.warns(ConfigWarning, match=r"input channels 4..5 unconnected"):
        m = connection_map(FakeSection({"Mapping.ChannelsPerGroup": "4"}), "p", 2, 6)
    assert ints(m) == [[1, 1, 1, 1, 0, 0]] * 2


def test_size_one_is_the_identity_and_stride_offset_wrap():
    m = connection_map(FakeSection({"Mapping.Size": "1"}), "p", 4, 4)
    assert torch.equal(m, torch.eye(4, dtype=torch.bool))
    # 2 outputs x 4 channels: 4 iterations wrap outputs: out 0 <- ch 0, 2; out 1 <- ch 1, 3
    assert ints(function_map(2, 4)) == [[1, 0, 1, 0], [0, 1, 0, 1]]
    assert ints(function_map(3, 3, size_x=1, size_y=2, nb_iterations=3)) == [
        [1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert ints(function_map(2, 3, size_x=0, size_y=1, stride_x=0, nb_iterations=2)) == [
        [1, 1, 0], [1, 1, 0]]
    assert ints(function_map(4, 2, offset_x=1, offset_y=1, nb_iterations=2)) == [
        [0, 0], [0, 1], [1, 0], [0, 0]]


def test_googlenet_style_offsets_put_each_parent_in_its_own_outputs():
    section = FakeSection({"Mapping.Size": "1",
                           "Mapping(a).NbIterations": "2",
                           "Mapping(b).OffsetX": "2", "Mapping(b).NbIterations": "3"})
    m = combined_map(section, ["a", "b"], 5, [2, 3])
    assert torch.equal(m, torch.eye(5, dtype=torch.bool))
    assert unconnected_outputs(m) == []


def test_parent_keys_fall_back_to_common_keys_axis_by_axis():
    section = FakeSection({"Mapping.Size": "2", "Mapping(p).SizeX": "1",
                           "Mapping(p).NbIterations": "2"})
    # SizeX from Mapping(p) (1), SizeY from Mapping.Size (2)
    assert ints(connection_map(section, "p", 2, 3)) == [[1, 1, 0], [0, 1, 1]]


def test_parent_only_function_keys_make_a_function_map_for_that_parent_only():
    section = FakeSection({"Mapping(a).OffsetX": "1"})
    assert ints(connection_map(section, "a", 2, 2)) == [[0, 1], [1, 0]]
    assert bool(connection_map(section, "b", 2, 2).all())


def test_function_key_values_are_read_with_located_errors():
    with pytest.raises(ConfigError, match=r"Mapping.Size=-1"):
        connection_map(FakeSection({"Mapping.Size": "-1"}), "p", 2, 2)


def test_groups_of_full_diagonal_blocks_and_irregular():
    assert groups_of(full_map(4, 6)) == 1
    assert groups_of(group_map(6, 6, 3)) == 3
    assert groups_of(torch.eye(3, dtype=torch.bool)) == 3
    irregular = torch.eye(3, dtype=torch.bool)
    irregular[2, 0] = True
    assert groups_of(irregular) is None
    assert groups_of(torch.zeros(2, 2, dtype=torch.bool)) is None


def test_unconnected_outputs_and_pure_function_errors():
    m = torch.tensor([[1, 0], [0, 0], [0, 1]], dtype=torch.bool)
    assert unconnected_outputs(m) == [1]
    with pytest.raises(ValueError, match="nb_groups must be a positive integer"):
        group_map(2, 2, 0)
    with pytest.raises(ValueError, match="3 groups of 0 channels do not fit the 2 input"):
        group_map(2, 2, 3)
    with pytest.raises(ValueError, match="2 groups of 2 channels do not fit the 3 input"):
        group_map(2, 3, 2, channels_per_group=2)
    with pytest.raises(ValueError, match="3 values given"):
        matrix_map([1, 0, 1], 2, 2)
