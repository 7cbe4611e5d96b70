"""Checks for chapter 00, "Start here"."""

from __future__ import annotations

import re
import socket
import sqlite3
import tempfile
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator

from .compare import compare_value
from .core import Chapter, expect, fail, not_answered

chapter = Chapter("00", "Start here")
exercise = chapter.exercise
progress = chapter.progress

ACID = {"atomicity": "B", "consistency": "C", "isolation": "D", "durability": "A"}

KINDS = ("relational", "embedded relational", "document", "key-value", "graph", "time-series")

ENGINE_KINDS = {
    "PostgreSQL": {"relational"},
    "MySQL": {"relational"},
    "SQLite": {"embedded relational", "relational"},
    "MongoDB": {"document"},
    "Redis": {"key-value"},
    "Neo4j": {"graph"},
    "InfluxDB": {"time-series"},
}

#: scenario -> (acceptable kinds, why), for the two "pick a store" exercises.
SCENARIOS_A = {
    "shop orders and payments": ({"relational"}, "money and stock need transactions, constraints and joins"),
    "page cache that expires": ({"key-value"}, "a value looked up by key, with a time-to-live, in memory"),
    "catalogue with per-category attributes": (
        {"document", "relational"},
        "documents hold varying attributes naturally; PostgreSQL's JSONB column is a good relational answer too"),
    "mobile app offline data": ({"embedded relational"}, "no server on a phone: the database is a file in the app"),
}
SCENARIOS_B = {
    "friends of friends": ({"graph", "relational"},
                           "a graph database walks relationships; a recursive CTE in PostgreSQL does it too"),
    "sensor readings every second": ({"time-series"}, "append-only, timestamped, queried by time window"),
    "live game leaderboard": ({"key-value"}, "Redis sorted sets keep scores ranked in memory"),
    "login sessions with sliding expiry": ({"key-value"}, "one hash per session with a TTL renewed on each request"),
}


def _check_choice_dict(answer: Any, name: str, expected: dict[str, tuple[set[str], str]]) -> None:
    not_answered(answer, name)
    expect(isinstance(answer, dict), f"`{name}` should be a dict (scenario -> kind), not {type(answer).__name__}.")
    missing = [s for s in expected if s not in answer]
    expect(not missing, f"`{name}` has no entry for {missing}.", hint="keep the scenario names exactly as given.")
    for scenario, choice in answer.items():
        if scenario not in expected:
            fail(f"`{name}` has an unknown scenario {scenario!r}.", hint=f"the scenarios are {list(expected)}.")
        if choice not in KINDS:
            fail(f"{choice!r} (for {scenario!r}) is not one of the kinds {list(KINDS)}.")
    wrong = [s for s, (ok, _) in expected.items() if answer[s] not in ok]
    if wrong:
        scenario = wrong[0]
        fail(f"{len(wrong)} of {len(expected)} choices are not the best fit, for example {scenario!r} "
             f"({answer[scenario]!r}).", hint="walk the decision tree above for that scenario: what must the data "
                                              "guarantee, and how is it read?")


@exercise("00.1", "ACID in your own words", answer="acid")
def acid(answer: Any, *, hidden: bool = False) -> None:
    not_answered(answer, "acid")
    expect(isinstance(answer, dict), "`acid` should be a dict such as {'atomicity': 'B', ...}.")
    normalized = {str(k).strip().lower(): str(v).strip().upper() for k, v in answer.items()}
    missing = [k for k in ACID if k not in normalized]
    expect(not missing, f"`acid` has no entry for {missing}.", hint="use the four keys atomicity, consistency, "
                                                                    "isolation, durability.")
    wrong = [k for k in ACID if normalized[k] != ACID[k]]
    if wrong:
        fail(f"{len(wrong)} of 4 matches are wrong, starting with {wrong[0]!r}.",
             hint="atomicity is about all-or-nothing; durability about surviving a crash.")
    if hidden:
        expect(len(set(normalized[k] for k in ACID)) == 4, "each statement should be used once.")


@exercise("00.2", "Kinds of databases", answer="kinds")
def kinds(answer: Any, *, hidden: bool = False) -> None:
    not_answered(answer, "kinds")
    expect(isinstance(answer, dict), "`kinds` should be a dict such as {'PostgreSQL': 'relational', ...}.")
    for engine, ok in ENGINE_KINDS.items():
        expect(engine in answer, f"`kinds` has no entry for {engine!r}.")
        choice = answer[engine]
        expect(choice in KINDS, f"{choice!r} (for {engine}) is not one of {list(KINDS)}.")
        expect(choice in ok, f"{engine} is not best described as {choice!r}.",
               hint="look at the table of kinds of databases above.")


@exercise("00.3", "Pick a store (part 1)", answer="choices_a")
def pick_a(answer: Any, *, hidden: bool = False) -> None:
    _check_choice_dict(answer, "choices_a", SCENARIOS_A)


@exercise("00.4", "Pick a store (part 2)", answer="choices_b")
def pick_b(answer: Any, *, hidden: bool = False) -> None:
    _check_choice_dict(answer, "choices_b", SCENARIOS_B)


def _server_versions() -> dict[str, str]:
    from ..services.probe import probe
    from ..config import get_settings

    settings = get_settings()
    versions = {}
    for name in ("postgres", "mysql", "mongodb", "redis"):
        result = probe(settings[name])
        if result.up:
            versions[name] = str(result.version)
    return versions


_VERSION_NUMBER = re.compile(r"\d+(?:\.\d+)+")


def version_number(text: str) -> str | None:
    """The first dotted number in a version string: '15.8 (Debian 15.8-1)' -> '15.8',
    '10.11.6-MariaDB-0+deb12u1' -> '10.11.6', 'SecantusDB (reports 8.0.4)' -> '8.0.4'."""
    found = _VERSION_NUMBER.search(text)
    return found.group(0) if found else None


@exercise("00.5", "Ask each server its version", answer="server_versions")
def versions(answer: Any, *, hidden: bool = False) -> None:
    not_answered(answer, "server_versions")
    expect(isinstance(answer, dict), "`server_versions` should be a dict: service name -> version string.")
    ask = "ask the server itself (a query or a command) and keep the whole answer; do not type the number."
    for name, version in _server_versions().items():
        expect(name in answer, f"`server_versions` has no entry for {name!r}.",
               hint="the keys are 'postgres', 'mysql', 'mongodb' and 'redis'.")
        got = answer[name]
        expect(isinstance(got, str) and got.strip(),
               f"`server_versions[{name!r}]` is {got!r}; expected the version string the server reports.", hint=ask)
        number, actual = version_number(got), version_number(version)
        expect(number is not None, f"`server_versions[{name!r}]` is {got!r}, which holds no version number such "
                                   f"as {actual!r}.", hint=ask)
        # Visible: major.minor must agree. Hidden: the whole number (a typed '7.0' for 7.0.15 fails).
        same = number == actual if hidden else number.split(".")[:2] == actual.split(".")[:2]
        expect(same, f"`server_versions[{name!r}]` is {got!r}, but that server says it runs {version!r}.",
               hint=ask)


def _notes(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:  # `with conn:` alone would not close it
        try:
            return [r[0] for r in conn.execute("SELECT text FROM notes ORDER BY id")]
        except sqlite3.OperationalError:
            return []


@exercise("00.6", "Find and fix: the note that vanished", answer="add_note")
def add_note(func: Any, *, hidden: bool = False) -> None:
    not_answered(func, "add_note")
    expect(callable(func), "`add_note` should be a function add_note(path, text).")
    samples = ["Databases remember.", "It's still here after a restart"]
    if hidden:
        samples += ["Robert'); DROP TABLE notes; --", "émoji 🐘 and quotes \" '"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "notes.db"
        for text in samples:
            try:
                func(path, text)
            except sqlite3.Error as exc:
                fail(f"add_note(path, {text!r}) failed with sqlite3.{type(exc).__name__}: {exc}.",
                     hint="a text with an apostrophe breaks a query built by string concatenation: "
                          "pass the text as a parameter (`?`).")
        stored = _notes(path)  # a brand-new connection: what a restarted program would see
    expect(stored, "After add_note returned, a new connection finds no notes at all: the insert was never "
                   "committed.", hint="call conn.commit() (or use `with conn:`) before closing the connection.")
    compare_value(stored, samples, name="the notes a new connection reads back",
                  hint="every call should store exactly its text, in order.")


@exercise("00.7", "Predict: a transaction that fails half-way", answer="predicted_rows")
def predict(answer: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(answer, "predicted_rows")
    expect(isinstance(answer, int) and not isinstance(answer, bool), "`predicted_rows` should be a whole number.")
    expect(workspace is not None, "pass the workspace: check.predict(predicted_rows, course).")
    import psycopg

    with workspace.connect_postgres() as conn:
        try:
            actual = conn.execute("SELECT count(*) FROM visits").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            fail("the table `visits` does not exist yet.", hint="run the experiment cell above first.")
    expect(answer == actual, f"{answer} is not the number of rows the table holds after the experiment.",
           hint="a failed transaction is rolled back as a whole: which inserts survive?")


@exercise("00.8", "Fail fast: is a server up?", answer="is_up")
def is_up(func: Any, *, hidden: bool = False, good_url: str | None = None) -> None:
    not_answered(func, "is_up")
    expect(callable(func), "`is_up` should be a function is_up(url) -> bool.")
    from ..config import get_settings

    good = good_url or get_settings().postgres.url
    bad_port = "postgresql://course:course@127.0.0.1:1/course"
    bad_password = good.replace("://course:course@", "://course:wrong-password@")
    with _silent_server() as port:
        silent = f"postgresql://course:course@127.0.0.1:{port}/course"
        cases = [(good, True, "a server that is up"), (bad_port, False, "nothing listens on port 1"),
                 (silent, False, "a server that accepts the connection but never answers")]
        if hidden and bad_password != good:
            cases.append((bad_password, False, "a wrong password"))
        for url, expected, what in cases:
            call = f"is_up({_mask(url)!r}) ({what})"
            start = time.monotonic()
            finished, result, error = _call_with_deadline(func, url, IS_UP_DEADLINE)
            elapsed = time.monotonic() - start
            expect(finished, f"{call} had not returned after {IS_UP_DEADLINE:.0f} s.",
                   hint="without a timeout psycopg waits for minutes for a server that never answers: pass "
                        "connect_timeout=3 to psycopg.connect.")
            if error is not None:
                fail(f"{call} raised {type(error).__name__} instead of returning {expected}.",
                     hint="catch psycopg.OperationalError and return False.")
            expect(result is expected, f"{call} returned {result!r}; expected {expected}.")
            expect(elapsed < 5, f"{call} took {elapsed:.0f} s: it should give up within 3 seconds.",
                   hint="pass connect_timeout=3 to psycopg.connect.")


#: how long the check waits for one call of the learner's is_up before giving up on it
IS_UP_DEADLINE = 6.0


@contextmanager
def _silent_server() -> Iterator[int]:
    """A local port that accepts TCP connections (the kernel does) but never answers: what a hung
    server or a firewall that swallows packets looks like. Closing it resets pending connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _call_with_deadline(func: Any, url: str, seconds: float) -> tuple[bool, Any, BaseException | None]:
    """Call func(url) in a thread; (finished in time, its result, the exception it raised)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = func(url)
        except BaseException as exc:  # noqa: BLE001 - reported to the learner
            box["error"] = exc

    thread = threading.Thread(target=run, name="is_up check", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return False, None, None
    error = box.get("error")
    if isinstance(error, NotImplementedError):
        raise error  # the placeholder: "not answered yet"
    return True, box.get("result"), error


def _mask(url: str) -> str:
    from ..config import mask_url

    return mask_url(url)


_demo_chapter = Chapter("00-demo", "How checks look")


@_demo_chapter.exercise("demo", "What is 6 × 7?")
def demo(answer: Any, *, hidden: bool = False) -> None:
    """The demo question of section 4 (not part of the chapter's exercises)."""
    expect(isinstance(answer, (int, float)), f"the answer should be a number, not {type(answer).__name__}.")
    expect(answer == 42, f"{answer} is not 6 × 7.", hint="6 × 7 = 6 + 6 + 6 + 6 + 6 + 6 + 6.")
