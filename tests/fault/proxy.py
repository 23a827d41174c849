"""A small asyncio TCP proxy for fault tests: delay, stall and cut a link between services.

There is no tc netem or toxiproxy here, so a service is pointed at the proxy's port
instead of the real server's, and the test changes the link's behaviour while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum

from tickwire.localservers import free_port


class Link(enum.Enum):
    OPEN = "open"  # bytes flow (after ``delay``)
    STALLED = "stalled"  # connections stay up, no byte moves
    CUT = "cut"  # every connection is dropped and new ones are refused


class TcpProxy:
    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.delay = 0.0
        self.state = Link.OPEN
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stall(self) -> None:
        self.state = Link.STALLED
        self._flowing.clear()

    def cut(self) -> None:
        self.state = Link.CUT
        self._flowing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.state = Link.OPEN
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.state is Link.CUT:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                await self._flowing.wait()
                if self.state is Link.CUT:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(dst)
            with contextlib.suppress(Exception):
                dst.transport.abort()
