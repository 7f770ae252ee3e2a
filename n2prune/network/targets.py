"""``[<cell>.Target*]`` sections (spec §2.10): which cell outputs are learnt, and how."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, List, Optional

from n2prune.ini.params import Key, kwargs_from, unknown_key_message
from n2prune.ini.values import read_bool, read_enum, read_float, read_int, read_text, read_uint, \
    read_word

TARGET_TYPES = ("TargetScore", "Target")
NOT_YET_TARGETS = ("TargetROIs", "TargetBBox", "TargetRP", "TargetMatching", "TargetCompare",
                   "TargetAggregate")

TARGET_KEYS = (
    Key("Type", "type", read_enum(list(TARGET_TYPES)), "TargetScore"),
    Key("TargetValue", "target_value", read_float, 1.0),
    Key("DefaultValue", "default_value", read_float, 0.0),
    Key("TopN", "top_n", read_uint, 1),
    Key("LabelsMapping", "labels_mapping", read_text, ""),
    Key("CreateMissingLabels", "create_missing_labels", read_bool, False),
)
# Accepted for compatibility; they only change N2D2's logs and displays.
IGNORED_KEYS = (
    Key("DataAsTarget", "data_as_target", read_bool, False),
    Key("NoDisplayLabel", "no_display_label", read_int, -1),
    Key("LabelsHueOffset", "labels_hue_offset", read_int, 0),
    Key("EstimatedLabelsValueDisplay", "estimated_labels_value_display", read_bool, True),
    Key("MaskedLabel", "masked_label", read_int, -1),
    Key("MaskedLabelValue", "masked_label_value", read_bool, False),
    Key("BinaryThreshold", "binary_threshold", read_float, 0.5),
    Key("ValueThreshold", "value_threshold", read_float, 0.0),
    Key("ImageLogFormat", "image_log_format", read_word, "jpg"),
    Key("WeakTarget", "weak_target", read_int, -2),
    Key("ConfusionRangeMin", "confusion_range_min", read_float, 0.0),
    Key("ConfusionRangeMax", "confusion_range_max", read_float, 1.0),
    Key("ConfusionQuantSteps", "confusion_quant_steps", read_uint, 10),
)


@dataclass
class Target:
    """One target: the cell whose output is compared with the labels."""

    section: str
    cell: str
    type: str = "TargetScore"
    target_value: float = 1.0
    default_value: float = 0.0
    top_n: int = 1
    labels_mapping: str = ""
    create_missing_labels: bool = False


def read_targets(ini: Any, cells: List[str]) -> List[Target]:
    """Targets in build order of their cells, then file order (the first one is primary)."""
    targets: List[Target] = []
    sections = ini.section_names()
    for cell in cells:
        for name in sections:
            if fnmatch.fnmatchcase(name, f"{cell}.Target*"):
                targets.append(_read_target(ini[name], cell))
    return targets


def _read_target(section: Any, cell: str) -> Target:
    if "Type" in section and section.get("Type", read_word) in NOT_YET_TARGETS:
        raise section.error("Type", "this target type is not supported yet (TargetScore is)")
    known = TARGET_KEYS + IGNORED_KEYS
    for key in section.keys():
        if not key.startswith("$") and not any(k.ini == key for k in known):
            raise section.error(key, unknown_key_message(key, known).replace(
                "parameter", "target parameter", 1))
    kwargs_from(section, IGNORED_KEYS)
    return Target(section.name, cell, **kwargs_from(section, TARGET_KEYS))


def primary_target(targets: List[Target]) -> Optional[Target]:
    return targets[0] if targets else None
