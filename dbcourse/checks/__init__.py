"""Exercise checks: the shared mechanism (:mod:`.core`), comparisons (:mod:`.compare`), and
one module per chapter (``ch00``, ``ch01``...) with that chapter's exercises."""

from .compare import compare_rows, compare_value, fetch_rows, run_sql
from .core import Chapter, ExerciseFailed, NotAnswered, expect, fail, not_answered

__all__ = ["Chapter", "ExerciseFailed", "NotAnswered", "expect", "fail", "not_answered", "compare_rows",
           "compare_value", "fetch_rows", "run_sql"]
