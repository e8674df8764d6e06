"""Load-balancer configs that keep local-mode clients on the instance holding their session.

In local mode (``memory://``) a session lives in one instance's memory, so every request of a
client must reach that instance. The session cookie says which: its value is
``<session-id>.<instance-id>`` and the route is what follows the last ``.``. These functions
render a complete config for a load balancer from the instances (``{"a": "10.0.0.5:8000"}``),
the cookie name and the address to listen on. They are pure (no I/O), so ``sessionkit lb-config``
and the tests print exactly what a deployment would use.

Three ways to stick, best first:

* route on the cookie's suffix (nginx, HAProxy): no state in the load balancer, survives its
  restarts, and a client stays with the instance that created its session;
* a cookie of the load balancer's own (ingress-nginx, Traefik, Envoy): sessionkit's suffix then
  only detects misroutes (``affinity_miss`` in ``/metrics``);
* the client's IP (a Kubernetes Service): clients behind one NAT share an instance and a phone
  that changes network loses its session.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .config import COOKIE_NAME_RE
from .errors import ConfigError

DEFAULT_COOKIE = "session"
DEFAULT_LISTEN = "127.0.0.1:8080"
#: The cookie that ingress-nginx, Traefik and Envoy set themselves to remember the instance.
LB_COOKIE = "sessionkit_lb"
#: What load balancers accept as a route (sessionkit's own ids never contain ``_``, but ids
#: folded from host names elsewhere might, and a rule that drops them would misroute silently).
ROUTE_CLASS = "[a-z0-9_-]"
#: How long the load balancer's own cookie lasts: sessionkit's default idle timeout.
AFFINITY_SECONDS = 14 * 24 * 3600
#: The longest client-IP affinity a Kubernetes Service accepts.
MAX_CLIENT_IP_SECONDS = 86400
HEALTH_PATH = "/whoami"

_INSTANCE_RE = re.compile(ROUTE_CLASS + "{1,63}")
_NGINX_VARIABLE_RE = re.compile(r"[A-Za-z0-9_]+")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


# --- validated inputs -------------------------------------------------------------------------
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


def validate_instance_id(value: str) -> str:
    if not isinstance(value, str) or not _INSTANCE_RE.fullmatch(value):
        raise ConfigError(
            f"instance id {value!r} is not valid: use 1 to 63 characters from a-z, 0-9, '-' "
            f"and '_' (it is the SESSIONKIT_INSTANCE_ID of that instance)"
        )
    return value


def validate_cookie_name(value: str) -> str:
    if not isinstance(value, str) or not COOKIE_NAME_RE.fullmatch(value):
        raise ConfigError(
            f"cookie name {value!r} is not valid: use letters, digits and !#$%&'*+-.^_`|~ "
            f"only (an RFC 6265 token), as in sessionkit's cookie_name"
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
    *, lb: str = "LB", extra: str = "",
) -> Plan:
    """Check every input; the error names the bad value and the fix."""
    if not instances:
        raise ConfigError("no instances: give at least one as id=host:port")
    checked = tuple(
        Instance(validate_instance_id(name), parse_address(address, f"instance {name!r}"))
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
    where = parse_address(listen, "listen address")
    listed = ",".join(f"{i.id}={i.address}" for i in checked)
    command = (f"sessionkit lb-config {lb} --instances {listed} --cookie {shlex.quote(cookie)} "
               f"--listen {where}{extra}")
    return Plan(checked, cookie, where, command)


# --- entry point ------------------------------------------------------------------------------
def render(
    lb: str, instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE,
    listen: str = DEFAULT_LISTEN,
) -> str:
    """The config of load balancer ``lb`` (one of ``LOAD_BALANCERS``) as file text."""
    try:
        renderer = RENDERERS[lb]
    except KeyError:
        raise ConfigError(
            f"unknown load balancer {lb!r}: choose one of {', '.join(LOAD_BALANCERS)}"
        ) from None
    return renderer(instances, cookie, listen)


def _header(checked: Plan, *lines: str) -> list[str]:
    """Comment lines, then the command that wrote the file (to regenerate it)."""
    return [*(f"# {x}".rstrip() for x in lines), "#", f"# Generated by: {checked.command}"]


# --- HAProxy ----------------------------------------------------------------------------------
def haproxy_cookie_argument(name: str) -> str:
    """A cookie name (an RFC 6265 token) as the argument of ``req.cook()``: ``#`` would start
    a comment, and ``'`` is unquoted twice, by the config reader and then by the argument
    parser (``$`` is only special inside double quotes)."""
    return name.replace("#", "\\#").replace("'", "\\\\\\'")


def render_haproxy(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
) -> str:
    checked = plan(instances, cookie, listen, lb="haproxy")
    cookie_word = haproxy_cookie_argument(checked.cookie)
    lines = _header(
        checked,
        "HAProxy: each client goes to the instance named at the end of its session cookie",
        f"(`{checked.cookie}=<session-id>.<instance-id>`). Check: haproxy -c -f haproxy.cfg",
        "",
        "When an instance dies: its health check fails within about 2 s and its `use-server`",
        "rule stops applying, so its clients are balanced over the live instances; until then",
        "a refused connection is retried on another instance (`option redispatch 1`). In local",
        "mode those clients start new, empty sessions there (their old cookie counts as an",
        "affinity_miss in the new instance's /metrics); with a shared store nothing is lost.",
        "",
        "Alternative: let HAProxy remember the instance in a cookie of its own, e.g. for a",
        "store without route hints. Replace the use-server lines with",
        "    cookie SERVERID insert indirect nocache httponly",
        "and add `cookie <instance-id>` to each server line (`server a 10.0.0.5:8000 cookie a`).",
        "HAProxy then sets SERVERID on the first response and strips it before the request",
        "reaches the app; a dead server's clients are redispatched the same way.",
    )
    lines += [
        "",
        "global",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout check 1s",
        "    retries 2",
        "    # retry a failed connection on another instance, not the dead one",
        "    option redispatch 1",
        "",
        "frontend sessionkit",
        f"    bind {checked.listen}",
        "    option forwardfor",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
        "    default_backend sessionkit",
        "",
        "backend sessionkit",
        "    # clients without a route (no cookie yet, or an instance that is gone): round robin",
        "    balance roundrobin",
        "    # one server connection per request: app servers close idle keep-alive connections",
        "    # after a few seconds, and a request sent on one as it closes would be dropped. A",
        "    # new connection to a dead instance is refused instead, and retried elsewhere.",
        "    option http-server-close",
        f"    option httpchk GET {HEALTH_PATH}",
        "    default-server check inter 1s fastinter 500ms downinter 2s fall 2 rise 2",
        f"    # the route is what follows the last '.' of the {checked.cookie} cookie; a",
        "    # use-server rule is skipped while its server is down",
    ]
    lines += [f"    use-server {i.id} if {{ req.cook({cookie_word}) -m end .{i.id} }}"
              for i in checked.instances]
    lines += [f"    server {i.id} {i.address}" for i in checked.instances]
    return "\n".join(lines) + "\n"


# --- nginx ------------------------------------------------------------------------------------
def render_nginx(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
    *, runtime_dir: str | None = None,
) -> str:
    """A complete ``nginx.conf``. ``runtime_dir`` puts the pid file, logs and temp files there
    (to run nginx as a user who cannot write to its compiled-in paths)."""
    extra = f" --runtime-dir {shlex.quote(runtime_dir)}" if runtime_dir else ""
    checked = plan(instances, cookie, listen, lb="nginx", extra=extra)
    if runtime_dir is not None and not re.fullmatch(r"/[A-Za-z0-9_./-]*", runtime_dir):
        raise ConfigError(
            f"runtime dir {runtime_dir!r} must be an absolute path of letters, digits and ._/-"
        )
    lines = _header(
        checked,
        "nginx (open source): each client goes to the instance named at the end of its",
        f"session cookie (`{checked.cookie}=<session-id>.<instance-id>`).",
        "Check: nginx -t -c $PWD/nginx.conf",
        "",
        "When an instance dies: the connection to it is refused and nginx passes the request",
        "to one of that instance's `backup` servers (proxy_next_upstream), so its clients keep",
        "being served by the live instances. In local mode they start new, empty sessions",
        "there: the next session they create carries the new instance in its cookie, and from",
        "then on they stick to it (the old cookie counts as an affinity_miss in /metrics). With",
        "a shared store nothing is lost. Clients without a route use sessionkit_any, which",
        "takes a failing server out for fail_timeout.",
    )
    if runtime_dir is not None:
        lines += ["", f"pid {runtime_dir}/nginx.pid;", f"error_log {runtime_dir}/error.log;"]
    lines += ["", "worker_processes auto;", "", "events {", "    worker_connections 1024;", "}",
              "", "http {"]
    lines += [f"    {x}" if x else "" for x in _nginx_http(checked, runtime_dir)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _nginx_http(checked: Plan, runtime_dir: str | None) -> Iterator[str]:
    if runtime_dir is not None:
        yield f"access_log {runtime_dir}/access.log;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            yield f"{kind}_temp_path {runtime_dir}/{kind};"
        yield ""
    yield "map_hash_bucket_size 128;"
    yield ""
    yield from _nginx_route_map(checked.cookie)
    yield ""
    yield "# the route picks that instance's upstream; anything else is balanced over all"
    yield "map $sessionkit_route $sessionkit_upstream {"
    yield "    default sessionkit_any;"
    yield from (f"    {i.id} sessionkit_route_{i.id};" for i in checked.instances)
    yield "}"
    yield ""
    yield "upstream sessionkit_any {"
    yield from (f"    server {i.address} max_fails=1 fail_timeout=5s;" for i in checked.instances)
    yield "}"
    for instance in checked.instances:
        yield ""
        yield f"# {instance.id} first; the others take its clients only while it is down"
        yield f"upstream sessionkit_route_{instance.id} {{"
        yield f"    server {instance.address} max_fails=1 fail_timeout=5s;"
        yield from (f"    server {other.address} backup;"
                    for other in checked.instances if other != instance)
        yield "}"
    yield ""
    yield "server {"
    yield f"    listen {checked.listen};"
    yield ""
    yield "    location / {"
    yield "        proxy_pass http://$sessionkit_upstream;"
    yield "        proxy_next_upstream error timeout http_502 http_503;"
    yield "        proxy_next_upstream_timeout 10s;"
    yield "        proxy_connect_timeout 1s;"
    yield "        proxy_set_header Host $host;"
    yield "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
    yield "        proxy_set_header X-Forwarded-Proto $scheme;"
    yield "    }"
    yield "}"


def _nginx_route_map(cookie: str) -> Iterator[str]:
    """``$sessionkit_route``: the cookie's suffix. ``[a-z0-9_-]``, not ``\\w``: nginx's ``\\w``
    does not match ``-``, and ids like ``shop-1`` would silently fall back to round robin."""
    suffix = rf"\.(?<sessionkit_suffix>{ROUTE_CLASS}{{1,63}})"
    if _NGINX_VARIABLE_RE.fullmatch(cookie):
        yield f"# the route: what follows the last '.' of the {cookie} cookie"
        yield f"map $cookie_{cookie} $sessionkit_route {{"
        yield f'    "~{suffix}$" $sessionkit_suffix;'
    else:  # $cookie_<name> only exists for names nginx variables can spell
        name = re.escape(cookie)
        yield f"# the route: what follows the last '.' of the {cookie} cookie (a name that"
        yield "# $cookie_<name> cannot spell, so it is read from the Cookie header)"
        yield "map $http_cookie $sessionkit_route {"
        yield f'    "~(?:^|;)\\s*{name}=[^;]*{suffix}\\s*(?:;|$)" $sessionkit_suffix;'
    yield '    default "";'
    yield "}"


# --- YAML (Kubernetes, Traefik, Envoy) ---------------------------------------------------------
@dataclass(frozen=True)
class Note:
    """A value with a comment written above its key."""

    comment: str
    value: object


_PLAIN_SCALAR = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def yaml_scalar(value: object) -> str:
    """A scalar every YAML parser reads back as the same value: plain when unambiguous,
    otherwise a JSON string (JSON strings are valid YAML double-quoted scalars)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN_SCALAR.fullmatch(value) and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value)
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    raise TypeError(f"no YAML form for {value!r}")


def _is_block(value: object) -> bool:
    return isinstance(value, Mapping | list) and bool(value)


def _yaml_mapping(node: Mapping[str, object], indent: int) -> Iterator[str]:
    pad = " " * indent
    for key, item in node.items():
        value = item
        if isinstance(value, Note):
            yield from (f"{pad}# {line}".rstrip() for line in value.comment.splitlines())
            value = value.value
        if _is_block(value):
            yield f"{pad}{yaml_scalar(key)}:"
            yield from _yaml_block(value, indent + 2)
        else:
            yield f"{pad}{yaml_scalar(key)}: {yaml_scalar(value)}"


def _yaml_sequence(items: Sequence[object], indent: int) -> Iterator[str]:
    pad = " " * indent
    for item in items:
        if isinstance(item, Mapping) and item:
            first, *rest = _yaml_mapping(item, indent + 2)
            if first.lstrip().startswith("#"):
                raise ValueError("the first key of a list item cannot carry a Note")
            yield f"{pad}- {first.lstrip()}"
            yield from rest
        elif _is_block(item):
            raise ValueError("lists of lists have no block form here")
        else:
            yield f"{pad}- {yaml_scalar(item)}"


def _yaml_block(value: object, indent: int) -> Iterator[str]:
    if isinstance(value, Mapping):
        yield from _yaml_mapping(value, indent)
    else:
        assert isinstance(value, list)
        yield from _yaml_sequence(value, indent)


def to_yaml(documents: Sequence[Mapping[str, object]]) -> str:
    """Block-style YAML, one ``---`` document per mapping."""
    out: list[str] = []
    for document in documents:
        out.append("---")
        out.extend(_yaml_mapping(document, 0))
    return "\n".join(out) + "\n"


def _yaml_file(header: list[str], documents: Sequence[Mapping[str, object]]) -> str:
    return "\n".join(header) + "\n" + to_yaml(documents)


# --- Kubernetes -------------------------------------------------------------------------------
SERVICE = "sessionkit"


def _endpoint_slices(checked: Plan) -> list[dict[str, object]]:
    """The instances as EndpointSlices of a selector-less Service (one slice per address type
    and port: a slice has one port list for all its endpoints)."""
    groups: dict[tuple[str, int], list[Instance]] = {}
    for instance in checked.instances:
        groups.setdefault((instance.address.kind, instance.address.port), []).append(instance)
    return [
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{SERVICE}-{kind.lower()}-{port}",
                "labels": {
                    "kubernetes.io/service-name": SERVICE,
                    "endpointslice.kubernetes.io/managed-by": "sessionkit-lb-config",
                },
            },
            "addressType": kind,
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": [i.address.bare_host], "conditions": {"ready": True}}
                for i in members
            ],
        }
        for (kind, port), members in groups.items()
    ]


def _kubernetes_notes(checked: Plan) -> list[str]:
    notes = [
        "The instances are the endpoints of a Service without a selector. For pods in the",
        "cluster, replace the EndpointSlices with `selector: {app.kubernetes.io/name: ...}`",
        "and `targetPort` on the Service: each pod's instance id then defaults to its name",
        "(POD_NAME or HOSTNAME), so no SESSIONKIT_INSTANCE_ID is needed.",
    ]
    if any(i.address.is_loopback for i in checked.instances):
        notes += [
            "These addresses are loopback ones: Kubernetes refuses them in an EndpointSlice.",
            "Use addresses the cluster can reach.",
        ]
    return notes


def _service(checked: Plan, spec_extra: Mapping[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE},
        "spec": {
            **spec_extra,
            "ports": [{"name": "http", "port": checked.listen.port, "protocol": "TCP"}],
        },
    }


def render_kubernetes_service(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
) -> str:
    checked = plan(instances, cookie, listen, lb="kubernetes-service")
    header = _header(
        checked,
        "Kubernetes Service with client-IP affinity: the last resort for local mode.",
        "",
        "!!! READ THIS BEFORE USING IT !!!",
        "* Every client behind one NAT (an office, a campus, a mobile carrier's CGNAT) has the",
        "  same IP, so they all land on one pod: load spreads unevenly.",
        "* A phone that changes network (Wi-Fi to mobile) changes IP and lands on another pod:",
        "  in local mode it LOSES ITS SESSION (a random logout, an empty cart).",
        "* After timeoutSeconds without a request the binding is forgotten, however long",
        "  sessionkit's idle timeout is.",
        "* A dying pod's clients are spread over the others and start empty sessions.",
        f"Prefer routing on the cookie ({checked.cookie}=<session-id>.<instance-id>): see",
        "ingress-nginx.yaml, nginx.conf or haproxy.cfg, or use a shared store (redis://).",
        "",
        *_kubernetes_notes(checked),
    )
    affinity = {
        "sessionAffinity": Note(
            "CLIENT IP, NOT THE CLIENT: shared by everyone behind one NAT, lost when it changes",
            "ClientIP",
        ),
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": MAX_CLIENT_IP_SECONDS}},
    }
    return _yaml_file(header, [_service(checked, affinity), *_endpoint_slices(checked)])


def render_ingress_nginx(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
) -> str:
    checked = plan(instances, cookie, listen, lb="ingress-nginx")
    prefix = "nginx.ingress.kubernetes.io/"
    header = _header(
        checked,
        "ingress-nginx: sticky sessions with the controller's own cookie.",
        "",
        f"ingress-nginx cannot route on the suffix of sessionkit's cookie ({checked.cookie}=",
        "<session-id>.<instance-id>) without configuration snippets, which it disables by",
        f"default. It sets a cookie of its own ({LB_COOKIE}) naming the endpoint instead.",
        "sessionkit's route hint is then used for misroute detection: a request whose cookie",
        "names another instance is counted as an affinity_miss in that instance's /metrics",
        "(and, with on_affinity_miss=fallback, read from the fallback store). A rising",
        "affinity_miss count means the two cookies disagree, e.g. after a scale-down.",
        "",
        "When an instance dies: ingress-nginx stops sending to it once it leaves the",
        "endpoints; its clients get a new endpoint and, with change-on-failure, a new",
        f"{LB_COOKIE}. In local mode their sessions are gone; with a shared store nothing is.",
        "`upstream-hash-by: $cookie_<name>` is no substitute: it hashes the whole value, so",
        "the instance it picks is not the one that created the session.",
        "",
        *_kubernetes_notes(checked),
    )
    annotations = {
        f"{prefix}affinity": "cookie",
        f"{prefix}affinity-mode": "persistent",
        f"{prefix}session-cookie-name": LB_COOKIE,
        f"{prefix}session-cookie-path": "/",
        f"{prefix}session-cookie-samesite": "Lax",
        f"{prefix}session-cookie-max-age": str(AFFINITY_SECONDS),
        f"{prefix}session-cookie-change-on-failure": "true",
        f"{prefix}proxy-next-upstream": "error timeout http_502 http_503",
        f"{prefix}proxy-connect-timeout": "1",
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": SERVICE,
            "annotations": Note(
                f"max-age: keep it at least sessionkit's idle_timeout ({AFFINITY_SECONDS} s = "
                f"the default 14 days)",
                annotations,
            ),
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"http": {"paths": [{
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": SERVICE, "port": {"name": "http"}}},
            }]}}],
        },
    }
    return _yaml_file(header, [ingress, _service(checked, {}), *_endpoint_slices(checked)])


# --- Traefik ----------------------------------------------------------------------------------
def render_traefik(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
) -> str:
    checked = plan(instances, cookie, listen, lb="traefik")
    header = _header(
        checked,
        "Traefik dynamic configuration (file provider): a sticky cookie on the service.",
        "The entry point is static configuration; run for example:",
        f"    traefik --entryPoints.web.address={checked.listen} "
        "--providers.file.filename=traefik.yaml",
        "",
        f"Traefik remembers the server in its own cookie ({LB_COOKIE}); sessionkit's route",
        f"hint ({checked.cookie}=<session-id>.<instance-id>) then detects misroutes: they",
        "show as affinity_miss in /metrics. Routing on the hint itself is possible with one",
        "router per instance, rule HeaderRegexp(`Cookie`, `(^|;\\s*)<name>=[^;]*\\.<id>(;|$)`)",
        "(HeadersRegexp before Traefik v3), each on a failover service (that instance, then",
        "all).",
        "",
        "When an instance dies: the health check removes it within a few seconds, and",
        "Traefik sends its clients to another server with a new sticky cookie. In local mode",
        "their sessions are gone; with a shared store nothing is. Until the check notices,",
        "the retry middleware repeats requests that got no response.",
    )
    document = {
        "http": {
            "routers": {
                SERVICE: {
                    "entryPoints": ["web"],
                    "rule": "PathPrefix(`/`)",
                    "middlewares": [f"{SERVICE}-retry"],
                    "service": SERVICE,
                },
            },
            "middlewares": {
                f"{SERVICE}-retry": {"retry": {"attempts": 3, "initialInterval": "100ms"}},
            },
            "services": {
                SERVICE: {
                    "loadBalancer": {
                        "sticky": {"cookie": {
                            "name": LB_COOKIE,
                            "httpOnly": True,
                            "sameSite": "lax",
                            "maxAge": AFFINITY_SECONDS,
                        }},
                        "healthCheck": {"path": HEALTH_PATH, "interval": "2s", "timeout": "1s"},
                        "passHostHeader": True,
                        "servers": [{"url": f"http://{i.address}"} for i in checked.instances],
                    },
                },
            },
        },
    }
    return _yaml_file(header, [document])


# --- Envoy ------------------------------------------------------------------------------------
def _envoy_endpoint(instance: Instance) -> dict[str, object]:
    address = instance.address
    return {"endpoint": {
        "address": {"socket_address": {"address": address.bare_host, "port_value": address.port}},
    }}


def _envoy_cluster(checked: Plan) -> dict[str, object]:
    by_name = any(i.address.kind == "FQDN" for i in checked.instances)
    return {
        "name": SERVICE,
        "connect_timeout": "1s",
        "type": "STRICT_DNS" if by_name else "STATIC",
        "lb_policy": "ROUND_ROBIN",
        "health_checks": [{
            "timeout": "1s",
            "interval": "2s",
            "unhealthy_threshold": 2,
            "healthy_threshold": 2,
            "http_health_check": {"path": HEALTH_PATH},
        }],
        "load_assignment": {
            "cluster_name": SERVICE,
            "endpoints": [{"lb_endpoints": [_envoy_endpoint(i) for i in checked.instances]}],
        },
    }


def _envoy_filters() -> list[dict[str, object]]:
    api = "type.googleapis.com/envoy.extensions"
    return [
        {
            "name": "envoy.filters.http.stateful_session",
            "typed_config": {
                "@type": f"{api}.filters.http.stateful_session.v3.StatefulSession",
                "session_state": {
                    "name": "envoy.http.stateful_session.cookie",
                    "typed_config": {
                        "@type": f"{api}.http.stateful_session.cookie.v3.CookieBasedSessionState",
                        "cookie": {"name": LB_COOKIE, "path": "/", "ttl": f"{AFFINITY_SECONDS}s"},
                    },
                },
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": f"{api}.filters.http.router.v3.Router"},
        },
    ]


def render_envoy(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
) -> str:
    checked = plan(instances, cookie, listen, lb="envoy")
    header = _header(
        checked,
        "Envoy static configuration: stateful sessions with a cookie of Envoy's own.",
        "Run: envoy -c envoy.yaml",
        "",
        f"The stateful_session filter keeps the chosen endpoint in {LB_COOKIE}; sessionkit's",
        f"route hint ({checked.cookie}=<session-id>.<instance-id>) then detects misroutes",
        "(affinity_miss in /metrics). The alternative, lb_policy RING_HASH with",
        f"hash_policy {{cookie: {{name: {checked.cookie}}}}}, needs no extra cookie but",
        "hashes the whole session id: the instance it picks is not the one that created the",
        "session (every new session is misrouted once), and adding or removing an instance",
        "moves about 1/N of the clients. So the stateful cookie it is.",
        "",
        "When an instance dies: the health check marks it unhealthy within about 4 s; the",
        "filter is not strict, so its clients are balanced over the healthy instances and",
        "get a new cookie. Refused connections are retried on another host meanwhile. In",
        "local mode those clients' sessions are gone; with a shared store nothing is.",
    )
    api = "type.googleapis.com/envoy.extensions"
    route = {
        "cluster": SERVICE,
        "retry_policy": {
            "retry_on": "connect-failure,refused-stream",
            "num_retries": 2,
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts"}],
        },
    }
    manager = {
        "@type": f"{api}.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": SERVICE,
        "use_remote_address": True,
        "route_config": {
            "name": SERVICE,
            "virtual_hosts": [{
                "name": SERVICE,
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": route}],
            }],
        },
        "http_filters": _envoy_filters(),
    }
    document = {"static_resources": {
        "listeners": [{
            "name": SERVICE,
            "address": {"socket_address": {
                "address": checked.listen.bare_host, "port_value": checked.listen.port,
            }},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": manager,
            }]}],
        }],
        "clusters": [_envoy_cluster(checked)],
    }}
    return _yaml_file(header, [document])


Renderer = Callable[[Mapping[str, str], str, str], str]
RENDERERS: dict[str, Renderer] = {
    "haproxy": render_haproxy,
    "nginx": render_nginx,
    "ingress-nginx": render_ingress_nginx,
    "traefik": render_traefik,
    "envoy": render_envoy,
    "kubernetes-service": render_kubernetes_service,
}
LOAD_BALANCERS: tuple[str, ...] = tuple(RENDERERS)
#: The file each config is kept in (``examples/deploy/``).
FILENAMES: dict[str, str] = {
    "haproxy": "haproxy.cfg",
    "nginx": "nginx.conf",
    "ingress-nginx": "ingress-nginx.yaml",
    "traefik": "traefik.yaml",
    "envoy": "envoy.yaml",
    "kubernetes-service": "kubernetes-service.yaml",
}
