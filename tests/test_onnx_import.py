"""Type=ONNX sections and ONNX files as networks: outputs equal onnxruntime's, imported
layers are n2prune cells that [onnx:Conv_def] QWeight=Prune prunes, the rest of the INI
connects to the graph's outputs."""

import pytest
import torch

pytest.importorskip("onnx", reason="ONNX import needs onnx (.[onnx])")
pytest.importorskip("onnxruntime", reason="the reference outputs need onnxruntime (.[onnx])")

from n2prune.cells import Conv, Fc  # noqa: E402
from n2prune.cells.batchnorm import BatchNorm  # noqa: E402
from n2prune.cli import info_main  # noqa: E402
from n2prune.network.build import load_network  # noqa: E402
from n2prune.prune.prunecell import PruneCell  # noqa: E402
from onnx_models import Mixed, Residual, export, randomized, run_onnxruntime  # noqa: E402

SP = "[sp]\nSizeX={x}\nSizeY={y}\nNbChannels={c}\nBatchSize=4\n\n"
ONNX = "[onnx]\nInput=sp\nType=ONNX\nFile={file}\n{extra}\n"


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    return export(randomized(Residual()), (3, 16, 16),
                  tmp_path_factory.mktemp("onnx") / "residual.onnx")


def write_ini(tmp_path, file, text="", shape=(3, 16, 16), extra=""):
    c, y, x = shape
    path = tmp_path / "net.ini"
    path.write_text(SP.format(x=x, y=y, c=c) + ONNX.format(file=file, extra=extra) + text)
    return path


def _same_as_onnxruntime(net, file, shape, batch=3):
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net.eval()(x)
    reference = run_onnxruntime(file, x)
    assert ours.shape == reference.shape
    assert torch.allclose(ours, reference, atol=1e-5, rtol=0), (ours - reference).abs().max()


def test_a_residual_block_with_batchnorm_depthwise_conv_and_gemm_head_matches_onnxruntime(
        tmp_path, residual):
    net = load_network(str(write_ini(tmp_path, residual)))
    _same_as_onnxruntime(net, residual, (3, 16, 16))
    cells = net.cells
    assert sum(isinstance(c, Conv) for c in cells.values()) == 3
    assert sum(isinstance(c, BatchNorm) for c in cells.values()) == 2
    assert isinstance(cells["/fc/Gemm_output_0"], Fc)
    assert cells["/dw/Conv_output_0"].groups == 8     # the depthwise convolution
    assert net.info["/Add_output_0"].type == "ElemWise"
    assert net.info["/Add_output_0"].inputs == ["/Relu_output_0",
                                                "/bn2/BatchNormalization_output_0"]


def test_an_onnx_file_given_as_the_network_builds_the_same_network(residual):
    net = load_network(residual)
    assert net.input_shape == (3, 16, 16)
    _same_as_onnxruntime(net, residual, (3, 16, 16))


def test_the_other_operators_match_onnxruntime(tmp_path):
    file = export(randomized(Mixed()), (3, 10, 10), tmp_path / "mixed.onnx")
    net = load_network(file)
    _same_as_onnxruntime(net, file, (3, 10, 10), batch=2)
    types = {info.type for info in net.info.values()}
    # asymmetric "same" padding of the even kernel: a Padding cell before the Conv (N2D2)
    assert {"Padding", "Resize", "Concat", "Reshape", "OnnxPool", "Fc"} <= types
    assert net.info["/same/Conv_output_0"].inputs == ["/same/Conv_output_0_padding"]
    assert net.info["/ReduceMean_output_0"].type == "Pool"        # a global average
    assert net.info["/Add_1_output_0"].type == "Add"              # (4, 6, 6) + (4, 1, 1)


def test_qweight_prune_in_the_conv_default_section_prunes_every_imported_conv(tmp_path,
                                                                              residual):
    text = ("[onnx:Conv_def]\nQWeight=Prune\nQWeight.PruningMode=Static\n"
            "QWeight.PruningFiller=Magnitude\nQWeight.Threshold=0.5\n")
    net = load_network(str(write_ini(tmp_path, residual, text)))
    pruned = net.pruned_cells()
    assert list(pruned) == ["/conv1/Conv_output_0", "/conv2/Conv_output_0",
                            "/dw/Conv_output_0"]
    for cell in pruned.values():
        assert isinstance(cell.quantizer, PruneCell)
        weight = cell.effective_weight()
        assert abs(float((weight == 0).float().mean()) - 0.5) < 0.02
        kept = weight[weight != 0].abs().min()   # Magnitude: the largest half is kept
        assert kept >= cell.weight[weight == 0].abs().max()
    assert getattr(net.cells["/fc/Gemm_output_0"], "quantizer", None) is None


def test_the_fc_default_section_and_a_per_layer_section_configure_their_cells(tmp_path,
                                                                             residual):
    text = ("[onnx:Conv_def]\nQWeight=Prune\nQWeight.PruningMode=Static\n"
            "QWeight.PruningFiller=Magnitude\nQWeight.Threshold=0.5\n"
            "[/conv2/Conv_output_0]onnx:Conv_def\nQWeight.Threshold=0.25\n"
            "[onnx:Fc_def]\nQWeight=Prune\nQWeight.PruningMode=Static\n"
            "QWeight.PruningFiller=Magnitude\nQWeight.Threshold=0.75\n"
            "WeightsSolver.LearningRate=0.5\nWeightsSolver=SGD\n")
    net = load_network(str(write_ini(tmp_path, residual, text)))
    thresholds = {name: cell.quantizer.threshold for name, cell in net.pruned_cells().items()}
    assert thresholds == {"/conv1/Conv_output_0": 0.5, "/conv2/Conv_output_0": 0.25,
                          "/dw/Conv_output_0": 0.5, "/fc/Gemm_output_0": 0.75}
    solver = net.info["/fc/Gemm_output_0"].solvers["weight"]
    assert solver.type == "SGD" and solver.kwargs()["learning_rate"] == 0.5


def test_onnx_init_0_fills_the_weights_from_the_default_section(tmp_path, residual):
    text = "[onnx:Conv_def]\nWeightsFiller=ConstantFiller\nWeightsFiller.Value=0.25\n"
    net = load_network(str(write_ini(tmp_path, residual, text, extra="ONNX_init=0")))
    assert torch.all(net.cells["/conv1/Conv_output_0"].weight == 0.25)
    bn = net.cells["/bn1/BatchNormalization_output_0"]
    assert torch.all(bn.weight == 1) and torch.all(bn.running_mean == 0)  # not the file's
    imported = load_network(str(write_ini(tmp_path, residual, text)))   # ONNX_init=1
    assert not torch.all(imported.cells["/conv1/Conv_output_0"].weight == 0.25)


def test_ini_cells_connect_to_an_onnx_output_and_ignore_drops_the_head(tmp_path, residual):
    text = ("[fc]\nInput=onnx,/GlobalAveragePool_output_0\nType=Fc\nNbOutputs=7\n"
            "[softmax]\nInput=fc\nType=Softmax\nNbOutputs=7\n[softmax.Target]\n")
    with pytest.warns(UserWarning, match=r"net.ini:11: \[onnx\] Ignore: 1 node\(s\) read an "
                                         r"ignored output and are left out too: output"):
        net = load_network(str(write_ini(tmp_path, residual, text,
                                         extra="Ignore=/fc/Gemm_output_0")))
    assert "/fc/Gemm_output_0" not in net.cells and "output" not in net.cells
    assert net.info["fc"].inputs == ["/GlobalAveragePool_output_0"]
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 7)
    assert [t.cell for t in net.targets] == ["softmax"]


def test_input_naming_only_the_onnx_section_takes_its_last_cell(tmp_path, residual):
    text = "[scale]\nInput=onnx\nType=Scaling\nNbOutputs=5\nFactor=2\n[output.Target]\n"
    net = load_network(str(write_ini(tmp_path, residual, text))).eval()
    assert net.info["scale"].inputs == ["output"]
    assert [t.cell for t in net.targets] == ["output"]   # a target on an imported cell
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(x), 2 * run_onnxruntime(residual, x), atol=1e-5)


def test_n2prune_info_describes_an_onnx_file(residual, capsys):
    assert info_main([residual]) == 0
    out = capsys.readouterr().out
    assert "/dw/Conv_output_0" in out and "Conv" in out and "13 cells" in out


def test_n2d2_transfer_sections_freeze_batchnorm_and_name_a_layer_with_the_onnx_prefix(
        tmp_path, residual):
    text = ("[onnx:BatchNorm_def]\nConfigSection=bn_notrain.config\n"
            "[bn_notrain.config]\nMovingAverageMomentum=0.0\n"
            "[onnx:/conv2/Conv_output_0]\nQWeight=Prune\nQWeight.PruningMode=Static\n"
            "QWeight.Threshold=0.25\n")
    net = load_network(str(write_ini(tmp_path, residual, text)))
    bn = net.cells["/bn1/BatchNormalization_output_0"]
    assert bn.moving_average_momentum == 0.0       # the file's momentum is 0.9 (0.1 in N2D2)
    mean = bn.running_mean.clone()
    net.train()(torch.randn(4, 3, 16, 16))
    assert torch.equal(bn.running_mean, mean)       # statistics frozen while fine-tuning
    assert list(net.pruned_cells()) == ["/conv2/Conv_output_0"]


def test_channel_pruned_imported_convolutions_compact_through_the_residual(tmp_path, residual):
    from n2prune.compact.compaction import compact
    text = ("[onnx:Conv_def]\nQWeight=Prune\nQWeight.PruningMode=Static\n"
            "QWeight.PruningFiller=Magnitude\nQWeight.PruningPattern=Channel\n"
            "QWeight.Threshold=0.5\n")
    net = load_network(str(write_ini(tmp_path, residual, text))).eval()
    small = compact(net)
    kept = small.info["/Add_output_0"].output_shape[0]   # the residual ties conv1 and conv2
    assert 4 <= kept < 8
    assert small.cells["/fc/Gemm_output_0"].weight.shape == (5, kept)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(small(x), net(x), atol=1e-5)
