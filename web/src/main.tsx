/**
 * The dashboard's entry: the client, the store and the per-frame buffer are made here, once,
 * outside React, so re-renders and StrictMode's double effects never open a second connection.
 */

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { TickwireClient } from "./client";
import { fetchServedGateways, readPageConfig } from "./config";
import { FrameBuffer } from "./market/frameBuffer";
import { MarketStore } from "./market/store";
import "./styles.css";

async function main(): Promise<void> {
  const served = await fetchServedGateways(new URL("api/dashboard", document.baseURI).toString());
  const config = readPageConfig(window.location, served);
  if (config.token) history.replaceState(null, "", window.location.pathname + window.location.search);
  const client = new TickwireClient({
    urls: config.gateways,
    topics: config.topics,
    transport: config.transport,
    ...(config.token ? { token: config.token } : {}),
  });
  const store = new MarketStore();
  const buffer = new FrameBuffer((msgs) => store.apply(msgs, Date.now()));
  client.on("message", (msg) => buffer.push(msg));
  client.start();

  const root = document.getElementById("root");
  if (!root) throw new Error("index.html has no #root");
  createRoot(root).render(
    <StrictMode>
      <App client={client} store={store} latencyUrl={new URL("api/latency", document.baseURI).toString()} />
    </StrictMode>,
  );
}

void main();
