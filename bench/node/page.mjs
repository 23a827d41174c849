// The browser load client's page side: fleet.mjs on the browser's own WebSocket, driven by
// bench/browser.py through Playwright (window.benchFleet.start/go/progress/stop).

import { Fleet, wallClock } from "./fleet.mjs";

let fleet = null;

window.benchFleet = {
  async start(config) {
    fleet = new Fleet(config, (url, protocols) => new WebSocket(url, protocols), wallClock());
    return await fleet.connect();
  },
  go: (t0) => fleet.go(t0),
  progress: () => fleet.progress(),
  stop: () => fleet.stop(),
};
