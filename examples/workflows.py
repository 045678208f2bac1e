"""Workflows: the research -> write -> code chain of Redis's multi-agent write-up, and a fan-in.

The graph runs inside Redis: completing a step enqueues the steps it unblocks in the same call,
and each dependent's task receives its dependencies' results as ``inputs``.

    python examples/workflows.py
"""

import agentfn

team = agentfn.Agent(None, "team-1", concurrency=4)


@team.handler("research")
def research(task: agentfn.TaskContext) -> dict:
    return {
        "topic": task.payload["topic"],
        "finding": f"{task.payload['topic']} keeps state in Redis",
    }


@team.handler("write")
def write(task: agentfn.TaskContext) -> dict:
    findings = [result["finding"] for result in task.inputs.values()]  # {step id: result}
    return {"article": " ".join(findings)}


@team.handler("code")
def code(task: agentfn.TaskContext) -> dict:
    (draft,) = task.inputs.values()
    return {"code": f"print({draft['article']!r})"}


def main() -> None:
    with agentfn.local_redis() as connection:
        agentfn.deploy(connection)
        client = agentfn.Client(connection)
        serving = team.bind(client).start()

        chain = client.create_workflow(
            [
                {"id": "research", "capability": "research", "input": {"topic": "Redis Functions"}},
                {"id": "write", "capability": "write", "input": {}},
                {"id": "code", "capability": "code", "input": {}},
            ],
            chain=True,
        )  # each step depends on the one before it

        fan_in = "fan-in"  # a chosen id: run this example again and the first run's one is kept
        try:
            client.create_workflow(
                [
                    {"id": "streams", "capability": "research", "input": {"topic": "Streams"}},
                    {"id": "pubsub", "capability": "research", "input": {"topic": "Pub/Sub"}},
                    {
                        "id": "write",
                        "capability": "write",
                        "input": {},
                        "depends_on": ["streams", "pubsub"],
                    },
                ],
                workflow_id=fan_in,
                policy="fail_fast",
                context={"audience": "operators"},
            )
        except agentfn.InvalidState:  # STATE workflow fan-in already exists
            print("fan-in exists already (an earlier run): waiting for that one")

        for workflow_id in (chain, fan_in):
            info = client.wait_workflow(workflow_id, timeout=10)
            print(workflow_id, info.state.value, info.results)
        print(
            client.ctx_get("fan-in").document
        )  # shared context, versioned (ctx_set EXPECT_VERSION)
        team.stop()
        serving.join()


if __name__ == "__main__":
    main()
