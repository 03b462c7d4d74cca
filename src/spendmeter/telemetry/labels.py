"""The label policy: a call's label values computed once, and used by every exporter, the spans, the budget
gauges and the JSON API, so privacy and bounds are decided in one place.

Two steps, both done by the recorder:
- `identity(attribution)` when the call starts: the user id hashed (when a key is set) and over-long values
  shortened. These values are what spans, the ledger, budget keys and `/api/budgets` show. They are never
  folded, so a user past the series cap still has a budget of its own.
- `labels(call)` when it finishes: the Prometheus/OTLP label values, each label keeping at most `caps[label]`
  distinct values per process; later ones fold into `other` (the fold is named in `Labels.folded`), so totals
  over all series stay exact while series stay bounded.

Tags (`attribute(team=...)`) are shortened like the other values in `identity`. Only the tags named in
`tags` (SPENDMETER_LABEL_TAGS) become series labels: their values follow the five base values in
`Labels.values`, in the configured order, capped like the others (`DEFAULT_TAG_CAP` each unless `caps`
names them).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spendmeter.call import UNKNOWN, Attribution

if TYPE_CHECKING:
    from spendmeter.call import Call

DEFAULT_CAPS: Mapping[str, int] = {"user": 1000, "feature": 100, "agent": 100, "model": 200, "provider": 20}
DEFAULT_MAX_LENGTH = 64
OTHER = "other"
SERIES_LABELS = ("provider", "model", "user", "feature", "agent")
DEFAULT_TAG_CAP = 100


@dataclass(frozen=True, slots=True)
class Labels:
    """A finished call's label values, bounded. `values` is (provider, model, user, feature, agent), then
    the value of each tag label the policy exports (LabelPolicy.tags), in that order."""

    values: tuple[str, ...]
    folded: tuple[str, ...] = ()  # labels whose value was folded into `other` for this call

    @property
    def provider(self) -> str:
        return self.values[0]

    @property
    def model(self) -> str:
        return self.values[1]

    @property
    def user(self) -> str:
        return self.values[2]

    @property
    def feature(self) -> str:
        return self.values[3]

    @property
    def agent(self) -> str:
        return self.values[4]


class LabelPolicy:
    """Hash, shorten and cap label values. Thread-safe; one instance per pipeline."""

    def __init__(
        self,
        caps: Mapping[str, int] | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        hash_key: bytes | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        self.tags = tuple(tags)  # tag names exported as series labels, after the five base labels
        self.caps = {**DEFAULT_CAPS, **{t: DEFAULT_TAG_CAP for t in self.tags}, **(caps or {})}
        self.max_length = max_length
        self.hash_key = hash_key
        self._seen: dict[str, set[str]] = {label: set() for label in (*SERIES_LABELS, *self.tags)}
        self._lock = threading.Lock()

    # -- identity: privacy and length, at start ---------------------------------------------------------
    def identity(self, who: Attribution) -> Attribution:
        """The attribution as every output shows it: user hashed (if keyed), long values shortened."""
        limit = self.max_length
        if (self.hash_key is None and all(v is None or len(v) <= limit for v in (who.user, who.feature, who.agent))
                and all(len(v) <= limit for _, v in who.tags)):
            return who  # nothing to change: no copy on the hot path
        user = who.user
        if user is not None and self.hash_key is not None:
            user = self.hash_user(user)
        return Attribution(
            user=self.shorten(user),
            feature=self.shorten(who.feature),
            agent=self.shorten(who.agent),
            conversation=who.conversation,
            tags=tuple((name, self.shorten(value) or value) for name, value in who.tags),
        )

    def hash_user(self, user: str) -> str:
        """A keyed hash (HMAC-SHA256, 16 hex digits): stable for one key, not reversible without it."""
        assert self.hash_key is not None
        return hmac.new(self.hash_key, user.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:16]

    def shorten(self, value: str | None) -> str | None:
        """At most `max_length` characters; a longer value keeps a prefix and a digest of the whole, so two
        long values that share a prefix stay apart."""
        if value is None or len(value) <= self.max_length:
            return value
        digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:8]
        keep = max(0, self.max_length - len(digest) - 1)
        return f"{value[:keep]}~{digest}"[: self.max_length]

    # -- series labels: bounded, at finish --------------------------------------------------------------
    def labels(self, call: Call, model: str | None = None) -> Labels:
        """`model`: the series of another model that ran part of the call (a step), else the call's own."""
        who = call.identity if call.identity is not None else self.identity(call.attribution)
        raw = (self.shorten(call.provider), self.shorten(model or call.model), who.user, who.feature, who.agent,
               *(who.tag(name) for name in self.tags))
        values: list[str] = []
        folded: list[str] = []
        for label, value in zip((*SERIES_LABELS, *self.tags), raw, strict=True):
            if not value:
                values.append(UNKNOWN)
                continue
            seen = self._seen[label]
            if value not in seen:
                with self._lock:
                    if value not in seen:
                        if len(seen) < self.caps[label]:
                            seen.add(value)
                        else:
                            folded.append(label)
                            value = OTHER
            values.append(value)
        return Labels(tuple(values), tuple(folded))
