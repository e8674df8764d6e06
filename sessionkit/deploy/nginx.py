"""nginx (open source): route on the instance id at the end of the session cookie (``map``
to one upstream per instance, the others as its backups)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping

from ..affinity import INSTANCE_ID_CHARACTERS, INSTANCE_ID_MAX
from ..errors import ConfigError
from .plan import DEFAULT_COOKIE, DEFAULT_LISTEN, Plan, header, plan

_NGINX_VARIABLE_RE = re.compile(r"[A-Za-z0-9_]+")


def render_nginx(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
    *, health_path: str | None = None, runtime_dir: str | None = None,
) -> str:
    """A complete ``nginx.conf``. ``runtime_dir`` puts the pid file, logs and temp files there
    (to run nginx as a user who cannot write to its compiled-in paths)."""
    extra = f" --runtime-dir {shlex.quote(runtime_dir)}" if runtime_dir else ""
    checked = plan(instances, cookie, listen, lb="nginx", health_path=health_path, extra=extra)
    if runtime_dir is not None and not re.fullmatch(r"/[A-Za-z0-9_./-]*", runtime_dir):
        raise ConfigError(
            f"runtime dir {runtime_dir!r} must be an absolute path of letters, digits and ._/-"
        )
    lines = header(
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
        "",
        *_health_notes(checked),
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
    """``$sessionkit_route``: the cookie's suffix, by the instance-id rule of
    ``sessionkit.affinity`` (not ``\\w``: nginx's ``\\w`` does not match ``-``, and ids like
    ``shop-1`` would silently fall back to round robin)."""
    suffix = rf"\.(?<sessionkit_suffix>[{INSTANCE_ID_CHARACTERS}]{{1,{INSTANCE_ID_MAX}}})"
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


def _health_notes(checked: Plan) -> list[str]:
    notes = ["Health: open-source nginx checks no endpoint; it takes a server out while",
             "connections to it fail (max_fails), which needs nothing from the app."]
    if checked.health_path is not None:
        notes.append(f"(--health-path {checked.health_path} is for the balancers that check "
                     f"one.)")
    return notes
