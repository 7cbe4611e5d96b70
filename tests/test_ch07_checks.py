"""Chapter 07 checks: each accepts a correct answer and rejects typical wrong ones with the right feedback.

Runs against the real servers (PostgreSQL, MySQL, MongoDB, Redis) in a namespace of its own. The
checks look at plans, documents examined and statements sent, never at timings, so these tests
are as stable as the plans.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time

import pytest
from psycopg import sql
from sqlalchemy import Engine, ForeignKey, Numeric, event, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

import dbcourse
from dbcourse import namespaces
from dbcourse.checks import NotAnswered
from dbcourse.checks import ch07 as check

from .conftest import rejects
from dbcourse.datasets import files, load_nosql


@pytest.fixture(scope="module")
def ws():
    workspace = dbcourse.setup("07-optimization", namespace="test_ch07_checks", quiet=True,
                               services=["postgres", "mysql", "mongodb", "redis", "sqlite"],
                               data={"postgres": ("shop", "flights"), "mysql": "shop", "sqlite": "shop"})
    load_nosql.load_mongodb(files.verified_folder("shop", "small"), workspace.mongo_db, collections=["users"])
    yield workspace
    leftovers = list(workspace.redis.scan_iter(match=workspace.key("*"), count=10_000))
    mongo_indexes = sorted(workspace.mongo_db.users.index_information())
    with workspace.connect_postgres() as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        pg_indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    mysql = workspace.connect_mysql()
    with mysql.cursor() as cur:
        cur.execute("SHOW INDEX FROM orders")
        mysql_indexes = {r[2] for r in cur.fetchall()}
    mysql.close()
    lite = sqlite3.connect(workspace.sqlite_path)
    sqlite_indexes = {r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                 "AND tbl_name = 'orders'")}
    lite.close()
    workspace.close()
    namespaces.clear_redis(workspace.namespace)
    namespaces.drop_postgres(workspace.namespace)
    namespaces.drop_mysql(workspace.namespace)
    namespaces.drop_mongodb(workspace.namespace)
    shutil.rmtree(namespaces.sqlite_dir(workspace.namespace), ignore_errors=True)
    # the checks leave the namespace as they found it
    assert leftovers == [], "checks must delete the Redis keys they create"
    assert mongo_indexes == ["_id_"], mongo_indexes
    assert "copy_check" not in tables and "copy_check_log" not in tables
    assert not [i for i in pg_indexes if i.startswith("check_") or i.startswith("ex_")], pg_indexes
    assert mysql_indexes == {"PRIMARY", "user_id"}, mysql_indexes
    assert not [i for i in sqlite_indexes if i.startswith("ex_")], sqlite_indexes


# --------------------------------------------------------------------------- 07.1 (SQLite)

def test_sqlite_search_accepts_an_index_that_starts_with_user_id(ws):
    for ddl in ("CREATE INDEX ex_orders_user ON orders (user_id)",
                "CREATE INDEX ex_orders_user ON orders (user_id, ordered_at, status)",   # covering, fine too
                "create index if not exists EX_orders_user on orders(user_id);"):
        check.sqlite_search(ddl, ws)
        check.sqlite_search(ddl, ws, hidden=True)


def test_sqlite_search_works_again_when_the_index_was_kept(ws):
    ddl = "CREATE INDEX ex_orders_user ON orders (user_id)"
    lite = sqlite3.connect(ws.sqlite_path)
    try:
        lite.execute(ddl)
        lite.commit()
        check.sqlite_search(ddl, ws)   # the check drops it inside its transaction: no "already exists"
        names = {r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "ex_orders_user" in names   # ...and the rollback brought it back
    finally:
        lite.execute("DROP INDEX IF EXISTS ex_orders_user")
        lite.commit()
        lite.close()


@pytest.mark.parametrize("ddl, pattern", [
    ("CREATE INDEX ex_orders_status ON orders (status, user_id)", "starts with status, not with user_id"),
    ("CREATE INDEX ex_orders_user ON order (user_id)", "failed in SQLite: OperationalError"),
    ("CREATE INDEX ex_a ON orders (user_id); CREATE INDEX ex_b ON orders (status)", "one CREATE INDEX statement"),
    ("SELECT 1", "created no new index on orders"),
    (42, "should be a string"),
])
def test_sqlite_search_rejects(ws, ddl, pattern):
    rejects(check.sqlite_search, ddl, ws, pattern=pattern)


def test_sqlite_search_needs_an_answer(ws):
    with pytest.raises(NotAnswered):
        check.sqlite_search(None, ws)


# --------------------------------------------------------------------------- 07.2

def test_session_index_accepts_an_index_on_session_id(ws):
    for ddl in ("CREATE INDEX ex_session ON events (session_id)",
                "CREATE INDEX ex_session ON events (session_id, occurred_at)"):
        check.session_index(ddl, ws)
        check.session_index(ddl, ws, hidden=True)


def test_session_index_leaves_nothing_behind(ws):
    check.session_index("CREATE INDEX ex_session ON events (session_id)", ws)
    with ws.connect_postgres() as conn:
        assert "ex_session" not in {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
        assert conn.execute("SELECT count(*) FROM events WHERE session_id = 'check-071'").fetchone()[0] == 0


@pytest.mark.parametrize("ddl, pattern", [
    (None, "no answer yet"),
    ("CREATE INDEX ex_type ON events (event_type)", r"starts with event_type, not with session_id"),
    ("CREATE INDEX ex_type ON events (event_type, session_id)", r"starts with event_type, not with session_id"),
    ("CREATE INDEX events ON events (session_id)", "a table or index named events already exists"),
    ("CREATE INDEX CONCURRENTLY ex_session ON events (session_id)", "CONCURRENTLY cannot run inside"),
    ("CREATE INDEX ex_session ON event (session_id)", "failed in PostgreSQL: UndefinedTable"),
    ("SELECT 1", "created no new index on events"),
])
def test_session_index_rejects(ws, ddl, pattern):
    exercise = check.session_index
    if ddl is None:
        with pytest.raises(NotAnswered):
            exercise(ddl, ws)
        return
    rejects(exercise, ddl, ws, pattern=pattern)


def test_session_index_works_again_when_the_index_was_kept(ws):
    ddl = "CREATE INDEX ex_session ON events (session_id)"
    with ws.connect_postgres(autocommit=True) as conn:
        conn.execute(ddl)   # the learner ran the statement and kept the index
        try:
            check.session_index(ddl, ws)
            check.session_index("CREATE INDEX IF NOT EXISTS ex_session ON events (session_id)", ws, hidden=True)
            assert conn.execute("SELECT to_regclass('ex_session') IS NOT NULL").fetchone()[0]   # still there
        finally:
            conn.execute("DROP INDEX IF EXISTS ex_session")


def test_a_kept_index_that_the_plan_prefers_is_named_in_the_feedback():
    access = [{"type": "Index Scan", "indexes": ["ex_session"], "index_cond": "", "filter": "", "node": {}}]
    assert "prefers ex_session: if you created that one earlier, DROP INDEX it" in \
        check._other_index_hint(access, {"ex_other"})
    assert check._other_index_hint(access, {"ex_session"}) == ""


def test_session_index_hidden_rejects_over_indexing(ws):
    ddl = ("CREATE INDEX ex_a ON events (session_id); CREATE INDEX ex_b ON events (event_type); "
           "CREATE INDEX ex_c ON events (occurred_at)")
    check.session_index(ddl, ws)
    rejects(check.session_index, ddl, ws, hidden=True, pattern="created 3 indexes; one is enough")


# --------------------------------------------------------------------------- 07.3

def test_departures_index_accepts_equality_columns_first_in_any_order(ws):
    for columns in ("carrier, origin, time_hour", "origin, carrier, time_hour",
                    "carrier, origin, time_hour, dest"):
        check.departures_index(f"CREATE INDEX ex_dep ON flights ({columns})", ws, hidden=True)


@pytest.mark.parametrize("columns, pattern", [
    ("time_hour, carrier, origin", "starts with time_hour, the range column"),
    ("carrier, origin", r"still sorts them \(a Sort node\)"),
    ("dest", "does not use your new index"),
])
def test_departures_index_rejects_wrong_column_orders(ws, columns, pattern):
    rejects(check.departures_index, f"CREATE INDEX ex_dep ON flights ({columns})", ws, hidden=True, pattern=pattern)


# --------------------------------------------------------------------------- 07.4 (MySQL)

def test_pending_index_accepts_status_then_ordered_at_and_drops_it(ws):
    check.pending_index("CREATE INDEX ex_pending ON orders (status, ordered_at)", ws)
    check.pending_index("CREATE INDEX ex_pending ON orders (status, ordered_at)", ws, hidden=True)


@pytest.mark.parametrize("columns, pattern", [
    ("ordered_at, status", r"EXPLAIN does not use your index|Using filesort|key part"),
    ("status", r"still sorted after reading \(.*Using filesort"),
    ("user_id, status", "EXPLAIN does not use your index"),   # InnoDB's foreign-key index games: still dropped
])
def test_pending_index_rejects(ws, columns, pattern):
    rejects(check.pending_index, f"CREATE INDEX ex_pending ON orders ({columns})", ws, pattern=pattern)


def test_pending_index_reports_a_mysql_error(ws):
    rejects(check.pending_index, "CREATE INDEX ex_pending ON orders (no_such_column)", ws,
            pattern="failed in MySQL: .*no_such_column")


# --------------------------------------------------------------------------- 07.5 (MongoDB)

def test_users_index_accepts_the_esr_index(ws):
    check.users_index([("country", 1), ("is_active", 1), ("signup_at", -1)], ws, hidden=True)
    check.users_index({"is_active": 1, "country": 1, "signup_at": -1}, ws)


@pytest.mark.parametrize("keys, pattern", [
    ([("country", 1), ("is_active", 1)], r"not in signup_at order.*spills the sort to disk|examines|COLLSCAN"),
    ([("signup_at", -1)], r"COLLSCAN|examines|lead the index"),
    ([("country", "up")], "not a \\(field, direction\\) pair"),
    ([], "should be a list of"),
])
def test_users_index_rejects(ws, keys, pattern):
    rejects(check.users_index, keys, ws, pattern=pattern)


# --------------------------------------------------------------------------- 07.6

def test_reviews_covering_accepts_include_or_key_columns(ws):
    for ddl in ("CREATE INDEX ex_cov ON reviews (product_id) INCLUDE (rating, created_at)",
                "CREATE INDEX ex_cov ON reviews (product_id, rating, created_at)"):
        check.reviews_covering(ddl, ws, hidden=True)


def test_reviews_covering_rejects_an_index_that_does_not_cover(ws):
    rejects(check.reviews_covering, "CREATE INDEX ex_cov ON reviews (product_id)", ws,
            pattern="reads each row from the table|does not use your new index")
    rejects(check.reviews_covering, "CREATE INDEX ex_cov ON reviews (product_id) INCLUDE (rating)", ws,
            pattern="reads each row from the table|does not use your new index")


@pytest.mark.parametrize("columns", ["rating, created_at, product_id", "created_at, product_id, rating"])
def test_reviews_covering_rejects_a_covering_index_that_starts_with_another_column(ws, columns):
    rejects(check.reviews_covering, f"CREATE INDEX ex_cov ON reviews ({columns})", ws,
            pattern=r"starts with \w+, not with product_id")


# --------------------------------------------------------------------------- 07.7 (N+1)

class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    user_id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str]
    orders: Mapped[list["Order"]] = relationship(back_populates="user", order_by="Order.order_id")


class Order(Base):
    __tablename__ = "orders"
    order_id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.user_id"))
    user: Mapped[User] = relationship(back_populates="orders")
    items: Mapped[list["OrderItem"]] = relationship()


class OrderItem(Base):
    __tablename__ = "order_items"
    order_item_id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.order_id"))
    unit_price = mapped_column(Numeric(10, 2))


def report_eager(session, user_ids):
    users = session.scalars(select(User).where(User.user_id.in_(user_ids))
                            .options(selectinload(User.orders).selectinload(Order.items)).order_by(User.user_id))
    return [(u.user_id, u.full_name, len(u.orders), sum(len(o.items) for o in u.orders)) for u in users]


def report_lazy(session, user_ids):
    users = session.scalars(select(User).where(User.user_id.in_(user_ids)).order_by(User.user_id))
    return [(u.user_id, u.full_name, len(u.orders), sum(len(o.items) for o in u.orders)) for u in users]


def report_one_sql(session, user_ids):
    rows = session.execute(text(check.CUSTOMER_REPORT_SQL.replace("%s", ":ids")), {"ids": list(user_ids)})
    return [tuple(r) for r in rows]


def test_customer_report_accepts_eager_loading_and_plain_sql(ws):
    check.customer_report(report_eager, ws, hidden=True)
    check.customer_report(report_one_sql, ws, hidden=True)


def test_customer_report_rejects_n_plus_one(ws):
    rejects(check.customer_report, report_lazy, ws, pattern=r"For 10 customers .* sent \d+ statements, for 40 it "
                                                             r"sent \d+: one more query per customer")


def test_customer_report_rejects_wrong_rows_and_crashes(ws):
    def wrong_order(session, user_ids):
        return list(reversed(report_eager(session, user_ids)))

    def inner_join(session, user_ids):   # drops customers without orders
        return [row for row in report_eager(session, user_ids) if row[2] > 0]

    def crash(session, user_ids):
        raise ValueError("boom")

    rejects(check.customer_report, wrong_order, ws, pattern="not in the order asked")
    rejects(check.customer_report, inner_join, ws, pattern=r"row\(s\); expected")
    rejects(check.customer_report, crash, ws, pattern="raised ValueError: boom")


# --------------------------------------------------------------------------- 07.8 (keyset)

KEYSET = """SELECT order_id, user_id, status, ordered_at FROM orders
WHERE (ordered_at, order_id) < (%(after_at)s, %(after_id)s)
ORDER BY ordered_at DESC, order_id DESC LIMIT %(page_size)s"""


def test_keyset_accepts_the_row_comparison(ws):
    check.keyset_page(KEYSET, ws)
    check.keyset_page(KEYSET, ws, hidden=True)
    with ws.connect_postgres() as conn:   # the index the check needed was rolled back with it
        assert "check_orders_keyset" not in {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}


def test_keyset_rejects_an_or_filter_that_reads_everything(ws):
    or_form = KEYSET.replace("(ordered_at, order_id) < (%(after_at)s, %(after_id)s)",
                             "ordered_at < %(after_at)s OR (ordered_at = %(after_at)s AND order_id < %(after_id)s)")
    rejects(check.keyset_page, or_form, ws, pattern=r"reads [\d,]+ rows: it still walks past every newer order")


def test_keyset_rejects_wrong_pages(ws):
    no_tie_breaker = KEYSET.replace("(ordered_at, order_id) < (%(after_at)s, %(after_id)s)",
                                    "ordered_at < %(after_at)s")
    check.keyset_page(no_tie_breaker, ws)   # without ties in the data the visible test cannot tell...
    rejects(check.keyset_page, no_tie_breaker, ws, hidden=True, pattern="values differ|row\\(s\\); expected")
    rejects(check.keyset_page, KEYSET.replace("<", ">").replace("DESC", "ASC"), ws,
            pattern=r"The page after order \d+")
    rejects(check.keyset_page, "SELECT order_id FROM orders WHERE order_id < %s", ws, pattern="failed before reaching PostgreSQL: TypeError")


# --------------------------------------------------------------------------- 07.9 (COPY)

def copy_rows(conn, table, columns, rows):
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table),
                                                          sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur:
        with cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    return len(rows)


def test_copy_loader_accepts_copy_with_write_row(ws):
    check.copy_loader(copy_rows, ws, hidden=True)


def test_copy_loader_rejects_inserts(ws):
    def insert_rows(conn, table, columns, rows):
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)))
        with conn.cursor() as cur:
            cur.executemany(statement, rows)
        return len(rows)

    rejects(check.copy_loader, insert_rows, ws, pattern="not through COPY")


def test_copy_loader_rejects_one_copy_per_row_and_hand_made_lines(ws):
    def copy_per_row(conn, table, columns, rows):
        for row in rows:
            copy_rows(conn, table, columns, [row])
        return len(rows)

    def hand_made(conn, table, columns, rows):   # breaks on tabs, newlines, backslashes, NULLs
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table),
                                                              sql.SQL(", ").join(map(sql.Identifier, columns)))
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
        return len(rows)

    def f_string(conn, table, columns, rows):   # a reserved word as a column name breaks it
        with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)

    rejects(check.copy_loader, copy_per_row, ws, pattern="ran COPY 500 times")
    check.copy_loader(hand_made, ws)   # plain values pass...
    rejects(check.copy_loader, hand_made, ws, hidden=True, pattern="values differ|raised")
    rejects(check.copy_loader, f_string, ws, hidden=True, pattern="psycopg.sql.Identifier")


def test_copy_loader_rejects_a_wrong_count(ws):
    def no_count(conn, table, columns, rows):
        copy_rows(conn, table, columns, rows)

    rejects(check.copy_loader, no_count, ws, pattern="returned None; expected the number of rows loaded, 500")


# --------------------------------------------------------------------------- 07.10 (pooling)

def names_for(pool, user_ids):
    with pool.connection() as conn:
        found = dict(conn.execute("SELECT user_id, full_name FROM users WHERE user_id = ANY(%s)",
                                  [list(user_ids)]).fetchall())
    return [found.get(i) for i in user_ids]


def test_pooled_names_accepts_one_or_many_borrowings(ws):
    def one_per_id(pool, user_ids):
        names = []
        for user_id in user_ids:
            with pool.connection() as conn:
                row = conn.execute("SELECT full_name FROM users WHERE user_id = %s", [user_id]).fetchone()
            names.append(row[0] if row else None)
        return names

    check.pooled_names(names_for, ws, hidden=True)
    check.pooled_names(one_per_id, ws, hidden=True)


def test_pooled_names_rejects(ws):
    import psycopg

    def own_connections(pool, user_ids):
        with psycopg.connect(ws.postgres_url) as conn:
            found = dict(conn.execute("SELECT user_id, full_name FROM users WHERE user_id = ANY(%s)",
                                      [list(user_ids)]).fetchall())
        return [found.get(i) for i in user_ids]

    def never_gives_back(pool, user_ids):
        names = []
        for user_id in user_ids:
            conn = pool.getconn()
            names.append(conn.execute("SELECT full_name FROM users WHERE user_id = %s", [user_id]).fetchone()[0])
        return names

    def keeps_one(pool, user_ids):
        conn = pool.getconn()
        found = dict(conn.execute("SELECT user_id, full_name FROM users WHERE user_id = ANY(%s)",
                                  [list(user_ids)]).fetchall())
        return [found.get(i) for i in user_ids]

    def sorted_names(pool, user_ids):
        return sorted(names_for(pool, user_ids), key=str)

    def strict(pool, user_ids):   # a KeyError for an id without user
        with pool.connection() as conn:
            found = dict(conn.execute("SELECT user_id, full_name FROM users WHERE user_id = ANY(%s)",
                                      [list(user_ids)]).fetchall())
        return [found[i] for i in user_ids]

    rejects(check.pooled_names, own_connections, ws, pattern="did not borrow any connection from the pool")
    rejects(check.pooled_names, never_gives_back, ws, pattern="waited for a free connection and gave up")
    rejects(check.pooled_names, keeps_one, ws, pattern=r"1 connection\(s\) of the pool were still lent out")
    rejects(check.pooled_names, sorted_names, ws, pattern=r"entry \d+ \(user \d+\) is")
    check.pooled_names(strict, ws)   # every id exists in the visible case...
    rejects(check.pooled_names, strict, ws, hidden=True, pattern="raised KeyError")


# --------------------------------------------------------------------------- 07.11 (cache)

def make_route_stats(ws, *, ttl=600, key_per_route=True, decimal=False):
    def route_stats(engine, r, origin, dest):
        key = ws.key("cache", "route", origin, dest) if key_per_route else ws.key("cache", "route")
        cached = r.get(key)
        if cached is not None:
            return json.loads(cached)
        with engine.connect() as conn:
            flights, avg = conn.execute(text("SELECT count(*), avg(arr_delay) FROM flights "
                                             "WHERE origin = :o AND dest = :d"), {"o": origin, "d": dest}).one()
        value = None if avg is None else (round(avg, 1) if decimal else round(float(avg), 1))
        stats = {"flights": flights, "avg_arr_delay": value}
        r.set(key, json.dumps(stats, default=str), ex=ttl) if ttl else r.set(key, json.dumps(stats, default=str))
        return stats
    return route_stats


def test_route_cache_accepts_cache_aside(ws):
    check.route_cache(make_route_stats(ws), ws, hidden=True)


def test_route_cache_rejects(ws):
    def no_cache(engine, r, origin, dest):
        with engine.connect() as conn:
            flights, avg = conn.execute(text(check.ROUTE_SQL.replace("%s", ":o", 1).replace("%s", ":d")),
                                        {"o": origin, "d": dest}).one()
        return {"flights": flights, "avg_arr_delay": None if avg is None else round(float(avg), 1)}

    rejects(check.route_cache, no_cache, ws, pattern="no new Redis key")
    rejects(check.route_cache, make_route_stats(ws, ttl=None), ws, pattern="has no expiry")
    rejects(check.route_cache, make_route_stats(ws, key_per_route=False), ws, pattern="sent no query|expected")
    rejects(check.route_cache, make_route_stats(ws, decimal=True), ws, pattern="cached answer .* differs")


# --------------------------------------------------------------------------- 07.12 (slow-query log)

def make_slow_log(*, level="warning", with_parameters=True, honour_threshold=True, removable=True,
                  on_class=False, shared_start=False):
    """install_slow_log answers, right by default, wrong in one way each when asked."""
    def install_slow_log(engine, threshold_ms, logger):
        target = Engine if on_class else engine
        shared = {}

        def before(conn, cursor, statement, parameters, context, executemany):
            if shared_start:
                shared["start"] = time.perf_counter()
            else:
                conn.info.setdefault("ex_start", []).append(time.perf_counter())

        def after(conn, cursor, statement, parameters, context, executemany):
            start = shared["start"] if shared_start else conn.info["ex_start"].pop()
            elapsed_ms = (time.perf_counter() - start) * 1000
            if elapsed_ms > threshold_ms or not honour_threshold:
                shown = f"{statement} {parameters!r}" if with_parameters else statement
                getattr(logger, level)("slow query, %.0f ms: %s", elapsed_ms, shown)

        event.listen(target, "before_cursor_execute", before)
        event.listen(target, "after_cursor_execute", after)

        def remove():
            if removable:
                event.remove(target, "before_cursor_execute", before)
                event.remove(target, "after_cursor_execute", after)

        return remove
    return install_slow_log


def test_slow_log_accepts_listeners_with_a_remover(ws):
    check.slow_log(make_slow_log(), ws, hidden=True)


@pytest.mark.parametrize("options, pattern", [
    (dict(level="info"), "logged at level INFO; expected WARNING"),
    (dict(with_parameters=False), "does not show the statement's parameters"),
    (dict(honour_threshold=False), "With a threshold of 10,000 ms your listeners logged"),
    (dict(removable=False), "still logged"),
])
def test_slow_log_rejects(ws, options, pattern):
    rejects(check.slow_log, make_slow_log(**options), ws, pattern=pattern)


def test_slow_log_rejects_more_in_hidden_tests(ws):
    check.slow_log(make_slow_log(on_class=True), ws)        # the visible test cannot tell...
    rejects(check.slow_log, make_slow_log(on_class=True), ws, hidden=True,
            pattern="A slow statement on another engine was logged")
    check.slow_log(make_slow_log(shared_start=True), ws)
    rejects(check.slow_log, make_slow_log(shared_start=True), ws, hidden=True,
            pattern="was not logged once while another connection ran a query")


def test_slow_log_rejects_no_remover_and_printing(ws):
    def no_remover(engine, threshold_ms, logger):
        make_slow_log()(engine, threshold_ms, logger)

    def prints(engine, threshold_ms, logger):
        return make_slow_log()(engine, threshold_ms, logging.getLogger("somewhere.else"))

    rejects(check.slow_log, no_remover, ws, pattern="it should return a function that removes the listeners")
    rejects(check.slow_log, prints, ws, pattern="was not logged with a threshold of 50 ms")


# --------------------------------------------------------------------------- 07.13 (SKIP LOCKED)

def claim_skip_locked(conn):
    row = conn.execute("""UPDATE jobs SET status = 'running' WHERE job_id = (
        SELECT job_id FROM jobs WHERE status = 'queued' ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING job_id""").fetchone()
    return row[0] if row else None


def test_claim_job_accepts_skip_locked(ws):
    check.claim_job(claim_skip_locked, ws, hidden=True)


def test_claim_job_rejects_waiting_and_not_marking(ws):
    def waits(conn):
        row = conn.execute("""UPDATE jobs SET status = 'running' WHERE job_id = (
            SELECT job_id FROM jobs WHERE status = 'queued' ORDER BY job_id LIMIT 1 FOR UPDATE)
            RETURNING job_id""").fetchone()
        return row[0] if row else None

    def does_not_mark(conn):
        row = conn.execute("SELECT job_id FROM jobs WHERE status = 'queued' ORDER BY job_id LIMIT 1 "
                           "FOR UPDATE SKIP LOCKED").fetchone()
        return row[0] if row else None

    rejects(check.claim_job, waits, ws, pattern="waited for a job another worker has locked")
    rejects(check.claim_job, does_not_mark, ws, pattern="still 'queued'")


def test_claim_job_reports_concurrent_claims_that_find_nothing(ws):
    calls = {"n": 0}
    lock = threading.Lock()

    def gives_up_once(conn):   # the second of the concurrent claims returns None (as if it found no job)
        with lock:
            calls["n"] += 1
            n = calls["n"]
        return None if n == 3 else claim_skip_locked(conn)

    rejects(check.claim_job, gives_up_once, ws, hidden=True,
            pattern=r"Three workers claiming at once got \[.*None\]; expected jobs 3, 4 and 5")
