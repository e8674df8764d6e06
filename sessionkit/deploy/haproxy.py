"""HAProxy: route on the instance id at the end of the session cookie (``use-server``), with
health checks that need nothing from the app unless it names an endpoint of its own."""

from __future__ import annotations

from collections.abc import Mapping

from .plan import DEFAULT_COOKIE, DEFAULT_LISTEN, Plan, header, plan


def haproxy_cookie_argument(name: str) -> str:
    """A cookie name (an RFC 6265 token) as the argument of ``req.cook()``: ``#`` would start
    a comment, and ``'`` is unquoted twice, by the config reader and then by the argument
    parser (``$`` is only special inside double quotes)."""
    return name.replace("#", "\\#").replace("'", "\\\\\\'")


def render_haproxy(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
    *, health_path: str | None = None,
) -> str:
    checked = plan(instances, cookie, listen, lb="haproxy", health_path=health_path)
    cookie_word = haproxy_cookie_argument(checked.cookie)
    lines = header(
        checked,
        "HAProxy: each client goes to the instance named at the end of its session cookie",
        f"(`{checked.cookie}=<session-id>.<instance-id>`). Check: haproxy -c -f haproxy.cfg",
        "",
        *_health_notes(checked),
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
        *_health_check(checked),
        "    default-server check inter 1s fastinter 500ms downinter 2s fall 2 rise 2",
        f"    # the route is what follows the last '.' of the {checked.cookie} cookie; a",
        "    # use-server rule is skipped while its server is down",
    ]
    lines += [f"    use-server {i.id} if {{ req.cook({cookie_word}) -m end .{i.id} }}"
              for i in checked.instances]
    lines += [f"    server {i.id} {i.address}" for i in checked.instances]
    return "\n".join(lines) + "\n"




def _health_notes(checked: Plan) -> list[str]:
    if checked.health_path is None:
        return [
            "Health check: OPTIONS / every second, and any HTTP answer passes. It needs nothing",
            "from the app (no route of its own) and proves the instance serves HTTP; a 503",
            "while the session store is down does not take every instance out. For a check",
            "that asks the app, give --health-path /your-endpoint (2xx/3xx then pass).",
        ]
    return [f"Health check: GET {checked.health_path} every second; 2xx and 3xx answers pass."]


def _health_check(checked: Plan) -> list[str]:
    if checked.health_path is None:
        return ["    option httpchk OPTIONS /",
                "    http-check expect rstatus ^[1-5][0-9][0-9]$"]
    return [f"    option httpchk GET {checked.health_path}",
            "    http-check expect status 200-399"]
