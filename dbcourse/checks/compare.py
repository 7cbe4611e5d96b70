"""Compare a learner's result with the expected one, and say precisely what differs.

Results are compared, never the text of a query, so any correct answer passes: column names
(case-insensitive), values (floats and decimals within a tolerance), and row order only when
the exercise asks for an order.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Sequence

from .core import ExerciseFailed, fail


@dataclass
class Rows:
    """A query result: column names and rows (tuples)."""

    columns: list[str]
    rows: list[tuple]

    def __len__(self) -> int:
        return len(self.rows)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def fetch_rows(source: Any, columns: Sequence[str] | None = None) -> Rows:
    """Build :class:`Rows` from a cursor, a SQLAlchemy result, a DataFrame, dicts or tuples."""
    if isinstance(source, Rows):
        return source
    if type(source).__module__.startswith("pandas"):  # import pandas only for a DataFrame (slow import)
        import pandas as pd

        if isinstance(source, pd.DataFrame):
            frame = source.reset_index(drop=True) if isinstance(source.index, pd.RangeIndex) else source.reset_index()
            return Rows([str(c) for c in frame.columns],
                        [tuple(None if _isnan(v) else v for v in row) for row in frame.itertuples(index=False)])
    if hasattr(source, "keys") and hasattr(source, "fetchall") and callable(source.keys):  # SQLAlchemy Result
        cols = list(source.keys())
        return Rows(cols, [tuple(r) for r in source.fetchall()])
    if hasattr(source, "description") and hasattr(source, "fetchall"):  # DB-API cursor
        cols = [d[0] for d in source.description or []]
        return Rows(cols, [_as_tuple(r, cols) for r in source.fetchall()])
    items = list(source)
    if items and isinstance(items[0], dict):
        cols = list(columns or items[0].keys())
        return Rows(cols, [tuple(item.get(c) for c in cols) for item in items])
    if items and hasattr(items[0], "keys") and not isinstance(items[0], tuple):  # sqlite3.Row
        cols = list(columns or items[0].keys())
        return Rows(cols, [tuple(item) for item in items])
    return Rows(list(columns or []), [tuple(item) if isinstance(item, (tuple, list)) else (item,) for item in items])


def _as_tuple(row: Any, cols: list[str]) -> tuple:
    if isinstance(row, dict):
        return tuple(row[c] for c in cols)
    return tuple(row)


def _isnan(value: Any) -> bool:
    try:
        return value is not None and not isinstance(value, (str, bytes)) and bool(value != value)
    except (TypeError, ValueError):
        return False


def run_sql(conn: Any, sql: str, params: Any = None, *, what: str = "Your query") -> Rows:
    """Run ``sql`` (a learner's answer) and return its rows; a database error becomes feedback."""
    if not isinstance(sql, str) or not sql.strip():
        fail(f"{what} is empty: write a SQL statement as a string.", hint='for example: sql = """SELECT ..."""')
    try:
        if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy Connection
            import sqlalchemy

            result = conn.execute(sqlalchemy.text(sql), params or {})
            return fetch_rows(result)
        cursor = conn.cursor()
        try:
            cursor.execute(sql, params) if params is not None else cursor.execute(sql)
            if cursor.description is None:
                fail(f"{what} returned no rows at all (is it a SELECT?).")
            return fetch_rows(cursor)
        finally:
            cursor.close()
    except ExerciseFailed:
        raise
    except Exception as exc:  # the database rejected the query: tell the learner why
        rollback = getattr(conn, "rollback", None)
        if rollback:
            try:
                rollback()
            except Exception:
                pass
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        fail(f"{what} failed in the database: {type(getattr(exc, 'orig', None) or exc).__name__}: "
             f"{message[0] if message else ''}",
             hint="run the query on its own to see the full error; check the table and column names.")


def normalize(value: Any) -> Any:
    """Make values of different drivers comparable (Decimal vs float, memoryview vs bytes...)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, memoryview):
        return bytes(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            return normalize(value.item())
        except (TypeError, ValueError):
            return value
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return value.to_pydatetime()
    return value


def values_equal(a: Any, b: Any, tol: float = 1e-6) -> bool:
    a, b = normalize(a), normalize(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime) and (a.tzinfo is None) != (b.tzinfo is None):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return a == b


def rows_equal(a: tuple, b: tuple, tol: float) -> bool:
    return len(a) == len(b) and all(values_equal(x, y, tol) for x, y in zip(a, b))


def _fmt(row: tuple) -> str:
    return "(" + ", ".join(repr(normalize(v)) for v in row) + ")"


def _sort_key(row: tuple):
    out = []
    for v in row:
        v = normalize(v)
        if isinstance(v, float):
            v = round(v, 6)
        out.append((v is None, type(v).__name__, v if v is not None else 0))
    return out


def compare_rows(got: Any, expected: Any, *, ordered: bool = False, check_columns: bool = True,
                 tol: float = 1e-6, what: str = "Your result", order_hint: str | None = None) -> None:
    """Fail with a precise message unless ``got`` has the expected columns and rows."""
    got, expected = fetch_rows(got), fetch_rows(expected)
    if check_columns and expected.columns:
        got_cols = [c.lower() for c in got.columns]
        exp_cols = [c.lower() for c in expected.columns]
        if got_cols != exp_cols:
            if sorted(got_cols) == sorted(exp_cols):
                fail(f"{what} has the right columns in the wrong order: {got.columns}; expected {expected.columns}.",
                     hint="list the columns in the SELECT in the order the exercise gives.")
            missing = [c for c in expected.columns if c.lower() not in got_cols]
            extra = [c for c in got.columns if c.lower() not in exp_cols]
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing}")
            if extra:
                parts.append(f"unexpected column(s) {extra}")
            fail(f"{what} has columns {got.columns}; expected {expected.columns} ({'; '.join(parts)}).",
                 hint="name each column as the exercise asks (use AS to rename one).")
    if len(got.rows) != len(expected.rows):
        fail(f"{what} has {len(got.rows)} row(s); expected {len(expected.rows)}.",
             hint="check your WHERE/HAVING conditions, your JOIN type and your LIMIT.")
    widths = {len(r) for r in got.rows} | {len(r) for r in expected.rows}
    if len(widths) > 1:
        fail(f"{what} has rows with {sorted({len(r) for r in got.rows})} value(s); expected "
             f"{len(expected.rows[0]) if expected.rows else 0}.")
    got_sorted = sorted(got.rows, key=_sort_key)
    exp_sorted = sorted(expected.rows, key=_sort_key)
    same_set = all(rows_equal(a, b, tol) for a, b in zip(got_sorted, exp_sorted))
    if not same_set:
        extra = [r for r in got_sorted if not any(rows_equal(r, e, tol) for e in exp_sorted)]
        missing = [e for e in exp_sorted if not any(rows_equal(r, e, tol) for r in got_sorted)]
        details = []
        if missing:
            details.append("expected but missing: " + ", ".join(_fmt(r) for r in missing[:3])
                           + (f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""))
        if extra:
            details.append("not expected: " + ", ".join(_fmt(r) for r in extra[:3])
                           + (f" (and {len(extra) - 3} more)" if len(extra) > 3 else ""))
        if not details:
            details.append("some rows appear a different number of times than expected (duplicates?)")
        fail(f"{what} has the right number of rows, but some values differ. " + "; ".join(details) + ".",
             hint="compare one of the rows above with what the exercise asks; watch NULLs, rounding and filters.")
    if ordered:
        for index, (a, b) in enumerate(zip(got.rows, expected.rows), start=1):
            if not rows_equal(a, b, tol):
                fail(f"{what} has the right rows but not in the order asked: row {index} is {_fmt(a)}, "
                     f"expected {_fmt(b)}.", hint=order_hint or "check your ORDER BY (columns and direction).")


def compare_value(got: Any, expected: Any, *, name: str = "your answer", tol: float = 1e-6,
                  hint: str | None = None) -> None:
    """Fail unless ``got`` equals ``expected`` (numbers within ``tol``)."""
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        if len(got) != len(expected) or not all(values_equal(a, b, tol) for a, b in zip(got, expected)):
            fail(f"{name} is {list(got)!r}; expected {list(expected)!r}.", hint)
        return
    if not values_equal(got, expected, tol):
        fail(f"{name} is {normalize(got)!r}; expected {normalize(expected)!r}.", hint)


def compare_sets(got: Iterable[Any], expected: Iterable[Any], *, name: str = "your answer",
                 hint: str | None = None) -> None:
    got_set, exp_set = set(got), set(expected)
    if got_set != exp_set:
        missing, extra = sorted(exp_set - got_set, key=str), sorted(got_set - exp_set, key=str)
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if extra:
            parts.append(f"not expected {extra[:5]}")
        fail(f"{name} differs: " + "; ".join(parts) + ".", hint)
