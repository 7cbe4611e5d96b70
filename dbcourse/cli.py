"""The ``dbcourse`` command: services, data sets, learner release, grading, notebook runs."""

from __future__ import annotations

import argparse
import json
import sys

from .config import SERVER_NAMES, ConfigError
from .errors import CourseError


def _services(args: argparse.Namespace) -> int:
    from . import services

    if args.action == "up":
        statuses = services.up(args.names, install=args.install)
        if args.started_file:
            with open(args.started_file, "a", encoding="utf-8") as fh:
                fh.writelines(f"{s.name}\n" for s in statuses if s.started)
    elif args.action == "down":
        stopped = services.down(args.names)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing (the course had started no server)"))
        return 0
    elif args.action == "reset":
        from .namespaces import reset_all

        for line in reset_all(args.names):
            print(line)
        return 0
    else:
        statuses = services.status(args.names)
    if getattr(args, "json", False):
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        print(services.format_table(statuses))
    down = [s for s in statuses if not s.up]
    if down:
        print(f"\n{len(down)} service(s) down: the 'fix' column says what to do.", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbcourse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    svc = sub.add_parser("services", help="start, stop, check or reset the database servers")
    svc.add_argument("action", choices=["up", "down", "status", "reset"],
                     help="up: start what is missing; down: stop what the course started; "
                          "status: one row per server; reset: drop every notebook's namespace")
    svc.add_argument("names", nargs="*", choices=[[], *SERVER_NAMES], metavar="SERVICE",
                     help=f"any of {', '.join(SERVER_NAMES)} (default: all)")
    svc.add_argument("--install", action="store_true",
                     help="install missing server packages with apt-get first (Debian/Ubuntu, as root)")
    svc.add_argument("--json", action="store_true", help="print the status as JSON")
    svc.add_argument("--started-file", metavar="FILE",
                     help="up: append the names of the servers this call started to FILE "
                          "(the test command stops exactly those at the end)")
    svc.set_defaults(func=_services)

    from . import commands

    commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "names", None) == []:
        args.names = None
    try:
        return args.func(args)
    except (CourseError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
