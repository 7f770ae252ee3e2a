"""Every building error is located, and a key nobody reads is an error with a suggestion
(issue 8 item 5): misspelt cell keys no longer change the network silently."""

import warnings

import pytest

from n2prune.errors import ConfigError, ConfigWarning
from n2prune.network.build import load_network

NET = """[sp]
SizeX=8
SizeY=8
[conv1]
Input=sp
Type=Conv
KernelDims=3 3
Padding=1
NbOutputs=4
ActivationFunction=Rectifier
ConfigSection=common
[fc]
Input=conv1
Type=Fc
NbOutputs=10
ConfigSection=common
[common]
NoBias=1
"""


def build(tmp_path, text):
    path = tmp_path / "net.ini"
    path.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = load_network(str(path))
    return net, [str(w.message).replace(f"{path}:", "net.ini:") for w in caught]


def error(tmp_path, old, new):
    path = tmp_path / "net.ini"
    path.write_text(NET.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConfigWarning)
            load_network(str(path))
    assert info.value.path == str(path) and info.value.line is not None
    return str(info.value).replace(f"{path}:", "net.ini:")


def test_a_misspelt_key_in_a_cell_section_is_an_error_with_a_suggestion(tmp_path):
    # N2D2 checks no key of a Conv section that has ActivationFunction=; Paddng=2 used to be
    # a warning while the network silently lost its padding.
    assert error(tmp_path, "Padding=1", "Paddng=1") == (
        "net.ini:8: [conv1] Paddng=1: unknown key 'Paddng' for a Conv cell; "
        "did you mean 'Padding'?")


def test_an_unknown_key_without_a_near_spelling_is_an_error_too(tmp_path):
    assert error(tmp_path, "NbOutputs=10", "NbOutputs=10\nColour=red") == (
        "net.ini:16: [fc] Colour=red: unknown key 'Colour' for a Fc cell")


def test_a_misspelt_required_key_points_at_itself(tmp_path):
    assert error(tmp_path, "NbOutputs=10", "NbOutput=10") == (
        "net.ini:15: [fc] NbOutput=10: unknown key 'NbOutput'; did you mean 'NbOutputs'? "
        "(missing required key 'NbOutputs')")


def test_a_missing_required_key_without_a_misspelling_names_the_section(tmp_path):
    assert error(tmp_path, "NbOutputs=10\n", "") == (
        "net.ini:12: [fc] missing required key 'NbOutputs'")


def test_a_misspelt_config_section_parameter_gets_a_suggestion(tmp_path):
    assert error(tmp_path, "NoBias=1", "NoBais=1") == (
        "net.ini:18: [common] NoBais=1: unknown parameter 'NoBais' for a Conv cell; "
        "did you mean 'NoBias'? (read for [conv1])")


def test_an_unknown_config_section_is_located_at_its_key(tmp_path):
    message = error(tmp_path, "ConfigSection=common\n[fc]", "ConfigSection=comon\n[fc]")
    assert message.startswith("net.ini:11: [conv1] ConfigSection=comon: unknown section "
                              "'comon'; did you mean 'common'?")


@pytest.mark.parametrize("text", ["[a]\nInput=sp\nType=Fc\nNbOutputs=2\n",
                                  "; no provider\n[a]\nInput=b\nType=Fc\nNbOutputs=2\n"])
def test_a_missing_provider_is_located(tmp_path, text):
    path = tmp_path / "net.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_network(str(path))
    where = "net.ini:2: [a] Input=sp: " if "Input=sp" in text else "net.ini:2: [a] "
    assert str(info.value).replace(f"{path}:", "net.ini:") == (
        where + "missing stimuli provider: add an [sp] section with SizeX, SizeY and "
        "NbChannels")


@pytest.mark.parametrize("key", ["Dropout=0.2", "Solvers.LearningRate=0.1"])
def test_keys_n2d2_reads_elsewhere_and_ignores_here_still_warn(tmp_path, key):
    net, messages = build(tmp_path, NET.replace("NbOutputs=10", f"NbOutputs=10\n{key}"))
    assert [m for m in messages if "ignored" in m] == [
        f"net.ini:16: [fc] {key.split('=')[0]}: ignored: N2D2 does not read this key in a Fc "
        "cell section (cell parameters belong in a ConfigSection)"]
    assert net.cells["fc"].weight.shape == (10, 4 * 8 * 8)


def test_found_by_fuzzing_a_batchnorm_error_without_a_config_section_is_located(tmp_path):
    # was AttributeError: 'NoneType' object has no attribute 'error'
    text = "[sp]\nSizeX=4\nSizeY=4\n[bn]\nInput=sp\nType=BatchNorm\nNbOutputs=1\n" \
           "ActivationFunction=Rectifer\n"
    path = tmp_path / "net.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_network(str(path))
    assert str(info.value).startswith(
        f"{path}:8: [bn] ActivationFunction=Rectifer: unknown activation function 'Rectifer'")
    assert str(info.value).count(str(path)) == 1


def test_found_by_fuzzing_a_file_without_cells_is_located(tmp_path):
    path = tmp_path / "net.ini"
    path.write_text("; truncated\n[sp]\nSizeX=4\nSizeY=4\n")
    with pytest.raises(ConfigError) as info:
        load_network(str(path))
    assert str(info.value) == (f"{path}:2: [sp] no cell found (a cell is a section with an "
                               "Input= key)")
