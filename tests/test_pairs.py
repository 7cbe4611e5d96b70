"""Every notebook is a Jupytext pair (.py percent + .ipynb) and the two are in sync.

The .py is the source. The check is the one CI's documentation gives:
`jupytext --to ipynb --update` must leave the committed .ipynb unchanged. It runs on copies, so
the working tree is never modified.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from jupytext.cli import jupytext as jupytext_cli

ROOT = Path(__file__).resolve().parent.parent
PAIRS = sorted(p for folder in ("notebooks", "solutions") for p in (ROOT / folder).glob("[0-9]*.py"))


def test_there_are_notebooks():
    assert PAIRS, "no notebooks found"


@pytest.mark.parametrize("folder", ["notebooks", "solutions"])
def test_every_file_has_its_pair(folder):
    base = ROOT / folder
    ipynbs = {p.stem for p in base.glob("*.ipynb")}
    pys = {p.stem for p in base.glob("[0-9]*.py")}
    assert ipynbs == pys, f"unpaired in {folder}/: {sorted(ipynbs ^ pys)}"


def test_every_solution_has_a_learner_version():
    solutions = {p.stem for p in (ROOT / "solutions").glob("*.ipynb")}
    learners = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert solutions == learners


@pytest.mark.parametrize("py", PAIRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pair_is_in_sync(py, tmp_path):
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    shutil.copy(py, tmp_path / py.name)
    committed = py.with_suffix(".ipynb")
    shutil.copy(committed, tmp_path / committed.name)
    jupytext_cli(["--to", "ipynb", "--update", "--quiet", str(tmp_path / py.name)])
    regenerated = (tmp_path / committed.name).read_text(encoding="utf-8")
    assert regenerated == committed.read_text(encoding="utf-8"), (
        f"{committed.relative_to(ROOT)} is out of sync with its .py: run `dbcourse build --no-run` "
        "(or `jupytext --to ipynb --update` on the .py) and commit both files")
