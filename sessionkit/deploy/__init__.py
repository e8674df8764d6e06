"""Load-balancer configs that keep local-mode clients on the instance holding their session.

In local mode (``memory://``) a session lives in one instance's memory, so every request of a
client must reach that instance. The session cookie says which: its value is
``<session-id>.<instance-id>`` and the route is what follows the last ``.``. These modules
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

One module per job: ``plan`` (the inputs, checked once), ``haproxy``, ``nginx``,
``kubernetes`` (a Service, and ingress-nginx), ``traefik``, ``envoy``, ``yaml`` (the small
writer the last three use), and ``balancers`` (``render`` and the list of load balancers).
Every health check needs nothing from the app unless ``health_path`` names an endpoint of its
own.
"""

from .balancers import FILENAMES, LOAD_BALANCERS, RENDERERS, render
from .plan import DEFAULT_COOKIE, DEFAULT_LISTEN, parse_instances

__all__ = ["DEFAULT_COOKIE", "DEFAULT_LISTEN", "FILENAMES", "LOAD_BALANCERS", "RENDERERS",
           "parse_instances", "render"]
