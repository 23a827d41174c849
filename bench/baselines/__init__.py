"""Peers the bench runs beside Tickwire, each written as a competent developer would.

* ``fastapi_app``: one FastAPI app on uvicorn reading the Redis stream with XREAD and
  looping ``await ws.send_text`` over its clients (the typical design).
* ``socketio_app``: python-socketio (ASGI, on uvicorn) emitting each entry to rooms.
* nats-server's own WebSocket listener (no app: ``processes.nats(websocket_port=…)``),
  fed by Tickwire's ingest into the subjects its clients subscribe to.
"""
