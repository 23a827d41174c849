"""What the gateway measures and traces: per-hop latency, counters, spans.

Every message feeds the per-hop histograms (``/metrics``) and the sliding window behind
``/api/latency``. prometheus_client's ``Counter.inc`` and ``Histogram.observe`` take a lock
per call (and ``observe`` scans the buckets): ~4 µs a message with four hops, 8 % of a core
at 20,000 messages/s. So a turn's messages are tallied in plain ints, bucketed by bisection,
and handed to the metrics once at the end of the turn (``_Tally``): a scrape, served in a
later turn, sees every message the feed has taken.

A sampled message also gets a span — JetStream receive → fanned out to its subscribers'
outboxes — whose context is the ``trace`` its clients receive; when a browser's ``report``
names that trace, the last hop (gateway send → browser receive, in the browser's clock
corrected for offset) becomes a span in the same trace.

Under ``--workers`` (``multiprocess_dir`` set) the worker processes share one port, so a
scrape reaches one of them at random: prometheus_client's multiprocess mode keeps every
worker's counters and histograms in files of that folder and ``/metrics`` sums them; the
gauges read from the gateway's state are published there every ``PUBLISH_INTERVAL``
(and at each scrape by the worker answering it), summed over the live workers — the lag
is their maximum, how far behind the pod's slowest consumer is.

``Refusals`` (connections closed below HTTP, gateway.admission) is made with the app, not
in its lifespan: uvicorn's protocols refuse connections from before the lifespan starts.
``Telemetry`` exports it with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.latency import HOPS, LatencyWindow
from gateway.message import Message
from services import envelope
from services.hops import now_us
from services.protocol import Report
from services.subjects import topic_of
from services.telemetry import (
    ATTR_DESTINATION,
    ATTR_NODE,
    ATTR_SEQ,
    ATTR_SESSION,
    ATTR_SUBSCRIBERS,
    ATTR_SYSTEM,
    ATTR_TOPIC,
    Span,
    SpanKind,
    Tracer,
    extract,
    sampled,
)

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TRACED_SENDS = 10_000  # traced messages remembered for their browser receipts (1% of 1M)
BROWSER_HOP = "gateway_to_browser"
PUBLISH_INTERVAL = 1.0  # seconds between a worker's gauge updates under multiprocess mode

GaugeMode = Literal["livesum", "livemax"]


class _BeforeScrape(Collector):
    """Runs ``publish`` first, so the answering worker's own gauges are current."""

    def __init__(self, publish: Callable[[], None]) -> None:
        self.publish = publish

    def collect(self) -> Iterable[Metric]:
        self.publish()
        return ()


class _HopCounts:
    """One hop's samples of this turn in its histogram's buckets, added to it in one go.

    prometheus_client has no bulk observe: this adds to the child's bucket and sum values
    (its private ``_upper_bounds``, ``_buckets`` and ``_sum``, as ``observe`` does; the
    version is pinned and tests/unit/gateway/test_telemetry.py checks the two agree)."""

    __slots__ = ("bounds", "counts", "histogram", "total")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.bounds = histogram._upper_bounds
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def add(self, seconds: float) -> None:
        # The first bound >= the value: the bucket ``observe`` would pick.
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def flush(self) -> None:
        histogram, counts = self.histogram, self.counts
        for i, n in enumerate(counts):
            if n:
                histogram._buckets[i].inc(n)
                counts[i] = 0
        histogram._sum.inc(self.total)
        self.total = 0.0


class _Tally:
    """What this turn's messages add to the counters and histograms, until ``flush``."""

    def __init__(self, messages: Counter, deliveries: Counter, hops: Mapping[str, Histogram]) -> None:
        self._messages_metric, self._deliveries_metric = messages, deliveries
        self.hops = [(name, start, end, _HopCounts(hops[name])) for name, start, end in HOPS]
        self.messages = 0
        self.deliveries = 0

    def flush(self) -> None:
        self._messages_metric.inc(self.messages)
        self._deliveries_metric.inc(self.deliveries)
        self.messages = self.deliveries = 0
        for _, _, _, counts in self.hops:
            counts.flush()


class Refusals:
    """``tickwire_gateway_connections_refused_total{reason}``: connections gateway.admission closed.

    Made on no registry: in one process ``Telemetry`` registers it on its own; under
    multiprocess mode its values go to the workers' files, which every scrape sums."""

    def __init__(self) -> None:
        self.counter = Counter("tickwire_gateway_connections_refused",
                               "Connections closed below HTTP (caps, request-head timeout), by reason",
                               ["reason"], registry=None)

    def declare(self, reasons: Iterable[str]) -> None:
        """Export these reasons at 0 before the first refusal (so rate() has a start)."""
        for reason in reasons:
            self.counter.labels(reason)

    def count(self, reason: str) -> None:
        self.counter.labels(reason).inc()


class Telemetry:
    def __init__(self, node: str, tracer: Tracer | None, multiprocess_dir: str = "",
                 refusals: Refusals | None = None) -> None:
        self.node = node
        self.tracer = tracer
        self.latency = LatencyWindow()
        # Its own registry: several gateways may live in one process (tests).
        self.registry = CollectorRegistry(auto_describe=False)
        self._published: list[tuple[Gauge, Callable[[], int]]] = []
        self.multiprocess = bool(multiprocess_dir)
        metrics = self._metrics = self.registry
        if self.multiprocess:
            # What /metrics exposes is every worker's files; this worker's metric objects
            # write to them and are registered on a registry nobody reads.
            metrics = self._metrics = CollectorRegistry(auto_describe=False)
            self.registry.register(_BeforeScrape(self.publish_gauges))
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        if refusals is not None and not self.multiprocess:
            self.registry.register(refusals.counter)
        self._messages = Counter("tickwire_gateway_messages", "Messages received from JetStream",
                                 registry=metrics)
        self._deliveries = Counter("tickwire_gateway_deliveries", "Messages queued to client connections",
                                   registry=metrics)
        self._closes = Counter("tickwire_gateway_closes", "Client connections closed, by close code", ["code"],
                               registry=metrics)
        self._stalls = Counter("tickwire_gateway_write_stalls",
                               "Connections closed 4008 because their socket took nothing for the stall timeout",
                               registry=metrics)
        self._resumes = Counter("tickwire_gateway_resumes", "Subscribes that resumed with since (reconnects)",
                                registry=metrics)
        self._reports = Counter("tickwire_gateway_browser_receipts", "Traced messages reported by clients",
                                registry=metrics)
        hops = Histogram("tickwire_hop_latency_seconds", "Latency per hop of the data path", ["hop"],
                         buckets=BUCKETS, registry=metrics)
        self._tally = _Tally(self._messages, self._deliveries, {name: hops.labels(name) for name, _, _ in HOPS})
        self._browser = hops.labels(BROWSER_HOP)
        # trace → (sent µs, seq, topic, sessions that reported it): a receipt counts once per
        # session, so one client repeating it (1,000 to a frame) cannot skew the browser hop.
        self._sends: OrderedDict[str, tuple[int, int, str, set[str]]] = OrderedDict()

    def gauges(self, connections: Callable[[], int], subscriptions: Callable[[], int],
               outbox: Callable[[], int], lag: Callable[[], int], cached_topics: Callable[[], int],
               latest_subjects: Callable[[], int]) -> None:
        """Figures read from the gateway's own state: at scrape time, or under multiprocess
        mode published by ``publish`` (the mode says how workers' values combine)."""
        gauges: tuple[tuple[str, str, Callable[[], int], GaugeMode], ...] = (
            ("tickwire_connections", "Client connections open on this replica", connections, "livesum"),
            ("tickwire_gateway_subscriptions", "Subscriptions (patterns) over all connections", subscriptions,
             "livesum"),
            ("tickwire_gateway_outbox_messages", "Frames queued to clients, not yet sent", outbox, "livesum"),
            ("tickwire_consumer_lag_messages", "Stream messages this replica has not received yet", lag, "livemax"),
            ("tickwire_gateway_hub_cached_topics", "Topics whose receivers the hub remembers (bounded)",
             cached_topics, "livesum"),
            ("tickwire_gateway_latest_subjects", "Subjects whose latest value snapshots serve (retained ones)",
             latest_subjects, "livemax"),
        )
        registry = None if self.multiprocess else self.registry
        for name, doc, read, mode in gauges:
            gauge = Gauge(name, doc, registry=registry, multiprocess_mode=mode)
            if self.multiprocess:
                self._published.append((gauge, read))
            else:
                gauge.set_function(read)

    def register(self, metric: Collector) -> None:
        """A metric made elsewhere (services.looplag), exported with the gateway's own."""
        self._metrics.register(metric)

    def publish_gauges(self) -> None:
        for gauge, read in self._published:
            gauge.set(read())

    async def publish(self, stop: asyncio.Event) -> None:
        """Under multiprocess mode, publish the gauges until ``stop`` is set (else return)."""
        while self.multiprocess and not stop.is_set():
            self.publish_gauges()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PUBLISH_INTERVAL):
                    await stop.wait()

    # ---- per message ---------------------------------------------------------------

    def start(self, headers: Mapping[str, str] | None, subject: str, seq: int, received_us: int) -> Span | None:
        """A span for a sampled message (child of ingest's), before its frame is encoded."""
        if self.tracer is None or not headers:
            return None
        traceparent = headers.get(envelope.TRACEPARENT)
        if not sampled(traceparent):
            return None
        topic = topic_of(subject)
        return self.tracer.start_span(
            f"deliver {topic}", context=extract(traceparent, headers.get(envelope.TRACESTATE)),
            kind=SpanKind.CONSUMER, start_time=received_us * 1000,
            attributes={ATTR_SYSTEM: "nats", ATTR_DESTINATION: subject, ATTR_TOPIC: topic, ATTR_SEQ: seq,
                        ATTR_NODE: self.node})

    def delivered(self, message: Message, receivers: int, span: Span | None) -> None:
        tally = self._tally
        if not tally.messages:
            asyncio.get_running_loop().call_soon(tally.flush)
        tally.messages += 1
        tally.deliveries += receivers
        hops = message.hops
        if hops is not None:
            for name, start, end, counts in tally.hops:
                begun, ended = hops.get(start), hops.get(end)
                if begun is not None and ended is not None:
                    self.latency.record_hop(name, ended - begun)
                    counts.add((ended - begun) / 1e6)
        if message.trace is None:
            return
        # Fanned out: the gateway hop ends and the browser's begins at the same instant.
        sent = now_us()
        self._sends[message.trace] = (sent, message.seq, message.topic, set())
        if len(self._sends) > TRACED_SENDS:
            self._sends.popitem(last=False)
        if span is not None:
            span.set_attribute(ATTR_SUBSCRIBERS, receivers)
            span.end(end_time=sent * 1000)

    # ---- per connection ------------------------------------------------------------

    def closed(self, code: int) -> None:
        self._closes.labels(str(code)).inc()

    def stalled(self) -> None:
        self._stalls.inc()

    def resumed(self) -> None:
        self._resumes.inc()

    def report(self, session: str, report: Report) -> None:
        """A client's receipts of traced messages: the browser hop, measured and traced."""
        for receipt in report.received:
            sent = self._sends.get(receipt.trace)
            if sent is None or receipt.t < sent[0] or receipt.seq != sent[1] or session in sent[3]:
                continue  # not ours, forgotten, a clock the offset did not fix, or told already
            sent_us, seq, topic, reporters = sent
            reporters.add(session)
            self._reports.inc()
            self._browser.observe((receipt.t - sent_us) / 1e6)
            self.latency.record_hop(BROWSER_HOP, receipt.t - sent_us)
            if self.tracer is not None:
                span = self.tracer.start_span(
                    f"browser receive {topic}", context=extract(receipt.trace), kind=SpanKind.CONSUMER,
                    start_time=sent_us * 1000,
                    attributes={ATTR_TOPIC: topic, ATTR_SEQ: seq, ATTR_SESSION: session, ATTR_NODE: self.node})
                span.end(end_time=receipt.t * 1000)
