// tickwire bench's Node.js load client: many WebSocket connections in one process.
//
//     node bench/node/client.mjs        (configured by one JSON line on stdin)
//
// The same line protocol as bench/clients.py, so the runner drives either: the config line
// {"kind", "urls", "topics": [[...] | null per connection], "concurrency"}, then `ready`
// (handshake times), `go <t0_us>` starts counting, `stop` ends it with one `result` line; a
// `progress` line every 250 ms lets the runner see when the drain is over.
//
// It exists so the bench's figures are what a client that is not ours sees: `ws` (the most
// used Node WebSocket library) and JSON.parse of every frame. Connections, counting and the
// four protocol adapters are fleet.mjs's, shared with the browser client (bench/browser.py).

import readline from "node:readline";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { Fleet, wallClock } from "./fleet.mjs";

const OPEN_TIMEOUT_MS = 30000;
const PROGRESS_MS = 250;

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function open(url, protocols) {
  // Compression off, no UTF-8 re-validation: the least work per frame on this side.
  const ws = new WebSocket(url, protocols, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: OPEN_TIMEOUT_MS,
  });
  ws.on("error", (err) => process.stderr.write(`websocket ${url}: ${err.message}\n`));
  return ws;
}

// ---- the process ------------------------------------------------------------------------

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();
  const config = JSON.parse((await lines.next()).value);
  const fleet = new Fleet(config, open, wallClock());
  say({ event: "ready", ...(await fleet.connect()) });
  let cpu0 = process.cpuUsage();
  let wall0 = performance.now();
  const progress = setInterval(() => say(fleet.progress()), PROGRESS_MS);
  for (;;) {
    const { value, done } = await lines.next();
    const line = (value ?? "").trim();
    if (done || line === "" || line === "stop") break;
    if (line.startsWith("go ")) {
      fleet.go(Number(line.split(" ")[1]));
      cpu0 = process.cpuUsage();
      wall0 = performance.now();
    }
  }
  clearInterval(progress);
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - wall0) / 1000;
  say({ ...fleet.stop(), cpu_seconds: (cpu.user + cpu.system) / 1e6, wall_seconds: wall });
  // Exit once stdout is flushed (a pipe's writes are asynchronous in Node).
  process.stdout.write("", () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
