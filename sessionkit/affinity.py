"""Instance identity and the route hint carried in the cookie (``<session-id>.<instance-id>``).

The route is what follows the last ``.`` (the Tomcat ``jvmRoute`` form), so nginx, HAProxy,
Apache and ingress-nginx can all route on it. It is a hint for the load balancer, never
trusted: security rests on the session id alone.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping

from .errors import ConfigError

#: The characters of an instance id, as a regular-expression class body: the one rule for
#: the ids an instance takes, the routes read back from cookies, and the load-balancer
#: configs that route on them (``sessionkit.deploy``).
INSTANCE_ID_CHARACTERS = "a-z0-9-"
INSTANCE_ID_MAX = 63
_INSTANCE_RE = re.compile(f"[{INSTANCE_ID_CHARACTERS}]{{1,{INSTANCE_ID_MAX}}}")
_NOT_ALLOWED = re.compile(f"[^{INSTANCE_ID_CHARACTERS}]+")


def validate_instance_id(value: str, source: str) -> str:
    """``value`` if it is a valid instance id; else ``ConfigError`` naming ``source``."""
    if not isinstance(value, str) or not _INSTANCE_RE.fullmatch(value):
        raise ConfigError(
            f"{source}={value!r} is not a valid instance id: use 1 to {INSTANCE_ID_MAX} "
            f"characters from a-z, 0-9 and '-' (load balancers read it from the end of the "
            f"session cookie)"
        )
    return value


def _normalize(value: str) -> str:
    return _NOT_ALLOWED.sub("-", value.strip().lower()).strip("-")[:INSTANCE_ID_MAX].strip("-")


def resolve_instance_id(configured: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``instance_id`` if set, else ``SESSIONKIT_INSTANCE_ID`` (both validated strictly), else
    ``POD_NAME`` or ``HOSTNAME`` or the host name, folded into the allowed characters."""
    env = os.environ if environ is None else environ
    if configured is not None:
        return validate_instance_id(configured, "instance_id")
    explicit = env.get("SESSIONKIT_INSTANCE_ID")
    if explicit:
        return validate_instance_id(explicit, "SESSIONKIT_INSTANCE_ID")
    for candidate in (env.get("POD_NAME"), env.get("HOSTNAME"), socket.gethostname()):
        if candidate:
            normalized = _normalize(candidate)
            if normalized:
                return normalized
    return "local"


def split_route(value: str) -> tuple[str, str | None] | None:
    """``(token, route)`` of a cookie value; route None when absent; None when malformed."""
    token, dot, route = value.rpartition(".")
    if not dot:
        return value, None
    if not _INSTANCE_RE.fullmatch(route):
        return None
    return token, route
