"""Seed-compatible import path: ``from snakepit_bridge.session_context import SessionContext``."""

from ._context import HostBridgeUnavailableError, HostToolError, SessionContext

__all__ = ["HostBridgeUnavailableError", "HostToolError", "SessionContext"]
