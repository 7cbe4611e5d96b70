"""The course's database services: find them, start them, report on them, stop them.

For each server (PostgreSQL, MySQL/MariaDB, MongoDB, Redis), ``up``:

1. uses a server that already answers at the configured URL ("existing"),
2. otherwise starts it with Docker Compose from ``docker/`` when a Docker engine runs ("docker"),
3. otherwise starts the installed server binaries in ``.services/`` ("native"),
4. otherwise, for MongoDB only, runs SecantusDB from PyPI as a stand-in ("stand-in").

``down`` stops only what the course started (it keeps pid files); ``status`` prints one row per
server with the exact command that fixes a server that is down.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from ..config import SERVER_NAMES, Settings, get_settings
from ..connect import DISPLAY_NAMES, start_command
from . import docker, native
from .probe import probe

Log = Callable[[str], None]


@dataclass
class ServiceStatus:
    name: str
    up: bool
    mode: str  # existing | docker | native | stand-in | down
    url: str  # password hidden
    version: str | None
    fix: str  # empty when up
    detail: str = ""
    started: bool = False  # started by this `up` call

    @property
    def display_name(self) -> str:
        return DISPLAY_NAMES[self.name]

    def as_dict(self) -> dict:
        return asdict(self)


def _names(names: Iterable[str] | None) -> list[str]:
    chosen = list(names or SERVER_NAMES)
    unknown = [n for n in chosen if n not in SERVER_NAMES]
    if unknown:
        raise ValueError(f"unknown service {unknown[0]!r}: choose from {', '.join(SERVER_NAMES)}")
    return chosen


@contextmanager
def _lock(settings: Settings):
    settings.services_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.services_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _recorded_mode(settings: Settings, name: str) -> str | None:
    try:
        return (settings.services_dir / name / "mode").read_text().strip() or None
    except OSError:
        return None


def _running_native(settings: Settings, name: str) -> native.NativeServer | None:
    for server in native.candidates(name, settings):
        if server.running():
            return server
    return None


def service_status(name: str, settings: Settings | None = None) -> ServiceStatus:
    settings = settings or get_settings()
    server = settings[name]
    result = probe(server)
    mode = "down"
    if result.up:
        recorded = _recorded_mode(settings, name)
        if recorded in ("native", "stand-in") and _running_native(settings, name):
            mode = recorded
        elif recorded == "docker" and docker.running(settings, name):
            mode = "docker"
        else:
            mode = "existing"
        if result.stand_in:
            mode = "stand-in" if mode != "existing" else "existing (stand-in)"
        return ServiceStatus(name, True, mode, server.masked_url, result.version, "")
    detail = result.error.reason if result.error else "not reachable"
    fix = result.error.fix if result.error else start_command(name)
    if _running_native(settings, name):
        detail += " (a server the course started is running but does not accept the course's login)"
    return ServiceStatus(name, False, mode, server.masked_url, None, fix, detail)


def status(names: Iterable[str] | None = None, settings: Settings | None = None) -> list[ServiceStatus]:
    settings = settings or get_settings()
    return [service_status(name, settings) for name in _names(names)]


def install_packages(names: Iterable[str], settings: Settings, log: Log = print) -> None:
    """Install missing server packages with apt-get (Debian/Ubuntu, as root)."""
    missing = []
    for name in names:
        for server in native.candidates(name, settings):
            if server.debian_package and not server.available():
                missing.append(server.debian_package)
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log(f"cannot install {', '.join(missing)}: --install needs root on Debian/Ubuntu (apt-get). "
            f"Install them yourself, e.g. `sudo apt-get install {' '.join(missing)}`.")
        return
    log(f"installing {', '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise native.StartError(f"apt-get install {' '.join(missing)} failed:\n{result.stderr[-2000:]}")


def up_one(name: str, settings: Settings, log: Log = print) -> ServiceStatus:
    current = service_status(name, settings)
    if current.up:
        # Make sure the course's own database exists on a server the course runs.
        running = _running_native(settings, name)
        if running:
            running.bootstrap(log)
        return current
    server = settings[name]
    if server.url_overridden and not server.is_local:
        return current  # someone else's server: nothing we can start
    if docker.engine_available() and docker.compose_command() and docker.compose_file(settings).exists():
        log(f"starting {name} with Docker Compose")
        result = docker.start(settings, name)
        if result.returncode == 0:
            (settings.services_dir / name).mkdir(parents=True, exist_ok=True)
            (settings.services_dir / name / "mode").write_text("docker\n")
            status = service_status(name, settings)
            status.started = status.up
            return status
        log(f"docker compose could not start {name}: {result.stderr.strip()[-500:]}; trying natively")
    errors = []
    for candidate in native.candidates(name, settings):
        if not candidate.available():
            errors.append(f"{type(candidate).__name__}: not installed ({candidate.install_hint()})")
            continue
        try:
            candidate.start(log)
        except (native.StartError, OSError, subprocess.SubprocessError) as exc:
            errors.append(f"{type(candidate).__name__}: {exc}")
            candidate.stop(log)
            continue
        status = service_status(name, settings)
        status.started = status.up
        return status
    final = service_status(name, settings)
    final.detail = "; ".join(errors) or final.detail
    if errors and all("not installed" in e for e in errors):
        final.fix = native.candidates(name, settings)[0].install_hint()
    return final


def up(names: Iterable[str] | None = None, *, install: bool = False, settings: Settings | None = None,
       log: Log = print) -> list[ServiceStatus]:
    """Make every named server answer (see the module docstring for how)."""
    settings = settings or get_settings()
    names = _names(names)
    with _lock(settings):
        if install:
            install_packages(names, settings, log)
        return [up_one(name, settings, log) for name in names]


def down(names: Iterable[str] | None = None, *, settings: Settings | None = None, log: Log = print) -> list[str]:
    """Stop the servers the course started (native, stand-in or docker); returns their names."""
    settings = settings or get_settings()
    stopped = []
    with _lock(settings):
        for name in _names(names):
            mode = _recorded_mode(settings, name)
            if mode == "docker" and docker.engine_available():
                docker.stop(settings, name)
                stopped.append(name)
            else:
                for server in native.candidates(name, settings):
                    if server.stop(log):
                        stopped.append(name)
            (settings.services_dir / name / "mode").unlink(missing_ok=True)
    return stopped


COLUMNS = ("service", "how it runs", "url", "version", "state", "fix")


def rows(statuses: list[ServiceStatus]) -> list[tuple[str, ...]]:
    return [(s.display_name, s.mode, s.url, s.version or "-", "up" if s.up else "DOWN", s.fix or "")
            for s in statuses]


def format_table(statuses: list[ServiceStatus]) -> str:
    table = [COLUMNS, *rows(statuses)]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in table:
        cells = [row[i].ljust(widths[i]) for i in range(len(COLUMNS) - 1)]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    for s in statuses:
        if not s.up and s.detail:
            lines.append(f"  {s.display_name}: {s.detail}")
    return "\n".join(lines)
