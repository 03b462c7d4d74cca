"""One parser for every store location, and a DSN password that never shows: not in `spendmeter budgets check`,
not in a ConfigError, not in a log record, not in a repr."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from spendmeter.budgets.config import load_budgets, parse_budgets
from spendmeter.budgets.store import open_store
from spendmeter.cli import main
from spendmeter.errors import ConfigError
from spendmeter.sinks.ledger import LedgerSink, open_backend
from spendmeter.storage import Target, parse_target, redact_dsn

SECRET = "s3cretpw"
UNREACHABLE = f"postgresql://u:{SECRET}@127.0.0.1:1/db"  # port 1: refused at once, no server needed


# ----------------------------------------------------------------------------------------- accepted forms


def test_a_plain_path_is_a_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_target("ledger.db", key="ledger") == Target("sqlite", path=str(tmp_path / "ledger.db"))
    assert parse_target(tmp_path / "a" / "b.db", key="ledger").path == str(tmp_path / "a" / "b.db")  # PathLike
    assert parse_target("/var/x.db", key="ledger").path == "/var/x.db"


def test_sqlite_urls_three_slashes_relative_four_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_target("sqlite:///rel.db", key="store").path == str(tmp_path / "rel.db")
    assert parse_target("sqlite:///data/rel.db", key="store", base_dir="/etc/app").path == "/etc/app/data/rel.db"
    assert parse_target("sqlite:////abs/x.db", key="store", base_dir="/etc/app").path == "/abs/x.db"
    assert parse_target("sqlite:////abs/x.db", key="store").kind == "sqlite"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://spendmeter@db.internal:5432/llm",
        "postgres://u:pw@10.0.0.5/llm?sslmode=require",
        "postgresql://",  # libpq defaults (PGHOST, PGUSER, ...)
        "postgresql://u@h1:5432,h2:5433/llm?target_session_attrs=read-write",
    ],
)
def test_postgresql_dsns_are_kept_as_written(dsn: str) -> None:
    target = parse_target(dsn, key="store")
    assert (target.kind, target.dsn, target.path, target.source) == ("postgresql", dsn, None, None)


def test_env_indirection_reads_the_dsn_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPENDMETER_TEST_DSN", f"postgresql://u:{SECRET}@db/llm")
    target = parse_target("env:SPENDMETER_TEST_DSN", key="ledger")
    assert (target.kind, target.dsn, target.source) == ("postgresql", f"postgresql://u:{SECRET}@db/llm",
                                                        "env:SPENDMETER_TEST_DSN")  # fmt: skip
    assert target.redacted == "postgresql://u:***@db/llm (from env:SPENDMETER_TEST_DSN)"
    monkeypatch.setenv("SPENDMETER_TEST_DSN", f"host=db dbname=llm password={SECRET}")  # libpq keyword form
    keyword = parse_target("env:SPENDMETER_TEST_DSN", key="ledger")
    assert keyword.kind == "postgresql" and SECRET not in keyword.redacted
    monkeypatch.setenv("SPENDMETER_TEST_DSN", f"sqlite:///{tmp_path}/spend.db")
    assert parse_target("env:SPENDMETER_TEST_DSN", key="store").path == str(tmp_path / "spend.db")


# ----------------------------------------------------------------------------------------- bad input

BAD = [
    # (written, words the error must hold)
    ("", "expected a file path, sqlite:///path.db or postgresql://"),
    ("   ", "expected a file path"),
    ("mysql://db/ledger", "expected a file path, sqlite:///path.db or postgresql://"),
    ("sqlite:///", "expected sqlite:///relative.db or sqlite:////absolute.db"),
    ("sqlite:///data/", "expected sqlite:///relative.db or sqlite:////absolute.db"),
    ("sqlite://host/x.db", "expected sqlite:///relative.db"),
    ("sqlite:///:memory:", "(a file)"),
    ("env:", "expected env:NAME"),
    ("env:1NOT-A-NAME", "expected env:NAME"),
    ("env:SPENDMETER_TEST_NOT_SET_ANYWHERE", "which is not set; set it to postgresql://"),
    ("postgresql://u@db/my db", "no blanks"),
]


@pytest.mark.parametrize(("written", "words"), BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_targets_raise_a_config_error_naming_the_key_and_the_fix(written: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_target(written, key="ledger")
    assert info.value.key == "ledger" and "key 'ledger'" in str(info.value)
    assert words in str(info.value)


def test_more_bad_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="expected memory or a DSN"):
        parse_target("spend.db", key="store", allow_path=False, expected="memory or a DSN")
    with pytest.raises(ConfigError, match="got 5"):
        parse_target(5, key="store")  # type: ignore[arg-type]
    monkeypatch.setenv("SPENDMETER_TEST_DSN", "env:OTHER")
    with pytest.raises(ConfigError, match="another env: reference"):
        parse_target("env:SPENDMETER_TEST_DSN", key="store")
    with pytest.raises(ConfigError) as info:
        parse_target(f"mysql://u:{SECRET}@db/x", key="store", file="budgets.yaml")
    assert info.value.file == "budgets.yaml" and SECRET not in str(info.value) and "u:***@db" in str(info.value)


# ----------------------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (f"postgresql://u:{SECRET}@db:5432/llm", "postgresql://u:***@db:5432/llm"),
        (f"postgres://u:{SECRET}@db/llm?sslmode=require", "postgres://u:***@db/llm?sslmode=require"),
        (f"postgresql://u:p@ss:{SECRET}@db/llm", "postgresql://u:***@db/llm"),  # '@' and ':' in the password
        (f"postgresql://u:a/{SECRET}@db/llm", "postgresql://u:***@db/llm"),  # a raw '/' in the password
        (
            f"postgresql://db/llm?user=u&password={SECRET}&sslmode=require",
            "postgresql://db/llm?user=u&password=***&sslmode=require",
        ),
        (f"postgresql://db/llm?PASSWORD={SECRET}", "postgresql://db/llm?PASSWORD=***"),
        (f"host=db password={SECRET} dbname=llm", "host=db password=*** dbname=llm"),
        (f"host=db password = '{SECRET} x' dbname=llm", "host=db password = *** dbname=llm"),
        (f"host=db sslpassword={SECRET}", "host=db sslpassword=***"),
        ("postgresql://u@db:5432/llm", "postgresql://u@db:5432/llm"),  # nothing to hide
        ("/var/lib/spend.db", "/var/lib/spend.db"),
    ],
)
def test_redaction(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown
    assert SECRET not in redact_dsn(dsn)


def test_a_target_shows_only_its_redacted_form() -> None:
    target = parse_target(f"postgresql://u:{SECRET}@db/llm?password={SECRET}", key="store")
    for shown in (repr(target), str(target), target.redacted, f"{target}", f"{target!r}", repr([target])):
        assert SECRET not in shown and "u:***@db" in shown
    assert target.dsn is not None and SECRET in target.dsn  # what psycopg connects with
    assert target.scrub(f'FATAL: password authentication failed for "{SECRET}"').count("***") == 1
    quoted = parse_target(f"postgresql://u:p%40{SECRET}@db/llm", key="store")  # percent-encoded '@'
    assert SECRET not in quoted.scrub(f"the server said p@{SECRET}")


# ----------------------------------------------------------------------------------------- every output

BUDGETS = """\
store: {store}
budgets:
  - name: user-daily
    scope: user
    period: {period}
    limit_usd: 2
"""


def _budgets_file(tmp_path: Path, store: str, period: str = "day") -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(BUDGETS.format(store=store, period=period))
    return path


def test_budgets_check_never_prints_the_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budgets", "check", str(_budgets_file(tmp_path, UNREACHABLE))]) == 0  # opens no store
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert "store postgresql postgresql://u:***@127.0.0.1:1/db" in out.splitlines()[0]

    for store in (f"{UNREACHABLE}?password={SECRET}", f"postgres://db/x?password={SECRET}"):
        assert main(["budgets", "check", str(_budgets_file(tmp_path, store))]) == 0
        out, err = capsys.readouterr()
        assert SECRET not in out + err and "password=***" in out

    # an invalid file with such a store, and an invalid store holding a password
    assert main(["budgets", "check", str(_budgets_file(tmp_path, UNREACHABLE, period="daily"))]) == 2
    assert main(["budgets", "check", str(_budgets_file(tmp_path, f"mysql://u:{SECRET}@db/x"))]) == 2
    out, err = capsys.readouterr()
    assert out == "" and SECRET not in err and "u:***@db" in err

    assert main(["budgets", "check", str(_budgets_file(tmp_path, "env:SPENDMETER_SPEND_DSN"))]) == 0
    assert "from the environment variable SPENDMETER_SPEND_DSN" in capsys.readouterr().out


def test_repr_of_a_budget_config_hides_the_store(tmp_path: Path) -> None:
    config = load_budgets(_budgets_file(tmp_path, UNREACHABLE))
    assert config.store_path == UNREACHABLE  # what open_store() connects with
    assert SECRET not in repr(config)
    assert SECRET not in repr(parse_budgets({"store": UNREACHABLE}))


@pytest.mark.parametrize(
    "target",
    [UNREACHABLE, f"postgresql://u@127.0.0.1:1/db?password={SECRET}", "env:SPENDMETER_TEST_SECRET_DSN"],
    ids=["userinfo", "query", "env"],
)
def test_a_failed_connection_never_shows_the_password(
    target: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("psycopg_pool")
    monkeypatch.setenv("SPENDMETER_TEST_SECRET_DSN", UNREACHABLE)
    caplog.set_level(logging.DEBUG)  # every logger: ours, psycopg's, the pool's
    for opener in (open_store, LedgerSink, open_backend):
        with pytest.raises(ConfigError, match="cannot connect") as info:
            opener(target)
        shown = [str(info.value), repr(info.value), str(info.value.__cause__), str(info.value.__context__)]
        assert not any(SECRET in s for s in shown), shown
        assert "127.0.0.1" in str(info.value)  # still says where it tried
    assert not [r for r in caplog.records if SECRET in r.getMessage() or SECRET in str(r.exc_info)]
