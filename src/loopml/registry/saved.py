"""A saved model: a folder with the flavor's files and ``loopml-model.json``, which records the
flavor, the library versions it was saved with, its input contract and its output schema.

Stored in the artifact store, the folder is addressed by the hash of its manifest, and every
file is checked against its hash when it is read back: a model whose bytes changed is refused.
Loading with other library versions than those it was saved with warns.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from loopml.errors import InvalidValueError
from loopml.registry.flavors import flavor_for, flavor_named, read_mlmodel

INFO_FILE = "loopml-model.json"
FORMAT = 1


class LibraryVersionWarning(UserWarning):
    """A model is loaded with other library versions than it was saved with."""


@dataclass
class ModelInfo:
    """What a saved model says about itself."""

    flavor: str
    libraries: dict[str, str]
    python: str
    output: dict[str, Any]
    features: list[str] | None = None
    contract: dict[str, Any] | None = None
    task: str | None = None
    created_at: float = field(default_factory=time.time)
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        return cls(**json.loads(text))


def save_model(
    model: Any,
    folder: str | Path,
    *,
    contract: Any = None,
    task: str | None = None,
) -> ModelInfo:
    """Write a model and its description into an empty or new folder.

    contract: the input contract (a Contract, a YAML path or text, a dict, or a DataFrame to
    infer one from). task: 'classification' or 'regression' (guessed from predict_proba).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise InvalidValueError(f"Cannot save a model into {folder}: the folder is not empty.")
    flavor = flavor_for(model)
    flavor.save(model, folder)
    info = ModelInfo(
        flavor=flavor.name,
        libraries=_versions(flavor.libraries),
        python=platform.python_version(),
        output=_output_schema(model),
        features=_features(model),
        contract=_contract(contract),
        task=task or ("classification" if hasattr(model, "predict_proba") else "regression"),
    )
    (folder / INFO_FILE).write_text(info.to_json())
    return info


def adopt_mlflow_model(folder: str | Path) -> ModelInfo:
    """Make a model in MLflow's format (an ``MLmodel`` folder) a saved model as it is: load
    it once, to know it loads and what it predicts, and write its description beside it."""
    folder = Path(folder)
    flavor = flavor_named("mlflow")
    model = flavor.load(folder)
    described = read_mlmodel(folder)
    flavors = described.get("flavors", {})
    saved_with = {"scikit-learn": flavors.get("sklearn", {}).get("sklearn_version")}
    info = ModelInfo(
        flavor=flavor.name,
        libraries={name: version for name, version in saved_with.items() if version},
        python=flavors.get("python_function", {}).get("python_version")
        or platform.python_version(),
        output=_output_schema(model),
        features=_features(model),
        task="classification" if hasattr(model, "predict_proba") else "regression",
    )
    (folder / INFO_FILE).write_text(info.to_json())
    return info


def load_model(folder: str | Path) -> tuple[Any, ModelInfo]:
    """Read a saved model back; warns when the installed libraries differ from the saved."""
    folder = Path(folder)
    try:
        info = ModelInfo.from_json((folder / INFO_FILE).read_text())
    except FileNotFoundError:
        raise InvalidValueError(f"{folder} is not a saved model: it has no {INFO_FILE}.") from None
    changed = _changed_versions(info.libraries)
    if changed:
        warnings.warn(
            f"This model was saved with {', '.join(changed)}; its predictions may differ. "
            "Retrain it, or install the versions it was saved with.",
            LibraryVersionWarning,
            stacklevel=2,
        )
    return flavor_named(info.flavor).load(folder), info


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _changed_versions(saved: dict[str, str]) -> list[str]:
    changed = []
    for name, version in saved.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            changed.append(f"{name} {version} (installed: {installed or 'none'})")
    return changed


def _output_schema(model: Any) -> dict[str, Any]:
    classes = getattr(model, "classes_", None)
    if hasattr(model, "predict_proba"):
        found: dict[str, Any] = {"kind": "probabilities"}
        if classes is not None:
            found["classes"] = [_plain(c) for c in classes]
        return found
    return {"kind": "prediction"}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _features(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        names = getattr(model, "feature_name_", None)  # LightGBM's scikit-learn wrappers
    return [str(name) for name in names] if names is not None else None


def _contract(contract: Any) -> dict[str, Any] | None:
    if contract is None:
        return None
    from loopml.data.contract import load_contract

    if hasattr(contract, "columns") and hasattr(contract, "dtypes"):  # a DataFrame
        from loopml.data.api import contract_for

        return contract_for(contract).model_dump(mode="json", exclude_defaults=True)
    return load_contract(contract).model_dump(mode="json", exclude_defaults=True)
