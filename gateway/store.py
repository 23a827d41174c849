"""Batched reads from stream MD by sequence: catch-up and the latest-per-subject snapshot.

JetStream's batched direct get (nats-server ≥ 2.11, stream ``allow_direct``) answers one
request with up to ``batch`` messages followed by an end-of-batch status (204), so a
catch-up costs one round trip per batch and no consumer on the server (one consumer per
client does not scale: nats-server #5609, #4841). nats.py has no helper for the batched
form, hence the small request loop here. Identical catch-up reads in flight at once (100
clients resuming from the same seq) share one request (``read_from``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NATS

from gateway.intake import decode
from gateway.message import Message

REPLY_TIMEOUT = 5.0
# nats-server answers a multi_last matching more than 1,024 subjects with 413 "Too Many
# Results" (a ``batch`` does not lift it): the latest per subject is asked for in lists of
# literal subjects no longer than this.
MULTI_LAST_SUBJECTS = 1000


class StoreError(RuntimeError):
    """JetStream refused or did not answer a read."""


@dataclass(frozen=True, slots=True)
class Batch:
    messages: list[Message]
    exhausted: bool  # nothing more matched the filter when the server answered


class Store:
    def __init__(self, nc: NATS, stream: str, prefix: str, concurrency: int = 4) -> None:
        self._nc = nc
        self._subject = f"$JS.API.DIRECT.GET.{stream}"
        self._info = f"$JS.API.STREAM.INFO.{stream}"
        self._prefix = prefix
        # Bounds how many catch-up reads one replica puts on JetStream at a time.
        self._slots = asyncio.Semaphore(concurrency)
        # (seq, filter, batch) → the answer of the read in flight for it, which callers
        # asking the same meanwhile await instead of reading again.
        self._reads: dict[tuple[int, str, int], asyncio.Future[Batch]] = {}

    def filter_for(self, patterns: list[str]) -> str:
        """One subject filter covering ``patterns`` (the caller still filters each message)."""
        return f"{self._prefix}.{patterns[0]}" if len(patterns) == 1 else f"{self._prefix}.>"

    async def read_from(self, seq: int, subject_filter: str, batch: int) -> Batch:
        """Up to ``batch`` messages with seq ≥ ``seq`` on ``subject_filter``, in order.

        The caller that asks first reads; others asking the same before it has its answer
        get that answer (or its error). Should the first be cancelled, they read again."""
        key = (max(seq, 1), subject_filter, batch)
        while (shared := self._reads.get(key)) is not None:
            try:
                # Shielded: one follower cancelled (its client gone) cancels only itself.
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                if not shared.cancelled() or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
        answer: asyncio.Future[Batch] = asyncio.get_running_loop().create_future()
        self._reads[key] = answer
        try:
            result = await self._request({"seq": key[0], "batch": batch, "next_by_subj": subject_filter})
        except Exception as exc:
            answer.set_exception(exc)
            answer.exception()  # retrieved: with no follower asyncio would log it as unhandled
            raise
        except BaseException:
            answer.cancel()  # the followers read for themselves
            raise
        else:
            answer.set_result(result)
            return result
        finally:
            del self._reads[key]

    async def last_per_subject(self, up_to_seq: int) -> list[Message]:
        """The last message of every subject with seq ≤ ``up_to_seq``, in seq order."""
        if up_to_seq <= 0:
            return []
        subjects = await self.subjects()
        messages: list[Message] = []
        for i in range(0, len(subjects), MULTI_LAST_SUBJECTS):
            request = {"multi_last": subjects[i:i + MULTI_LAST_SUBJECTS], "up_to_seq": up_to_seq}
            messages.extend((await self._request(request)).messages)
        return sorted(messages, key=lambda m: m.seq)

    async def subjects(self) -> list[str]:
        """Every subject the stream holds a message on, from its info, page by page."""
        found: list[str] = []
        while True:
            request = {"subjects_filter": f"{self._prefix}.>", "offset": len(found)}
            try:
                reply = await self._nc.request(self._info, orjson.dumps(request), timeout=REPLY_TIMEOUT)
            except TimeoutError:
                raise StoreError(f"no answer to {request}") from None
            info = orjson.loads(reply.data)
            if "error" in info:
                raise StoreError(f"stream info {request}: {info['error']}")
            page = info.get("state", {}).get("subjects") or {}
            found.extend(page)
            if not page or len(found) >= info.get("total", 0):
                return found

    async def _request(self, request: dict[str, object]) -> Batch:
        async with self._slots:
            inbox = self._nc.new_inbox()
            sub = await self._nc.subscribe(inbox)
            try:
                await self._nc.publish(self._subject, orjson.dumps(request), reply=inbox)
                messages: list[Message] = []
                while True:
                    try:
                        reply = await sub.next_msg(timeout=REPLY_TIMEOUT)
                    except TimeoutError:
                        raise StoreError(f"no answer to {request}") from None
                    headers = reply.headers or {}
                    status = headers.get("Status")
                    if status == "204":  # end of batch
                        return Batch(messages, headers.get("Nats-Num-Pending") == "0")
                    if status == "404":  # nothing (more) matches
                        return Batch(messages, True)
                    if status is not None:
                        raise StoreError(f"direct get {request}: {status} {headers.get('Description', '')}")
                    messages.append(decode(int(headers["Nats-Sequence"]), headers["Nats-Subject"],
                                             headers, reply.data))
            finally:
                await sub.unsubscribe()
