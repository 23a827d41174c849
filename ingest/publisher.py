"""JetStream publishes acknowledged one by one, sent a batch at a time.

nats.py's ``publish_async`` awaits its stall semaphore through ``asyncio.wait_for``: a task
and a turn of the event loop per message, so its flusher writes every message in a socket
write of its own (by profile, two thirds of ingest's time went there and into the task
machinery). Here a publish only registers a future and appends the ``HPUB`` to the
client's buffer; a batch leaves in one write and its acks come back on one wildcard reply
subscription, matched by token. The caller bounds the wait (``Bridge._publish_once``) and
then ``forget``s what was not answered, so the table never outgrows one batch. nats.py swallows
a cancellation inside a publish: ``raise_if_cancelled`` gives it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import Header
from nats.js.errors import APIError, NoStreamResponseError

NO_RESPONDERS = "503"

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

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> Ack:
        """Queue one publish; the future resolves with its ack."""
        token = str(self._next)
        self._next += 1
        ack: Ack = asyncio.get_running_loop().create_future()
        self._pending[token] = ack  # before the publish: a flush inside it may let the reply in
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            del self._pending[token]
            raise
        return ack

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
