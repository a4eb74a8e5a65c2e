"""Errors that the command line turns into one clear line on stderr and a non-zero exit."""
from __future__ import annotations

import threading


class BlindSRError(Exception):
    """A problem the user can act on; its message is printed as-is, without a traceback."""

    exit_code = 1


class UsageError(BlindSRError):
    """The command line itself is wrong (verb, key, value): exit code 2, before any work."""

    exit_code = 2


class InputError(BlindSRError):
    """An input file or folder is missing, unreadable or unsuitable."""


class OutputError(BlindSRError):
    """An output location cannot be written, or would overwrite results without permission."""


# Set by the command line's SIGINT/SIGTERM handlers. Python ignores an exception raised by a signal
# handler while a __del__ method or garbage-collection callback runs, so the stop request is also
# kept here and long loops check it through their progress callbacks (``raise_if_stopped``).
STOP_REQUESTED = threading.Event()


def raise_if_stopped() -> None:
    if STOP_REQUESTED.is_set():
        raise KeyboardInterrupt
