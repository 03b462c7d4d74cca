"""Errors spendmeter raises on purpose: bad configuration at init(), and nothing else reaches the caller."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad configuration: the message names the file, the key and the fix."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ", ".join(p for p in (f"file {file}" if file else "", f"key {key!r}" if key else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.key = key
