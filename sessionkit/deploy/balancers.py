"""Which load balancers ``sessionkit lb-config`` knows, the file each config is kept in, and
``render``: one entry point for all of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import ConfigError
from .envoy import render_envoy
from .haproxy import render_haproxy
from .kubernetes import render_ingress_nginx, render_kubernetes_service
from .nginx import render_nginx
from .plan import DEFAULT_COOKIE, DEFAULT_LISTEN
from .traefik import render_traefik

Renderer = Callable[..., str]
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


def render(
    lb: str, instances: Mapping[str, str], cookie: str = DEFAULT_COOKIE,
    listen: str = DEFAULT_LISTEN, *, health_path: str | None = None,
) -> str:
    """The config of load balancer ``lb`` (one of ``LOAD_BALANCERS``) as file text."""
    try:
        renderer = RENDERERS[lb]
    except KeyError:
        raise ConfigError(
            f"unknown load balancer {lb!r}: choose one of {', '.join(LOAD_BALANCERS)}"
        ) from None
    return renderer(instances, cookie, listen, health_path=health_path)
