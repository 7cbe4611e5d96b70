"""Errors the course shows to learners: one friendly message, no driver traceback.

IPython renders an exception that has a ``_render_traceback_`` method with the lines that
method returns instead of a traceback. The cell still fails (its output is an ``error``), so
nbval, nbclient and nbgrader all see the failure; the learner sees only the message.
"""

from __future__ import annotations

import textwrap


def _box(title: str, body: str) -> list[str]:
    red, bold, reset = "\x1b[31m", "\x1b[1m", "\x1b[0m"
    lines = [f"{red}{bold}{title}{reset}"]
    for paragraph in body.strip().split("\n"):
        lines.extend(textwrap.wrap(paragraph, width=100) or [""])
    return ["\n".join(lines)]


class CourseError(Exception):
    """Base class: a problem the learner can fix, with a message that says how."""

    title = "Problem"

    def _render_traceback_(self) -> list[str]:  # used by IPython instead of a traceback
        return _box(self.title, str(self))


class ServiceUnavailable(CourseError, ConnectionError):
    """A database server cannot be reached (down, wrong URL, wrong password...)."""

    title = "Database not reachable"

    def __init__(self, service: str, url: str, reason: str, fix: str):
        self.service, self.url, self.reason, self.fix = service, url, reason, fix
        how = fix
        if fix.startswith("dbcourse "):
            how = f"run `{fix}` in a terminal (or `!{fix}` in a notebook cell), then run this cell again."
        super().__init__(f"{service} at {url}: {reason}\nHow to fix: {how}")


class BadParameter(CourseError, ValueError):
    """A notebook or command parameter has a value the course cannot use."""

    title = "Bad parameter"


class DatasetError(CourseError, RuntimeError):
    """A data set file is missing, truncated or corrupt, or a load failed (nothing was changed)."""

    title = "Data set problem"
