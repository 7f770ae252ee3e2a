"""Every real N2D2 model file loads, and every key of every section evaluates."""

import warnings

import pytest

from n2prune.errors import ConfigError, ConfigWarning
from n2prune.ini.inifile import load
from n2prune.ini.values import read_uint

MODEL_FILES = [
    "models/GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini",
    "models/LeNet.ini",
    "models/MobileNet_v1.ini",
    "models/ResNet-18.ini",
    "models/VGG16.ini",
    "models/cifar-10.ini",
    "models/mnist-autoencoder.ini",
    "models/mnist24_16c4s2_24c5s2_150_10.ini",
    "tests_data/ResNet-18.ini",
    "tests_data/mnist_model/model.ini",
    "tests_data/mnist_multibranch_model/model.ini",
]
# What the network builder writes into sections before later values read them (§1.5).
COMPUTED = {"_EpochSize": 1000, "_NbChannels": 3, "_ChannelsWidth": 7, "_ChannelsHeight": 7,
            "_NbOutputs": 8, "_OutputsWidth": 7, "_OutputsHeight": 7,
            "_GlobalValue.minVal": 0.0, "_GlobalValue.maxVal": 255.0,
            "_GlobalValue.mean": 120.708, "_GlobalValue.stdDev": 64.1507}


def load_model(n2d2_models, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        return load(str(n2d2_models / name),
                    environ={"N2D2_MODELS": str(n2d2_models / "models")})


def test_all_model_files_are_listed(n2d2_models):
    found = sorted(str(path.relative_to(n2d2_models)) for path in n2d2_models.rglob("*.ini"))
    assert found == sorted(MODEL_FILES)


# The one reference these files leave literal: VGG16 misspells its own variable (see below);
# its cells read it through their ConfigSection.
LITERAL = {"models/VGG16.ini": {"Solvers.LearningRateDecay"}}


def _names_a_computed_property(raw: str) -> bool:
    return any(name in raw for name in COMPUTED)


@pytest.mark.parametrize("name", MODEL_FILES)
def test_every_key_evaluates_to_text_without_references_left(n2d2_models, name):
    ini = load_model(n2d2_models, name)
    assert ini.sections()
    for section in ini.sections():
        for key, value in COMPUTED.items():
            section.set_computed(key, value)
    evaluated = {}
    for section in ini.sections():
        evaluated.update({(section.name, key): section[key] for key in section.keys()})
        if "ConfigSection" in section:
            view = ini.view(section["ConfigSection"].split(","), section.name)
            evaluated.update({(section.name, key): view[key] for key in view.keys()})
    left = {where for where, text in evaluated.items() if "${" in text or "$(" in text}
    assert {key for _, key in left} == LITERAL.get(name, set())
    assert all(isinstance(text, str) for text in evaluated.values())


@pytest.mark.parametrize("name", MODEL_FILES)
def test_computed_references_fail_before_the_builder_runs(n2d2_models, name):
    """Exactly the keys naming a property the builder computes fail, and say so."""
    ini = load_model(n2d2_models, name)
    failures, expected = {}, set()
    for section in ini.sections():
        for key in section.keys():
            if _names_a_computed_property(section.raw(key)):
                expected.add((section.name, key))
            try:
                section[key]
            except ConfigError as error:
                failures[section.name, key] = error.reason
    assert set(failures) == expected
    for reason in failures.values():
        assert "property '_" in reason and "not found" in reason, reason


def test_some_model_files_refer_to_computed_properties(n2d2_models):
    """The test above is not vacuous: the files do use the builder's properties."""
    raws = [section.raw(key) for name in MODEL_FILES
            for section in load_model(n2d2_models, name).sections() for key in section.keys()]
    assert any(map(_names_a_computed_property, raws))


def test_resnet18_template_blocks(n2d2_models):
    ini = load_model(n2d2_models, "models/ResNet-18.ini")
    names = ini.section_names()
    assert names[names.index("conv2.1"):names.index("conv2.2_sum") + 1] == [
        "conv2.1", "conv2.1_3x3_1", "conv2.1_3x3_2", "conv2.1_1x1_proj", "conv2.1_sum",
        "conv2.2", "conv2.2_3x3_1", "conv2.2_3x3_2", "conv2.2_sum"]
    assert len(names) == 55
    assert ini["conv2.1_sum"]["Input"] == "conv2.1_3x3_2,conv2.1_1x1_proj"
    assert ini["conv2.2_sum"]["Input"] == "conv2.2_3x3_2,conv2.1_sum"
    block = ini["conv5.1_3x3_1"]
    assert (block["NbOutputs"], block["Stride"], block["Type"]) == ("512", "2", "Conv")
    assert block["WeightsFiller.Scaling"] == "0.3535533905932738"
    assert ini["conv5.1_3x3_2"]["NbOutputs"] == "512"
    assert ini["conv5.1_3x3_2"]["ActivationFunction"] == "Linear"
    assert ini["conv1"]["NbOutputs"] == "64"
    assert ini["sp.Transformation-2"]["Width"] == "256"
    assert ini["sp.Transformation-6"]["OffsetX"] == "16"
    assert ini["fc"]["WeightsFiller.Scaling"] == "0.0"


def test_resnet18_generated_keys_point_at_the_template(n2d2_models):
    ini = load_model(n2d2_models, "models/ResNet-18.ini")
    template = str(n2d2_models / "models") + "/ResNet-block.ini.tpl"
    summed = ini["conv3.1_sum"]
    assert (summed.path, summed.header_line, summed.line_of("Input")) == (template, 31, 32)
    assert ini["conv3.1_1x1_proj"].line_of("NbOutputs") == 23
    assert ini["conv3.1_3x3_1"].line_of("Type") == ini["conv_def"].line_of("Type")
    error = summed.error("Operation", "bad")
    assert str(error) == (f"{template}:35: [conv3.1_sum] Operation=Sum: bad "
                          f"(in template output of [conv3.1] at "
                          f"{n2d2_models / 'models/ResNet-18.ini'}:142)")


def test_resnet18_config_section_reads_in_the_cell_context(n2d2_models):
    ini = load_model(n2d2_models, "models/ResNet-18.ini")
    ini["sp"].set_computed("_EpochSize", 1281167)
    view = ini.view(["common.config", "fc.config"], "fc")
    assert (view["NoBias"], view["BiasSolver.LearningRate"]) == ("0", "0.2")
    assert view["Solvers.MaxIterations"] == "450410.2734375"  # Python 2 era division
    with pytest.raises(ConfigError) as info:
        view.get("Solvers.MaxIterations", read_uint)
    assert str(info.value).startswith(
        f"{n2d2_models / 'models/ResNet-18.ini'}:215: [common.config] Solvers.MaxIterations=")


def test_vgg16_misspelled_variable_stays_literal(n2d2_models):
    ini = load_model(n2d2_models, "models/VGG16.ini")
    assert ini["common.config"]["Solvers.LearningRateDecay"] == "${STEPDECAY_RATE}"
    assert ini["common.config"].line_of("Solvers.LearningRateDecay") == 297


def test_test_data_resnet_templates_resolve_next_to_the_file(n2d2_models):
    ini = load_model(n2d2_models, "tests_data/ResNet-18.ini")
    # tests_data's own template (its 3x3_2 block has KernelDims=1 1), not the models/ one
    assert ini["conv4.1_3x3_2"]["KernelDims"] == "1 1"
    assert ini["conv4.1_3x3_2"].path == str(n2d2_models / "tests_data") + "/./ResNet-block.ini.tpl"
    assert len(ini.section_names()) == 45


def test_lenet_mapping_matrix_continuation(n2d2_models):
    ini = load_model(n2d2_models, "models/LeNet.ini")
    rows = ini["conv2"]["Mapping(pool1)"].split()
    assert len(rows) == 6 * 16
    assert rows[:16] == "1 0 0 0 1 1 1 0 0 1 1 1 1 0 1 1".split()
