"""Agents: one handler per capability; any process hands them work through Redis.

python examples/agents.py          # a temporary redis-server, or the one $REDIS_URL names
agentfn worker examples.agents:researcher --url redis://localhost:6379   # serve it on its own
"""

import agentfn

researcher = agentfn.Agent(None, "researcher-1", concurrency=4)


@researcher.handler("research")
def research(task: agentfn.TaskContext) -> dict:
    topic = task.payload["topic"]
    if not topic:
        raise agentfn.PermanentFailure("no topic")  # fails for good; other exceptions are retried
    return {"topic": topic, "notes": f"what matters about {topic}", "attempt": task.attempt}


def main() -> None:
    with agentfn.local_redis() as connection:
        agentfn.deploy(connection)  # load the library if it changed, migrate the namespace
        client = agentfn.Client(connection)
        serving = researcher.bind(client).start()  # serve in a background thread until stop()

        # Fire and forget: the task waits in Redis until an agent with the capability claims it.
        task_id = client.submit(
            "research",
            {"topic": "Streams"},
            priority="high",
            max_attempts=5,
            idempotency_key="streams-once",
        )
        print("submitted", task_id)

        # Ask and wait: a workflow of one step (wait_workflow blocks on Pub/Sub, no polling).
        workflow_id = client.create_workflow(
            [{"id": "ask", "capability": "research", "input": {"topic": "Redis Functions"}}]
        )
        info = client.wait_workflow(workflow_id, timeout=10)
        print(info.state.value, info.results["ask"])
        print("done by", client.get_task(info.step("ask").task).agent)
        researcher.stop()  # stop claiming, finish what runs, deregister
        serving.join()


if __name__ == "__main__":
    main()
