"""Provider names in configuration that can never match a call are caught at `init()`, not at the month's
end: a near-miss of a known provider is an error, any other unmapped name a warning. A provider name is live
when the price data knows it, when an endpoint (the built-in table, SPENDMETER_PROVIDERS, the prices file's
`[providers]`) maps to it, or when it is an OpenTelemetry provider id spendmeter itself gives calls (Azure,
Bedrock, Vertex, Gemini)."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from spendmeter.errors import ConfigError
from spendmeter.providers import endpoints

log = logging.getLogger("spendmeter")


def live_providers(pricebook: Any, mapping: Mapping[str, str]) -> set[str]:
    # The price data and our shipped overrides, not the user's file: its own entries are what is checked.
    ids = set(pricebook._catalog.provider_ids()) | {e.provider for e in pricebook._shipped.entries if e.provider}
    ids |= set(endpoints.HOSTS.values()) | set(mapping.values())
    ids |= {endpoints.OPENAI, endpoints.AZURE, endpoints.ANTHROPIC, endpoints.BEDROCK, endpoints.VERTEX}
    ids |= {"gcp.gemini"}
    return {endpoints.canonical(i) for i in ids}


def check_providers(names: Iterable[tuple[str, str, str | None]], live: set[str]) -> None:
    """`names`: (provider, key, file). A name no call can carry that is one slip away from a known provider
    (`opnai`) is a ConfigError; any other unmapped name is one warning (its endpoint may be mapped in another
    environment, as a prices file shared by dev and prod does)."""
    for provider, key, file in names:
        if endpoints.canonical(provider) in live:
            continue
        close = difflib.get_close_matches(provider.lower(), sorted(live), n=1, cutoff=0.8)
        fix = "map an endpoint to it (SPENDMETER_PROVIDERS=\"host=provider\" or the prices file's [providers] table)"
        if close:
            raise ConfigError(f"no call can have provider {provider!r}: did you mean {close[0]!r}? "
                              f"A provider of your own needs an endpoint: {fix}", key=key, file=file)  # fmt: skip
        log.warning("spendmeter: %s%s names provider %r, which no endpoint maps to yet: %s",
                    f"{file}: " if file else "", key, provider, fix)  # fmt: skip


def configured_providers(pricebook: Any, budgets: Any) -> list[tuple[str, str, str | None]]:
    """Every provider the prices file's models and the budgets' `match` name, with where it is written."""
    out: list[tuple[str, str, str | None]] = []
    user = getattr(pricebook, "_user", None)
    if user is not None:
        out += [(e.provider, f"{e.key}.provider", user.path) for e in user.entries if e.provider]
    if budgets is not None:
        for i, budget in enumerate(budgets.config.budgets):
            for value in sorted(budget.match.get("provider", ())):
                out.append((value, f"budgets[{i}].match.provider", budgets.config.file))
    return out
