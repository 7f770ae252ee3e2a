"""Writing a compacted network back as the user's INI file, changed only where it must be.

Only channel counts change: ``NbOutputs`` of the cells that lost channels, ``Mapping(P)``
matrices, ``Mapping.NbGroups`` of depthwise convolutions and ``PerChannel`` ElemWise
coefficients. Every other line (comments, key order, ``${VAR}`` and ``$(...)`` values) is kept
as written. A value still right after the change (``NbOutputs=[conv1]NbOutputs``) is kept; a
wrong one becomes a literal, in the cell's own section (a key it inherited gets an override
line under its header). A template instance (``[block@file.tpl]``) is expanded in place only
when one of its sections changes; relative template paths are rewritten for the new folder.

>>> text = compacted_ini_text(small, "net.ini", "out")     # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

import torch

from n2prune.cells.mapping import group_map, parent_key_name
from n2prune.ini.values import read_uint
from n2prune.ini.template import render_file

# section -> key -> new raw value; None: the key's line(s) removed; COMMENT_OUT: commented out
Edits = Dict[str, Dict[str, Optional[str]]]
COMMENT_OUT = "\0comment out"
_REFERENCE = re.compile(r"^\s*\[([^\]]+)\]\s*NbOutputs\s*$")


def compacted_ini_text(small, source_path: str, out_dir: str) -> str:
    """The INI text describing ``small`` (a compacted network built from ``source_path``),
    for a file written in ``out_dir``."""
    return edited_ini_text(small.ini, source_path, out_dir, ini_edits(small))


def edited_ini_text(ini, source_path: str, out_dir: str,
                    edits: Dict[str, Dict[str, Optional[str]]]) -> str:
    """The text of ``source_path`` (loaded as ``ini``) with ``edits`` applied, for a file
    written in ``out_dir``: section -> key -> new raw value, None to remove the key (an error
    where the section inherits it), or ``COMMENT_OUT`` to comment it out (``n2prune.sensitivity``
    moves thresholds from a ConfigSection to the cells so). Everything else is kept."""
    with open(source_path, "rb") as stream:
        text = stream.read().decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    lines = _expand_for(lines, ini, edits, source_path)
    for section, keys in edits.items():
        for key, value in keys.items():
            lines = _comment_key(lines, section, key) if value == COMMENT_OUT else \
                _set_key(lines, section, key, value)
    lines = [_relocate_template(line, os.path.dirname(source_path) or ".", out_dir)
             for line in lines]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- what changes
def ini_edits(small) -> Edits:
    """Section -> key -> new value, for every key whose value compaction changed."""
    edits: Edits = {}
    counts = {name: info.output_shape[0] for name, info in small.info.items()}
    for name, cell in small.cells.items():
        section, info = small.ini[name], small.info[name]
        old = small.compaction["channels_before"][name]
        if counts[name] != old and "NbOutputs" in section:
            raw = section.raw("NbOutputs")
            match = _REFERENCE.match(raw)
            if not (match and counts.get(match.group(1)) == counts[name]):
                edits.setdefault(name, {})["NbOutputs"] = str(counts[name])
        _mapping_edits(small, name, cell, section, info, edits)
        if info.type == "ElemWise" and cell.coeff_mode == "PerChannel":
            for key, values in (("Weights", cell.weights), ("Shifts", cell.shifts)):
                if key in section:
                    edits.setdefault(name, {})[key] = " ".join(f"{v:.9g}" for v in values)
    return edits


def _mapping_edits(small, name, cell, section, info, edits: Edits) -> None:
    before = small.compaction["inputs_before"][name]
    if [c for c, _, _ in info.input_shapes] == before:
        return
    groups = getattr(cell, "groups", 1)   # a grouped cell's shrinker may have changed it
    if "Mapping.NbGroups" in section and groups > 1 and cell.nb_inputs == groups:
        edits.setdefault(name, {})["Mapping.NbGroups"] = str(groups)
    table = _map_of(cell)
    if table is None:
        return
    grouped = [k for k in ("Mapping.NbGroups", "Mapping.ChannelsPerGroup") if k in section]
    explicit = bool(grouped) and not _groups_hold(section, grouped[0],
                                                  edits.get(name, {}).get(grouped[0]), table,
                                                  info)
    if explicit:   # e.g. a depthwise conv of two inputs that lost different channels
        edits.setdefault(name, {}).update({key: None for key in grouped})
    first = 0
    for parent, (channels, _, _) in zip(info.inputs, info.input_shapes):
        key = f"Mapping({parent_key_name(parent)})"
        part = table[:, first:first + channels]
        first += channels
        if key in section or explicit:
            rows = part.t().int().tolist()   # one text row per input channel
            edits.setdefault(name, {})[key] = "\n".join(" ".join(map(str, row)) for row in rows)


def _groups_hold(section, key: str, value: Optional[str], table: torch.Tensor, info) -> bool:
    """Whether ``key`` (``Mapping.NbGroups`` or ``.ChannelsPerGroup``, ``value`` when edited)
    still gives each parent's part of ``table`` with the compacted channel counts."""
    number = int(value) if value is not None else section.get(key, read_uint)
    first = 0
    for channels, _, _ in info.input_shapes:
        if key.endswith("NbGroups"):
            groups, per_group = number, (channels // number if number else 0)
        else:
            groups, per_group = (channels // number if number else 0), number
        if not 0 < per_group <= channels or not groups or channels % groups:
            return False
        if not torch.equal(group_map(table.shape[0], channels, groups, per_group),
                           table[:, first:first + channels]):
            return False
        first += channels
    return True


def _map_of(cell) -> Optional[torch.Tensor]:
    if getattr(cell, "connection", None) is not None:
        return cell.connection[:, :, 0, 0].bool()
    if getattr(cell, "mapping", None) is not None and cell.mapping.dim() == 2:
        return cell.mapping.bool()
    return None


# ----------------------------------------------------------------------------- text edits
def _header(line: str) -> Optional[str]:
    text = line.split(";")[0].strip()
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")].split("@")[0]
    return None


def _section_span(lines: List[str], section: str) -> Tuple[int, int]:
    start = next((i for i, line in enumerate(lines) if _header(line) == section), None)
    if start is None:
        raise ValueError(f"cannot write back [{section}]: its header is not in the file (a "
                         f"section from a nested template?)")
    end = next((i for i in range(start + 1, len(lines)) if _header(lines[i]) is not None),
               len(lines))
    return start, end


def _set_key(lines: List[str], section: str, key: str, value: Optional[str]) -> List[str]:
    """Replace ``key``'s value in ``section`` (keeping a trailing comment), or add it under
    the header; a ``None`` value removes the key's line(s)."""
    start, end = _section_span(lines, section)
    if value is None:
        return _remove_key(lines, section, key, start, end)
    rows = value.split("\n")
    new = [f"{key}={rows[0]}"] if len(rows) == 1 else \
        [f"{key}=\\"] + [row + " \\" for row in rows[:-1]] + [rows[-1]]
    for i in range(start + 1, end):
        code, sep, comment = lines[i].partition(";")
        if "=" in code and code.split("=", 1)[0].strip() == key:
            last = i
            while lines[last].endswith("\\") and last + 1 < len(lines):
                last += 1    # a value continued with '\' over several lines
            indent = code[:len(code) - len(code.lstrip())]
            new[0] = indent + new[0]
            if sep and last == i:
                new[-1] += f" {sep}{comment}"
            return lines[:i] + new + lines[last + 1:]
    return lines[:start + 1] + new + lines[start + 1:]


def _key_span(lines: List[str], key: str, start: int, end: int):
    """(first, last) line of ``key``'s entry between ``start`` and ``end`` (continuations
    included), or None."""
    for i in range(start + 1, end):
        code = lines[i].partition(";")[0]
        if "=" in code and code.split("=", 1)[0].strip() == key:
            last = i
            while lines[last].endswith("\\") and last + 1 < len(lines):
                last += 1
            return i, last
    return None


def _comment_key(lines: List[str], section: str, key: str) -> List[str]:
    """Turn ``key``'s line(s) in ``section`` into comments (a no-op where it is absent)."""
    start, end = _section_span(lines, section)
    span = _key_span(lines, key, start, end)
    if span is None:
        return lines
    i, last = span
    return lines[:i] + [f"; {line}" for line in lines[i:last + 1]] + lines[last + 1:]


def _remove_key(lines: List[str], section: str, key: str, start: int, end: int) -> List[str]:
    span = _key_span(lines, key, start, end)
    if span is None:
        raise ValueError(f"cannot write back [{section}]: {key} must go (the compacted "
                         f"channels need an explicit Mapping), but it is not written in the "
                         f"section itself")
    i, last = span
    return lines[:i] + lines[last + 1:]


def _instances_of(data) -> List[str]:
    """The template instances whose output holds ``data``, outermost first."""
    return re.findall(r"\[([^\]]+)\] at ", data.via or "")[::-1]


def _expand_for(lines: List[str], ini, edits: Edits, source_path: str) -> List[str]:
    """Expand, outermost first, the template instances holding a section to edit, down to
    the one that writes it (a template instantiating another: each level in turn)."""
    table = ini._table
    while True:
        headers = {_header(line) for line in lines}
        missing = [s for s in edits if s not in headers]
        if not missing:
            return lines
        chain = next((name for s in missing for name in _instances_of(table.by_name[s])
                      if _instance_line(lines, name) is not None), None)
        if chain is None:
            raise ValueError(f"cannot write back [{missing[0]}]: neither its header nor the "
                             f"template instance writing it is in the file")
        lines = _expand_instance(lines, ini, chain, source_path)


def _instance_line(lines: List[str], name: str) -> Optional[int]:
    return next((i for i, line in enumerate(lines) if line.strip().startswith(f"[{name}@")),
                None)


def _expand_instance(lines: List[str], ini, name: str, source_path: str) -> List[str]:
    """Replace ``[name@file.tpl]`` and its parameter lines with the rendered sections (a
    template path is relative to the INI file, in a template too, as N2D2 reads it)."""
    start = _instance_line(lines, name)
    header = lines[start].strip()
    template = header[header.index("@") + 1:header.index("]")]
    end = next((i for i in range(start + 1, len(lines)) if _header(lines[i]) is not None),
               len(lines))
    data = ini._table.by_name[name]
    resolved = _expand_env(template, ini.environ)
    if not os.path.isabs(resolved):
        resolved = os.path.join(os.path.dirname(source_path) or ".", resolved)
    section = ini[name]
    params = {"SECTION_NAME": name, "SECTION_FILE_NAME": resolved}
    for key in data.entries:
        if key not in params:
            params[key] = section[key]
    rendered = render_file(resolved, params).text.rstrip("\n").split("\n")
    note = [f"; [{header[1:header.index(']')]}] expanded by n2prune-compact: its sections "
            f"lost different numbers of channels"]
    return lines[:start] + note + rendered + [""] + lines[end:]


def _expand_env(text: str, environ) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: environ.get(m.group(1), m.group(0)), text)


def _relocate_template(line: str, source_dir: str, out_dir: str) -> str:
    """A relative ``[name@path]`` include, rewritten to be found from ``out_dir``."""
    stripped = line.strip()
    if not (stripped.startswith("[") and "@" in stripped.split("]")[0]):
        return line
    close = stripped.index("]")
    name, path = stripped[1:close].split("@", 1)
    if path.startswith(("$", "/")):
        return line
    new = os.path.relpath(os.path.join(os.path.abspath(source_dir), path),
                          os.path.abspath(out_dir))
    return f"[{name}@{new}]{stripped[close + 1:]}"
