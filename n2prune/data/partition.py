"""N2D2's split of a database into Learn / Validation / Test (spec §5.1).

Stimuli are loaded into an *unpartitioned* list, then drawn into the sets in the order
Learn, Validation, Test. With ``RandomPartitioning=1`` each draw takes a uniform random
index into what remains, using N2D2's MT19937 stream (spec §4.8), so a seed reproduces
N2D2's sets exactly, order included.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import numpy as np

SET_NAMES = ("Learn", "Validation", "Test")


class N2D2Random:
    """N2D2's random stream: textbook MT19937, equal to numpy RandomState's 32-bit outputs.

    >>> N2D2Random(1).rand_uniform(0, 9)
    4
    """

    def __init__(self, seed: int):
        if not 0 <= int(seed) < 2 ** 32:
            raise ValueError(f"seed must be in 0..2**32-1, got {seed!r}")
        self.seed = int(seed)
        self._state = np.random.RandomState(self.seed)

    def u32(self, count: int) -> List[int]:
        """The next ``count`` raw 32-bit outputs."""
        return self._state.randint(0, 2 ** 32, size=count, dtype=np.uint64).tolist()

    def rand_uniform(self, low: int, high: int) -> int:
        """N2D2's ``Random::randUniform(a, b)`` on integers: a + int(u / 2**32 * (b - a + 1))."""
        return low + int(self.u32(1)[0] / 4294967296.0 * (high - low + 1))


def round_half_up(x: float) -> int:
    """N2D2's ``Utils::round(x, HalfUp)``: floor(x + 0.5)."""
    return int(math.floor(x + 0.5))


def round_half_down(x: float) -> int:
    """N2D2's ``Utils::round(x, HalfDown)``: ceil(x - 0.5)."""
    return int(math.ceil(x - 0.5))


def split_counts(n: int, learn: float, validation: float, test: float) -> Dict[str, int]:
    """How many of ``n`` stimuli ``partitionStimuli(learn, validation, test)`` puts in each set.

    >>> split_counts(10, 0.75, 0.25, 0.0)
    {'Learn': 8, 'Validation': 2, 'Test': 0}
    """
    if learn + validation + test > 1.0:
        raise ValueError(f"the partition fractions add up to more than 1 "
                         f"(learn {learn}, validation {validation}, test {test})")
    n_learn = round_half_up(n * learn)
    n_valid_test = round_half_down(n * (validation + test))
    frac_valid = validation / (validation + test) if validation > 0 else 0.0
    return {"Learn": n_learn,
            "Validation": round_half_up(n_valid_test * frac_valid),
            "Test": round_half_down(n_valid_test * (1.0 - frac_valid))}


class Partition:
    """The sets of a database while it loads: stimulus ids, in the order N2D2 draws them.

    ``rng`` None means ``RandomPartitioning=0``: draws take the first remaining stimuli.
    """

    def __init__(self, rng: Optional[N2D2Random]):
        self.rng = rng
        self.unpartitioned: List[int] = []
        self.sets: Dict[str, List[int]] = {name: [] for name in SET_NAMES}
        # True once a random draw decided which stimuli reach Test (the Test set then
        # depends on the seed); pools left partly drawn at random are tracked by id
        self.test_depends_on_seed = False
        self._drawn_at_random: set = set()

    def add(self, ids: Sequence[int]) -> None:
        """Append newly loaded stimuli to the unpartitioned list."""
        self.unpartitioned.extend(int(i) for i in ids)

    def take(self, count: int, set_name: str) -> None:
        """``partitionStimuli(count, set)``: move ``count`` stimuli into ``set_name``."""
        self.sets[set_name].extend(self._draw(self.unpartitioned, count, set_name))

    def split(self, learn: float, validation: float, test: float) -> None:
        """``partitionStimuli(learn, validation, test)`` on the unpartitioned stimuli."""
        counts = split_counts(len(self.unpartitioned), learn, validation, test)
        for name in SET_NAMES:
            self.take(counts[name], name)

    def split_per_label(self, labels: Sequence[int], nb_labels: int, learn: float,
                        validation: float, test: float, equiv_label: bool) -> None:
        """``partitionStimuliPerLabel``: the split rule applied to each label in turn.

        With ``equiv_label`` every label uses the stimulus count of the smallest label.
        """
        if learn + validation + test > 1.0:
            raise ValueError(f"the partition fractions add up to more than 1 "
                             f"(learn {learn}, validation {validation}, test {test})")
        per_label: List[List[int]] = [[] for _ in range(nb_labels)]
        for position, stimulus in enumerate(self.unpartitioned):
            if labels[stimulus] >= 0:
                per_label[labels[stimulus]].append(position)
        smallest = min((len(p) for p in per_label), default=0)
        taken: List[int] = []
        for positions in per_label:
            n = smallest if equiv_label else len(positions)
            for name, count in _per_label_counts(n, learn, validation, test).items():
                drawn = self._draw(positions, count, name)
                taken.extend(drawn)
                self.sets[name].extend(self.unpartitioned[p] for p in drawn)
        gone = set(taken)
        self.unpartitioned = [s for p, s in enumerate(self.unpartitioned) if p not in gone]
        chosen = [id(p) for p in per_label if id(p) in self._drawn_at_random]
        self._drawn_at_random.difference_update(id(p) for p in per_label)
        if chosen and self.unpartitioned:   # the leftovers were chosen at random too
            self._drawn_at_random.add(id(self.unpartitioned))

    def _draw(self, pool: List[int], count: int, set_name: str) -> List[int]:
        """Remove ``count`` items from ``pool`` the way N2D2 does, returning them in order."""
        if count > len(pool):
            raise ValueError(f"cannot put {count} stimuli in the {set_name} set: only "
                             f"{len(pool)} are left")
        if count <= 0:
            return []
        self._track_seed(pool, count, set_name)
        if self.rng is None:
            drawn = pool[:count]
            del pool[:count]
            return drawn
        drawn = []
        remaining = len(pool)
        for u in self.rng.u32(count):
            drawn.append(pool.pop(int(u / 4294967296.0 * remaining)))
            remaining -= 1
        return drawn

    def _track_seed(self, pool: List[int], count: int, set_name: str) -> None:
        """Note whether this draw makes the Test set depend on the seed."""
        if self.rng is None:
            return
        chooses = count < len(pool)
        if set_name == "Test" and (chooses or id(pool) in self._drawn_at_random):
            self.test_depends_on_seed = True
        if chooses:
            self._drawn_at_random.add(id(pool))
        else:   # the pool is emptied: what is added to it later was never chosen from
            self._drawn_at_random.discard(id(pool))


def _per_label_counts(n: int, learn: float, validation: float, test: float) -> Dict[str, int]:
    """The per-label counts, with N2D2's min() guards against rounding overshoot."""
    n_learn = round_half_up(n * learn)
    n_valid_test = min(round_half_down(n * (validation + test)), n - n_learn)
    frac_valid = validation / (validation + test) if validation > 0 else 0.0
    n_valid = round_half_up(n_valid_test * frac_valid)
    n_test = min(round_half_down(n_valid_test * (1.0 - frac_valid)), n - n_learn - n_valid)
    return {"Learn": n_learn, "Validation": n_valid, "Test": n_test}
