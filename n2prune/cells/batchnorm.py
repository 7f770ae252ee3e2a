"""BatchNorm: N2D2's batch normalization cell (spec §2.7), per channel, with an activation.

Parameters (ConfigSection): ``Epsilon`` 1e-5, ``MovingAverageMomentum`` 0.1 (in [0, 1)),
``BackPropagate`` 1. Running statistics follow ``running = m·batch + (1-m)·running`` with the
unbiased batch variance, as PyTorch; they start at **0 for the mean and 0 for the variance**
(N2D2's initial values, unlike PyTorch's 1). With ``m = 0`` the running statistics are used
in training too (N2D2 then never computes batch statistics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from n2prune.cells.activation_functions import ActivatedCell, build_activation
from n2prune.cells.base import CELLS, BuildContext, tensor_of
from n2prune.errors import ConfigError
from n2prune.cells.inputs import (concat, read_nb_outputs, read_params, same_size,
                                  total_channels, warn_params_in_section)
from n2prune.ini.params import Key
from n2prune.ini.values import read_bool, read_float


class BatchNorm(ActivatedCell):
    """y = act(weight·(x - mean)/sqrt(var + eps) + bias); inputs' channels concatenated.

    ``weight`` (N2D2's scales, start 1) and ``bias`` (start 0) are learned;
    ``running_mean`` and ``running_var`` are buffers.
    """

    PARAMS = (Key("Epsilon", "epsilon", read_float, 1e-5),
              Key("MovingAverageMomentum", "moving_average_momentum", read_float, 0.1),
              Key("BackPropagate", "back_propagate", read_bool, True))

    def __init__(self, nb_outputs: int, epsilon: float = 1e-5,
                 moving_average_momentum: float = 0.1, activation=None,
                 back_propagate: bool = True):
        super().__init__()
        if not 0.0 <= moving_average_momentum < 1.0:
            raise ValueError(f"BatchNorm: moving_average_momentum must be in [0, 1), got "
                             f"{moving_average_momentum!r}")
        if epsilon < 0:
            raise ValueError(f"BatchNorm: epsilon must be >= 0, got {epsilon!r}")
        self.nb_outputs, self.epsilon = nb_outputs, float(epsilon)
        self.moving_average_momentum = float(moving_average_momentum)
        self.back_propagate = bool(back_propagate)
        self.activation = activation
        self.weight = nn.Parameter(torch.ones(nb_outputs))
        self.bias = nn.Parameter(torch.zeros(nb_outputs))
        self.register_buffer("running_mean", torch.zeros(nb_outputs))
        self.register_buffer("running_var", torch.zeros(nb_outputs))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else concat(inputs)
        if not self.back_propagate:
            x = x.detach()
        if self.training and self.moving_average_momentum != 0.0:
            y = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                             training=True, momentum=self.moving_average_momentum,
                             eps=self.epsilon)
        else:  # what F.batch_norm calls, without its Python checks (they are for training)
            y = torch.batch_norm(x, tensor_of(self, "weight"), tensor_of(self, "bias"),
                                 tensor_of(self, "running_mean"), tensor_of(self, "running_var"),
                                 False, self.moving_average_momentum,
                                 self.epsilon, torch.backends.cudnn.enabled)
        return self.activate(y, owned=True)

    def extra_repr(self) -> str:
        return (f"{self.nb_outputs}, epsilon={self.epsilon}, "
                f"moving_average_momentum={self.moving_average_momentum}")


@CELLS.register("BatchNorm")
def build_batchnorm(ctx: BuildContext):
    """[cell] Type=BatchNorm: NbOutputs (= channels), ActivationFunction; config: Epsilon..."""
    nb_outputs = read_nb_outputs(ctx, total_channels(ctx.input_shapes), "the inputs' channels")
    height, width = same_size(ctx)
    warn_params_in_section(ctx, [key.ini for key in BatchNorm.PARAMS])
    params = read_params(ctx, BatchNorm.PARAMS)
    try:
        module = BatchNorm(nb_outputs, activation=build_activation(ctx.section), **params)
    except ConfigError:
        raise  # the activation's own located error
    except ValueError as exc:
        key = "Epsilon" if "epsilon" in str(exc) else "ActivationFunction" \
            if "activation" in str(exc) else "MovingAverageMomentum"
        raise ctx.config_error(key, str(exc)) from None
    return module, (nb_outputs, height, width)
