"""TA-Lib without pandas: ``import talib`` from here costs ~5 MB instead of ~46 MB.

TA-Lib's package init wraps every function for pandas and polars Series when those libraries
can be imported, and importing pandas alone takes ~40 MB of memory and ~0.2 s -- a third of the
daemon's base memory -- for wrappers tradingd never calls (strategies hand TA-Lib float64 numpy
arrays).  :func:`load` imports TA-Lib with pandas and polars hidden (``sys.modules`` entries set
to ``None``, which makes their import fail as "not installed", the case TA-Lib handles), then
takes the entries away again, so any later ``import pandas`` works as usual.  If pandas was
already imported, TA-Lib is imported as it is.  Handles no messages.
"""

from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["load"]

_HIDDEN = ("pandas", "polars")


def load() -> ModuleType:
    """The ``talib`` module, imported without its pandas/polars wrappers when it is first imported."""
    if "talib" in sys.modules:
        return sys.modules["talib"]
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import talib
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return talib
