"""Grading real (fake) submissions of chapter 00 with nbgrader, against the live databases.

Each submission starts from the learner notebook, as a learner's would, with answers filled in
from the solution (or deliberately wrong, missing, crashing, looping, tampered with...).
Scores are asserted exactly: 00.1-00.5 and 00.7 are worth 1 point, 00.6 and 00.8 worth 2.
"""

from __future__ import annotations

import copy
import csv
import hashlib
from pathlib import Path

import nbformat
import pytest

from dbcourse import grading, namespaces
from dbcourse.release import CODE_STUB

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "00_start_here"
FULL = 10
CELL_TIMEOUT = 15


def load(folder: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / folder / f"{NOTEBOOK}.ipynb", as_version=4)


SOLUTION_ANSWERS = {c.metadata["nbgrader"]["grade_id"]: c.source for c in load("solutions").cells
                    if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def cell(nb, grade_id):
    [found] = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    return found


def submission(answers: dict[str, str] | None = None, *, solved: bool = True) -> nbformat.NotebookNode:
    """The learner notebook with every exercise answered from the solution (or not), then
    ``answers`` (grade id -> source) applied on top."""
    nb = copy.deepcopy(load("notebooks"))
    for grade_id, source in SOLUTION_ANSWERS.items():
        if solved:
            cell(nb, grade_id).source = source.replace("### BEGIN SOLUTION\n", "").replace("\n### END SOLUTION", "")
    for grade_id, source in (answers or {}).items():
        cell(nb, grade_id).source = source
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")

    def put(path: str, nb: nbformat.NotebookNode) -> None:
        target = subs / path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)

    put(f"alice/{NOTEBOOK}.ipynb", submission())
    put(f"bob/{NOTEBOOK}.ipynb", submission({  # two right, one wrong, the rest untouched
        "ex00-1-answer": SOLUTION_ANSWERS["ex00-1-answer"],
        "ex00-2-answer": SOLUTION_ANSWERS["ex00-2-answer"],
        "ex00-3-answer": 'choices_a = {"shop orders and payments": "document", "page cache that expires": '
                         '"key-value", "catalogue with per-category attributes": "document", '
                         '"mobile app offline data": "embedded relational"}',
    }, solved=False))
    crashing = submission({"ex00-6-answer": 'raise RuntimeError("I give up")\n' + SOLUTION_ANSWERS["ex00-6-answer"]})
    crashing.cells.insert(1, nbformat.v4.new_code_cell("import a_module_that_does_not_exist"))
    put(f"carol/{NOTEBOOK}.ipynb", crashing)
    put(f"dave/{NOTEBOOK}.ipynb", submission({"ex00-2-answer": "while True:\n    pass"}))
    tampered = submission({"ex00-1-answer": 'acid = {"atomicity": "A", "consistency": "B", "isolation": "C", '
                                            '"durability": "D"}',
                           "ex00-3-answer": 'choices_a = {}'})
    cell(tampered, "ex00-1-check").source = "pass  # nothing to see here"
    tampered.cells.remove(cell(tampered, "ex00-3-check"))
    put(f"erin/{NOTEBOOK}.ipynb", tampered)
    (subs / "frank.ipynb").write_bytes(b"")
    (subs / "gina").mkdir()
    (subs / "gina" / "answers.txt").write_text("I did it on paper")
    put("hank/my_work.ipynb", submission())
    (subs / "ivan.ipynb").write_text('{"cells": [}')

    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.rglob("*") if p.is_file()}
    out = tmp_path_factory.mktemp("grades")
    lines: list[str] = []
    # 15 s per cell: the check of 00.8 waits twice for a server that never answers (3 s each), and
    # dave's endless loop is stopped after that long.
    result = grading.grade(NOTEBOOK, subs, out, timeout=CELL_TIMEOUT, keep_namespaces=True, log=lines.append)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.rglob("*") if p.is_file()}
    return {s.student: s for s in result}, out, "\n".join(lines), before, after


EXPECTED = {
    "alice": (FULL, ""),
    "bob": (2, ""),
    "carol": (FULL - 2, ""),
    "dave": (FULL - 1, f"a cell ran longer than {CELL_TIMEOUT} s and was stopped"),
    "erin": (FULL - 2, "test cell(s) deleted and restored: ex00-3-check; "
                       "test cell(s) edited, the originals were used: ex00-1-check"),
    "frank": (0, "the file is empty"),
    "gina": (0, "no notebook submitted (found: answers.txt)"),
    "hank": (FULL, "graded my_work.ipynb (renamed from 00_start_here.ipynb)"),
    "ivan": (0, "not a valid notebook"),
}


@pytest.mark.parametrize("student", list(EXPECTED))
def test_exact_scores_and_notes(graded, student):
    subs, *_ = graded
    score, note = EXPECTED[student]
    assert subs[student].total == score, (student, subs[student].scores, subs[student].note)
    assert subs[student].max_total == FULL
    assert subs[student].note.startswith(note), subs[student].note


def test_partial_marks_are_per_exercise(graded):
    subs, *_ = graded
    assert {k: v[0] for k, v in subs["bob"].scores.items()} == {
        "ex00-1-check": 1, "ex00-2-check": 1, "ex00-3-check": 0, "ex00-4-check": 0,
        "ex00-5-check": 0, "ex00-6-check": 0, "ex00-7-check": 0, "ex00-8-check": 0}
    assert subs["erin"].scores["ex00-1-check"][0] == 0  # the edited test cell did not help


def test_gradebook_csv_and_feedback(graded):
    subs, out, log, *_ = graded
    with open(out / "grades.csv", newline="") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(EXPECTED)
    assert rows["alice"]["score"] == "10" and rows["alice"]["max_score"] == "10"
    assert rows["bob"]["ex00-2-check"] == "1" and rows["bob"]["ex00-3-check"] == "0"
    for student in ("alice", "bob", "carol", "dave", "erin", "hank"):
        html = (out / "feedback" / f"{student}.html").read_text()
        assert "00_start_here" in html and "ex00-1-check" in html
    assert not (out / "feedback" / "frank.html").exists()
    assert "student" in log and "alice" in log and "10/10" in log


def test_submissions_are_never_modified(graded):
    *_, before, after = graded
    assert before == after


def test_each_submission_had_its_own_namespace(graded):
    subs, *_ = graded
    databases = namespaces.list_postgres()
    for student in ("alice", "bob", "hank"):
        assert f"dbc_grade_{student}_00_start_here" in databases
    for student in subs:
        namespaces.reset_all(match=f"dbc_grade_{student}_")
    assert not [d for d in namespaces.list_postgres() if d.startswith("dbc_grade_alice_")]


def test_placeholder_is_what_learners_see():
    learner = load("notebooks")
    assert CODE_STUB in cell(learner, "ex00-1-answer").source


def test_unknown_notebook_is_a_clear_error(tmp_path):
    from dbcourse.errors import BadParameter

    with pytest.raises(BadParameter, match="no solution notebook 99_nothing.ipynb: choose one of 00_start_here"):
        (tmp_path / "subs").mkdir()
        grading.grade("99_nothing", tmp_path / "subs", tmp_path / "out")
