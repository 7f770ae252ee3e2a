"""Small models exported with torch.onnx.export for the ONNX import tests, and a helper to run
an ONNX file in onnxruntime."""

import warnings

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """A residual block with BatchNorm, a depthwise conv with ReLU6, pooling and a Gemm head."""

    def __init__(self, channels=3, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(y + self.bn2(self.conv2(y)))
        y = F.max_pool2d(F.relu6(self.dw(y)), 2)
        y = torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)
        return torch.softmax(self.fc(y), 1)


class Mixed(nn.Module):
    """The other operators: LeakyRelu, Sigmoid, Tanh, AveragePool without counting padding,
    MaxPool in ceil mode, Concat, Pad, Resize, ReduceMean, arithmetic with constants and
    between tensors, a Shape-computed Reshape and a MatMul head."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 1)
        self.same = nn.Conv2d(8, 4, 2, padding="same")
        self.w = nn.Parameter(torch.randn(4 * 6 * 6, 6) * 0.1)

    def forward(self, x):
        a = F.leaky_relu(self.a(x), 0.2)
        b = torch.sigmoid(self.b(x)) * 0.5 + 0.25
        y = torch.cat([a, torch.tanh(b) - a], 1)
        y = F.avg_pool2d(y, 3, stride=2, padding=1, count_include_pad=False)
        y = F.interpolate(F.pad(y, (1, 0, 0, 1)), scale_factor=2.0, mode="nearest")
        y = F.max_pool2d(self.same(y), 3, stride=2, ceil_mode=True)
        y = y + y.mean((2, 3), keepdim=True)   # ReduceMean
        return y.view(y.size(0), -1) @ self.w


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` with random weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


def export(model: nn.Module, shape, path) -> str:
    """Export ``model`` for inputs ``(N, *shape)`` (dynamic batch), BatchNorm kept as nodes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *shape),), str(path), input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False,
                          do_constant_folding=False,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return str(path)


def run_onnxruntime(path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
