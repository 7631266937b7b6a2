"""User-facing errors: the CLI prints them as one line and exits with code 2 (bad input) or 1 (a runtime failure)."""
from __future__ import annotations


class BasefuseError(Exception):
    """Bad input or environment the user can fix; the message says what and how.

    Messages are one line: name the file/key/column at fault, then what to do.
    """

    exit_code = 2


class TrainingDiverged(BasefuseError):
    """A finetune whose loss became NaN or Inf: a failed run, never a result (its metrics would be noise)."""


class WriteFailed(BasefuseError):
    """The disk refused a write (full, over quota, an I/O error): a runtime failure, not bad input."""

    exit_code = 1


class PushFailed(BasefuseError):
    """The Hub did not take an upload (network, server): a runtime failure; the local output is complete."""

    exit_code = 1
