"""`agentfn mcp`: an MCP server (official ``mcp`` SDK) whose tools let an LLM coordinate a team.

``server`` builds it (tools and resources over an AsyncClient); ``waits`` waits for a task on
the namespace's event stream (XREAD). The command (agentfn/cli/bridges.py) imports ``server``
only when it runs, so nothing needs the ``mcp`` extra (``pip install 'agentfn[mcp]'``) until then.
Inside this package ``import mcp`` is absolute: it is the SDK, not this package.
"""
