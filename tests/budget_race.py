"""The race both budget-reservation tests run (SQLite in tests/integration, PostgreSQL in tests/e2e): callers
that check a budget, hold the call 5 ms in flight, settle it, and go again until they are blocked."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from spendmeter.budgets import BudgetEngine, BudgetExceeded
from spendmeter.call import Attribution, Call, Cost

COST = Decimal("0.01")  # gpt-4o: 1000 output tokens at $10 per million


def a_call() -> Call:
    return Call(provider="openai", operation="chat", request_model="gpt-4o", attribution=Attribution(user="u"),
                request_max_tokens=1000, start_monotonic=time.perf_counter())  # fmt: skip


def finish(engine: BudgetEngine, call: Call, cost: Decimal = COST) -> None:
    call.cost = Cost(Decimal(0), Decimal(0), Decimal(0), cost, cost, "test", "test-entry")
    engine.on_call(call)


def hammer(engine: BudgetEngine, threads: int, go: threading.Event | None = None) -> int:
    """`threads` callers, each calling until blocked; a call is 5 ms in flight. Returns the calls admitted."""
    admitted = [0]
    lock = threading.Lock()

    def caller() -> None:
        if go is not None:
            go.wait(60)
        while True:
            call = a_call()
            try:
                engine.check(call)
            except BudgetExceeded:
                return
            time.sleep(0.005)
            finish(engine, call)
            with lock:
                admitted[0] += 1

    pool = [threading.Thread(target=caller) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    return admitted[0]
