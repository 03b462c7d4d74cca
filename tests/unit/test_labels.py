"""The label policy: hashing, shortening and caps, decided once per call for every output."""

from __future__ import annotations

import threading

from spendmeter.call import Attribution, Call
from spendmeter.telemetry.labels import OTHER, LabelPolicy


def _call(user: str | None = "alice", model: str = "gpt-4o-mini") -> Call:
    return Call(provider="openai", operation="chat", request_model=model, attribution=Attribution(user, "f", "a", "c"))


def test_hashed_users_are_stable_and_never_the_raw_id():
    policy = LabelPolicy(hash_key=b"secret")
    who = policy.identity(Attribution(user="alice@example.com", feature="support"))
    assert who.user != "alice@example.com" and len(who.user) == 16
    assert policy.identity(Attribution(user="alice@example.com")).user == who.user
    assert LabelPolicy(hash_key=b"other").identity(Attribution(user="alice@example.com")).user != who.user
    assert who.feature == "support"  # only users are hashed


def test_long_values_are_shortened_and_stay_apart():
    policy = LabelPolicy(max_length=16)
    a = policy.shorten("summarization-of-long-documents-a")
    b = policy.shorten("summarization-of-long-documents-b")
    assert len(a) == len(b) == 16 and a != b
    assert a.startswith("summari")
    assert policy.shorten("short") == "short"


def test_labels_fold_past_the_cap_and_say_which_label_folded():
    policy = LabelPolicy({"user": 2})
    labels = [policy.labels(_call(user=f"u{i}")) for i in range(4)]
    assert [lab.user for lab in labels] == ["u0", "u1", OTHER, OTHER]
    assert labels[2].folded == ("user",) and labels[0].folded == ()
    assert policy.labels(_call(user="u1")).user == "u1"  # a known value keeps its series


def test_unset_values_read_unknown():
    labels = LabelPolicy().labels(_call(user=None))
    assert labels.user == "unknown" and labels.provider == "openai" and labels.model == "gpt-4o-mini"


def test_labels_use_the_identity_the_call_started_with():
    policy = LabelPolicy(hash_key=b"k")
    call = _call(user="bob")
    call.identity = policy.identity(call.attribution)
    assert policy.labels(call).user == call.identity.user != "bob"


def test_the_cap_holds_under_32_threads():
    policy = LabelPolicy({"user": 10})
    out: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(50):
            value = policy.labels(_call(user=f"t{n}-{i}")).user
            with lock:
                out.append(value)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({v for v in out if v != OTHER}) == 10
    assert out.count(OTHER) == 32 * 50 - 10
