"""agentfn: coordinate many AI agents through one Redis Functions library.

The package is layered; a module imports only from its own layer and the layers below it
(tests/test_architecture.py checks it):

- base modules: ``constants``, ``errors``, ``version``, ``keys``, ``replies``, ``server``;
- ``agentfn.library``: the Lua library as data (render, protocol headers, deploy, migrate);
- ``agentfn.client``: Client, AsyncClient and Batch over the library's functions;
- ``agentfn.agent``: the Agent and its runtime, built on the client;
- feature subpackages (dashboard, bridges) on client and agent;
- ``agentfn.cli``: the command line, on everything below.

This module re-exports the public names.
"""

from .agent.agent import Agent
from .agent.types import InputRequired, PermanentFailure, TaskContext
from .client.api.messages import Broadcast, InboxRead, Message
from .client.api.registry import AgentInfo
from .client.api.tasks import (
    ClaimedTask,
    ClaimResult,
    CompletedItem,
    CompleteManyResult,
    CompleteResult,
    ExtendResult,
    FailResult,
    TaskInfo,
)
from .client.api.workflows import StepInfo, WorkflowContext, WorkflowInfo, WorkflowStep
from .client.batch import Batch
from .client.client import AsyncClient, Client
from .client.connect import connect, connect_async
from .client.orchestrator import Orchestrator, WorkflowFailed
from .constants import Priority, StepState, TaskState, WorkflowPolicy, WorkflowState
from .errors import (
    AgentfnError,
    AgentLapsed,
    BadArgument,
    Conflict,
    CycleError,
    Denied,
    DowngradeRefused,
    ErrorCode,
    InternalDefect,
    InvalidState,
    LibraryError,
    LibraryNotReady,
    LimitExceeded,
    MigrationError,
    NamespaceMoving,
    NotFound,
    NotReplicated,
    PermissionDenied,
    SchemaMismatch,
    StaleToken,
)
from .library.deploy import DeployReport, deploy, deployed_library
from .library.info import LibraryInfo
from .library.migrate import migrate
from .library.render import render_library
from .server import EmbeddedRedis, local_redis
from .version import __version__

__all__ = [
    "NotReplicated",
    "connect",
    "connect_async",
    "NamespaceMoving",
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
    "CompletedItem",
    "CompleteManyResult",
    "CompleteResult",
    "Conflict",
    "CycleError",
    "Denied",
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
    "InternalDefect",
    "PermissionDenied",
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
