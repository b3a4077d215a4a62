"""The model registry: saved models with their flavor, contract and library versions;
numbered versions; aliases such as champion and challenger; rollback; an audit log.

    import loopml
    version = loopml.models.register("flights", run="3fa2")     # or register("flights", model)
    loopml.models.set_alias("flights", "champion", version.version, reason="beats the prior")
    model = loopml.models.load("flights@champion")
    loopml.models.rollback("flights")                            # champion back one version
"""

from __future__ import annotations

from loopml.registry.api import (
    get_version,
    history,
    lineage,
    list_models,
    load,
    register,
    rollback,
    set_alias,
    versions,
)
from loopml.registry.cards import CardNotWrittenWarning, read_card, write_card
from loopml.registry.gates import CheckResult, Policy, load_policy
from loopml.registry.promotion import Promotion, promote
from loopml.registry.saved import LibraryVersionWarning, ModelInfo, load_model, save_model
from loopml.store.registry import RegistryEvent, VersionRecord

__all__ = [
    "CardNotWrittenWarning",
    "CheckResult",
    "LibraryVersionWarning",
    "ModelInfo",
    "Policy",
    "Promotion",
    "RegistryEvent",
    "VersionRecord",
    "get_version",
    "history",
    "lineage",
    "list_models",
    "load",
    "load_model",
    "load_policy",
    "promote",
    "read_card",
    "register",
    "rollback",
    "save_model",
    "set_alias",
    "versions",
    "write_card",
]
