"""A child process of ours: started in its own session with its output in a log file, stopped by PID.

The one process wrapper of ``tickwire up``, the benchmark and the tests. Its own session
means a Ctrl-C at the terminal reaches only the parent, which then stops each child in its
order; a child that ignores SIGTERM past the timeout is killed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tickwire.localservers import wait_for_port

log = logging.getLogger(__name__)


@dataclass
class Process:
    """One child: ``env`` is its whole environment (None: this process's), ``quiet`` sends
    its output to ``log_path`` (else to this process's terminal)."""

    name: str
    argv: list[str]
    env: dict[str, str] | None
    log_path: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    cwd: Path | None = None
    quiet: bool = True

    def start(self) -> Self:
        with open(self.log_path, "ab") as out:
            sink = out if self.quiet else None
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=sink, stderr=subprocess.STDOUT if self.quiet else None,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_port(self, timeout: float = 20.0) -> Self:
        """Until ``port`` answers on 127.0.0.1; fails with the log's tail if the process exits first."""
        assert self.port is not None
        try:
            wait_for_port(self.port, timeout, alive=lambda: self.alive)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{self.name}: {exc}\n{self.log()[-2000:]}") from None
        return self

    async def exited(self) -> int:
        """Its exit code, awaited without a thread or polling: a pidfd turns readable on exit."""
        assert self.proc is not None
        if self.proc.poll() is None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not done.done():
                    done.set_result(None)

            pidfd = os.pidfd_open(self.pid)
            loop.add_reader(pidfd, readable)
            try:
                await done
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)
        return self.proc.wait()

    def send(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Send ``sig`` and wait up to ``timeout`` seconds, then kill; the exit code (None if never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs: killing it", self.name, timeout)
                proc.kill()
                proc.wait()
        return proc.returncode
