"""Watching a fleet: the web dashboard (``agentfn dashboard``) and Prometheus metrics (``agentfn metrics``).

Everything here needs an optional extra (``agentfn[dashboard]``: starlette and uvicorn;
``agentfn[metrics]``: prometheus_client), imported only by the modules that use it, so importing
agentfn never imports them. The pages read a namespace through the status module and the
library's read functions; live updates are pushed over server-sent events, fed by one XREAD
BLOCK on the namespace's event stream per server (not per browser tab).
"""
