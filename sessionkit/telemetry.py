"""OpenTelemetry: put the session facts of the current request on a span.

Attributes follow OpenTelemetry's names where it has them: ``service.instance.id`` and
``session.id`` (here a keyed hash, never the id itself), plus ``sessionkit.lookup``,
``sessionkit.affinity_miss`` and ``sessionkit.expected_instance``. With them a problem on one
instance can be told apart from a problem everywhere.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError
from .events import current, want_request_context

want_request_context()  # a request sets the context that spans are annotated from


def annotate_span(span: Any = None) -> None:
    """Annotate ``span`` (default: OpenTelemetry's current span) from inside a request."""
    context = current.get()
    if context is None:
        return
    if span is None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise ConfigError(
                "annotate_span() without a span needs OpenTelemetry: "
                "pip install opentelemetry-api"
            ) from None
        span = trace.get_current_span()
    span.set_attribute("service.instance.id", context.instance)
    if context.session is not None:
        span.set_attribute("session.id", context.session)
    span.set_attribute("sessionkit.lookup", context.lookup)
    span.set_attribute("sessionkit.affinity_miss", context.lookup == "affinity_miss")
    if context.expected_instance is not None:
        span.set_attribute("sessionkit.expected_instance", context.expected_instance)
