"""The OTLP receiver standing in for Jaeger in the deploy test, run inside a container.

``python -m tests.deploy.otlp_service``: tests/otlp.py's receiver on 0.0.0.0:4318 (where the
services export, as they would to Jaeger), and on :4319 ``GET /spans``, every span received
so far as JSON, for the test to read through a port published on 127.0.0.1; ``/healthz``
for the container's healthcheck.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

from tests.otlp import OtlpReceiver

OTLP_PORT = 4318
QUERY_PORT = 4319


async def main() -> None:
    async with OtlpReceiver(port=OTLP_PORT, host="0.0.0.0") as receiver:

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = await reader.readuntil(b"\r\n\r\n")
                path = request.split(b" ", 2)[1].decode()
                if path == "/spans":
                    body = json.dumps([dataclasses.asdict(s) for s in receiver.spans], default=str).encode()
                    status = "200 OK"
                elif path == "/healthz":
                    body, status = b"ok\n", "200 OK"
                else:
                    body, status = b"not found\n", "404 Not Found"
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n".encode() + body
                )
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, IndexError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(answer, "0.0.0.0", QUERY_PORT)
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
