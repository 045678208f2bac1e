"""Messages: durable inboxes (one stream per agent), request/reply, broadcast.

python examples/messages.py
"""

import agentfn

translator = agentfn.Agent(None, "translator-1")


@translator.on_message("translate")  # a returned value is sent back as the reply
def translate_message(message: agentfn.Message) -> dict:
    return {"text": message.content["text"].upper()}


def main() -> None:
    with agentfn.local_redis() as connection:
        agentfn.deploy(connection)
        client = agentfn.Client(connection)
        serving = translator.bind(client).start()

        # Request and reply: the reply lands in the asker's inbox. Reading an inbox takes its
        # agent's secret (protocol 3.0): the asker registers (no capabilities: messages only) and
        # the client remembers the secret it generated.
        client.agent_register("app", [])
        reply = client.request("app", "translator-1", "translate", {"text": "hello"}, timeout=5)
        print("reply:", reply.content, "answers", reply.reply_to)

        # One-way messages stay in the inbox until acknowledged; an unacknowledged one comes back.
        client.agent_register("planner-1", ["plan"])
        client.send("app", "planner-1", "note", {"priority": "high"})
        for message in client.receive("planner-1", timeout=1):
            print("planner-1 got", message.type, message.content, "from", message.sender)
            client.ack("planner-1", message.id)

        # Broadcast: one message to every live agent with a capability.
        reached = client.broadcast("app", "shutdown-soon", {"in_s": 60}, capability="plan")
        print("broadcast reached", sorted(reached))
        translator.stop()
        serving.join()


if __name__ == "__main__":
    main()
