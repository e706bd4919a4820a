"""Logging for the Python side: ``configure_logging()`` and ``get_logger(name)`` (seed names).

``SNAKEPIT_LOG_LEVEL`` is debug, info, warning, error (default) or none. Records go to stderr
with the call's correlation id (``[corr=...]``, ``-`` outside a call); the host drains and
forwards the worker's stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Dict

__all__ = ["configure_logging", "get_logger", "level_from_env"]

_LEVELS: Dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL + 10,
}


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            try:
                from . import telemetry

                record.correlation_id = telemetry.get_correlation_id() or "-"
            except Exception:  # noqa: BLE001 - logging must never fail a call
                record.correlation_id = "-"
        return True


def level_from_env() -> int:
    """The level ``SNAKEPIT_LOG_LEVEL`` asks for (error when unset or unknown)."""
    return _LEVELS.get((os.environ.get("SNAKEPIT_LOG_LEVEL") or "error").strip().lower(), logging.ERROR)


def configure_logging(force: bool = False) -> None:
    """Configure the root logger from ``SNAKEPIT_LOG_LEVEL`` (stderr, with correlation ids)."""
    level = level_from_env()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_CorrelationFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s - [%(threadName)s] - %(name)s - %(levelname)s - [corr=%(correlation_id)s] %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=force)
    logging.getLogger("grpc").setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``snakepit`` namespace (``snakepit_bridge.x`` becomes ``snakepit.bridge.x``)."""
    if name.startswith("snakepit."):
        return logging.getLogger(name)
    if name.startswith("snakepit_bridge."):
        return logging.getLogger("snakepit.bridge." + name[len("snakepit_bridge."):])
    return logging.getLogger(f"snakepit.{name}")
