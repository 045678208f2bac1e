"""`agentfn mcp`: an MCP server (official ``mcp`` SDK) whose tools let an LLM coordinate a team.

Nothing here imports ``mcp`` at import time: the command module checks for the ``mcp`` extra
(``pip install 'agentfn[mcp]'``) when the command runs; :mod:`agentfn.mcp_server.server`
builds the server.
"""
