"""Typed gRPC client for the kubelite API (sync and asyncio) and its config file."""

from kubelite.client.client import AsyncClient, Client
from kubelite.client.config import ClientConfig, load_config
from kubelite.client.errors import APIStatusError

__all__ = ["APIStatusError", "AsyncClient", "Client", "ClientConfig", "load_config"]
