"""Tickwire's Python client: subscribe to topics, get each message once and in order."""

from tickwire_client.client import ClientError, ClientStats, Message, TickwireClient

__all__ = ["ClientError", "ClientStats", "Message", "TickwireClient"]
