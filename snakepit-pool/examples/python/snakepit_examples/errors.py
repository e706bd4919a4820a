"""Tools whose failures arrive in Rust as typed errors."""

import time

from snakepit_bridge import BaseAdapter, tool


class ErrorsAdapter(BaseAdapter):
    @tool(description="Divide a by b (b = 0 raises ZeroDivisionError).")
    def divide(self, a: float, b: float) -> float:
        return a / b

    @tool(description="Reject a negative amount with a ValueError.")
    def withdraw(self, amount: int) -> int:
        if amount < 0:
            raise ValueError(f"amount must be positive, got {amount}")
        return amount

    @tool(description="Sleep `ms` milliseconds.")
    def slow(self, ms: int) -> int:
        time.sleep(ms / 1000)
        return ms
