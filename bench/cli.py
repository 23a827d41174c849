"""``tickwire bench`` arguments → ``Options`` (the subparser itself lives in tickwire.cli)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bench.runner import SCENARIOS, Options
from bench.systems import SYSTEMS
from services.envsettings import SettingsError


def _csv(raw: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in raw.split(",") if x.strip())
    if "all" in items:
        return allowed
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise SettingsError(f"--{what}: {','.join(bad) or raw!r} not among {','.join(allowed)}")
    return items


def options_from_args(args: argparse.Namespace) -> Options:
    options = Options.quick() if args.quick else Options()
    options = replace(options, command=" ".join(["tickwire", *sys.argv[1:]]))
    if args.scenario:
        options = replace(options, scenarios=_csv(args.scenario, SCENARIOS, "scenario"))
    if args.systems:
        options = replace(options, systems=_csv(args.systems, SYSTEMS, "systems"))
    if args.clients:
        options = replace(options, clients=args.clients, failover_clients=options.failover_clients)
    if args.client:
        options = replace(options, client=args.client)
    if args.rates:
        try:
            rates = tuple(float(r) for r in args.rates.split(",") if r.strip())
        except ValueError:
            raise SettingsError(f"--rates: {args.rates!r} is not a comma list of numbers") from None
        if not rates:
            raise SettingsError("--rates: give at least one rate")
        # One flag for every streaming sweep: what a user asking for rates means.
        options = replace(options, rates=rates, selective_rates=rates, many_rate=rates[0], browser_rates=rates)
    if args.duration:
        options = replace(options, duration=args.duration)
    if args.idle:
        options = replace(options, idle_connections=args.idle)
    if args.client_procs:
        options = replace(options, procs=args.client_procs)
    return options
