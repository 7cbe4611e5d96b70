"""The exercise mechanism: checks that give friendly feedback, and a progress summary.

A chapter's check module declares its exercises with :func:`exercise`::

    @exercise("02.3", "Top customers by revenue", answer="top_customers_sql")
    def top_customers(sql, *, hidden=False):
        expected = ...recomputed from the data...
        compare_rows(run_query(...), expected, ordered=True)

In the notebook the check cell calls ``check.top_customers(top_customers_sql)``. A wrong answer
raises :class:`ExerciseFailed`, which IPython shows as a short message with a hint (never a bare
``AssertionError`` or a driver traceback); the cell still fails, so nbgrader gives no points.
``hidden=True`` is what the hidden tests call: the same check plus extra cases the learner does
not see (other data, edge cases), so that an answer that only fits the visible case fails.
"""

from __future__ import annotations

import functools
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import CourseError, ServiceUnavailable


class ExerciseFailed(CourseError, AssertionError):
    """A wrong (or missing) answer. Shown as a friendly message, never as a traceback."""

    title = "Not yet"

    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint
        self.exercise: Exercise | None = None
        super().__init__(message + (f"\nHint: {hint}" if hint else ""))

    def _render_traceback_(self) -> list[str]:
        from .display import render_failure

        return render_failure(self)


class NotAnswered(ExerciseFailed):
    """The answer is still the placeholder (or the learner's function raised NotImplementedError)."""


@dataclass
class Exercise:
    """One exercise of a chapter: a number, a title and the function that checks answers."""

    number: str
    title: str
    check: Callable[..., Any]
    answer: str | None = None  # name the answer cell defines (for friendlier NameErrors)
    status: str = "not checked"  # not checked | passed | not yet
    last_message: str = field(default="", repr=False)

    def __call__(self, *args: Any, hidden: bool = False, **kwargs: Any) -> None:
        try:
            self.check(*args, hidden=hidden, **kwargs)
        except ExerciseFailed as exc:
            exc.exercise = self
            self._record("not yet", exc.message)
            raise
        except NotImplementedError:
            exc = NotAnswered("This exercise is not answered yet: your answer still raises NotImplementedError.",
                              hint="replace the placeholder lines in the answer cell with your code, run that "
                                   "cell, then run this check again.")
            exc.exercise = self
            self._record("not yet", exc.message)
            raise exc from None
        except ServiceUnavailable:
            raise
        except Exception as error:  # the learner's code crashed inside the check
            exc = ExerciseFailed(_describe_crash(error),
                                 hint="run your answer on its own to see the full error, fix it, then check again.")
            exc.exercise = self
            self._record("not yet", exc.message)
            raise exc from None
        self._record("passed", "")
        if not hidden:
            print(f"✅ Exercise {self.number} passed: {self.title}")

    def _record(self, status: str, message: str) -> None:
        self.status, self.last_message = status, message


def _describe_crash(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    # Where in the learner's code? The innermost frame that belongs to a notebook cell.
    where = ""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename.startswith("<ipython-input") or "/ipykernel_" in frame.filename:
            where = f" (in your code, line {frame.lineno}: {frame.line.strip()!r})" if frame.line else ""
            break
    return f"Your answer raised {type(error).__name__}: {first}{where}"


class Chapter:
    """The exercises of one chapter, in the order the notebook presents them."""

    def __init__(self, number: str, title: str):
        self.number, self.title = number, title
        self.exercises: dict[str, Exercise] = {}

    def exercise(self, number: str, title: str, *, answer: str | None = None):
        """Decorator: register ``check(answer, *, hidden=False)`` as exercise ``number``."""

        def decorate(check: Callable[..., Any]) -> Exercise:
            item = Exercise(number, title, check, answer)
            functools.update_wrapper(item, check)
            self.exercises[number] = item
            _ANSWER_NAMES[answer or f"__exercise_{number}"] = item
            return item

        return decorate

    def progress(self) -> "Progress":
        """A table of this chapter's exercises and which ones pass (in this session)."""
        return Progress(self)


_ANSWER_NAMES: dict[str, Exercise] = {}


def exercise_for_answer(name: str) -> Exercise | None:
    return _ANSWER_NAMES.get(name)


class Progress:
    """Rendered as a table in Jupyter (HTML) and as text elsewhere."""

    SYMBOLS = {"passed": "✅ passed", "not yet": "❌ not yet", "not checked": "⬜ not checked"}

    def __init__(self, chapter: Chapter):
        self.chapter = chapter
        self.rows = [(e.number, e.title, self.SYMBOLS[e.status]) for e in chapter.exercises.values()]

    @property
    def passed(self) -> int:
        return sum(1 for e in self.chapter.exercises.values() if e.status == "passed")

    @property
    def total(self) -> int:
        return len(self.chapter.exercises)

    def summary(self) -> str:
        return f"Chapter {self.chapter.number}: {self.passed} of {self.total} exercises pass."

    def __repr__(self) -> str:
        width = max((len(r[1]) for r in self.rows), default=10)
        lines = [self.summary()]
        lines += [f"  {n:<6} {t:<{width}}  {s}" for n, t, s in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        body = "".join(f"<tr><td>{escape(n)}</td><td style='text-align:left'>{escape(t)}</td><td>{escape(s)}</td></tr>"
                       for n, t, s in self.rows)
        return (f"<p><b>{escape(self.summary())}</b></p><table><thead><tr><th>Exercise</th>"
                f"<th style='text-align:left'>Title</th><th>Status</th></tr></thead><tbody>{body}</tbody></table>")


def expect(condition: bool, message: str, hint: str | None = None) -> None:
    """Fail the exercise with ``message`` (and ``hint``) unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailed(message, hint)


def fail(message: str, hint: str | None = None):
    raise ExerciseFailed(message, hint)


def not_answered(value: Any, name: str) -> None:
    """Fail with a "not answered yet" message when ``value`` is still a placeholder."""
    if value is None or value is Ellipsis or (isinstance(value, str) and not value.strip()):
        raise NotAnswered(f"`{name}` has no answer yet.",
                          hint=f"write your answer in the cell above (assign it to `{name}`), run that cell, "
                               "then run this check again.")


if "IPython" in sys.modules:  # make sure friendly rendering is active as soon as a check module is used
    try:
        from .display import install_friendly_errors

        install_friendly_errors()
    except Exception:  # pragma: no cover - never let display setup break a check
        pass
