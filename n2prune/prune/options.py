"""PruneCell's arguments: one table (INI key <-> argument <-> reader <-> default <-> valid
values), read at call time so members registered later (fillers, criteria, patterns,
schedules, with their own parameter tables) work from Python and INI alike (spec §4.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from n2prune.ini.params import Choice, Flag, Key, Range
from n2prune.ini.values import read_bool, read_enum, read_float, read_uint, read_word
from n2prune.prune.budgets import BUDGETS
from n2prune.prune.comparison import COMPARISONS
from n2prune.prune.criteria.registry import CRITERIA
from n2prune.prune.counting import PRUNING_COUNTS
from n2prune.prune.criteria.combined import (COMBINE_KEY, FillerChoice, combined_problem,
                                             criterion_keys, is_combined, read_filler)
from n2prune.prune.fillers import MASK_FILLERS
from n2prune.prune.patterns import PATTERNS, resolve_pattern
from n2prune.prune.regularization import REGULARIZATION_KEYS
from n2prune.prune.schedules import SCHEDULES
from n2prune.prune.ranking import SCOPES
from n2prune.registry import Registry, did_you_mean


@dataclass(frozen=True)
class PruneMode:
    """A prune mode: whether ``update`` follows a schedule, and the threshold at attach time
    (from the PruneCell: 0, its target, or its schedule's first value)."""

    name: str
    scheduled: bool
    initial: Callable[[Any], float]


PRUNE_MODES: Registry = Registry("prune mode")
for _mode in (PruneMode("Identity", False, lambda cell: 0.0),
              PruneMode("Static", False, lambda cell: cell.threshold),
              PruneMode("Gradual", True,
                        lambda cell: cell.schedule_rule.initial(cell.start, cell.threshold))):
    PRUNE_MODES.register(_mode.name)(_mode)

QUANT_MODES = ("Default", "Symmetric", "Asymmetric", "FullRange")


def filler_names() -> List[str]:
    """Valid ``prune_filler`` values now: mask fillers and criteria."""
    return MASK_FILLERS.names() + [name for name in CRITERIA.names() if name not in MASK_FILLERS]


def _pattern_check(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r} ({type(value).__name__}); "
                        f"allowed: {', '.join(PATTERNS.names())}")
    resolve_pattern(value)
    return value


class _PatternChoice:
    check = staticmethod(_pattern_check)


_FRACTION = Range(0.0, 1.0)
_NONNEG = Range(0.0, math.inf)
_COUNT = Range(0, math.inf, integer=True)

# The PruneCell's own keys: N2D2's (spec §4.2) then ours.
PRUNE_KEYS: Tuple[Key, ...] = (
    Key("PruningMode", "prune_mode", read_enum(PRUNE_MODES), "Identity", "", Choice(PRUNE_MODES)),
    Key("PruningFiller", "prune_filler", read_filler(read_enum(filler_names)), "Random",
        "mask filler or criterion, or criteria joined by + (combined: PruningCombine)",
        FillerChoice(filler_names)),
    Key("Threshold", "threshold", read_float, 0.2, "target fraction of zeros", _FRACTION),
    Key("Delta", "delta", read_float, 0.001, "IterNonStruct magnitude step",
        Range(0.0, math.inf, low_open=True)),
    Key("StartThreshold", "start", read_float, 0.1, "first Gradual fraction", _FRACTION),
    Key("StepSizeThreshold", "stepsize", read_uint, 0, "Gradual period in stimuli", _COUNT),
    Key("GammaThreshold", "gamma", read_float, 0.05, "Gradual increment", _NONNEG),
    Key("Range", "range", read_uint, 255, "accepted and ignored", _COUNT),
    Key("QuantMode", "quant_mode", read_enum(list(QUANT_MODES)), "Default",
        "accepted and ignored", Choice(QUANT_MODES)),
    Key("PruningPattern", "pattern", read_word, "Unstructured",
        "Unstructured, N:M (2:4), KxL (4x1), Channel", _PatternChoice()),
    Key("PruningScope", "scope", read_enum(SCOPES), "Layer", "Layer, Global or Coupled",
        Choice(SCOPES)),
    Key("PruningGroup", "group", read_enum(COMPARISONS), None,
        "which scores compete: Layer (the whole cell) or Row (each output row on its own); "
        "default: the criterion's (Row for Wanda), else Layer", Choice(COMPARISONS)),
    Key("PruningBudget", "budget", read_enum(BUDGETS), "Uniform",
        "per-cell sparsities from the common target: Uniform, OWL or Sensitivity", Choice(BUDGETS)),
    Key("PruningRoundTo", "round_to", read_uint, 1,
        "compaction keeps a multiple of N of the cell's output channels (zero groups given "
        "back), widths that run fast", Range(1, math.inf, integer=True)),
    Key("PruningMinKeep", "min_keep", read_float, 0.0,
        "Global scope: smallest kept fraction of each cell", _FRACTION),
    Key("PruningSchedule", "schedule", read_enum(SCHEDULES), "Linear", "Gradual schedule",
        Choice(SCHEDULES)),
    Key("PruningRewind", "rewind", read_float, None,
        "stimuli at which weights are saved; restored after each pruning step", _NONNEG),
    Key("PruningRegrow", "regrow", read_bool, False,
        "Gradual criteria: re-rank every group at each step (a pruned weight may come back); "
        "by default pruned groups stay pruned", Flag()),
    Key("PruningCount", "count", read_enum(PRUNING_COUNTS), "All",
        "under a Mapping table, what the fillers rank and count the target over: All "
        "entries (N2D2) or the Connected ones only", Choice(PRUNING_COUNTS)),
)
# Ours, declared beside their code: several criteria combined, sparsity regularisation.
PRUNE_KEYS += (COMBINE_KEY,) + REGULARIZATION_KEYS
EXTRA_ARGS: Dict[str, Any] = {"seed": None, "stats": None}


def member_keys() -> List[Tuple[str, str, Key]]:
    """(family, member, key) for the parameters every registered member declares."""
    found = []
    for family, registry in (("criterion", CRITERIA), ("pattern", PATTERNS),
                             ("schedule", SCHEDULES), ("budget", BUDGETS)):
        for name in registry.names():
            for key in registry.get(name).params:
                found.append((family, name, key))
    return found


def prune_keys() -> Tuple[Key, ...]:
    """The full table now: PRUNE_KEYS and every member's parameters (first declaration wins)."""
    table = {key.ini: key for key in PRUNE_KEYS}
    for _, _, key in member_keys():
        table.setdefault(key.ini, key)
    return tuple(table.values())


class PruneArgumentError(ValueError):
    """A bad PruneCell argument; ``arg`` names it (for INI errors located at its key)."""

    def __init__(self, message: str, arg: str):
        super().__init__(message)
        self.arg = arg


class PruneArgumentTypeError(TypeError):
    """A PruneCell argument of the wrong type; ``arg`` names it."""

    def __init__(self, message: str, arg: str):
        super().__init__(message)
        self.arg = arg


def _blame(arg: str, check: Callable[[], Any]) -> Any:
    """``check()``, its TypeError/ValueError re-raised prefixed 'PruneCell: ' and naming arg."""
    try:
        return check()
    except TypeError as exc:
        raise PruneArgumentTypeError(f"PruneCell: {exc}", arg) from None
    except ValueError as exc:
        raise PruneArgumentError(f"PruneCell: {exc}", arg) from None


def validated(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """PruneCell's arguments checked against the table; member parameters resolved.

    Returns the base arguments, ``params`` ({"criterion"|"pattern"|"schedule": kwargs}) and
    the ``pattern`` and ``schedule`` members built. Errors are TypeError/ValueError starting
    with 'PruneCell: ', with ``arg`` naming the argument to blame.
    """
    table = {key.arg: key for key in prune_keys()}
    known = list(table) + list(EXTRA_ARGS)
    for name in kwargs:
        if name not in known:
            raise TypeError("PruneCell: " + did_you_mean(name, known, "argument"))
    base = {key.arg for key in PRUNE_KEYS}
    args = {key.arg: key.default for key in PRUNE_KEYS}
    args.update(EXTRA_ARGS)
    args.update({k: v for k, v in kwargs.items() if k in base or k in EXTRA_ARGS})
    if args["prune_filler"] is None:
        args["prune_filler"] = "None"
    for key in PRUNE_KEYS:
        if args[key.arg] is not None:
            args[key.arg] = _blame(key.arg, lambda: key.check(args[key.arg]))
    if args["seed"] is not None:
        args["seed"] = _blame("seed", lambda: Range(0, 2**63 - 1, integer=True).check(
            "seed", args["seed"]))
    args["params"] = _member_params(args, kwargs)
    if "schedule" in kwargs and "prune_mode" not in kwargs:
        args["prune_mode"] = "Gradual"  # a schedule alone asks for gradual pruning
    if "threshold" in kwargs and args["prune_mode"] == "Identity" \
            and args["prune_filler"] != "None":
        raise PruneArgumentError(
            f"PruneCell: threshold={kwargs['threshold']!r} with prune_mode='Identity' (the "
            f"default) prunes nothing; add prune_mode='Static' (prune now) or 'Gradual' "
            f"(along a schedule)", "prune_mode" if "prune_mode" in kwargs else "threshold")
    args["group"] = _blame("group", lambda: _group(args, "group" in kwargs))
    problem = _blame("prune_filler", lambda: _combination_problem(args))
    if problem is not None:  # an argument left at its default did not ask for it: the filler did
        arg, reason = problem
        raise PruneArgumentError(f"PruneCell: {reason}", arg if arg in kwargs else "prune_filler")
    pattern, shorthand = resolve_pattern(args["pattern"])
    pattern_args = [key.arg for key in PATTERNS.get(pattern).params if key.arg in kwargs]
    args["pattern_member"] = _blame("pattern" if shorthand or not pattern_args
                                    else pattern_args[0],
                                    lambda: PATTERNS.get(pattern)(**args["params"]["pattern"]))
    args["compare_member"] = COMPARISONS.get(args["group"])
    args["schedule_member"] = _blame("schedule", lambda: SCHEDULES.get(args["schedule"])(
        **args["params"]["schedule"]))
    return args


def _member_params(args: Dict[str, Any], given: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    pattern, shorthand = resolve_pattern(args["pattern"])
    chosen = {"pattern": (pattern, PATTERNS.get(pattern).params),
              "schedule": (args["schedule"], SCHEDULES.get(args["schedule"]).params),
              "criterion": (args["prune_filler"], criterion_keys(args["prune_filler"])),
              "budget": (args["budget"], BUDGETS.get(args["budget"]).params)}
    params: Dict[str, Dict[str, Any]] = {}
    used = set()
    for family, (_, keys) in chosen.items():
        values = {}
        for key in keys:
            used.add(key.arg)
            from_shorthand = family == "pattern" and key.arg in shorthand
            if key.arg in given and from_shorthand:
                raise PruneArgumentError(f"PruneCell: {key.arg}={given[key.arg]!r} repeats "
                                         f"what pattern={args['pattern']!r} says; give one of "
                                         f"them", key.arg)
            value = given.get(key.arg, shorthand[key.arg] if from_shorthand else key.default)
            if value is not None:
                value = _blame("pattern" if from_shorthand else key.arg,
                               lambda: key.check(value))
            values[key.arg] = value
        params[family] = values
    base = {key.arg for key in PRUNE_KEYS} | set(EXTRA_ARGS)
    for name in given:
        if name not in base and name not in used:
            owners = [f"{family} {member!r}" for family, member, key in member_keys()
                      if key.arg == name]
            raise PruneArgumentError(f"PruneCell: {name} is a parameter of "
                                     f"{' or '.join(owners)}, which this PruneCell does not "
                                     f"use", name)
    return params


def _group(args: Dict[str, Any], given: bool) -> str:
    """The comparison group: the one given, checked against the pattern, scope and filler;
    else the criterion's own where the pattern allows it, else Layer."""
    filler, pattern_text = args["prune_filler"], args["pattern"]
    pattern = PATTERNS.get(resolve_pattern(pattern_text)[0])
    if not given:
        preferred = CRITERIA.get(filler).group if filler in CRITERIA else "Layer"
        rows = COMPARISONS.get(preferred).rows
        fits = not rows or (pattern.row_groups and not SCOPES.get(args["scope"]).shared)
        return preferred if fits else "Layer"
    group = args["group"]
    if not COMPARISONS.get(group).rows:
        return group
    if filler in MASK_FILLERS:
        raise ValueError(f"group={group!r} ranks scores within each output row: "
                         f"prune_filler={filler!r} has none; use a criterion")
    if not pattern.row_groups:
        raise ValueError(f"group={group!r} ranks the groups of each output row: "
                         f"pattern={pattern_text!r} has no rows of several groups (use "
                         f"Unstructured or KxL, or group='Layer')")
    if SCOPES.get(args["scope"]).shared:
        raise ValueError(f"group={group!r} compares within each output row of one cell; "
                         f"scope={args['scope']!r} compares across cells: choose one")
    return group


def _combination_problem(args: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """(argument to blame, reason) when the arguments do not go together, else None."""
    filler, pattern = args["prune_filler"], resolve_pattern(args["pattern"])[0]
    criteria = ", ".join(CRITERIA.names())
    mask_filler = filler in MASK_FILLERS and filler != "None"
    if args["count"] != "All" and filler not in MASK_FILLERS:
        return "count", (f"count={args['count']!r} applies to the mask fillers "
                         f"({', '.join(MASK_FILLERS.names())}); prune_filler={filler!r} ranks "
                         f"every entry of the weight: leave count='All'")
    if is_combined(filler):
        return combined_problem(args, pattern)
    if mask_filler and pattern != "Unstructured":
        return "pattern", (f"prune_filler={filler!r} fills masks weight by weight; "
                           f"pattern={args['pattern']!r} needs a criterion ({criteria})")
    if mask_filler and SCOPES.get(args["scope"]).shared:
        return "scope", (f"scope={args['scope']!r} ranks scores: prune_filler={filler!r} "
                          f"has none; use a criterion ({criteria})")
    member = CRITERIA.get(filler) if filler in CRITERIA else None
    if member is not None and member.patterns is not None and pattern not in member.patterns:
        return "pattern", (f"criterion {filler!r} prunes with the patterns "
                           f"{', '.join(member.patterns)}, not {args['pattern']!r}")
    if member is not None and member.reconstruct is not None:
        if args["prune_mode"] != "Static":
            return "prune_mode", (f"criterion {filler!r} prunes once, from calibration "
                                  f"batches, and rewrites the weights: prune_mode='Static', "
                                  f"not {args['prune_mode']!r}")
        if SCOPES.get(args["scope"]).shared:
            return "scope", (f"criterion {filler!r} prunes each layer from its own inputs: "
                             f"scope={args['scope']!r} cannot rank it with other cells")
    if filler in CRITERIA and CRITERIA.get(filler).level == "channel" and pattern != "Channel":
        return "pattern", (f"criterion {filler!r} scores whole channels: it needs "
                           f"pattern='Channel', not {args['pattern']!r}")
    if SCOPES.get(args["scope"]).shared and not PATTERNS.get(pattern).global_ranking:
        return "pattern", (f"pattern={args['pattern']!r} prunes within each group; it cannot "
                           f"be ranked with scope='Global'")
    if args["budget"] != "Uniform" and SCOPES.get(args["scope"]).shared:
        return "budget", (f"budget={args['budget']!r} sets each cell's own target; "
                          f"scope={args['scope']!r} ranks the cells together: choose one")
    if args["budget"] != "Uniform" and filler == "None":
        return "budget", f"budget={args['budget']!r} needs a filler that prunes, not 'None'"
    if BUDGETS.get(args["budget"]).analysed and _analysed_problem(args) is not None:
        return _analysed_problem(args)
    if args["schedule"] != "Linear" and args["prune_mode"] != "Gradual":
        return "schedule", (f"schedule={args['schedule']!r} needs prune_mode='Gradual', not "
                            f"{args['prune_mode']!r}")
    return None


def _analysed_problem(args: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """A budget chosen by a sensitivity analysis: a target strictly inside (0, 1), criteria
    that rank trained weights at once."""
    if not 0.0 < args["threshold"] < 1.0:
        return "threshold", (f"budget={args['budget']!r} prunes threshold={args['threshold']!r} "
                             f"of the cells' weights overall: a fraction strictly between 0 "
                             f"and 1")
    for name in str(args["prune_filler"]).split("+"):
        if name in CRITERIA and CRITERIA.get(name).needs:
            return "prune_filler", (f"budget={args['budget']!r} analyses trained weights "
                                    f"pruned at once; criterion {name!r} ranks with statistics "
                                    f"gathered while learning: use a weight criterion "
                                    f"(Magnitude, L1Norm, LAMP, ...) or an N2D2 filler")
    return None
