"""Per-session state kept in the worker: a counter for each session id."""

import os
from typing import Any, Dict

from snakepit_bridge import BaseAdapter, tool


class SessionCounterAdapter(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.counters: Dict[str, int] = {}

    @tool(description="Add `by` to this session's counter and return it with the worker's pid.")
    def bump(self, by: int = 1) -> Dict[str, Any]:
        session = self.session_context.session_id or "anonymous"
        self.counters[session] = self.counters.get(session, 0) + by
        return {"session": session, "count": self.counters[session], "pid": os.getpid()}
