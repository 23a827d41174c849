"""The gateway: one JetStream ordered consumer per process, fanned out to WebSocket clients."""
