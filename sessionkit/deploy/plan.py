"""The inputs of every load-balancer config, checked once: instances (``id=host:port``), the
session cookie's name, the address to listen on and the health check; and the header every
generated file starts with (what it does, and the command that renders it again)."""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from ..affinity import validate_instance_id
from ..config import COOKIE_NAME_RE
from ..errors import ConfigError

DEFAULT_COOKIE = "session"
DEFAULT_LISTEN = "127.0.0.1:8080"
#: The cookie that ingress-nginx, Traefik and Envoy set themselves to remember the instance.
LB_COOKIE = "sessionkit_lb"
#: How long the load balancer's own cookie lasts: sessionkit's default idle timeout.
AFFINITY_SECONDS = 14 * 24 * 3600
#: The longest client-IP affinity a Kubernetes Service accepts.
MAX_CLIENT_IP_SECONDS = 86400
#: The name of the service, cluster, router... in every config.
SERVICE = "sessionkit"

_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
#: A health path every config can carry as is (no quoting, no comment or statement ends).
_HEALTH_PATH_RE = re.compile(r"/[A-Za-z0-9._~%/?=&+-]{0,200}")


@dataclass(frozen=True)
class Address:
    """``host:port``; ``host`` keeps IPv6 brackets, as the load balancers write it."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def bare_host(self) -> str:
        """The host without IPv6 brackets (Envoy and Kubernetes want it so)."""
        return self.host.strip("[]")

    @property
    def kind(self) -> str:
        """``IPv4``, ``IPv6`` or ``FQDN``: the Kubernetes EndpointSlice ``addressType``."""
        try:
            return f"IPv{ipaddress.ip_address(self.bare_host).version}"
        except ValueError:
            return "FQDN"

    @property
    def is_loopback(self) -> bool:
        return self.kind != "FQDN" and ipaddress.ip_address(self.bare_host).is_loopback


@dataclass(frozen=True)
class Instance:
    id: str
    address: Address


@dataclass(frozen=True)
class Plan:
    """Everything a renderer needs, checked once."""

    instances: tuple[Instance, ...]
    cookie: str
    listen: Address
    #: The app's own health endpoint (answers 2xx when the instance may take traffic), or
    #: None: then each balancer uses a check that needs nothing from the app.
    health_path: str | None
    #: The command line that renders this plan again (written at the top of every file).
    command: str


def parse_address(text: str, what: str) -> Address:
    """``host:port`` with an IPv4 address, a host name or a bracketed IPv6 address."""
    host, colon, port_text = str(text).rpartition(":")
    if not colon or not _valid_host(host) or not port_text.isdigit():
        raise ConfigError(
            f"{what}: {text!r} is not host:port (e.g. 127.0.0.1:8001, app-1.internal:8000 or "
            f"[::1]:8001)"
        )
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{what}: {text!r}: the port must be 1 to 65535")
    return Address(host, port)


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return bool(_HOSTNAME_RE.fullmatch(host))


def validate_cookie_name(value: str) -> str:
    if not isinstance(value, str) or not COOKIE_NAME_RE.fullmatch(value):
        raise ConfigError(
            f"cookie name {value!r} is not valid: use letters, digits and !#$%&'*+-.^_`|~ "
            f"only (an RFC 6265 token), as in sessionkit's cookie_name"
        )
    return value


def validate_health_path(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HEALTH_PATH_RE.fullmatch(value):
        raise ConfigError(
            f"health path {value!r} is not valid: a path starting with '/' of letters, "
            f"digits and ._~%/?=&+- (e.g. /healthz)"
        )
    return value


def parse_instances(text: str) -> dict[str, str]:
    """``a=127.0.0.1:8001,b=127.0.0.1:8002`` (the ``--instances`` flag) as a mapping."""
    instances: dict[str, str] = {}
    for item in str(text).split(","):
        instance_id, equals, address = item.strip().partition("=")
        if not equals or not instance_id or not address:
            raise ConfigError(
                f"instance {item.strip()!r} is not id=host:port (e.g. a=127.0.0.1:8001)"
            )
        if instance_id in instances:
            raise ConfigError(f"instance {instance_id!r} is listed twice")
        instances[instance_id] = address
    return instances


def plan(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
    *, lb: str = "LB", health_path: str | None = None, extra: str = "",
) -> Plan:
    """Check every input; the error names the bad value and the fix."""
    if not instances:
        raise ConfigError("no instances: give at least one as id=host:port")
    checked = tuple(
        Instance(validate_instance_id(name, "instance"),
                 parse_address(address, f"instance {name!r}"))
        for name, address in instances.items()
    )
    seen: dict[Address, str] = {}
    for instance in checked:
        if instance.address in seen:
            raise ConfigError(
                f"instances {seen[instance.address]!r} and {instance.id!r} are both at "
                f"{instance.address}: each instance needs its own address"
            )
        seen[instance.address] = instance.id
    validate_cookie_name(cookie)
    validate_health_path(health_path)
    where = parse_address(listen, "listen address")
    listed = ",".join(f"{i.id}={i.address}" for i in checked)
    health = f" --health-path {shlex.quote(health_path)}" if health_path else ""
    command = (f"sessionkit lb-config {lb} --instances {listed} --cookie {shlex.quote(cookie)} "
               f"--listen {where}{health}{extra}")
    return Plan(checked, cookie, where, health_path, command)


def header(checked: Plan, *lines: str) -> list[str]:
    """Comment lines, then the command that wrote the file (to regenerate it)."""
    return [*(f"# {x}".rstrip() for x in lines), "#", f"# Generated by: {checked.command}"]
