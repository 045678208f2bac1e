"""Layer 2, the client: Client and AsyncClient (client) with one method per library function
(api/, one module per area), Batch (several calls in one round trip), blocking waits on the
streams a reply names (waiting), the keyspace read for `agentfn status` (status) and the
workflow driver (orchestrator). Imports the library layer and the base modules.
"""
