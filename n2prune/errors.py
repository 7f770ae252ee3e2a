"""ConfigError: a ValueError that knows the file, line, section and key it is about."""

from __future__ import annotations

from typing import Optional


class ConfigError(ValueError):
    """A bad value in a configuration file.

    The message starts with ``path:line:`` when both are known, then names the section and
    key, so editors and terminals can jump to the spot.

    >>> str(ConfigError("unknown filler", path="net.ini", line=3, section="conv1", key="F"))
    'net.ini:3: [conv1] F: unknown filler'
    """

    def __init__(self, message: str, *, path: Optional[str] = None, line: Optional[int] = None,
                 section: Optional[str] = None, key: Optional[str] = None,
                 value: Optional[str] = None):
        self.path, self.line, self.section, self.key = path, line, section, key
        self.value = value
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        what = ""
        if self.section is not None:
            what = f"[{self.section}] "
        if self.key is not None:
            what += self.key if self.value is None else f"{self.key}={self.value}"
            what += ": "
        return f"{where}{what}{self.reason}"

    def __reduce__(self):
        return (_rebuild, (self.reason, self.path, self.line, self.section, self.key, self.value))


def _rebuild(reason, path, line, section, key, value):
    return ConfigError(reason, path=path, line=line, section=section, key=key, value=value)


class ConfigWarning(UserWarning):
    """A configuration value N2D2 accepts but probably does not mean what was written."""

    def __init__(self, message: str, *, path: Optional[str] = None, line: Optional[int] = None,
                 section: Optional[str] = None, key: Optional[str] = None):
        self.path, self.line, self.section, self.key = path, line, section, key
        super().__init__(ConfigError(message, path=path, line=line, section=section,
                                     key=key).args[0])
