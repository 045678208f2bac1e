"""`agentfn demo` (command): its agents (agents) run as processes (fleet); the script (script)
follows the event stream (tracker) and draws it (screen)."""
