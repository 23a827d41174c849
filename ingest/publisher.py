"""JetStream publishes acknowledged one by one, sent a batch at a time.

nats.py's ``publish_async`` awaits its stall semaphore through ``asyncio.wait_for``: a task
and a turn of the event loop per message, so its flusher writes every message in a socket
write of its own (by profile, two thirds of ingest's time went there and into the task
machinery). Its ``publish`` still costs ~9 µs a message (a regex per header, a command
and a buffer entry each). Here a batch becomes one run of ``HPUB`` commands, built here
(~2.6 µs a message) and handed to the client's buffer in one piece, so it is all in one
place, buffer or socket, and a dropped connection can only lose a tail of it. The acks come
back on one wildcard reply subscription, matched by token. The caller bounds the wait
(``Bridge._publish_once``) and then ``forget``s what was not answered, so the table never
outgrows one batch. nats.py swallows a cancellation inside a flush: ``raise_if_cancelled``
gives it back.

The one piece goes through the client's own buffer and flusher (``_send_command``,
``_flush_pending``: nats-py 2.16, pinned), with the checks its ``publish`` makes first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import orjson
from nats import errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import Header
from nats.js.errors import APIError, NoStreamResponseError

from services.envelope import PUBLISH_TS
from services.hops import now_us

NO_RESPONDERS = "503"
# A header value may not end the line it is on (nats.py turns CR and LF into spaces too).
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})

# The future's result: whether JetStream had stored this Msg-Id already (a duplicate).
Ack = asyncio.Future[bool]


def raise_if_cancelled() -> None:
    """Give back a cancellation nats.py swallowed.

    nats.py 2.16 catches CancelledError inside publish (``Client._flush_pending`` drops it).
    Without this check a cancelled worker (lease lost, crash simulation, shutdown past its
    grace) keeps publishing.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class AckedPublisher:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox() + "."
        self._pending: dict[str, Ack] = {}
        self._next = 0

    async def start(self) -> None:
        # nats.py re-subscribes after a reconnect; acks lost meanwhile time out and the
        # caller publishes again with the same Msg-Id.
        await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def publish(self, messages: Iterable[tuple[str, bytes, Mapping[str, str]]], max_bytes: int) -> list[Ack]:
        """Send (subject, payload, headers) from the front of ``messages`` (read lazily), in one
        piece of about ``max_bytes`` at most (at least one message), each stamped with Tw-Pub;
        a future per message sent resolves with its ack."""
        nc = self._nc
        if nc.is_closed:
            raise errors.ConnectionClosedError
        if nc.is_draining_pubs:
            raise errors.ConnectionDrainingError
        loop = asyncio.get_running_loop()
        tokens: list[str] = []
        acks: list[Ack] = []
        commands: list[bytes] = []
        size = 0
        for subject, payload, headers in messages:
            token = str(self._next)
            self._next += 1
            command = _hpub(subject, self._prefix + token, headers, payload, now_us())
            ack: Ack = loop.create_future()
            self._pending[token] = ack  # before the send: a flush inside it may let the reply in
            tokens.append(token)
            acks.append(ack)
            commands.append(command)
            size += len(command)
            if size >= max_bytes:
                break
        try:
            room = nc._max_pending_size - nc._pending_data_size
            if not nc.is_connected and (nc._max_pending_size <= 0 or size > room):
                raise errors.OutboundBufferLimitError  # as nats.py's publish while away
            await nc._send_command(b"".join(commands))
            if nc._flush_queue is not None and nc._flush_queue.empty():
                await nc._flush_pending()
        except BaseException:
            for token in tokens:
                self._pending.pop(token, None)
            raise
        return acks

    def forget(self, acks: Iterable[Ack]) -> None:
        """Cancel the acks still outstanding (timed out, or the batch was abandoned)."""
        outstanding = [ack for ack in acks if not ack.done()]
        if outstanding:
            for ack in outstanding:
                ack.cancel()
            self._pending = {token: ack for token, ack in self._pending.items() if not ack.done()}

    async def _on_reply(self, msg: Msg) -> None:
        ack = self._pending.pop(msg.subject[len(self._prefix):], None)
        if ack is None or ack.done():
            return
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS:
            ack.set_exception(NoStreamResponseError())
            return
        try:
            reply = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            ack.set_exception(APIError(description=f"unreadable publish ack {msg.data[:100]!r}"))
            return
        if "error" in reply:
            ack.set_exception(APIError.from_error(reply["error"]))
        else:
            ack.set_result(bool(reply.get("duplicate")))


def _hpub(subject: str, reply: str, headers: Mapping[str, str], payload: bytes, published_us: int) -> bytes:
    """The ``HPUB`` command nats.py's publish would send for this message, its Tw-Pub last."""
    block = "".join([f"{key}: {value.strip().translate(_NEWLINES)}\r\n" for key, value in headers.items()])
    head = f"NATS/1.0\r\n{block}{PUBLISH_TS}: {published_us}\r\n\r\n".encode()
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (subject.encode(), reply.encode(), len(head), len(head) + len(payload),
                                               head, payload)
