"""The ``tickwire`` command: the only place that reads ``os.environ``.

Each subcommand builds its service's settings once and passes them down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from services.lifecycle import configure_logging
from services.settings import GatewaySettings, IngestSettings, SettingsError, SimulatorSettings


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = dict(os.environ)
    configure_logging(f"tickwire-{args.command}", env.get("TICKWIRE_LOG_LEVEL", "INFO"))
    try:
        return _dispatch(args, env)
    except SettingsError as exc:
        print(f"tickwire: bad configuration: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, env: dict[str, str]) -> int:
    if args.command == "up":
        from services.supervisor import Supervisor, UpOptions

        options = UpOptions(
            gateways=args.gateways, first_port=args.port, simulator=not args.no_simulator, state_dir=args.state_dir
        )
        return asyncio.run(Supervisor(options, env).run())
    if args.command == "ingest":
        from ingest.service import run as run_ingest

        asyncio.run(run_ingest(IngestSettings.from_env(env)))
        return 0
    if args.command == "gateway":
        from gateway.server import serve

        if args.host is not None:
            env["TICKWIRE_HOST"] = args.host
        if args.port is not None:
            env["TICKWIRE_PORT"] = str(args.port)
        return serve(GatewaySettings.from_env(env), workers=args.workers)
    if args.command == "simulate":
        from services.simulator import run as run_simulator

        if args.symbols is not None:
            env["TICKWIRE_SIM_SYMBOLS"] = str(args.symbols)
        if args.rate is not None:
            env["TICKWIRE_SIM_RATE"] = str(args.rate)
        asyncio.run(run_simulator(SimulatorSettings.from_env(env)))
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
