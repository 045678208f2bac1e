"""agentfn: coordinate many AI agents through one Redis Functions library."""

from .agent import Agent, InputRequired, PermanentFailure, TaskContext
from .api.messages import Broadcast, InboxRead, Message
from .api.meta import LibraryInfo
from .api.registry import AgentInfo
from .api.tasks import ClaimedTask, ClaimResult, CompleteResult, ExtendResult, FailResult, TaskInfo
from .api.workflows import StepInfo, WorkflowContext, WorkflowInfo, WorkflowStep
from .batch import Batch
from .client import AsyncClient, Client
from .constants import Priority, StepState, TaskState, WorkflowPolicy, WorkflowState
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
from .orchestrator import Orchestrator, WorkflowFailed
from .render import render_library
from .server import EmbeddedRedis, local_redis
from .version import __version__

__all__ = [
    "Agent",
    "AgentInfo",
    "AgentLapsed",
    "AgentfnError",
    "AsyncClient",
    "BadArgument",
    "Batch",
    "Broadcast",
    "ClaimResult",
    "ClaimedTask",
    "Client",
    "CompleteResult",
    "Conflict",
    "CycleError",
    "DeployReport",
    "DowngradeRefused",
    "EmbeddedRedis",
    "ErrorCode",
    "ExtendResult",
    "FailResult",
    "InboxRead",
    "InputRequired",
    "InvalidState",
    "LibraryError",
    "LibraryInfo",
    "LibraryNotReady",
    "LimitExceeded",
    "Message",
    "MigrationError",
    "NotFound",
    "Orchestrator",
    "PermanentFailure",
    "Priority",
    "SchemaMismatch",
    "StaleToken",
    "StepState",
    "StepInfo",
    "TaskContext",
    "TaskInfo",
    "TaskState",
    "WorkflowContext",
    "WorkflowFailed",
    "WorkflowInfo",
    "WorkflowPolicy",
    "WorkflowState",
    "WorkflowStep",
    "__version__",
    "deploy",
    "deployed_library",
    "local_redis",
    "migrate",
    "render_library",
]
