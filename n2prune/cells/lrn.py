"""LRN: N2D2's local response normalization across channels (spec §2.7).

y_c = x_c / (K + Alpha/N · Σ_{j = c-⌊N/2⌋}^{c+⌊N/2⌋} x_j²)^Beta, the window clipped to the
existing channels. Alpha is **divided by N**: N2D2's ``Frame_CUDA`` model hands N, Alpha, Beta
and K to cuDNN, which divides Alpha by the window width (as Caffe and
``torch.nn.LocalResponseNorm`` do), and most models use ``Frame_CUDA``. N2D2's CPU ``Frame``
model has no backward and its forward does not square the inputs (a bug), so it is not
followed. For odd N (the default 5) this equals ``torch.nn.functional.local_response_norm``;
for even N the window is the N+1 channels [c-N/2, c+N/2] as the spec writes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.base import CELLS, BuildContext
from n2prune.cells.inputs import (concat, read_nb_outputs, read_params, same_size,
                                  total_channels, warn_params_in_section)
from n2prune.ini.params import Key
from n2prune.ini.values import read_float, read_uint


def local_response_norm(x: torch.Tensor, n: int, alpha: float, beta: float,
                        k: float) -> torch.Tensor:
    """Cross-channel LRN of an NCHW tensor, window [c - n//2, c + n//2], alpha / n."""
    half = n // 2
    squares = F.pad((x * x).unsqueeze(1), (0, 0, 0, 0, half, half))      # N, 1, C+2h, H, W
    window_sum = F.avg_pool3d(squares, (2 * half + 1, 1, 1), stride=1).squeeze(1)
    window_sum = window_sum * (2 * half + 1)
    return x / (k + alpha / n * window_sum).pow(beta)


class LRN(nn.Module):
    """Local response normalization across channels (parameters from the ConfigSection)."""

    PARAMS = (Key("N", "n", read_uint, 5), Key("Alpha", "alpha", read_float, 1e-4),
              Key("Beta", "beta", read_float, 0.75), Key("K", "k", read_float, 2.0))

    def __init__(self, nb_outputs: int, n: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 2.0):
        super().__init__()
        if n < 1:
            raise ValueError(f"LRN: n must be >= 1, got {n!r}")
        self.nb_outputs, self.n = nb_outputs, int(n)
        self.alpha, self.beta, self.k = float(alpha), float(beta), float(k)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return local_response_norm(concat(inputs), self.n, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.nb_outputs}, n={self.n}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


@CELLS.register("LRN")
def build_lrn(ctx: BuildContext):
    """[cell] Type=LRN: NbOutputs; config: N, Alpha, Beta, K."""
    nb_outputs = read_nb_outputs(ctx, total_channels(ctx.input_shapes), "the inputs' channels")
    height, width = same_size(ctx)
    warn_params_in_section(ctx, [key.ini for key in LRN.PARAMS])
    try:
        module = LRN(nb_outputs, **read_params(ctx, LRN.PARAMS))
    except ValueError as exc:
        raise ctx.config_error("N", str(exc)) from None
    return module, (nb_outputs, height, width)
