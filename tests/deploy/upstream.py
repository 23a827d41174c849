"""A stand-in gateway for the nginx test: answers HTTP with its name and echoes WebSocket
messages prefixed with it. Usage: python upstream.py NAME PORT (listens on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response


async def main(name: str, port: int) -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(f"{name}:{message}")

    def plain_http(conn: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None  # go on with the handshake
        return conn.respond(200, f"{name} {request.path}\n")

    async with serve(echo, "127.0.0.1", port, process_request=plain_http) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
