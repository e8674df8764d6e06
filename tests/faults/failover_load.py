"""Load for the failover tests: one app per variant (Flask, FastAPI, each also in hybrid mode)
served over real HTTP, a few threads writing to many sessions while a test breaks Redis, and
a tally of what users saw.

Every answer is judged as it arrives:

* 200: the key it wrote is acknowledged; the answer lists the session's keys, and one without
  the session's first key is a *fresh session* (a user silently logged out, a cart dropped);
  so is a ``Set-Cookie`` naming another session;
* 503: must carry ``Retry-After`` and no ``Set-Cookie``;
* anything else (a 500, a dropped connection) is an *other* answer.

At the end every acknowledged key must be in its session, read straight from Redis through an
app without a near cache: what is missing is *lost*. The time to recovery is from the fault
to the last answer that was not a 200.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.cookiejar
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2

from sessionkit import SessionEngine
from tests.apps import make
from tests.servers import serve_asgi, serve_wsgi
from tests.support import KEY, ShopClient, engine_of

RETRY_AFTER = 1
REQUEST_SECONDS = 15  # a bound far above the store's deadline: a hang shows as "other"


@dataclasses.dataclass(frozen=True)
class Variant:
    framework: str
    hybrid: bool = False

    @property
    def label(self) -> str:
        return self.framework + (" hybrid" if self.hybrid else "")


VARIANTS = (Variant("flask"), Variant("fastapi"), Variant("flask", True),
            Variant("fastapi", True))


class _KeepNoCookies(http.cookiejar.DefaultCookiePolicy):
    """Each session's cookie is sent by hand: the shared client's jar keeps none."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


@dataclasses.dataclass
class Session:
    number: int
    cookie: str = ""
    acknowledged: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Tally:
    """What one variant's users saw."""

    variant: Variant
    statuses: Counter[int] = dataclasses.field(default_factory=Counter)
    fresh: int = 0
    other: list[str] = dataclasses.field(default_factory=list)
    bad_503: list[str] = dataclasses.field(default_factory=list)
    failures: list[float] = dataclasses.field(default_factory=list)  # when, non-200 answers
    last_ok: float = 0.0  # when the last 200 came
    slowest: float = 0.0
    lost: int = 0
    acknowledged: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def recovered(self) -> bool:
        """Answers were 200 again after the last one that was not."""
        return not self.failures or self.last_ok > max(self.failures)

    def recovery(self, fault_at: float) -> float:
        """Seconds from the fault to the last answer that was not a 200 (0 if none)."""
        late = [t for t in self.failures if t >= fault_at]
        return max(late) - fault_at if late else 0.0


class VariantLoad:
    """``sessions`` sessions on one app, written to by ``threads`` threads."""

    def __init__(self, variant: Variant, base: str, sessions: int, threads: int) -> None:
        self.variant = variant
        self.base = base
        self.sessions = [Session(n) for n in range(sessions)]
        self.threads = threads
        self.tally = Tally(variant)
        self.stop = threading.Event()
        self.http = httpx2.Client(base_url=base, timeout=REQUEST_SECONDS,
                                  limits=httpx2.Limits(max_connections=threads + 4),
                                  cookies=http.cookiejar.CookieJar(policy=_KeepNoCookies()))
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Any] = []

    def open_sessions(self) -> None:
        def first(session: Session) -> None:
            response = self.http.post(f"/set/init-{session.number}")
            assert response.status_code == 200, response.text
            session.cookie = response.headers["set-cookie"].split(";")[0]
            session.acknowledged.append(f"init-{session.number}")

        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            list(pool.map(first, self.sessions))

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.threads)
        self._futures = [self._pool.submit(self._run, self.sessions[n::self.threads])
                         for n in range(self.threads)]

    def finish(self) -> None:
        self.stop.set()
        assert self._pool is not None
        for future in self._futures:
            future.result()
        self._pool.shutdown()
        self.http.close()

    def _run(self, sessions: Sequence[Session]) -> None:
        sequence = 0
        while not self.stop.is_set():
            for session in sessions:
                if self.stop.is_set():
                    return
                self._write(session, f"k{sequence}")
            sequence += 1
            time.sleep(0.01)

    def _write(self, session: Session, key: str) -> None:
        tally = self.tally
        started = time.monotonic()
        try:
            response = self.http.post(f"/set/{key}", headers={"Cookie": session.cookie})
        except httpx2.HTTPError as exc:
            with tally.lock:
                tally.other.append(f"transport error {exc!r}")
                tally.failures.append(time.monotonic())
            return
        took = time.monotonic() - started
        status = response.status_code
        cookies = response.headers.get_list("set-cookie")
        with tally.lock:
            tally.statuses[status] += 1
            tally.slowest = max(tally.slowest, took)
            if status != 200:
                tally.failures.append(time.monotonic())
            else:
                tally.last_ok = time.monotonic()
            if status == 200:
                if f"init-{session.number}" not in response.json():
                    tally.fresh += 1  # the session's first key is gone: a new session
                else:
                    session.acknowledged.append(key)
                    for cookie in cookies:  # hybrid mode's cookie names the copy it holds
                        if cookie.startswith("session="):
                            session.cookie = cookie.split(";")[0]
            elif status == 503:
                if not response.headers.get("retry-after", "").isdigit() or cookies:
                    tally.bad_503.append(f"{dict(response.headers)}")
            else:
                tally.other.append(f"{status}: {response.text[:200]}")

    def count_lost(self, verifier: ShopClient) -> None:
        """Acknowledged keys missing from the sessions as Redis holds them now."""
        lost = 0
        for session in self.sessions:
            reply = verifier.raw("GET", "/get", cookie=session.cookie)
            assert reply.status == 200, reply.body
            stored = reply.json
            lost += sum(1 for key in session.acknowledged if key not in stored)
        self.tally.lost = lost
        self.tally.acknowledged = sum(len(s.acknowledged) for s in self.sessions)


def app_for(variant: Variant, url: str) -> tuple[Any, SessionEngine]:
    """The variant's app and its engine (closed by the caller: it stops watcher threads)."""
    settings: dict[str, Any] = {"store": url, "secret_key": KEY, "retry_after": RETRY_AFTER}
    if variant.hybrid:
        settings.update(near_cache=True, instance_id=f"{variant.framework}-hybrid")
    if variant.framework == "flask":
        app = make("flask", **settings)
        return app, engine_of(app)
    engine = SessionEngine(**settings)
    return make(variant.framework, engine=engine), engine


@contextlib.contextmanager
def loads(url: str, sessions: int, threads: int,
          variants: Sequence[Variant] = VARIANTS) -> Iterator[list[VariantLoad]]:
    """Every variant served and its sessions opened; the load is not started yet."""
    with contextlib.ExitStack() as stack:
        started = []
        for variant in variants:
            serve = serve_asgi if variant.framework == "fastapi" else serve_wsgi
            app, engine = app_for(variant, url)
            stack.callback(engine.close)  # its watcher threads too
            base = stack.enter_context(serve(app))
            load = VariantLoad(variant, base, sessions, threads)
            load.open_sessions()
            started.append(load)
        yield started


def format_table(title: str, tallies: Sequence[Tally], fault_at: float) -> str:
    header = ("variant", "200", "503", "other", "fresh sessions", "acknowledged", "lost",
              "recovery s", "slowest s")
    rows = [header] + [
        (t.variant.label, str(t.statuses[200]), str(t.statuses[503]),
         str(len(t.other)),
         str(t.fresh), str(t.acknowledged), str(t.lost), f"{t.recovery(fault_at):.1f}",
         f"{t.slowest:.1f}")
        for t in tallies
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"== {title}"] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                               for r in rows]
    return "\n".join(lines)


@dataclasses.dataclass
class Outcome:
    title: str
    tallies: list[Tally]
    fault_at: float

    def table(self) -> str:
        return format_table(self.title, self.tallies, self.fault_at)


def run(title: str, url: str, fault: Any, *, sessions: int = 30, threads: int = 3,
        warmup: float = 1.0, after: float = 1.5,
        variants: Sequence[Variant] = VARIANTS) -> Outcome:
    """Load on every variant; ``fault()`` breaks Redis and returns once the deployment has
    done what it does about it (a failover, a recovery); the load goes on ``after`` seconds
    more. Lost writes are counted once the load has stopped."""
    with loads(url, sessions, threads, variants) as started:
        for load in started:
            load.start()
        try:
            time.sleep(warmup)
            fault_at = time.monotonic()
            fault()
            time.sleep(after)
        finally:
            for load in started:
                load.finish()
        verifier = make("flask", store=url, secret_key=KEY)
        try:
            for load in started:
                load.count_lost(ShopClient("flask", verifier))
        finally:
            engine_of(verifier).close()
        outcome = Outcome(title, [load.tally for load in started], fault_at)
    print("\n" + outcome.table(), flush=True)
    return outcome
