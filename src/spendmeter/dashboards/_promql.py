"""PromQL shared by the dashboards."""

from __future__ import annotations


def increase(selector: str, window: str) -> str:
    """`increase(selector[window])` that also counts a new series' first value.

    increase() needs two samples of a series, so the first spend of a new user, feature or model (its series
    appears already above 0) would read 0. A series that did not exist `window` ago started at 0 inside the
    window: all of its value belongs to it. The recording rules (*:llm_cost_usd:increase1h in
    prometheus/rules/recording.yml) use the same form; `and`/`unless` bind tighter than `or`.
    """
    return (f"(increase({selector}[{window}]) and {selector} offset {window}"
            f" or {selector} unless {selector} offset {window})")
