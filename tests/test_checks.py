"""The exercise mechanism: comparisons, feedback messages, and how failures look in a kernel."""

from __future__ import annotations

import re
from decimal import Decimal

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from dbcourse.checks import ExerciseFailed, NotAnswered, compare_rows, compare_value, fetch_rows, run_sql
from dbcourse.checks.core import Chapter
from dbcourse.connect import connect_sqlite

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def message(exc_info) -> str:
    return str(exc_info.value)


def test_equal_results_pass_whatever_the_row_order_and_number_types():
    got = fetch_rows([{"name": "b", "total": Decimal("2.50")}, {"name": "a", "total": 1}])
    expected = fetch_rows([("a", 1.0), ("b", 2.5)], columns=["NAME", "total"])
    compare_rows(got, expected)  # unordered, case-insensitive names, Decimal == float


@pytest.mark.parametrize("got, kwargs, pattern", [
    ([("a", 1)], dict(columns=["name", "n"]), r"has columns \['name', 'n'\]; expected \['name', 'total'\] "
                                              r"\(missing column\(s\) \['total'\]; unexpected column\(s\) \['n'\]\)"),
    ([(1, "a")], dict(columns=["total", "name"]), "right columns in the wrong order"),
    ([("a", 1), ("b", 2), ("c", 3)], dict(columns=["name", "total"]), r"3 row\(s\); expected 2"),
    ([("a", 1), ("b", 3)], dict(columns=["name", "total"]), r"expected but missing: \('b', 2\).*not expected: \('b', 3\)"),
])
def test_wrong_results_say_what_differs(got, kwargs, pattern):
    expected = fetch_rows([("a", 1), ("b", 2)], columns=["name", "total"])
    with pytest.raises(ExerciseFailed) as info:
        compare_rows(fetch_rows(got, **kwargs), expected)
    assert re.search(pattern, message(info)), message(info)


def test_order_is_checked_only_when_asked():
    expected = fetch_rows([("a", 1), ("b", 2)], columns=["name", "total"])
    got = fetch_rows([("b", 2), ("a", 1)], columns=["name", "total"])
    compare_rows(got, expected)
    with pytest.raises(ExerciseFailed, match=r"not in the order asked: row 1 is \('b', 2\)"):
        compare_rows(got, expected, ordered=True)


def test_floats_within_tolerance_and_dataframes():
    frame = pd.DataFrame({"avg": [0.1 + 0.2]})
    compare_rows(frame, fetch_rows([(0.3,)], columns=["avg"]))
    with pytest.raises(ExerciseFailed):
        compare_rows(frame, fetch_rows([(0.31,)], columns=["avg"]))
    compare_value(0.30000001, 0.3, tol=1e-6)


def test_run_sql_turns_a_database_error_into_feedback():
    conn = connect_sqlite()
    conn.execute("CREATE TABLE t (x int)")
    rows = run_sql(conn, "SELECT x FROM t")
    assert rows.columns == ["x"] and rows.rows == []
    with pytest.raises(ExerciseFailed, match="failed in the database: OperationalError: no such column: y"):
        run_sql(conn, "SELECT y FROM t")
    with pytest.raises(ExerciseFailed, match="is empty"):
        run_sql(conn, "   ")


def test_exercise_records_status_and_wraps_crashes(capsys):
    chapter = Chapter("T", "test")

    @chapter.exercise("T.1", "Double it", answer="double")
    def double(func, *, hidden=False):
        compare_value(func(2), 4, name="double(2)")
        if hidden:
            compare_value(func(-3), -6, name="double(-3)")

    double(lambda x: x * 2)
    assert "✅ Exercise T.1 passed: Double it" in capsys.readouterr().out
    assert double.status == "passed"

    with pytest.raises(ExerciseFailed) as info:
        double(lambda x: abs(x) * 2, hidden=True)
    assert info.value.exercise is double and double.status == "not yet"
    assert "double(-3) is 6; expected -6" in message(info)

    def not_done(x):
        raise NotImplementedError
    with pytest.raises(NotAnswered, match="not answered yet"):
        double(not_done)

    with pytest.raises(ExerciseFailed, match="Your answer raised ZeroDivisionError"):
        double(lambda x: x / 0)

    progress = chapter.progress()
    assert progress.summary() == "Chapter T: 0 of 1 exercises pass."
    assert "❌ not yet" in repr(progress) and "<table>" in progress._repr_html_()


def test_failure_renders_as_a_message_not_a_traceback():
    chapter = Chapter("T", "test")

    @chapter.exercise("T.2", "Answer", answer="answer")
    def check(value, *, hidden=False):
        compare_value(value, 42, name="answer", hint="six times seven")

    with pytest.raises(ExerciseFailed) as info:
        check(41)
    text = ANSI.sub("", "\n".join(info.value._render_traceback_()))
    assert text.splitlines()[0] == "❌ Exercise T.2 (Answer): not yet"
    assert "answer is 41; expected 42." in text and "Hint: six times seven" in text
    assert "Traceback" not in text


def run_cells(*sources: str) -> list[dict]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=60).execute()
    return [cell.outputs for cell in nb.cells]


def test_in_a_kernel_failures_are_friendly_and_still_errors():
    outputs = run_cells(
        "from dbcourse.checks import ch00 as check",
        "check.acid(acid)",  # answer never defined
        '# YOUR ANSWER HERE\nraise NotImplementedError("Exercise not answered yet")',
        "check.acid({'atomicity': 'A', 'consistency': 'C', 'isolation': 'D', 'durability': 'B'})",
        "undefined_name_xyz",  # an ordinary mistake keeps its ordinary traceback
        "check.acid({'atomicity': 'B', 'consistency': 'C', 'isolation': 'D', 'durability': 'A'})",
    )
    def error(cell_outputs):
        [err] = [o for o in cell_outputs if o["output_type"] == "error"]
        return err["ename"], ANSI.sub("", "\n".join(err["traceback"]))

    assert outputs[0] == []
    ename, text = error(outputs[1])
    assert ename == "NameError" and "Exercise 00.1 (ACID in your own words) is not answered yet" in text
    assert "Traceback" not in text
    ename, text = error(outputs[2])
    assert ename == "NotImplementedError" and "not answered yet" in text and "Traceback" not in text
    ename, text = error(outputs[3])
    assert ename == "ExerciseFailed" and "2 of 4 matches are wrong" in text and "Traceback" not in text
    ename, text = error(outputs[4])
    assert ename == "NameError" and "Traceback" in text
    assert [o["text"] for o in outputs[5]] == ["✅ Exercise 00.1 passed: ACID in your own words\n"]
