"""Chapter 00's checks accept right answers and reject wrong ones with a helpful message.

They run against the real servers (00.5 asks them for their versions, 00.7 and 00.8 use
PostgreSQL), in a namespace of their own (``test_ch00_checks``); nothing is mocked.
"""

from __future__ import annotations

import re
import sqlite3
import time
from contextlib import closing

import psycopg
import pytest

import dbcourse
from dbcourse.checks import NotAnswered
from dbcourse.checks import ch00 as check

from .conftest import feedback


@pytest.fixture(scope="module")
def ws():
    workspace = dbcourse.setup("00-start-here", namespace="test_ch00_checks", quiet=True)
    yield workspace
    workspace.close()


def rejects(exercise, answer, pattern, *args, **kwargs):
    """Assert that ``exercise`` refuses ``answer`` with a message matching ``pattern``."""
    text = feedback(exercise, answer, *args, **kwargs)
    assert re.search(pattern, text, re.S), text
    return text


# --------------------------------------------------------------------------- 00.1 and 00.2

def test_acid():
    right = {"atomicity": "B", "consistency": "C", "isolation": "D", "durability": "A"}
    check.acid(right)
    check.acid({" Atomicity ": "b", "CONSISTENCY": "c", "isolation": "d", "durability": "a"}, hidden=True)
    rejects(check.acid, {**right, "atomicity": "A", "durability": "B"}, r"2 of 4 matches are wrong.*all-or-nothing")
    rejects(check.acid, {"atomicity": "B", "consistency": "C", "isolation": "D"}, r"no entry for \['durability'\]")
    rejects(check.acid, ["B", "C", "D", "A"], r"should be a dict")
    with pytest.raises(NotAnswered):
        check.acid(None)


KINDS = {"PostgreSQL": "relational", "MySQL": "relational", "SQLite": "embedded relational",
         "MongoDB": "document", "Redis": "key-value", "Neo4j": "graph", "InfluxDB": "time-series"}


def test_kinds():
    check.kinds(KINDS)
    check.kinds(KINDS, hidden=True)
    rejects(check.kinds, {**KINDS, "Redis": "document"}, r"Redis is not best described as 'document'")
    rejects(check.kinds, {**KINDS, "Neo4j": "network"}, r"'network' \(for Neo4j\) is not one of")
    rejects(check.kinds, {k: v for k, v in KINDS.items() if k != "InfluxDB"}, r"no entry for 'InfluxDB'")


# --------------------------------------------------------------------------- 00.3 and 00.4

CHOICES_A = {"shop orders and payments": "relational", "page cache that expires": "key-value",
             "catalogue with per-category attributes": "document", "mobile app offline data": "embedded relational"}
CHOICES_B = {"friends of friends": "graph", "sensor readings every second": "time-series",
             "live game leaderboard": "key-value", "login sessions with sliding expiry": "key-value"}


def test_pick_a_and_b():
    check.pick_a(CHOICES_A)
    check.pick_a({**CHOICES_A, "catalogue with per-category attributes": "relational"}, hidden=True)  # JSONB
    check.pick_b(CHOICES_B, hidden=True)
    rejects(check.pick_a, {**CHOICES_A, "shop orders and payments": "document"},
            r"1 of 4 choices are not the best fit.*'shop orders and payments'.*decision tree")
    rejects(check.pick_b, {**CHOICES_B, "live game leaderboard": "relational", "friends of friends": "document"},
            r"2 of 4 choices are not the best fit")
    rejects(check.pick_a, {**CHOICES_A, "mobile app offline data": "sqlite"}, r"'sqlite'.*is not one of the kinds")
    renamed = {("Shop orders" if k == "shop orders and payments" else k): v for k, v in CHOICES_A.items()}
    rejects(check.pick_a, renamed, r"no entry for \['shop orders and payments'\].*exactly as given")
    rejects(check.pick_b, {**CHOICES_B, "a blog": "document"}, r"unknown scenario 'a blog'")
    rejects(check.pick_b, "graph", r"should be a dict")


# --------------------------------------------------------------------------- 00.5

def reported_versions(ws):
    """The version strings exactly as the notebook's solution reads them from the servers."""
    with ws.connect_postgres() as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    mysql = ws.connect_mysql()
    try:
        with mysql.cursor() as cur:
            cur.execute("SELECT VERSION()")
            mysql_version = cur.fetchone()[0]
    finally:
        mysql.close()
    return {"postgres": postgres, "mysql": mysql_version, "mongodb": ws.mongo_client.server_info()["version"],
            "redis": ws.redis.info("server")["redis_version"]}


def test_versions(ws):
    actual = check._server_versions()
    assert set(actual) == {"postgres", "mysql", "mongodb", "redis"}, actual
    right = {name: check.version_number(version) for name, version in actual.items()}
    check.versions(right)
    check.versions(right, hidden=True)
    check.versions(reported_versions(ws), hidden=True)  # what the servers answer, verbatim

    # The loopholes of the old check: an empty string and a single digit were "in" every version.
    rejects(check.versions, {**right, "redis": ""}, r"server_versions\['redis'\]` is ''.*ask the server")
    major = right["postgres"].split(".")[0]
    rejects(check.versions, {**right, "postgres": major}, rf"is '{major}', which holds no version number")
    rejects(check.versions, {**right, "mysql": "1"}, r"is '1', which holds no version number")
    rejects(check.versions, {**right, "mongodb": "1.0"}, r"server_versions\['mongodb'\]` is '1.0', but that server")
    rejects(check.versions, {**right, "redis": 7}, r"is 7; expected the version string")
    # A typed major.minor passes the visible check but not the hidden one, which wants the whole number.
    if right["redis"].count(".") >= 2:
        typed = ".".join(right["redis"].split(".")[:2])
        check.versions({**right, "redis": typed})
        rejects(check.versions, {**right, "redis": typed}, r"but that server says it runs", hidden=True)
    rejects(check.versions, {k: v for k, v in right.items() if k != "mongodb"}, r"no entry for 'mongodb'")
    rejects(check.versions, "15.8", r"should be a dict")


def test_version_number():
    assert check.version_number("15.8 (Debian 15.8-0+deb12u1)") == "15.8"
    assert check.version_number("10.11.6-MariaDB-0+deb12u1") == "10.11.6"
    assert check.version_number("SecantusDB (reports 8.0.4)") == "8.0.4"
    assert check.version_number("8") is None


# --------------------------------------------------------------------------- 00.6

def add_note(path, text):
    with closing(sqlite3.connect(path)) as conn:
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
            conn.execute("INSERT INTO notes (text) VALUES (?)", (text,))


def test_add_note():
    check.add_note(add_note)
    check.add_note(add_note, hidden=True)

    def original(path, text):  # the colleague's version: no commit, string gluing
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        conn.execute("INSERT INTO notes (text) VALUES ('" + text + "')")
        conn.close()
    rejects(check.add_note, original, r"It's still here.*OperationalError.*apostrophe.*parameter")

    def never_commits(path, text):  # the quotes fixed, the commit still missing
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        conn.execute("INSERT INTO notes (text) VALUES (?)", (text,))
        conn.close()
    rejects(check.add_note, never_commits, r"finds no notes at all.*never committed")

    def commits_but_glues(path, text):
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
            conn.execute("INSERT INTO notes (text) VALUES ('" + text + "')")
    rejects(check.add_note, commits_but_glues, r"It's still here.*OperationalError.*parameter")

    def stores_upper(path, text):
        add_note(path, text.upper())
    rejects(check.add_note, stores_upper, r"the notes a new connection reads back")


# --------------------------------------------------------------------------- 00.7

def test_predict(ws):
    with ws.connect_postgres() as conn:
        conn.execute("DROP TABLE IF EXISTS visits")
    rejects(check.predict, 1, r"table `visits` does not exist yet.*experiment cell", ws)
    with ws.connect_postgres() as conn:
        conn.execute("CREATE TABLE visits (id int PRIMARY KEY, page text NOT NULL)")
        conn.execute("INSERT INTO visits VALUES (1, 'home')")
    check.predict(1, ws)
    check.predict(1, ws, hidden=True)
    rejects(check.predict, 2, r"2 is not the number of rows.*rolled back as a whole", ws)
    rejects(check.predict, "1", r"should be a whole number", ws)
    rejects(check.predict, True, r"should be a whole number", ws)
    rejects(check.predict, 1, r"pass the workspace")


# --------------------------------------------------------------------------- 00.8

def is_up(url):
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def test_is_up(ws):
    check.is_up(is_up, good_url=ws.postgres_url)
    check.is_up(is_up, good_url=ws.postgres_url, hidden=True)

    def raises(url):
        with psycopg.connect(url, connect_timeout=3):
            return True
    rejects(check.is_up, raises, r"port 1\).*raised OperationalError instead of returning False.*catch",
            good_url=ws.postgres_url)

    def always_up(url):
        return True
    rejects(check.is_up, always_up, r"nothing listens on port 1\) returned True; expected False",
            good_url=ws.postgres_url)

    def port_1_only(url):  # passes the refused port, but has no timeout for a server that never answers
        if ":1/" in url:
            return False
        try:
            with psycopg.connect(url):
                return True
        except psycopg.OperationalError:
            return False
    start = time.monotonic()
    rejects(check.is_up, port_1_only, r"never answers\) had not returned after 6 s.*connect_timeout",
            good_url=ws.postgres_url)
    assert time.monotonic() - start < 15

    def too_patient(url):
        try:
            with psycopg.connect(url, connect_timeout=5):
                return True
        except psycopg.OperationalError:
            return False
    rejects(check.is_up, too_patient, r"never answers\) (took 5 s: it should give up within 3 seconds|"
                                      r"had not returned after 6 s)", good_url=ws.postgres_url)

    def ignores_password(url):  # right for the visible cases, wrong for a server that refuses the login
        return is_up(url.replace("wrong-password", "course"))
    check.is_up(ignores_password, good_url=ws.postgres_url)
    rejects(check.is_up, ignores_password, r"wrong password\) returned True; expected False",
            good_url=ws.postgres_url, hidden=True)

    def returns_text(url):
        return "yes" if is_up(url) else "no"
    rejects(check.is_up, returns_text, r"returned 'yes'; expected True", good_url=ws.postgres_url)
    rejects(check.is_up, "is_up", r"should be a function", good_url=ws.postgres_url)


def test_demo():
    check.demo(42)
    rejects(check.demo, 41, r"41 is not 6 × 7")
    rejects(check.demo, "42", r"should be a number")
