"""The control plane under load: 200 concurrent clients for 30 s on loopback, reading and writing cameras and
reading the audit log, while `cityveil serve` runs 2 live 1280x720 streams. Reports requests per second,
latency percentiles per kind of request, errors, and whether the audit chain verifies afterwards.

    .venv/bin/python benchmarks/bench_api_load.py --clients 200 --seconds 30 --json api.json

With CITYVEIL_DATABASE_URL set the server stores in PostgreSQL, else in SQLite under a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from bench_live import DEFAULT_SOURCE, make_clip

POOL = 50  # registered cameras whose sources never answer: the registry's rows, not streams, are exercised


def cityveil(data: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def client(
    http: httpx.AsyncClient, until: float, samples: dict[str, list[float]], errors: list[str]
) -> None:
    rng = random.Random()
    while time.monotonic() < until:
        kind = rng.choices(["list", "get", "patch", "create_delete", "audit"], weights=[3, 3, 2, 1, 2])[0]
        camera = f"pool{rng.randrange(POOL)}"
        started = time.perf_counter()
        try:
            if kind == "list":
                response = await http.get("/v1/cameras")
            elif kind == "get":
                response = await http.get(f"/v1/cameras/{camera}")
            elif kind == "patch":
                response = await http.patch(f"/v1/cameras/{camera}", json={"name": f"n{rng.random():.6f}"})
            elif kind == "audit":
                response = await http.get("/v1/audit", params={"limit": 50, "after_seq": rng.randrange(1000)})
            else:
                new = f"tmp{rng.getrandbits(48):x}"
                body = {"id": new, "source": "rtsp://127.0.0.1:9/none"}
                response = await http.post("/v1/cameras", json=body)
                if response.status_code == 201:
                    response = await http.delete(f"/v1/cameras/{new}")
            if response.status_code >= 300:
                errors.append(f"{kind}: {response.status_code} {response.text[:120]}")
        except httpx.HTTPError as exc:
            errors.append(f"{kind}: {type(exc).__name__}")
        samples.setdefault(kind, []).append(time.perf_counter() - started)


async def load_in_process(
    url: str, key: str, clients: int, seconds: float
) -> tuple[dict[str, list[float]], list[str]]:
    samples: dict[str, list[float]] = {}
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        until = time.monotonic() + seconds
        await asyncio.gather(*(client(http, until, samples, errors) for _ in range(clients)))
    return samples, errors


def _load_process(args: tuple[str, str, int, float]) -> tuple[dict[str, list[float]], list[str]]:
    return asyncio.run(load_in_process(*args))


def load(
    url: str, key: str, clients: int, seconds: float, processes: int
) -> tuple[dict[str, list[float]], list[str]]:
    """The clients spread over several processes: one Python process cannot drive 200 connections."""
    share = [clients // processes + (i < clients % processes) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_load_process, [(url, key, n, seconds) for n in share])
    samples: dict[str, list[float]] = {}
    errors: list[str] = []
    for part_samples, part_errors in parts:
        for kind, values in part_samples.items():
            samples.setdefault(kind, []).extend(values)
        errors += part_errors
    return samples, errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--processes", type=int, default=8, help="client processes sharing the clients")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        clip = make_clip(args.source, work)
        key = cityveil(data, "keys", "create", "--role", "admin").splitlines()[-1]
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "serve",
                "--port",
                str(port),
                "--rtsp-port",
                "0",
                "--data-dir",
                str(data),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                while True:
                    try:
                        if http.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.2)
                for n in range(args.streams):
                    body = {"id": f"live{n}", "source": f"file://{clip}", "loop": True}
                    http.post("/v1/cameras", json=body).raise_for_status()
                for n in range(POOL):
                    http.post("/v1/cameras", json={"id": f"pool{n}", "source": "rtsp://127.0.0.1:9/none"})
                time.sleep(10)  # the live streams warm up
                live_before = http.get("/v1/cameras/live0/status").json()
            samples, errors = load(url, key, args.clients, args.seconds, args.processes)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                live_after = http.get("/v1/cameras/live0/status").json()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        verdict = cityveil(data, "audit", "verify")
    total = sum(len(v) for v in samples.values())
    result = {
        "clients": args.clients,
        "seconds": args.seconds,
        "streams": args.streams,
        "store": "postgresql" if os.environ.get("CITYVEIL_DATABASE_URL") else "sqlite",
        "requests": total,
        "requests_per_s": round(total / args.seconds, 1),
        "errors": len(errors),
        "error_examples": errors[:5],
        "latency_ms": {
            kind: {
                p: round(float(np.percentile(v, q)) * 1000, 1)
                for p, q in (("p50", 50), ("p95", 95), ("p99", 99))
            }
            for kind, v in sorted(samples.items())
        },
        "all_p99_ms": round(float(np.percentile([x for v in samples.values() for x in v], 99)) * 1000, 1),
        "live0_frames_out_during_load": live_after.get("frames_out", 0) - live_before.get("frames_out", 0),
        "audit_verify": verdict,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
