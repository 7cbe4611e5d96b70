"""Checks for chapter 03, "MySQL and MariaDB from Python".

Every check runs on the real servers of the learner's namespace (MySQL/MariaDB through PyMySQL or
mysql-connector-python, PostgreSQL through psycopg 3, SQLite through sqlite3) and recomputes the
expected result from the data. Checks that write undo their writes (rollback, or delete what they
created and restore what they changed), so a check can run any number of times.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import uuid
from collections import Counter
from contextlib import closing
from typing import Any

from .compare import Rows, compare_rows, compare_value, fetch_rows, run_sql, values_equal
from .core import Chapter, expect, fail, not_answered

chapter = Chapter("03", "MySQL and MariaDB")
exercise = chapter.exercise
progress = chapter.progress


# --------------------------------------------------------------------------- helpers

LOCK_WAIT_SECONDS = 10


def _mysql(workspace: Any, **kwargs: Any):
    """A fresh PyMySQL connection to the namespace (autocommit off, as PyMySQL's default).

    It waits at most LOCK_WAIT_SECONDS for a lock: a learner's connection left in an open transaction
    (even after a plain SELECT) holds a metadata lock that blocks DDL on the table it read, and the
    default wait (lock_wait_timeout) is 31536000 s, a year, on MySQL and 86400 s, a day, on MariaDB
    10.2.4+.
    """
    conn = workspace.connect_mysql(**kwargs)
    cur = conn.cursor()
    cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}, innodb_lock_wait_timeout = {LOCK_WAIT_SECONDS}")
    cur.close()
    return conn


def _pg(workspace: Any):
    """A psycopg connection that gives up on a lock after LOCK_WAIT_SECONDS."""
    return workspace.connect_postgres(options=f"-c lock_timeout={LOCK_WAIT_SECONDS * 1000}")


LOCK_HINT = ("another connection of yours has an open transaction on that table (even a SELECT opens one when "
             "autocommit is off): call commit() or rollback() on your connections, for example my.rollback() "
             "and pg.rollback(), then run the check again.")


def _friendly_locks(check: Any) -> Any:
    """Turn a lock timeout inside a check into feedback that names the cause."""
    import functools

    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        import psycopg
        import pymysql

        try:
            return check(*args, **kwargs)
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in (1205, 1213):  # lock wait timeout, deadlock
                fail(f"MySQL waited {LOCK_WAIT_SECONDS} s for a lock and gave up ({exc.args[1]}).", hint=LOCK_HINT)
            raise
        except psycopg.errors.LockNotAvailable:
            fail(f"PostgreSQL waited {LOCK_WAIT_SECONDS} s for a lock and gave up.", hint=LOCK_HINT)

    return wrapper


def _fetch(conn: Any, sql: str, params: Any = None) -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()


def _execute(conn: Any, sql: str, params: Any = None) -> int:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return cur.rowcount
    finally:
        cur.close()


def _is_mariadb(conn: Any) -> bool:
    return "mariadb" in _fetch(conn, "SELECT VERSION()")[0][0].lower()


def _table_exists(conn: Any, table: str) -> bool:
    return bool(_fetch(conn, "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                             "AND TABLE_NAME = %s", (table,)))


def _require_tables(conn: Any, *tables: str, where: str) -> None:
    missing = [t for t in tables if not _table_exists(conn, t)]
    expect(not missing, f"the table(s) {missing} do not exist in your MySQL database.",
           hint=f"run the cell that creates them ({where}), then this check again.")


def _quietly(action: Any) -> None:
    """Call ``action`` (a commit, rollback or close) and ignore its errors: cleanup must not mask feedback."""
    try:
        action()
    except Exception:  # noqa: BLE001
        pass


def _reraise_locks(exc: BaseException) -> None:
    """Let lock timeouts and deadlocks reach _friendly_locks instead of becoming "your SQL failed"."""
    import psycopg

    args = getattr(exc, "args", ())
    if (args and args[0] in (1205, 1213)) or isinstance(exc, psycopg.errors.LockNotAvailable):
        raise exc


def _error_text(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if len(args) == 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
        return f"{type(exc).__name__} {args[0]}: {args[1]}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _as_rows(value: Any, name: str) -> Rows:
    """Rows from a list of dicts (what a DictCursor returns); friendly when it is something else."""
    expect(isinstance(value, (list, tuple)), f"`{name}` should return a list of rows, not {type(value).__name__}.",
           hint="return cur.fetchall() from a DictCursor.")
    value = list(value)
    if value and not isinstance(value[0], dict):
        fail(f"`{name}` returned rows as {type(value[0]).__name__}, not as dicts.",
             hint="open the cursor with conn.cursor(pymysql.cursors.DictCursor) so each row is a dict.")
    return fetch_rows(value)


# --------------------------------------------------------------------------- 03.1

COUNTRY_REPORT_SQL = """
SELECT UPPER(country) AS country, COUNT(*) AS customers
FROM users
GROUP BY UPPER(country)
HAVING COUNT(*) >= %s
ORDER BY customers DESC, country
"""


def _check_country_report(func: Any, conn: Any, min_customers: int) -> None:
    got = func(conn, min_customers)
    expected = run_sql(conn, COUNTRY_REPORT_SQL, (min_customers,), what="The reference query")
    rows = _as_rows(got, f"country_report(conn, {min_customers})")
    if not expected.rows:
        expect(not rows.rows, f"country_report(conn, {min_customers}) returned {len(rows.rows)} row(s); "
                              "no country has that many customers, so expected [].",
               hint="filter the groups with HAVING COUNT(*) >= %s.")
        return
    expect(bool(rows.rows), f"country_report(conn, {min_customers}) returned no rows; expected "
                            f"{len(expected.rows)}.", hint="return cur.fetchall() from your DictCursor.")
    compare_rows(rows, expected, ordered=True, what=f"country_report(conn, {min_customers})",
                 order_hint="sort by customers, largest first, then by country code.")


@exercise("03.1", "A DictCursor report", answer="country_report")
@_friendly_locks
def country_report(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "country_report")
    expect(callable(func), "`country_report` should be a function country_report(conn, min_customers).")
    conn = _mysql(workspace)
    try:
        _check_country_report(func, conn, 100)
        if hidden:
            _check_country_report(func, conn, 1)
            _check_country_report(func, conn, 10_000)
            # three customers whose country code is spelled three ways: one group "ZZ"
            next_id = _fetch(conn, "SELECT COALESCE(MAX(user_id), 0) + 1 FROM users")[0][0]
            cur = conn.cursor()
            cur.executemany(
                "INSERT INTO users (user_id, email, full_name, country, city, birth_year, signup_at, is_active, "
                "marketing_opt_in) VALUES (%s, %s, %s, %s, NULL, NULL, '2026-06-30 12:00:00', 1, 0)",
                [(next_id + i, f"check03.{uuid.uuid4().hex[:8]}@example.org", "Check O'Test", code)
                 for i, code in enumerate(["zz", "ZZ", "Zz"])])
            cur.close()
            try:
                _check_country_report(func, conn, 3)
                _check_country_report(func, conn, 50)
            finally:
                conn.rollback()
    finally:
        conn.rollback()
        conn.close()


# --------------------------------------------------------------------------- 03.2

SUMMARY_SQL = """
SELECT u.user_id, u.full_name, COUNT(o.order_id) AS orders, MAX(o.ordered_at) AS last_order_at
FROM users u LEFT JOIN orders o ON o.user_id = u.user_id
WHERE u.user_id = %s
GROUP BY u.user_id, u.full_name
"""

SUMMARY_KEYS = ("user_id", "full_name", "orders", "last_order_at")


@exercise("03.2", "A pooled function", answer="order_summary")
@_friendly_locks
def order_summary(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "order_summary")
    expect(callable(func), "`order_summary` should be a function order_summary(pool, user_id).")
    from mysql.connector import errors as connector_errors
    from mysql.connector import pooling

    conn = _mysql(workspace)
    try:
        top = _fetch(conn, "SELECT user_id FROM orders GROUP BY user_id ORDER BY COUNT(*) DESC, user_id LIMIT 1")[0][0]
        never = _fetch(conn, "SELECT MIN(u.user_id) FROM users u WHERE NOT EXISTS "
                             "(SELECT 1 FROM orders o WHERE o.user_id = u.user_id)")[0][0]
        quote = _fetch(conn, "SELECT MIN(user_id) FROM users WHERE full_name LIKE %s", ("%'%",))[0][0]
        user_ids = [top, never, quote, 1, 2]
        if hidden:
            user_ids += [r[0] for r in _fetch(conn, "SELECT user_id FROM users ORDER BY RAND(%s) LIMIT 5",
                                              (uuid.uuid4().int % 1000,))]
            user_ids += [_fetch(conn, "SELECT MAX(user_id) FROM users")[0][0] + 1, 0]
        expected = {uid: (run_sql(conn, SUMMARY_SQL, (uid,), what="The reference query").as_dicts() or [None])[0]
                    for uid in user_ids}
    finally:
        conn.rollback()
        conn.close()

    params = dict(workspace.mysql_params)
    params.setdefault("use_pure", True)
    pool = pooling.MySQLConnectionPool(pool_name=f"check03_{uuid.uuid4().hex[:10]}", pool_size=2, **params)
    try:
        for number, uid in enumerate(user_ids, start=1):
            try:
                got = func(pool, uid)
            except connector_errors.PoolError:
                fail(f"call number {number} of order_summary found the pool (2 connections) exhausted: your "
                     "function takes a connection and never gives it back.",
                     hint="call conn.close() when you are done (it returns a pooled connection to the pool), "
                          "ideally in a `with` block or `finally:`.")
            want = expected[uid]
            if want is None:
                expect(got is None, f"order_summary(pool, {uid}) returned {got!r}; there is no user {uid}, "
                                    "so expected None.", hint="return None when the query finds no row.")
                continue
            expect(isinstance(got, dict), f"order_summary(pool, {uid}) returned {type(got).__name__}; expected a "
                                          "dict.", hint="use conn.cursor(dictionary=True) and fetchone().")
            keys = sorted(got)
            expect(keys == sorted(SUMMARY_KEYS), f"order_summary(pool, {uid}) has the keys {keys}; expected "
                                                 f"{sorted(SUMMARY_KEYS)}.", hint="name the columns with AS.")
            for key in SUMMARY_KEYS:
                compare_value(got[key], want[key], name=f"order_summary(pool, {uid})[{key!r}]",
                              hint="users without orders have orders 0 and last_order_at None (LEFT JOIN).")
        # every connection must be back: the pool can hand out both again
        try:
            held = [pool.get_connection() for _ in range(2)]
        except connector_errors.PoolError:
            fail("after your calls the pool could not hand out its 2 connections again: one was never returned.",
                 hint="close the pooled connection on every path, including when the user does not exist.")
        for c in held:
            c.close()
    finally:
        try:
            pool._remove_connections()  # disconnect the pool's idle connections
        except Exception:  # pragma: no cover - cleanup only
            pass


# --------------------------------------------------------------------------- 03.3

@exercise("03.3", "A table for emoji", answer="review_archive_ddl")
@_friendly_locks
def review_archive(ddl: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(ddl, "review_archive_ddl")
    expect(isinstance(ddl, str), "`review_archive_ddl` should be a string holding one CREATE TABLE statement.")
    import pymysql

    conn = _mysql(workspace)
    try:
        _execute(conn, "DROP TABLE IF EXISTS review_archive")
        try:
            _execute(conn, ddl)
        except pymysql.err.MySQLError as exc:
            _reraise_locks(exc)
            fail(f"your CREATE TABLE failed: {_error_text(exc)}",
                 hint="run it on its own to see the whole error; the table must be called review_archive.")
        expect(_table_exists(conn, "review_archive"), "your statement ran, but there is no table review_archive.",
               hint="name the table review_archive.")
        engine, collation = _fetch(conn, "SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
                                         "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'review_archive'")[0]
        expect(engine == "InnoDB", f"review_archive uses the {engine} engine; expected InnoDB.",
               hint="add ENGINE=InnoDB: MyISAM and MEMORY have no transactions and no foreign keys.")
        expect(collation.startswith("utf8mb4"), f"review_archive's default collation is {collation}: that is not "
                                                "utf8mb4, so emoji cannot be stored.",
               hint="add DEFAULT CHARSET=utf8mb4 (utf8 means utf8mb3, three bytes at most).")
        cols = {r[0].lower(): r[1:] for r in _fetch(
            conn, "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_KEY, EXTRA, CHARACTER_SET_NAME, COLUMN_DEFAULT "
                  "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'review_archive'")}
        missing = [c for c in ("archive_id", "review_id", "body", "archived_at") if c not in cols]
        expect(not missing, f"review_archive has no column(s) {missing}.",
               hint="the columns are archive_id, review_id, body and archived_at.")
        data_type, nullable, key, extra, charset, default = cols["archive_id"]
        expect(key == "PRI" and "auto_increment" in extra.lower() and data_type == "bigint",
               f"archive_id is {data_type} (key {key or 'none'}, extra {extra or 'none'}); expected a BIGINT "
               "AUTO_INCREMENT primary key.", hint="archive_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY")
        data_type, nullable, *_ = cols["review_id"]
        expect(nullable == "NO", "review_id accepts NULL; it should be NOT NULL.")
        unique = _fetch(conn, "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                              "AND TABLE_NAME = 'review_archive' AND NON_UNIQUE = 0 GROUP BY INDEX_NAME "
                              "HAVING COUNT(*) = 1 AND MAX(COLUMN_NAME) = 'review_id'")
        expect(bool(unique), "review_id is not UNIQUE: the same review could be archived twice.",
               hint="declare review_id INT NOT NULL UNIQUE (or add UNIQUE (review_id)).")
        data_type, nullable, key, extra, charset, default = cols["body"]
        expect(data_type in ("text", "mediumtext", "longtext"), f"body is {data_type}; expected TEXT.")
        expect(charset == "utf8mb4", f"body's character set is {charset}; expected utf8mb4.",
               hint="do not give the column its own CHARACTER SET utf8: utf8 is utf8mb3, without emoji.")
        data_type, nullable, key, extra, charset, default = cols["archived_at"]
        expect(data_type in ("datetime", "timestamp") and nullable == "NO"
               and "current_timestamp" in str(default or "").lower(),
               f"archived_at is {data_type} {'NULL' if nullable == 'YES' else 'NOT NULL'} with default {default!r}; "
               "expected DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP.")
        # the round trip: every review body, emoji included, comes back unchanged
        try:
            _execute(conn, "INSERT INTO review_archive (review_id, body) SELECT review_id, body FROM reviews")
        except pymysql.err.MySQLError as exc:
            _reraise_locks(exc)
            fail(f"copying the shop's reviews into review_archive failed: {_error_text(exc)}",
                 hint="an 'Incorrect string value' error means a column is not utf8mb4.")
        got = _fetch(conn, "SELECT review_id, body FROM review_archive ORDER BY review_id")
        want = _fetch(conn, "SELECT review_id, body FROM reviews ORDER BY review_id")
        expect(got == want, "the review bodies read back from review_archive differ from the originals.",
               hint="every column that holds text must be utf8mb4.")
        ids = _fetch(conn, "SELECT COUNT(DISTINCT archive_id), COUNT(*), SUM(archived_at IS NULL) FROM review_archive")
        expect(ids[0][0] == ids[0][1] and not ids[0][2], "archive_id or archived_at was not filled in by the server.")
        if hidden:
            texts = ["🐘 Elephants 👍🏽 and a flag 🇺🇦", "Zoë, Søren, Yılmaz: €100 ✓", "tab\tand 'quotes' \"too\""]
            base = _fetch(conn, "SELECT MAX(review_id) FROM reviews")[0][0]
            cur = conn.cursor()
            cur.executemany("INSERT INTO review_archive (review_id, body) VALUES (%s, %s)",
                            [(base + i + 1, t) for i, t in enumerate(texts)])
            cur.close()
            back = [r[0] for r in _fetch(conn, "SELECT body FROM review_archive WHERE review_id > %s "
                                               "ORDER BY review_id", (base,))]
            compare_value(back, texts, name="the texts read back")
            try:
                _execute(conn, "INSERT INTO review_archive (review_id, body) VALUES (%s, 'again')", (base + 1,))
            except pymysql.err.IntegrityError:
                pass
            else:
                fail("archiving the same review_id twice was accepted: review_id should be UNIQUE.")
        conn.commit()
    finally:
        conn.rollback()
        conn.close()


# --------------------------------------------------------------------------- 03.4 and 03.5

def _max_order_id(conn: Any) -> int:
    return _fetch(conn, "SELECT COALESCE(MAX(order_id), 0) FROM web_orders")[0][0]


def _cleanup_orders(workspace: Any, above: int, stocks: dict[int, int] | None = None) -> None:
    conn = _mysql(workspace)
    try:
        _execute(conn, "DELETE FROM web_order_items WHERE order_id > %s", (above,))
        _execute(conn, "DELETE FROM web_orders WHERE order_id > %s", (above,))
        for product_id, stock in (stocks or {}).items():
            _execute(conn, "UPDATE products SET stock = %s WHERE product_id = %s", (stock, product_id))
        conn.commit()
    finally:
        conn.close()


def _verify_order(workspace: Any, order_id: Any, user_id: int, items: list[tuple[int, int]], name: str) -> None:
    expect(isinstance(order_id, int) and not isinstance(order_id, bool),
           f"{name} returned {order_id!r}; expected the new order's id (an int).",
           hint="return cur.lastrowid, read right after the INSERT INTO web_orders.")
    fresh = _mysql(workspace)  # a new connection sees only what was committed
    try:
        row = _fetch(fresh, "SELECT user_id FROM web_orders WHERE order_id = %s", (order_id,))
        expect(bool(row), f"{name} returned {order_id}, but a new connection finds no web_orders row with that id.",
               hint="PyMySQL does not autocommit: call conn.commit() before returning (and return cur.lastrowid).")
        expect(row[0][0] == user_id, f"order {order_id} belongs to user {row[0][0]}; expected user {user_id}.")
        got = _fetch(fresh, "SELECT product_id, quantity, unit_price FROM web_order_items WHERE order_id = %s "
                            "ORDER BY product_id", (order_id,))
        placeholders = ", ".join(["%s"] * len(items))
        prices = dict(_fetch(fresh, f"SELECT product_id, price FROM products WHERE product_id IN ({placeholders})",
                             [p for p, _ in items]))
        want = sorted((p, q, prices[p]) for p, q in items)
        compare_rows(Rows(["product_id", "quantity", "unit_price"], got),
                     Rows(["product_id", "quantity", "unit_price"], want),
                     what=f"the items of order {order_id} (as a new connection sees them)")
    finally:
        fresh.close()


@exercise("03.4", "An order and its items with lastrowid", answer="place_order")
@_friendly_locks
def place_order(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "place_order")
    expect(callable(func), "`place_order` should be a function place_order(conn, user_id, items).")
    conn = _mysql(workspace)
    _require_tables(conn, "web_orders", "web_order_items", where="section 4")
    before = _max_order_id(conn)
    conn.rollback()
    cases = [(18, [(1, 2), (3, 1)])]
    if hidden:
        quote_user = _fetch(conn, "SELECT MAX(user_id) FROM users WHERE full_name LIKE %s", ("%'%",))[0][0]
        top = [r[0] for r in _fetch(conn, "SELECT product_id FROM products ORDER BY price DESC, product_id LIMIT 3")]
        cases += [(quote_user, [(top[2], 1), (top[0], 4), (top[1], 2)]), (quote_user, [(7, 1)])]
        conn.rollback()
    try:
        seen = set()
        for user_id, items in cases:
            name = f"place_order(conn, {user_id}, {items})"
            order_id = func(conn, user_id, items)
            _verify_order(workspace, order_id, user_id, items, name)
            expect(order_id not in seen, f"{name} returned {order_id} again: each order needs a new id.")
            seen.add(order_id)
    finally:
        _quietly(conn.rollback)
        _quietly(conn.close)
        _cleanup_orders(workspace, before)


@exercise("03.5", "Find and fix: the half-written order", answer="place_order_with_stock")
@_friendly_locks
def place_order_with_stock(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "place_order_with_stock")
    expect(callable(func), "`place_order_with_stock` should be a function place_order_with_stock(conn, user_id, items).")
    conn = _mysql(workspace)
    _require_tables(conn, "web_orders", "web_order_items", where="section 4")
    in_stock = [r[0] for r in _fetch(conn, "SELECT product_id FROM products WHERE stock >= 10 ORDER BY product_id "
                                           "LIMIT 3")]
    sold_out = _fetch(conn, "SELECT MIN(product_id) FROM products WHERE stock = 0")[0][0]
    missing_product = _fetch(conn, "SELECT MAX(product_id) + 1000 FROM products")[0][0]
    involved = in_stock + [sold_out]
    stocks = dict(_fetch(conn, "SELECT product_id, stock FROM products WHERE product_id IN (%s, %s, %s, %s)",
                         involved))
    before = _max_order_id(conn)
    conn.rollback()

    def stock_now() -> dict[int, int]:
        fresh = _mysql(workspace)
        try:
            return dict(_fetch(fresh, "SELECT product_id, stock FROM products WHERE product_id IN (%s, %s, %s, %s)",
                               involved))
        finally:
            fresh.close()

    def orders_now() -> int:
        fresh = _mysql(workspace)
        try:
            return _fetch(fresh, "SELECT COUNT(*) FROM web_orders WHERE order_id > %s", (before,))[0][0]
        finally:
            fresh.close()

    try:
        # 1. a good order: committed, stock reduced
        items = [(in_stock[0], 2), (in_stock[1], 1)]
        order_id = func(conn, 23, items)
        _verify_order(workspace, order_id, 23, items, f"place_order_with_stock(conn, 23, {items})")
        after_good = stock_now()
        expect(after_good[in_stock[0]] == stocks[in_stock[0]] - 2 and after_good[in_stock[1]] == stocks[in_stock[1]] - 1,
               "after a successful order the stock of its products did not go down by the quantities ordered.")
        orders_after_good = orders_now()

        # 2. an order whose second item is sold out: must fail, and leave no trace
        failing = [[(in_stock[2], 1), (sold_out, 1)]]
        if hidden:
            failing += [[(in_stock[2], 3), (missing_product, 1)], [(in_stock[0], 1), (in_stock[2], 10_000)]]
        for items in failing:
            name = f"place_order_with_stock(conn, 23, {items})"
            try:
                result = func(conn, 23, items)
            except Exception:  # noqa: BLE001 - any exception is the right reaction
                pass
            else:
                fail(f"{name} returned {result!r}, but it cannot succeed: "
                     + ("product %d does not exist." % missing_product if (missing_product, 1) in items
                        else "an item asks for more than the stock."),
                     hint="raise an exception when an item cannot be placed: check cur.rowcount after the UPDATE "
                          "(0 rows means no such product) and let the CHECK (stock >= 0) error propagate.")
            _quietly(conn.commit)  # whatever the function left pending on its connection is committed now
            expect(orders_now() == orders_after_good,
                   f"after {name} failed, a half-written order is left in web_orders.",
                   hint="do not commit after each statement: commit once at the end, and call conn.rollback() "
                        "before re-raising when anything fails.")
            expect(stock_now() == after_good, f"after {name} failed, the stock of some products had changed.",
                   hint="the stock updates must be rolled back together with the order.")
    finally:
        _quietly(conn.rollback)
        _quietly(conn.close)
        _cleanup_orders(workspace, before, stocks)


# --------------------------------------------------------------------------- 03.6

STOCK_DDL = {
    "mysql": "CREATE TABLE stock_levels (sku VARCHAR(20) NOT NULL PRIMARY KEY, qty INT NOT NULL, "
             "deliveries INT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "postgres": "CREATE TABLE stock_levels (sku varchar(20) PRIMARY KEY, qty int NOT NULL, deliveries int NOT NULL)",
}


def _simulate(deliveries: list[dict]) -> list[tuple]:
    state: dict[str, list[int]] = {}
    for d in deliveries:
        if d["sku"] in state:
            state[d["sku"]][0] += d["qty"]
            state[d["sku"]][1] += 1
        else:
            state[d["sku"]] = [d["qty"], 1]
    return sorted((sku, q, n) for sku, (q, n) in state.items())


def _run_upserts(conn: Any, sql: str, deliveries: list[dict], server: str) -> list[tuple]:
    cur = conn.cursor()
    try:
        for number, params in enumerate(deliveries, start=1):
            try:
                cur.execute(sql, params)
            except Exception as exc:  # noqa: BLE001 - the database's answer becomes feedback
                _reraise_locks(exc)
                conn.rollback()
                text = _error_text(exc)
                hint = "run it on its own with the same parameters to see the whole error."
                if "duplicate" in text.lower() or "unique" in text.lower():
                    hint = ("a plain INSERT fails when the sku exists: add ON DUPLICATE KEY UPDATE (MySQL) or "
                            "ON CONFLICT (sku) DO UPDATE (PostgreSQL).")
                elif "syntax" in text.lower():
                    hint = ("each server has its own upsert syntax; on MariaDB the `AS new` row alias of MySQL 8 is "
                            "a syntax error: use VALUES(qty) or the parameter again.")
                fail(f"your {server} statement failed on delivery {number} {params}: {text}", hint=hint)
        cur.execute("SELECT sku, qty, deliveries FROM stock_levels ORDER BY sku")
        return [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()


@exercise("03.6", "One upsert, two dialects", answer="upsert_mysql_sql")
@_friendly_locks
def upsert(mysql_sql: Any, postgres_sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(mysql_sql, "upsert_mysql_sql")
    not_answered(postgres_sql, "upsert_postgres_sql")
    expect(isinstance(mysql_sql, str) and isinstance(postgres_sql, str), "both answers should be SQL strings.")
    deliveries = [{"sku": "SKU-1", "qty": 5}, {"sku": "SKU-2", "qty": 3}, {"sku": "SKU-1", "qty": 2}]
    if hidden:
        deliveries += [{"sku": "O'REILLY-9", "qty": 1}, {"sku": "SKU-2", "qty": 10}, {"sku": "SKU-1", "qty": 1},
                       {"sku": "O'REILLY-9", "qty": 4}, {"sku": "SKU-3", "qty": 0}]
    expected = _simulate(deliveries)
    cols = ["sku", "qty", "deliveries"]
    conn = _mysql(workspace)
    try:
        _execute(conn, "DROP TABLE IF EXISTS stock_levels")
        _execute(conn, STOCK_DDL["mysql"])
        got = _run_upserts(conn, mysql_sql, deliveries, "MySQL")
        conn.commit()
    finally:
        conn.rollback()
        conn.close()
    compare_rows(Rows(cols, got), Rows(cols, expected), ordered=True, what="stock_levels in MySQL after the deliveries",
                 order_hint="rows are read back ordered by sku.")
    with _pg(workspace) as pg:
        pg.execute("DROP TABLE IF EXISTS stock_levels")
        pg.execute(STOCK_DDL["postgres"])
        got = _run_upserts(pg, postgres_sql, deliveries, "PostgreSQL")
        pg.commit()
    compare_rows(Rows(cols, got), Rows(cols, expected), ordered=True,
                 what="stock_levels in PostgreSQL after the deliveries", order_hint="rows are read back ordered by sku.")


# --------------------------------------------------------------------------- 03.7

LABELS_DDL = {
    "MySQL": "CREATE TABLE labels (label_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
             "name VARCHAR(60) NOT NULL UNIQUE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "PostgreSQL": "CREATE TABLE labels (label_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                  "name varchar(60) NOT NULL UNIQUE)",
    "SQLite": "CREATE TABLE labels (label_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
}


@exercise("03.7", "One function, three drivers", answer="add_label")
@_friendly_locks
def add_label(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "add_label")
    expect(callable(func), "`add_label` should be a function add_label(conn, name) -> int.")
    names = ["sql", "O'Reilly"]
    if hidden:
        names += ["emoji 🐘", "ü-ß-é", "x" * 60]
    sqlite_path = workspace.path("labels_check.db")

    def new_connection(server: str):
        if server == "MySQL":
            return _mysql(workspace)
        if server == "PostgreSQL":
            return _pg(workspace)
        return sqlite3.connect(sqlite_path)

    for server in ("MySQL", "PostgreSQL", "SQLite"):
        setup = new_connection(server)
        try:
            cur = setup.cursor()
            cur.execute("DROP TABLE IF EXISTS labels")
            cur.execute(LABELS_DDL[server])
            if hidden:  # ids that do not start at 1, and differ per server
                start = {"MySQL": 101, "PostgreSQL": 201, "SQLite": 301}[server]
                if server == "MySQL":
                    cur.execute(f"ALTER TABLE labels AUTO_INCREMENT = {start}")
                elif server == "PostgreSQL":
                    cur.execute(f"ALTER TABLE labels ALTER COLUMN label_id RESTART WITH {start}")
                else:
                    cur.execute("INSERT INTO labels (label_id, name) VALUES (?, 'seed')", (start - 1,))
            cur.close()
            setup.commit()
        finally:
            setup.close()
        conn = new_connection(server)
        try:
            for name in names:
                try:
                    got = func(conn, name)
                except NotImplementedError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    _reraise_locks(exc)
                    fail(f"add_label(<{server} connection>, {name!r}) raised {_error_text(exc)}",
                         hint="each driver has its placeholder: %s for PyMySQL and psycopg, ? for sqlite3.")
                expect(isinstance(got, int) and not isinstance(got, bool),
                       f"add_label(<{server} connection>, {name!r}) returned {got!r}; expected the new label_id.",
                       hint="cursor.lastrowid (MySQL, SQLite) or INSERT ... RETURNING label_id (PostgreSQL).")
                check = new_connection(server)
                try:
                    cur = check.cursor()
                    cur.execute("SELECT label_id FROM labels WHERE name = " + ("?" if server == "SQLite" else "%s"),
                                (name,))
                    row = cur.fetchone()
                    cur.close()
                finally:
                    check.close()
                expect(row is not None, f"after add_label(<{server} connection>, {name!r}) a new connection finds no "
                                        "such label.", hint="commit before returning.")
                expect(row[0] == got, f"add_label(<{server} connection>, {name!r}) returned {got}, but the row has "
                                      f"label_id {row[0]}.", hint="return the id the database generated.")
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()


# --------------------------------------------------------------------------- 03.8

COLLATION_CONDITIONS = {
    "A": "email = 'ALICE@example.com'",
    "B": "email = 'alice@example.com   '",
    "C": "email = '  alice@example.com'",
    "D": "email LIKE 'ALICE%'",
    "E": "email = 'alicé@example.com'",
    "F": "email < 'Bob@example.com'",
}
SERVERS = ("mysql", "postgres", "sqlite")

#: The hidden test: the same six kinds of condition (case, trailing spaces, leading spaces, LIKE with
#: another case, an accent, order against a capital) on other stored e-mails, so that a prediction
#: must follow the rule, not the one string of the exercise.
COLLATION_VARIANTS = [
    ("carol.smith@shop.example", {
        "A": "email = 'Carol.Smith@SHOP.example'",
        "B": "email = 'carol.smith@shop.example '",
        "C": "email = ' carol.smith@shop.example'",
        "D": "email LIKE 'CAROL.%'",
        "E": "email = 'carol.smïth@shop.example'",
        "F": "email < 'Dave@shop.example'",
    }),
    ("zoe.martin@mail.example", {
        "A": "email = 'ZOE.MARTIN@MAIL.EXAMPLE'",
        "B": "email = 'zoe.martin@mail.example      '",
        "C": "email = '   zoe.martin@mail.example'",
        "D": "email LIKE 'Zoe.Mar%'",
        "E": "email = 'zoë.martin@mail.example'",
        "F": "email < 'Zoe.zz@mail.example'",
    }),
]


def _truth_on(workspace: Any, stored: str, conditions: dict[str, str]) -> dict[str, dict[str, bool]]:
    """Run every condition on a one-row table holding ``stored`` in each server."""
    truth: dict[str, dict[str, bool]] = {k: {} for k in conditions}
    conn = _mysql(workspace)
    try:
        _execute(conn, "CREATE TEMPORARY TABLE collation_check (email VARCHAR(60) NOT NULL)")
        _execute(conn, "INSERT INTO collation_check VALUES (%s)", (stored,))
        for key, cond in conditions.items():
            truth[key]["mysql"] = bool(_fetch(conn, f"SELECT COUNT(*) FROM collation_check WHERE {cond}")[0][0])
    finally:
        conn.rollback()
        conn.close()
    with _pg(workspace) as pg:
        pg.execute("CREATE TEMPORARY TABLE collation_check (email varchar(60) NOT NULL)")
        pg.execute("INSERT INTO collation_check VALUES (%s)", (stored,))
        for key, cond in conditions.items():
            truth[key]["postgres"] = bool(pg.execute(f"SELECT COUNT(*) FROM collation_check WHERE {cond}")
                                          .fetchone()[0])
        pg.rollback()
    with closing(sqlite3.connect(":memory:")) as lite:
        lite.execute("CREATE TABLE collation_check (email TEXT NOT NULL)")
        lite.execute("INSERT INTO collation_check VALUES (?)", (stored,))
        for key, cond in conditions.items():
            truth[key]["sqlite"] = bool(lite.execute(f"SELECT COUNT(*) FROM collation_check WHERE {cond}")
                                        .fetchone()[0])
    return truth


def collation_truth(workspace: Any) -> dict[str, dict[str, bool]]:
    """Run every condition on a one-row table in each server: what each really answers."""
    return _truth_on(workspace, "alice@example.com", COLLATION_CONDITIONS)


COLLATION_HINTS = {
    "A": "MySQL's _ci collations ignore case; PostgreSQL and SQLite compare exactly by default.",
    "B": "PAD SPACE collations ignore trailing spaces in =; PostgreSQL's text and SQLite do not.",
    "C": "no collation ignores leading spaces.",
    "D": "LIKE follows the column's collation in MySQL; SQLite's LIKE ignores ASCII case by default.",
    "E": "utf8mb4_unicode_ci is also accent-insensitive (é = e).",
    "F": "in a case-insensitive collation 'a' sorts before 'B'; in byte order every capital sorts before every "
         "small letter.",
}


@exercise("03.8", "Predict: case, spaces and accents", answer="predictions")
@_friendly_locks
def predictions(answer: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(answer, "predictions")
    expect(isinstance(answer, dict), "`predictions` should be a dict such as {'A': {'mysql': True, ...}, ...}.")
    missing = [k for k in COLLATION_CONDITIONS if k not in answer]
    expect(not missing, f"`predictions` has no entry for {missing}.", hint="use the keys 'A' to 'F'.")
    for key in COLLATION_CONDITIONS:
        entry = answer[key]
        expect(isinstance(entry, dict) and all(s in entry for s in SERVERS),
               f"predictions[{key!r}] should be a dict with the keys 'mysql', 'postgres' and 'sqlite'.")
        for server in SERVERS:
            expect(isinstance(entry[server], bool),
                   f"predictions[{key!r}][{server!r}] is {entry[server]!r}; use True or False.")
    truth = collation_truth(workspace)
    wrong = [(k, s) for k in COLLATION_CONDITIONS for s in SERVERS if answer[k][s] != truth[k][s]]
    if wrong:
        key, server = wrong[0]
        fail(f"{len(wrong)} of {len(COLLATION_CONDITIONS) * len(SERVERS)} predictions are wrong, for example "
             f"{key} ({COLLATION_CONDITIONS[key]}) on {server}: you said {answer[key][server]}.",
             hint=COLLATION_HINTS[key])
    if hidden:
        for stored, conditions in COLLATION_VARIANTS:
            other = _truth_on(workspace, stored, conditions)
            wrong = [(k, s) for k in conditions for s in SERVERS if answer[k][s] != other[k][s]]
            if wrong:
                key, server = wrong[0]
                fail(f"with {stored!r} stored instead, the condition of the same kind as {key} "
                     f"({conditions[key]}) gives {other[key][server]} on {server}, but your prediction for {key} "
                     f"says {answer[key][server]}: {len(wrong)} prediction(s) do not follow the rule.",
                     hint=COLLATION_HINTS[key])


# --------------------------------------------------------------------------- 03.9

def _expected_duplicates(emails: list[str]) -> Rows:
    counts = Counter(e.strip(" ").lower() for e in emails)
    return Rows(["email", "accounts"], sorted((e, n) for e, n in counts.items() if n > 1))


EXTRA_SIGNUPS = ["  Bob@Example.org", "bob@example.org ", "BOB@EXAMPLE.ORG", "carol@example.org",
                 "o'hara@example.org", "  O'Hara@Example.org  ", "dave@example.org", " dave@example.org"]


def _check_duplicates_on(conn: Any, sql: str, server: str, hidden: bool) -> None:
    emails = [r[0] for r in _fetch(conn, "SELECT email FROM signups")]
    got = run_sql(conn, sql, what=f"Your query on {server}")
    compare_rows(got, _expected_duplicates(emails), what=f"Your query on {server}")
    if hidden:
        cur = conn.cursor()
        cur.executemany("INSERT INTO signups (email) VALUES (%s)", [(e,) for e in EXTRA_SIGNUPS])
        cur.close()
        try:
            emails = [r[0] for r in _fetch(conn, "SELECT email FROM signups")]
            got = run_sql(conn, sql, what=f"Your query on {server} (with more sign-ups)")
            compare_rows(got, _expected_duplicates(emails), what=f"Your query on {server} (with more sign-ups)")
        finally:
            conn.rollback()


@exercise("03.9", "Find and fix: the same person, signed up twice", answer="duplicate_emails_sql")
@_friendly_locks
def duplicate_emails(sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(sql, "duplicate_emails_sql")
    conn = _mysql(workspace)
    try:
        _require_tables(conn, "signups", where="section 7.4")
        _check_duplicates_on(conn, sql, "MySQL", hidden)
    finally:
        conn.rollback()
        conn.close()
    with _pg(workspace) as pg:
        exists = pg.execute("SELECT to_regclass('signups') IS NOT NULL").fetchone()[0]
        expect(exists, "the table signups does not exist in your PostgreSQL database.",
               hint="run the cell of section 7.4 that creates it in both servers.")
        _check_duplicates_on(pg, sql, "PostgreSQL", hidden)
        pg.rollback()


# --------------------------------------------------------------------------- 03.10

PURCHASES_REFERENCE = """
SELECT event_id, user_id, product_id, occurred_at
FROM events
WHERE event_type = 'purchase' AND occurred_at >= %(day)s AND occurred_at < %(day)s + INTERVAL 1 DAY
ORDER BY event_id
"""


def _events_plan(conn: Any, sql: str, params: dict) -> dict:
    import pymysql

    cur = conn.cursor(pymysql.cursors.DictCursor)
    try:
        cur.execute("EXPLAIN " + sql, params)
        rows = cur.fetchall()
    except Exception as exc:  # noqa: BLE001 - a database or placeholder error becomes feedback
        _reraise_locks(exc)
        _quietly(conn.rollback)
        fail(f"EXPLAIN of your query failed: {_error_text(exc)}",
             hint="use the named placeholder %(day)s wherever the day goes (the check passes {'day': a date}).")
    finally:
        cur.close()
    plan = [r for r in rows if r.get("table") == "events"]
    expect(len(plan) == 1, "your query should read the events table once (one row of EXPLAIN for events).")
    return plan[0]


_INDEX_NAME = re.compile(r"^\s*create\s+(?:or\s+replace\s+)?(?:unique\s+)?index\s+(?:if\s+not\s+exists\s+)?"
                         r"(`(?:[^`]|``)+`|[\w$]+)", re.I)


def _event_indexes(conn: Any) -> dict[str, list[str]]:
    """The indexes of events: name -> its columns, in index order."""
    indexes: dict[str, list[str]] = {}
    for name, column in _fetch(conn, "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                                     "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'events' "
                                     "ORDER BY INDEX_NAME, SEQ_IN_INDEX"):
        indexes.setdefault(name, []).append((column or "").lower())
    return indexes


def _drop_event_index(conn: Any, name: str, indexes: dict[str, list[str]]) -> None:
    """Drop index ``name`` of events. When a foreign key relies on it (error 1553: InnoDB dropped the
    foreign key's own index when an index starting with the same column was created), first give that
    foreign key an index of its own again."""
    import pymysql

    quoted = "`" + name.replace("`", "``") + "`"
    try:
        _execute(conn, f"DROP INDEX {quoted} ON events")
        return
    except pymysql.err.MySQLError as exc:
        _reraise_locks(exc)
        if not exc.args or exc.args[0] != 1553:
            fail(f"the check could not replace your earlier index {name!r}: {_error_text(exc)}",
                 hint="choose another name for your index.")
    foreign = {}
    for constraint, column in _fetch(conn, "SELECT CONSTRAINT_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                                           "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'events' "
                                           "AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY CONSTRAINT_NAME, "
                                           "ORDINAL_POSITION"):
        foreign.setdefault(constraint, []).append(column.lower())
    for columns in foreign.values():
        served = [other for other, cols in indexes.items() if other != name and cols[:len(columns)] == columns]
        if indexes.get(name, [])[:len(columns)] == columns and not served:
            spare = next(f"{columns[0]}_fk{n or ''}" for n in range(100) if f"{columns[0]}_fk{n or ''}" not in indexes)
            _execute(conn, f"CREATE INDEX `{spare}` ON events ({', '.join(f'`{c}`' for c in columns)})")
    try:
        _execute(conn, f"DROP INDEX {quoted} ON events")
    except pymysql.err.MySQLError as exc:
        _reraise_locks(exc)
        fail(f"the check could not replace your earlier index {name!r}: {_error_text(exc)}",
             hint="choose another name for your index.")


def _used_key_parts(conn: Any, sql: str, params: dict) -> list[str] | None:
    """The columns of the chosen index that the plan of ``sql`` uses on events (EXPLAIN FORMAT=JSON)."""
    import json

    try:
        document = json.loads(_fetch(conn, "EXPLAIN FORMAT=JSON " + sql, params)[0][0])
    except Exception as exc:  # noqa: BLE001 - the tabular EXPLAIN worked; this is only a refinement
        _reraise_locks(exc)
        return None

    def walk(node: Any) -> list[str] | None:
        if isinstance(node, dict):
            if node.get("table_name") == "events" and isinstance(node.get("used_key_parts"), list):
                return [str(part).lower() for part in node["used_key_parts"]]
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            return None
        for child in children:
            found = walk(child)
            if found is not None:
                return found
        return None

    return walk(document)


@exercise("03.10", "Find and fix: a slow query", answer="purchases_sql")
@_friendly_locks
def purchases(index_sql: Any, query_sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(index_sql, "purchases_index_sql")
    not_answered(query_sql, "purchases_sql")
    import pymysql

    expect(isinstance(index_sql, str) and isinstance(query_sql, str), "both answers should be SQL strings.")
    match = _INDEX_NAME.match(index_sql)
    expect(match is not None, "`purchases_index_sql` should be one CREATE INDEX statement.",
           hint="CREATE INDEX name ON events (columns ...)")
    name = match.group(1)
    name = name[1:-1].replace("``", "`") if name.startswith("`") else name
    conn = _mysql(workspace)
    try:
        before = _event_indexes(conn)
        found = next((existing for existing in before if existing.lower() == name.lower()), None)
        if found is not None:  # left by an earlier run of this check (or of the answer): replace it
            expect(found != "PRIMARY", "an index cannot be called PRIMARY: choose another name.")
            _drop_event_index(conn, found, before)
        try:
            _execute(conn, index_sql)
        except pymysql.err.MySQLError as exc:
            _reraise_locks(exc)
            fail(f"your CREATE INDEX failed: {_error_text(exc)}",
                 hint="write one CREATE INDEX name ON events (columns) statement.")
        indexes = _event_indexes(conn)
        mine = next((existing for existing in indexes if existing.lower() == name.lower()), None)
        expect(mine is not None, f"your statement ran, but events has no index named {name!r}.",
               hint="the slow query reads events: CREATE INDEX name ON events (columns).")
        my_columns = indexes[mine]
        days = [dt.date(2026, 6, 26)]
        if hidden:
            days += [dt.date(2025, 11, 28), dt.date(2026, 1, 2), dt.date(2024, 12, 24)]
        for day in days:
            params = {"day": day}
            plan = _events_plan(conn, query_sql, params)
            kind, key = plan.get("type"), plan.get("key")
            if key is None or kind == "ALL":
                fail(f"for day={day}, EXPLAIN shows type={kind}, key=None: MySQL still reads every event.",
                     hint="create an index that starts with the columns of the WHERE clause.")
            if kind == "index" or key == "PRIMARY":
                fail(f"for day={day}, EXPLAIN shows type={kind}, key={key}: MySQL walks the whole primary key "
                     "(it avoids the sort, but reads every row).",
                     hint="your index is not usable: a function around a column, such as DATE(occurred_at), hides it "
                          "from the index.")
            if key.lower() != mine.lower():
                # another index does the work: fine only if yours starts with the columns it uses
                used = _used_key_parts(conn, query_sql, params) or indexes.get(key, [])
                if not used or used != my_columns[:len(used)]:
                    fail(f"for day={day}, EXPLAIN shows key={key}, an index on {indexes.get(key, [])} that your "
                         f"statement did not create (yours, {mine}, is on {my_columns}): the plan must come from "
                         "your index.",
                         hint=f"an index left over from an earlier attempt is doing the work; make your own index "
                              f"the one that serves the query (or drop the old one: DROP INDEX {key} ON events).")
            if kind != "range":
                fail(f"for day={day}, EXPLAIN shows type={kind}, key={key}: the index finds the purchases, but the "
                     "date is not used to narrow the search.",
                     hint="make the date a range on the bare column (occurred_at >= day AND occurred_at < day + 1 "
                          "day) and put occurred_at in the index after event_type.")
            got = run_sql(conn, query_sql, params, what=f"Your query (day={day})")
            expected = run_sql(conn, PURCHASES_REFERENCE, params, what="The reference query")
            compare_rows(got, expected, ordered=True, what=f"Your query (day={day})",
                         order_hint="keep ORDER BY event_id.")
        if hidden:  # a day without purchases gives no rows, not an error
            params = {"day": dt.date(2020, 1, 1)}
            compare_rows(run_sql(conn, query_sql, params, what="Your query (a day without purchases)"),
                         run_sql(conn, PURCHASES_REFERENCE, params), what="Your query (a day without purchases)")
    finally:
        conn.rollback()
        conn.close()


# --------------------------------------------------------------------------- 03.11

def reference_features(version: str) -> dict[str, Any]:
    """What the course's rules say about a server that reports ``version`` (see section 8)."""
    text = version.strip()
    if "mariadb" in text.lower():
        text = re.sub(r"^5\.5\.5-", "", text)  # MariaDB's old replication/handshake prefix
        major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", text).groups())
        return {"flavour": "MariaDB", "returning": (major, minor) >= (10, 5), "row_alias": False,
                "sequences": (major, minor) >= (10, 3)}
    major, minor, patch = (int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups())
    return {"flavour": "MySQL", "returning": False, "row_alias": (major, minor, patch) >= (8, 0, 19),
            "sequences": False}


@exercise("03.11", "MariaDB or MySQL: what can this server do?", answer="dialect_features")
@_friendly_locks
def dialect_features(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "dialect_features")
    expect(callable(func), "`dialect_features` should be a function dialect_features(version) -> dict.")
    conn = _mysql(workspace)
    try:
        server_version = _fetch(conn, "SELECT VERSION()")[0][0]
    finally:
        conn.close()
    versions = [server_version, "8.0.36", "10.4.32-MariaDB"]
    if hidden:
        versions += ["8.0.18", "8.0.19", "8.4.3", "9.1.0-commercial", "5.7.44-log", "10.5.0-MariaDB",
                     "10.2.44-MariaDB-log", "10.3.39-MariaDB-0+deb10u1", "11.4.2-MariaDB-ubu2404",
                     "5.5.5-10.11.6-MariaDB-0+deb12u1"]
    keys = ["flavour", "returning", "row_alias", "sequences"]
    for version in versions:
        try:
            got = func(version)
        except NotImplementedError:
            raise
        except Exception as exc:  # noqa: BLE001
            fail(f"dialect_features({version!r}) raised {type(exc).__name__}: {exc}",
                 hint="take the numbers with a regular expression such as r'(\\d+)\\.(\\d+)\\.(\\d+)'.")
        expect(isinstance(got, dict) and sorted(got) == sorted(keys),
               f"dialect_features({version!r}) returned {got!r}; expected a dict with the keys {keys}.")
        want = reference_features(version)
        for key in keys:
            if not values_equal(got[key], want[key]) or type(got[key]) is not type(want[key]):
                fail(f"dialect_features({version!r})[{key!r}] is {got[key]!r}; expected {want[key]!r}.",
                     hint={"flavour": "MariaDB always says 'MariaDB' in its version; MySQL never does.",
                           "returning": "INSERT ... RETURNING: MariaDB 10.5 and later; no MySQL version.",
                           "row_alias": "the `AS new` row alias of ON DUPLICATE KEY UPDATE: MySQL 8.0.19 and later; "
                                        "not MariaDB.",
                           "sequences": "CREATE SEQUENCE: MariaDB 10.3 and later; not MySQL."}[key])

