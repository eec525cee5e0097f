"""Run the platform server as a separate process: for the crash, concurrency and browser tests, and the server
benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`stroketrial serve` in a child process; `kill()` ends it at once, as a crash would."""

    def __init__(self, db_url: str, port: int | None = None, log_path: str | None = None,
                 extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None, start_timeout: float = 30.0):
        self.db_url = db_url
        self.start_timeout = start_timeout
        self.extra_args, self.env = extra_args, env or {}
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "stroketrial.cli", "serve", "--db", self.db_url,
                                             "--port", str(self.port), *self.extra_args], stdout=log, stderr=log,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # the child has its own copy of the file for its whole life
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not answer within {timeout:g} s")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start(self.start_timeout)

    def __exit__(self, *exc) -> None:
        self.stop()
