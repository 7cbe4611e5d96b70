"""Start the course's servers with Docker Compose (``docker/compose.yml``) when an engine runs."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from ..config import Settings


@lru_cache(maxsize=1)
def engine_available() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        result = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                text=True, timeout=8)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


@lru_cache(maxsize=1)
def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) or Docker Compose v1 (``docker-compose``)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def compose_file(settings: Settings) -> Path:
    return settings.root / "docker" / "compose.yml"


def compose(settings: Settings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    command = compose_command()
    if command is None:
        raise RuntimeError("Docker Compose is not installed (neither `docker compose` nor `docker-compose`)")
    # Paths in the compose file are relative to docker/ (its own folder); the .env file is the
    # course's, at the root of the repository.
    full = [*command, "-f", str(compose_file(settings)), "-p", "dbcourse"]
    env_file = settings.root / ".env"
    if env_file.exists():
        full += ["--env-file", str(env_file)]
    return subprocess.run([*full, *args], capture_output=True, text=True, timeout=timeout)


def start(settings: Settings, name: str) -> subprocess.CompletedProcess:
    """Start one service of the compose file and wait for its healthcheck."""
    return compose(settings, "up", "-d", "--wait", name)


def stop(settings: Settings, name: str) -> subprocess.CompletedProcess:
    return compose(settings, "stop", name)


def running(settings: Settings, name: str) -> bool:
    if not engine_available() or compose_command() is None:
        return False
    result = compose(settings, "ps", "--status", "running", "--services", timeout=30)
    return result.returncode == 0 and name in result.stdout.split()
