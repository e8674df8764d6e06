"""sessionkit: one session API for Flask and FastAPI over local memory, shared stores and
signed client-side tokens, picked by one config value."""

from .config import SessionConfig
from .engine import SessionEngine
from .errors import ConfigError, SessionKitError, SessionTooLarge, StoreUnavailable
from .session import Session

__all__ = [
    "ConfigError",
    "Session",
    "SessionConfig",
    "SessionEngine",
    "SessionKitError",
    "SessionTooLarge",
    "StoreUnavailable",
]
from ._version import __version__ as __version__  # written once, there (pyproject reads it)
