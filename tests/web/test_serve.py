"""`clientguard serve` runs the service on a production WSGI server from a fresh directory,
with nothing but an SQLite file for state."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

FIXTURE = Path(__file__).parent.parent / "connectors" / "jira" / "fixtures" / \
    "comment_created__cloud.json"
CLIENTGUARD = Path(sys.executable).parent / "clientguard"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(directory: Path, settings: str) -> Iterator[str]:
    """`clientguard serve` in `directory` with `settings` (TOML) until the block ends; its
    base URL."""
    (directory / "clientguard.toml").write_text(settings, encoding="utf-8")
    port = _free_port()
    server = subprocess.Popen([str(CLIENTGUARD), "serve", "--port", str(port)], cwd=directory,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_serve_answers_webhooks_and_keeps_state_in_a_sqlite_file(tmp_path: Path) -> None:
    with serving(tmp_path, JIRA) as base:
        body = FIXTURE.read_bytes()
        signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        response = requests.post(f"{base}/hooks/jira", data=body, timeout=5,
                                 headers={"X-Hub-Signature": f"sha256={signature}"})
        assert (response.status_code, response.json()["status"]) == (202, "accepted")
        assert requests.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"
        assert response.headers["Server"] == "clientguard"  # waitress, not Flask's dev server
    assert (tmp_path / "clientguard.sqlite3").exists()


def test_an_oversized_body_is_refused_chunked_or_not_and_a_huge_one_is_never_read(
        tmp_path: Path) -> None:
    with serving(tmp_path, JIRA + "[service]\nmax_body_bytes = 65536\n") as base:
        chunked = requests.post(f"{base}/hooks/jira", timeout=5,
                                data=(b" " * 1024 for _ in range(100)))  # no Content-Length
        assert chunked.status_code == 413
        assert chunked.json()["error"] == "request_entity_too_large"
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            connection.sendall(b"POST /hooks/jira HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: 100000000\r\n\r\n")  # and no more
            answer = connection.recv(200)  # at once, not after 100 MB
        assert answer.startswith(b"HTTP/1.1 413 ")


JIRA = ('[jira]\nsite = "acme"\nwebhook_secret = "s3cret"\nflavour = "datacenter"\n'
        'base_url = "http://127.0.0.1:9"\npersonal_access_token = "pat"\n')
