"""Sizes and allocations a network file may ask for are bounded before torch sees them
(issue 8 item 4): huge or infinite numbers and terabyte layers give located ConfigErrors."""

import pytest
import torch

from n2prune.errors import ConfigError
from n2prune.network.build import load_network
from n2prune.network import limits
from n2prune.network.limits import MAX_NETWORK_ELEMENTS, AllocationGuard, OverLimit, \
    requested_elements

NET = """[sp]
SizeX=8
SizeY=8
NbChannels=1
[conv1]
Input=sp
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=4
[fc]
Input=conv1
Type=Fc
NbOutputs=10
"""


def build_error(tmp_path, old, new, **kwargs):
    path = tmp_path / "net.ini"
    path.write_text(NET.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_network(str(path), **kwargs)
    return str(info.value).replace(f"{path}:", "net.ini:")


@pytest.mark.parametrize("old, new, expected", [
    ("NbOutputs=10", "NbOutputs=99999999999999999999999",
     "net.ini:14: [fc] NbOutputs=99999999999999999999999: integer "
     "'99999999999999999999999' is out of range (at most 9223372036854775807 in magnitude)"),
    ("NbOutputs=10", "NbOutputs=1e999",
     "net.ini:14: [fc] NbOutputs=1e999: integer expected, but '1e999' was provided"),
    ("SizeX=8", "SizeX=1e999", "net.ini:2: [sp] SizeX=1e999: integer expected, but '1e999' "
                               "was provided"),
    ("Padding=1", "Padding=-99999999999999999999",
     "net.ini:9: [conv1] Padding=-99999999999999999999: integer '-99999999999999999999' is "
     "out of range (at most 9223372036854775807 in magnitude)"),
    ("NbOutputs=10", "NbOutputs=0", "net.ini:14: [fc] NbOutputs=0: must be at least 1"),
    ("NbOutputs=4", "NbOutputs=0", "net.ini:10: [conv1] NbOutputs=0: must be at least 1"),
])
def test_sizes_out_of_range_are_located_errors(tmp_path, old, new, expected):
    assert build_error(tmp_path, old, new) == expected


def test_a_terabyte_layer_is_refused_before_torch_allocates_it(tmp_path):
    # 4 x 8 x 8 inputs x 10**12 outputs: 4 PB of float32 if it reached the allocator.
    message = build_error(tmp_path, "NbOutputs=10", "NbOutputs=1000000000000")
    assert message == (
        "net.ini:11: [fc] building this cell would allocate 2.56e+14 elements (2.56e+14 for "
        f"the network so far): over the limit of {MAX_NETWORK_ELEMENTS} elements (8 GiB of "
        "float32; build_network(max_elements=...) changes it)")


def test_the_limit_counts_the_whole_network(tmp_path):
    # conv1: 4*1*3*3 weights + 4 biases = 40; fc: 10*256 + 10 = 2570; total 2610.
    path = tmp_path / "net.ini"
    path.write_text(NET)
    assert sum(p.numel() for p in load_network(str(path), max_elements=2610).parameters()) \
        == 2610
    message = build_error(tmp_path, "", "", max_elements=2609)
    # the bias (10 elements, after the 2560 weights) is the allocation that passes 2609
    assert message.startswith("net.ini:11: [fc] building this cell would allocate 10 "
                              "elements (2610 for the network so far): over the limit of 2609")


def test_an_output_too_large_per_sample_is_refused(tmp_path):
    message = build_error(tmp_path, "SizeX=8\nSizeY=8", "SizeX=100000\nSizeY=100000")
    assert message == ("net.ini:1: [sp] the input (1 x 100000 x 100000 = 1e+10 elements per "
                       f"sample) is over the limit of {MAX_NETWORK_ELEMENTS} elements "
                       "(build_network(max_elements=...) changes it)")
    message = build_error(tmp_path, "NbOutputs=4", "NbOutputs=100", max_elements=6000)
    assert message.startswith("net.ini:5: [conv1] its output (100 x 8 x 8 = 6400 elements "
                              "per sample) is over the limit of 6000 elements")


@pytest.mark.parametrize("call, expected", [
    (lambda: torch.empty(3, 4), 12), (lambda: torch.zeros((2, 5)), 10),
    (lambda: torch.ones(torch.Size([7])), 7), (lambda: torch.full((2, 3), 1.0), 6),
    (lambda: torch.randn(2, 2, generator=None), 4), (lambda: torch.rand(size=(3,)), 3),
    (lambda: torch.randint(0, 5, (4, 2)), 8), (lambda: torch.eye(3), 9),
    (lambda: torch.empty(2).new_zeros(5, 2), 2 + 10),
])
def test_the_guard_counts_factory_calls(call, expected):
    with AllocationGuard() as guard:
        call()
    assert guard.total == expected


def test_the_guard_refuses_before_allocating():
    with pytest.raises(OverLimit):
        with AllocationGuard(limit=10 ** 6):
            torch.empty(10 ** 9, 10 ** 9)  # would fail in the allocator (or overflow)
    assert requested_elements(torch.add, (torch.ones(2), 1), {}) is None


POOL = """[sp]
SizeX=4
SizeY=4
NbChannels=2
[pool]
Input=sp
Type=Pool
PoolDims=1 1
Pooling=Max
NbOutputs=2
"""


def test_a_huge_mapping_patch_is_refused_before_arange_allocates_it(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text(POOL + "Mapping.Size=1e12\n")
    with pytest.raises(ConfigError, match=r"net.ini:5: \[pool\] building this cell would "
                                          r"allocate 1e\+12 elements"):
        load_network(str(path))


def test_a_build_that_never_ends_is_bounded_by_torch_calls(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_BUILD_CALLS", 5000)  # the default takes seconds
    path = tmp_path / "net.ini"
    path.write_text(POOL + "Mapping.NbIterations=1000000000000\n")
    with pytest.raises(ConfigError) as info:
        load_network(str(path))
    assert str(info.value) == (f"{path}:5: [pool] building the network takes more than 5000 "
                               "torch operations (by this cell): a size or iteration count far "
                               "too large?")


@pytest.mark.parametrize("args, expected", [((5,), 5), ((2, 7), 5), ((0, 10, 3), 4),
                                            ((0.0, 1.0, 0.25), 4), ((3, 3), 0)])
def test_arange_sizes(args, expected):
    assert requested_elements(torch.arange, args, {}) == expected == len(torch.arange(*args))
