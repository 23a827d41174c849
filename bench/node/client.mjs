// tickwire bench's Node.js load client: many WebSocket connections in one process.
//
//     node bench/node/client.mjs        (configured by one JSON line on stdin)
//
// The same line protocol as bench/clients.py, so the runner drives either: the config line
// {"kind", "urls", "topics": [[...] | null per connection], "concurrency"}, then `ready`
// (handshake times), `go <t0_us>` starts counting (a message whose origin ts < t0 is ignored:
// a snapshot or an earlier run never counts), `stop` ends it with one `result` line; a
// `progress` line every 250 ms lets the runner see when the drain is over.
//
// It exists so the bench's figures are what a client that is not ours sees: `ws` (the most
// used Node WebSocket library), JSON.parse of every frame, latency = receive time − the
// message's origin ts (µs since the epoch, same clock) into 50 µs buckets. Every message's
// data carries the producer's per-symbol counter `q` (1, 2, 3, … in a run), so per topic and
// connection a `q` at or below the last one seen is a duplicate (not counted as received)
// and a jump is a gap (messages lost in the middle; the runner adds the tail from
// expected − received). One adapter per system speaks its protocol: Tickwire v1, the
// FastAPI baseline's JSON, Engine.IO v4 / Socket.IO v5 over the websocket transport, and
// the NATS text protocol over WebSocket.

import readline from "node:readline";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const BUCKET_US = 50;
const OPEN_TIMEOUT_MS = 30000;
const PROGRESS_MS = 250;

// A µs wall clock: Date.now() has ms resolution only, so take the instant it ticks over to
// the next ms as the anchor and advance it with the monotonic performance.now().
function wallClock() {
  const start = Date.now();
  let wall = start;
  while (wall === start) wall = Date.now();
  const mono = performance.now();
  return () => wall * 1000 + (performance.now() - mono) * 1000;
}
const nowUs = wallClock();

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

class Counter {
  constructor() {
    this.t0 = null;
    this.received = 0;
    this.duplicates = 0;
    this.gaps = 0;
    this.hist = new Map();
  }

  // One message on one connection: `last` maps the connection's topics to the last q seen.
  add(last, topic, ts, q) {
    if (this.t0 === null || ts < this.t0) return;
    const prev = last.get(topic) ?? 0;
    if (q <= prev) {
      this.duplicates += 1;
      return;
    }
    if (q > prev + 1) this.gaps += q - prev - 1;
    last.set(topic, q);
    this.received += 1;
    const bucket = Math.max(0, Math.floor((nowUs() - ts) / BUCKET_US));
    this.hist.set(bucket, (this.hist.get(bucket) ?? 0) + 1);
  }
}

function open(url, protocols) {
  // Compression off, no UTF-8 re-validation: the least work per frame on this side.
  return new WebSocket(url, protocols, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: OPEN_TIMEOUT_MS,
  });
}

// ---- adapters: each opens one connection, subscribes, calls ready(), counts messages ----

function tickwire(conn, counter, ready) {
  const ws = open(conn.url, ["tickwire.v1"]);
  let welcomed = false;
  ws.on("message", (raw) => {
    const frame = JSON.parse(raw);
    if (!welcomed) {
      welcomed = true;
      ws.send(JSON.stringify({ type: "subscribe", topics: conn.topics ?? ["ticks.*"] }));
      ready();
      return;
    }
    const msgs = frame.type === "batch" ? frame.msgs : frame.type === "msg" ? [frame] : [];
    for (const m of msgs) counter.add(conn.last, m.topic, m.ts, m.data.q);
  });
  return ws;
}

function fastapi(conn, counter, ready) {
  const ws = open(conn.url);
  ws.on("open", () => {
    ws.send(JSON.stringify({ type: "subscribe", topics: conn.topics ?? ["*"] }));
    ready();
  });
  ws.on("message", (raw) => {
    const m = JSON.parse(raw);
    counter.add(conn.last, m.topic, m.ts, m.data.q);
  });
  return ws;
}

function socketio(conn, counter, ready) {
  // Engine.IO v4 straight on the websocket transport: "0{open}", Socket.IO CONNECT "40" to
  // namespace "/", events as '42["name",data]', the server's ping "2" answered with "3".
  const ws = open(conn.url.replace(/\/$/, "") + "/socket.io/?EIO=4&transport=websocket");
  let connected = false;
  ws.on("message", (raw) => {
    const text = raw.toString();
    if (text.startsWith("42")) {
      const m = JSON.parse(text.slice(2))[1];
      counter.add(conn.last, m.topic, m.ts, m.data.q);
    } else if (text === "2") {
      ws.send("3");
    } else if (text.startsWith("0")) {
      ws.send("40");
    } else if (text.startsWith("40") && !connected) {
      connected = true;
      ws.send("42" + JSON.stringify(["subscribe", { topics: conn.topics ?? ["*"] }]));
      ready();
    }
  });
  return ws;
}

const CRLF = Buffer.from("\r\n");
const TS_HEADER = "Tw-Ts: ";

function natsws(conn, counter, ready) {
  // The NATS client protocol over WebSocket: INFO, then CONNECT/SUB/PING; messages arrive
  // as HMSG (JetStream-stored messages keep their headers), possibly split across frames.
  const ws = open(conn.url);
  const subjects = conn.topics ? conn.topics.map((t) => "md.ticks." + t.split(".").slice(1).join(".")) : ["md.ticks.>"];
  let buf = Buffer.alloc(0);
  ws.on("open", () => {
    const out = ['CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}']
      .concat(subjects.map((s, i) => `SUB ${s} ${i + 1}`), ["PING", ""]).join("\r\n");
    ws.send(out);
    ready();
  });
  ws.on("message", (raw) => {
    buf = buf.length ? Buffer.concat([buf, raw]) : raw;
    let pos = 0;
    for (;;) {
      const eol = buf.indexOf(CRLF, pos);
      if (eol < 0) break;
      const head = buf.toString("latin1", pos, Math.min(eol, pos + 5));
      if (head.startsWith("HMSG")) {
        const parts = buf.toString("latin1", pos, eol).split(" ");
        const total = Number(parts[parts.length - 1]);
        const hlen = Number(parts[parts.length - 2]);
        const end = eol + 2 + total + 2;
        if (buf.length < end) break; // the payload is in a later frame
        const headers = buf.toString("latin1", eol + 2, eol + 2 + hlen);
        const at = headers.indexOf(TS_HEADER);
        if (at >= 0) {
          const ts = Number(headers.slice(at + TS_HEADER.length, headers.indexOf("\r", at)));
          const data = JSON.parse(buf.toString("utf8", eol + 2 + hlen, eol + 2 + total));
          counter.add(conn.last, parts[1], ts, data.q);
        }
        pos = end;
        continue;
      }
      if (head.startsWith("MSG ")) {
        const parts = buf.toString("latin1", pos, eol).split(" ");
        const end = eol + 2 + Number(parts[parts.length - 1]) + 2;
        if (buf.length < end) break;
        pos = end; // no headers: no origin ts to measure
        continue;
      }
      if (head.startsWith("PING")) ws.send("PONG\r\n");
      pos = eol + 2;
    }
    buf = pos >= buf.length ? Buffer.alloc(0) : buf.subarray(pos);
  });
  return ws;
}

const ADAPTERS = { tickwire, fastapi, socketio, natsws };

// ---- the process ------------------------------------------------------------------------

function percentile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : null;
}

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const config = JSON.parse((await lines.next()).value);
  const adapter = ADAPTERS[config.kind];
  if (!adapter) throw new Error(`unknown kind ${config.kind}`);
  const counter = new Counter();
  const conns = config.topics.map((topics, i) => ({
    topics, url: config.urls[i % config.urls.length], last: new Map(), ws: null,
  }));
  const handshakeMs = [];
  let failed = 0;
  let disconnected = 0;
  let stopping = false;

  // At most `concurrency` handshakes in flight; a slot is free once its connection subscribed.
  const started = performance.now();
  const concurrency = Math.max(1, config.concurrency ?? 200);
  let next = 0;
  await new Promise((allReady) => {
    let pending = conns.length;
    const settle = () => {
      pending -= 1;
      if (pending === 0) allReady();
      else launch();
    };
    const launch = () => {
      if (next >= conns.length) return;
      const conn = conns[next++];
      const t = performance.now();
      let ready = false;
      conn.ws = adapter(conn, counter, () => {
        ready = true;
        handshakeMs.push(performance.now() - t);
        settle();
      });
      conn.ws.on("error", (err) => {
        if (!ready) process.stderr.write(`connect failed: ${err.message}\n`);
      });
      conn.ws.on("close", () => {
        if (!ready) {
          ready = true; // counted once, as failed
          failed += 1;
          settle();
        } else if (!stopping) {
          disconnected += 1;
        }
      });
    };
    if (conns.length === 0) allReady();
    for (let i = 0; i < Math.min(concurrency, conns.length); i++) launch();
  });
  const hs = handshakeMs.sort((a, b) => a - b);
  say({
    event: "ready", connected: hs.length, failed, connect_seconds: (performance.now() - started) / 1000,
    handshake_ms_p50: percentile(hs, 0.5), handshake_ms_p99: percentile(hs, 0.99),
  });

  let cpu0 = process.cpuUsage();
  let wall0 = performance.now();
  const progress = setInterval(() => say({ event: "progress", received: counter.received, resumed: 0 }), PROGRESS_MS);
  for (;;) {
    const { value, done } = await lines.next();
    const line = (value ?? "").trim();
    if (done || line === "" || line === "stop") break;
    if (line.startsWith("go ")) {
      counter.t0 = Number(line.split(" ")[1]);
      cpu0 = process.cpuUsage();
      wall0 = performance.now();
    }
  }
  clearInterval(progress);
  stopping = true;
  const cpu = process.cpuUsage(cpu0);
  say({
    event: "result", received: counter.received, hist: Object.fromEntries(counter.hist),
    cpu_seconds: (cpu.user + cpu.system) / 1e6, wall_seconds: (performance.now() - wall0) / 1000,
    connections: conns.length - failed, gaps: counter.gaps, duplicates: counter.duplicates,
    disconnected, reconnected: 0, last_resumed_us: null, first_disconnect_us: null,
  });
  for (const conn of conns) conn.ws?.terminate();
  // Exit once stdout is flushed (a pipe's writes are asynchronous in Node).
  process.stdout.write("", () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
