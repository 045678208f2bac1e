"""Layer 3, the agent: Agent (agent) serves handlers through a Runtime (runtime) and its parts:
the handler types and what the parts need of the agent and of the runtime (types, services),
a claimed task (running), the executors of handlers (executors), the call that settles a finished
task (settling), the XREAD waiter (waiter), maintenance (heartbeats, leases, timeouts, reaping)
and the mailroom (message handlers). Imports the client layer and below.
"""
