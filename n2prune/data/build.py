"""INI glue: ``[database]``, ``[sp]`` and the ``[sp.*]`` sub-sections -> a StimuliProvider.

Sub-sections are taken in file order (spec §5.3): ``[sp.Transformation*]`` are cacheable,
``[sp.OnTheFlyTransformation*]`` run per batch, ``[sp.StimuliData*]`` compute the global
statistics later values refer to; other ``[sp.xxx]`` sections are left alone, but a name
with ``Transformation`` in it that matches no kind is an error. Every key of these sections
must be known: a typo is a located ConfigError with "did you mean".
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from n2prune.data.databases import DATABASES, Database, empty_database, n2d2_data
from n2prune.data.exceptions import ParameterError, TransformationError
from n2prune.data.partition import SET_NAMES, N2D2Random
from n2prune.data.provider import Step, StimuliProvider, value_stats
from n2prune.data.transforms import APPLY_TO, APPLY_TO_KEY, TRANSFORMATIONS, Transformation
from n2prune.errors import ConfigError
from n2prune.ini.params import Key, kwargs_from
from n2prune.registry import did_you_mean
from n2prune.ini.values import read_bool, read_float, read_list, read_text, read_uint, read_word

_UNSUPPORTED = "not supported by n2prune"

SP_KEYS = (
    Key("SizeX", "size_x", read_uint, None, "network input width"),
    Key("SizeY", "size_y", read_uint, None, "network input height"),
    Key("Size", "size", read_list(read_uint), None, "X Y [D] C, instead of SizeX/SizeY"),
    Key("SizeD", "size_d", read_uint, None, "3-D depth (only 1 is supported)"),
    Key("NbChannels", "nb_channels", read_uint, 1, "channels the pipeline must produce"),
    Key("BatchSize", "batch_size", read_uint, 1, "stimuli per batch"),
    Key("CompositeStimuli", "composite_stimuli", read_bool, False, _UNSUPPORTED),
    Key("CachePath", "cache_path", read_text, "", "accepted; n2prune caches in memory"),
    Key("ConfigSection", "config_section", read_text, "", "sections of provider parameters"),
    Key("TargetSize", "target_size", read_list(read_uint), None, _UNSUPPORTED),
    Key("TargetSizeX", "target_size_x", read_uint, None, _UNSUPPORTED),
    Key("TargetSizeY", "target_size_y", read_uint, None, _UNSUPPORTED),
    Key("TargetSizeD", "target_size_d", read_uint, None, _UNSUPPORTED),
    Key("TargetNbChannels", "target_nb_channels", read_uint, None, _UNSUPPORTED),
)
SP_CONFIG_KEYS = (
    Key("DataSignedMapping", "data_signed_mapping", read_bool, False,
        "normalise 8-bit data to [-1, 1) instead of [0, 1]"),
    Key("QuantizationLevels", "quantization_levels", read_uint, 0, "only 0 is supported"),
    Key("QuantizationMin", "quantization_min", read_float, 0.0, "unused without levels"),
    Key("QuantizationMax", "quantization_max", read_float, 1.0, "unused without levels"),
    Key("StreamTensor", "stream_tensor", read_bool, False, "accepted, no effect"),
    Key("StreamLabel", "stream_label", read_bool, False, "accepted, no effect"),
)
STIMULI_DATA_KEYS = (
    APPLY_TO_KEY,
    Key("LogSizeRange", "log_size_range", read_bool, False, "accepted, nothing logged"),
    Key("LogValueRange", "log_value_range", read_bool, False, "accepted, nothing logged"),
    Key("MeanData", "mean_data", read_bool, False, _UNSUPPORTED),
    Key("StdDevData", "std_dev_data", read_bool, False, _UNSUPPORTED),
)
_TYPE = Key("Type", "type", read_word, None, "registry name")

# Sub-section kinds by name prefix, longest first (N2D2 matches "sp.<Kind>*").
_KINDS = (("ChannelsOnTheFlyTransformation", "channels"), ("ChannelsTransformation", "channels"),
          ("ChannelOnTheFlyTransformation", "channel"), ("ChannelTransformation", "channel"),
          ("OnTheFlyTransformation", "on-the-fly"), ("Transformation", "cacheable"),
          ("StimuliData", "statistics"), ("Adversarial", "adversarial"))


def read_keys(section: Any, keys: Sequence[Key], extra: Sequence[Key] = ()) -> Dict[str, Any]:
    """Keyword arguments from ``keys``; any other key of ``section`` is a located error."""
    kwargs = kwargs_from(section, keys)
    valid = [key.ini for key in tuple(keys) + tuple(extra)]
    for name in section.keys():
        if name not in valid and not name.startswith("$"):
            raise section.error(name, did_you_mean(name, valid, "parameter"))
    return kwargs


def _reject_unsupported(section: Any, kwargs: Dict[str, Any], keys: Sequence[Key]) -> None:
    """Keys documented as unsupported must keep their default."""
    for key in keys:
        if key.doc == _UNSUPPORTED and kwargs.get(key.arg, key.default) != key.default:
            raise section.error(key.ini, f"{key.ini} is {_UNSUPPORTED}")


def build_database(section: Any, seed: Union[int, N2D2Random] = 0,
                   environ: Optional[Mapping[str, str]] = None) -> Database:
    """The database of a ``[database]`` section; ``seed`` drives RandomPartitioning.

    ``environ`` (default os.environ) gives N2D2_DATA for the default DataPath.
    """
    cls = _lookup(section, DATABASES)
    kwargs = read_keys(section, cls.KEYS, (_TYPE,))
    if cls.DEFAULT_DIR is not None and not kwargs.get("data_path"):
        kwargs["data_path"] = n2d2_data(cls.DEFAULT_DIR, environ)
    for arg, sub in cls.DEFAULT_PATHS.items():   # N2D2_DATA(sub) defaults
        if not kwargs.get(arg):
            kwargs[arg] = n2d2_data(sub, environ)
    try:
        return cls(seed=seed, **kwargs)
    except ParameterError as error:
        raise section.error(error.key if error.key in section else None, str(error)) \
            from None
    except ValueError as error:
        raise section.error("DataPath" if "DataPath" in section else None, str(error)) \
            from None


def build_transformation(section: Any) -> Tuple[Transformation, str]:
    """(transformation, ApplyTo) of a ``[sp.*Transformation*]`` section."""
    cls = _lookup(section, TRANSFORMATIONS)
    apply_to = section.get("ApplyTo", APPLY_TO_KEY.reader, "All")
    kwargs = read_keys(section, cls.KEYS, (_TYPE, APPLY_TO_KEY))
    try:
        return cls(**kwargs), apply_to
    except ParameterError as error:
        raise section.error(error.key if error.key in section else "Type", str(error)) \
            from None
    except ValueError as error:
        raise section.error("Type", str(error)) from None


def sub_section_kind(name: str, provider: str = "sp") -> Optional[str]:
    """The kind of ``[<provider>.<Kind>...]``: "cacheable", "on-the-fly", "statistics", ...;
    "invalid" for a Transformation name matching no kind; None for other sections."""
    if not name.startswith(provider + "."):
        return None
    rest = name[len(provider) + 1:]
    for prefix, kind in _KINDS:
        if rest.startswith(prefix):
            return kind
    return "invalid" if "Transformation" in rest else None


def build_provider(ini: Any, seed: int = 0, rng: Optional[N2D2Random] = None,
                   device: Union[str, torch.device, None] = None) -> StimuliProvider:
    """The StimuliProvider of an INI file: [database], [sp] and its sub-sections.

    ``rng`` is N2D2's MT19937 stream (default: a fresh one from ``seed``); the database
    split draws from it first, and later consumers may continue it. ``seed`` also seeds
    the random transformations drawn while caching or computing statistics. Sets
    ``[sp]_EpochSize`` (|Learn|) before the sub-sections are read, as N2D2 does.
    """
    if "sp" not in ini:
        raise ConfigError("missing [sp] section", path=getattr(ini, "path", None))
    rng = rng if rng is not None else N2D2Random(seed)
    if "database" in ini:
        database = build_database(ini["database"], rng, getattr(ini, "environ", None))
    else:  # N2D2: a warning and an empty database (learning and testing then refuse)
        warnings.warn(f"{getattr(ini, 'path', None) or 'the network'}: no [database] section: "
                      f"an empty database (N2D2's behaviour)", stacklevel=2)
        database = empty_database(rng)
    sp = ini["sp"]
    settings = read_keys(sp, SP_KEYS)
    _reject_unsupported(sp, settings, SP_KEYS)
    nb_channels, size_y, size_x = _shape(sp, settings)
    signed = _data_signed_mapping(ini, sp, settings.get("config_section", ""))
    sp.set_computed("_EpochSize", database.size("Learn"))
    steps, owners = _pipeline(ini, database, torch.Generator().manual_seed(seed))
    try:
        return StimuliProvider(database, nb_channels, size_y, size_x,
                               settings.get("batch_size", 1), steps, seed, signed, device)
    except TransformationError as error:
        raise owners[id(error.step)].error(None, str(error)) from None
    except ValueError as error:
        raise sp.error(None, str(error)) from None


def _lookup(section: Any, registry: Any) -> Any:
    try:
        return registry.get(section.get("Type", read_word))
    except ValueError as error:
        raise section.error("Type", str(error)) from None


def _shape(sp: Any, settings: Dict[str, Any]) -> Tuple[int, int, int]:
    """(NbChannels, SizeY, SizeX) from SizeX/SizeY/NbChannels or ``Size=X Y [D] C``."""
    size_x, size_y = settings.get("size_x"), settings.get("size_y")
    channels = settings.get("nb_channels", 1)
    size = settings.get("size")
    if size is not None:
        if not 2 <= len(size) <= 4 or (len(size) == 4 and size[2] != 1):
            raise sp.error("Size", "Size must be 'X Y', 'X Y C' or 'X Y 1 C' (no 3-D)")
        size_x, size_y = size[0], size[1]
        channels = size[-1] if len(size) > 2 else channels
    if settings.get("size_d") not in (None, 1):
        raise sp.error("SizeD", f"SizeD is {_UNSUPPORTED} (3-D stimuli)")
    if size_x is None or size_y is None:
        raise sp.error(None, "SizeX and SizeY (or Size) are required")
    for key, value in (("SizeX", size_x), ("SizeY", size_y), ("NbChannels", channels),
                       ("BatchSize", settings.get("batch_size", 1))):
        if value <= 0:
            raise sp.error(key if key in sp else "Size", f"{key} must be positive")
    return channels, size_y, size_x


def _data_signed_mapping(ini: Any, sp: Any, config_section: str) -> bool:
    """DataSignedMapping from the [sp] ConfigSection(s) (split on ',')."""
    if not config_section:
        return False
    names = config_section.split(",")
    for name in names:
        if name not in ini:
            raise sp.error("ConfigSection", did_you_mean(name, ini.section_names(), "section"))
    view = ini.view(names, "sp")
    config = read_keys(view, SP_CONFIG_KEYS)
    if config.get("quantization_levels", 0):
        raise view.error("QuantizationLevels", f"QuantizationLevels is {_UNSUPPORTED}")
    return config.get("data_signed_mapping", False)


def _pipeline(ini: Any, database: Database, generator: torch.Generator
              ) -> Tuple[List[Step], Dict[int, Any]]:
    """Transformations in file order, and the section each came from."""
    steps: List[Step] = []
    owners: Dict[int, Any] = {}
    for name in ini.section_names():
        kind = sub_section_kind(name)
        if kind is None:
            continue
        section = ini[name]
        if kind in ("cacheable", "on-the-fly"):
            transformation, apply_to = build_transformation(section)
            if kind == "cacheable" and transformation.random:
                section.warn("Type", "a random transformation in a cacheable section is "
                                     "drawn once and cached (as in N2D2); use "
                                     "[sp.OnTheFlyTransformation...] to draw per batch")
            steps.append((transformation, kind == "on-the-fly", apply_to))
            owners[id(transformation)] = section
        elif kind == "statistics":
            _stimuli_data(section, database, steps, owners, generator)
        elif kind == "adversarial":
            section.warn(None, f"[{name}] is ignored: adversarial attacks are {_UNSUPPORTED}")
        elif kind == "invalid":
            raise section.error(None, "a sub-section name containing 'Transformation' must "
                                      "start with sp.Transformation, "
                                      "sp.OnTheFlyTransformation or sp.Channel(s)...")
        else:
            raise section.error(None, f"per-channel transformations are {_UNSUPPORTED}")
    return steps, owners


def _stimuli_data(section: Any, database: Database, steps: List[Step],
                  owners: Dict[int, Any], generator: torch.Generator) -> None:
    """[sp.StimuliData*]: global statistics through the transformations declared so far,
    written as ``_GlobalValue.minVal/maxVal/mean/stdDev`` for later values to read."""
    settings = read_keys(section, STIMULI_DATA_KEYS)
    _reject_unsupported(section, settings, STIMULI_DATA_KEYS)
    sets = APPLY_TO[settings.get("apply_to", "All")]
    try:
        stats = value_stats(database, steps, [s for s in SET_NAMES if s in sets], generator)
    except TransformationError as error:
        raise owners[id(error.step)].error(None, str(error)) from None
    except ValueError as error:
        raise section.error(None, str(error)) from None
    for name, value in stats.items():
        section.set_computed(f"_GlobalValue.{name}", value)
