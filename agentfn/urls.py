"""Redis URLs as agentfn shows them: checked before use, and never with a password on screen."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis

#: What a Redis URL looks like, for error messages.
URL_FORM = (
    "redis://[[user]:password@]host:port[/db], rediss://... (TLS), unix:///path/to/socket "
    "or redis+sentinel://host:port[,host:port...]/service"
)

#: What stands for a password in every URL agentfn prints.
MASK = "***"

_SCHEMES = ("redis", "rediss", "unix")

#: A primary found through Redis Sentinel (agentfn.connect).
SENTINEL_SCHEME = "redis+sentinel"


def _sentinel_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    for address in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = address.rpartition(":")
        if not (host or address) or (host and not port.isdigit()):
            return f"its sentinel address {address!r} is not host[:port]"
    path = [piece for piece in parts.path.split("/") if piece]
    if not path:
        return "it names no service: redis+sentinel://host:port/<service>"
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        return f"its path {parts.path!r} is not /service[/db]"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a Redis URL agentfn.connect can connect to, or None when it is one."""
    if url.startswith(SENTINEL_SCHEME + "://"):
        return _sentinel_url_problem(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as error:
        return f"it cannot be parsed ({error})"
    if parts.scheme not in _SCHEMES:
        if "://" not in url:
            return "it has no scheme"
        return f"its scheme {parts.scheme!r} is not redis, rediss, unix or redis+sentinel"
    if parts.scheme == "unix" and not parts.path:
        return "it names no socket path"
    if parts.scheme != "unix" and not parts.hostname and not parts.port:
        return "it names no host"
    if parts.scheme != "unix" and parts.path not in ("", "/") and not parts.path[1:].isdigit():
        return f"its database {parts.path[1:]!r} is not a number"
    return None


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url if "@" not in url else MASK
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        name = user.partition(":")[0]
        netloc = f"{name}:{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key == "password" for key, _ in pairs):
            query = urlencode([(k, MASK if k == "password" else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_user(url: str) -> str | None:
    """The ACL user a Redis URL logs in as (in the user part or a ``username=`` parameter; it
    survives redact_url), or None for the default user."""
    try:
        parts = urlsplit(url)
        name = parts.username
    except ValueError:
        return None
    if name:
        return unquote(name)
    return dict(parse_qsl(parts.query)).get("username") or None


#: The password part of any URL in a text: scheme://[user]:<password>@
_PASSWORD_IN_TEXT = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:@/\[<]*:)[^\s@/<]+@", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by *** (a last line of defence
    for messages that quote what the user typed)."""
    return _PASSWORD_IN_TEXT.sub(lambda match: f"{match[1]}{MASK}@", text)


def url_of(redis_client: Any) -> str:
    """The URL of a redis-py client's server (sync or asyncio), its password shown as ***."""
    try:
        kwargs = redis_client.get_connection_kwargs()
    except AttributeError:
        return "redis (unknown address)"
    user = kwargs.get("username") or ""
    credentials = ""
    if kwargs.get("password"):
        credentials = f"{user}:{MASK}@"
    elif user:
        credentials = f"{user}@"
    if kwargs.get("path"):
        return f"unix://{credentials}{kwargs['path']}"
    connection_class = getattr(
        getattr(redis_client, "connection_pool", None), "connection_class", None
    )
    scheme = "rediss" if "SSL" in getattr(connection_class, "__name__", "") else "redis"
    host = kwargs.get("host", "localhost")
    if ":" in host:
        host = f"[{host}]"
    db = kwargs.get("db") or 0
    return f"{scheme}://{credentials}{host}:{kwargs.get('port', 6379)}" + (f"/{db}" if db else "")


def describe_redis_error(error: BaseException, url: str) -> str:
    """What went wrong talking to the Redis at ``url`` (already redacted), in words, with what
    to do about it: for a connection, authentication or protocol failure."""
    text = str(error)
    lowered = text.lower()
    if isinstance(error, redis.AuthenticationError) or "noauth" in lowered:
        if "hello must be called" in lowered or "noauth" in lowered or "required" in lowered:
            return (
                f"Redis at {url} requires a password: put it in the URL, "
                "--url redis://[user]:<password>@host:port"
            )
        if "without any password configured" in lowered:
            return f"Redis at {url} has no password set: drop the password from the URL"
        return f"Redis at {url} refused the user or password in the URL ({text.rstrip('.')})"
    if isinstance(error, redis.exceptions.InvalidResponse) or "protocol error" in lowered:
        return f"the server at {url} does not speak the Redis protocol (is the port right?)"
    if isinstance(error, redis.TimeoutError):
        return f"cannot reach Redis at {url}: timed out"
    if "connection refused" in lowered:
        return f"cannot reach Redis at {url}: connection refused (is redis-server running there?)"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return f"cannot reach Redis at {url}: unknown host"
    return f"cannot reach Redis at {url}: {text}"
