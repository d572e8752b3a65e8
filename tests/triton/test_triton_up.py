"""`cityveil triton up`: a CPU Triton server in the foreground, serving the ensemble until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import tritonclient.grpc as grpcclient
from model_repository import triton_install
from tritonclient.utils import InferenceServerException

from orchestrator.inference.triton_server import ENSEMBLE, free_port


def test_triton_up_serves_the_ensemble_until_stopped() -> None:
    triton_install()  # skips (or fails under ./dev.sh test) without the Triton environment
    port = free_port()
    command = [sys.executable, "-m", "orchestrator.cli", "triton", "up", "--grpc-port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the models are loaded
        assert f"triton://127.0.0.1:{port}" in first, first
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_model_ready(ENSEMBLE)
        client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130  # stopped as by Ctrl-C, the server with it
        with pytest.raises(InferenceServerException):  # nothing left listening
            grpcclient.InferenceServerClient(f"127.0.0.1:{port}").is_server_live()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
