"""PostgreSQL connection details shared by the budget spend store and the call ledger: the DSN (direct or
from an environment variable), the lazily imported driver, and a password-free form for messages."""

from __future__ import annotations

import os
from typing import Any

from spendmeter.errors import ConfigError

PG_PREFIXES = ("postgresql://", "postgres://", "env:")
INSTALL_HINT = "pip install 'spendmeter[postgres]'"


def import_psycopg(what: str) -> Any:
    """psycopg 3, or a ConfigError that says how to install it."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError(f"{what} needs psycopg 3, which is not installed: {INSTALL_HINT}") from None
    return psycopg


def resolve_dsn(store: str, *, key: str = "store", file: str | None = None) -> str:
    """`postgresql://...` as is; `env:NAME` from the environment (so the password is not in the file)."""
    if store.startswith("env:"):
        name = store[len("env:") :].strip()
        value = os.environ.get(name, "").strip() if name else ""
        if not value:
            raise ConfigError(
                f"{store!r} names the environment variable {name or '(empty)'!r}, which is not set; "
                "set it to postgresql://user@host:5432/db",
                key=key,
                file=file,
            )
        store = value
    if not store.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"expected postgresql://user@host:5432/db, got {redact_dsn(store)!r}", key=key, file=file)
    return store


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return dsn
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
