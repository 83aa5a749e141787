"""Child processes that we start, log to a file, and stop by their PID."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A child process exited, or did not get ready in time."""


class ManagedProcess:
    """One child process in a session (process group) of its own.

    Stopping signals that group, so a Celery worker's pool children go with
    it, and nothing else on the machine is touched.
    """

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path, cwd: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None
        # Logs are appended to; this run's part starts here.
        self._log_offset = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def start(self) -> "ManagedProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        """What this run of the process has logged so far."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float, count: int = 1) -> None:
        """Wait until `text` appears `count` times in the log."""
        deadline = time.monotonic() + timeout
        while self.log_text().count(text) < count:
            if not self.is_running():
                raise self._exited()
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name}: no {text!r} within {timeout}s:\n{self._log_tail()}")
            time.sleep(0.1)

    def wait_for_port(self, port: int, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if not self.is_running():
                    raise self._exited() from None
                if time.monotonic() > deadline:
                    raise ProcessFailed(f"{self.name}: port {port} not open within {timeout}s") from None
                time.sleep(0.1)

    def signal_group(self, signum: int) -> None:
        if self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, not a shutdown."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def stop(self, *, timeout: float = 10) -> None:
        """SIGTERM (a warm shutdown for Celery), then SIGKILL if it lingers."""
        if not self.is_running():
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def _exited(self) -> ProcessFailed:
        return ProcessFailed(f"{self.name} exited with {self.popen.returncode}:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def stop_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt, so that `finally` blocks stop what this process started."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc); empty if it is gone."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
