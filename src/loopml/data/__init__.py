"""Data: snapshots, profiles, contracts, validation with quarantine, and the audit.

import loopml
snapshot = loopml.data.add("flights", "flights.parquet", time_column="time_hour")
contract = loopml.data.contract_for(snapshot)        # edit it, save it as YAML
result = loopml.data.validate(snapshot, contract, mode="quarantine")
"""

from loopml.data.api import (
    CheckResult,
    ValidationResult,
    check,
    contract_for,
    diff,
    profile,
    validate,
)
from loopml.data.audit import AuditReport, Finding, audit
from loopml.data.contract import Contract, infer_contract, json_schema, load_contract
from loopml.data.from_log import from_log
from loopml.data.profile import Profile
from loopml.data.snapshots import Snapshot, add, get, list_datasets, load, snapshots
from loopml.data.validate import ValidationReport, Violation

__all__ = [
    "AuditReport",
    "CheckResult",
    "Contract",
    "Finding",
    "Profile",
    "Snapshot",
    "ValidationReport",
    "ValidationResult",
    "Violation",
    "add",
    "audit",
    "check",
    "contract_for",
    "diff",
    "from_log",
    "get",
    "infer_contract",
    "json_schema",
    "list_datasets",
    "load",
    "load_contract",
    "profile",
    "snapshots",
    "validate",
]
