"""`cityveil serve` as a real process on free ports, for the end-to-end tests, plus a small JSON client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from polling import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(data: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def create_key(data: Path, role: str, env: dict[str, str] | None = None) -> str:
    """`cityveil keys create`, as an operator runs it: the key is the last line of its output."""
    done = cli(data, "keys", "create", "--role", role, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


class ServerProcess:
    def __init__(self, data: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(self.port)]
        command += ["--data-dir", str(data), "--rtsp-port", "0", *args]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        if not wait_for(
            lambda: self.request("GET", "/healthz")[0] == 200 or self.process.poll() is not None, 60
        ):
            self.kill()
            raise AssertionError("the server did not start")

    def request(self, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
        """(status, JSON body or raw bytes); (0, None) when nothing answers."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw, kind = response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            status, raw, kind = error.code, error.read(), error.headers.get("Content-Type", "")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None
        return status, json.loads(raw) if kind.startswith("application/json") and raw else raw

    def stop(self) -> str:
        """SIGTERM; returns everything the server printed. A clean stop exits 0."""
        self.process.send_signal(signal.SIGTERM)
        output = self.process.communicate(timeout=60)[0].decode(errors="replace")
        assert self.process.returncode == 0, output[-3000:]
        return output

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=30)
