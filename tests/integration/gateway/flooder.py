"""A hostile client as its own process, so its sending does not share the test's event loop.

    python -m tests.integration.gateway.flooder ws://127.0.0.1:PORT/ws subscribes|megabytes|oversize

Prints one JSON line: the close code and reason the server ended the connection with, and
how much was sent before that.
"""

from __future__ import annotations

import asyncio
import json
import sys

import websockets

SUBSCRIBES = 10_000
TOTAL_BYTES = 100 * 1024 * 1024
FRAME_BYTES = 60_000  # under the 64 KiB frame limit: only the rate limit can stop it


def _frames(kind: str) -> list[str] | None:
    if kind == "subscribes":
        return [json.dumps({"type": "subscribe", "topics": [f"flood.{i}"]}) for i in range(SUBSCRIBES)]
    if kind == "oversize":
        return [json.dumps({"type": "ping", "id": "x" * 1_000_000})]
    return None


async def main(url: str, kind: str) -> None:
    sent = 0
    big = json.dumps({"type": "ping", "id": "x" * (FRAME_BYTES - 30)})
    frames = _frames(kind)
    async with websockets.connect(url, subprotocols=[websockets.Subprotocol("tickwire.v1")], max_size=None) as ws:
        try:
            if frames is None:
                while sent < TOTAL_BYTES:
                    await ws.send(big)
                    sent += len(big)
            else:
                for frame in frames:
                    await ws.send(frame)
                    sent += len(frame)
            async with asyncio.timeout(20):
                while True:
                    await ws.recv()
        except websockets.ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
            sys.stdout.write(json.dumps({"code": code, "reason": reason, "sent": sent}) + "\n")
            return
    sys.stdout.write(json.dumps({"code": None, "reason": "not closed", "sent": sent}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
