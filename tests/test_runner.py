"""`dbcourse run`: papermill parameters, every notebook run, an HTML summary, bad input refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest

from dbcourse import runner
from dbcourse.errors import BadParameter

from .conftest import free_port


def tiny_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('namespace = None\nscale = "small"\npostgres_url = None')
    parameters.metadata["tags"] = ["parameters"]
    setup = nbformat.v4.new_code_cell(
        "import dbcourse\n"
        'course = dbcourse.setup("runner-test", services=["sqlite", "postgres"], namespace=namespace, '
        "scale=scale, urls={'postgres': postgres_url}, quiet=True)")
    nb.cells = [parameters, setup, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("parameters, message", [
    ({"colour": "blue"}, "has no parameter 'colour': it takes namespace, postgres_url, scale"),
    ({"scale": "huge"}, "scale='huge' is not a data scale"),
])
def test_bad_parameters_are_refused_before_anything_runs(tmp_path, parameters, message):
    nb = tiny_notebook(tmp_path / "good.ipynb", "print('ran')")
    with pytest.raises(BadParameter, match=message):
        runner.run([str(nb)], tmp_path / "out", parameters)
    assert not (tmp_path / "out").exists()


def test_an_unreachable_url_names_the_parameter(tmp_path):
    nb = tiny_notebook(tmp_path / "good.ipynb", "print('ran')")
    url = f"postgresql://course:course@127.0.0.1:{free_port()}/course"
    with pytest.raises(BadParameter, match=r"postgres_url: no PostgreSQL server answers"):
        runner.run([str(nb)], tmp_path / "out", {"postgres_url": url})


def test_a_failed_notebook_does_not_stop_the_others(tmp_path):
    broken = tiny_notebook(tmp_path / "broken.ipynb", "1 / 0")
    good = tiny_notebook(tmp_path / "good.ipynb", "print(course.namespace)")
    out = tmp_path / "out"
    result = subprocess.run(["dbcourse", "run", str(broken), str(good), "--out", str(out),
                             "-p", "scale", "small"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    index = (out / "index.html").read_text()
    assert "1 of 2 passed" in index and "ZeroDivisionError" in index
    assert (out / "good_scale-small.html").exists() and (out / "broken_scale-small.html").exists()
    executed = nbformat.read(out / "good_scale-small.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert executed.cells[-1].outputs[0]["text"] == "dbc_run_good_small\n"  # its own namespace


def test_the_start_here_chapter_runs_with_papermill(tmp_path):
    [result] = runner.run(["00_start_here"], tmp_path, {"scale": "small"})
    assert result.ok, result.error
    assert result.html.exists() and "Start here" in result.html.read_text()


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_the_sqlalchemy_chapter_runs_unchanged_on_every_backend(tmp_path, backend):
    """The chapter's claim: the same models and code, only the URL changes (via one parameter)."""
    [result] = runner.run(["04a_sqlalchemy"], tmp_path, {"backend": backend})
    assert result.ok, result.error
    executed = nbformat.read(result.output, as_version=4)
    progress = [o for c in executed.cells if "check.progress()" in c.source for o in c.outputs]
    assert progress and "10 of 10 exercises pass" in str(progress[0])


def test_a_bad_backend_is_refused(tmp_path):
    with pytest.raises(BadParameter, match="backend='oracle'"):
        runner.run(["04a_sqlalchemy"], tmp_path, {"backend": "oracle"})
