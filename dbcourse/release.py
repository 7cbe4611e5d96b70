"""Build the notebooks: ``solutions/`` is the source, ``notebooks/`` is generated from it.

* :func:`build_solution` refreshes ``solutions/X.ipynb`` from ``solutions/X.py`` (the file you
  edit) and, by default, executes it so that its stored outputs are the ones nbval compares.
* :func:`learner_version` turns a solution into the learner's notebook with nbgrader's own
  preprocessors: each ``### BEGIN SOLUTION`` region becomes the placeholder :data:`CODE_STUB`,
  hidden tests are removed, outputs are cleared, answer and check cells are tagged
  ``raises-exception`` (an unanswered exercise fails on purpose) and check cells are locked.
* :func:`check_release` reports every learner notebook that differs from what the solutions
  generate (CI runs it through ``dbcourse release --check``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jupytext
import nbformat

from .config import get_settings

#: What replaces a solution in the learner's version. nbgrader_config.py uses the same text,
#: so `nbgrader generate_assignment` produces the same notebooks as `dbcourse release`.
CODE_STUB = '# YOUR ANSWER HERE (replace this comment and the line below with your answer)\n' \
            'raise NotImplementedError("Exercise not answered yet")'
TEXT_STUB = "YOUR ANSWER HERE"


def solutions_dir() -> Path:
    return get_settings().root / "solutions"


def notebooks_dir() -> Path:
    return get_settings().root / "notebooks"


def notebook_names(folder: Path | None = None) -> list[str]:
    """Names (without extension) of the paired notebooks in a folder, in course order."""
    folder = folder or solutions_dir()
    return sorted(p.stem for p in folder.glob("[0-9]*.py"))


def read_source(py_path: Path) -> nbformat.NotebookNode:
    return jupytext.read(py_path, fmt="py:percent")


def _with_outputs_from(source: nbformat.NotebookNode, ipynb_path: Path) -> nbformat.NotebookNode:
    """The inputs of ``source`` with the outputs (and cell ids) of an existing .ipynb."""
    if not ipynb_path.exists():
        return source
    from jupytext.combine import combine_inputs_with_outputs

    existing = nbformat.read(ipynb_path, as_version=4)
    return combine_inputs_with_outputs(copy.deepcopy(source), existing, fmt="py:percent")


def write_ipynb(nb: nbformat.NotebookNode, path: Path) -> None:
    text = nbformat.writes(nb, version=4)
    if not text.endswith("\n"):
        text += "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def write_py(nb: nbformat.NotebookNode, path: Path) -> None:
    text = jupytext.writes(nb, fmt="py:percent")
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def sync_ipynb(py_path: Path) -> None:
    """Refresh the .ipynb of a pair from its .py exactly as CI's pair check does
    (``jupytext --to ipynb --update``: inputs from the .py; outputs and cell ids kept)."""
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--to", "ipynb", "--update", "--quiet", str(py_path)])


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel of the current environment."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
                            record_timing=False, allow_errors=False)
    client.execute()
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    return nb


def build_solution(name: str, *, run: bool = True) -> Path:
    """Refresh ``solutions/<name>.ipynb`` from its .py (and execute it unless ``run=False``)."""
    folder = solutions_dir()
    py_path, ipynb_path = folder / f"{name}.py", folder / f"{name}.ipynb"
    nb = _with_outputs_from(read_source(py_path), ipynb_path)
    if run:
        env_backup = dict(os.environ)
        os.environ.setdefault("IPYTHONDIR", str(get_settings().root / "tests" / "ipython"))
        try:
            nb = execute(nb, folder)
        finally:
            os.environ.clear()
            os.environ.update(env_backup)
    write_ipynb(nb, ipynb_path)
    sync_ipynb(py_path)
    return ipynb_path


def learner_version(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The learner's notebook generated from a solution notebook (see the module docstring)."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions

    nb = copy.deepcopy(solution)
    resources: dict = {}
    nb, resources = ClearSolutions(code_stub={"python": CODE_STUB}, text_stub=TEXT_STUB).preprocess(nb, resources)
    nb, resources = ClearHiddenTests().preprocess(nb, resources)
    nb, resources = ClearOutput().preprocess(nb, resources)
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        grader = meta.get("nbgrader", {})
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = []
            meta.pop("execution", None)
        if cell.cell_type == "code" and (grader.get("solution") or grader.get("grade")):
            tags = meta.setdefault("tags", [])
            if "raises-exception" not in tags:
                tags.append("raises-exception")
        if grader.get("grade") and not grader.get("solution"):
            meta["deletable"] = False
            meta["editable"] = False
    nb.metadata.pop("language_info", None)
    nb.metadata.pop("widgets", None)
    return nb


def release(name: str) -> tuple[Path, Path]:
    """Write ``notebooks/<name>.ipynb`` and ``.py`` from ``solutions/<name>.py``."""
    learner = learner_version(_solution_with_ids(name))
    out = notebooks_dir()
    out.mkdir(parents=True, exist_ok=True)
    write_py(learner, out / f"{name}.py")
    write_ipynb(learner, out / f"{name}.ipynb")  # carries the solution's cell ids...
    sync_ipynb(out / f"{name}.py")  # ...then exactly what the pair check expects
    return out / f"{name}.ipynb", out / f"{name}.py"


def _solution_with_ids(name: str) -> nbformat.NotebookNode:
    """The solution's inputs (from its .py) with the cell ids of its .ipynb (stable ids)."""
    folder = solutions_dir()
    source = read_source(folder / f"{name}.py")
    return _with_outputs_from(source, folder / f"{name}.ipynb")


def check_release(names: list[str] | None = None) -> list[str]:
    """Learner notebooks that differ from what ``solutions/`` generates (empty when in step).

    Compares the .py files; the pair check (``jupytext --to ipynb --update`` then
    ``git diff --exit-code``) makes sure each .ipynb matches its .py.
    """
    problems = []
    names = names or notebook_names()
    for name in names:
        expected = jupytext.writes(learner_version(_solution_with_ids(name)), fmt="py:percent")
        path = notebooks_dir() / f"{name}.py"
        if not path.exists():
            problems.append(f"notebooks/{name}.py is missing: run `dbcourse release`")
        elif path.read_text(encoding="utf-8") != expected:
            problems.append(f"notebooks/{name}.py is not what solutions/{name}.py generates: run `dbcourse release`")
        if not (notebooks_dir() / f"{name}.ipynb").exists():
            problems.append(f"notebooks/{name}.ipynb is missing: run `dbcourse release`")
    extra = sorted(set(notebook_names(notebooks_dir())) - set(notebook_names()))
    problems += [f"notebooks/{name}.py has no solution in solutions/" for name in extra]
    return problems
