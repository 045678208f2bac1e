"""Servers the error tests talk to besides the session's redis-server: one that wants a
password, and a port where something that is not Redis answers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from agentfn.server import find_redis_server, free_port


@contextmanager
def redis_server(*arguments: str) -> Iterator[int]:
    """A redis-server on 127.0.0.1 with extra ``arguments`` (no persistence), for the block;
    yields its port once it logs that it accepts connections (its output, not a poll)."""
    port = free_port()
    process = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", *arguments],  # a later --port in ``arguments`` wins
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "Ready to accept connections" in line:
                break
        else:
            raise AssertionError(f"redis-server {arguments} exited with {process.wait()}")
        # Keep reading its output, so that it never blocks on a full pipe.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def not_redis_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 where an HTTP-like server answers every connection with HTML."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: the block ended
                return
            with connection:
                connection.sendall(b"<html>not redis</html>\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        listener.close()
        thread.join(timeout=5)


@contextmanager
def acl_user(r: redis.Redis, name: str, *rules: str) -> Iterator[redis.Redis]:
    """An ACL user ``name`` (password ``pw``, every key and channel, then ``rules``) for the
    block, and a connection as that user."""
    r.acl_setuser(name, enabled=True, passwords=["+pw"], keys=["*"], channels=["*"])
    r.execute_command("ACL", "SETUSER", name, *rules)
    settings = r.get_connection_kwargs()
    connection = redis.Redis(
        host=settings["host"], port=settings["port"], username=name, password="pw"
    )
    try:
        yield connection
    finally:
        connection.close()
        r.acl_deluser(name)
