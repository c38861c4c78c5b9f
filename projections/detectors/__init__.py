"""Frictions and moments of truth: detectors folded over a customer's touchpoints in the order
they happened, beside the stage machine.

Each kind of friction is one module here, whose detector registers itself for the journey
definition's model of that kind (`base.register`); every module of this package is loaded
with it. A detector reads one touchpoint's mark and the customer's position, and updates the
position; it never reads a clock. Windows ("no follow-up within 48 hours") close when time
passes them: the customer's own later touchpoints, or the clock events the engine appends to
the log (see `StageMachine.advance`).
"""

from __future__ import annotations

import importlib
import pkgutil

from projections.detectors.base import Detector, detector_for

__all__ = ["Detector", "detector_for"]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")
