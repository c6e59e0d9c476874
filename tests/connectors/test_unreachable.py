"""A platform call that gets no answer says which host it could not reach and why — never
the URL's path or query, which may hold a secret (a Bitrix24 inbound webhook's path does).
Real sockets on this machine: nothing listening, and plain HTTP where HTTPS was asked."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from connectors.errors import Transient, Unresolvable
from connectors.http import RETRY_IDEMPOTENT, send


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A local server that answers plain HTTP (so HTTPS to it fails its handshake)."""
    server = socketserver.TCPServer(("127.0.0.1", 0), socketserver.StreamRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("url", "why"), [
    (lambda _: f"https://127.0.0.1:{closed_port()}/hook/witness-secret-4d1",
     "cannot reach 127.0.0.1:{port}: the connection was refused"),
    (lambda port: f"https://127.0.0.1:{port}/rest/witness-secret-4d1/profile",
     "cannot reach 127.0.0.1:{port}: TLS failed"),
], ids=["nothing listens", "no HTTPS there"])
def test_a_call_that_reaches_nobody_says_which_host_and_why_without_its_path(
        plain_http_port: int, url: Any, why: str) -> None:
    address = url(plain_http_port)
    with pytest.raises(Transient) as caught:
        send(requests.Session(), "GET", address, where="GET /profile", timeout=(2, 2))
    message = str(caught.value)
    assert message.startswith("GET /profile: " + why.format(port=urlsplit(address).port))
    assert "witness-secret" not in message


def test_a_host_name_that_does_not_resolve_is_said_at_once_not_retried() -> None:
    """A typo in a base URL: the person running `doctor` hears so after one attempt, not
    after 30 s of retries (`.invalid` never resolves, RFC 2606)."""
    attempts: list[int] = []
    waits: list[float] = []

    def attempt() -> None:
        attempts.append(1)
        send(requests.Session(), "GET", "https://jira.acme.invalid/rest/witness-secret-4d1",
             where="GET /rest/api/3/myself", timeout=(2, 2))

    with pytest.raises(Unresolvable) as caught:
        RETRY_IDEMPOTENT.copy(sleep=waits.append)(attempt)
    assert str(caught.value) == ("GET /rest/api/3/myself: cannot reach jira.acme.invalid: its "
                                 "name does not resolve (a typo in the URL, or no DNS?)")
    assert (len(attempts), waits) == (1, [])


def test_a_refused_connection_is_still_retried() -> None:
    port = closed_port()
    waits: list[float] = []

    def attempt() -> None:
        send(requests.Session(), "GET", f"https://127.0.0.1:{port}/", where="GET /",
             timeout=(2, 2))

    with pytest.raises(Transient):
        RETRY_IDEMPOTENT.copy(sleep=waits.append)(attempt)
    assert len(waits) == 4  # five attempts
