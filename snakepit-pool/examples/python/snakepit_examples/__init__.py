"""Python adapters of the snakepit-pool examples (one module per example)."""

from .bidirectional import BidirectionalAdapter
from .crashy import CrashyAdapter
from .errors import ErrorsAdapter
from .sessions import SessionCounterAdapter
from .threaded import ThreadedAdapter

__all__ = [
    "BidirectionalAdapter",
    "CrashyAdapter",
    "ErrorsAdapter",
    "SessionCounterAdapter",
    "ThreadedAdapter",
]
