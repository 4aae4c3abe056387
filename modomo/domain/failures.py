"""How a scene task can fail, and what follows from each kind.

- ``input``: the task's input can never be processed (not an image, truncated, too large,
  an unsupported format, a decompression bomb, an original changed or gone since it was
  registered). Retrying cannot help: the scene fails at once, final, and the task goes to
  the dead stream with reason ``input``.
- ``transient``: anything else (a model error, a deadline passed, storage or Redis away, a
  worker that died). The task is retried after its backoff and goes to the dead stream
  with reason ``attempts_exhausted`` after the last attempt.

The class is recorded in ``scene_failed.failure``, in each attempt's error and in the dead
entry's ``reason``.
"""

from __future__ import annotations

from typing import Literal

FailureClass = Literal["input", "transient"]

INPUT: FailureClass = "input"
TRANSIENT: FailureClass = "transient"


class InputError(ValueError):
    """The task's input can never be processed; the message says why, for a person."""


def failure_class(exc: BaseException) -> FailureClass:
    """``input`` for an :class:`InputError`, ``transient`` for everything else."""
    return INPUT if isinstance(exc, InputError) else TRANSIENT
