"""Settings of what runs above the services: the simulator and ``tickwire up``.

Built like the services' (``services.settings``): once, from the environ the CLI hands in
and the CLI's flags, then passed down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import NonNegativeFloat, PositiveInt

from services.envsettings import env_var
from services.settings import ProcessSettings, traced


class SimulatorSettings(ProcessSettings):
    """The market simulator (a producer)."""

    redis_url: str = env_var("REDIS_URL", "redis://127.0.0.1:6379/0")
    symbols: PositiveInt = env_var("TICKWIRE_SIM_SYMBOLS", 50)
    rate: NonNegativeFloat = env_var("TICKWIRE_SIM_RATE", 500.0)
    maxlen: PositiveInt = env_var("TICKWIRE_SIM_MAXLEN", 100_000)
    trade_ratio: NonNegativeFloat = env_var("TICKWIRE_SIM_TRADE_RATIO", 0.2)
    seed: int | None = env_var("TICKWIRE_SIM_SEED", None)
    tracing: str = ""

    @classmethod
    def _derived(cls, env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
        return traced(env, problems)


class UpSettings(ProcessSettings):
    """``tickwire up``: the flags, and which backends and web build the environment names.

    An empty URL means "start a local server"; an empty web dir means this checkout's build.
    """

    gateways: PositiveInt = 1
    first_port: PositiveInt = 8080
    simulator: bool = True
    state_dir: str = ".tickwire"
    redis_url: str = env_var("REDIS_URL", "")
    nats_url: str = env_var("NATS_URL", "")
    web_dir: str = env_var("TICKWIRE_WEB_DIR", "")
