"""How failures look in a notebook: short, friendly, and still a failing cell.

* :class:`~dbcourse.checks.core.ExerciseFailed` renders itself (``_render_traceback_``).
* A ``NameError`` for an answer the learner has not defined yet, and the
  ``NotImplementedError`` of an answer placeholder, are shown as "not answered yet" with what
  to do, instead of a traceback. The cell's output is still an ``error``, so graders and
  notebook tests see the failure.
"""

from __future__ import annotations

import textwrap

RED, GREEN, BOLD, DIM, RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[2m", "\x1b[0m"


def _wrap(text: str, indent: str = "") -> list[str]:
    out = []
    for paragraph in text.split("\n"):
        out.extend(textwrap.wrap(paragraph, width=100, initial_indent=indent, subsequent_indent=indent) or [""])
    return out


def render_failure(exc) -> list[str]:
    exercise = getattr(exc, "exercise", None)
    title = f"❌ Exercise {exercise.number} ({exercise.title}): not yet" if exercise else "❌ Not yet"
    lines = [f"{RED}{BOLD}{title}{RESET}"]
    lines += _wrap(exc.message)
    if exc.hint:
        lines += _wrap(f"Hint: {exc.hint}")
    return ["\n".join(lines)]


def _not_answered_lines(what: str, todo: str) -> list[str]:
    return ["\n".join([f"{RED}{BOLD}✋ {what}{RESET}", *_wrap(todo)])]


def _handler(shell, etype, value, tb, tb_offset=None):
    """IPython custom exception handler: show a friendly message or the usual traceback.

    IPython ignores what a custom handler returns, so the handler displays the result itself;
    ``_showtraceback`` publishes an ``error`` output, exactly as a normal exception does.
    """
    stb = _friendly_lines(etype, value, tb)
    if stb is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    else:
        shell._showtraceback(etype, value, stb)
    return None


def _friendly_lines(etype, value, tb) -> list[str] | None:
    from .core import exercise_for_answer

    if issubclass(etype, NameError):
        name = getattr(value, "name", None)
        exercise = exercise_for_answer(name) if name else None
        if exercise is not None:
            return _not_answered_lines(
                f"Exercise {exercise.number} ({exercise.title}) is not answered yet",
                f"`{name}` is not defined: write your answer in the exercise's answer cell (it must define "
                f"`{name}`), run that cell, then run this check again.")
    if issubclass(etype, NotImplementedError) and _raised_in_cell(tb):
        return _not_answered_lines(
            "This exercise is not answered yet",
            "Replace the two placeholder lines (`# YOUR ANSWER HERE` and `raise NotImplementedError(...)`) "
            "with your answer, then run the cell again.")
    return None


def _raised_in_cell(tb) -> bool:
    """True when the exception was raised directly by notebook code, not inside a library."""
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    filename = last.tb_frame.f_code.co_filename
    return filename.startswith("<ipython-input") or "/ipykernel_" in filename


def install_friendly_errors() -> bool:
    """Register the friendly rendering in the running IPython shell (no-op outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if getattr(shell, "_dbcourse_friendly", False):
        return True
    shell.set_custom_exc((NameError, NotImplementedError), _handler)
    shell._dbcourse_friendly = True
    return True
