"""Tools that fail on purpose: a hard crash of the process and a transient error."""

import os
from typing import Dict

from snakepit_bridge import BaseAdapter, tool


class CrashyAdapter(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.attempts: Dict[str, int] = {}

    @tool(description="Return this worker's pid.")
    def whoami(self) -> int:
        return os.getpid()

    @tool(description="End the worker process at once, as a segfault in a C extension would.")
    def crash(self) -> None:
        os._exit(70)

    @tool(description="Raise ConnectionError for the first `failures` calls with `key`.")
    def flaky(self, key: str, failures: int = 1) -> Dict[str, int]:
        attempt = self.attempts.get(key, 0) + 1
        self.attempts[key] = attempt
        if attempt <= failures:
            raise ConnectionError(f"transient failure {attempt} of {failures}")
        return {"attempts": attempt}
