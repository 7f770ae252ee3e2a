"""Type=ONNX: what is refused, and where the error points; the operator registry is open;
an imported network learns and prunes."""

import json

import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx", reason="ONNX import needs onnx (.[onnx])")
pytest.importorskip("onnxruntime", reason="the reference outputs need onnxruntime (.[onnx])")

from onnx import TensorProto, helper  # noqa: E402

from n2prune import ini as ini_module  # noqa: E402
from n2prune.cli import sensitivity_main, train_main  # noqa: E402
from n2prune.data.build import build_provider  # noqa: E402
from n2prune.errors import ConfigError  # noqa: E402
from n2prune.network.build import load_network  # noqa: E402
from n2prune.onnxin import OPS, Built  # noqa: E402
from onnx_models import Residual, export, randomized, run_onnxruntime  # noqa: E402
from test_onnx_import import write_ini  # noqa: E402


def _one_node(path, op, name, inputs=("input",), **attrs):
    """An ONNX file of one ``op`` node on a (N, 3, 4, 4) input."""
    node = helper.make_node(op, list(inputs), ["output"], name=name, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return str(path)


def test_an_unsupported_operator_names_the_file_line_node_and_supported_ones(tmp_path):
    _one_node(tmp_path / "erf.onnx", "Erf", "my_erf")
    ini = write_ini(tmp_path, "erf.onnx", shape=(3, 4, 4))   # found next to the INI file
    with pytest.raises(ConfigError) as error:
        load_network(str(ini))
    message = str(error.value)
    assert message.startswith(f"{ini}:10: [onnx] File=erf.onnx: node 'my_erf' (Erf, output "
                              f"'output'): operator Erf is not supported (supported: Add, ")
    assert f"({len(OPS)} in all)" in message


def test_an_operator_registered_from_outside_is_imported(tmp_path):
    class Erf(nn.Module):
        def forward(self, x):
            return torch.erf(x)

    def build_erf(ctx):
        x = ctx.value(0)
        return Built("Erf", Erf(), x.shape, [x.cell], rank=x.rank)

    file = _one_node(tmp_path / "erf.onnx", "Erf", "my_erf")
    with OPS.registered("Erf", build_erf):
        net = load_network(file).eval()
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(net(x), run_onnxruntime(file, x), atol=1e-6)
    assert "Erf" not in OPS


def test_a_dropout_node_is_a_dropout_cell_and_the_identity_at_inference(tmp_path):
    file = _one_node(tmp_path / "dropout.onnx", "Dropout", "drop")
    net = load_network(file).eval()
    assert net.info["output"].type == "Dropout" and net.cells["output"].dropout == 0.5
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(net(x), x)


def test_an_lrn_node_is_n2d2s_lrn_cell(tmp_path):
    file = _one_node(tmp_path / "lrn.onnx", "LRN", "norm", size=3, alpha=0.5, beta=0.75,
                     bias=2.0)
    net = load_network(file).eval()
    assert net.info["output"].type == "LRN"
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(net(x), run_onnxruntime(file, x), atol=1e-5)


def test_a_node_the_importer_cannot_take_is_located_with_the_reason(tmp_path):
    _one_node(tmp_path / "mm.onnx", "MatMul", "square", inputs=("input", "input"))
    with pytest.raises(ConfigError, match=r"net.ini:10: \[onnx\] File=mm.onnx: node 'square' "
                                          r"\(MatMul, output 'output'\): MatMul of two "
                                          r"computed tensors is not imported"):
        load_network(str(write_ini(tmp_path, "mm.onnx", shape=(3, 4, 4))))


def test_a_missing_onnx_file_says_where_it_looked(tmp_path):
    ini = write_ini(tmp_path, "models/absent.onnx")
    with pytest.raises(ConfigError, match=rf"net.ini:10: \[onnx\] File=models/absent.onnx: ONNX "
                                          rf"file not found \(looked for 'models/absent.onnx', "
                                          rf"'{tmp_path}/models/absent.onnx'\)"):
        load_network(str(ini))


def test_a_file_that_is_not_onnx_is_a_located_error(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\xff\xff\xff not a model")
    with pytest.raises(ConfigError, match=r"net.ini:10: \[onnx\] File=junk.onnx: ONNX file "
                                          r".*cannot be parsed"):
        load_network(str(write_ini(tmp_path, "junk.onnx")))


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    return export(randomized(Residual()), (3, 16, 16),
                  tmp_path_factory.mktemp("onnx") / "residual.onnx")


def test_an_input_of_another_size_is_refused_unless_ignore_input_size(tmp_path, residual):
    with pytest.raises(ConfigError, match=r"net.ini:8: \[onnx\] Input=sp: the ONNX input "
                                          r"'input' is 3 x 16 x 16 \(C x H x W\), \[sp\] gives "
                                          r"3 x 8 x 8"):
        load_network(str(write_ini(tmp_path, residual, shape=(3, 8, 8))))
    net = load_network(str(write_ini(tmp_path, residual, shape=(3, 8, 8),
                                     extra="IgnoreInputSize=1")))
    assert net.info["/conv1/Conv_output_0"].output_shape == (8, 8, 8)


@pytest.mark.parametrize("extra, words", [
    ("ONNX_Init=0", r"ONNX_Init=0: unknown key .*did you mean 'ONNX_init'"),
    ("ConfigSection=cfg", r"ConfigSection=cfg: unknown key"),   # N2D2 reads none here
    ("Transpose=1", r"Transpose=1: is not supported")])
def test_a_key_the_onnx_section_does_not_take_is_an_error(tmp_path, residual, extra, words):
    with pytest.raises(ConfigError, match=r"net.ini:11: \[onnx\] " + words):
        load_network(str(write_ini(tmp_path, residual, "[cfg]\n", extra=extra)))


def test_qweight_in_the_batchnorm_default_section_is_refused(tmp_path, residual):
    with pytest.raises(ConfigError, match=r"\[onnx:BatchNorm_def\] QWeight=Prune: QWeight is "
                                          r"read by .*Conv.* cells only, not BatchNorm"):
        load_network(str(write_ini(tmp_path, residual, "[onnx:BatchNorm_def]\nQWeight=Prune\n")))


def test_an_imported_cell_named_like_an_ini_cell_is_refused(tmp_path, residual):
    text = "[output]\nInput=onnx,/fc/Gemm_output_0\nType=Softmax\nNbOutputs=5\n"
    with pytest.raises(ConfigError, match=r"\[onnx\] File=.*: node '/Softmax' .*its cell name "
                                          r"'output' is already a cell"):
        load_network(str(write_ini(tmp_path, residual, text)))


@pytest.mark.parametrize("main, extra", [(train_main, ["-learn", "1"]), (sensitivity_main, [])])
def test_learning_or_evaluating_an_onnx_file_is_a_one_line_refusal(residual, capsys, main,
                                                                   extra, tmp_path):
    assert main([residual, *extra, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "an ONNX file has no database" in err


class _Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def test_an_imported_network_learns_the_digits_and_prunes_its_conv(tmp_path):
    file = export(randomized(_Small()), (1, 8, 8), tmp_path / "small.onnx")
    text = ("[database]\nType=Digits_Database\nLearn=0.7\nValidation=0.1\n"
            "[onnx:Conv_def]\nQWeight=Prune\nQWeight.PruningMode=Static\n"
            "QWeight.PruningFiller=Magnitude\nQWeight.Threshold=0.5\nConfigSection=cfg\n"
            "[onnx:Fc_def]\nConfigSection=cfg\n[cfg]\nSolvers.LearningRate=0.05\n"
            "[softmax]\nInput=onnx,output\nType=Softmax\nNbOutputs=10\nWithLoss=1\n"
            "[softmax.Target]\n")
    ini = write_ini(tmp_path, file, text, shape=(1, 8, 8))
    output = tmp_path / "run"
    assert train_main([str(ini), "-learn-epoch", "2", "-seed", "3", "--threads", "1",
                       "--quiet", "--output", str(output)]) == 0
    report = json.loads((output / "report.json").read_text())
    assert report["test_accuracy"] > 0.8
    conv = report["cells"]["/conv/Conv_output_0"]
    assert conv["threshold"] == 0.5 and conv["sparsity"] >= 0.5
    assert (output / "weights" / "conv" / "Conv_output_0_masks.syntxt").is_file()
    tested = tmp_path / "test"
    assert train_main([str(ini), "-test", "-w", str(output / "weights"), "-seed", "3",
                       "--threads", "1", "--quiet", "--output", str(tested)]) == 0
    again = json.loads((tested / "test_report.json").read_text())   # the files read back
    assert again["test_accuracy"] == report["test_accuracy"]


def test_an_onnx_file_exports_through_n2prune_train_with_its_own_weights(residual, tmp_path,
                                                                         capsys):
    """``n2prune-train net.onnx -export ONNX`` (N2D2's ``n2d2 net.onnx -export ONNX``): no
    database and no trained run needed; the written graph computes what the imported one
    does."""
    output = tmp_path / "out"
    assert train_main([residual, "-export", "ONNX", "--output", str(output)]) == 0
    written = output / "export_ONNX_float32" / "residual.onnx"
    assert written.is_file(), capsys.readouterr()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(run_onnxruntime(str(written), x), run_onnxruntime(residual, x),
                          atol=1e-5, rtol=0)


def test_an_ini_without_a_database_section_warns_and_has_empty_sets(tmp_path, residual):
    """N2D2: no [database] section is a warning and an empty database."""
    ini = tmp_path / "net.ini"
    ini.write_text(f"[sp]\nSizeX=16\nSizeY=16\nNbChannels=3\n\n"
                   f"[onnx]\nInput=sp\nType=ONNX\nFile={residual}\n")
    with pytest.warns(UserWarning, match=r"no \[database\] section: an empty database"):
        provider = build_provider(ini_module.load(str(ini)))
    assert [provider.size(s) for s in ("Learn", "Validation", "Test")] == [0, 0, 0]
