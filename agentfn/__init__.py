"""agentfn: coordinate many AI agents through one Redis Functions library."""

from .api.meta import LibraryInfo
from .api.registry import AgentInfo
from .client import AsyncClient, Client
from .constants import Priority, StepState, TaskState, WorkflowState
from .deploy import DeployReport, deploy, deployed_library
from .errors import (
    AgentfnError,
    AgentLapsed,
    BadArgument,
    Conflict,
    CycleError,
    DowngradeRefused,
    ErrorCode,
    InvalidState,
    LibraryError,
    LibraryNotReady,
    LimitExceeded,
    MigrationError,
    NotFound,
    SchemaMismatch,
    StaleToken,
)
from .migrate import migrate
from .render import render_library
from .version import __version__

__all__ = [
    "AgentInfo",
    "AgentLapsed",
    "AgentfnError",
    "AsyncClient",
    "BadArgument",
    "Client",
    "Conflict",
    "CycleError",
    "DeployReport",
    "DowngradeRefused",
    "ErrorCode",
    "InvalidState",
    "LibraryError",
    "LibraryInfo",
    "LibraryNotReady",
    "LimitExceeded",
    "MigrationError",
    "NotFound",
    "Priority",
    "SchemaMismatch",
    "StaleToken",
    "StepState",
    "TaskState",
    "WorkflowState",
    "__version__",
    "deploy",
    "deployed_library",
    "migrate",
    "render_library",
]
