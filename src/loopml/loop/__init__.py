"""The loop: a retraining policy carried out — monitor, retrain, gate, shadow, canary,
promote, roll back — with every decision recorded.

Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.lazy import lazy_attributes

_EXPORTS = {
    "LoopStep": "loopml.loop.controller",
    "RetrainingPolicy": "loopml.loop.policy",
    "decisions": "loopml.loop.history",
    "read_policy": "loopml.loop.policy",
    "run_loop": "loopml.loop.controller",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_attributes(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from loopml.loop.controller import LoopStep, run_loop
    from loopml.loop.history import decisions
    from loopml.loop.policy import RetrainingPolicy, read_policy
