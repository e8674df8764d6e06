"""Instance identity and the route hint carried in the cookie (``<session-id>.<instance-id>``).

The route is what follows the last ``.`` (the Tomcat ``jvmRoute`` form), so nginx, HAProxy,
Apache and ingress-nginx can all route on it. It is a hint for the load balancer, never
trusted: security rests on the session id alone.

Where a load balancer routes on it (local and hybrid modes) the hint is the instance id the
balancer is configured with: set ``instance_id`` (or ``SESSIONKIT_INSTANCE_ID``) explicitly
there; the default, the host name, is what it falls back to. In plain shared mode nothing
routes on it, so unless an id is set explicitly it is an opaque one, stable per host (logs and
metrics still correlate) but naming no host to whoever reads a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import SessionConfig
    from .stores.base import Store

#: Store schemes whose sessions every instance sees: nothing routes on the hint there.
_SHARED_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel", "redis+cluster",
                             "sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql",
                             "oracle"})
_OPAQUE_LABEL = b"sessionkit instance id\0"

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


def instance_id_for(
    configured: str | None, *, routes: bool, secret_keys: Sequence[bytes] = (),
    environ: Mapping[str, str] | None = None,
) -> str:
    """The instance id of this engine. Where the mode ``routes`` on it, or when it is set
    explicitly (``instance_id``, ``SESSIONKIT_INSTANCE_ID``), ``resolve_instance_id``;
    otherwise an opaque id (``i-`` and 12 hex digits): a keyed hash of the host name, the
    same on every start of this host with this secret, that tells a cookie's reader nothing."""
    env = os.environ if environ is None else environ
    if routes or configured is not None or env.get("SESSIONKIT_INSTANCE_ID"):
        return resolve_instance_id(configured, env)
    host = resolve_instance_id(None, env)
    key = secret_keys[0] if secret_keys else b""
    return "i-" + hmac.new(key, _OPAQUE_LABEL + host.encode(), hashlib.sha256).hexdigest()[:12]


def routed_mode(config: SessionConfig, store: Store | None = None) -> bool:
    """Whether a load balancer may route on the instance id: every mode but plain shared mode
    (a shared store without ``near_cache``), where any instance serves any session. Client
    mode (``jwt://``) counts as routed: no hint travels there, and the readable id is kept."""
    if config.near_cache:
        return True
    if store is not None:
        return not store.shared
    scheme = config.scheme
    base = scheme if scheme.startswith("redis") else scheme.split("+", 1)[0]
    return base not in _SHARED_SCHEMES


def split_route(value: str) -> tuple[str, str | None] | None:
    """``(token, route)`` of a cookie value; route None when absent; None when malformed."""
    token, dot, route = value.rpartition(".")
    if not dot:
        return value, None
    if not _INSTANCE_RE.fullmatch(route):
        return None
    return token, route


#: The response header that says why a request was not served from its own instance
#: (``debug_header=True``): for finding routing mistakes, never for production traffic.
DEBUG_HEADER = "X-Sessionkit-Affinity"


def debug_header(expected: str | None, served: str) -> tuple[tuple[str, str], ...]:
    """The affinity debug header of a request whose cookie named ``expected``."""
    return ((DEBUG_HEADER, f"miss; expected={expected}; served={served}"),)
