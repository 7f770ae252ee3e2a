"""Learning on several processes (``torchrun`` or ``n2prune-train --nproc N``) with
DistributedDataParallel, and the same masks on every rank.

Design (the trainer calls a :class:`Ranks`; with one process every call is the identity):

- **Global batch.** ``[sp] BatchSize`` stays the global batch. Every rank draws the *same*
  global batch indices from the same seeded generator (so the data order depends on the seed
  and the number of batches only, not on the number of processes: a checkpoint resumes on
  any number of them), then keeps its contiguous share (``torch.tensor_split``: sizes differ
  by one at most, so any batch works). Each rank's mean loss is weighted by
  ``local * world / global`` so that DDP's gradient average is the gradient of the global
  batch's mean loss, exactly what one process computes.
- **Identical masks by construction.** After DDP's all-reduce every rank holds the same
  gradients, so the optimiser gives bitwise the same weights; PruneCells are built from the
  same seed (Random fillers draw from identically seeded generators) and count *global*
  stimuli (the trainer passes the global batch size). Masks are therefore computed from
  identical inputs on every rank, with no per-step mask broadcast (which would double the
  traffic). A guard checks it: after each mask update and at each log point, a 64-bit
  digest of the raw bytes of every mask and weight is gathered, and a
  mismatch stops every rank with the cell's name — never a silent divergence.
- **Evaluation** is sharded: each rank runs its contiguous part of the set and the confusion
  matrices are summed, so every rank gets the same scores (and the same best log point).
- **Only rank 0 writes.** Rank 0 reads the checkpoint (or picks the time-based seed) and
  broadcasts it, so the other machines need no copy of the output folder. An error raised
  there is re-raised on every rank with the same message.
- **No hang.** Collectives time out after ``N2PRUNE_DIST_TIMEOUT`` seconds (default 600);
  the first rendezvous says what it waits for and gives up after it too
  (:mod:`n2prune.train.rendezvous`).

BatchNorm running statistics are updated per rank (as plain DDP); rank 0's are sent to the
others before each evaluation, so every rank evaluates the network rank 0 saves. Random
on-the-fly transformations draw, per batch and rank, from a generator seeded by (seed, batch,
rank).
"""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn

from n2prune.train.distributed_stats import reduce_statistics  # noqa: F401 (re-exported)
from n2prune.train.rendezvous import join_group

TIMEOUT_ENV = "N2PRUNE_DIST_TIMEOUT"


def world_from_env(environ: Optional[dict] = None) -> Tuple[int, int, int]:
    """(world size, rank, local rank) as ``torchrun`` sets them (1, 0, 0 without it)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ValueError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets "
                         "them)") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return world, rank, local


def timeout() -> datetime.timedelta:
    """How long a collective may wait for the other ranks."""
    text = os.environ.get(TIMEOUT_ENV, "600")
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ValueError(f"{TIMEOUT_ENV}={text!r}: must be a positive number of seconds")
    return datetime.timedelta(seconds=seconds)


class Ranks:
    """This process's place among the learning processes; see the module docstring."""

    def __init__(self, world: int = 1, rank: int = 0, local_rank: int = 0,
                 device: torch.device = torch.device("cpu"), owns_group: bool = False):
        self.world, self.rank, self.local_rank = world, rank, local_rank
        self.device, self.owns_group = device, owns_group
        self.global_n = self.local_n = 0
        self.weight = 1.0
        self._ddp: Optional[nn.Module] = None

    @classmethod
    def start(cls, device: str = "cpu") -> "Ranks":
        """Join the process group described by the environment (gloo on CPU, nccl on GPU);
        a single process without ``torchrun`` gets a no-op Ranks."""
        world, rank, local = world_from_env()
        if world == 1:
            return cls(device=torch.device(device))
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ValueError("--device cuda: no CUDA device is available here")
            torch.cuda.set_device(local)
            target, backend = torch.device("cuda", local), "nccl"
        else:
            target, backend = torch.device("cpu"), "gloo"
        owns = not dist.is_initialized()
        if owns:
            join_group(backend, world, rank, timeout().total_seconds(), TIMEOUT_ENV)
        from n2prune.prune.calibration import StatisticsCollector
        StatisticsCollector.reduce = staticmethod(reduce_statistics)  # every rank scores alike
        return cls(world, rank, local, target, owns)

    @property
    def writer(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    def close(self, synchronize: bool = True) -> None:
        """Leave the process group. After a success every rank first waits for the others, so
        no rank tears its connections down under a rank still finishing (gloo aborts it)."""
        if self.owns_group and dist.is_initialized():
            if synchronize and self.world > 1:
                dist.barrier()
            dist.destroy_process_group()
            self.owns_group = False

    # ------------------------------------------------------------------ set-up
    def from_writer(self, compute: Callable[[], Any]) -> Any:
        """``compute()`` on rank 0, its result on every rank; its error raised on every rank."""
        if self.world == 1:
            return compute()
        payload: List[Any] = [None]
        if self.writer:
            try:
                payload[0] = ("ok", compute())
            except (ValueError, OSError, RuntimeError) as exc:
                payload[0] = ("error", type(exc).__name__, str(exc))
        dist.broadcast_object_list(payload, src=0)
        if payload[0][0] == "error":
            _, kind, message = payload[0]
            raise (RuntimeError if kind == "RuntimeError" else ValueError)(message)
        return payload[0][1]

    def check_batch(self, batch_size: int) -> None:
        if batch_size < self.world:
            raise ValueError(f"[sp] BatchSize={batch_size} is the global batch and must be at "
                             f"least the number of processes ({self.world})")

    # ------------------------------------------------------------------ learning
    def local_batch(self, provider: Any, chosen: torch.Tensor, key: Tuple[int, int]):
        """This rank's share of the global batch ``chosen``; ``key`` (seed, batch number)
        seeds the on-the-fly transformations of this batch on this rank."""
        self.global_n = len(chosen)
        mine = torch.tensor_split(chosen, self.world)[self.rank]
        self.local_n = len(mine)
        if self.local_n == 0:  # fewer stimuli than ranks: a stand-in that weighs nothing
            mine, self.weight = chosen[:1], 0.0
        else:
            self.weight = self.local_n * self.world / self.global_n
        seed = (key[0] * 1_000_003 + key[1]) * 65_537 + self.rank
        generator = torch.Generator().manual_seed(seed % (2**63 - 1))
        return provider.batch("Learn", mine, generator)

    def counts(self, batch_len: int) -> Tuple[int, int]:
        """(stimuli of this rank that count, stimuli of the global batch)."""
        if self.world == 1:
            return batch_len, batch_len
        return self.local_n, self.global_n

    def forward(self, net: nn.Module, x: torch.Tensor, keep: Sequence[str]) -> Dict[Any, Any]:
        """``net.outputs(x, keep)``, through DistributedDataParallel when distributed."""
        if self.world == 1:
            return net.outputs(x, keep)
        if self._ddp is None:
            from torch.nn.parallel import DistributedDataParallel
            self._ddp = DistributedDataParallel(
                _Outputs(net, keep), **_no_buffer_sync(DistributedDataParallel),
                device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return dict(zip(self._ddp.module.keep, self._ddp(x)))

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The local mean loss weighted so that DDP's average is the global batch's mean."""
        return loss if self.weight == 1.0 else loss * self.weight

    def sum_numbers(self, values: Dict[str, float]) -> Dict[str, float]:
        """``values`` summed over the ranks (float64)."""
        if self.world == 1:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                         device=self._comm_device())
        dist.all_reduce(t)
        return {k: type(values[k])(v) for k, v in zip(keys, t.tolist())}

    # ------------------------------------------------------------------ evaluation
    def eval_batches(self, provider: Any, set_name: str, generator: torch.Generator,
                     batch_size: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Batches of this rank's contiguous part of ``set_name`` (the whole set alone)."""
        if self.world == 1:
            yield from provider.batches(set_name, generator=generator, batch_size=batch_size)
            return
        size = provider.size(set_name)
        start, stop = size * self.rank // self.world, size * (self.rank + 1) // self.world
        for first in range(start, stop, batch_size):
            index = torch.arange(first, min(first + batch_size, stop))
            yield provider.batch(set_name, index, generator)

    def sync_buffers(self, net: nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics, which each rank
        updates from its own share), so all ranks evaluate the network rank 0 saves.
        PruneCell buffers are left alone: masks are identical already and statistics are
        merged by their own rule."""
        if self.world == 1:
            return
        for name, buffer in net.named_buffers():
            if "quantizer." not in name:
                dist.broadcast(buffer, src=0)

    def reduce_confusion(self, confusion: Any) -> Any:
        """The confusion matrix summed over the ranks (in place)."""
        if self.world > 1:
            matrix = confusion.matrix.to(self._comm_device())
            dist.all_reduce(matrix)
            confusion.matrix = matrix.cpu()
        return confusion

    # ------------------------------------------------------------------ the guard
    def check_identical(self, net: nn.Module, when: str) -> None:
        """Stop every rank if a mask or a weight differs between the ranks (``when``: a few
        words for the message, e.g. "after a mask update")."""
        if self.world == 1:
            return
        names, sums = [], []
        for name, tensor in net.state_dict().items():
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() \
                    and (name.endswith(".mask") or name.endswith("weight")):
                names.append(name)
                sums.append(bit_checksum(tensor))
        mine = torch.stack(sums).to(self._comm_device()) if sums else \
            torch.zeros(1, 1, dtype=torch.int64, device=self._comm_device())
        gathered = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(gathered, mine)
        for rank, theirs in enumerate(gathered):
            differ = (theirs != gathered[0]).any(dim=-1)
            if bool(differ.any()):
                name = names[int(differ.nonzero()[0, 0])] if names else "?"
                raise RuntimeError(f"{name} differs between rank 0 and rank {rank} {when}: "
                                   f"the replicas diverged (a "
                                   f"non-deterministic filler, criterion or kernel?)")

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def bit_checksum(tensor: torch.Tensor) -> torch.Tensor:
    """A 64-bit digest (blake2b) of the raw bytes of ``tensor``: equal only for bitwise
    equal tensors, on any machine."""
    data = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy()
    digest = hashlib.blake2b(data.tobytes(), digest_size=8).digest()
    return torch.tensor([int.from_bytes(digest, "little", signed=True)], dtype=torch.int64)


def _no_buffer_sync(ddp_class: type) -> Dict[str, bool]:
    """DDP's option not to broadcast buffers before each forward (renamed in torch 2.13)."""
    import inspect
    if "forward_sync_buffers" in inspect.signature(ddp_class.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


class _Outputs(nn.Module):
    """``net.outputs(x, keep)`` as a forward returning a tuple (what DDP wraps)."""

    def __init__(self, net: nn.Module, keep: Sequence[str]):
        super().__init__()
        self.net, self.keep = net, tuple(keep)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outputs = self.net.outputs(x, self.keep)
        return tuple(outputs[name] for name in self.keep)
