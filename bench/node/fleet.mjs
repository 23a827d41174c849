// The load client's core, the same in Node.js and in a browser page: connections, protocol
// adapters and counting, written against the standard WebSocket interface
// (addEventListener, send, close), which the npm package `ws` implements too.
//
// Latency = receive time − the message's origin ts (µs since the epoch, same clock) into
// 50 µs buckets. Every message's data carries the producer's per-symbol counter `q` (1, 2,
// 3, … in a run), so per topic and connection a `q` at or below the last one seen is a
// duplicate (not counted as received) and a jump is a gap (lost in the middle; the runner
// adds the tail from expected − received). A message whose ts is before `go`'s t0 is
// ignored: a snapshot or an earlier run never counts.

export const BUCKET_US = 50;

// A µs wall clock: Date.now() has ms resolution only, so take the instant it ticks over to
// the next ms as the anchor and advance it with the monotonic performance.now().
export function wallClock() {
  const start = Date.now();
  let wall = start;
  while (wall === start) wall = Date.now();
  const mono = performance.now();
  return () => wall * 1000 + (performance.now() - mono) * 1000;
}

export class Counter {
  constructor(nowUs) {
    this.nowUs = nowUs;
    this.t0 = null;
    this.received = 0;
    this.duplicates = 0;
    this.gaps = 0;
    this.hist = new Map();
  }

  // One message on one connection, received at `now` (µs; one reading per frame: a batch's
  // messages arrive together): `last` maps the connection's topics to the last q seen.
  add(last, topic, ts, q, now) {
    if (this.t0 === null || ts < this.t0) return;
    const prev = last.get(topic) ?? 0;
    if (q <= prev) {
      this.duplicates += 1;
      return;
    }
    if (q > prev + 1) this.gaps += q - prev - 1;
    last.set(topic, q);
    this.received += 1;
    const bucket = Math.max(0, Math.floor((now - ts) / BUCKET_US));
    this.hist.set(bucket, (this.hist.get(bucket) ?? 0) + 1);
  }
}

// ---- adapters: each opens one connection, subscribes, calls ready(), counts messages ----

function tickwire(open, conn, counter, ready) {
  const ws = open(conn.url, ["tickwire.v1"]);
  let welcomed = false;
  ws.addEventListener("message", (event) => {
    const now = counter.nowUs();
    const frame = JSON.parse(event.data);
    if (!welcomed) {
      welcomed = true;
      ws.send(JSON.stringify({ type: "subscribe", topics: conn.topics ?? ["ticks.*"] }));
      ready();
      return;
    }
    const msgs = frame.type === "batch" ? frame.msgs : frame.type === "msg" ? [frame] : [];
    for (const m of msgs) counter.add(conn.last, m.topic, m.ts, m.data.q, now);
  });
  return ws;
}

function fastapi(open, conn, counter, ready) {
  const ws = open(conn.url);
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({ type: "subscribe", topics: conn.topics ?? ["*"] }));
    ready();
  });
  ws.addEventListener("message", (event) => {
    const now = counter.nowUs();
    const m = JSON.parse(event.data);
    counter.add(conn.last, m.topic, m.ts, m.data.q, now);
  });
  return ws;
}

function socketio(open, conn, counter, ready) {
  // Engine.IO v4 straight on the websocket transport: "0{open}", Socket.IO CONNECT "40" to
  // namespace "/", events as '42["name",data]', the server's ping "2" answered with "3".
  const ws = open(conn.url.replace(/\/$/, "") + "/socket.io/?EIO=4&transport=websocket");
  let connected = false;
  ws.addEventListener("message", (event) => {
    const now = counter.nowUs();
    const text = event.data;
    if (text.startsWith("42")) {
      const m = JSON.parse(text.slice(2))[1];
      counter.add(conn.last, m.topic, m.ts, m.data.q, now);
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

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();
const TS_HEADER = "Tw-Ts: ";

// Where the next "\r\n" starts in `buf` at or after `from`, or -1.
function crlf(buf, from) {
  for (let i = buf.indexOf(13, from); i >= 0 && i + 1 < buf.length; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] === 10) return i;
  }
  return -1;
}

function natsws(open, conn, counter, ready) {
  // The NATS client protocol over WebSocket: INFO, then CONNECT/SUB/PING; messages arrive
  // as HMSG (JetStream-stored messages keep their headers) in binary frames, a message
  // possibly split across frames. Bytes as Uint8Array: a Node Buffer is one, and a
  // browser's ArrayBuffer is viewed as one.
  const ws = open(conn.url);
  ws.binaryType = "arraybuffer";
  const subjects = conn.topics ? conn.topics.map((t) => "md.ticks." + t.split(".").slice(1).join(".")) : ["md.ticks.>"];
  let buf = new Uint8Array(0);
  ws.addEventListener("open", () => {
    const out = ['CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}']
      .concat(subjects.map((s, i) => `SUB ${s} ${i + 1}`), ["PING", ""]).join("\r\n");
    ws.send(out);
    ready();
  });
  ws.addEventListener("message", (event) => {
    const now = counter.nowUs();
    const raw = typeof event.data === "string" ? new TextEncoder().encode(event.data) : new Uint8Array(event.data);
    if (buf.length) {
      const joined = new Uint8Array(buf.length + raw.length);
      joined.set(buf);
      joined.set(raw, buf.length);
      buf = joined;
    } else {
      buf = raw;
    }
    let pos = 0;
    for (;;) {
      const eol = crlf(buf, pos);
      if (eol < 0) break;
      const line = latin1.decode(buf.subarray(pos, eol));
      if (line.startsWith("HMSG ") || line.startsWith("MSG ")) {
        const parts = line.split(" ");
        const total = Number(parts[parts.length - 1]);
        const end = eol + 2 + total + 2;
        if (buf.length < end) break; // the payload is in a later frame
        if (parts[0] === "HMSG") {
          const hlen = Number(parts[parts.length - 2]);
          const headers = latin1.decode(buf.subarray(eol + 2, eol + 2 + hlen));
          const at = headers.indexOf(TS_HEADER);
          if (at >= 0) {
            const ts = Number(headers.slice(at + TS_HEADER.length, headers.indexOf("\r", at)));
            const data = JSON.parse(utf8.decode(buf.subarray(eol + 2 + hlen, eol + 2 + total)));
            counter.add(conn.last, parts[1], ts, data.q, now);
          }
        }
        pos = end;
        continue;
      }
      if (line === "PING") ws.send("PONG\r\n");
      pos = eol + 2;
    }
    buf = pos >= buf.length ? new Uint8Array(0) : buf.subarray(pos);
  });
  return ws;
}

export const ADAPTERS = { tickwire, fastapi, socketio, natsws };

function percentile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : null;
}

// All connections of one process; `open(url, protocols)` makes a WebSocket.
export class Fleet {
  constructor(config, open, nowUs) {
    this.adapter = ADAPTERS[config.kind];
    if (!this.adapter) throw new Error(`no adapter for ${config.kind} here`);
    this.open = open;
    this.counter = new Counter(nowUs);
    this.conns = config.topics.map((topics, i) => ({
      topics, url: config.urls[i % config.urls.length], last: new Map(), ws: null,
    }));
    this.concurrency = Math.max(1, config.concurrency ?? 200);
    this.failed = 0;
    this.disconnected = 0;
    this.stopping = false;
  }

  // Opens every connection, at most `concurrency` handshakes in flight (a slot is free
  // once its connection subscribed); resolves with the `ready` event's fields.
  connect() {
    const started = performance.now();
    const handshakeMs = [];
    let next = 0;
    return new Promise((allReady) => {
      let pending = this.conns.length;
      const settle = () => {
        pending -= 1;
        if (pending === 0) {
          const hs = handshakeMs.sort((a, b) => a - b);
          allReady({
            connected: hs.length, failed: this.failed, connect_seconds: (performance.now() - started) / 1000,
            handshake_ms_p50: percentile(hs, 0.5), handshake_ms_p99: percentile(hs, 0.99),
          });
        } else {
          launch();
        }
      };
      const launch = () => {
        if (next >= this.conns.length) return;
        const conn = this.conns[next++];
        const t = performance.now();
        let ready = false;
        conn.ws = this.adapter(this.open, conn, this.counter, () => {
          ready = true;
          handshakeMs.push(performance.now() - t);
          settle();
        });
        conn.ws.addEventListener("close", () => {
          if (!ready) {
            ready = true; // counted once, as failed
            this.failed += 1;
            settle();
          } else if (!this.stopping) {
            this.disconnected += 1;
          }
        });
      };
      if (this.conns.length === 0) allReady({ connected: 0, failed: 0, connect_seconds: 0 });
      for (let i = 0; i < Math.min(this.concurrency, this.conns.length); i++) launch();
    });
  }

  go(t0) {
    this.counter.t0 = t0;
  }

  progress() {
    return { event: "progress", received: this.counter.received, resumed: 0 };
  }

  // The `result` event's fields, less the CPU and wall time the caller measures; closes all.
  stop() {
    this.stopping = true;
    const c = this.counter;
    for (const conn of this.conns) conn.ws?.close();
    return {
      event: "result", received: c.received, hist: Object.fromEntries(c.hist), gaps: c.gaps,
      duplicates: c.duplicates, connections: this.conns.length - this.failed, disconnected: this.disconnected,
      reconnected: 0, last_resumed_us: null, first_disconnect_us: null,
    };
  }
}
