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


def _data(args: argparse.Namespace) -> int:
    from . import datasets
    from .datasets import files

    targets = []
    names = list(files.DATASETS) if args.dataset in (None, "all") else [args.dataset]
    for name in names:
        scales = files.DATASETS[name]
        if name == "shop" and args.scale != "all":
            scales = (args.scale,)
        targets += [(name, s) for s in scales]
    if args.action == "generate":
        for name, scale in targets:
            label = files.key(name, scale)
            print(f"generating {label}" + (" (about 30 s)" if scale == "large" else ""), flush=True)
            folder = files.generate(name, scale, force=args.force, progress=_tqdm_tick(label))
            files.verified_folder(name, scale)
            print(f"  {folder}: checksums match datasets/checksums.json")
        return 0
    if args.action == "verify":
        failed = 0
        for name, scale in targets:
            label = files.key(name, scale)
            if not files.folder(name, scale).exists():
                print(f"{label}: not generated yet (`dbcourse data generate {name}`)")
                continue
            try:
                files.verified_folder(name, scale)
                print(f"{label}: ok")
            except datasets.DatasetError as exc:
                print(f"{label}: {exc}", file=sys.stderr)
                failed += 1
        return 1 if failed else 0
    if args.action == "record":
        for name, scale in targets:
            info = files.record(name, scale)
            print(f"recorded {files.key(name, scale)}: {sum(v['rows'] for v in info.values()):,} rows")
        return 0
    # load
    if not args.store or not args.namespace or args.dataset in (None, "all"):
        print("usage: dbcourse data load DATASET --store STORE --namespace NAME [--scale small|large]",
              file=sys.stderr)
        return 2
    from .namespaces import namespace_name

    ns = namespace_name(args.namespace)
    report = datasets.load(args.dataset, args.store, namespace=ns, scale=args.scale if args.scale != "all" else "small")
    print(f"{report.summary()} into {args.store} {report.target} in {report.seconds:.1f} s")
    return 0


def _tqdm_tick(label: str):
    from tqdm import tqdm

    bars: dict = {}

    def tick(table: str, rows: int) -> None:
        if table not in bars:
            bars[table] = tqdm(desc=f"{label} {table}", unit="rows", unit_scale=True, leave=False)
        bars[table].update(rows)

    return tick


def _reset(args: argparse.Namespace) -> int:
    from .workspace import setup

    setup(args.chapter, namespace=args.namespace, scale=args.scale)
    return 0


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from .runner import run

    parameters = {name: yaml.safe_load(value) for name, value in args.parameter}
    results = run(args.notebooks, Path(args.out), parameters, timeout=args.timeout)
    return 0 if all(r.ok for r in results) else 1


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

    data = sub.add_parser("data", help="generate, verify or load the course's data sets")
    data.add_argument("action", choices=["generate", "verify", "load", "record"],
                      help="generate: write the CSV files (checked against datasets/checksums.json); "
                           "verify: check them; load: into one store of a namespace; "
                           "record: authors only, rewrite the checksums")
    data.add_argument("dataset", nargs="?", choices=["shop", "flights", "all"], help="default: all")
    data.add_argument("--scale", choices=["small", "large", "all"], default="small",
                      help="shop scale (default: small; generate/verify accept all)")
    data.add_argument("--force", action="store_true", help="generate: regenerate even if present")
    data.add_argument("--store", choices=["sqlite", "postgres", "mysql", "mongodb", "redis"], help="load: where")
    data.add_argument("--namespace", help="load: the namespace, e.g. 02-postgresql")
    data.set_defaults(func=_data)

    reset = sub.add_parser("reset", help="rebuild one chapter's namespace (fresh data), as its setup cell does")
    reset.add_argument("chapter", help="e.g. 02-postgresql (see dbcourse/chapters.py)")
    reset.add_argument("--namespace", help="another namespace than the chapter's own")
    reset.add_argument("--scale", choices=["small", "large"], default="small")
    reset.set_defaults(func=_reset)

    runp = sub.add_parser("run", help="execute notebooks with papermill (all solutions by default) and write an "
                                      "HTML summary")
    runp.add_argument("notebooks", nargs="*", help="names in solutions/ (e.g. 04a_sqlalchemy) or .ipynb paths")
    runp.add_argument("--out", default="artifacts/run", help="output folder (default: artifacts/run)")
    runp.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                      help="a notebook parameter, e.g. -p backend postgres -p scale large")
    runp.add_argument("--timeout", type=int, default=1800, help="seconds a cell may run (default 1800)")
    runp.set_defaults(func=_run)
