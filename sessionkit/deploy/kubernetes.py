"""Kubernetes: a Service with client-IP affinity (the last resort), and an ingress-nginx
Ingress with the controller's own sticky cookie; the instances as the EndpointSlices of a
Service without a selector."""

from __future__ import annotations

from collections.abc import Mapping

from .plan import (
    AFFINITY_SECONDS,
    DEFAULT_COOKIE,
    DEFAULT_LISTEN,
    LB_COOKIE,
    MAX_CLIENT_IP_SECONDS,
    SERVICE,
    Instance,
    Plan,
    header,
    plan,
)
from .yaml import Note, yaml_file


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
    if checked.health_path is None:
        notes += [
            "Readiness: endpoints are listed as ready. For pods, a probe that needs nothing",
            "from the app is `readinessProbe: {tcpSocket: {port: http}}`; one that asks it,",
            "`--health-path /your-endpoint`.",
        ]
    else:
        notes += [
            "Readiness: endpoints are listed as ready. For pods, probe the app's endpoint:",
            f"`readinessProbe: {{httpGet: {{path: {checked.health_path}, port: http}}}}`.",
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
    *, health_path: str | None = None,
) -> str:
    checked = plan(instances, cookie, listen, lb="kubernetes-service", health_path=health_path)
    lines = header(
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
    return yaml_file(lines, [_service(checked, affinity), *_endpoint_slices(checked)])


def render_ingress_nginx(
    instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE, listen: str = DEFAULT_LISTEN,
    *, health_path: str | None = None,
) -> str:
    checked = plan(instances, cookie, listen, lb="ingress-nginx", health_path=health_path)
    prefix = "nginx.ingress.kubernetes.io/"
    lines = header(
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
    return yaml_file(lines, [ingress, _service(checked, {}), *_endpoint_slices(checked)])
