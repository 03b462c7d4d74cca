"""`init()` arguments and the SPENDMETER_* / OTEL_* environment → one frozen `Settings`.

Every environment variable spendmeter reads is a constant below. An argument given to `init()` wins over the
environment. Bad values fail here, as a `ConfigError` that names the setting and the fix, before anything
is started or changed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spendmeter.errors import ConfigError
from spendmeter.runtime.pipeline import DEFAULT_USAGE_HOSTS
from spendmeter.telemetry.labels import DEFAULT_CAPS, DEFAULT_MAX_LENGTH

ENV_SERVICE_NAME = "SPENDMETER_SERVICE_NAME"  # falls back to OTEL_SERVICE_NAME
ENV_PROMETHEUS_PORT = "SPENDMETER_PROMETHEUS_PORT"  # default 9464; "off" disables the /metrics server
ENV_PROMETHEUS_HOST = "SPENDMETER_PROMETHEUS_HOST"  # default 127.0.0.1
ENV_PRICES = "SPENDMETER_PRICES"  # price overrides file (TOML or YAML)
ENV_BUDGETS = "SPENDMETER_BUDGETS"  # budgets file (YAML)
ENV_CAPTURE_CONTENT = "SPENDMETER_CAPTURE_CONTENT"  # also OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
ENV_HASH_USERS = "SPENDMETER_HASH_USERS"  # a secret key: user ids become keyed hashes in every output
ENV_LABEL_CAPS = "SPENDMETER_LABEL_CAPS"  # e.g. "user=1000,feature=100"
ENV_LABEL_MAX_LENGTH = "SPENDMETER_LABEL_MAX_LENGTH"  # default 64
ENV_LABEL_TAGS = "SPENDMETER_LABEL_TAGS"  # tags exported as Prometheus labels, e.g. "team,tenant" (default none)
ENV_USAGE_HOSTS = "SPENDMETER_USAGE_HOSTS"  # hosts where streams get stream_options.include_usage added
# API endpoint -> provider, e.g. "localhost:11434=ollama,gateway.corp/anthropic=anthropic" (docs/instrumentation.md)
ENV_PROVIDERS = "SPENDMETER_PROVIDERS"
ENV_OTLP_ENDPOINT = "SPENDMETER_OTLP_ENDPOINT"  # falls back to OTEL_EXPORTER_OTLP_ENDPOINT
ENV_LEDGER = "SPENDMETER_LEDGER"  # per-call ledger: a SQLite path, sqlite:///file.db or postgresql://...
ENV_ALLOWED_HOSTS = "SPENDMETER_ALLOWED_HOSTS"  # Host names /metrics answers to besides loopback ones
ENV_METRICS_AUTH = "SPENDMETER_METRICS_AUTH"  # "user:password": basic auth on /metrics and the JSON API
ENV_TLS_CERT = "SPENDMETER_TLS_CERT"  # PEM certificate (chain) file: serve /metrics over HTTPS
ENV_TLS_KEY = "SPENDMETER_TLS_KEY"  # its private key file, when not in the certificate file
ENV_SHUTDOWN_TIMEOUT = "SPENDMETER_SHUTDOWN_TIMEOUT"  # seconds shutdown() may take in all, default 5
ENV_FINISH = "SPENDMETER_FINISH"  # "background" (default) or "inline": where a call's records are written
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

DEFAULT_PORT = 9464
DEFAULT_HOST = "127.0.0.1"
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    service_name: str = "spendmeter"
    serve_metrics: bool = True
    prometheus_host: str = DEFAULT_HOST
    prometheus_port: int = DEFAULT_PORT
    otlp_endpoint: str | None = None
    prices: str | None = None
    budgets: str | None = None
    ledger: str | None = None
    capture_content: bool = False
    label_caps: Mapping[str, int] = field(default_factory=dict)
    label_max_length: int = DEFAULT_MAX_LENGTH
    label_tags: tuple[str, ...] = ()  # attribute() tags that become series labels, in this order
    hash_users_key: bytes | None = None
    usage_hosts: tuple[str, ...] = DEFAULT_USAGE_HOSTS
    providers: Mapping[str, str] = field(default_factory=dict)  # endpoint -> provider, from args or env
    allowed_hosts: tuple[str, ...] = ()
    metrics_auth: tuple[str, str] | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    finish: str = "background"  # runtime.finisher: records written on a background thread, or inline


def _flag(env: Mapping[str, str], *names: str) -> bool | None:
    for name in names:
        value = env.get(name)
        if value is None:
            continue
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"expected true or false, got {value!r}", key=name)
    return None


def parse_label_tags(given: str | Sequence[str] | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """`init(label_tags=...)` (names, or "team,tenant"), else SPENDMETER_LABEL_TAGS: checked tag names."""
    from spendmeter.attribution import check_tag_name

    key = "label_tags" if given is not None else ENV_LABEL_TAGS
    text = env.get(ENV_LABEL_TAGS, "") if given is None else given
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    out: list[str] = []
    for name in filter(None, names):
        try:
            check_tag_name(name)
        except ValueError as exc:
            raise ConfigError(f"{exc}; name the attribute() tags to export, e.g. 'team,tenant'", key=key) from None
        if name not in out:
            out.append(name)
    return tuple(out)


def parse_caps(text: str, key: str = ENV_LABEL_CAPS, tags: tuple[str, ...] = ()) -> dict[str, int]:
    caps: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        label, _, number = part.partition("=")
        if not number.strip().isdigit():
            raise ConfigError(f"expected label=N pairs such as 'user=1000', got {part!r}", key=key)
        caps[label.strip()] = int(number)
    return check_caps(caps, key, tags)


def check_caps(caps: Mapping[str, Any], key: str = "label_caps", tags: tuple[str, ...] = ()) -> dict[str, int]:
    out: dict[str, int] = {}
    for label, cap in caps.items():
        if label not in DEFAULT_CAPS and label not in tags:
            raise ConfigError(f"unknown label {label!r}; caps exist for {', '.join((*DEFAULT_CAPS, *tags))}",
                              key=key)
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise ConfigError(f"expected a whole number ≥ 1 as the cap for {label!r}, got {cap!r}", key=key)
        out[label] = cap
    return out


def _port(text: str, key: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"expected a port number (1-65535) or 'off', got {text!r}", key=key) from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"expected a port number (1-65535, or 0 for any free port), got {port}", key=key)
    return port


def _hosts(text: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in text.split(",") if h.strip())


def resolve(
    *,
    service_name: str | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str | None = None,
    otlp_endpoint: str | None = None,
    prices: str | os.PathLike[str] | None = None,
    budgets: str | os.PathLike[str] | None = None,
    capture_content: bool | None = None,
    label_caps: Mapping[str, int] | None = None,
    label_tags: str | Sequence[str] | None = None,
    hash_users_key: str | None = None,
    usage_hosts: tuple[str, ...] | None = None,
    providers: Mapping[str, str] | str | None = None,
    serve_metrics: bool = True,
    ledger: str | os.PathLike[str] | None = None,
    allowed_hosts: tuple[str, ...] | None = None,
    metrics_auth: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    shutdown_timeout_s: float | None = None,
    finish: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The settings `init()` runs with: arguments first, then the environment, then the defaults."""
    env = os.environ if env is None else env
    port_text = env.get(ENV_PROMETHEUS_PORT, "").strip()
    if port_text.lower() == "off":
        serve_metrics = False
    if prometheus_port is None:
        prometheus_port = _port(port_text, ENV_PROMETHEUS_PORT) if port_text and serve_metrics else DEFAULT_PORT
    elif not isinstance(prometheus_port, int) or not 0 <= prometheus_port <= 65535:
        raise ConfigError(f"expected a port number (1-65535), got {prometheus_port!r}", key="prometheus_port")
    length_text = env.get(ENV_LABEL_MAX_LENGTH, str(DEFAULT_MAX_LENGTH)).strip()
    if not length_text.isdigit() or not 16 <= int(length_text) <= 1024:
        raise ConfigError(f"expected a whole number from 16 to 1024, got {length_text!r}", key=ENV_LABEL_MAX_LENGTH)
    if capture_content is None:
        capture_content = bool(_flag(env, ENV_CAPTURE_CONTENT, OTEL_CAPTURE_CONTENT))
    key = hash_users_key if hash_users_key is not None else env.get(ENV_HASH_USERS) or None
    if usage_hosts is None:
        usage_hosts = _hosts(env[ENV_USAGE_HOSTS]) if env.get(ENV_USAGE_HOSTS) else DEFAULT_USAGE_HOSTS
    endpoint = otlp_endpoint or env.get(ENV_OTLP_ENDPOINT) or env.get(OTEL_EXPORTER_OTLP_ENDPOINT) or None
    if tls_key and not tls_cert and not env.get(ENV_TLS_CERT):
        raise ConfigError("a TLS key without a certificate; set the certificate too", key=ENV_TLS_CERT)
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"expected an http:// or https:// URL, got {endpoint!r}", key="otlp_endpoint")
    tags = parse_label_tags(label_tags, env)
    return Settings(
        providers=_providers(providers, env),
        service_name=service_name or env.get(ENV_SERVICE_NAME) or env.get(OTEL_SERVICE_NAME) or "spendmeter",
        serve_metrics=serve_metrics,
        prometheus_host=prometheus_host or env.get(ENV_PROMETHEUS_HOST) or DEFAULT_HOST,
        prometheus_port=prometheus_port,
        otlp_endpoint=endpoint,
        prices=_path(prices if prices is not None else env.get(ENV_PRICES)),
        budgets=_path(budgets if budgets is not None else env.get(ENV_BUDGETS)),
        ledger=_path(ledger if ledger is not None else env.get(ENV_LEDGER)),
        capture_content=capture_content,
        label_caps=(check_caps(label_caps, tags=tags) if label_caps is not None
                    else parse_caps(env.get(ENV_LABEL_CAPS, ""), tags=tags)),
        label_tags=tags,
        label_max_length=int(length_text),
        hash_users_key=key.encode() if key else None,
        usage_hosts=tuple(usage_hosts),
        allowed_hosts=tuple(allowed_hosts) if allowed_hosts is not None else _hosts(env.get(ENV_ALLOWED_HOSTS, "")),
        metrics_auth=_auth(metrics_auth if metrics_auth is not None else env.get(ENV_METRICS_AUTH)),
        tls_cert=_readable(tls_cert or env.get(ENV_TLS_CERT) or None, ENV_TLS_CERT),
        tls_key=_readable(tls_key or env.get(ENV_TLS_KEY) or None, ENV_TLS_KEY),
        shutdown_timeout_s=_seconds(shutdown_timeout_s, env.get(ENV_SHUTDOWN_TIMEOUT), ENV_SHUTDOWN_TIMEOUT),
        finish=_finish_mode(finish, env),
    )


def _finish_mode(given: str | None, env: Mapping[str, str]) -> str:
    from spendmeter.runtime.finisher import MODES

    key = "finish" if given is not None else ENV_FINISH
    text = (given if given is not None else env.get(ENV_FINISH, "background")).strip().lower() or "background"
    if text not in MODES:
        raise ConfigError(f"expected one of {', '.join(MODES)}, got {text!r}", key=key)
    return text


def _auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ConfigError("expected user:password (both non-empty)", key=ENV_METRICS_AUTH)  # never echo it
    return user, password


def _readable(path: str | None, key: str) -> str | None:
    if path is not None and not os.access(path, os.R_OK):
        raise ConfigError(f"cannot read {path!r}; give a readable PEM file", key=key)
    return path


def _seconds(value: float | None, text: str | None, key: str) -> float:
    if value is None and not text:
        return DEFAULT_SHUTDOWN_TIMEOUT_S
    try:
        seconds = float(value if value is not None else text)  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(f"expected a number of seconds, got {text!r}", key=key) from None
    if not 0 < seconds <= 600:
        raise ConfigError(f"expected seconds between 0 and 600, got {seconds:g}", key=key)
    return seconds


def _providers(given: Mapping[str, str] | str | None, env: Mapping[str, str]) -> dict[str, str]:
    """`init(providers=...)` (a mapping, or the env's "host=provider,..." text), else SPENDMETER_PROVIDERS."""
    from spendmeter.providers.endpoints import canonical, normalize_where, parse_mapping

    key = "providers" if given is not None else ENV_PROVIDERS
    if given is None:
        given = env.get(ENV_PROVIDERS, "")
    if isinstance(given, str):
        try:
            return parse_mapping(given)
        except ValueError as exc:
            raise ConfigError(str(exc), key=key) from None
    out: dict[str, str] = {}
    for where, provider in given.items():
        if not isinstance(where, str) or not where.strip() or not isinstance(provider, str) or not provider.strip():
            raise ConfigError(f"expected endpoint -> provider names such as {{'localhost:11434': 'ollama'}}, "
                              f"got {where!r}: {provider!r}", key=key)
        out[normalize_where(where)] = canonical(provider)
    return out


def _path(value: str | os.PathLike[str] | None) -> str | None:
    if value is None:
        return None
    text = os.fspath(value)
    return text or None
