"""`spendmeter demo`: simulated users and agents, through the real SDKs, with spendmeter watching.

One process holds everything: the local provider-compatible server (on a free 127.0.0.1 port), spendmeter
(`/metrics` and `/api/budgets` on `--host:--port`, the demo's budgets), and an asyncio loop that starts
`--rate` user messages per second. Half the messages run on the async SDK clients inside the loop, half
on the sync clients in a small thread pool. Ctrl-C or SIGTERM stops it cleanly: in-flight messages get a
few seconds to finish, the report is printed, the exit code is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any, TextIO

from spendmeter.demo.agents import Message, MessageSource, Profile
from spendmeter.demo.driver import Clients, run_conversation_async, run_conversation_sync
from spendmeter.demo.report import DemoStats, format_report, progress_line

MAX_IN_FLIGHT = 64  # user messages being worked on at once; past that the scheduler waits
SYNC_WORKERS = 16
DRAIN_SECONDS = 5.0  # after a stop, how long in-flight messages may take to finish
REAL_RATE = 0.5  # --real: at most this many messages per second ...
REAL_MAX_MESSAGES = 10  # ... and this many in all: a few cents at most
TTY_PROGRESS_S, LOG_PROGRESS_S = 0.5, 5.0
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run simulated users and agents against a local fake provider, with metrics and budgets",
        description="Simulated multi-agent traffic through the real openai and anthropic SDKs against a local "
        "provider-compatible server (no API key needed). Serves /metrics and /api/budgets while it runs, "
        "prints a spend report at the end (duration reached, Ctrl-C or SIGTERM).",
    )
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long "
                   "(default: until Ctrl-C)")
    p.add_argument("--users", type=int, default=20, help="regular simulated users, besides heavy-user (default 20)")
    p.add_argument("--rate", type=float, default=5.0, metavar="MSGS_PER_S",
                   help="user messages per second; each makes 3-4 LLM calls (default 5)")
    p.add_argument("--host", default="127.0.0.1", help="address of /metrics (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9464, help="port of /metrics; 0 picks a free one (default 9464)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the workload (default 7)")
    p.add_argument("--budgets", default=None, metavar="FILE", help="budgets YAML (default: the demo's own)")
    p.add_argument("--ledger", default=None, metavar="TARGET", help="the per-call ledger the cost API and "
                   "`spendmeter report` read: a SQLite path or postgresql://... (default: a new SQLite file in a "
                   "temporary directory, kept after the demo)")
    p.add_argument("--real", action="store_true", help="call the real providers with OPENAI_API_KEY / "
                   f"ANTHROPIC_API_KEY: cheap models only, at most {REAL_MAX_MESSAGES} messages")
    p.add_argument("--litellm", action="store_true", help="add an agent that calls through LiteLLM "
                   "(needs spendmeter[litellm]; importing LiteLLM adds seconds to the start)")
    p.set_defaults(func=main)


@dataclass(frozen=True)
class Options:
    duration: float | None = None
    users: int = 20
    rate: float = 5.0
    host: str = "127.0.0.1"
    port: int = 9464
    seed: int = 7
    budgets: str | None = None
    real: bool = False
    litellm: bool = False
    ledger: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        return cls(args.duration, args.users, args.rate, args.host, args.port, args.seed, args.budgets, args.real,
                   getattr(args, "litellm", False), getattr(args, "ledger", None))


def main(args: argparse.Namespace) -> int:
    opts = Options.from_args(args)
    problem = _check(opts)
    if problem:
        print(f"spendmeter demo: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from spendmeter.errors import ConfigError

    demo = Demo(opts)
    try:
        demo.start()
    except ConfigError as exc:  # a busy --port, a bad --budgets file: say which, no traceback
        demo.close()
        hint = " (demo: pass another --port; --port 0 picks a free one)" if exc.key == "prometheus_port" else ""
        print(f"spendmeter demo: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        demo.close()
        return 0
    try:
        demo.run()
    except KeyboardInterrupt:
        pass  # a Ctrl-C outside the loop's handler (e.g. during start-up): still report
    finally:
        demo.print_report()
        demo.close()
    return 0


def _check(opts: Options) -> str | None:
    if opts.rate <= 0:
        return f"--rate must be above 0, got {opts.rate}"
    if opts.users < 1:
        return f"--users must be at least 1, got {opts.users}"
    if opts.duration is not None and opts.duration <= 0:
        return f"--duration must be above 0, got {opts.duration}"
    if opts.budgets is not None and not Path(opts.budgets).is_file():
        return f"--budgets: no such file: {opts.budgets}"
    if opts.real and not (os.environ.get("OPENAI_API_KEY") or os.environ.get("ANTHROPIC_API_KEY")):
        return ("--real needs OPENAI_API_KEY and/or ANTHROPIC_API_KEY in the environment; "
                "without --real the demo needs no key (it runs against a local fake provider)")
    return None


@contextlib.contextmanager
def demo_budgets_file() -> Iterator[Path]:
    """The shipped budgets.yaml as a real file (it may sit inside a zip when installed as one)."""
    with importlib.resources.as_file(importlib.resources.files("spendmeter.demo") / "budgets.yaml") as path:
        yield path


class Demo:
    """start() -> run() (blocks until the duration ends or stop()) -> report() -> close()."""

    def __init__(self, opts: Options, *, out: TextIO | None = None, registry: Any = None) -> None:
        self.opts = opts
        self.out = out or sys.stdout
        self.registry = registry
        self.stats = DemoStats()
        self.profile = Profile()
        self.clients = Clients()
        self.runtime: Any = None
        self.provider: Any = None
        self._budgets_cm: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        self._ended: float | None = None
        self._reported = False
        self.ledger: str | None = None  # the ledger target the demo writes

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        import spendmeter

        opts = self.opts
        if opts.budgets is not None:
            budgets_path: Path = Path(opts.budgets)
        else:
            self._budgets_cm = demo_budgets_file()
            budgets_path = self._budgets_cm.__enter__()
        if opts.real:
            keys = {p: os.environ.get(f"{p.upper()}_API_KEY") for p in ("openai", "anthropic")}
            self.profile = Profile(real=True, providers=frozenset(p for p, k in keys.items() if k))
            self.clients = Clients.build(openai_key=keys["openai"], anthropic_key=keys["anthropic"])
            usage_hosts = None  # the defaults: api.openai.com asks for stream usage
            providers = None  # the real endpoints are in the built-in host table
        else:
            from spendmeter.testing import ProviderServer

            self.provider = ProviderServer("127.0.0.1", 0).start()
            self.clients = Clients.build(
                openai_base_url=self.provider.openai_base_url, anthropic_base_url=self.provider.anthropic_base_url,
                openai_key="sk-demo-not-a-real-key", anthropic_key="sk-ant-demo-not-a-real-key", timeout=10.0,
            )
            if self.clients.add_local_optional(self.provider, litellm=opts.litellm):
                self.profile = Profile(providers=self.profile.providers | {"litellm"})
            usage_hosts = ("127.0.0.1",)
            # The local fake provider is no endpoint the host table knows: map it as a user maps a local server.
            providers = {f"127.0.0.1:{self.provider.port}/v1": "openai", f"127.0.0.1:{self.provider.port}": "anthropic"}
        # A ledger, so the cost API and `spendmeter report` have the demo's calls; kept after the demo ends.
        self.ledger = opts.ledger or str(Path(tempfile.mkdtemp(prefix="spendmeter-demo-")) / "ledger.db")
        self.runtime = spendmeter.init(
            ledger=self.ledger,
            service_name="spendmeter-demo",
            prometheus_host=opts.host,
            prometheus_port=opts.port,
            budgets=budgets_path,
            usage_hosts=usage_hosts,
            providers=providers,
            registry=self.registry,
        )
        spendmeter.add_sink(self.stats)  # after init(): init() sets the sink list afresh
        self._started = time.monotonic()
        self._print_banner(budgets_path)

    @property
    def metrics_url(self) -> str | None:
        server = getattr(self.runtime, "server", None)
        return None if server is None else server.url

    def run(self) -> None:
        """Run until --duration, stop(), Ctrl-C or SIGTERM. From the main thread, signals are handled here."""
        restore = self._install_signal_handlers()
        try:
            asyncio.run(self._main())
        finally:
            restore()
            self._ended = time.monotonic()

    def stop(self) -> None:
        """Ask the run to end (thread-safe, also from a signal handler). A second call stops at once."""
        loop, first = self._loop, not self._stop_requested.is_set()
        self._stop_requested.set()
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(self._on_stop, first)

    def report(self) -> str:
        elapsed = (self._ended or time.monotonic()) - self._started
        status = self.runtime.budgets.status() if self.runtime and self.runtime.budgets else []
        return format_report(self.stats, elapsed_s=elapsed, budget_status=status, metrics_url=self.metrics_url,
                             real=self.opts.real, ledger=self.ledger)

    def print_report(self) -> None:
        if not self._reported and self.runtime is not None:
            self._reported = True
            self.out.write(self.report())
            self.out.flush()

    def close(self) -> None:
        import spendmeter

        spendmeter.remove_sink(self.stats)
        if self.runtime is not None:
            spendmeter.shutdown()
            self.runtime = None
        self.clients.close()
        if self.provider is not None:
            self.provider.stop()
            self.provider = None
        if self._budgets_cm is not None:
            self._budgets_cm.__exit__(None, None, None)
            self._budgets_cm = None

    # -- the loop ---------------------------------------------------------------------------------------
    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested.is_set():
            self._stop.set()
        pool = ThreadPoolExecutor(max_workers=SYNC_WORKERS, thread_name_prefix="spendmeter-demo-agent")
        progress = asyncio.create_task(self._progress())
        try:
            await self._schedule(pool)
        finally:
            await self._drain()
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
            pool.shutdown(wait=True, cancel_futures=True)
            await self.clients.aclose()
            self._loop = None

    async def _schedule(self, pool: ThreadPoolExecutor) -> None:
        """Start messages at `rate` per second (Poisson arrivals), until the duration or a stop."""
        assert self._stop is not None
        opts, loop = self.opts, asyncio.get_running_loop()
        rate = min(opts.rate, REAL_RATE) if opts.real else opts.rate
        limit = REAL_MAX_MESSAGES if opts.real else None
        source = MessageSource(opts.users, opts.seed, heavy_user=not opts.real)
        arrivals = Random(opts.seed + 1)
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        start = loop.time()
        deadline = start + opts.duration if opts.duration else None
        next_at, sent = start, 0
        while not self._stop.is_set() and (limit is None or sent < limit):
            now = loop.time()
            if deadline is not None and now >= deadline:
                break
            wait = next_at - now if deadline is None else min(next_at, deadline) - now
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait)
                continue
            await in_flight.acquire()
            task = asyncio.create_task(self._one(source.next(), pool, in_flight))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            sent += 1
            # Behind schedule (the machine is slower than --rate): do not burst to catch up.
            next_at = max(next_at + arrivals.expovariate(rate), loop.time() - 1.0)
        if limit is not None and sent >= limit:
            self.out.write(f"\nspendmeter demo: --real sends at most {limit} messages; finishing.\n")

    async def _one(self, msg: Message, pool: ThreadPoolExecutor, in_flight: asyncio.Semaphore) -> None:
        try:
            if msg.use_async:
                outcome = await run_conversation_async(self.clients, msg, self.profile)
            else:
                loop = asyncio.get_running_loop()
                outcome = await loop.run_in_executor(pool, run_conversation_sync, self.clients, msg, self.profile)
            self.stats.count_message(outcome)
        finally:
            in_flight.release()

    async def _drain(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    def _on_stop(self, first: bool) -> None:
        if self._stop is not None:
            self._stop.set()
        if not first:  # Ctrl-C twice: do not wait for in-flight messages
            for task in list(self._tasks):
                task.cancel()

    async def _progress(self) -> None:
        tty = self.out.isatty()
        every = TTY_PROGRESS_S if tty else LOG_PROGRESS_S
        try:
            while True:
                await asyncio.sleep(every)
                self._write_progress(tty)
        finally:
            self._write_progress(tty)
            if tty:
                self.out.write("\n")
            self.out.flush()

    def _write_progress(self, tty: bool) -> None:
        line = progress_line(time.monotonic() - self._started, self.stats.snapshot(),
                             sum(self.stats.messages.values()))
        self.out.write(f"\r{line}\x1b[K" if tty else line + "\n")
        self.out.flush()

    # -- around the loop --------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, lambda _s, _f: self.stop())

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _print_banner(self, budgets_path: Path) -> None:
        opts = self.opts
        target = "real providers (" + ", ".join(sorted(self.profile.providers)) + ")" if opts.real else (
            f"local fake provider at {self.provider.url}" if self.provider else "?")
        until = f"for {opts.duration:g} s" if opts.duration else "until Ctrl-C"
        who = f"{opts.users} users" + ("" if opts.real else " + heavy-user")
        rate = min(opts.rate, REAL_RATE) if opts.real else opts.rate
        lines = [
            f"spendmeter demo: {who}, {rate:g} messages/s, seed {opts.seed}, {until}",
            f"  calls go to:   {target}",
            f"  budgets:       {budgets_path}",
        ]
        if self.metrics_url:
            lines += [f"  metrics:       {self.metrics_url}/metrics",
                      f"  budget status: {self.metrics_url}/api/budgets",
                      f"  cost API:      {self.metrics_url}/api/costs/top-users (all routes: /api/costs)"]
        if self.ledger:
            lines.append(f"  ledger:        {self.ledger}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
