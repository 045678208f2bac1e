"""EmbeddedRedis: a throwaway redis-server for the demo, the examples and a CLI given no --url.

It starts ``redis-server`` on a free loopback port in a temporary directory, with persistence
off, waits for its "Ready to accept connections" log line (an event, not a polling loop),
and on exit shuts it down with ``SHUTDOWN NOSAVE`` (killing it if it does not go), then deletes
the directory. The server runs in its own session, so a Ctrl-C reaches only this process, which
then stops the server in order; SIGTERM and SIGHUP are turned into SystemExit for the same
reason, and an ``atexit`` hook stops any server still running when the interpreter exits.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import IO, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import AgentfnError

#: The log line redis-server prints once it serves clients.
READY_LINE = "Ready to accept connections"

#: Where Debian, Homebrew and source installs put redis-server when it is not on PATH.
_FALLBACK_LOCATIONS = (
    "/usr/bin/redis-server",
    "/usr/sbin/redis-server",
    "/usr/local/bin/redis-server",
    "/opt/homebrew/bin/redis-server",
)

#: Servers started by this process and not stopped yet (stopped at interpreter exit).
_RUNNING: set[EmbeddedRedis] = set()


class EmbeddedRedisError(AgentfnError):
    """redis-server is missing, or did not start."""


def find_redis_server() -> str:
    """The path of redis-server, or EmbeddedRedisError saying how to install it."""
    found = shutil.which("redis-server") or next(
        (p for p in _FALLBACK_LOCATIONS if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise EmbeddedRedisError(
            "redis-server is not installed: install redis-server (apt-get install redis-server), "
            "or run `make demo`, which installs it"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedRedis:
    """A private redis-server on 127.0.0.1 for as long as the ``with`` block (or until stop())."""

    #: Start attempts (a free port can be taken between choosing it and binding it).
    ATTEMPTS = 3

    def __init__(
        self,
        executable: str | None = None,
        *,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.executable = executable or find_redis_server()
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self.directory: str | None = None
        self.process: subprocess.Popen[str] | None = None
        self._log: collections.deque[str] = collections.deque(maxlen=50)
        self._previous_handlers: dict[int, Any] = {}

    @property
    def url(self) -> str:
        """redis://127.0.0.1:<port>/0"""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def client(self, **options: Any) -> redis.Redis:
        """A redis-py client for this server (decoded replies unless told otherwise)."""
        options.setdefault("decode_responses", True)
        return redis.Redis(host=self.host, port=self.port, **options)

    def start(self) -> EmbeddedRedis:
        """Start the server and return once it accepts connections."""
        if self.process is not None:
            return self
        self.directory = tempfile.mkdtemp(prefix="agentfn-redis-")
        failure = ""
        for _ in range(self.ATTEMPTS):
            self.port = free_port()
            failure = self._launch()
            if not failure:
                _RUNNING.add(self)
                return self
            if "Address already in use" not in failure:
                break
        self._remove_directory()
        raise EmbeddedRedisError(f"redis-server did not start: {failure}")

    def _launch(self) -> str:
        """Run redis-server once; '' when it is ready, else why it is not."""
        assert self.directory is not None
        command = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.directory,
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        self._log.clear()
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            self._remove_directory()
            raise EmbeddedRedisError(
                f"cannot run {self.executable}: {error.strerror}; install redis-server "
                "(apt-get install redis-server), or run `make demo`, which installs it"
            ) from None
        ready, seen = threading.Event(), threading.Event()
        assert process.stdout is not None
        threading.Thread(
            target=self._drain,
            args=(process.stdout, ready, seen),
            daemon=True,
            name=f"redis-server-{self.port}-log",
        ).start()
        if ready.wait(self.startup_timeout) and seen.is_set():
            self.process = process
            return ""
        exited = ready.is_set()
        _terminate(process, self.stop_timeout)
        last = " | ".join(line for line in self._log if line.strip())[-400:]
        reason = (
            f"exited with status {process.returncode}"
            if exited
            else f"no '{READY_LINE}' within {self.startup_timeout:g} s"
        )
        return f"{reason}: {last}" if last else reason

    def _drain(self, stream: IO[str], ready: threading.Event, seen: threading.Event) -> None:
        """Read the server's log: wake the starter when it is ready (``seen``) or has exited, keep
        the last lines for error messages, and never let the pipe fill up."""
        for line in stream:
            self._log.append(line.rstrip())
            if READY_LINE in line:
                seen.set()
                ready.set()
        ready.set()

    def stop(self) -> None:
        """SHUTDOWN NOSAVE, wait for the process (kill it if it lingers), delete the directory."""
        process, self.process = self.process, None
        _RUNNING.discard(self)
        if process is not None and process.poll() is None:
            try:
                with redis.Redis(
                    host=self.host,
                    port=self.port,
                    socket_timeout=self.stop_timeout,
                    retry=Retry(NoBackoff(), 0),
                ) as connection:
                    connection.execute_command("SHUTDOWN", "NOSAVE")
            except redis.RedisError:
                pass  # the connection drops as the server exits; a failure is handled below
            _terminate(process, self.stop_timeout)
        self._remove_directory()

    def _remove_directory(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        self._previous_handlers = _unwind_on_termination()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}
        self.stop()


def _terminate(process: subprocess.Popen[str], timeout: float) -> None:
    """Wait for a process to exit, then SIGTERM, then SIGKILL it."""
    for action in (None, process.terminate, process.kill):
        if action is not None:
            action()
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    sys.exit(128 + signum)


def _unwind_on_termination() -> dict[int, Any]:
    """Make SIGTERM and SIGHUP unwind the stack like Ctrl-C does (SystemExit), so that ``with``
    blocks and the atexit hook stop their servers. Only from the main thread, and only where
    the default handler is in place; returns the handlers replaced.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        signum: signal.signal(signum, _exit_on_signal)
        for signum in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(signum) == signal.SIG_DFL
    }


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


_shared: EmbeddedRedis | None = None
_shared_lock = threading.Lock()


def shared_server() -> EmbeddedRedis:
    """One embedded server for the whole process (started on first use, stopped at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.process is None:
            _shared = EmbeddedRedis().start()
            _unwind_on_termination()  # for the rest of the process: the atexit hook stops it
        return _shared


def temporary_server_url() -> str:
    """The URL of the shared embedded server, saying on stderr that it is empty and temporary.

    The CLI uses it when neither --url nor REDIS_URL names a Redis.
    """
    server = shared_server()
    print(
        f"agentfn: no --url and no REDIS_URL: using a temporary, empty redis-server (pid {server.pid}) at "
        f"{server.url}; it is deleted when this command exits",
        file=sys.stderr,
    )
    return server.url


@contextlib.contextmanager
def local_redis(url: str | None = None) -> Iterator[redis.Redis]:
    """A decoded redis-py client for ``url`` (else $REDIS_URL) for the block; with neither, one
    for a temporary EmbeddedRedis that is stopped when the block ends (what the examples use).
    """
    url = url or os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack:
        if url is None:
            url = stack.enter_context(EmbeddedRedis()).url
        client = stack.enter_context(redis.Redis.from_url(url, decode_responses=True))
        yield client
