"""The load-client processes' end of the line protocol: config and commands on stdin, JSON events on stdout.

bench/pool.py is the runner's end; bench/clients.py and bench/browser.py speak it from
Python, bench/node/client.mjs from Node.js.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson


def say(obj: dict[str, Any]) -> None:
    """Write one event line (``ready``, ``progress``, ``result``) for the runner."""
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


async def open_stdin() -> tuple[dict[str, Any], asyncio.StreamReader]:
    """stdin as a stream of command lines, and its first line: this process's config."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    config: dict[str, Any] = orjson.loads(await commands.readline())
    return config, commands


async def go_times(commands: asyncio.StreamReader) -> AsyncIterator[int]:
    """The t0 of every ``go <t0_us>`` command, until ``stop`` or the end of stdin."""
    while True:
        line = (await commands.readline()).decode().strip()
        if not line or line == "stop":
            return
        if line.startswith("go "):
            yield int(line.split()[1])
