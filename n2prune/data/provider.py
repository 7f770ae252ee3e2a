"""StimuliProvider: a database's sets through the transformations, served in batches.

Per set (spec §5.3): the cacheable transformations run once, in file order, over the whole
set and the result is kept as one contiguous tensor; per batch, the on-the-fly ones run in
file order, then N2D2's implicit [0, 1] normalisation when the data is still integer
(spec §5.2). A set without on-the-fly transformations is cached already normalised, so a
batch is one slice or index_select. The training state (the generator) stays with the
caller, so a resumed run draws the same batches.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from n2prune.data.databases import Database
from n2prune.data.exceptions import TransformationError
from n2prune.data.partition import SET_NAMES
from n2prune.data.transforms import Transformation, applies_to, range_affine

Step = Tuple[Transformation, bool, str]   # (transformation, on_the_fly, apply_to)
Stimuli = Union[torch.Tensor, List[torch.Tensor]]
_CHUNK = 4096   # images per cacheable pass: bounds the float temporaries


def as_tensor(images: Union[np.ndarray, Sequence[np.ndarray]]) -> Stimuli:
    """OpenCV-layout images [N, H, W, C] (or a list of [H, W, C]) as NCHW tensors."""
    if isinstance(images, np.ndarray):
        return _from_numpy(images).permute(0, 3, 1, 2)
    return [_from_numpy(image).permute(2, 0, 1)[None] for image in images]


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    if array.dtype == np.uint16:   # torch's uint16 lacks most ops; int32 holds it exactly
        array = array.astype(np.int32)
    return torch.from_numpy(np.ascontiguousarray(array))


def unity(dtype: np.dtype, signed_mapping: bool) -> Optional[Tuple[float, float]]:
    """N2D2's implicit normalisation (a, b) of ``(x + a) / b`` for integer data, else None."""
    if np.dtype(dtype).kind not in "ui":
        return None
    bits = 8 * np.dtype(dtype).itemsize
    if signed_mapping:
        return -float(2 ** (bits - 1)), float(2 ** (bits - 1))
    return 0.0, float(np.iinfo(dtype).max)


def normalise(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """``(x + a) / b`` as N2D2's appended RangeAffine computes it, in float32."""
    return range_affine(range_affine(x.to(torch.float32), "Plus", [a]), "Divides", [b])


def run(steps: Sequence[Transformation], x: Stimuli,
        generator: Optional[torch.Generator]) -> Stimuli:
    """Apply ``steps`` in order to a batch, or image by image to a list of sizes."""
    if isinstance(x, list):
        out = [run(steps, image, generator) for image in x]
        if out and len({tuple(o.shape[1:]) for o in out}) == 1 \
                and len({o.dtype for o in out}) == 1:
            return torch.cat(out)
        return out
    for step in steps:
        try:
            x = step(x, generator)
        except TransformationError:
            raise
        except ValueError as error:
            raise TransformationError(step, str(error)) from None
    return x


def run_chunked(steps: Sequence[Transformation], x: Stimuli,
                generator: Optional[torch.Generator]) -> Stimuli:
    """``run`` over a big set in chunks, concatenated into one contiguous tensor."""
    if isinstance(x, list) or not steps:
        out = run(steps, x, generator)
        return out.contiguous() if isinstance(out, torch.Tensor) else out
    return torch.cat([run(steps, x[i:i + _CHUNK], generator)
                      for i in range(0, len(x), _CHUNK)]).contiguous()


class StimuliProvider:
    """Batches of float32 [N, C, H, W] stimuli and int64 labels from a database.

    ``transformations`` lists (transformation, on_the_fly, apply_to) in file order. ``seed``
    seeds the draws of random transformations placed in cacheable sections, which N2D2
    draws once and caches. ``device`` holds the cached sets (e.g. on the GPU).
    """

    def __init__(self, database: Database, nb_channels: int, size_y: int, size_x: int,
                 batch_size: int = 1, transformations: Sequence[Step] = (), seed: int = 0,
                 data_signed_mapping: bool = False,
                 device: Union[str, torch.device, None] = None):
        for name, value in (("nb_channels", nb_channels), ("size_y", size_y),
                            ("size_x", size_x), ("batch_size", batch_size)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.database = database
        self.shape = (nb_channels, size_y, size_x)
        self.batch_size = batch_size
        self.transformations = [tuple(step) for step in transformations]
        self.data_signed_mapping = data_signed_mapping
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        cache_generator = torch.Generator().manual_seed(seed)
        self._cache: Dict[str, Stimuli] = {}
        self._labels: Dict[str, torch.Tensor] = {}
        self._on_the_fly: Dict[str, List[Transformation]] = {}
        self._normalisation: Dict[str, Optional[Tuple[float, float]]] = {}
        for set_name in SET_NAMES:
            self._prepare(set_name, cache_generator)

    def steps(self, set_name: str, on_the_fly: bool) -> List[Transformation]:
        """The cacheable or on-the-fly transformations of ``set_name``, in file order."""
        return [t for t, fly, apply_to in self.transformations
                if fly == on_the_fly and applies_to(apply_to, set_name)]

    def _prepare(self, set_name: str, generator: torch.Generator) -> None:
        stimuli = self.database[set_name]
        self._labels[set_name] = torch.from_numpy(
            np.asarray(stimuli.labels, dtype=np.int64)).to(self.device)
        on_the_fly = self.steps(set_name, True)
        if len(stimuli) == 0:
            self._cache[set_name] = torch.empty((0,) + self.shape, device=self.device)
            self._on_the_fly[set_name], self._normalisation[set_name] = [], None
            return
        dtype = _images_dtype(stimuli.images)
        x = run_chunked(self.steps(set_name, False), as_tensor(stimuli.images), generator)
        out_dtype = _out_dtype(x, on_the_fly)
        norm = unity(dtype, self.data_signed_mapping) if not out_dtype.is_floating_point \
            else None
        if on_the_fly:   # check the shape on one stimulus, with a throwaway generator
            first = x[:1] if isinstance(x, torch.Tensor) else x[0]
            sample = run(on_the_fly, first, torch.Generator().manual_seed(0))
            self._check_shape(set_name, tuple(sample.shape[1:]))
        else:
            for image in (x if isinstance(x, list) else [x]):
                self._check_shape(set_name, tuple(image.shape[1:]))
            x = normalise(x, *norm) if norm else x.to(torch.float32)
            norm = None   # applied to the cache once and for all
        if isinstance(x, torch.Tensor):
            x = x.to(self.device)
        self._cache[set_name] = x
        self._on_the_fly[set_name], self._normalisation[set_name] = on_the_fly, norm

    def _check_shape(self, set_name: str, shape: Tuple[int, ...]) -> None:
        if shape != self.shape:
            c, h, w = self.shape
            raise ValueError(
                f"the {set_name} stimuli come out of the transformations as "
                f"{_shape_text(shape)} but [sp] expects NbChannels={c}, SizeY={h}, "
                f"SizeX={w}; add a Rescale/PadCrop/ChannelExtraction/ColorSpace "
                f"transformation or change [sp]")

    def size(self, set_name: str) -> int:
        """Number of stimuli in ``set_name``."""
        return self.database.size(set_name)

    @property
    def epoch_size(self) -> int:
        """|Learn|, N2D2's ``[sp]_EpochSize``."""
        return self.size("Learn")

    @property
    def nb_labels(self) -> int:
        return self.database.nb_labels

    def batches(self, set_name: str, shuffle: bool = False,
                generator: Optional[torch.Generator] = None,
                batch_size: Optional[int] = None
                ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """(stimuli, labels) batches over the whole set, the last one possibly partial.

        ``shuffle`` draws a permutation from ``generator``; random on-the-fly
        transformations draw from it too.
        """
        size, step = self.size(set_name), batch_size or self.batch_size
        if shuffle and generator is None:
            raise ValueError("batches(shuffle=True) needs a torch.Generator")
        order = torch.randperm(size, generator=generator) if shuffle else None
        for start in range(0, size, step):
            index = order[start:start + step] if order is not None else \
                slice(start, min(start + step, size))
            yield self._batch(set_name, index, generator)

    def random_batch(self, set_name: str, generator: torch.Generator,
                     batch_size: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """A full batch of stimuli drawn uniformly with replacement (N2D2's
        ``readRandomBatch``, which its learning loop uses)."""
        size = self.size(set_name)
        if size == 0:
            raise ValueError(f"the {set_name} set is empty")
        index = torch.randint(0, size, (batch_size or self.batch_size,), generator=generator)
        return self._batch(set_name, index, generator)

    def batch(self, set_name: str, index: torch.Tensor,
              generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """The stimuli at ``index`` (int64 tensor) of ``set_name``, transformed."""
        return self._batch(set_name, index, generator)

    def _batch(self, set_name: str, index, generator) -> Tuple[torch.Tensor, torch.Tensor]:
        cache, labels = self._cache[set_name], self._labels[set_name]
        if isinstance(index, torch.Tensor) and index.device != self.device:
            index = index.to(self.device)  # (a call per batch saved where it is already)
        if isinstance(cache, list):
            picked = range(len(cache))[index] if isinstance(index, slice) else index.tolist()
            x = run(self._on_the_fly[set_name], [cache[i] for i in picked], generator)
            if isinstance(x, list):
                raise ValueError(f"the {set_name} stimuli have different sizes after the "
                                 f"transformations")
            x = x.to(self.device)
        else:
            x = cache[index] if isinstance(index, slice) else cache.index_select(0, index)
            x = run(self._on_the_fly[set_name], x, generator)
        norm = self._normalisation[set_name]
        if norm is not None:
            x = normalise(x, *norm)
        elif x.dtype != torch.float32:
            x = x.to(torch.float32)
        return x, labels[index]

    def __repr__(self) -> str:
        c, h, w = self.shape
        sizes = ", ".join(f"{name} {self.size(name)}" for name in SET_NAMES)
        return (f"StimuliProvider({type(self.database).__name__}: {sizes}; "
                f"{c}x{h}x{w}, batch {self.batch_size}, "
                f"{len(self.transformations)} transformations)")


def _images_dtype(images) -> np.dtype:
    return images.dtype if isinstance(images, np.ndarray) else images[0].dtype


def _out_dtype(x: Stimuli, on_the_fly: Sequence[Transformation]) -> torch.dtype:
    dtype = x.dtype if isinstance(x, torch.Tensor) else x[0].dtype
    for step in on_the_fly:
        dtype = step.output_dtype(dtype)
    return dtype


def _shape_text(shape: Tuple[int, ...]) -> str:
    if len(shape) != 3:
        return str(shape)
    return f"NbChannels={shape[0]}, SizeY={shape[1]}, SizeX={shape[2]}"


def value_stats(database: Database, transformations: Sequence[Step],
                set_names: Sequence[str],
                generator: Optional[torch.Generator] = None) -> Dict[str, float]:
    """N2D2's StimuliData global values over ``set_names``, through ``transformations``.

    The stimuli go through the cacheable then the on-the-fly transformations that apply
    to each set, without the implicit normalisation (it is appended later in N2D2).
    Returns minVal, maxVal, mean and stdDev (population) over every value.
    """
    total, squares, count = 0.0, 0.0, 0
    low, high = float("inf"), float("-inf")
    for set_name in set_names:
        steps = [t for fly in (False, True) for t, f, apply_to in transformations
                 if f == fly and applies_to(apply_to, set_name)]
        images = database[set_name].images
        for start in range(0, len(images), _CHUNK):
            x = run(steps, as_tensor(images[start:start + _CHUNK]), generator)
            for part in (x if isinstance(x, list) else [x]):
                values = part.to(torch.float64)
                total += float(values.sum())
                squares += float((values * values).sum())
                count += values.numel()
                low, high = min(low, float(values.min())), max(high, float(values.max()))
    if count == 0:
        raise ValueError(f"no stimulus in {', '.join(set_names)} to compute statistics on")
    mean = total / count
    return {"minVal": low, "maxVal": high, "mean": mean,
            "stdDev": max(squares / count - mean * mean, 0.0) ** 0.5}
