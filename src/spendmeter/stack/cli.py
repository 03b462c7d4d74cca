"""`spendmeter stack write DIR --target host:port`: the Prometheus/Alertmanager/Grafana stack for pip users."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from spendmeter.stack import DEFAULT_TARGET, write


def register(subparsers: Any) -> None:
    stack = subparsers.add_parser("stack", help="write the Prometheus, Alertmanager and Grafana configuration")
    sub = stack.add_subparsers(dest="stack_command", required=True)
    w = sub.add_parser(
        "write", help="write prometheus.yml, rules and their tests, alertmanager.yml, Grafana dashboards and "
        "provisioning, and a docker-compose.yml into DIR",
    )
    w.add_argument("directory", type=Path, metavar="DIR")
    w.add_argument("--target", default=DEFAULT_TARGET,
                   help="host:port where Prometheus scrapes your application's /metrics, as seen from the "
                   f"Prometheus container (default: {DEFAULT_TARGET}, the docker host)")
    w.add_argument("--force", action="store_true", help="replace files in DIR that differ")
    w.set_defaults(func=_write)


def _write(args: argparse.Namespace) -> int:
    try:
        paths = write(args.directory, args.target, overwrite=args.force)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"spendmeter stack write: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files into {args.directory} (Prometheus scrapes {args.target})")
    print(f"  cd {args.directory} && GRAFANA_ADMIN_PASSWORD=choose-one docker compose up")
    print("  Grafana http://localhost:3000 · Prometheus http://localhost:9090 · Alertmanager http://localhost:9093")
    print("  your application must serve /metrics on an address the container reaches, e.g. "
          "spendmeter.init(prometheus_host=\"0.0.0.0\")")
    return 0
