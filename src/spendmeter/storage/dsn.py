"""Where a store lives, parsed once for every target (the ledger, the budget spend store): a SQLite file or a
PostgreSQL DSN, with a password-free form for everything that shows it.

Accepted forms:

| written | means |
|---|---|
| `spend.db`, `data/ledger.db`, `/var/lib/x.db` | a SQLite file (where the caller allows plain paths) |
| `sqlite:///rel.db` | a SQLite file relative to the base directory (the budgets file's, else the cwd) |
| `sqlite:////abs.db` | an absolute SQLite path (four slashes: SQLAlchemy's convention) |
| `postgresql://user:pw@host:5432/db?sslmode=require`, `postgres://...` | PostgreSQL |
| `env:NAME` | the environment variable NAME holds one of the above, or a libpq keyword string (`host=... dbname=...`) |

A DSN is shown only as `Target.redacted` / `redact_dsn()`: the password of `user:pw@` and of any `password=`
parameter (URI query or keyword string) becomes `***`. Bad input raises `ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from spendmeter.errors import ConfigError

Kind = Literal["sqlite", "postgresql"]

PG_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"
ENV_PREFIX = "env:"
DEFAULT_EXPECTED = "a file path, sqlite:///path.db or postgresql://user@host:5432/db"
MASK = "***"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORD_DSN = re.compile(r"^\s*[A-Za-z_]+\s*=")  # libpq "host=... dbname=..." (only accepted via env:)
# password=... (also sslpassword) in a URI query (ends at &) or a keyword string (ends at a blank; may be quoted)
_PASSWORD_PARAM = re.compile(r"(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#]*)")


@dataclass(frozen=True, slots=True, repr=False)
class Target:
    """A parsed store location. `dsn` holds the password: print `redacted` (also what `repr()` and `str()` show)."""

    kind: Kind
    path: str | None = None  # sqlite: the file
    dsn: str | None = None  # postgresql: what psycopg connects with
    source: str | None = None  # "env:NAME" when it came from the environment

    @property
    def redacted(self) -> str:
        shown = self.path if self.kind == "sqlite" else redact_dsn(self.dsn or "")
        return f"{shown} (from {self.source})" if self.source else str(shown)

    def scrub(self, text: str) -> str:
        """`text` (a driver's error message, say) with this target's password masked wherever it appears."""
        for secret in _passwords(self.dsn or ""):
            text = text.replace(secret, MASK)
        return redact_dsn(text)

    def __repr__(self) -> str:
        return f"Target({self.kind!r}, {self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted


def parse_target(
    text: str | os.PathLike[str],
    *,
    key: str,
    file: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    allow_path: bool = True,
    expected: str = DEFAULT_EXPECTED,
) -> Target:
    """Parse a store location. `key` (and `file`) name where it was written, for the error message.
    `allow_path=False` refuses a bare path (where a typo such as `memroy` must not become a file)."""
    raw = os.fspath(text) if isinstance(text, os.PathLike) else text

    def fail(message: str) -> ConfigError:
        return ConfigError(message, key=key, file=file)

    if not isinstance(raw, str) or not raw.strip():
        raise fail(f"expected {expected}, got {raw!r}")
    raw = raw.strip()
    if raw.startswith(ENV_PREFIX):
        name = raw[len(ENV_PREFIX) :].strip()
        if not _ENV_NAME.match(name):
            raise fail(f"expected env:NAME with NAME an environment variable such as SPENDMETER_DSN, got {raw!r}")
        value = os.environ.get(name, "").strip()
        if not value:
            raise fail(
                f"{raw!r} names the environment variable {name!r}, which is not set; "
                "set it to postgresql://user@host:5432/db (or sqlite:///path.db)"
            )
        if value.startswith(ENV_PREFIX):
            raise fail(f"the environment variable {name!r} holds another env: reference; set it to the DSN itself")
        if _KEYWORD_DSN.match(value) and "://" not in value:
            return Target("postgresql", dsn=value, source=raw)
        inner = _parse_direct(value, base_dir=None, allow_path=True, expected=expected, fail=fail,
                              shown=f"the environment variable {name!r} holds")  # fmt: skip
        return Target(inner.kind, path=inner.path, dsn=inner.dsn, source=raw)
    return _parse_direct(raw, base_dir=base_dir, allow_path=allow_path, expected=expected, fail=fail, shown="got")


def _parse_direct(
    raw: str,
    *,
    base_dir: str | os.PathLike[str] | None,
    allow_path: bool,
    expected: str,
    fail: Callable[[str], ConfigError],
    shown: str,
) -> Target:
    if raw.startswith(PG_SCHEMES):
        if any(c.isspace() for c in raw):
            raise fail(f"a postgresql:// DSN has no blanks (percent-encode them), {shown} {redact_dsn(raw)!r}")
        return Target("postgresql", dsn=raw)
    if raw.startswith("sqlite:"):
        rest = raw[len(SQLITE_SCHEME) :] if raw.startswith(SQLITE_SCHEME) else ""
        if not rest or rest.endswith("/") or rest == ":memory:":
            shown_raw = redact_dsn(raw)
            raise fail(f"expected sqlite:///relative.db or sqlite:////absolute.db (a file), {shown} {shown_raw!r}")
        return Target("sqlite", path=_sqlite_path(rest, base_dir))
    if "://" in raw or not allow_path:
        raise fail(f"expected {expected}, {shown} {redact_dsn(raw)!r}")
    return Target("sqlite", path=_sqlite_path(raw, base_dir))


def _sqlite_path(path: str, base_dir: str | os.PathLike[str] | None) -> str:
    """Absolute: a relative path is taken from `base_dir` (the file that named it), else from the cwd now."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return str(p.resolve())


def redact_dsn(text: str) -> str:
    """`text` with every DSN password replaced by `***`: `user:pw@` in a URI, and `password=` parameters
    (URI query or libpq keyword string). Safe on any string; returns it unchanged when there is nothing to hide."""
    text = _PASSWORD_PARAM.sub(lambda m: m.group(1) + MASK, text)
    return _URI_CREDENTIALS.sub(_mask_userinfo, text)


# scheme://user:password@: the password may hold '@', ':' or even a raw '/'; the last '@' before the query
# wins, so an '@' in the path over-redacts (hides the host) rather than ever showing a password.
_URI_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^?#\s]*)@")


def _mask_userinfo(m: re.Match[str]) -> str:
    user, colon, _password = m.group(2).partition(":")
    return f"{m.group(1)}{user}{':' + MASK if colon else ''}@"


def _passwords(dsn: str) -> list[str]:
    """The literal passwords a DSN holds (as written and percent-decoded), longest first."""
    found: list[str] = []
    m = _URI_CREDENTIALS.search(dsn)
    if m is not None:
        _user, colon, password = m.group(2).partition(":")
        if colon and password:
            found += [password, unquote(password)]
    for pm in _PASSWORD_PARAM.finditer(dsn):
        value = pm.group(2).strip("'")
        if value:
            found += [value, unquote(value)]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)  # 1-2 chars would mask noise
