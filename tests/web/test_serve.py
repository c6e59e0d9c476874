"""`clientguard serve` runs the service on a production WSGI server from a fresh directory,
with nothing but an SQLite file for state."""

from __future__ import annotations

import hashlib
import hmac
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

FIXTURE = Path(__file__).parent.parent / "connectors" / "jira" / "fixtures" / \
    "comment_created__cloud.json"
CLIENTGUARD = Path(sys.executable).parent / "clientguard"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_answers_webhooks_and_keeps_state_in_a_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "clientguard.toml").write_text(
        '[jira]\nsite = "acme"\nwebhook_secret = "s3cret"\nflavour = "datacenter"\n'
        'base_url = "http://127.0.0.1:9"\npersonal_access_token = "pat"\n', encoding="utf-8")
    port = _free_port()
    server = subprocess.Popen([str(CLIENTGUARD), "serve", "--port", str(port)], cwd=tmp_path,
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
        body = FIXTURE.read_bytes()
        signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        response = requests.post(f"{base}/hooks/jira", data=body, timeout=5,
                                 headers={"X-Hub-Signature": f"sha256={signature}"})
        assert (response.status_code, response.json()["status"]) == (202, "accepted")
        assert requests.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"
        assert response.headers["Server"] == "clientguard"  # waitress, not Flask's dev server
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert (tmp_path / "clientguard.sqlite3").exists()
