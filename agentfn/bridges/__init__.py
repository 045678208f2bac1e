"""Plumbing shared by the protocol bridges (`agentfn mcp`, `agentfn a2a`): serving an ASGI app
from the command line, waiting for a task. Imports no optional dependency at import time."""
