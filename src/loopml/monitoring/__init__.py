"""Monitoring: how a deployment's traffic compares with what its model was trained on, window
by window and against the windows before, stored as time series, with alert rules judged on
them and the alerts that never resolve told apart.

Names load on first use, but for ``drift``, which shares its name with the module that
holds it and is imported here so the name is the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.lazy import lazy_attributes
from loopml.monitoring.drift import drift

_EXPORTS = {
    "AlertmanagerNotifier": "loopml.monitoring.notifiers",
    "DriftReport": "loopml.monitoring.drift",
    "FeatureDrift": "loopml.monitoring.drift",
    "LogNotifier": "loopml.monitoring.notifiers",
    "MonitorResult": "loopml.monitoring.window",
    "PersistentAlert": "loopml.monitoring.persistent",
    "Reference": "loopml.registry.reference",
    "RuleSet": "loopml.monitoring.rules",
    "WebhookNotifier": "loopml.monitoring.notifiers",
    "get_reference": "loopml.registry.reference",
    "judge": "loopml.monitoring.rules",
    "monitor": "loopml.monitoring.window",
    "persistent_alerts": "loopml.monitoring.persistent",
    "read_rules": "loopml.monitoring.rules",
    "series": "loopml.monitoring.timeseries",
    "set_reference": "loopml.registry.reference",
    "window_report": "loopml.monitoring.timeseries",
    "windows": "loopml.monitoring.timeseries",
}

__all__ = sorted([*_EXPORTS, "drift"])


__getattr__ = lazy_attributes(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from loopml.monitoring.drift import DriftReport, FeatureDrift, drift
    from loopml.monitoring.notifiers import AlertmanagerNotifier, LogNotifier, WebhookNotifier
    from loopml.monitoring.persistent import PersistentAlert, persistent_alerts
    from loopml.monitoring.rules import RuleSet, judge, read_rules
    from loopml.monitoring.timeseries import series, window_report, windows
    from loopml.monitoring.window import MonitorResult, monitor
    from loopml.registry.reference import Reference, get_reference, set_reference
