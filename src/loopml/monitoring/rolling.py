"""Rolling references: a window's drift against the windows monitored before it, besides its
drift against the training reference.

On data with seasons a summer window drifts from a January reference every month, and a
rule judged against that reference fires in month two and never resolves. Judged against
the previous window (or the last N, pooled), drift is a sudden change, not the season's
slow one.

Each window with answered rows stores the binned profile of its inputs and of each
version's scores (a gzipped JSON artifact named by ``profiles`` in its report; the distinct
count sketches are left out), so a later window is compared with earlier ones without
reading their logs again. Only windows with at least ``min_rows`` answered rows serve as
references, the windows that are judged for drift; the first window has nothing to compare
with and gives no value. The drift is computed by the same tests as against the reference
(``drift.py``) and stored under the metric's name with a suffix: ``psi_previous`` against the
previous window, ``psi_last3`` against the last three pooled.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from typing import Any

from loopml.data.profile import Profile
from loopml.monitoring.checks import Check, Seen, drift_points, prediction_points, too_few
from loopml.monitoring.drift import FeatureDrift, drift
from loopml.store.monitoring import Point, WindowRecord
from loopml.workspace import Workspace

FORMAT = 1
LAST = re.compile(r"^last\s+(\d+)\s+windows?$")
SUFFIX = re.compile(r"^(?P<base>.+?)_(?:(?P<previous>previous)|last(?P<count>\d+))$")
# The drift metrics a rule can judge against a rolling reference; the others (exact tests on
# samples, correlations, new categories) compare with the training reference only.
DATA_METRICS = (
    "psi",
    "js",
    "drift_statistic",
    "drift_p",
    "drifted",
    "wasserstein",
    "drifted_share",
    "drifted_features",
    "max_psi",
)
PREDICTION_METRICS = ("prediction_psi", "prediction_ks", "prediction_p")
METRICS = DATA_METRICS + PREDICTION_METRICS


@dataclass(frozen=True)
class Against:
    """What drift is judged against: the training reference (``windows == 0``), or the last
    ``windows`` windows with enough rows, pooled (1: the previous window)."""

    windows: int = 0

    @classmethod
    def read(cls, text: Any) -> Against:
        """'reference', 'previous window' or 'last N windows'; a ValueError saying so."""
        spoken = " ".join(str(text).lower().split())
        if spoken == "reference":
            return cls(0)
        if spoken in ("previous", "previous window"):
            return cls(1)
        match = LAST.match(spoken)
        if match and int(match.group(1)) >= 1:
            return cls(int(match.group(1)))
        raise ValueError(
            "'against' is 'reference', 'previous window' or 'last N windows' (N at least 1), "
            f"not {text!r}"
        )

    @property
    def rolling(self) -> bool:
        return self.windows > 0

    @property
    def suffix(self) -> str:
        if not self.windows:
            return ""
        return "_previous" if self.windows == 1 else f"_last{self.windows}"

    def metric(self, base: str) -> str:
        """The name a metric is stored under when judged against this."""
        return base + self.suffix

    def phrase(self) -> str:
        if not self.windows:
            return "the training reference"
        return "the previous window" if self.windows == 1 else f"the last {self.windows} windows"

    def __str__(self) -> str:
        if not self.windows:
            return "reference"
        return "previous window" if self.windows == 1 else f"last {self.windows} windows"


PREVIOUS = Against(1)


def split_metric(name: str) -> tuple[str, Against] | None:
    """('psi', previous window) for a stored name such as 'psi_previous', else None."""
    match = SUFFIX.match(name)
    if match is None or match.group("base") not in METRICS:
        return None
    count = 1 if match.group("previous") else int(match.group("count"))
    return (match.group("base"), Against(count)) if count >= 1 else None


# What a window keeps for the windows after it ---------------------------------------------


@dataclass
class Stored:
    """The profiles an earlier window kept: its inputs and each version's scores."""

    window: WindowRecord
    inputs: Profile
    scores: dict[int, Profile]


def profiles_bytes(seen: Seen) -> bytes:
    """The window's binned profiles as gzipped JSON (distinct sketches left out)."""
    found = {
        "format": FORMAT,
        "inputs": _binned(seen.inputs),
        "scores": {str(version): _binned(p) for version, p in seen.scores.items()},
    }
    return gzip.compress(json.dumps(found, separators=(",", ":")).encode(), mtime=0)


def _binned(profile: Profile) -> dict[str, Any]:
    found = profile.to_dict()
    for column in found["columns"]:
        column["distinct"] = {"k": column["distinct"]["k"], "hashes": ""}
    return found


def read_profiles(window: WindowRecord, data: bytes) -> Stored:
    found = json.loads(gzip.decompress(data))
    return Stored(
        window,
        Profile.from_dict(found["inputs"]),
        {int(v): Profile.from_dict(p) for v, p in found["scores"].items()},
    )


def earlier(
    name: str, start: float, count: int, min_rows: int, workspace: Workspace
) -> list[Stored]:
    """The profiles of the newest ``count`` windows of the endpoint that ended by ``start``
    with at least ``min_rows`` answered rows, newest first (windows stored before profiles
    were kept are left out)."""
    from loopml.monitoring.timeseries import window_report, windows

    done = windows(name, workspace=workspace)
    usable = [w for w in reversed(done) if w.end <= start and w.rows >= min_rows][:count]
    found = []
    for window in usable:
        digest = window_report(window, workspace=workspace).get("profiles")
        if digest:
            found.append(read_profiles(window, workspace.artifacts.get_bytes(digest)))
    return found


# The check ---------------------------------------------------------------------------------


def rolling_drift(
    seen: Seen, before: list[Stored], againsts: list[Against], alpha: float, min_rows: int
) -> Check:
    """The window's data and prediction drift against each rolling reference in againsts:
    the newest windows in ``before`` (newest first), pooled."""
    check = Check("rolling_drift")
    if skipped := too_few(check, seen, min_rows):
        return skipped
    if not seen.rows:
        return _skip(check, "no answered rows in the window")
    if not before:
        return _skip(
            check, f"no earlier window with at least {min_rows} answered rows to compare with"
        )
    parts = []
    for against in againsts:
        points, details = _against(seen, before[: against.windows], against, alpha)
        check.points += points
        check.details[str(against)] = details
        parts.append(details["message"])
    check.message = "; ".join(parts)
    return check


def _skip(check: Check, why: str) -> Check:
    check.status, check.message = "skipped", why
    return check


def _against(
    seen: Seen, chosen: list[Stored], against: Against, alpha: float
) -> tuple[list[Point], dict[str, Any]]:
    inputs = _pooled([s.inputs for s in chosen])
    names = [n for n in seen.inputs.columns_ if n in inputs.columns_]
    report = drift(inputs, seen.inputs, alpha=alpha, columns=names) if names else None
    points = drift_points(report, against.suffix) if report and report.features else []
    versions = {}
    for version, scores in sorted(seen.scores.items()):
        feature = _score_drift([s.scores[version] for s in chosen if version in s.scores], scores)
        if feature is not None:
            points += prediction_points(feature, version, against.suffix)
            versions[str(version)] = {"psi": feature.psi, "p_value": feature.p_value}
    drifted = report.drifted if report else []
    tested = len(report.features) if report else 0
    where = ", ".join(s.window.label or s.window.id for s in chosen)
    message = f"against {against.phrase()} ({where}): {len(drifted)} of {tested} features drifted"
    return points, {
        "windows": [s.window.id for s in chosen],
        "rows": sum(s.inputs.rows_ for s in chosen),
        "message": message + (f": {', '.join(drifted[:5])}" if drifted else ""),
        "drift": report.to_dict() if report else None,
        "versions": versions,
    }


def _score_drift(earlier_scores: list[Profile], scores: Profile) -> FeatureDrift | None:
    if not earlier_scores:
        return None
    found = drift(_pooled(earlier_scores), scores, columns=["score"]).features
    return found[0] if found else None


def _pooled(profiles: list[Profile]) -> Profile:
    pooled = profiles[0]
    for profile in profiles[1:]:
        pooled = pooled.merge(profile)
    return pooled
