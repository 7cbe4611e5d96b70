"""Sub-commands of ``dbcourse`` beyond ``services`` (registered by :func:`register`)."""

from __future__ import annotations

import argparse
import sys


def _release(args: argparse.Namespace) -> int:
    from . import release

    names = args.names or release.notebook_names()
    if args.check:
        problems = release.check_release(args.names or None)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("notebooks/ is out of date: run `dbcourse release`", file=sys.stderr)
            return 1
        print(f"notebooks/ is what solutions/ generates ({len(names)} notebooks)")
        return 0
    for name in names:
        ipynb, py = release.release(name)
        print(f"wrote {ipynb.relative_to(release.notebooks_dir().parent)} and {py.name}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from . import release

    names = args.names or release.notebook_names()
    for name in names:
        print(f"building solutions/{name} ({'executing' if args.run else 'inputs only'})", flush=True)
        release.build_solution(name, run=args.run)
        release.release(name)
    print("done: review `git diff`, then commit the .py and .ipynb files together")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .grading import grade

    out = Path(args.out) if args.out else Path.cwd() / f"grades-{args.notebook}"
    subs = grade(args.notebook, Path(args.submissions), out, timeout=args.timeout,
                 keep_namespaces=args.keep_namespaces)
    return 0 if subs else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add the build, release, data, grade and run sub-commands."""
    rel = sub.add_parser("release", help="regenerate notebooks/ (learner versions) from solutions/")
    rel.add_argument("names", nargs="*", help="notebook names without extension (default: all)")
    rel.add_argument("--check", action="store_true", help="only report learner notebooks that are out of date")
    rel.set_defaults(func=_release)

    build = sub.add_parser("build", help="authors: refresh solutions/*.ipynb from the .py (executing them) "
                                         "and regenerate the learner versions")
    build.add_argument("names", nargs="*", help="notebook names without extension (default: all)")
    build.add_argument("--no-run", dest="run", action="store_false", help="do not execute (keep stored outputs)")
    build.set_defaults(func=_build)

    grade = sub.add_parser("grade", help="instructors: grade a folder of submitted notebooks with nbgrader")
    grade.add_argument("notebook", help="the chapter's notebook name, e.g. 00_start_here")
    grade.add_argument("submissions", help="folder with <student>/<notebook>.ipynb or <student>.ipynb")
    grade.add_argument("--out", help="where to write grades.csv, feedback/ and logs/ "
                                     "(default: ./grades-<notebook>)")
    grade.add_argument("--timeout", type=int, default=60, help="seconds a cell may run (default 60)")
    grade.add_argument("--keep-namespaces", action="store_true",
                       help="keep each submission's database namespace after grading (to inspect it)")
    grade.set_defaults(func=_grade)
