"""Checks for chapter 07, "Query optimization, measured".

Optimization exercises are checked on what the database says it does (the plan it picks, the
documents it examines, the statements the code sends), never on timings: a right answer passes on
a slow laptop and a wrong one fails on a fast server. Every check puts the namespace back as it
found it:

* PostgreSQL and SQLite index answers are built inside a transaction, the plan is read, and the
  transaction is rolled back (their DDL is transactional, so nothing is left behind; an index of the
  same name that the learner kept is dropped inside that transaction and so comes back with the rollback);
* MySQL's DDL is not transactional: the check drops the indexes the answer created;
* MongoDB: the check drops the index it built from the answer;
* Redis: the check deletes the keys the answer created;
* scratch tables (``copy_check``, ``jobs``) are dropped or rebuilt by the check itself;
* the pooling check closes the pool it lends, the slow-log check removes the listeners and the log
  handler it installed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sqlite3
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any, Callable, Iterator

from .compare import compare_rows, fetch_rows, values_equal
from .core import Chapter, ExerciseFailed, expect, fail, not_answered

chapter = Chapter("07", "Query optimization")
exercise = chapter.exercise
progress = chapter.progress

UTC = dt.timezone.utc

# The queries the exercises are about (the notebook shows the same text).
SESSION_SQL = "SELECT event_id, event_type, occurred_at FROM events WHERE session_id = %s ORDER BY occurred_at"
DEPARTURES_SQL = ("SELECT flight_id, flight, dest, time_hour FROM flights "
                  "WHERE carrier = %(carrier)s AND origin = %(origin)s AND time_hour >= %(after)s "
                  "ORDER BY time_hour LIMIT 10")
PENDING_SQL = ("SELECT order_id, user_id, ordered_at FROM orders "
               "WHERE status = %s AND ordered_at >= %s ORDER BY ordered_at DESC")
REVIEWS_SQL = "SELECT rating, created_at FROM reviews WHERE product_id = %s"
FIRST_PAGE_SQL = ("SELECT order_id, user_id, status, ordered_at FROM orders "
                  "ORDER BY ordered_at DESC, order_id DESC LIMIT %(page_size)s")
OFFSET_PAGE_SQL = ("SELECT order_id, user_id, status, ordered_at FROM orders "
                   "ORDER BY ordered_at DESC, order_id DESC LIMIT %(page_size)s OFFSET %(offset)s")
CUSTOMER_REPORT_SQL = """
SELECT u.user_id, u.full_name, count(DISTINCT o.order_id) AS orders, count(i.order_item_id) AS lines
FROM users u
LEFT JOIN orders o ON o.user_id = u.user_id
LEFT JOIN order_items i ON i.order_id = o.order_id
WHERE u.user_id = ANY(%s)
GROUP BY u.user_id, u.full_name
ORDER BY u.user_id"""
ROUTE_SQL = "SELECT count(*), avg(arr_delay) FROM flights WHERE origin = %s AND dest = %s"
MONGO_FILTER_FIELDS = ("country", "is_active")
MONGO_SORT_FIELD = "signup_at"


# --------------------------------------------------------------------------- PostgreSQL plans

def explain_json(conn: Any, sql: str, params: Any = None, *, analyze: bool = False) -> dict:
    """The root node of PostgreSQL's JSON plan for ``sql`` (``analyze=True`` runs the query)."""
    options = "ANALYZE, TIMING OFF, SUMMARY OFF, FORMAT JSON" if analyze else "FORMAT JSON"
    row = conn.execute(f"EXPLAIN ({options}) {sql}", params).fetchone()
    document = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return document[0]["Plan"]


def plan_nodes(plan: dict) -> Iterator[dict]:
    """Every node of a JSON plan, parents before children."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def table_access(plan: dict, table: str) -> list[dict]:
    """How the plan reads ``table``: one dict per scan node with its type, index(es) and conditions."""
    found = []
    for node in plan_nodes(plan):
        if node.get("Relation Name") != table:
            continue
        indexes, conds = [], []
        if node.get("Index Name"):
            indexes.append(node["Index Name"])
        if node.get("Index Cond"):
            conds.append(node["Index Cond"])
        for child in plan_nodes(node):  # a Bitmap Heap Scan gets its rows from Bitmap Index Scans
            if child is not node and child.get("Node Type") == "Bitmap Index Scan":
                indexes.append(child["Index Name"])
                conds.append(child.get("Index Cond", ""))
        found.append({"type": node["Node Type"], "indexes": indexes, "index_cond": " ".join(conds),
                      "filter": node.get("Filter", ""), "node": node})
    return found


def describe_access(access: list[dict], table: str) -> str:
    if not access:
        return f"the plan does not read {table} at all"
    parts = []
    for a in access:
        text = a["type"] + (f" using {', '.join(a['indexes'])}" if a["indexes"] else "") + f" on {table}"
        if a["filter"]:
            text += f" (Filter: {a['filter']})"
        parts.append(text)
    return "; ".join(parts)


def node_types(plan: dict) -> list[str]:
    return [n["Node Type"] for n in plan_nodes(plan)]


def _index_names(conn: Any, table: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                                       "AND tablename = %s", [table])}


def index_key_columns(conn: Any, index: str) -> list[str]:
    """Key columns of a PostgreSQL index, in order (INCLUDE columns left out)."""
    rows = conn.execute(
        """SELECT coalesce(a.attname, '(an expression)') FROM pg_index i
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
           LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indexrelid = to_regclass(quote_ident(%s)) AND k.n <= i.indnkeyatts ORDER BY k.n""",
        [index]).fetchall()
    return [r[0] for r in rows]


_CREATE_INDEX_NAME = re.compile(
    r'^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?'
    r'("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\s+ON\b', re.I)


def created_index_name(ddl: str) -> str | None:
    """The name a ``CREATE INDEX name ON ...`` statement gives its index (as the catalog spells it), or None."""
    match = _CREATE_INDEX_NAME.match(ddl)
    if not match:
        return None
    name = match.group(1)
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def expect_leading_column(columns_of: dict[str, list[str]], column: str) -> None:
    """Fail unless one of the new indexes (name -> key columns) starts with ``column``."""
    if any(columns[:1] == [column] for columns in columns_of.values()):
        return
    shown = "; ".join(f"{name} on ({', '.join(columns)})" for name, columns in sorted(columns_of.items()))
    first = sorted(columns_of.items())[0][1][:1] or ["?"]
    fail(f"Your index ({shown}) starts with {first[0]}, not with {column}, the column the query compares with =. "
         f"A B-tree is sorted by its first column, so the entries of one {column} value are scattered all over it: "
         "the database can at best read the whole index and test each entry.",
         hint=f"put {column} first: CREATE INDEX some_name ON table ({column}, ...).")


def _run_ddl(conn: Any, ddl: Any, answer: str, table: str) -> set[str]:
    """Run the learner's CREATE INDEX inside the open transaction; return the new indexes of ``table``."""
    import psycopg
    from psycopg import sql

    not_answered(ddl, answer)
    expect(isinstance(ddl, str), f"`{answer}` should be a string holding a CREATE INDEX statement.")
    before = _index_names(conn, table)
    name = created_index_name(ddl)
    if name in before:
        # You ran the statement yourself and kept the index. Build it afresh inside this transaction: the
        # rollback at the end of the check brings your own index back.
        try:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        except psycopg.Error:
            conn.rollback()
            fail(f"An index named {name} already exists on {table}, and it cannot be dropped (it enforces a "
                 "constraint).", hint="give your index another name.")
        before.discard(name)
    try:
        conn.execute(ddl)
    except psycopg.errors.DuplicateTable:
        conn.rollback()
        fail(f"Your statement failed: a table or index named {name or 'like yours'} already exists (not an index on "
             f"{table}).",
             hint="choose another name for your index, or DROP INDEX the old one first.")
    except psycopg.errors.ActiveSqlTransaction:
        conn.rollback()
        fail("The check builds your index inside a transaction (and rolls it back afterwards), and "
             "CREATE INDEX CONCURRENTLY cannot run inside one.",
             hint="write it without CONCURRENTLY here. In production, CONCURRENTLY is the right choice on a "
                  "busy table: it builds the index without blocking writes.")
    except psycopg.Error as exc:
        conn.rollback()
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"Your statement failed in PostgreSQL: {type(exc).__name__}: {first}",
             hint="run it on its own to see the whole error; the form is CREATE INDEX name ON table (columns).")
    new = _index_names(conn, table) - before
    expect(new, f"Your statement ran but created no new index on {table}.",
           hint=f"write CREATE INDEX some_name ON {table} (column, ...). CREATE INDEX IF NOT EXISTS does nothing when "
                "an index of that name exists somewhere else: choose another name.")
    return new


def _other_index_hint(access: list[dict], new: set[str]) -> str:
    others = sorted({i for a in access for i in a["indexes"]} - new)
    return (f" The plan prefers {', '.join(others)}: if you created that one earlier, DROP INDEX it (or give your "
            "answer its name)." if others else "")


# --------------------------------------------------------------------------- 07.1 (SQLite)

USER_ORDERS_SQL = "SELECT order_id, ordered_at, status FROM orders WHERE user_id = ?"
_SQLITE_SEARCH = re.compile(r"^SEARCH (?:TABLE )?orders USING (?:COVERING )?INDEX (\S+) \((.*)\)")
_SQLITE_SCAN = re.compile(r"^SCAN (?:TABLE )?orders\b")


def _sqlite_indexes(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """lower-case name -> name of the indexes of ``table`` (SQLite compares names case-insensitively)."""
    return {r[0].lower(): r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", [table])}


def _sqlite_index_columns(conn: sqlite3.Connection, index: str) -> list[str]:
    quoted = '"' + index.replace('"', '""') + '"'
    return [r[2] or "(an expression)" for r in conn.execute(f"PRAGMA index_info({quoted})")]


def sqlite_plan(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[str]:
    """The detail lines of SQLite's EXPLAIN QUERY PLAN."""
    return [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


@exercise("07.1", "SQLite: from SCAN to SEARCH", answer="orders_index_sql")
def sqlite_search(ddl: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(ddl, "orders_index_sql")
    expect(isinstance(ddl, str), "`orders_index_sql` should be a string holding a CREATE INDEX statement.")
    # isolation_level=None: the check opens the transaction itself, and SQLite's DDL is transactional
    conn = sqlite3.connect(workspace.sqlite_path, isolation_level=None, timeout=20)
    try:
        conn.execute("BEGIN")
        users = [r[0] for r in conn.execute("SELECT user_id FROM orders GROUP BY user_id "
                                            "ORDER BY count(*) DESC, user_id LIMIT 2")]
        before = _sqlite_indexes(conn, "orders")
        name = created_index_name(ddl)
        if name and name.lower() in before:  # you kept the index from an earlier run: build it afresh, rolled back
            conn.execute('DROP INDEX "' + before.pop(name.lower()).replace('"', '""') + '"')
        try:
            conn.execute(ddl)
        except sqlite3.ProgrammingError as exc:
            fail(f"SQLite refused your answer: {exc}", hint="write one CREATE INDEX statement, nothing else.")
        except sqlite3.Error as exc:
            fail(f"Your statement failed in SQLite: {type(exc).__name__}: {exc}",
                 hint="the form is CREATE INDEX some_name ON orders (column); if the name is taken, choose another.")
        new = {k: v for k, v in _sqlite_indexes(conn, "orders").items() if k not in before}
        expect(new, "Your statement ran but created no new index on orders.",
               hint="write CREATE INDEX some_name ON orders (column).")
        columns = {index: _sqlite_index_columns(conn, index) for index in new.values()}
        expect_leading_column(columns, "user_id")
        if hidden:  # a customer without orders, and one whose orders were just placed
            newest = conn.execute("SELECT max(user_id) FROM users").fetchone()[0]
            conn.execute("INSERT INTO orders (order_id, user_id, ordered_at, status, shipping_country) "
                         "SELECT max(order_id) + 1, ?, '2026-01-01 00:00:00', 'pending', 'FR' FROM orders", [newest])
            users += [newest, -1]
        for user in users if hidden else users[:1]:
            details = sqlite_plan(conn, USER_ORDERS_SQL, [user])
            shown = "; ".join(details)
            expect(not any(_SQLITE_SCAN.match(d) for d in details),
                   f"With your index SQLite still reads the whole table: {shown}.",
                   hint="index the column the WHERE clause compares with =.")
            searches = [m for m in map(_SQLITE_SEARCH.match, details) if m]
            ours = [m for m in searches if m.group(1).lower() in new]
            expect(ours, f"The plan does not use your new index ({', '.join(sorted(new.values()))}): {shown}.")
            expect("user_id=?" in ours[0].group(2).replace(" ", ""),
                   f"SQLite uses your index, but not to look up user_id: {shown}.",
                   hint="the index must start with user_id.")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


# --------------------------------------------------------------------------- 07.2

def _busy_sessions(conn: Any) -> list[str]:
    rows = conn.execute("SELECT session_id FROM events GROUP BY session_id "
                        "ORDER BY count(*) DESC, session_id LIMIT 2").fetchall()
    first = conn.execute("SELECT session_id FROM events ORDER BY event_id LIMIT 1").fetchone()
    return [first[0]] + [r[0] for r in rows]


@exercise("07.2", "Find and fix: the slow session lookup", answer="session_index_sql")
def session_index(ddl: Any, workspace: Any, *, hidden: bool = False) -> None:
    with workspace.connect_postgres() as conn:
        try:
            sessions = _busy_sessions(conn)
            new = _run_ddl(conn, ddl, "session_index_sql", "events")
            expect_leading_column({name: index_key_columns(conn, name) for name in new}, "session_id")
            if hidden:
                conn.execute("INSERT INTO events (event_id, user_id, session_id, event_type, occurred_at) "
                             "SELECT max(event_id) + g, NULL, 'check-071', 'page_view', now() "
                             "FROM events, generate_series(1, 3) AS g GROUP BY g")
                sessions.append("check-071")
            for session in sessions if hidden else sessions[:1]:
                access = table_access(explain_json(conn, SESSION_SQL, [session]), "events")
                expect(not any(a["type"] == "Seq Scan" for a in access),
                       f"With your index the plan still reads the whole table: {describe_access(access, 'events')}.",
                       hint="index the column the WHERE clause filters on.")
                ours = [a for a in access if set(a["indexes"]) & new]
                expect(ours, f"The plan does not use your new index ({', '.join(sorted(new))}): "
                             f"{describe_access(access, 'events')}.{_other_index_hint(access, new)}",
                       hint="index the column the WHERE clause filters on.")
                expect("session_id" in ours[0]["index_cond"],
                       f"The plan walks your index but checks session_id row by row: "
                       f"{describe_access(access, 'events')}.",
                       hint="the index must start with session_id, the column compared with =.")
            if hidden:
                expect(len(new) == 1, f"Your answer created {len(new)} indexes; one is enough here.",
                       hint="every index slows down every INSERT and UPDATE: add only what the query needs.")
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 07.3

DEPARTURE_CASES = [
    {"carrier": "B6", "origin": "JFK", "after": dt.datetime(2013, 6, 1, tzinfo=UTC)},
    {"carrier": "DL", "origin": "LGA", "after": dt.datetime(2013, 11, 15, 12, tzinfo=UTC)},
    {"carrier": "UA", "origin": "EWR", "after": dt.datetime(2013, 1, 1, tzinfo=UTC)},
]


@exercise("07.3", "Composite index column order", answer="departures_index_sql")
def departures_index(ddl: Any, workspace: Any, *, hidden: bool = False) -> None:
    with workspace.connect_postgres() as conn:
        try:
            new = _run_ddl(conn, ddl, "departures_index_sql", "flights")
            for params in DEPARTURE_CASES if hidden else DEPARTURE_CASES[:1]:
                plan = explain_json(conn, DEPARTURES_SQL, params)
                access = table_access(plan, "flights")
                ours = [a for a in access if set(a["indexes"]) & new]
                expect(ours, f"The plan does not use your new index: {describe_access(access, 'flights')}."
                             f"{_other_index_hint(access, new)}",
                       hint="an index that starts with the columns compared with = (carrier, origin) can be used "
                            "to find the rows.")
                index = sorted(set(ours[0]["indexes"]) & new)[0]
                columns = index_key_columns(conn, index)
                if len(columns) < 3 or set(columns[:2]) != {"carrier", "origin"} or columns[2] != "time_hour":
                    if columns and columns[0] == "time_hour":
                        fail(f"Your index is on ({', '.join(columns)}): it starts with time_hour, the range column. "
                             "The scan then walks every flight after the start time, whatever its carrier and "
                             "origin, and tests those on each entry.",
                             hint="equality columns first (carrier, origin, in either order), then the range and "
                                  "sort column time_hour.")
                    if "Sort" in node_types(plan):
                        fail(f"Your index ({', '.join(columns)}) finds the rows, but the plan still sorts them "
                             "(a Sort node) before it can return the first 10.",
                             hint="add time_hour after the equality columns: the index then hands the rows over "
                                  "already in time order, and LIMIT stops after 10.")
                    fail(f"Your index is on ({', '.join(columns)}); the plan is: "
                         f"{describe_access(access, 'flights')}.",
                         hint="put the columns compared with = first (carrier, origin), then time_hour.")
                expect("Sort" not in node_types(plan), "The plan still has a Sort node.",
                       hint="the index should return rows in time_hour order.")
                expect(not ours[0]["filter"], f"The scan still filters rows one by one: {describe_access(access, 'flights')}.",
                       hint="every condition should be an Index Cond.")
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 07.4 (MySQL)

def _mysql_indexes(cur: Any, table: str) -> set[str]:
    cur.execute("SELECT DISTINCT index_name FROM information_schema.statistics "
                "WHERE table_schema = DATABASE() AND table_name = %s", (table,))
    return {r[0] for r in cur.fetchall()}


def _json_find(document: Any, key: str) -> list[Any]:
    found = []
    if isinstance(document, dict):
        for k, v in document.items():
            if k == key:
                found.append(v)
            found.extend(_json_find(v, key))
    elif isinstance(document, list):
        for item in document:
            found.extend(_json_find(item, key))
    return found


def mysql_explain(cur: Any, sql: str, params: Any) -> tuple[dict, dict]:
    """MySQL/MariaDB: (the classic EXPLAIN row as a dict, the EXPLAIN FORMAT=JSON document)."""
    cur.execute("EXPLAIN " + sql, params)
    names = [d[0] for d in cur.description]
    row = dict(zip(names, cur.fetchone()))
    cur.execute("EXPLAIN FORMAT=JSON " + sql, params)
    return row, json.loads(cur.fetchone()[0])


def _pending_cases(cur: Any, hidden: bool) -> list[tuple[str, dt.datetime]]:
    cur.execute("SELECT max(ordered_at) FROM orders")
    latest = cur.fetchone()[0]
    cases = [("pending", latest - dt.timedelta(days=60))]
    if hidden:
        cases += [("paid", latest - dt.timedelta(days=30)), ("shipped", latest - dt.timedelta(days=14))]
    return cases


@exercise("07.4", "MySQL: make EXPLAIN use a key, without a filesort", answer="pending_index_sql")
def pending_index(ddl: Any, workspace: Any, *, hidden: bool = False) -> None:
    import pymysql

    not_answered(ddl, "pending_index_sql")
    expect(isinstance(ddl, str), "`pending_index_sql` should be a string holding a CREATE INDEX statement.")
    conn = workspace.connect_mysql(autocommit=True)
    new: set[str] = set()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 20")
            before = _mysql_indexes(cur, "orders")
            try:
                cur.execute(ddl)
            except pymysql.MySQLError as exc:
                fail(f"Your statement failed in MySQL: {exc.args[-1] if exc.args else exc}",
                     hint="the form is CREATE INDEX name ON orders (column, ...); pick a name no other index has.")
            new = _mysql_indexes(cur, "orders") - before
            expect(new, "Your statement ran but created no new index on orders.",
                   hint="write CREATE INDEX some_name ON orders (column, ...).")
            for params in _pending_cases(cur, hidden):
                row, document = mysql_explain(cur, PENDING_SQL, params)
                shown = f"type={row['type']}, key={row['key']}, Extra={row['Extra']!r}"
                expect(row["key"] in new, f"EXPLAIN does not use your index ({shown}).",
                       hint="the optimizer can seek in an index only on its leftmost columns: which column is "
                            "compared with = ?")
                expect(row["type"] in ("ref", "range"), f"EXPLAIN shows access type {row['type']} ({shown}).",
                       hint="ref or range means the index narrows the rows down.")
                parts = [p for found in _json_find(document, "used_key_parts") for p in found]
                expect("Using filesort" not in (row["Extra"] or "") and not _json_find(document, "filesort"),
                       f"Your index is used, but the rows are still sorted after reading ({shown}).",
                       hint="put ordered_at in the index right after the equality column, so the index returns "
                            "rows in date order.")
                expect({"status", "ordered_at"} <= set(parts),
                       f"MySQL uses only the key part(s) {parts} of your index ({shown}).",
                       hint="equality column first (status), then the range column (ordered_at).")
    finally:
        try:
            with conn.cursor() as cur:
                for name in new:
                    _drop_mysql_index(cur, name)
        finally:
            conn.close()


def _drop_mysql_index(cur: Any, name: str) -> None:
    """Drop an index of ``orders``. InnoDB silently drops the index it made for a foreign key when a new
    index can serve the key instead (one that starts with ``user_id``), and then refuses to drop that
    one (error 1553): give the foreign key its own index back first."""
    import pymysql

    try:
        cur.execute(f"DROP INDEX `{name}` ON orders")
    except pymysql.MySQLError as exc:
        if not exc.args or exc.args[0] != 1553:
            raise
        cur.execute("CREATE INDEX user_id ON orders (user_id)")
        cur.execute(f"DROP INDEX `{name}` ON orders")


# --------------------------------------------------------------------------- 07.5 (MongoDB)

def _index_keys(answer: Any) -> list[tuple[str, int]]:
    if isinstance(answer, str):
        return [(answer, 1)]
    if isinstance(answer, dict):
        answer = list(answer.items())
    expect(isinstance(answer, (list, tuple)) and answer,
           "`users_index_keys` should be a list of (field, direction) pairs, such as [('email', 1)].")
    keys = []
    for item in answer:
        expect(isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
               and item[1] in (1, -1),
               f"{item!r} is not a (field, direction) pair with direction 1 or -1.",
               hint="write for example [('country', 1), ('signup_at', -1)].")
        keys.append((item[0], int(item[1])))
    return keys


def is_stand_in(client: Any) -> bool:
    """True when the MongoDB server is the course's stand-in (SecantusDB), not mongod."""
    return client.admin.command("hello").get("setName") == "secantus"


def mongo_stages(plan: dict) -> list[dict]:
    """The stages of a MongoDB winning plan, outermost first (first input stage of each)."""
    stages = []
    while plan:
        stages.append(plan)
        plan = plan.get("inputStage") or (plan.get("inputStages") or [None])[0]
    return stages


@exercise("07.5", "A MongoDB index, checked with explain()", answer="users_index_keys")
def users_index(answer: Any, workspace: Any, *, hidden: bool = False) -> None:
    from pymongo.errors import OperationFailure

    not_answered(answer, "users_index_keys")
    keys = _index_keys(answer)
    fields = [k for k, _ in keys]
    users = workspace.mongo_db.users
    expect(users.estimated_document_count() > 0, "The users collection in MongoDB is empty.",
           hint="run the cell near the top of the notebook that loads the users into MongoDB.")
    name, created = "check_07_4", False
    if name in users.index_information():  # left over from an interrupted check
        users.drop_index(name)
    try:
        users.create_index(keys, name=name)
        created = True
    except OperationFailure as exc:
        same = [n for n, info in users.index_information().items() if list(map(tuple, info["key"])) == keys]
        if not same:
            fail(f"MongoDB refused the index: {exc.details.get('errmsg', exc) if exc.details else exc}")
        name = same[0]
    try:
        countries = ["DE"] + (["FR", "US"] if hidden else [])
        for country in countries:
            query = {"country": country, "is_active": True}
            explained = users.find(query).sort(MONGO_SORT_FIELD, -1).explain()
            stages = mongo_stages(explained["queryPlanner"]["winningPlan"])
            names = [s["stage"] for s in stages]
            stats = explained["executionStats"]
            expect("IXSCAN" in names, f"The plan is {' <- '.join(names)}: MongoDB reads every document "
                                      f"({stats['totalDocsExamined']:,} examined for {stats['nReturned']:,} returned).",
                   hint="index the fields the filter compares with equality: country and is_active.")
            used = [s.get("indexName") for s in stages if s["stage"] == "IXSCAN"]
            expect(name in used, f"The plan uses the index {used}, not yours.")
            expect(stats["totalDocsExamined"] == stats["nReturned"],
                   f"The plan uses your index but examines {stats['totalDocsExamined']:,} documents to return "
                   f"{stats['nReturned']:,}.", hint="every field the filter tests should be in the index, so it "
                                                    "examines only documents that match.")
            missing = [f for f in MONGO_FILTER_FIELDS if f not in fields[:2]]
            expect(not missing, f"The equality fields {list(MONGO_FILTER_FIELDS)} should lead the index; "
                                f"yours is {fields}.", hint="Equality, Sort, Range: equality fields first.")
            expect(MONGO_SORT_FIELD in fields[2:3],
                   f"Your index {fields} finds the documents, but not in {MONGO_SORT_FIELD} order: MongoDB must sort "
                   "them after reading (a blocking SORT stage) before it returns the first one, within 100 MB of memory "
                   "per sort; beyond that MongoDB 6.0+ spills the sort to disk (slower still) and older servers refuse.",
                   hint="add signup_at right after the equality fields (the ESR rule: Equality, Sort, Range).")
            if not is_stand_in(workspace.mongo_client):  # a real mongod drops the in-memory sort
                expect("SORT" not in names, f"The plan still sorts in memory: {' <- '.join(names)}.")
    finally:
        if created:
            users.drop_index(name)


# --------------------------------------------------------------------------- 07.6

@exercise("07.6", "Make a query covering", answer="reviews_index_sql")
def reviews_covering(ddl: Any, workspace: Any, *, hidden: bool = False) -> None:
    with workspace.connect_postgres(autocommit=True) as admin:
        admin.execute("VACUUM (ANALYZE) reviews")  # sets the visibility map Index Only Scans rely on
    with workspace.connect_postgres() as conn:
        try:
            products = [r[0] for r in conn.execute(
                "SELECT product_id FROM reviews GROUP BY product_id ORDER BY count(*) DESC, product_id LIMIT 2")]
            new = _run_ddl(conn, ddl, "reviews_index_sql", "reviews")
            expect_leading_column({name: index_key_columns(conn, name) for name in new}, "product_id")
            if hidden:
                products += [r[0] for r in conn.execute(  # a product nobody reviewed (or none at all)
                    "SELECT coalesce(min(p.product_id), 0) FROM products p "
                    "WHERE NOT EXISTS (SELECT 1 FROM reviews r WHERE r.product_id = p.product_id)")]
            for product in products if hidden else products[:1]:
                access = table_access(explain_json(conn, REVIEWS_SQL, [product]), "reviews")
                ours = [a for a in access if set(a["indexes"]) & new]
                expect(ours, f"The plan does not use your new index: {describe_access(access, 'reviews')}."
                             f"{_other_index_hint(access, new)}",
                       hint="the index must start with product_id, the column in the WHERE clause.")
                expect(ours[0]["type"] == "Index Only Scan",
                       f"The plan uses your index, but then reads each row from the table to get the other "
                       f"columns: {describe_access(access, 'reviews')}.",
                       hint="an index covers a query when it holds every column the query reads: add rating and "
                            "created_at (INCLUDE (...) or as further key columns).")
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 07.7 (N+1)

class StatementCounter:
    """Counts the statements a SQLAlchemy engine sends (a ``before_cursor_execute`` listener)."""

    def __init__(self, engine: Any):
        from sqlalchemy import event

        self.engine, self.count, self._event = engine, 0, event
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # transaction control (the SAVEPOINT the check's session opens) is not a query of the answer
        if statement.lstrip().split(" ", 1)[0].upper() not in ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT"):
            self.count += 1

    def close(self) -> None:
        self._event.remove(self.engine, "before_cursor_execute", self._count)


def _call_counted(func: Callable, counter: StatementCounter, *args: Any, what: str) -> tuple[Any, int]:
    start = counter.count
    try:
        result = func(*args)
    except (ExerciseFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - report the learner's error as feedback
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        fail(f"{what} raised {type(exc).__name__}: {first}",
             hint="run your function on its own to see the whole error.")
    return result, counter.count - start


def _as_rows(result: Any, name: str) -> list[tuple]:
    expect(isinstance(result, (list, tuple)), f"{name} should return a list of tuples, not {type(result).__name__}.")
    rows = []
    for item in result:
        expect(isinstance(item, (tuple, list)) or hasattr(item, "_tuple"),
               f"{name} should return tuples (user_id, full_name, orders, lines); got {item!r}.")
        rows.append(tuple(item))
    return rows


@exercise("07.7", "Find and fix: the N+1 loop", answer="customer_report")
def customer_report(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    from sqlalchemy.orm import Session

    not_answered(func, "customer_report")
    expect(callable(func), "`customer_report` should be a function customer_report(session, user_ids).")
    engine = workspace.engine("postgres")
    counter = StatementCounter(engine)
    try:
        counts = {}
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                raw = conn.connection.dbapi_connection
                ids = [r[0] for r in conn.exec_driver_sql("SELECT user_id FROM users ORDER BY user_id LIMIT 80")]
                cases = {"10 customers": ids[:10], "40 customers": ids[:40]}
                if hidden:  # a new customer whose only order has no items yet; an id that does not exist
                    conn.exec_driver_sql(
                        "INSERT INTO users (user_id, email, full_name, country, signup_at, is_active, "
                        "marketing_opt_in) SELECT max(user_id) + 1, 'check-076@example.org', 'Zoë O''Check', 'FR', "
                        "now(), true, false FROM users")
                    conn.exec_driver_sql(
                        "INSERT INTO orders (order_id, user_id, ordered_at, status, shipping_country) "
                        "SELECT (SELECT max(order_id) + 1 FROM orders), max(user_id), now(), 'pending', 'FR' FROM users")
                    newest = conn.exec_driver_sql("SELECT max(user_id) FROM users").scalar()
                    cases.update({"80 customers": ids, "one new customer": [newest, -1], "no customers": []})
                for label, user_ids in cases.items():
                    what = f"customer_report(session, <{label}>)"
                    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
                        result, counts[label] = _call_counted(func, counter, session, list(user_ids), what=what)
                    got = _as_rows(result, what)
                    with raw.cursor() as cur:
                        cur.execute(CUSTOMER_REPORT_SQL, [list(user_ids)])
                        expected = fetch_rows(cur)
                    compare_rows(fetch_rows(got, columns=expected.columns), expected, ordered=True, check_columns=False,
                                 what=f"The report for {label}", order_hint="order the customers by user_id.")
            finally:
                trans.rollback()
        small, big = counts["10 customers"], counts["80 customers" if hidden else "40 customers"]
        expect(small >= 1, "Your function sent no statement through the session it was given.",
               hint="query with session.scalars(select(User)...), using the session passed in.")
        expect(big == small,
               f"For 10 customers your function sent {small} statements, for {40 if not hidden else 80} it sent {big}: "
               "one more query per customer (and per order) is the N+1 pattern.",
               hint="load the related objects up front: .options(selectinload(User.orders).selectinload(Order.items)).")
        expect(big <= 3, f"Your function sends {big} statements, whatever the number of customers; 3 are enough.",
               hint="one statement for the customers, one for all their orders, one for all those orders' items.")
    finally:
        counter.close()
        engine.dispose()


# --------------------------------------------------------------------------- 07.8 (keyset)

def _ensure_keyset_index(conn: Any) -> None:
    for name in _index_names(conn, "orders"):
        if index_key_columns(conn, name)[:2] == ["ordered_at", "order_id"]:
            return
    conn.execute("CREATE INDEX check_orders_keyset ON orders (ordered_at, order_id)")


def _page(conn: Any, sql: str, params: dict, what: str) -> Any:
    import psycopg

    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            expect(cur.description is not None, f"{what} returned no rows at all (is it a SELECT?).")
            return fetch_rows(cur)
    except (psycopg.Error, TypeError, KeyError) as exc:
        conn.rollback()
        first = (str(exc).strip().splitlines() or [""])[0]
        where = "in PostgreSQL" if isinstance(exc, psycopg.Error) else "before reaching PostgreSQL"
        fail(f"{what} failed {where}: {type(exc).__name__}: {first}",
             hint="use the named placeholders %(after_at)s, %(after_id)s and %(page_size)s.")


def _rows_read(plan: dict, table: str) -> int:
    total = 0
    for node in plan_nodes(plan):
        if node.get("Relation Name") == table:
            loops = node.get("Actual Loops", 1) or 1
            total += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    return total


@exercise("07.8", "Keyset pagination, newest first", answer="next_page_sql")
def keyset_page(sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(sql, "next_page_sql")
    expect(isinstance(sql, str), "`next_page_sql` should be a string holding a SELECT.")
    with workspace.connect_postgres() as conn:
        try:
            _ensure_keyset_index(conn)
            if hidden:  # orders placed at the same second: the page boundary must neither lose nor repeat them
                tie = conn.execute("SELECT ordered_at FROM orders ORDER BY ordered_at DESC, order_id DESC "
                                   "OFFSET (SELECT count(*) / 2 FROM orders) LIMIT 1").fetchone()[0]
                conn.execute("INSERT INTO orders (order_id, user_id, ordered_at, status, shipping_country) "
                             "SELECT max(order_id) + g, min(user_id), %s, 'paid', 'US' "
                             "FROM orders, generate_series(1, 4) AS g GROUP BY g", [tie])
            ordered = conn.execute("SELECT ordered_at, order_id FROM orders "
                                   "ORDER BY ordered_at DESC, order_id DESC").fetchall()
            total = len(ordered)
            positions = [0, total // 3, total - 5, total - 1]
            sizes = [20]
            if hidden:
                tied = [i for i, (at, _) in enumerate(ordered) if at == tie]
                positions += tied[:3]
                sizes += [1, 7]
            for page_size in sizes:
                for pos in positions:
                    at, order_id = ordered[pos]
                    params = {"after_at": at, "after_id": order_id, "page_size": page_size}
                    got = _page(conn, sql, params, "Your next_page_sql")
                    expected = _page(conn, OFFSET_PAGE_SQL, {"page_size": page_size, "offset": pos + 1}, "OFFSET")
                    compare_rows(got, expected, ordered=True,
                                 what=f"The page after order {order_id} (page size {page_size})",
                                 order_hint="ORDER BY ordered_at DESC, order_id DESC, like the OFFSET version.")
            at, order_id = ordered[int(total * 0.9)]
            plan = explain_json(conn, sql, {"after_at": at, "after_id": order_id, "page_size": 20}, analyze=True)
            access = table_access(plan, "orders")
            expect(not any(a["type"] == "Seq Scan" for a in access),
                   f"The plan reads the whole table: {describe_access(access, 'orders')}.",
                   hint="ORDER BY ordered_at DESC, order_id DESC with a WHERE the index can seek on.")
            read = _rows_read(plan, "orders")
            expect(read <= 20 + 5,
                   f"To return one page of 20 rows deep in the list, your query reads {read:,} rows: it still "
                   "walks past every newer order, as OFFSET does.",
                   hint="compare the pair at once, (ordered_at, order_id) < (%(after_at)s, %(after_id)s): the "
                        "index can seek to that point. An OR of two conditions is only a Filter.")
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 07.9 (COPY)

COPY_TABLE = "copy_check"
COPY_COLUMNS = ["id", "name", "note", "seen_at", "amount"]


def _copy_rows(hidden: bool) -> tuple[list[str], list[tuple]]:
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(i, f"row {i}", None if i % 7 == 0 else f"note {i}", base + dt.timedelta(minutes=i),
             Decimal(i) / 4) for i in range(1, 501)]
    if not hidden:
        return COPY_COLUMNS, rows
    tricky = ["tab\there", "new\nline", "back\\slash", "quote ' and \"", "Zoë 🐘", "", "\\N", "comma, semicolon;"]
    columns = COPY_COLUMNS + ["order"]  # a reserved word: the column name must be quoted
    rows = [r + (i,) for i, r in enumerate(rows[:50])]
    rows += [(1000 + i, text, text, base, Decimal("0.01"), None) for i, text in enumerate(tricky)]
    return columns, rows


@exercise("07.9", "A bulk loader with COPY", answer="copy_rows")
def copy_loader(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "copy_rows")
    expect(callable(func), "`copy_rows` should be a function copy_rows(conn, table, columns, rows).")
    cases = [_copy_rows(False)] + ([_copy_rows(True), (COPY_COLUMNS, [])] if hidden else [])
    for columns, rows in cases:
        _copy_case(func, workspace, columns, rows)


def _copy_case(func: Callable, workspace: Any, columns: list[str], rows: list[tuple]) -> None:
    with workspace.connect_postgres(autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}, {COPY_TABLE}_log")
        admin.execute(f'CREATE TABLE {COPY_TABLE} (id int PRIMARY KEY, name text, note text, seen_at timestamptz, '
                      f'amount numeric(10, 2), "order" int)')
        admin.execute(f"CREATE TABLE {COPY_TABLE}_log (statement text)")
        admin.execute(f"""CREATE OR REPLACE FUNCTION {COPY_TABLE}_log_statement() RETURNS trigger
                          LANGUAGE plpgsql AS $$
                          BEGIN INSERT INTO {COPY_TABLE}_log VALUES (current_query()); RETURN NULL; END $$""")
        admin.execute(f"CREATE TRIGGER {COPY_TABLE}_log AFTER INSERT ON {COPY_TABLE} "
                      f"FOR EACH STATEMENT EXECUTE FUNCTION {COPY_TABLE}_log_statement()")
    try:
        with workspace.connect_postgres() as conn:
            what = f"copy_rows(conn, {COPY_TABLE!r}, {columns}, <{len(rows)} rows>)"
            try:
                result = func(conn, COPY_TABLE, list(columns), list(rows))
            except ExerciseFailed:
                raise
            except NotImplementedError:
                raise
            except Exception as exc:  # noqa: BLE001
                first = (str(exc).strip().splitlines() or [""])[0]
                quoted = "order" in columns and "syntax" in str(exc).lower()
                fail(f"{what} raised {type(exc).__name__}: {first}",
                     hint="compose the statement with psycopg.sql.Identifier: a column may be named with a reserved "
                          "word such as \"order\"." if quoted else
                     "pass each row to copy.write_row(row): psycopg escapes tabs, newlines and NULLs for you.")
            if conn.info.transaction_status.name == "INERROR":
                fail(f"{what} left the transaction failed.")
            got = conn.execute(f"SELECT {', '.join(_q(c) for c in columns)} FROM {COPY_TABLE} ORDER BY id").fetchall()
            statements = [r[0] for r in conn.execute(f"SELECT statement FROM {COPY_TABLE}_log")]
            conn.rollback()
        expect(result == len(rows), f"{what} returned {result!r}; expected the number of rows loaded, {len(rows)}.",
               hint="return the count, for example len(rows) or cursor.rowcount after the COPY.")
        compare_rows(fetch_rows(got, columns=columns), fetch_rows(rows, columns=columns), ordered=True,
                     what="The rows in the table after your load")
        others = [s for s in statements if not s.lstrip().upper().startswith("COPY")]
        if others:
            fail(f"The rows arrived through {len(statements)} statement(s), for example "
                 f"{' '.join(others[0].split())[:80]!r}, not through COPY.",
                 hint='use with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(...)) as copy: '
                      "copy.write_row(row).")
        expect(len(statements) <= 1, f"Your loader ran COPY {len(statements)} times for {len(rows)} rows.",
               hint="one COPY streams every row: open it once and write all the rows into it.")
        if rows:
            expect(statements, "No COPY statement reached the table.")
    finally:
        with workspace.connect_postgres(autocommit=True) as admin:
            admin.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}, {COPY_TABLE}_log")
            admin.execute(f"DROP FUNCTION IF EXISTS {COPY_TABLE}_log_statement()")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- 07.10 (pooling)

NAME_SQL = "SELECT user_id, full_name FROM users WHERE user_id = ANY(%s)"


@exercise("07.10", "Lookups through a connection pool", answer="names_for")
def pooled_names(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    from psycopg_pool import ConnectionPool, PoolTimeout

    not_answered(func, "names_for")
    expect(callable(func), "`names_for` should be a function names_for(pool, user_ids).")
    with workspace.connect_postgres() as conn:
        ids = [r[0] for r in conn.execute("SELECT user_id FROM users ORDER BY user_id DESC LIMIT 30")]
        cases = [ids[:20]]
        if hidden:  # another order, a repeated id, ids that do not exist, nothing at all
            cases += [ids[10:] + [ids[12], -1], [-7], []]
        names = dict(conn.execute(NAME_SQL, [sorted({i for case in cases for i in case})]).fetchall())
    opened: list[int] = []  # one backend pid per connection the pool opens
    with ConnectionPool(workspace.postgres_url, min_size=1, max_size=2, timeout=3,
                        configure=lambda c: opened.append(c.info.backend_pid)) as pool:
        pool.wait()
        for user_ids in cases:
            what = f"names_for(pool, <{len(user_ids)} ids>)"
            requests = pool.get_stats().get("requests_num", 0)
            try:
                got = func(pool, list(user_ids))
            except PoolTimeout:
                fail(f"{what} waited for a free connection and gave up: the pool (max_size=2) had none left, so "
                     "connections were borrowed and not given back.",
                     hint="borrow with `with pool.connection() as conn:`: the end of the block gives the connection "
                          "back. A pool.getconn() needs its pool.putconn(conn).")
            except (ExerciseFailed, NotImplementedError):
                raise
            except Exception as exc:  # noqa: BLE001 - the learner's error, as feedback
                first = (str(exc).strip().splitlines() or [""])[0]
                fail(f"{what} raised {type(exc).__name__}: {first}",
                     hint="run your function on its own to see the whole error.")
            stats = pool.get_stats()
            borrowed = stats.get("requests_num", 0) - requests
            if user_ids:
                expect(borrowed >= 1, f"{what} did not borrow any connection from the pool it was given: it must "
                                      "have opened connections of its own.",
                       hint="use the pool passed in (with pool.connection() as conn: ...); opening a connection per "
                            "lookup is exactly the cost a pool saves.")
            lent = stats["pool_size"] - stats["pool_available"]
            expect(lent == 0, f"After {what} returned, {lent} connection(s) of the pool were still lent out.",
                   hint="give every connection back: `with pool.connection() as conn:` does it at the end of the block.")
            expected = [names.get(i) for i in user_ids]
            expect(isinstance(got, list), f"{what} should return a list of names, not {type(got).__name__}.")
            expect(len(got) == len(expected), f"{what} returned {len(got)} names for {len(user_ids)} ids.",
                   hint="one entry per id, in the order of the ids (None for an id that has no user).")
            for position, (user_id, name, want) in enumerate(zip(user_ids, got, expected)):
                expect(name == want, f"{what}: entry {position} (user {user_id}) is {name!r}; expected {want!r}.",
                       hint="the names in the order of the ids given, None where no user has that id.")
    expect(len(opened) <= 2, f"The pool opened {len(opened)} connections for your lookups; it may open at most 2.")


# --------------------------------------------------------------------------- 07.11 (Redis cache)

def _route_reference(workspace: Any, origin: str, dest: str) -> dict:
    with workspace.connect_postgres() as conn:
        count, avg = conn.execute(ROUTE_SQL, [origin, dest]).fetchone()
    return {"flights": count, "avg_arr_delay": None if avg is None else round(float(avg), 1)}


def _compare_stats(got: Any, expected: dict, what: str) -> None:
    expect(isinstance(got, dict), f"{what} should return a dict like {{'flights': 1234, 'avg_arr_delay': 3.2}}, "
                                  f"not {type(got).__name__}.")
    expect(set(got) == set(expected), f"{what} returned the keys {sorted(got)}; expected {sorted(expected)}.")
    for key, value in expected.items():
        ok = got[key] is None if value is None else (got[key] is not None and values_equal(got[key], value, 0.06))
        expect(ok, f"{what}[{key!r}] is {got[key]!r}; expected {value!r}.",
               hint="count(*) and avg(arr_delay) of the route's flights; the average rounded to 1 decimal, None "
                    "when there is none.")


@exercise("07.11", "Cache-aside in Redis", answer="route_stats")
def route_cache(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "route_stats")
    expect(callable(func), "`route_stats` should be a function route_stats(engine, r, origin, dest).")
    r = workspace.redis
    prefix = workspace.redis_prefix
    for key in r.scan_iter(match=prefix + "*", count=10_000):  # everything in Redis here is cache: start cold
        r.delete(key)
    engine = workspace.engine("postgres")
    counter = StatementCounter(engine)
    routes = [("LGA", "ATL"), ("EWR", "SFO")] + ([("JFK", "XXX"), ("EWR", "ANC")] if hidden else [])
    try:
        for origin, dest in routes:
            expected = _route_reference(workspace, origin, dest)
            what = f"route_stats(engine, r, {origin!r}, {dest!r})"
            before = set(r.scan_iter(match=prefix + "*", count=10_000))
            first, sent = _call_counted(func, counter, engine, r, origin, dest, what=what)
            expect(sent >= 1, f"The first call {what} sent no query through `engine`.",
                   hint="on a miss, query PostgreSQL with the engine passed in (engine.connect()).")
            _compare_stats(first, expected, what)
            new = set(r.scan_iter(match=prefix + "*", count=10_000)) - before
            expect(new, f"After {what} there is no new Redis key under this notebook's prefix {prefix!r}.",
                   hint="build the key with course.key('route', origin, dest) and store the result there.")
            for key in new:
                ttl = r.ttl(key)
                expect(ttl > 0, f"The key {key!r} has no expiry (TTL {ttl}).",
                       hint="set a TTL (r.set(key, value, ex=seconds)), so stale entries go away by themselves.")
            second, sent = _call_counted(func, counter, engine, r, origin, dest, what=what)
            expect(sent == 0, f"The second call {what} sent {sent} statement(s) to PostgreSQL: it should be a "
                              "cache hit.", hint="read the key first and return the cached value when it exists.")
            expect(second == first, f"The cached answer {second!r} differs from the fresh one {first!r}.",
                   hint="store JSON-safe types (int, float, None): json.loads must give back what the query gave.")
    finally:
        counter.close()
        engine.dispose()
        for key in r.scan_iter(match=prefix + "*", count=10_000):
            r.delete(key)


# --------------------------------------------------------------------------- 07.12 (slow-query log)

class _Records(logging.Handler):
    """Keeps every record it is given (the check reads them instead of a log file)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        out = []
        for record in self.records:
            try:
                out.append(record.getMessage())
            except Exception as exc:  # noqa: BLE001 - a format string that does not fit its arguments
                fail(f"A log message of yours cannot be formatted: {exc} (format {record.msg!r}).",
                     hint="logger.warning('slow query, %.0f ms: %s', ms, statement): one %-field per argument.")
        return out


def _install(func: Callable, engine: Any, threshold_ms: float, logger: logging.Logger) -> Callable:
    what = f"install_slow_log(engine, {threshold_ms}, logger)"
    try:
        remove = func(engine, threshold_ms, logger)
    except (ExerciseFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"{what} raised {type(exc).__name__}: {first}")
    expect(callable(remove), f"{what} returned {remove!r}; it should return a function that removes the listeners "
                             "it added.", hint="return a small function that calls event.remove(...) for each listener.")
    return remove


def _run(engine: Any, statement: str, params: dict | None = None) -> None:
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text(statement), params or {}).all()


def _uninstall(remove: Callable, what: str = "the function install_slow_log returned") -> None:
    try:
        remove()
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"Calling {what} raised {type(exc).__name__}: {first}",
             hint="remove exactly the listeners you added, with event.remove(engine, name, function).")


SLEEP_SQL = "SELECT pg_sleep(:seconds) AS slept, :tag AS tag"


@exercise("07.12", "A slow-query log", answer="install_slow_log")
def slow_log(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "install_slow_log")
    expect(callable(func), "`install_slow_log` should be a function install_slow_log(engine, threshold_ms, logger).")
    logger = logging.getLogger(f"dbcourse.checks.ch07.slow_log.{workspace.namespace}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = _Records()
    logger.addHandler(handler)
    engine, other = workspace.engine("postgres"), workspace.engine("postgres")
    removers: list[Callable] = []
    try:
        # 1. a statement that sleeps 200 ms, threshold 50 ms: logged once, at WARNING, with text and parameters
        removers.append(_install(func, engine, 50, logger))
        _run(engine, SLEEP_SQL, {"seconds": 0.2, "tag": "check-0712-a"})
        messages = handler.messages()
        slow = [(r, m) for r, m in zip(handler.records, messages) if "pg_sleep" in m]
        expect(slow, "A statement that took over 200 ms was not logged with a threshold of 50 ms"
                     + (f" (logged: {messages})." if messages else "."),
               hint="in after_cursor_execute, compare the elapsed time in milliseconds with threshold_ms and call "
                    "logger.warning(...) with the statement in the message.")
        expect(len(slow) == 1, f"The slow statement was logged {len(slow)} times; once is enough.",
               hint="register each listener once per call of install_slow_log.")
        record, message = slow[0]
        expect(record.levelno >= logging.WARNING,
               f"The slow statement was logged at level {record.levelname}; expected WARNING (or higher).",
               hint="logger.warning(...): a slow query is something to look at.")
        expect("check-0712-a" in message,
               f"The log message does not show the statement's parameters: {message!r}.",
               hint="log the parameters too (the `parameters` argument of the event): which value made it slow?")
        # 2. the function returned removes the listeners: nothing is logged any more
        handler.records.clear()
        _uninstall(removers.pop())
        _run(engine, SLEEP_SQL, {"seconds": 0.2, "tag": "check-0712-b"})
        expect(not handler.records, "After calling the function install_slow_log returned, a slow statement was "
                                    f"still logged: {handler.messages()}.",
               hint="that function should call event.remove(engine, ...) for each listener it added.")
        # 3. a generous threshold: nothing that runs faster is logged
        removers.append(_install(func, engine, 10_000, logger))
        _run(engine, SLEEP_SQL, {"seconds": 0.2, "tag": "check-0712-c"})
        _run(engine, "SELECT 1")
        expect(not handler.records, "With a threshold of 10,000 ms your listeners logged statements that took a few "
                                    f"hundred ms or less: {handler.messages()}.",
               hint="log only when the elapsed time, in milliseconds, is over threshold_ms.")
        if hidden:
            # 4. the listeners belong to the engine given: another engine's statements are not logged
            _uninstall(removers.pop())
            removers.append(_install(func, engine, 50, logger))
            _run(other, SLEEP_SQL, {"seconds": 0.2, "tag": "check-0712-d"})
            expect(not handler.records, "A slow statement on another engine was logged: your listeners should "
                                        f"watch only the engine they were given ({handler.messages()}).",
                   hint="event.listen(engine, ...), not on the Engine class.")
            # 5. two connections of the engine at once: the start times must not get mixed up. A statement
            #    of 600 ms runs; when it has run for 300 ms (seen from the server), another connection runs one.
            handler.records.clear()
            _uninstall(removers.pop())
            removers.append(_install(func, engine, 450, logger))
            errors: list[BaseException] = []

            def sleep_600() -> None:
                try:
                    _run(engine, SLEEP_SQL, {"seconds": 0.6, "tag": "check-0712-e"})
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            sleeper = threading.Thread(target=sleep_600)
            with workspace.connect_postgres(autocommit=True) as watcher:
                sleeper.start()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and sleeper.is_alive():
                    halfway = watcher.execute(
                        "SELECT clock_timestamp() - query_start >= interval '300 ms' FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' "
                        "AND query LIKE '%%pg_sleep%%'").fetchone()
                    if halfway and halfway[0]:
                        break
                    time.sleep(0.02)
            _run(engine, "SELECT 1")  # another connection of the pool, while the first one sleeps
            sleeper.join(30)
            expect(not errors, f"A statement failed while your listeners were installed: "
                               f"{type(errors[0]).__name__ if errors else ''}: {errors[0] if errors else ''}")
            messages = handler.messages()
            expect(sum("check-0712-e" in m for m in messages) == 1,
                   "A statement of 600 ms (threshold 450 ms) was not logged once while another connection ran a "
                   f"query in the meantime: {messages}.",
                   hint="keep the start time per connection (conn.info), not in one variable shared by all.")
    finally:
        for remove in removers:
            try:
                remove()
            except Exception:  # noqa: BLE001 - already reported above
                pass
        logger.removeHandler(handler)
        engine.dispose()
        other.dispose()


# --------------------------------------------------------------------------- 07.13 (SKIP LOCKED)

JOBS_DDL = ("DROP TABLE IF EXISTS jobs; "
            "CREATE TABLE jobs (job_id int PRIMARY KEY, payload text NOT NULL, "
            "status text NOT NULL DEFAULT 'queued')")


def reset_jobs(workspace: Any, n: int = 5) -> None:
    """(Re)create the ``jobs`` table with ``n`` queued jobs."""
    with workspace.connect_postgres(autocommit=True) as conn:
        conn.execute(JOBS_DDL)
        conn.execute("INSERT INTO jobs (job_id, payload) SELECT g, 'job ' || g FROM generate_series(1, %s) AS g", [n])


def _claim(func: Callable, conn: Any, what: str) -> Any:
    import psycopg

    try:
        job = func(conn)
    except psycopg.errors.LockNotAvailable:
        conn.rollback()
        fail(f"{what} waited for a job another worker has locked (the check gave up after 2 s).",
             hint="add FOR UPDATE SKIP LOCKED to the SELECT that picks the job: locked rows are then skipped.")
    except NotImplementedError:
        raise
    except psycopg.Error as exc:
        conn.rollback()
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"{what} failed in PostgreSQL: {type(exc).__name__}: {first}")
    return job


@exercise("07.13", "Claim a job without waiting", answer="claim_job")
def claim_job(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "claim_job")
    expect(callable(func), "`claim_job` should be a function claim_job(conn) -> job_id or None.")
    reset_jobs(workspace, 5)
    holder = workspace.connect_postgres()
    worker = workspace.connect_postgres()
    try:
        holder.execute("SELECT job_id FROM jobs WHERE job_id = 1 FOR UPDATE")  # another worker is busy with job 1
        worker.execute("SET lock_timeout = '2s'")
        worker.commit()
        job = _claim(func, worker, "claim_job(conn)")
        expect(job is not None, "claim_job returned None although four jobs are free.")
        expect(job == 2, f"claim_job returned job {job!r}; the oldest free job is 2 (job 1 is locked by another "
                         "worker).", hint="ORDER BY job_id, and skip the locked rows.")
        status = worker.execute("SELECT status FROM jobs WHERE job_id = %s", [job]).fetchone()
        expect(status and status[0] == "running", f"Job {job} is still {status[0] if status else 'missing'!r} "
                                                  "after claim_job: mark it 'running'.")
        worker.commit()
        if hidden:
            results: list[Any] = []
            errors: list[BaseException] = []

            def claim_in_thread() -> None:
                with workspace.connect_postgres() as conn:
                    conn.execute("SET lock_timeout = '2s'")
                    try:
                        results.append(func(conn))
                        conn.commit()
                    except BaseException as exc:  # noqa: BLE001
                        errors.append(exc)

            threads = [threading.Thread(target=claim_in_thread) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(15)
            expect(not errors, f"Concurrent claims failed: {type(errors[0]).__name__ if errors else ''}.",
                   hint="FOR UPDATE SKIP LOCKED lets concurrent workers take different jobs without waiting.")
            expect(Counter(results) == Counter([3, 4, 5]),
                   f"Three workers claiming at once got {sorted(results, key=repr)}; expected jobs 3, 4 and 5, each once.",
                   hint="None means a worker found no job although free ones were left: skip the locked rows "
                        "(FOR UPDATE SKIP LOCKED) instead of giving up on them.")
            last = _claim(func, worker, "claim_job(conn) with no job left")
            worker.commit()
            expect(last is None, f"With every job taken, claim_job returned {last!r}; expected None.")
    finally:
        holder.rollback()
        holder.close()
        worker.close()
        reset_jobs(workspace, 5)
