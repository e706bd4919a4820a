"""A test adapter that reports what a forked worker inherited from its zygote."""

import logging
import os
import random
import signal

from snakepit_bridge import BaseAdapter, tool

#: Drawn once at import, in the zygote: a child that never reseeded would draw the same next value.
IMPORT_TIME_DRAW = random.random()


class ProbeAdapter(BaseAdapter):
    @tool
    def inherited(self) -> dict:
        return {
            "sigchld_default": signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL,
            "root_handlers": len(logging.getLogger().handlers),
            "leads_group": os.getpgid(0) == os.getpid(),
            "mark": os.environ.get("SNAKEPIT_WORKER_MARK"),
            "draw": random.random(),
        }
