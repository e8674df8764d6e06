"""Envoy (static configuration): stateful sessions with a cookie of Envoy's own; sessionkit's
route hint then detects misroutes."""

from __future__ import annotations

from collections.abc import Mapping

from .plan import (
    AFFINITY_SECONDS,
    DEFAULT_COOKIE,
    DEFAULT_LISTEN,
    LB_COOKIE,
    SERVICE,
    Instance,
    Plan,
    header,
    plan,
)
from .yaml import yaml_file


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
            "http_health_check": _http_health_check(checked),
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
    *, health_path: str | None = None,
) -> str:
    checked = plan(instances, cookie, listen, lb="envoy", health_path=health_path)
    lines = header(
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
        *_health_notes(checked),
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
    return yaml_file(lines, [document])




def _http_health_check(checked: Plan) -> dict[str, object]:
    if checked.health_path is None:  # any HTTP answer: the instance serves
        return {"path": "/", "method": "OPTIONS",
                "expected_statuses": [{"start": 100, "end": 600}]}
    return {"path": checked.health_path, "expected_statuses": [{"start": 200, "end": 400}]}


def _health_notes(checked: Plan) -> list[str]:
    if checked.health_path is None:
        return [
            "Health check: OPTIONS / every 2 s, and any HTTP answer passes: it needs nothing",
            "from the app and proves the instance serves HTTP. For a check that asks the app,",
            "give --health-path /your-endpoint (2xx/3xx then pass).",
        ]
    return [f"Health check: GET {checked.health_path} every 2 s; 2xx and 3xx answers pass."]
