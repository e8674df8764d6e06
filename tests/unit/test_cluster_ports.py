"""The free-port check of the cluster demo and the test servers (``examples.cluster``): a port
whose last server stopped a moment ago, leaving only connections in TIME-WAIT, is free (every
server here binds with SO_REUSEADDR, so it can listen there again at once); a port something
listens on is not."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from examples.cluster import _port_free, spare_ports

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net/tcp")

TIME_WAIT = "06"  # the state column of /proc/net/tcp


def listener(port: int) -> socket.socket:
    """A listening socket bound as servers bind (SO_REUSEADDR)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    return server


def time_wait_on(port: int) -> bool:
    """Whether a TCP connection whose local port is ``port`` is in TIME-WAIT (Linux)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            local, state = line.split()[1], line.split()[3]
            if local == f"0100007F:{port:04X}" and state == TIME_WAIT:
                return True
    return False


@contextlib.contextmanager
def served_and_closed(port: int) -> Iterator[None]:
    """A server on ``port`` that answers one connection and closes it first (so the
    connection waits in TIME-WAIT on the server's side, as after Ctrl-C of a demo whose
    balancer had clients), then stops listening."""
    server = listener(port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        accepted, _ = server.accept()
        accepted.close()  # the server closes first
        assert client.recv(1) == b""  # the client sees the close, then closes too
    server.close()
    deadline = time.monotonic() + 5
    while not time_wait_on(port) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield


def test_a_port_held_only_by_time_wait_connections_is_free_and_can_be_listened_on() -> None:
    (port,) = spare_ports(1)
    with served_and_closed(port):
        assert time_wait_on(port), "the server's side of the connection is in TIME-WAIT"
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))  # what a bind without SO_REUSEADDR meets
        assert _port_free(port)
        restarted = listener(port)  # the restart the check allowed really works
        try:
            assert not _port_free(port)
        finally:
            restarted.close()


def test_a_port_something_listens_on_is_taken() -> None:
    (port,) = spare_ports(1)
    server = listener(port)
    try:
        assert not _port_free(port)
    finally:
        server.close()
    assert _port_free(port)


def test_a_wildcard_listener_takes_the_loopback_port_too() -> None:
    (port,) = spare_ports(1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen()
    try:
        assert not _port_free(port)
    finally:
        server.close()
