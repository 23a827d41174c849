"""JetStream publishes acknowledged one by one, sent a batch at a time.

nats.py's ``publish_async`` awaits its stall semaphore through ``asyncio.wait_for``: a task
and a turn of the event loop per message, so its flusher writes every message in a socket
write of its own (by profile, two thirds of ingest's time went there and into the task
machinery). Its ``publish`` still costs ~9 µs a message (a regex per header, a command
and a buffer entry each). Here a batch becomes one run of ``HPUB`` commands, built here
(~2.6 µs a message) and handed to the client's buffer in one piece, so it is all in one
place, buffer or socket, and a dropped connection can only lose a tail of it. The acks come
back on one wildcard reply subscription, matched by token, into the piece's ``Sent``: one
future for the whole piece, set by its last ack (a future per message, awaited with
``asyncio.wait``, cost a done-callback and a loop callback per message). The caller bounds
the wait (``Bridge._publish_once``) and then ``forget``s what was not answered, so the table
never outgrows one batch. nats.py swallows a cancellation inside a flush: ``raise_if_cancelled``
gives it back.

The one piece goes through the client's own buffer and flusher (``_send_command``,
``_flush_pending``: nats-py 2.16, pinned), with the checks its ``publish`` makes first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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

# A message's ack: None until it comes, then whether JetStream had stored this Msg-Id
# already (a duplicate), or the error it answered.
Ack = bool | BaseException | None


@dataclass(eq=False)
class Sent:
    """One piece's messages, front to back, and their acks as they come back."""

    tokens: list[str]
    acks: list[Ack]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    waiting: int = 0

    def answer(self, index: int, ack: bool | BaseException) -> None:
        if self.acks[index] is None:
            self.acks[index] = ack
            self.waiting -= 1
            if not self.waiting and not self.done.done():
                self.done.set_result(None)


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
        self._pending: dict[str, tuple[Sent, int]] = {}
        self._next = 0

    async def start(self) -> None:
        # nats.py re-subscribes after a reconnect; acks lost meanwhile time out and the
        # caller publishes again with the same Msg-Id.
        await self._nc.subscribe(self._prefix + "*", cb=self._on_reply)

    async def publish(self, messages: Iterable[tuple[str, bytes, Mapping[str, str]]], max_bytes: int) -> Sent:
        """Send (subject, payload, headers) from the front of ``messages`` (read lazily), in one
        piece of about ``max_bytes`` at most (at least one message), each stamped with Tw-Pub;
        the ``Sent``'s ``done`` is set once every message of it has its ack."""
        nc = self._nc
        if nc.is_closed:
            raise errors.ConnectionClosedError
        if nc.is_draining_pubs:
            raise errors.ConnectionDrainingError
        sent = Sent([], [])
        tokens, pending = sent.tokens, self._pending
        commands: list[bytes] = []
        size = 0
        for subject, payload, headers in messages:
            token = str(self._next)
            self._next += 1
            command = _hpub(subject, self._prefix + token, headers, payload, now_us())
            pending[token] = (sent, len(tokens))  # before the send: a flush inside it may let the reply in
            tokens.append(token)
            commands.append(command)
            size += len(command)
            if size >= max_bytes:
                break
        sent.acks = [None] * len(tokens)
        sent.waiting = len(tokens)
        try:
            room = nc._max_pending_size - nc._pending_data_size
            if not nc.is_connected and (nc._max_pending_size <= 0 or size > room):
                raise errors.OutboundBufferLimitError  # as nats.py's publish while away
            await nc._send_command(b"".join(commands))
            if nc._flush_queue is not None and nc._flush_queue.empty():
                await nc._flush_pending()
        except BaseException:
            self.forget(sent)
            raise
        return sent

    def forget(self, sent: Sent) -> None:
        """Stop waiting for the acks still outstanding (timed out, or the batch was abandoned)."""
        if sent.waiting:
            for token in sent.tokens:
                self._pending.pop(token, None)

    async def _on_reply(self, msg: Msg) -> None:
        found = self._pending.pop(msg.subject[len(self._prefix):], None)
        if found is None:
            return
        sent, index = found
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS:
            sent.answer(index, NoStreamResponseError())
            return
        try:
            reply = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            sent.answer(index, APIError(description=f"unreadable publish ack {msg.data[:100]!r}"))
            return
        if "error" in reply:
            sent.answer(index, APIError.from_error(reply["error"]))
        else:
            sent.answer(index, bool(reply.get("duplicate")))


def _hpub(subject: str, reply: str, headers: Mapping[str, str], payload: bytes, published_us: int) -> bytes:
    """The ``HPUB`` command nats.py's publish would send for this message, its Tw-Pub last."""
    block = "".join([f"{key}: {value.strip()}\r\n" for key, value in headers.items()])
    if block.count("\n") != len(headers) or block.count("\r") != len(headers):
        # A value with a CR or LF inside (a hostile stream name or trace context): rare, so
        # translated only then (translate per value was half of this function's time).
        block = "".join([f"{key}: {value.strip().translate(_NEWLINES)}\r\n" for key, value in headers.items()])
    head = f"NATS/1.0\r\n{block}{PUBLISH_TS}: {published_us}\r\n\r\n".encode()
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (subject.encode(), reply.encode(), len(head), len(head) + len(payload),
                                               head, payload)
