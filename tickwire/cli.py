"""The ``tickwire`` command: one subcommand per service or tool.

``main`` is where settings are read from ``os.environ`` (the OpenTelemetry SDK reads its own
``OTEL_*``): each subcommand builds its settings once, from that environment and its flags,
and passes them down. Elsewhere the environment is only handed on: to the processes the
bench starts, and prometheus_client's ``PROMETHEUS_MULTIPROC_DIR`` to gateway workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import uvloop

from services.envsettings import SettingsError
from services.lifecycle import configure_logging
from services.settings import GatewaySettings, IngestSettings, ProcessSettings
from tickwire.settings import SimulatorSettings, UpSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickwire", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="the whole stack on this machine")
    up.add_argument("--gateways", type=int, default=1, help="gateway replicas on ports 8080, 8081, …")
    up.add_argument("--port", type=int, default=8080, help="first gateway port")
    up.add_argument("--no-simulator", action="store_true", help="do not start the market simulator")
    up.add_argument("--state-dir", default=".tickwire", help="where local Redis and NATS keep their data")

    sub.add_parser("ingest", help="bridge Redis streams into NATS JetStream")

    gw = sub.add_parser("gateway", help="one WebSocket/SSE gateway replica")
    gw.add_argument("--host", default=None)
    gw.add_argument("--port", type=int, default=None)
    gw.add_argument("--workers", type=int, default=1, help="worker processes sharing the port")

    sim = sub.add_parser("simulate", help="the market simulator: XADDs ticks and trades")
    sim.add_argument("--symbols", type=int, default=None)
    sim.add_argument("--rate", type=float, default=None, help="entries per second in total")

    tok = sub.add_parser("token", help="issue an HS256 token for development (signed with TICKWIRE_JWT_SECRET)")
    tok.add_argument("--sub", required=True, help="subject: who the token is for")
    tok.add_argument("--topics", required=True, help="comma list of granted topic patterns: 'ticks.*,trades.AAPL'")
    tok.add_argument("--ttl", type=_duration, default=3600.0, help="lifetime: 90s, 30m, 1h, 2d (default 1h)")
    tok.add_argument("--aud", default="", help="audience (TICKWIRE_JWT_AUDIENCE on the gateway)")
    tok.add_argument("--iss", default="", help="issuer (TICKWIRE_JWT_ISSUER on the gateway)")

    bench = sub.add_parser("bench", help="benchmark Tickwire against typical peers (docs/benchmarks.md)")
    bench.add_argument("--quick", action="store_true", help="a smoke run (< 2 minutes)")
    bench.add_argument("--scenario", default=None,
                       help="broadcast|selective|idle|failover|ingest|tracing|all, or a comma list")
    bench.add_argument("--systems", default=None, help="comma list of tickwire,tickwire-w2,natsws,fastapi,socketio")
    bench.add_argument("--clients", type=int, default=None, help="WebSocket clients per streaming run")
    bench.add_argument("--rates", default=None, help="offered rates to sweep, e.g. 500,1000,2000")
    bench.add_argument("--duration", type=float, default=None, help="seconds of producing per run")
    bench.add_argument("--idle", type=int, default=None, help="idle connections for the idle scenario")
    bench.add_argument("--client-procs", type=int, default=None, help="client processes per run")
    bench.add_argument("--client", choices=("node", "browser", "python"), default=None,
                       help="load client of the streaming runs (default node: the npm package ws)")
    bench.add_argument("--report", action="store_true",
                       help="only regenerate docs/benchmarks.md and its plot from the last results")
    return parser


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(raw: str) -> float:
    unit = _UNITS.get(raw[-1:].lower())
    try:
        value = float(raw[:-1]) * unit if unit is not None else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a duration like 90s, 30m, 1h, 2d") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a duration must be positive")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The process environment is read here and nowhere else: what runs below gets settings
    # built from it (and the flags), or this copy to hand on to its children.
    env = dict(os.environ)
    try:
        return _dispatch(args, env)
    except SettingsError as exc:
        print(f"tickwire: bad configuration:\n  {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130


def _given(**flags: Any) -> dict[str, Any]:
    """The flags that were passed: one left out keeps the environment's value."""
    return {name: value for name, value in flags.items() if value is not None}


def _logging(command: str, settings: ProcessSettings) -> None:
    configure_logging(f"tickwire-{command}", settings.log_level)


def _dispatch(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.command == "up":
        from tickwire.supervisor import Supervisor

        up = UpSettings.from_env(
            env, gateways=args.gateways, first_port=args.port, simulator=not args.no_simulator, state_dir=args.state_dir
        )
        _logging(args.command, up)
        return asyncio.run(Supervisor(up, env).run())
    if args.command == "ingest":
        from ingest.service import run as run_ingest

        ingest = IngestSettings.from_env(env)
        _logging(args.command, ingest)
        # uvloop: most of ingest's CPU is socket writes to NATS and Redis (docs/benchmarks.md).
        uvloop.run(run_ingest(ingest))
        return 0
    if args.command == "gateway":
        from gateway.server import serve

        gateway = GatewaySettings.from_env(env, **_given(host=args.host, port=args.port))
        _logging(args.command, gateway)
        return serve(gateway, workers=args.workers)
    if args.command == "simulate":
        from tickwire.simulator import run as run_simulator

        simulator = SimulatorSettings.from_env(env, **_given(symbols=args.symbols, rate=args.rate))
        _logging(args.command, simulator)
        uvloop.run(run_simulator(simulator))
        return 0
    if args.command == "token":
        from gateway.tokens import issue
        from services.subjects import TopicError

        # The gateway's settings: the token is signed with the secret the gateway verifies with.
        secret = GatewaySettings.from_env(env).jwt_secret
        if not secret:
            raise SettingsError("TICKWIRE_JWT_SECRET is not set: `tickwire token` signs with it")
        topics = [t.strip() for t in args.topics.split(",") if t.strip()]
        try:
            token = issue(secret, args.sub, topics, args.ttl, audience=args.aud, issuer=args.iss)
        except TopicError as exc:
            raise SettingsError(f"--topics: {exc}") from None
        sys.stdout.write(token + "\n")
        return 0
    if args.command == "bench":
        from bench.cli import options_from_args
        from bench.runner import main as run_bench

        _logging(args.command, ProcessSettings.from_env(env))
        return run_bench(options_from_args(args), report_only=args.report)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
