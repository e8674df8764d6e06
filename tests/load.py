"""Load for fault and concurrency tests: browser-like clients, each on its own session,
adding distinct keys to it in a loop while a test breaks things, and a tally of what they saw.

A client remembers every key a 200 acknowledged; after the fault those keys must all be in its
session. Every answer is checked as it arrives: a 500 is never allowed, and a 503 must carry
``Retry-After`` and no ``Set-Cookie`` (the state it would name was not saved).
"""

from __future__ import annotations

import http.cookiejar
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx2


@dataclass
class Client:
    """One browser: its session cookie and the keys the server acknowledged."""

    number: int
    cookie: str = ""
    acknowledged: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def check(self, response: httpx2.Response) -> None:
        status = response.status_code
        self.statuses[status] += 1
        cookies = response.headers.get_list("set-cookie")
        if status == 503:
            if not response.headers.get("retry-after", "").isdigit():
                self.problems.append("503 without Retry-After")
            if cookies:
                self.problems.append(f"503 with Set-Cookie {cookies}")
        elif status != 200:
            self.problems.append(f"{status}: {response.text[:200]}")


@dataclass
class Load:
    """``clients`` clients writing to ``base`` from the moment ``start()`` is called."""

    base: str
    clients: int
    pause: float = 0.01
    retries_after_503: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    workers: list[Client] = field(default_factory=list)
    _pool: ThreadPoolExecutor | None = None
    _futures: list[object] = field(default_factory=list)
    _http: httpx2.Client | None = None

    @property
    def http(self) -> httpx2.Client:
        """One client for all (it is thread-safe; making one per thread costs ~0.1 s each).
        It keeps no cookies: each simulated browser sends its own, and a shared jar would
        hand one browser's cookie to another's first request."""
        if self._http is None:
            limits = httpx2.Limits(max_connections=self.clients + 8,
                                   max_keepalive_connections=self.clients + 8)
            no_jar = http.cookiejar.CookieJar(
                policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            self._http = httpx2.Client(base_url=self.base, timeout=30, limits=limits,
                                       cookies=no_jar)
        return self._http

    def open_sessions(self) -> None:
        """Each client starts a session (one request each, all at once)."""
        self.workers = [Client(n) for n in range(self.clients)]

        def first(client: Client) -> None:
            response = self.http.post(f"/set/c{client.number}-init")
            assert response.status_code == 200, response.text
            assert response.request.headers.get("cookie") is None  # a browser's first visit
            client.cookie = response.headers["set-cookie"].split(";")[0]
            client.acknowledged.append(f"c{client.number}-init")

        with ThreadPoolExecutor(max_workers=self.clients) as pool:
            list(pool.map(first, self.workers))

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.clients)
        self._futures = [self._pool.submit(self._run, c) for c in self.workers]

    def finish(self) -> None:
        self.stop.set()
        assert self._pool is not None
        for future in self._futures:
            future.result()  # type: ignore[attr-defined]
        self._pool.shutdown()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _run(self, client: Client) -> None:
        headers = {"Cookie": client.cookie}
        sequence = 0
        while not self.stop.is_set():
            key = f"c{client.number}-{sequence}"
            sequence += 1
            for _ in range(1 + self.retries_after_503):
                try:
                    response = self.http.post(f"/set/{key}", headers=headers)
                except httpx2.HTTPError as exc:
                    client.problems.append(f"transport error {exc!r}")
                    break
                client.check(response)
                if response.status_code == 200:
                    client.acknowledged.append(key)
                if response.status_code != 503:
                    break
                time.sleep(self.pause * 5)
            time.sleep(self.pause)

    # --- what they saw ----------------------------------------------------------------------
    @property
    def statuses(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for client in self.workers:
            total.update(client.statuses)
        return total

    @property
    def problems(self) -> list[str]:
        return [f"client {c.number}: {p}" for c in self.workers for p in c.problems]

    def lost_keys(self) -> dict[int, list[str]]:
        """Per client, acknowledged keys missing from its session now."""
        lost: dict[int, list[str]] = {}
        for client in self.workers:
            response = self.http.get("/get", headers={"Cookie": client.cookie})
            assert response.status_code == 200, response.text
            stored = response.json()
            missing = [k for k in client.acknowledged if k not in stored]
            if missing:
                lost[client.number] = missing
        return lost
