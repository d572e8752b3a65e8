"""A real Triton server on the CPU, for development, demos and tests: the `tritonserver` binary that the
PyPI wheel `nvidia-pytriton` bundles, with its python backend, over the project's model repository.

The wheel pins numpy<2, so it lives in its own environment (`.venv-triton`, built by dev.sh, or
CITYVEIL_TRITON_ENV); the python-backend models run in that environment and import `orchestrator` from it.
GPU hosts run NVIDIA's tritonserver container instead (docker-compose.gpu.yml) with the default configs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .repository import default_repository

CPU_CONFIG = "cpu"  # configs/cpu.pbtxt in each model folder: python backend, KIND_CPU
ENSEMBLE = "cityveil_detect"
STARTUP_TIMEOUT_S = 60.0


class TritonUnavailable(RuntimeError):
    """The CPU Triton server cannot be started here (its environment is missing or broken)."""


def default_environment() -> Path:
    configured = os.environ.get("CITYVEIL_TRITON_ENV")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / ".venv-triton"


@dataclass(frozen=True)
class TritonInstall:
    """Where the pieces are: the server binary, the python backend, the Python the models run in."""

    environment: Path
    server_root: Path  # pytriton/tritonserver inside the environment
    python_version: str  # "3.11": picks the backend stub built for that Python
    python_libdir: Path  # holds that Python's libpython, which the stub links against

    @classmethod
    def find(cls, environment: Path | None = None) -> TritonInstall:
        environment = environment or default_environment()
        python = environment / "bin" / "python"
        if not python.is_file():
            raise TritonUnavailable(f"no Triton environment at {environment} (run ./dev.sh test to build it)")
        probe = (
            "import json, sys, sysconfig, pytriton, pathlib;"
            "print(json.dumps([pathlib.Path(pytriton.__file__).parent.as_posix(),"
            "'%d.%d' % sys.version_info[:2], sysconfig.get_config_var('LIBDIR')]))"
        )
        result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise TritonUnavailable(
                f"nvidia-pytriton is not installed in {environment}: {result.stderr[-200:]}"
            )
        package, version, libdir = json.loads(result.stdout)
        install = cls(environment, Path(package) / "tritonserver", version, Path(libdir))
        if not install.binary.is_file() or not install.stub.is_file():
            raise TritonUnavailable(f"{install.server_root} lacks tritonserver or the Python {version} stub")
        return install

    @property
    def binary(self) -> Path:
        return self.server_root / "bin" / "tritonserver"

    @property
    def stub(self) -> Path:
        return self.server_root / "python_backend_stubs" / self.python_version / "triton_python_backend_stub"

    def backend_directory(self, root: Path) -> Path:
        """The layout tritonserver expects (backends/python/{library, utils, stub}), made of symlinks: the
        wheel keeps the stubs of every Python version apart, and the server looks for exactly one."""
        python = root / "python"
        python.mkdir(parents=True, exist_ok=True)
        backend = self.server_root / "backends" / "python"
        for link, target in (
            ("libtriton_python.so", backend / "libtriton_python.so"),
            ("triton_python_backend_utils.py", backend / "triton_python_backend_utils.py"),
            ("triton_python_backend_stub", self.stub),
        ):
            path = python / link
            if path.is_symlink() or path.exists():
                path.unlink()
            path.symlink_to(target)
        return root

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        # The stub links libpython: the one of the environment's Python, not a system copy of that version.
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [str(self.python_libdir), os.environ.get("LD_LIBRARY_PATH")])
        )
        # The stub starts the `python3` it finds on PATH: the environment's, so that the models import
        # numpy, onnxruntime and orchestrator from there.
        env["PATH"] = os.pathsep.join([str(self.environment / "bin"), os.environ.get("PATH", "")])
        for name in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV"):  # the caller's environment, not the models'
            env.pop(name, None)
        return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TritonServer:
    """One tritonserver process bound to 127.0.0.1, explicit model control, CPU configs.

    `with TritonServer(...) as server:` starts it, waits until it answers, loads `models`, and stops it on
    the way out. `server.url` is HOST:PORT for the gRPC client.
    """

    def __init__(
        self,
        repository: Path | None = None,
        grpc_port: int | None = None,
        models: tuple[str, ...] = (ENSEMBLE,),
        install: TritonInstall | None = None,
        work_dir: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.repository = Path(repository) if repository else default_repository()
        self.grpc_port = grpc_port or free_port()
        self.models = models
        self.install = install or TritonInstall.find()
        self.work_dir = (
            work_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cityveil"
        )
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def command(self) -> list[str]:
        backends = self.install.backend_directory(
            self.work_dir / f"triton-backends-{self.install.python_version}"
        )
        return [
            str(self.install.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            f"--model-config-name={CPU_CONFIG}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--allow-http=false",
            "--allow-metrics=false",
            "--exit-on-error=false",  # a model that fails to load must not take the others down
            "--log-verbose=0",
        ]

    def start(self) -> None:
        import tritonclient.grpc as grpcclient

        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(), env=self.install.environ(), stdout=output, stderr=subprocess.STDOUT
        )
        client = grpcclient.InferenceServerClient(self.url)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise TritonUnavailable(f"tritonserver exited with status {self.process.returncode}")
            try:
                if client.is_server_live():
                    break
            except Exception:  # not listening yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise TritonUnavailable(
                        f"tritonserver did not answer within {STARTUP_TIMEOUT_S}s"
                    ) from None
            time.sleep(0.2)
        try:
            for name in self.models:
                client.load_model(name)
        except Exception as exc:  # a model that does not load: no server left behind
            self.stop()
            raise TritonUnavailable(f"tritonserver could not load its models: {exc}") from None
        finally:
            client.close()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, so that the server unloads its models and ends the python stubs, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
