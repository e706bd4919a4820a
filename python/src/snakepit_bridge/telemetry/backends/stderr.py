"""A backend for scripts without a host: one JSON line per event on stderr."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, Dict, Optional, TextIO


class StderrBackend:
    """Writes each event as a JSON object line (``{"event": ..., "measurements": ...}``)."""

    #: Always on: there is no host to switch it off.
    recording = True

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def push_raw(
        self, name: str, measurements: Dict[str, Any], metadata: Dict[str, str], timestamp_ns: int, correlation_id: str
    ) -> bool:
        line = json.dumps(
            {
                "event": name,
                "measurements": measurements,
                "metadata": metadata,
                "timestamp_ns": timestamp_ns,
                "correlation_id": correlation_id,
            },
            default=str,
        )
        with self._lock:
            print(line, file=self._stream or sys.stderr, flush=True)
        return True
