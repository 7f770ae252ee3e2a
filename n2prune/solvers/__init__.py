"""N2D2's solvers as ``torch.optim.Optimizer`` subclasses (spec §3), keyed by ``Solvers.Type=``.

Gradient convention. N2D2's solvers receive the diff ``D = -sum over the batch of dL/dw``.
PyTorch's ``p.grad`` is the gradient of the caller's loss, which must be the MEAN over the
batch (``CrossEntropyLoss(reduction='mean')``, as N2D2's targets amount to, spec §2.10).
So ``D = -B * p.grad`` and both optimizers take the batch size B:

- SGD: ``r = rate / (B * IterationSize)`` applied to D is ``-rate / IterationSize * p.grad``,
  i.e. exactly lr times the mean gradient.
- Adam: D is NOT divided by B in N2D2, so B changes the result (through epsilon only).

Use the ordinary loop ``zero_grad(); loss.backward(); step()`` every batch, also with
``IterationSize > 1``: the SGD optimizer keeps its own running sum of the gradients of the
skipped passes (N2D2 accumulates its diff buffer instead), so grads may be zeroed freely.

Each parameter group carries its hyper-parameters (python argument names, as in ``SGD_KEYS``)
and its counters (SGD: ``it``, ``pass``; Adam: ``steps``; both: ``current_lr``, the rate used
by the last ``step()``, 0 when it was skipped), so ``state_dict()`` resumes exactly. Put
weights and biases in two groups when their N2D2 solvers differ (``WeightsSolver.*`` /
``BiasSolver.*``). A parameter whose ``grad`` is None is treated as having a zero gradient:
N2D2 updates every tensor every batch, so decay and momentum still move it. Masked (pruned)
weights are not special: their gradient is zero, but decay still shrinks them (spec §4.4).

Deliberate differences: arguments are validated at construction (N2D2 accepts a negative
momentum, reads ``Clamping`` sides with ``atof`` and fails on a zero step size only at the
first update); the scalars (rate, r) are doubles rounded once by torch, where N2D2's CPU
solver rounds them to float first; the ``-find-lr`` global rate override is not provided.

Modules: ``base`` (the ``SOLVERS`` registry, argument checks, clamping, the shared
``Solver`` base, ``describe``), ``sgd``, ``adam``, ``lr_policies`` (``LR_POLICIES``).
"""

from n2prune.solvers.base import SOLVERS, Solver, describe, parse_clamping, read_clamping
from n2prune.solvers.lr_policies import LR_POLICIES
from n2prune.solvers.sgd import SGD_KEYS, N2D2SGD  # registered first: N2D2's default solver
from n2prune.solvers.adam import ADAM_KEYS, N2D2Adam  # noqa: E402  (after sgd, on purpose)

__all__ = ["ADAM_KEYS", "LR_POLICIES", "N2D2Adam", "N2D2SGD", "SGD_KEYS", "SOLVERS", "Solver",
           "describe", "parse_clamping", "read_clamping"]
