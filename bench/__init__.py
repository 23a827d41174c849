"""``tickwire bench``: Tickwire against typical peers, side by side, on one machine.

Every run starts its own redis-server, nats-server and services as child processes on
free 127.0.0.1 ports, drives them with a producer process and client processes, measures
every process by PID (/proc) and stops each by PID. Results go to ``bench-results/`` as
JSON; ``tickwire bench --report`` turns the last one into ``docs/benchmarks.md``.
"""
