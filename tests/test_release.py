"""Learner notebooks are generated from solutions: placeholders, no hidden tests, no outputs."""

from __future__ import annotations

import nbformat
import pytest

from dbcourse import release


def solution_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    answer = nbformat.v4.new_code_cell("x = 1\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\n")
    answer.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "a",
                                   "schema_version": 3}
    answer.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    answer.execution_count = 3
    check = nbformat.v4.new_code_cell("check(answer)\n### BEGIN HIDDEN TESTS\nassert answer == 42\n"
                                      "### END HIDDEN TESTS")
    check.metadata["nbgrader"] = {"solution": False, "grade": True, "locked": True, "points": 2,
                                  "grade_id": "c", "schema_version": 3}
    plain = nbformat.v4.new_code_cell("print('example')")
    plain.outputs = [nbformat.v4.new_output("stream", text="example\n")]
    nb.cells = [answer, check, plain]
    return nb


def test_learner_version():
    learner = release.learner_version(solution_notebook())
    answer, check, plain = learner.cells
    assert answer.source == "x = 1\n" + release.CODE_STUB + "\n"
    assert "42" not in answer.source
    assert check.source == "check(answer)"
    assert "raises-exception" in answer.metadata["tags"] and "raises-exception" in check.metadata["tags"]
    assert check.metadata["editable"] is False and check.metadata["deletable"] is False
    assert "tags" not in plain.metadata
    assert all(c.outputs == [] and c.execution_count is None for c in learner.cells)
    # nbgrader metadata is kept: it identifies the cells when grading
    assert check.metadata["nbgrader"]["points"] == 2


def test_nbgrader_uses_the_same_placeholder(root):
    config = (root / "nbgrader_config.py").read_text()
    namespace: dict = {"get_config": lambda: _Config()}
    exec(compile(config, "nbgrader_config.py", "exec"), namespace)
    assert namespace["c"].ClearSolutions.code_stub == {"python": release.CODE_STUB}


class _Config:
    def __getattr__(self, name):
        value = _Config()
        object.__setattr__(self, name, value)
        return value


def test_the_committed_learner_notebooks_are_up_to_date():
    assert release.check_release() == []


def test_a_stale_learner_notebook_is_reported(tmp_path, monkeypatch):
    name = release.notebook_names()[0]
    stale = tmp_path / "notebooks"
    stale.mkdir()
    for suffix in (".py", ".ipynb"):
        (stale / f"{name}{suffix}").write_text((release.notebooks_dir() / f"{name}{suffix}").read_text())
    (stale / f"{name}.py").write_text((stale / f"{name}.py").read_text() + "\n# %%\nprint('edited by hand')\n")
    monkeypatch.setattr(release, "notebooks_dir", lambda: stale)
    problems = release.check_release([name])
    assert problems == [f"notebooks/{name}.py is not what solutions/{name}.py generates: run `dbcourse release`"]


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_every_notebook_has_setup_parameters(root, folder):
    for py in sorted((root / folder).glob("[0-9]*.py")):
        nb = release.read_source(py)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{py.name}: exactly one cell should be tagged 'parameters'"
        assert "namespace = None" in tagged[0].source, py.name


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_papermill_reads_every_parameter(root, folder):
    import papermill

    for ipynb in sorted((root / folder).glob("[0-9]*.ipynb")):
        names = set(papermill.inspect_notebook(str(ipynb)))
        expected = {"namespace", "scale", "postgres_url", "mysql_url", "mongodb_url", "redis_url"}
        assert expected <= names, f"{ipynb.name}: papermill sees only {sorted(names)} (one assignment per line)"
