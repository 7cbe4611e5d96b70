"""Chapter 01's checks accept right answers and reject wrong ones with a helpful message.

The checks run on a real SQLite copy of the shop (loaded once into a temporary folder), exactly
as they do in the notebook; nothing is mocked.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from types import SimpleNamespace

import pytest

from dbcourse.checks import NotAnswered
from dbcourse.checks import ch01 as check

from .conftest import feedback
from dbcourse.datasets import load


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ch01")
    load("shop", "sqlite", namespace="test_ch01_checks", sqlite_path=folder / "shop.db")
    return SimpleNamespace(sqlite_path=folder / "shop.db", path=lambda name: folder / name)


def rejects(exercise, answer, pattern, *args, **kwargs):
    """Assert that ``exercise`` refuses ``answer`` with a message matching ``pattern``."""
    text = feedback(exercise, answer, *args, **kwargs)
    assert re.search(pattern, text, re.S), text
    return text


# --------------------------------------------------------------------------- 01.1

def cheapest_products(path, n):
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT sku, name, price FROM products WHERE is_discontinued = 0 "
                            "ORDER BY price, sku LIMIT ?", (n,)).fetchall()
    return [dict(row) for row in rows]


def test_cheapest_products(course):
    check.cheapest_products(cheapest_products, course)
    check.cheapest_products(cheapest_products, course, hidden=True)

    def tuples(path, n):
        with closing(sqlite3.connect(path)) as conn:
            return conn.execute("SELECT sku, name, price FROM products ORDER BY price LIMIT ?", (n,)).fetchall()
    rejects(check.cheapest_products, tuples, r"list of tuple.*dict\(row\)", course)

    def with_discontinued(path, n):
        with closing(sqlite3.connect(path)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT sku, name, price FROM products ORDER BY price, sku LIMIT ?",
                                                  (n,))]
    rejects(check.cheapest_products, with_discontinued, r"cheapest_products\(path, 1000\) has 300 row\(s\); "
                                                        r"expected 296", course)

    def without_tie_breaker(path, n):
        with closing(sqlite3.connect(path)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT sku, name, price FROM products WHERE is_discontinued = 0 "
                                                  "ORDER BY price, sku DESC LIMIT ?", (n,))]
    rejects(check.cheapest_products, without_tie_breaker, r"not in the order asked.*sku order", course, hidden=True)
    with pytest.raises(NotAnswered):
        check.cheapest_products(None, course)


# --------------------------------------------------------------------------- 01.2 to 01.6: SQL answers

def test_german_seniors(course):
    check.german_seniors(check.GERMAN_SENIORS, course)
    check.german_seniors(check.GERMAN_SENIORS, course, hidden=True)
    rejects(check.german_seniors, check.GERMAN_SENIORS.replace("upper(country)", "country"),
            r"misses 1 customer.*written \['de'\].*lower case", course)
    rejects(check.german_seniors, check.GERMAN_SENIORS.replace("ORDER BY birth_year, user_id", "ORDER BY user_id"),
            r"not in the order asked.*oldest first", course)
    rejects(check.german_seniors, "SELECT user_id, full_name FROM users", r"missing column\(s\) \['birth_year'\]",
            course)
    rejects(check.german_seniors, "SELECT user_id, full_name, birth_year FROM user", r"no such table: user", course)
    with pytest.raises(NotAnswered):
        check.german_seniors("   ", course)


def test_never_ordered(course):
    check.never_ordered(check.NEVER_ORDERED, course)
    check.never_ordered(check.NEVER_ORDERED, course, hidden=True)
    rejects(check.never_ordered, check.NEVER_ORDERED.replace("LEFT JOIN", "JOIN"), r"no rows at all.*LEFT JOIN",
            course)
    # A hard-coded list of ids passes the visible check but not the hidden one, which changes the data.
    with closing(check.memory_copy(course)) as conn:
        ids = ", ".join(str(r[0]) for r in conn.execute(check.NEVER_ORDERED))
    hard_coded = ("SELECT user_id, full_name, signup_at FROM users WHERE user_id IN (" + ids + ") "
                  "ORDER BY signup_at DESC, user_id")
    check.never_ordered(hard_coded, course)
    rejects(check.never_ordered, hard_coded, r"hidden test, on changed data", course, hidden=True)


def test_category_revenue(course):
    check.category_revenue(check.CATEGORY_REVENUE, course)
    check.category_revenue(check.CATEGORY_REVENUE, course, hidden=True)
    rejects(check.category_revenue, check.CATEGORY_REVENUE.replace("'cancelled', ", ""), r"11 row\(s\); expected 10",
            course)
    counts_items = check.CATEGORY_REVENUE.replace("COUNT(DISTINCT o.order_id)", "COUNT(*)")
    assert counts_items != check.CATEGORY_REVENUE
    rejects(check.category_revenue, counts_items, r"some values differ", course)


def test_monthly_revenue(course):
    check.monthly_revenue(check.MONTHLY_REVENUE, course)
    check.monthly_revenue(check.MONTHLY_REVENUE, course, hidden=True)
    rejects(check.monthly_revenue, check.BUGGY_MONTHLY_REVENUE, r"still the colleague's query", course)
    rejects(check.monthly_revenue, check.MONTHLY_REVENUE.replace("o.ordered_at < '2026-01-01'",
                                                                 "o.ordered_at <= '2025-12-31'"),
            r"except December 2025.*BETWEEN", course)
    rejects(check.monthly_revenue, check.MONTHLY_REVENUE.replace("i.unit_price", "i.unit_price * 1.1"),
            r"`revenue` column is off.*unit_price", course)
    rejects(check.monthly_revenue, check.MONTHLY_REVENUE.replace("LEFT JOIN", "JOIN"),
            r"`orders` column is off.*no items \(LEFT JOIN\)", course)
    rejects(check.monthly_revenue, check.MONTHLY_REVENUE.replace("'cancelled', ", ""),
            r"`orders` column is off", course)


def test_category_paths(course):
    check.category_paths(check.CATEGORY_PATHS, course)
    check.category_paths(check.CATEGORY_PATHS, course, hidden=True)
    two_levels = """
        SELECT c.category_id, coalesce(p.name || ' > ', '') || c.name AS path,
               CASE WHEN p.category_id IS NULL THEN 1 ELSE 2 END AS depth
        FROM categories AS c LEFT JOIN categories AS p ON p.category_id = c.parent_id
        ORDER BY path"""
    check.category_paths(two_levels, course)  # right for today's two-level tree...
    rejects(check.category_paths, two_levels, r"full depth \(5 levels here\).*'Books > Databases > SQLite'.*"
                                              r"recursive CTE", course, hidden=True)  # ...but not for any depth
    rejects(check.category_paths, check.CATEGORY_PATHS.replace("ORDER BY path", "ORDER BY category_id"),
            r"not in the order asked.*ORDER BY path", course)


# --------------------------------------------------------------------------- 01.7 DDL

COUPONS = """
CREATE TABLE coupons (
    coupon_id   INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    percent_off INTEGER NOT NULL CHECK (percent_off BETWEEN 5 AND 50),
    user_id     INTEGER REFERENCES users (user_id),
    max_uses    INTEGER NOT NULL DEFAULT 1 CHECK (max_uses >= 1),
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)"""


def test_coupons():
    check.coupons(COUPONS)
    check.coupons(COUPONS, hidden=True)
    rejects(check.coupons, COUPONS.replace(" UNIQUE", ""), r"accepted a second coupon with the code.*UNIQUE")
    rejects(check.coupons, COUPONS.replace(" REFERENCES users (user_id)", ""), r"user 99.*FOREIGN KEY")
    rejects(check.coupons, COUPONS.replace("DEFAULT 1 ", ""), r"rejected a plain coupon.*max_uses")
    rejects(check.coupons, COUPONS.replace(" DEFAULT CURRENT_TIMESTAMP", ""), r"rejected a plain coupon.*created_at")
    rejects(check.coupons, COUPONS.replace("BETWEEN 5 AND 50", "> 5 AND percent_off < 50"),
            r"rejected a coupon for user 1 used up to 3 times \(CHECK constraint failed: percent_off > 5.*valid")
    rejects(check.coupons, COUPONS.replace("BETWEEN 5 AND 50", "BETWEEN 6 AND 50"),
            r"rejected a coupon with percent_off = 5", hidden=True)
    rejects(check.coupons, COUPONS.replace("coupon_id   INTEGER PRIMARY KEY", "coupon_id INTEGER"),
            r"numbered automatically")
    rejects(check.coupons, "CREATE TABLE coupon (x)", r"no table `coupons`")
    nullable_time = COUPONS.replace("created_at  TEXT NOT NULL DEFAULT", "created_at  TEXT DEFAULT")
    assert nullable_time != COUPONS
    check.coupons(nullable_time)  # the visible cases never insert an explicit NULL...
    rejects(check.coupons, nullable_time, r"accepted a coupon with created_at = NULL.*NOT NULL", hidden=True)
    rejects(check.coupons, "CREATE TABLE coupons (", r"DDL failed in SQLite")


# --------------------------------------------------------------------------- 01.8 executemany

def restock(conn, deliveries):
    with conn:
        cur = conn.executemany("UPDATE products SET stock = stock + ? WHERE sku = ?",
                               ((quantity, sku) for sku, quantity in deliveries))
    return cur.rowcount


def test_restock(course):
    check.restock(restock, course)
    check.restock(restock, course, hidden=True)

    def uncommitted(conn, deliveries):
        return conn.executemany("UPDATE products SET stock = stock + ? WHERE sku = ?",
                                [(q, s) for s, q in deliveries]).rowcount
    rejects(check.restock, uncommitted, r"open transaction.*never committed", course)

    def overwrites(conn, deliveries):
        with conn:
            return conn.executemany("UPDATE products SET stock = ? WHERE sku = ?",
                                    [(q, s) for s, q in deliveries]).rowcount
    rejects(check.restock, overwrites, r"SKU-000001 has stock 10 \(it was \d+\); expected \d+", course)

    def counts_input(conn, deliveries):
        restock(conn, deliveries)
        return len(deliveries)
    rejects(check.restock, counts_input, r"returned 3; expected 2", course)

    def closes(conn, deliveries):
        result = restock(conn, deliveries)
        conn.close()
        return result
    rejects(check.restock, closes, r"do not close the connection", course)

    def with_a_cursor(conn, deliveries):  # executemany on a cursor is the same call
        cur = conn.cursor()
        cur.executemany("UPDATE products SET stock = stock + ? WHERE sku = ?", [(q, s) for s, q in deliveries])
        conn.commit()
        return cur.rowcount
    check.restock(with_a_cursor, course, hidden=True)

    def one_execute_per_pair(conn, deliveries):  # right stock and count, but not executemany
        with conn:
            return sum(conn.execute("UPDATE products SET stock = stock + ? WHERE sku = ?", (q, s)).rowcount
                       for s, q in deliveries)
    rejects(check.restock, one_execute_per_pair, r"ran 0 executemany\(\) call\(s\) and 3 UPDATE\(s\) through "
                                                 r"execute\(\); the exercise asks for one executemany", course)

    def one_call_per_pair(conn, deliveries):
        with conn:
            return sum(conn.executemany("UPDATE products SET stock = stock + ? WHERE sku = ?", [(q, s)]).rowcount
                       for s, q in deliveries)
    rejects(check.restock, one_call_per_pair, r"ran 3 executemany\(\) call\(s\)", course)

    def counts_products(conn, deliveries):  # distinct products, not the cursor's rowcount
        restock(conn, deliveries)
        known = {r[0] for r in conn.execute("SELECT sku FROM products")}
        return len({s for s, _ in deliveries if s in known})
    check.restock(counts_products, course)
    rejects(check.restock, counts_products, r"returned 1; expected 2: the cursor's rowcount, which counts a sku "
                                            r"delivered twice twice", course, hidden=True)


# --------------------------------------------------------------------------- 01.9 normalization

WISHLIST = """
CREATE TABLE wishlist_users (user_id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, full_name TEXT NOT NULL);
CREATE TABLE wishlist_products (product_id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE wishlist_items (
    user_id    INTEGER NOT NULL REFERENCES wishlist_users (user_id),
    product_id INTEGER NOT NULL REFERENCES wishlist_products (product_id),
    added_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
INSERT INTO wishlist_users (email, full_name) SELECT DISTINCT email, full_name FROM wishlist_flat;
INSERT INTO wishlist_products (sku, name) SELECT DISTINCT sku, product_name FROM wishlist_flat;
INSERT INTO wishlist_items (user_id, product_id, added_at)
SELECT u.user_id, p.product_id, f.added_at FROM wishlist_flat AS f
JOIN wishlist_users AS u ON u.email = f.email JOIN wishlist_products AS p ON p.sku = f.sku;
"""


def test_wishlists():
    check.wishlists(WISHLIST)
    check.wishlists(WISHLIST, hidden=True)
    rejects(check.wishlists, WISHLIST.replace(",\n    PRIMARY KEY (user_id, product_id)", ""),
            r"added twice.*primary key")
    rejects(check.wishlists, WISHLIST.replace(" REFERENCES wishlist_users (user_id)", ""),
            r"user_id that is not in wishlist_users")
    rejects(check.wishlists, WISHLIST.replace("SELECT DISTINCT email", "SELECT email"),
            r"script failed.*UNIQUE constraint failed: wishlist_users.email")
    rejects(check.wishlists, WISHLIST.replace("email TEXT NOT NULL UNIQUE", "email TEXT NOT NULL"),
            r"accepted a second row with the same e-mail.*UNIQUE")
    rejects(check.wishlists, WISHLIST.replace("added_at   TEXT NOT NULL", "added_at TEXT"),
            r"without added_at", hidden=True)
    rejects(check.wishlists, WISHLIST.split("INSERT")[0], r"wishlist_users has 0 rows")
    # SQLite lets a composite primary key hold NULL: without NOT NULL the ids may be missing.
    nullable_user = WISHLIST.replace("user_id    INTEGER NOT NULL REFERENCES", "user_id    INTEGER REFERENCES")
    nullable_product = WISHLIST.replace("product_id INTEGER NOT NULL REFERENCES", "product_id INTEGER REFERENCES")
    assert WISHLIST not in (nullable_user, nullable_product)
    check.wishlists(nullable_user)
    rejects(check.wishlists, nullable_user, r"without a user_id.*composite PRIMARY KEY hold NULL", hidden=True)
    rejects(check.wishlists, nullable_product, r"without a product_id.*NOT NULL", hidden=True)
    rejects(check.wishlists, WISHLIST.replace("f.added_at FROM", "'2026-01-01' FROM"), r"some values differ")


# --------------------------------------------------------------------------- 01.10 transactions

def send_points(conn, sender, payments):
    if any(not isinstance(points, int) or points <= 0 for points in payments.values()):
        raise ValueError("every payment must be a positive number of points")
    with conn:
        for recipient, points in payments.items():
            if conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ? AND points >= ?",
                            (points, sender, points)).rowcount != 1:
                raise ValueError("not enough points")
            if conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?",
                            (points, recipient)).rowcount != 1:
                raise ValueError("unknown recipient")
            conn.execute("INSERT INTO transfers (from_user, to_user, points) VALUES (?, ?, ?)",
                         (sender, recipient, points))


def test_send_points():
    check.send_points(send_points)
    check.send_points(send_points, hidden=True)

    def commits_each(conn, sender, payments):  # no single transaction: earlier payments survive a failure
        for recipient, points in payments.items():
            with conn:
                if conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ? AND points >= ?",
                                (points, sender, points)).rowcount != 1:
                    raise ValueError("not enough points")
                if conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?",
                                (points, recipient)).rowcount != 1:
                    raise ValueError("unknown recipient")
                conn.execute("INSERT INTO transfers (from_user, to_user, points) VALUES (?, ?, ?)",
                             (sender, recipient, points))
    rejects(check.send_points, commits_each, r"raised ValueError, but the data changed.*rolled back")

    def no_rollback(conn, sender, payments):
        for recipient, points in payments.items():
            if conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ? AND points >= ?",
                            (points, sender, points)).rowcount != 1:
                raise ValueError("not enough points")
            conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?", (points, recipient))
            conn.execute("INSERT INTO transfers (from_user, to_user, points) VALUES (?, ?, ?)",
                         (sender, recipient, points))
        conn.commit()
    rejects(check.send_points, no_rollback, r"still has an open transaction")

    def relies_on_check_constraint(conn, sender, payments):
        with conn:
            for recipient, points in payments.items():
                conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ?", (points, sender))
                conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?", (points, recipient))
                conn.execute("INSERT INTO transfers (from_user, to_user, points) VALUES (?, ?, ?)",
                             (sender, recipient, points))
    rejects(check.send_points, relies_on_check_constraint, r"raised IntegrityError.*expected ValueError")

    def no_log(conn, sender, payments):
        with conn:
            for recipient, points in payments.items():
                conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ?", (points, sender))
                conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?", (points, recipient))
    rejects(check.send_points, no_log, r"new rows of `transfers`")

    def allows_zero(conn, sender, payments):
        if any(points < 0 for points in payments.values()):
            raise ValueError("negative")
        with conn:
            for recipient, points in payments.items():
                if conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ? AND points >= ?",
                                (points, sender, points)).rowcount != 1:
                    raise ValueError("not enough points")
                if conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?",
                                (points, recipient)).rowcount != 1:
                    raise ValueError("unknown recipient")
                conn.execute("INSERT INTO transfers (from_user, to_user, points) VALUES (?, ?, ?)",
                             (sender, recipient, points))
    rejects(check.send_points, allows_zero, r"payment of 0 points\) raised IntegrityError.*expected ValueError",
            hidden=True)


# --------------------------------------------------------------------------- 01.11 WAL and threads

def connect_for_app(path):
    conn = sqlite3.connect(path, timeout=5)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def test_connect_for_app():
    check.connect_for_app(connect_for_app)
    check.connect_for_app(connect_for_app, hidden=True)

    def settings_without(line):
        def factory(path):
            conn = sqlite3.connect(path, timeout=5)
            conn.row_factory = sqlite3.Row
            for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
                if pragma != line:
                    conn.execute(f"PRAGMA {pragma}")
            return conn
        return factory
    rejects(check.connect_for_app, settings_without("journal_mode = WAL"), r"journal mode is 'delete'")
    rejects(check.connect_for_app, settings_without("synchronous = NORMAL"), r"synchronous is 2")
    rejects(check.connect_for_app, settings_without("foreign_keys = ON"), r"Foreign keys are not enforced")

    def impatient(path):
        conn = connect_for_app(path)
        conn.execute("PRAGMA busy_timeout = 0")
        return conn
    rejects(check.connect_for_app, impatient, r"busy timeout is 0 ms")

    def tuples(path):
        conn = connect_for_app(path)
        conn.row_factory = None
        return conn
    rejects(check.connect_for_app, tuples, r"not sqlite3.Row")
    rejects(check.connect_for_app, lambda path: sqlite3.connect(path).cursor(), r"returned a Cursor")


# --------------------------------------------------------------------------- 01.12 injection

def find_customers(conn, text):
    return conn.execute("SELECT user_id, full_name FROM users WHERE instr(lower(full_name), lower(?)) > 0 "
                        "ORDER BY user_id", (text,)).fetchall()


def find_customers_escaped(conn, text):
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return conn.execute("SELECT user_id, full_name FROM users WHERE full_name LIKE ? ESCAPE '\\' ORDER BY user_id",
                        (pattern,)).fetchall()


def test_find_customers(course):
    check.find_customers(find_customers, course)
    check.find_customers(find_customers, course, hidden=True)
    check.find_customers(find_customers_escaped, course, hidden=True)  # LIKE with ESCAPE is right too

    namespace: dict = {}
    exec(check.BUGGY_FIND_CUSTOMERS, namespace)
    rejects(check.find_customers, namespace["find_customers"], r"O'Brien.*syntax error.*parameter", course)

    def parameter_but_wildcards(conn, text):
        return conn.execute("SELECT user_id, full_name FROM users WHERE full_name LIKE '%' || ? || '%' "
                            "ORDER BY user_id", (text,)).fetchall()
    rejects(check.find_customers, parameter_but_wildcards, r"'%'\) returned 2000 rows.*wildcards", course)

    def unordered(conn, text):
        return sorted(find_customers(conn, text), key=lambda r: r[1])
    rejects(check.find_customers, unordered, r"not in the order asked.*user_id", course)
