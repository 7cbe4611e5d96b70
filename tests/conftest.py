"""Shared fixtures. Tests run against the real servers that `make test` starts."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("IPYTHONDIR", str(ROOT / "tests" / "ipython"))
os.environ.setdefault("PLOOMBER_STATS_ENABLED", "false")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def settings():
    from dbcourse.config import get_settings

    return get_settings()


def free_port() -> int:
    """A TCP port on which nothing listens right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unused_port() -> int:
    return free_port()


# --------------------------------------------------------------------------- checks' feedback

def feedback(call, *args, **kwargs) -> str:
    """Run a check that must refuse the answer; return its feedback.

    Anything but the course's friendly ``ExerciseFailed`` (a bare AssertionError, a driver
    traceback) fails the test."""
    from dbcourse.checks import ExerciseFailed

    with pytest.raises(ExerciseFailed) as info:
        call(*args, **kwargs)
    return str(info.value)


def rejects(exercise, *args, pattern: str, hidden: bool = False) -> str:
    """``exercise(*args, hidden=hidden)`` refuses with feedback matching the regex ``pattern``."""
    text = feedback(exercise, *args, hidden=hidden)
    assert re.search(pattern, text, re.S), text
    return text
