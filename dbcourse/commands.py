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
