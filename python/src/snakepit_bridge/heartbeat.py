"""Heartbeats from a worker to its host: ``HeartbeatConfig`` and ``HeartbeatClient``.

The same public names as the original's ``snakepit_bridge.heartbeat``. ``HeartbeatClient``
calls the host's ``Heartbeat`` every ``interval_ms``; after ``max_missed_heartbeats``
consecutive failures a *dependent* worker runs ``on_threshold_exceeded`` (default: SIGTERM to
itself, then a hard exit 5 s later), an independent one only logs. The stub may be a sync or an
``aio`` stub. Our own server runs its heartbeat from ``SNAKEPIT_HEARTBEAT_CONFIG`` (see server.py).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
import re
import signal
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Sequence, Tuple

__all__ = ["HeartbeatClient", "HeartbeatConfig"]

log = logging.getLogger("snakepit_bridge.heartbeat")

_TRUE = {"1", "true", "t", "yes", "y", "on"}


@dataclass(frozen=True)
class HeartbeatConfig:
    """Heartbeat settings with the seeds' defaults (on, 2 s, 10 s, 3 missed, dependent)."""

    enabled: bool = True
    interval_ms: int = 2_000
    timeout_ms: int = 10_000
    max_missed_heartbeats: int = 3
    initial_delay_ms: int = 0
    jitter_ms: int = 0
    dependent: bool = True

    @classmethod
    def from_mapping(
        cls, options: Optional[Mapping[str, Any]], *, defaults: Optional["HeartbeatConfig"] = None
    ) -> "HeartbeatConfig":
        """Merge ``options`` (snake_case or camelCase keys; unknown keys ignored) over ``defaults``."""
        data = asdict(defaults or cls())
        names = {f.name for f in fields(cls)}
        for raw_key, value in (options or {}).items():
            key = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), str(raw_key)).lower()
            if key in names and value is not None:
                data[key] = _coerce(key, value, data[key])
        return cls(**data)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if key in ("enabled", "dependent"):
        if isinstance(value, str):
            return value.strip().lower() in _TRUE
        return bool(value)
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number >= 0 else default


class HeartbeatClient:
    """Periodically calls the host's ``Heartbeat``; counts misses; acts on the threshold."""

    def __init__(
        self,
        stub: Any,
        session_id: str,
        config: Optional[HeartbeatConfig] = None,
        *,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        on_threshold_exceeded: Optional[Callable[[int], Awaitable[None]]] = None,
        metadata: Optional[Sequence[Tuple[str, str]]] = None,
    ) -> None:
        self._stub = stub
        self._session_id = session_id
        self._config = config or HeartbeatConfig()
        self._loop = loop
        self._metadata = list(metadata or [])
        if on_threshold_exceeded is None and self._config.dependent:
            on_threshold_exceeded = self._terminate_self
        self._on_threshold_exceeded = on_threshold_exceeded
        self._task: Optional[asyncio.Task[None]] = None
        self._running = False
        self._missed = 0
        self._sent = 0
        self._succeeded = 0
        self._last_ping_monotonic: Optional[float] = None
        self._last_success_monotonic: Optional[float] = None

    @property
    def config(self) -> HeartbeatConfig:
        """The settings in use."""
        return self._config

    def start(self) -> bool:
        """Schedule the loop on the running (or given) event loop; ``False`` when disabled or running."""
        if not self._config.enabled or self._running:
            return False
        loop = self._loop
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                log.warning("no running event loop; the heartbeat client cannot start")
                return False
        self._running = True
        self._task = loop.create_task(self._run(), name="snakepit-heartbeat")
        return True

    async def stop(self) -> None:
        """Stop the loop and wait for it to end."""
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def status(self) -> Dict[str, Any]:
        """A snapshot for diagnostics (misses, sends, successes, last times)."""
        return {
            "enabled": self._config.enabled,
            "dependent": self._config.dependent,
            "running": self._running,
            "missed_heartbeats": self._missed,
            "sent": self._sent,
            "succeeded": self._succeeded,
            "last_ping_monotonic": self._last_ping_monotonic,
            "last_success_monotonic": self._last_success_monotonic,
        }

    async def ping_once(self) -> Any:
        """Send one heartbeat now; returns the response, or ``None`` on failure or when disabled."""
        if not self._config.enabled:
            return None
        return await self._send()

    async def _run(self) -> None:
        try:
            await asyncio.sleep(self._config.initial_delay_ms / 1000.0)
            while self._running:
                await self._send()
                interval = self._config.interval_ms / 1000.0
                if self._config.jitter_ms:
                    interval += random.uniform(0.0, self._config.jitter_ms / 1000.0)
                await asyncio.sleep(interval)
        finally:
            self._running = False

    async def _send(self) -> Any:
        from ._proto import snakepit_bridge_pb2 as pb

        self._last_ping_monotonic = time.monotonic()
        self._sent += 1
        request = pb.HeartbeatRequest(session_id=self._session_id)
        request.client_time.GetCurrentTime()
        timeout = max(self._config.timeout_ms, 1) / 1000.0
        try:
            method = self._stub.Heartbeat
            if _is_async_stub(method):
                response = await method(request, timeout=timeout, metadata=self._metadata)
            else:
                call = lambda: method(request, timeout=timeout, metadata=self._metadata)  # noqa: E731
                response = await asyncio.get_running_loop().run_in_executor(None, call)
        except Exception as exc:  # noqa: BLE001 - any failure is a missed heartbeat
            self._missed += 1
            log.warning("heartbeat %d to the host failed (%d missed): %s", self._sent, self._missed, exc)
            if self._missed >= self._config.max_missed_heartbeats:
                await self._threshold()
            return None
        self._missed = 0
        self._succeeded += 1
        self._last_success_monotonic = time.monotonic()
        return response

    async def _threshold(self) -> None:
        if self._on_threshold_exceeded is None:
            log.info("heartbeat threshold reached (%d missed); the worker is independent", self._missed)
            return
        try:
            await self._on_threshold_exceeded(self._missed)
        except Exception:  # noqa: BLE001 - a failing handler must not end the loop silently
            log.exception("the heartbeat threshold handler raised")

    async def _terminate_self(self, missed: int) -> None:
        log.error("host unreachable (%d heartbeats missed); terminating", missed)
        self._running = False
        loop = asyncio.get_running_loop()
        loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)
        loop.call_later(5.0, os._exit, 70)


def _is_async_stub(method: Any) -> bool:
    """Whether a stub method belongs to a ``grpc.aio`` channel (its calls are awaitable)."""
    module = type(method).__module__ or ""
    return "aio" in module or inspect.iscoroutinefunction(method)
