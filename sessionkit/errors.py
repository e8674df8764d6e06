"""The three errors an app can meet, each saying what to do about it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .redact import redact_url, scrub


class SessionKitError(Exception):
    """Base class of every sessionkit error."""


class ConfigError(SessionKitError, ValueError):
    """A setting is wrong. Raised at startup, with the fix in the message."""


class StoreUnavailable(SessionKitError):
    """The session store cannot be reached.

    The middlewares answer ``503`` with ``Retry-After`` instead of handing out a fresh
    session: a fresh session would silently drop the user's cart or log them out.
    """

    def __init__(
        self, store: str, cause: BaseException | None = None, retry_after: int | None = None,
        *, hide: Iterable[str] = (),
    ):
        #: The store's URL or name, its secrets redacted.
        self.store = redact_url(store)
        #: Seconds for ``Retry-After``; None leaves it to the ``retry_after`` setting.
        self.retry_after = retry_after
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        # The message goes to logs and terminals: any URL the driver's error quotes is redacted,
        # and the store's own secrets (``hide``) are removed wherever they appear.
        super().__init__(scrub(f"session store {self.store} is unavailable{detail}", hide))


class SessionTooLarge(SessionKitError):
    """The session would not fit where it must travel (a browser drops cookies over 4096 bytes)."""

    def __init__(self, size: int, limit: int, largest_keys: Sequence[tuple[str, int]] = ()):
        self.size = size
        self.limit = limit
        self.largest_keys = list(largest_keys)
        keys = ", ".join(f"{k!r} ({n} bytes)" for k, n in self.largest_keys)
        hint = f"; largest keys: {keys}" if keys else ""
        super().__init__(
            f"session cookie would be {size} bytes, over the {limit}-byte limit browsers "
            f"enforce{hint}. Keep less in the session or use a server-side store "
            f"(memory://, redis://, a SQL URL)."
        )
