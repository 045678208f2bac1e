"""A RemoteAgent for `agentfn worker tests.a2a_agents:remote_research` (the A2A gateway's URL
in AGENTFN_TEST_A2A_URL): it forwards the capability remote-research to the skill research."""

from __future__ import annotations

import os

import agentfn
from agentfn.a2a import RemoteAgent


def remote_research(client: agentfn.Client) -> RemoteAgent:
    url = os.environ["AGENTFN_TEST_A2A_URL"]
    return RemoteAgent(url, "remote-research", skill="research", client=client)
