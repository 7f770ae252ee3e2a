"""SparseGPT's one-layer solver: prune a weight matrix and update the survivors (pure maths).

Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One
Shot". Given a layer's weight ``W`` [rows, cols] and the Hessian of its reconstruction error
``H = 2/n Σ x xᵀ`` over calibration inputs (:mod:`n2prune.prune.sparsegpt.hessian`), ``obs_prune``
removes weights and compensates each removal on the not yet visited columns with the optimal
brain surgeon update, so that ``‖(W − Ŵ) X‖`` stays small:

- ``H`` gets ``damp · mean(diag H)`` added to its diagonal; an input that never fired
  (``H_ii = 0``) gets ``H_ii = 1`` and its weights are zeroed, as in the paper's code;
- ``U``, the upper Cholesky factor of ``H⁻¹`` (``H⁻¹ = Uᵀ U``), gives every step's inverse
  Hessian restricted to the remaining columns: row ``q`` of ``U`` divided by ``U_qq`` is
  ``H_F⁻¹[q, :] / [H_F⁻¹]_qq`` with ``F = {q, q+1, ...}``;
- columns are visited left to right in blocks of ``blocksize``; a block's mask is chosen when
  the block starts, from the saliency ``w² / U_cc²`` of the weights as updated so far
  (unstructured), or when each N:M group starts (N:M); each pruned weight's error is spread
  over the rest of its block at once, and the block's errors over the columns right of it in
  one matrix product (the paper's lazy batch update).

Unstructured: as in the paper's code, a block's weights are ranked all rows together, so rows
end with different counts; we prune ``round(sparsity · rows · c)`` weights in the first ``c``
columns at every block end, which makes the layer's count exact (``round(sparsity · rows ·
cols)``) where the reference prunes one more per block. N:M: every group of ``m`` consecutive
columns loses ``max(m − n, ⌈sparsity · m⌉)`` weights in each row (none when ``sparsity`` is 0),
the N:M pattern's rule (:class:`n2prune.prune.patterns.NofM`); groups restart every
``segment`` columns (a convolution's input channels), a short last group counts its missing
members as pruned. Ties go to the lower index. Everything runs in float64: the solver's
Cholesky factorisations and its long chain of rank-one updates stay exact to ~1e-12, and the
matrices are one layer's (``cols²``), so the cost is small next to the forward passes.

>>> import torch
>>> w = torch.tensor([[1.0, 0.1, 2.0, -0.2]])
>>> new, keep = obs_prune(w, torch.eye(4), 0.5)
>>> keep.tolist(), new.tolist()
([[True, False, True, False]], [[1.0, 0.0, 2.0, 0.0]])
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

from n2prune.prune.patterns import NofM

__all__ = ["inverse_hessian_factor", "obs_prune"]


def inverse_hessian_factor(hessian: torch.Tensor, damp: float = 0.01) -> Tuple[torch.Tensor,
                                                                                torch.Tensor]:
    """``(U, dead)``: the upper Cholesky factor of the dampened ``H⁻¹`` (float64) and the
    inputs whose ``H_ii`` was 0 (given ``H_ii = 1`` before dampening)."""
    h = hessian.detach().to(torch.float64).clone()
    diag = h.diagonal()
    dead = diag == 0
    diag[dead] = 1.0
    diag += damp * float(diag.mean())
    # H = R Rᵀ with R upper (the Cholesky factor of H with its index order reversed), so
    # H⁻¹ = R⁻ᵀ R⁻¹ and R⁻¹ is H⁻¹'s upper factor: one factorisation and one triangular inverse
    lower, info = torch.linalg.cholesky_ex(h.flip(0, 1))
    if int(info):
        raise ValueError(f"SparseGPT: the dampened Hessian is not positive definite (damp={damp}); "
                         f"use a larger damp (the paper uses 0.01) or more calibration data")
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    upper = torch.linalg.solve_triangular(lower.flip(0, 1), eye, upper=True)
    return upper, dead


def _check(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float, n: Optional[int],
           m: Optional[int], blocksize: int, damp: float, segment: int) -> None:
    if weight.dim() != 2:
        raise ValueError(f"obs_prune: weight must be [rows, cols], got shape {tuple(weight.shape)}")
    cols = weight.shape[1]
    if tuple(hessian.shape) != (cols, cols):
        raise ValueError(f"obs_prune: hessian must be [{cols}, {cols}] for a weight with {cols} "
                         f"columns, got shape {tuple(hessian.shape)}")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"obs_prune: sparsity={sparsity} must be in [0, 1)")
    if (n is None) != (m is None):
        raise ValueError(f"obs_prune: give both n and m for N:M (got n={n}, m={m})")
    if n is not None and not (isinstance(n, int) and isinstance(m, int) and 0 <= n <= m
                              and m > 0):
        raise ValueError(f"obs_prune: N:M needs integers 0 <= n <= m, m > 0 (got n={n}, m={m})")
    if not (isinstance(blocksize, int) and blocksize > 0):
        raise ValueError(f"obs_prune: blocksize={blocksize!r} must be a positive integer")
    if not (float(damp) >= 0.0 and math.isfinite(damp)):
        raise ValueError(f"obs_prune: damp={damp!r} must be a finite number >= 0")
    if not (isinstance(segment, int) and segment > 0 and cols % segment == 0):
        raise ValueError(f"obs_prune: segment={segment!r} must be a positive divisor of "
                         f"cols={cols}")


def _nm_groups(cols: int, m: int, segment: int) -> List[Tuple[int, int]]:
    """(start, end) of every N:M group: runs of m columns, restarting every ``segment``."""
    return [(s, min(s + m, seg + segment)) for seg in range(0, cols, segment)
            for s in range(seg, seg + segment, m)]


def _blocks(cols: int, blocksize: int, groups: Optional[List[Tuple[int, int]]]
            ) -> List[Tuple[int, int]]:
    """Column blocks of ``blocksize``; with N:M groups, a block ends on a group's end."""
    if groups is None:
        return [(i, min(i + blocksize, cols)) for i in range(0, cols, blocksize)]
    blocks, start = [], 0
    for _, end in groups:
        if end - start >= blocksize or end == cols:
            blocks.append((start, end))
            start = end
    return blocks


def _lowest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Bool mask of the ``count`` lowest entries of ``scores`` (ties: lower flat index);
    a selection, not a sort (the block's sort was the solver's largest cost after the
    factorisation)."""
    flat = scores.reshape(-1)
    if count <= 0:
        return torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    if count >= flat.numel():
        return torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    threshold = torch.kthvalue(flat, count).values
    prune = flat < threshold
    ties = torch.nonzero(flat == threshold).flatten()
    prune[ties[:count - int(prune.sum())]] = True
    return prune.reshape(scores.shape)


def _rounded(sparsity: float, weights: int) -> int:
    return int(math.floor(sparsity * weights + 0.5))


def obs_prune(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float,
              n: Optional[int] = None, m: Optional[int] = None, blocksize: int = 128,
              damp: float = 0.01, segment: Optional[int] = None
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(new_weight, keep_mask)``: ``weight`` [rows, cols] pruned by SparseGPT, its survivors
    updated; ``new_weight`` has ``weight``'s dtype and is exactly 0 where ``keep_mask`` is False.

    ``sparsity`` is the fraction pruned (unstructured) or, with ``n`` and ``m``, raises each
    N:M group's count above ``m − n``; ``segment`` (default ``cols``) is where N:M groups
    restart. Deterministic: the same inputs give the same bits on the same machine and threads.
    """
    rows, cols = weight.shape if weight.dim() == 2 else (0, 0)
    segment = cols if segment is None else segment
    _check(weight, hessian, sparsity, n, m, blocksize, damp, segment)
    upper, dead = inverse_hessian_factor(hessian, damp)
    w = weight.detach().to(torch.float64).clone()
    w[:, dead] = 0.0
    keep = torch.ones(w.shape, dtype=torch.bool, device=w.device)
    groups = None if n is None else _nm_groups(cols, m, segment)
    lose = 0 if n is None else NofM(n=n, m=m).pruned_per_group(sparsity)
    group_end = {} if groups is None else dict(groups)
    for i1, i2 in _blocks(cols, blocksize, groups):
        block, u = w[:, i1:i2].clone(), upper[i1:i2, i1:i2]
        d = u.diagonal()
        errors = torch.zeros_like(block)
        if n is None:
            count = _rounded(sparsity, rows * i2) - _rounded(sparsity, rows * i1)
            prune = _lowest(block.square() / d.square(), count)
        else:
            prune = torch.zeros_like(block, dtype=torch.bool)
        for i in range(i2 - i1):
            end = group_end.get(i1 + i)
            if end is not None and lose:
                width = end - i1 - i
                missing = m - width  # a short last group: its missing members count as pruned
                if lose > missing:
                    saliency = block[:, i:i + width].square() / d[i:i + width].square()
                    order = torch.sort(saliency, dim=1, stable=True).indices[:, :lose - missing]
                    prune[:, i:i + width].scatter_(1, order, True)
            col = block[:, i]
            kept = torch.where(prune[:, i], torch.zeros_like(col), col)
            err = (col - kept) / d[i]
            block[:, i:] -= err[:, None] * u[i, i:][None, :]
            block[:, i] = kept  # exactly 0 where pruned, whatever the rounding
            errors[:, i] = err
        w[:, i1:i2] = block
        keep[:, i1:i2] = ~prune
        if i2 < cols:
            w[:, i2:] -= errors @ upper[i1:i2, i2:]
    return w.to(weight.dtype), keep

