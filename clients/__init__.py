"""Clients of sferumd: the asyncio Python SDK (``clients.sdk``) and the ``sferum`` CLI."""

from clients.sdk import Client, ClientError, ConnectionLost

__all__ = ["Client", "ClientError", "ConnectionLost"]
