"""Several criteria on one layer: each prunes its target fraction, the masks are combined.

``prune_filler="Magnitude+Snip"`` (``QWeight.PruningFiller=Magnitude+Snip``) names the
criteria; ``combine`` (``QWeight.PruningCombine=``) says how their decisions meet:

- ``Any`` (default): a weight is pruned when any criterion prunes it (the union of the pruned
  sets: at least the target, more where the criteria disagree);
- ``All``: a weight is pruned only when every criterion prunes it (the intersection: at most
  the target, exactly it where they agree).

Each criterion ranks the layer on its own (``Layer`` scope) with the common pattern, so a
combination of a weight criterion and a channel one needs ``pattern="Channel"``.

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
    from n2prune.prune.fillers import MASK_FILLERS
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
            from n2prune.prune.criteria import CRITERIA
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
            from n2prune.prune.criteria import CRITERIA
            check_criteria(value, CRITERIA.names())
            return value
        return Choice(self.names).check(name, value)


def criterion_keys(filler: str) -> Tuple[Key, ...]:
    """The parameter tables of every criterion a filler names (first declaration wins)."""
    from n2prune.prune.criteria import CRITERIA
    table: Dict[str, Key] = {}
    for name in split_criteria(filler):
        if name in CRITERIA:
            for key in CRITERIA.get(name).params:
                table.setdefault(key.arg, key)
    return tuple(table.values())


def combined_masks(cell: Any, target: float) -> Optional[List[torch.Tensor]]:
    """The PruneCell's keep-masks (one per input block) for a combined filler at ``target``;
    None while a criterion still lacks its statistics."""
    from n2prune.prune.criteria import CRITERIA
    from n2prune.prune.masks import criterion_masks
    criteria = [CRITERIA.get(name) for name in split_criteria(cell.prune_filler)]
    if any(criterion.missing(cell.stats) for criterion in criteria):
        return None
    weight, parts = cell.cell.weight, cell._slices()
    params = cell.params["criterion"]
    each = [criterion_masks(criterion, cell._pattern, weight, cell.stats, parts, target,
                            {key.arg: params[key.arg] for key in criterion.params
                             if key.arg in params}, pruned=cell.pruned_parts())
            for criterion in criteria]
    return [combine_keeps(list(keeps), cell.combine) for keeps in zip(*each)]


def check_combined(args: Dict[str, Any], pattern: str) -> None:
    """What a combined filler needs: criteria (not mask fillers), Layer scope, and the
    Channel pattern when one of them scores channels."""
    from n2prune.prune.criteria import CRITERIA
    filler = args["prune_filler"]
    for name in split_criteria(filler):
        if name not in CRITERIA:
            raise ValueError(f"prune_filler={filler!r}: {name!r} is a mask filler; "
                             f"only criteria combine ({', '.join(CRITERIA.names())})")
        if CRITERIA.get(name).level == "channel" and pattern != "Channel":
            raise ValueError(f"criterion {name!r} scores whole channels: "
                             f"prune_filler={filler!r} needs pattern='Channel'")
    if args["scope"] != "Layer":
        raise ValueError(f"prune_filler={filler!r} combines per-layer decisions; "
                         f"it needs scope='Layer', not {args['scope']!r}")
