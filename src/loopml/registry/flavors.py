"""Model flavors: how a kind of model is written to a folder and read back.

A flavor is a small plug-in (``Flavor``): ``matches(model)``, ``save(model, folder)``,
``load(folder)`` and the libraries whose versions the saved model records. scikit-learn
estimators and pipelines, LightGBM and XGBoost models have flavors of their own; any other
object with ``predict`` or ``predict_proba`` goes through the generic flavor (cloudpickle).
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any, Protocol

from loopml import pickling
from loopml.errors import InvalidValueError, missing_dependency

PICKLE_PROTOCOL = 5


class Flavor(Protocol):
    """Saves and loads one kind of model."""

    name: str
    libraries: tuple[str, ...]  # distributions whose versions a saved model records

    def matches(self, model: Any) -> bool: ...

    def save(self, model: Any, folder: Path) -> None: ...

    def load(self, folder: Path) -> Any: ...


def _module_root(model: Any) -> str:
    return type(model).__module__.split(".", 1)[0]


class SklearnFlavor:
    """scikit-learn estimators and pipelines, pickled."""

    name = "sklearn"
    libraries = ("scikit-learn", "numpy", "scipy")
    file = "model.pkl"

    def matches(self, model: Any) -> bool:
        return _module_root(model) == "sklearn"

    def save(self, model: Any, folder: Path) -> None:
        (folder / self.file).write_bytes(pickle.dumps(model, protocol=PICKLE_PROTOCOL))

    def load(self, folder: Path) -> Any:
        return pickle.loads((folder / self.file).read_bytes())


class LightGBMFlavor:
    """LightGBM: a Booster in LightGBM's own text format; the scikit-learn wrappers pickled."""

    name = "lightgbm"
    libraries = ("lightgbm", "numpy", "scikit-learn")

    def matches(self, model: Any) -> bool:
        return _module_root(model) == "lightgbm"

    def save(self, model: Any, folder: Path) -> None:
        lightgbm = _require("lightgbm", "lightgbm")
        if isinstance(model, lightgbm.Booster):
            model.save_model(str(folder / "model.txt"))
        else:
            (folder / "model.pkl").write_bytes(pickle.dumps(model, protocol=PICKLE_PROTOCOL))

    def load(self, folder: Path) -> Any:
        lightgbm = _require("lightgbm", "lightgbm")
        if (folder / "model.txt").exists():
            return lightgbm.Booster(model_file=str(folder / "model.txt"))
        return pickle.loads((folder / "model.pkl").read_bytes())


class XGBoostFlavor:
    """XGBoost: its own JSON format, for a Booster and for the scikit-learn wrappers."""

    name = "xgboost"
    libraries = ("xgboost", "xgboost-cpu", "numpy", "scikit-learn")

    def matches(self, model: Any) -> bool:
        return _module_root(model) == "xgboost"

    def save(self, model: Any, folder: Path) -> None:
        xgboost = _require("xgboost", "xgboost")
        model.save_model(str(folder / "model.json"))
        kind = "Booster" if isinstance(model, xgboost.Booster) else type(model).__name__
        (folder / "class.txt").write_text(kind)

    def load(self, folder: Path) -> Any:
        xgboost = _require("xgboost", "xgboost")
        kind = (folder / "class.txt").read_text().strip()
        model = getattr(xgboost, kind)()
        model.load_model(str(folder / "model.json"))
        return model


class GenericFlavor:
    """Any object with predict or predict_proba, pickled with cloudpickle (so classes defined
    in a script travel too, with their file names and lines for tracebacks)."""

    name = "generic"
    libraries = ("cloudpickle", "numpy")
    file = "model.pkl"

    def matches(self, model: Any) -> bool:
        return callable(getattr(model, "predict", None)) or callable(
            getattr(model, "predict_proba", None)
        )

    def save(self, model: Any, folder: Path) -> None:
        try:
            data = pickling.dumps(model)
        except Exception as error:
            raise InvalidValueError(
                f"The model, a {type(model).__name__}, cannot be pickled ({error}); it cannot "
                "be saved. Keep open files, connections and locks out of the model object."
            ) from None
        (folder / self.file).write_bytes(data)

    def load(self, folder: Path) -> Any:
        return pickle.loads((folder / self.file).read_bytes())


class MlflowFlavor:
    """A model in MLflow's format (a folder with an ``MLmodel`` file), as MLflow's client
    logs it. A scikit-learn model is read back as the estimator itself (pickled, cloudpickled
    or skops); any other is loaded by MLflow's pyfunc, which must then be installed. It is
    never chosen for a model object: it is how MLflow's folders are registered as they are."""

    name = "mlflow"
    libraries = ("scikit-learn", "numpy", "scipy")
    file = "MLmodel"

    def matches(self, model: Any) -> bool:
        return False

    def save(self, model: Any, folder: Path) -> None:
        raise InvalidValueError("Models are saved in MLflow's format by MLflow's client.")

    def load(self, folder: Path) -> Any:
        description = read_mlmodel(folder)
        sklearn = description.get("flavors", {}).get("sklearn")
        if sklearn and sklearn.get("pickled_model"):
            return _load_sklearn(folder, sklearn["pickled_model"], sklearn)
        try:
            import mlflow.pyfunc
        except ImportError:
            raise missing_dependency(
                "mlflow", "mlflow", "A model in MLflow's format without a scikit-learn flavor"
            ) from None
        return mlflow.pyfunc.load_model(str(folder))


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """The description MLflow writes beside a model (its ``MLmodel`` file, YAML)."""
    import yaml

    path = folder / MlflowFlavor.file
    try:
        found = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InvalidValueError(
            f"{folder} is not a model in MLflow's format: no MLmodel."
        ) from None
    except yaml.YAMLError as error:
        raise InvalidValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(found, dict):
        raise InvalidValueError(f"{path} does not describe a model.")
    return found


def _load_sklearn(folder: Path, name: str, described: dict[str, Any]) -> Any:
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()) or not path.is_file():
        raise InvalidValueError(f"The MLflow model's file {name!r} is not in {folder}.")
    if described.get("serialization_format") == "skops":
        skops_io = _require("skops.io", "mlflow")
        # The model was stored by a token allowed to register models, which is trusted as a
        # pickle of it would be: every type in the file is allowed.
        return skops_io.load(path, trusted=skops_io.get_untrusted_types(file=path))
    return pickle.loads(path.read_bytes())


FLAVORS: tuple[Flavor, ...] = (
    SklearnFlavor(),
    LightGBMFlavor(),
    XGBoostFlavor(),
    GenericFlavor(),
    MlflowFlavor(),
)


def flavor_for(model: Any) -> Flavor:
    """The first flavor that takes the model."""
    for flavor in FLAVORS:
        if flavor.matches(model):
            return flavor
    raise InvalidValueError(
        f"A {type(model).__module__}.{type(model).__qualname__} is not a model loopml can "
        "save: it has neither predict nor predict_proba."
    )


def flavor_named(name: str) -> Flavor:
    """The flavor of a name, as recorded with a saved model."""
    for flavor in FLAVORS:
        if flavor.name == name:
            return flavor
    known = ", ".join(f.name for f in FLAVORS)
    raise InvalidValueError(f"Unknown model flavor {name!r}; this loopml knows {known}.")


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_dependency(module, extra, f"A {module} model") from None
