"""A server under test, run as a subprocess: started on a free port, waited for, measured, stopped.

The server runs in its own session (its own process group), so that it and every child it starts can be
measured together (``benchlib.processes.group_*``) and stopped together. Its stdout and stderr go to a log
file, whose end is shown when it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import tenacity

from benchlib.http import request
from benchlib.ports import LOOPBACK, free_port
from benchlib.processes import group_rss_mib
from benchlib.repo import REPO

#: The placeholder in a server's command that ``start`` replaces with the port it chose.
PORT = "{port}"


class NotReady(Exception):
    """The server runs but does not answer its readiness check with 200 yet."""


@dataclass
class ServerProcess:
    """One server: its command (with ``{port}``), the path that answers 200 once it is ready, and its state."""

    name: str
    command: list[str]
    ready_path: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    port: int = 0
    ready_seconds: float = 0.0
    log_path: Path | None = None

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        """The process started (also its process group's id)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.process.pid

    def start(self, env: Mapping[str, str], log_path: Path, ready_timeout: float = 180.0) -> float:
        """Start on a free port, logging to ``log_path``; wait until ready. Seconds from start to ready.

        Raises:
            RuntimeError: the server exited before it was ready (the end of its log is in the message), or
                was not ready after ``ready_timeout`` seconds (it is stopped first).
        """
        self.port = free_port()
        self.log_path = log_path
        command = [part.replace(PORT, str(self.port)) for part in self.command]
        started = time.perf_counter()
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                env=dict(env),
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            for attempt in tenacity.Retrying(
                stop=tenacity.stop_after_delay(ready_timeout),
                wait=tenacity.wait_fixed(0.1),
                retry=tenacity.retry_if_exception_type(NotReady),
                reraise=True,
            ):
                with attempt:
                    self._check_ready()
        except NotReady:
            self.stop()
            raise RuntimeError(f"{self.name} not ready after {ready_timeout:.0f} s; see {log_path}") from None
        self.ready_seconds = time.perf_counter() - started
        return self.ready_seconds

    def _check_ready(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode} before it was ready:\n{self.log_tail()}"
            )
        try:
            status, _ = request(self.base + self.ready_path, timeout=2)
        except httpx.TransportError as exc:
            raise NotReady(str(exc)) from exc
        if status != 200:
            raise NotReady(f"{self.ready_path} answered {status}")

    def log_tail(self, chars: int = 3000) -> str:
        """The last ``chars`` characters of the server's log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def send_signal(self, number: int) -> None:
        """Send signal ``number`` to the process started (not to its children)."""
        os.kill(self.pid, number)

    def resident_mib(self) -> float | None:
        """Resident memory of the server and its children now (None when none of them could be read)."""
        return group_rss_mib(self.pid)

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers past ``timeout`` s; then SIGKILL to any
        child that outlived its parent (it still holds the group id). Does nothing when it is not running."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
