"""N2D2 INI text -> sections whose keys carry (value, file, line).

Read order: ``files`` (regular files of bounded size only), ``reader`` (text -> raw sections,
``[a@file.tpl]`` templates through ``template``: ``template_parser`` -> ``template_nodes``,
rendered under a work budget),
``store`` (the raw sections), ``evaluate`` (``[S]K``, ``${VAR}`` and ``$(...)`` through the
arithmetic evaluator ``expr``), ``inifile`` (``IniFile`` / ``Section``: typed, located reads),
``values`` (N2D2's typed value readers) and ``params`` (INI key <-> argument tables).
"""

from n2prune.ini.inifile import IniFile, Section, load, loads

__all__ = ["IniFile", "Section", "load", "loads"]
