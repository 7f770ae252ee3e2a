"""Several criteria on one layer: each prunes its target fraction, the masks are combined.

``prune_filler="Magnitude+Snip"`` (``QWeight.PruningFiller=Magnitude+Snip``) names the
criteria; ``combine`` (``QWeight.PruningCombine=``) says how their decisions meet:

- ``Any`` (default): a weight is pruned when any criterion prunes it (the union of the pruned
  sets: at least the target, more where the criteria disagree);
- ``All``: a weight is pruned only when every criterion prunes it (the intersection: at most
  the target, exactly it where they agree).

Each criterion ranks the layer on its own (``Layer`` scope) with the common pattern, so a
combination of a weight criterion and a channel one needs ``pattern="Channel"``. With
``scope="Global"`` each criterion ranks the groups of every Global cell together at the common
threshold (as one criterion would), then each weight's keep decisions are combined: the cells
ranked together must all name the same criteria and ``combine``, and ``Any`` cannot honour a
``min_keep`` floor (a union of pruned sets may empty a layer each ranking kept), so that pair
is refused.

>>> import torch
>>> combine_keeps([torch.tensor([True, False, True]), torch.tensor([True, True, False])], "Any")
tensor([ True, False, False])
"""

from __future__ import annotations

from functools import reduce
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from n2prune.ini.params import Choice, Key
from n2prune.ini.values import read_enum
from n2prune.prune.criteria.registry import CRITERIA
from n2prune.prune.fillers import MASK_FILLERS
from n2prune.prune.patterns import PATTERNS
from n2prune.registry import did_you_mean

COMBINE_MODES = ("Any", "All")
SEPARATOR = "+"
COMBINE_KEY = Key("PruningCombine", "combine", read_enum(list(COMBINE_MODES)), "Any",
                  "several criteria (A+B): prune a weight when Any or All of them prune it",
                  Choice(COMBINE_MODES))


def split_criteria(text: str) -> List[str]:
    """The criterion names of a filler spelling: ``"Magnitude+Snip"`` -> both; one name -> it."""
    return [part.strip() for part in str(text).split(SEPARATOR)]


def is_combined(text: object) -> bool:
    return isinstance(text, str) and SEPARATOR in text


def check_criteria(text: str, known: Sequence[str]) -> List[str]:
    """The names of a combined filler, each checked: ValueError naming the bad one."""
    names = split_criteria(text)
    for name in names:
        if name in MASK_FILLERS and name not in known:
            raise ValueError(f"prune_filler={text!r}: {name!r} is a mask filler; only criteria "
                             f"combine ({', '.join(sorted(known))})")
        if name not in known:
            raise ValueError(f"prune_filler={text!r}: " + did_you_mean(name, list(known),
                                                                       "criterion"))
    if len(set(names)) != len(names):
        raise ValueError(f"prune_filler={text!r} names a criterion twice")
    return names


def combine_keeps(keeps: Sequence[torch.Tensor], how: str) -> torch.Tensor:
    """One keep-mask from the criteria's keep-masks: ``Any`` pruned -> keep where all keep;
    ``All`` pruned -> keep where any keeps."""
    if how not in COMBINE_MODES:
        raise ValueError(f"combine={how!r}: " + did_you_mean(str(how), list(COMBINE_MODES),
                                                             "value"))
    if how == "Any":
        return reduce(torch.logical_and, keeps)
    return reduce(torch.logical_or, keeps)


def read_filler(base: Callable[..., str]) -> Callable[..., str]:
    """An INI reader for ``PruningFiller``: ``base`` for one name, each part checked for
    ``A+B``."""
    def reader(text: str, warn: Any = None) -> str:
        if is_combined(text):
            check_criteria(text, CRITERIA.names())
            return text
        return base(text, warn)
    return reader


class FillerChoice:
    """``Key.valid`` for ``prune_filler``: one of ``names()``, or criteria joined by '+'
    (a list or tuple of names is joined)."""

    def __init__(self, names: Callable[[], List[str]]):
        self.names = names

    def check(self, name: str, value: Any) -> str:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = SEPARATOR.join(value)
        if is_combined(value):
            check_criteria(value, CRITERIA.names())
            return value
        return Choice(self.names).check(name, value)


def criterion_keys(filler: str) -> Tuple[Key, ...]:
    """The parameter tables of every criterion a filler names (first declaration wins)."""
    table: Dict[str, Key] = {}
    for name in split_criteria(filler):
        if name in CRITERIA:
            for key in CRITERIA.get(name).params:
                table.setdefault(key.arg, key)
    return tuple(table.values())


def combined_masks(cell: Any, target: float) -> Optional[List[torch.Tensor]]:
    """The PruneCell's keep-masks (one per input block) for a combined filler at ``target``;
    None while a criterion still lacks its statistics."""
    criteria = [CRITERIA.get(name) for name in split_criteria(cell.prune_filler)]
    if any(criterion.missing(cell.stats) for criterion in criteria):
        return None
    each = [cell.criterion_keeps(criterion, target) for criterion in criteria]
    return [combine_keeps(list(keeps), cell.combine) for keeps in zip(*each)]


def combined_problem(args: Dict[str, Any], pattern: str) -> Optional[Tuple[str, str]]:
    """(argument to blame, reason) when a combined filler's arguments do not go together, else
    None. It needs criteria (not mask fillers), the Channel pattern when one of them scores
    channels, a pattern that ranks across cells for Global scope, and no min_keep floor with
    combine='Any' in Global scope."""
    filler = args["prune_filler"]
    for name in split_criteria(filler):
        if name not in CRITERIA:
            return "prune_filler", (f"prune_filler={filler!r}: {name!r} is a mask filler; "
                                    f"only criteria combine ({', '.join(CRITERIA.names())})")
        if CRITERIA.get(name).reconstruct is not None:
            return "prune_filler", (f"prune_filler={filler!r}: criterion {name!r} rewrites "
                                    f"the weights; it does not combine with others")
        if CRITERIA.get(name).level == "channel" and pattern != "Channel":
            return "pattern", (f"criterion {name!r} scores whole channels: "
                               f"prune_filler={filler!r} needs pattern='Channel'")
    if args["scope"] == "Global" and not PATTERNS.get(pattern).global_ranking:
        return "pattern", (f"pattern={args['pattern']!r} prunes within each group; it cannot "
                           f"be ranked with scope='Global'")
    if args["scope"] == "Global" and args["combine"] == "Any" and args["min_keep"] > 0:
        return "min_keep", (f"prune_filler={filler!r} with combine='Any', scope='Global': "
                            f"min_keep={args['min_keep']:g} cannot be guaranteed (a weight any "
                            f"ranking prunes is pruned, so the floors of each ranking do not "
                            f"add up); use combine='All', min_keep=0 or scope='Layer'")
    return None


def criterion_names(cell: Any) -> Tuple[str, ...]:
    """The criteria a PruneCell scores with (several when combined: ``A+B``)."""
    return tuple(name for name in split_criteria(getattr(cell, "prune_filler", "None"))
                 if name in CRITERIA)


def waiting(cell: Any) -> bool:
    """Whether a cell's criteria still lack statistics (its masks wait for a window)."""
    return any(CRITERIA.get(name).missing(cell.stats) for name in criterion_names(cell))
