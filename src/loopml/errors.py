"""Every error loopml raises on purpose, in one tree.

    LoopmlError
    ├── UsageError                    the caller asked for something invalid (CLI exit code 2)
    │   ├── ConfigError               a setting or loopml.toml is invalid
    │   │   └── UnknownSchemeError    a workspace URI uses a scheme loopml cannot open
    │   ├── NotFoundError             (also a LookupError)
    │   │   ├── RunNotFoundError
    │   │   ├── ExperimentNotFoundError
    │   │   ├── ArtifactNotFoundError
    │   │   ├── DatasetNotFoundError
    │   │   ├── SnapshotNotFoundError
    │   │   ├── ModelNotFoundError    a registered model, version or alias that does not exist
    │   │   ├── TokenNotFoundError    a server token that does not exist
    │   │   └── ColumnNotFoundError   a target, time or key column the data does not have
    │   ├── InvalidQueryError         a malformed --where or --sort expression
    │   ├── InvalidValueError         (also a ValueError) a value loopml cannot record
    │   │   ├── InvalidMetricError    non-numeric or non-finite metric value
    │   │   ├── ParamConflictError    a param logged again with a different value
    │   │   ├── ArtifactExistsError   an artifact name reused with other content
    │   │   └── DataError             data that cannot be read or used (unreadable, empty, ...)
    │   ├── ContractError             a contract that is itself invalid (says where)
    │   ├── PipelineError             a pipeline that cannot be built: cycle, missing input,
    │   │                             type mismatch, two producers (names the step's file:line)
    │   ├── ParameterError            a parameter the pipeline does not take, or a bad value
    │   ├── SearchSpaceError          a sweep's search space that is itself invalid (says where)
    │   ├── PolicyError               a promotion policy that is itself invalid (says where)
    │   ├── DeploymentError           a deployment file or flags that are invalid (says where)
    │   ├── AlertRuleError            alert rules or notifiers that are invalid (says where)
    │   └── RunStateError             logging to a run that has ended
    ├── StepFailedError               a pipeline step raised, or returned what it may not
    ├── ExecutorError                 an executor cannot run work (unreachable Dask scheduler)
    ├── WorkspaceError                the workspace cannot be used as it is (exit code 1)
    │   ├── WorkspaceTooNewError      created by a newer loopml schema
    │   ├── StoreUnavailableError     the metadata or artifact store does not answer
    │   └── AccessDeniedError         a loopml server refused the token (401) or its role (403)
    ├── IntegrityError
    │   ├── ArtifactCorruptedError    stored bytes no longer match their hash
    │   └── MetadataCorruptedError    the SQLite metadata file is damaged
    └── MissingDependencyError        (also an ImportError) an optional extra is not installed

Messages say what happened, with the offending value, and what to do next.
"""

from __future__ import annotations


class LoopmlError(Exception):
    """Base of every error loopml raises on purpose."""

    exit_code = 1


class UsageError(LoopmlError):
    """The caller asked for something invalid; fixing the input fixes it."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting, from the environment or loopml.toml, is invalid."""


class UnknownSchemeError(ConfigError):
    """A workspace URI uses a scheme loopml cannot open."""


class NotFoundError(UsageError, LookupError):
    """Something named by the caller does not exist."""


class RunNotFoundError(NotFoundError):
    """No run has the given id (or id prefix)."""


class ExperimentNotFoundError(NotFoundError):
    """No experiment has the given name."""


class ArtifactNotFoundError(NotFoundError):
    """No artifact has the given name, hash or source path."""


class DatasetNotFoundError(NotFoundError):
    """No dataset has the given name."""


class SnapshotNotFoundError(NotFoundError):
    """The dataset has no snapshot with the given id."""


class ModelNotFoundError(NotFoundError):
    """No registered model has the given name, or it has no such version or alias."""


class LoggedModelNotFoundError(NotFoundError):
    """No logged model has that id."""


class TokenNotFoundError(NotFoundError):
    """No server token has the given name."""


class ColumnNotFoundError(NotFoundError):
    """A column named by the caller is not in the data."""


class InvalidQueryError(UsageError):
    """A --where or --sort expression cannot be parsed or applied."""


class InvalidValueError(UsageError, ValueError):
    """A value cannot be recorded as given."""


class InvalidMetricError(InvalidValueError):
    """A metric value is not a finite real number, or its key or step is invalid."""


class ParamConflictError(InvalidValueError):
    """A param was logged again with a different value; params are immutable."""


class ArtifactExistsError(InvalidValueError):
    """An artifact name was reused in one run for different content."""


class DataError(InvalidValueError):
    """Data cannot be read or used as given: an unreadable or unsupported file, no rows."""


class ContractError(UsageError):
    """A contract is itself invalid; the message says where."""


class PipelineError(UsageError):
    """A pipeline's steps do not form a valid graph; the message names the step at fault."""


class ParameterError(UsageError):
    """A pipeline parameter that does not exist, is missing, or has a value of the wrong type."""


class SearchSpaceError(UsageError):
    """A sweep's search space is itself invalid; the message says where."""


class PolicyError(UsageError):
    """A promotion policy (gate) is itself invalid; the message says where."""


class DeploymentError(UsageError):
    """A deployment that is itself invalid: a bad file, fraction or guardrail."""


class AlertRuleError(UsageError):
    """Alert rules or notifiers that are themselves invalid: the message says which and where."""


class RunStateError(UsageError):
    """The run is not in a state that allows the operation (for example it has ended)."""


class StepFailedError(LoopmlError):
    """A pipeline step failed: it raised, returned a type other than declared, or returned an
    output that cannot be stored. ``run_id`` is the failed pipeline run (resume it)."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        step: str | None = None,
        result: object = None,
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step = step
        self.result = result  # the PipelineResult, with every step's report


class ExecutorError(LoopmlError):
    """An executor cannot run work: a Dask scheduler that does not answer, a broken pool."""


class WorkspaceError(LoopmlError):
    """The workspace cannot be used as it is."""


class WorkspaceTooNewError(WorkspaceError):
    """The workspace was created or upgraded by a newer version of loopml."""


class StoreUnavailableError(WorkspaceError):
    """The metadata or artifact store cannot be reached."""


class AccessDeniedError(WorkspaceError):
    """A loopml server refused the caller: no valid token (401) or not its role (403)."""


class IntegrityError(LoopmlError):
    """Stored state is inconsistent with what was recorded."""


class ArtifactCorruptedError(IntegrityError):
    """An artifact's bytes no longer match the sha256 they were stored under."""


class MetadataCorruptedError(IntegrityError):
    """The SQLite metadata file is damaged; nothing is read from or written to it."""


class MissingDependencyError(LoopmlError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


def missing_dependency(package: str, extra: str, purpose: str) -> MissingDependencyError:
    """Build the error for an optional package that is not installed."""
    return MissingDependencyError(
        f"{purpose} needs the package '{package}', which is not installed. "
        f"Install it with: pip install 'loopml[{extra}]'"
    )
