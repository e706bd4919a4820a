"""A thread-profile adapter: one process serves several calls at once."""

import os
import threading
import time
from typing import Any, Dict

from snakepit_bridge import ThreadSafeAdapter, thread_safe_method, tool


class ThreadedAdapter(ThreadSafeAdapter):
    __thread_safe__ = True

    def __init__(self) -> None:
        super().__init__()
        self.served = 0

    @thread_safe_method
    @tool(description="Sleep `ms`, then report the process and thread that served the call.")
    def work(self, ms: int = 100) -> Dict[str, Any]:
        time.sleep(ms / 1000)
        with self.acquire_lock():
            self.served += 1
            served = self.served
        return {"pid": os.getpid(), "thread": threading.current_thread().name, "served": served}
