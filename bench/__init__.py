"""``tickwire bench``: Tickwire against typical peers, side by side, on one machine.

Every run starts its own redis-server, nats-server and services as child processes on
free 127.0.0.1 ports, drives them with a producer process and load-client processes (by
default Node.js with the npm package ``ws``, bench/node/; or a headless Chromium page, or
Python), measures every process by PID (/proc) and stops each by PID. Results go to
``bench-results/`` as JSON; ``tickwire bench --report`` turns the last one into
``docs/benchmarks.md``. A source-checkout tool: no service imports it, and the runtime
image does not ship it.
"""
