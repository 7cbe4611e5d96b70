"""Grade a folder of submitted notebooks with nbgrader, against the live databases.

``dbcourse grade 00_start_here submissions/ --out grades/`` does, in a fresh nbgrader course
folder under ``grades/nbgrader/``:

1. ``nbgrader generate_assignment`` from ``solutions/00_start_here.ipynb`` (the source of truth);
2. for each submission, a copy (the submission itself is never modified) and
   ``nbgrader autograde`` in a namespace of its own (``DBCOURSE_NAMESPACE``), with a time limit
   per cell; nbgrader restores edited or deleted test cells from the source;
3. ``nbgrader generate_feedback`` (HTML per learner) and ``nbgrader export`` (CSV);
4. ``grades/grades.csv``: one row per learner with the score of every exercise and a note for
   anything unusual (not a notebook, timed out...), and a summary table on the terminal.

One bad submission never stops the others: empty files, non-notebooks, notebooks that raise or
loop forever are each graded (or given zero) with a note saying why.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .config import get_settings
from .errors import BadParameter
from .namespaces import namespace_name

#: Seconds a whole submission may take before it is stopped (a backstop for the per-cell limit).
SUBMISSION_TIMEOUT = 20 * 60


@dataclass
class Submission:
    student: str
    path: Path | None
    note: str = ""
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # grade_id -> (score, max)
    total: float = 0.0
    max_total: float = 0.0
    graded: bool = False
    feedback: Path | None = None


def student_id(name: str) -> str:
    """A folder or file name turned into an id nbgrader accepts."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    return cleaned or "unnamed"


def find_submissions(folder: Path, notebook: str) -> list[Submission]:
    """Submissions in ``folder``: ``<student>/.../*.ipynb`` folders or ``<student>.ipynb`` files."""
    if not folder.is_dir():
        raise BadParameter(f"submissions folder {folder} does not exist")
    found: dict[str, Submission] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            sid = student_id(entry.name)
            notebooks = sorted(p for p in entry.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            if not notebooks:
                others = [p.name for p in entry.rglob("*") if p.is_file()]
                found[sid] = Submission(sid, None, "no notebook submitted" +
                                        (f" (found: {', '.join(others[:3])})" if others else ""))
                continue
            exact = [p for p in notebooks if p.stem == notebook]
            chosen = exact[0] if exact else notebooks[0]
            note = ""
            if not exact:
                note = f"graded {chosen.name} (renamed from {notebook}.ipynb)"
            if len(notebooks) > 1:
                note = (note + "; " if note else "") + f"{len(notebooks)} notebooks found, graded {chosen.name}"
            found[sid] = Submission(sid, chosen, note)
        else:
            sid = student_id(entry.stem)
            if entry.suffix != ".ipynb":
                found[sid] = Submission(sid, None, f"{entry.name} is not a notebook (.ipynb)")
            else:
                found[sid] = Submission(sid, entry)
    return list(found.values())


def validate_notebook(path: Path) -> str | None:
    """None if ``path`` is a readable notebook, else why not (in words)."""
    try:
        if path.stat().st_size == 0:
            return "the file is empty"
        nb = nbformat.read(path, as_version=4)
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read the file ({exc})"
    except Exception as exc:  # json errors, nbformat validation errors
        return f"not a valid notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if not nb.cells:
        return "the notebook has no cells"
    return None


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Grader:
    """Runs nbgrader for one chapter in its own course folder under ``out``."""

    def __init__(self, notebook: str, out: Path, *, timeout: int = 60, log=print):
        self.notebook = notebook
        self.assignment = notebook
        self.out = out
        self.course = out / "nbgrader"
        self.timeout = timeout
        self.log = log
        source = get_settings().root / "solutions" / f"{notebook}.ipynb"
        if not source.exists():
            names = ", ".join(p.stem for p in sorted(source.parent.glob("[0-9]*.ipynb")))
            raise BadParameter(f"no solution notebook {source.name}: choose one of {names}")
        self.source = source

    def nbgrader(self, *args: str, env: dict[str, str] | None = None, timeout: float | None = None,
                 log_file: Path | None = None) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={self.course}"]
        env = dict(env or os.environ)
        # nbgrader runs `alembic` (its gradebook migrations) from PATH: use this environment's.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        result = subprocess.run(command, cwd=self.course, capture_output=True, text=True, env=env,
                                timeout=timeout)
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            log_file.write_text(f"$ {' '.join(args)}\n{result.stdout}\n{result.stderr}", encoding="utf-8")
        return result

    def prepare(self) -> None:
        if self.course.exists():
            shutil.rmtree(self.course)
        (self.course / "source" / self.assignment).mkdir(parents=True)
        root = get_settings().root
        config = (root / "nbgrader_config.py").read_text(encoding="utf-8")
        config += (f"\n# Added by dbcourse grade\nc.Execute.timeout = {int(self.timeout)}\n"
                   "c.CourseDirectory.db_url = 'sqlite:///' + __import__('os').path.abspath('gradebook.db')\n")
        (self.course / "nbgrader_config.py").write_text(config, encoding="utf-8")
        nb = nbformat.read(self.source, as_version=4)
        nbformat.write(nb, self.course / "source" / self.assignment / f"{self.notebook}.ipynb")
        result = self.nbgrader("generate_assignment", self.assignment, "--force",
                               log_file=self.out / "logs" / "generate_assignment.log")
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{result.stderr[-3000:]}")

    def stage(self, sub: Submission) -> bool:
        """Copy a readable submission into the course folder; False (with a note) otherwise."""
        problem = validate_notebook(sub.path)
        if problem:
            sub.note = _join(sub.note, problem)
            return False
        target = self.course / "submitted" / sub.student / self.assignment / f"{self.notebook}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sub.path, target)
        return True

    def autograde(self, subs: list[Submission]) -> None:
        """One ``nbgrader autograde`` run for every staged submission.

        Each submission runs in ``autograded/<student>/<assignment>/``, from which
        ``dbcourse.setup`` derives a namespace of its own (see workspace.default_namespace).
        """
        env = dict(os.environ)
        env.pop("DBCOURSE_NAMESPACE", None)  # the per-submission namespace comes from the folder
        env.setdefault("IPYTHONDIR", str(get_settings().root / "tests" / "ipython"))
        env["PLOOMBER_STATS_ENABLED"] = "false"
        try:
            result = self.nbgrader("autograde", self.assignment, "--force", env=env,
                                   timeout=SUBMISSION_TIMEOUT * max(1, len(subs)),
                                   log_file=self.out / "logs" / "autograde.log")
        except subprocess.TimeoutExpired:
            for sub in subs:
                sub.note = _join(sub.note, "grading stopped: it took too long")
            return
        if result.returncode != 0:
            self.log(f"warning: nbgrader autograde reported errors, see {self.out / 'logs' / 'autograde.log'}")
        release = nbformat.read(self.course / "release" / self.assignment / f"{self.notebook}.ipynb", as_version=4)
        for sub in subs:
            graded = self.course / "autograded" / sub.student / self.assignment / f"{self.notebook}.ipynb"
            if not graded.exists():
                sub.note = _join(sub.note, "nbgrader could not grade it (see logs/autograde.log)")
                continue
            sub.graded = True
            sub.note = _join(sub.note, *tampering(release, nbformat.read(sub.path, as_version=4)))
            if _timed_out(nbformat.read(graded, as_version=4)):
                sub.note = _join(sub.note, f"a cell ran longer than {self.timeout} s and was stopped")

    def collect_scores(self, subs: list[Submission]) -> list[str]:
        from nbgrader.api import Gradebook, MissingEntry

        db_url = f"sqlite:///{self.course / 'gradebook.db'}"
        with Gradebook(db_url) as gb:
            notebook = gb.find_notebook(self.notebook, self.assignment)
            grade_ids = [cell.name for cell in notebook.grade_cells]
            max_scores = {cell.name: cell.max_score for cell in notebook.grade_cells}
            for sub in subs:
                sub.max_total = sum(max_scores.values())
                if not sub.graded:
                    sub.scores = {g: (0.0, max_scores[g]) for g in grade_ids}
                    continue
                try:
                    nb = gb.find_submission_notebook(self.notebook, self.assignment, sub.student)
                except MissingEntry:
                    sub.graded = False
                    sub.note = "; ".join(n for n in (sub.note, "no grades recorded") if n)
                    sub.scores = {g: (0.0, max_scores[g]) for g in grade_ids}
                    continue
                for grade in nb.grades:
                    sub.scores[grade.name] = (float(grade.score), float(grade.max_score))
                sub.total = sum(score for score, _ in sub.scores.values())
        return grade_ids

    def feedback(self, subs: list[Submission]) -> None:
        graded = [s for s in subs if s.graded]
        if not graded:
            return
        result = self.nbgrader("generate_feedback", self.assignment, "--force",
                               log_file=self.out / "logs" / "generate_feedback.log")
        if result.returncode != 0:
            self.log(f"warning: nbgrader generate_feedback failed, see {self.out / 'logs'}")
        for sub in graded:
            html = self.course / "feedback" / sub.student / self.assignment / f"{self.notebook}.html"
            if html.exists():
                dest = self.out / "feedback" / f"{sub.student}.html"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(html, dest)
                sub.feedback = dest

    def write_csv(self, subs: list[Submission], grade_ids: list[str]) -> Path:
        path = self.out / "grades.csv"
        exercises = [g for g in grade_ids]
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["student", "score", "max_score", *exercises, "note", "file"])
            for sub in subs:
                writer.writerow([sub.student, _num(sub.total), _num(sub.max_total),
                                 *[_num(sub.scores.get(g, (0.0, 0.0))[0]) for g in exercises], sub.note,
                                 str(sub.path) if sub.path else ""])
        return path


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def grade(notebook: str, submissions: Path, out: Path, *, timeout: int = 60, keep_namespaces: bool = False,
          log=print) -> list[Submission]:
    """Grade every submission in ``submissions`` for ``notebook``; write results under ``out``."""
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    if out == submissions or submissions in out.parents:
        raise BadParameter("--out must not be inside the submissions folder (submissions are never modified)")
    grader = Grader(notebook, out, timeout=timeout, log=log)
    subs = find_submissions(submissions, notebook)
    if not subs:
        raise BadParameter(f"no submissions found in {submissions}")
    before = {s.path: _sha(s.path) for s in subs if s.path and s.path.is_file()}
    out.mkdir(parents=True, exist_ok=True)
    log(f"grading {len(subs)} submission(s) of {notebook} (at most {timeout} s per cell)")
    grader.prepare()
    staged = [sub for sub in subs if sub.path is not None and grader.stage(sub)]
    for sub in subs:
        log(f"  {sub.student}: " + (f"grading {sub.path.name}" if sub in staged else sub.note))
    if staged:
        grader.autograde(staged)
    grade_ids = grader.collect_scores(subs)
    grader.feedback(subs)
    csv_path = grader.write_csv(subs, grade_ids)
    for path, digest in before.items():  # a promise of this command: submissions are never modified
        if _sha(path) != digest:
            raise RuntimeError(f"{path} changed during grading")
    if not keep_namespaces:
        _drop_namespaces(subs)
    log("")
    log(summary_table(subs, grade_ids))
    log(f"\ngradebook: {csv_path}\nfeedback:  {out / 'feedback'}\nlogs:      {out / 'logs'}")
    return subs


def _drop_namespaces(subs: list[Submission]) -> None:
    from . import namespaces

    for sub in subs:
        namespaces.reset_all(match=namespace_name(f"grade_{sub.student}") + "_")


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def tampering(release: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """Notes on test cells that were deleted or edited (nbgrader restores them when grading)."""
    def grade_cells(nb):
        return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
                if c.get("metadata", {}).get("nbgrader", {}).get("grade")
                and not c.metadata["nbgrader"].get("solution")}

    original, got = grade_cells(release), grade_cells(submitted)
    notes = []
    deleted = [g for g in original if g not in got]
    edited = [g for g in original if g in got and got[g].strip() != original[g].strip()]
    if deleted:
        notes.append(f"test cell(s) deleted and restored: {', '.join(deleted)}")
    if edited:
        notes.append(f"test cell(s) edited, the originals were used: {', '.join(edited)}")
    return notes


def _timed_out(nb: nbformat.NotebookNode) -> bool:
    return any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError"
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def summary_table(subs: list[Submission], grade_ids: list[str]) -> str:
    short = [g.replace("-check", "").split("-", 1)[-1] for g in grade_ids]
    header = ["student", "score", *short, "note"]
    rows = []
    for sub in subs:
        cells = [sub.student, f"{_num(sub.total)}/{_num(sub.max_total)}"]
        cells += [_num(sub.scores.get(g, (0.0, 0.0))[0]) for g in grade_ids]
        cells.append(sub.note)
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in lines)


def scores_json(subs: list[Submission]) -> str:
    return json.dumps({s.student: {"total": s.total, "max": s.max_total, "note": s.note,
                                   "scores": {k: v[0] for k, v in s.scores.items()}} for s in subs}, indent=2)
