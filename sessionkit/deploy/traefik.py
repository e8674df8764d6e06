"""Traefik (file provider): a sticky cookie of Traefik's own on the service; sessionkit's route
hint then detects misroutes."""

from __future__ import annotations

from collections.abc import Mapping

from .plan import (
    AFFINITY_SECONDS,
    DEFAULT_COOKIE,
    DEFAULT_LISTEN,
    LB_COOKIE,
    SERVICE,
    Plan,
    header,
    plan,
)
from .yaml import yaml_file


def render_traefik(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
    *, health_path: str | None = None,
) -> str:
    checked = plan(instances, cookie, listen, lb="traefik", health_path=health_path)
    lines = header(
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
        *_health_notes(checked),
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
                        **_health_check(checked),
                        "passHostHeader": True,
                        "servers": [{"url": f"http://{i.address}"} for i in checked.instances],
                    },
                },
            },
        },
    }
    return yaml_file(lines, [document])




def _health_notes(checked: Plan) -> list[str]:
    if checked.health_path is None:
        return [
            "Health: Traefik's active check wants a path that answers 2xx or 3xx, which only",
            "the app can name, so none is configured: every server stays in rotation and the",
            "retry middleware repeats requests that got no response. A dead instance's sticky",
            "clients are not moved until it answers again: give --health-path /your-endpoint",
            "so that Traefik takes a dead instance out within a few seconds and sends its",
            "clients to another server with a new sticky cookie. In local mode their sessions",
            "are gone then; with a shared store nothing is.",
        ]
    return [
        f"Health: GET {checked.health_path} every 2 s (2xx and 3xx pass). When an instance",
        "dies, the check removes it within a few seconds and Traefik sends its clients to",
        "another server with a new sticky cookie. In local mode their sessions are gone;",
        "with a shared store nothing is. Until the check notices, the retry middleware",
        "repeats requests that got no response.",
    ]


def _health_check(checked: Plan) -> dict[str, object]:
    if checked.health_path is None:
        return {}
    return {"healthCheck": {"path": checked.health_path, "interval": "2s", "timeout": "1s"}}
