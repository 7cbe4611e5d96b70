"""Chapter 03's checks accept right answers and reject wrong ones with a helpful message.

They run against the real MySQL/MariaDB and PostgreSQL servers, in a namespace of their own.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pymysql
import pytest
from pymysql.cursors import DictCursor

import dbcourse
from dbcourse.checks import ch03 as check

from .conftest import feedback

WEB_ORDERS_DDL = """
CREATE TABLE web_orders (
    order_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, user_id INT NOT NULL,
    status VARCHAR(12) NOT NULL DEFAULT 'pending', note VARCHAR(200) NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (user_id) REFERENCES users (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
WEB_ORDER_ITEMS_DDL = """
CREATE TABLE web_order_items (
    order_id INT NOT NULL, product_id INT NOT NULL, quantity INT NOT NULL CHECK (quantity > 0),
    unit_price DECIMAL(10, 2) NOT NULL, PRIMARY KEY (order_id, product_id),
    FOREIGN KEY (order_id) REFERENCES web_orders (order_id) ON DELETE CASCADE,
    FOREIGN KEY (product_id) REFERENCES products (product_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
SIGNUPS = ["  Ann.Lee@example.com ", "ann.lee@example.com", "bob@example.com", "BOB@example.com  ",
           "carl@example.com", "Dora@example.com", "dora@example.com"]


@pytest.fixture(scope="module")
def ws():
    workspace = dbcourse.setup("03-mysql", namespace="test_ch03_checks", quiet=True)
    conn = workspace.connect_mysql()
    with conn.cursor() as cur:
        cur.execute(WEB_ORDERS_DDL)
        cur.execute(WEB_ORDER_ITEMS_DDL)
        cur.execute("CREATE TABLE signups (signup_id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(120) NOT NULL)")
        cur.executemany("INSERT INTO signups (email) VALUES (%s)", [(e,) for e in SIGNUPS])
    conn.commit()
    conn.close()
    with workspace.connect_postgres() as pg:
        pg.execute("CREATE TABLE signups (signup_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                   "email varchar(120) NOT NULL)")
        with pg.cursor() as cur:
            cur.executemany("INSERT INTO signups (email) VALUES (%s)", [(e,) for e in SIGNUPS])
    yield workspace
    workspace.close()


def rejects(check_function, *args, match: str, hidden: bool = False):
    """The check fails with feedback (never a bare driver error) whose text matches ``match``."""
    text = feedback(check_function, *args, hidden=hidden)
    assert match.lower() in text.lower(), text
    return text


# --------------------------------------------------------------------------- 03.1

REPORT_SQL = ("SELECT UPPER(country) AS country, COUNT(*) AS customers FROM users GROUP BY UPPER(country) "
              "HAVING COUNT(*) >= %s ORDER BY customers DESC, country")


def test_country_report(ws):
    def right(conn, min_customers):
        with conn.cursor(DictCursor) as cur:
            cur.execute(REPORT_SQL, (min_customers,))
            return cur.fetchall()

    check.country_report(right, ws, hidden=True)

    def tuples(conn, min_customers):
        with conn.cursor() as cur:
            cur.execute(REPORT_SQL, (min_customers,))
            return cur.fetchall()

    rejects(check.country_report, tuples, ws, match="not as dicts")

    def by_raw_country(conn, min_customers):  # MySQL merges 'zz'/'ZZ' but shows the first spelling
        with conn.cursor(DictCursor) as cur:
            cur.execute("SELECT country, COUNT(*) AS customers FROM users GROUP BY country HAVING COUNT(*) >= %s "
                        "ORDER BY customers DESC, country", (min_customers,))
            return cur.fetchall()

    rejects(check.country_report, by_raw_country, ws, hidden=True, match="some values differ")

    def hard_coded(conn, min_customers):
        return right(conn, 100)

    rejects(check.country_report, hard_coded, ws, hidden=True, match="row(s); expected")


# --------------------------------------------------------------------------- 03.2

SUMMARY_SQL = ("SELECT u.user_id, u.full_name, COUNT(o.order_id) AS orders, MAX(o.ordered_at) AS last_order_at "
               "FROM users u LEFT JOIN orders o ON o.user_id = u.user_id WHERE u.user_id = %s "
               "GROUP BY u.user_id, u.full_name")


def test_order_summary(ws):
    def right(pool, user_id):
        with pool.get_connection() as conn:
            with conn.cursor(dictionary=True) as cur:
                cur.execute(SUMMARY_SQL, (user_id,))
                return cur.fetchone()

    check.order_summary(right, ws, hidden=True)

    def leaks(pool, user_id):
        conn = pool.get_connection()  # never given back
        cur = conn.cursor(dictionary=True)
        cur.execute(SUMMARY_SQL, (user_id,))
        return cur.fetchone()

    rejects(check.order_summary, leaks, ws, match="pool (2 connections) exhausted")

    def tuples(pool, user_id):
        with pool.get_connection() as conn:
            with conn.cursor() as cur:
                cur.execute(SUMMARY_SQL, (user_id,))
                return cur.fetchone()

    rejects(check.order_summary, tuples, ws, match="expected a dict")

    def inner_join(pool, user_id):
        with pool.get_connection() as conn:
            with conn.cursor(dictionary=True) as cur:
                cur.execute(SUMMARY_SQL.replace("LEFT JOIN", "JOIN"), (user_id,))
                return cur.fetchone()

    rejects(check.order_summary, inner_join, ws, match="expected a dict")  # a user without orders vanishes


# --------------------------------------------------------------------------- 03.3

ARCHIVE_DDL = """
CREATE TABLE review_archive (
    archive_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    review_id INT NOT NULL UNIQUE,
    body TEXT NULL,
    archived_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


def test_review_archive(ws):
    check.review_archive(ARCHIVE_DDL, ws, hidden=True)
    rejects(check.review_archive, ARCHIVE_DDL.replace("utf8mb4", "utf8"), ws, match="not utf8mb4")
    rejects(check.review_archive, ARCHIVE_DDL.replace("InnoDB", "MyISAM"), ws, match="MyISAM engine")
    rejects(check.review_archive, ARCHIVE_DDL.replace(" UNIQUE", ""), ws, match="not UNIQUE")
    rejects(check.review_archive, ARCHIVE_DDL.replace("BIGINT NOT NULL AUTO_INCREMENT", "BIGINT NOT NULL"), ws,
            match="AUTO_INCREMENT primary key")
    rejects(check.review_archive, "CREATE TABLE review_archive (", ws, match="your CREATE TABLE failed")


# --------------------------------------------------------------------------- 03.4 and 03.5

ITEM_SQL = ("INSERT INTO web_order_items (order_id, product_id, quantity, unit_price) "
            "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s")


def test_place_order(ws):
    def right(conn, user_id, items):
        with conn.cursor() as cur:
            cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
            order_id = cur.lastrowid
            for product_id, quantity in items:
                cur.execute(ITEM_SQL, (order_id, quantity, product_id))
        conn.commit()
        return order_id

    check.place_order(right, ws, hidden=True)

    def no_commit(conn, user_id, items):
        with conn.cursor() as cur:
            cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
            order_id = cur.lastrowid
            for product_id, quantity in items:
                cur.execute(ITEM_SQL, (order_id, quantity, product_id))
        return order_id

    rejects(check.place_order, no_commit, ws, match="call conn.commit()")
    rejects(check.place_order, lambda conn, user_id, items: None, ws, match="expected the new order's id")

    def todays_price_ignored(conn, user_id, items):
        with conn.cursor() as cur:
            cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
            order_id = cur.lastrowid
            for product_id, quantity in items:
                cur.execute("INSERT INTO web_order_items VALUES (%s, %s, %s, 1.00)", (order_id, product_id, quantity))
        conn.commit()
        return order_id

    rejects(check.place_order, todays_price_ignored, ws, match="some values differ")
    # every check run cleaned up after itself
    conn = ws.connect_mysql()
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM web_orders")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_place_order_with_stock(ws):
    def right(conn, user_id, items):
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
                order_id = cur.lastrowid
                for product_id, quantity in items:
                    cur.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", (quantity, product_id))
                    if cur.rowcount != 1:
                        raise ValueError(product_id)
                    cur.execute(ITEM_SQL, (order_id, quantity, product_id))
            conn.commit()
            return order_id
        except Exception:
            conn.rollback()
            raise

    conn = ws.connect_mysql()
    with conn.cursor() as cur:
        cur.execute("SELECT SUM(stock) FROM products")
        stock_before = cur.fetchone()[0]
    conn.close()
    check.place_order_with_stock(right, ws, hidden=True)

    def original(conn, user_id, items):  # the colleague's version from the notebook
        with conn.cursor() as cur:
            cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
            order_id = cur.lastrowid
            conn.commit()
            for product_id, quantity in items:
                try:
                    cur.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", (quantity, product_id))
                    cur.execute(ITEM_SQL, (order_id, quantity, product_id))
                    conn.commit()
                except pymysql.err.MySQLError:
                    pass
        return order_id

    rejects(check.place_order_with_stock, original, ws, match="cannot succeed")

    def no_rowcount_check(conn, user_id, items):
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
                order_id = cur.lastrowid
                for product_id, quantity in items:
                    cur.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", (quantity, product_id))
                    cur.execute(ITEM_SQL, (order_id, quantity, product_id))
            conn.commit()
            return order_id
        except Exception:
            conn.rollback()
            raise

    check.place_order_with_stock(no_rowcount_check, ws)  # the visible test cannot tell...
    rejects(check.place_order_with_stock, no_rowcount_check, ws, hidden=True, match="does not exist")  # ...hidden can

    def no_rollback(conn, user_id, items):
        with conn.cursor() as cur:
            cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
            order_id = cur.lastrowid
            for product_id, quantity in items:
                cur.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", (quantity, product_id))
                cur.execute(ITEM_SQL, (order_id, quantity, product_id))
        conn.commit()
        return order_id

    rejects(check.place_order_with_stock, no_rollback, ws, match="half-written order")

    conn = ws.connect_mysql()
    with conn.cursor() as cur:
        cur.execute("SELECT SUM(stock) FROM products")
        assert cur.fetchone()[0] == stock_before  # the checks restored the stock
        cur.execute("SELECT COUNT(*) FROM web_orders")
        assert cur.fetchone()[0] == 0
    conn.close()


# --------------------------------------------------------------------------- 03.6

def test_predictions(ws):
    truth = check.collation_truth(ws)
    assert truth["A"] == {"mysql": True, "postgres": False, "sqlite": False}  # the point of the exercise
    assert truth["C"]["mysql"] is False and truth["D"]["sqlite"] is True
    check.predictions(truth, ws, hidden=True)
    all_false = {k: {s: False for s in check.SERVERS} for k in check.COLLATION_CONDITIONS}
    text = rejects(check.predictions, all_false, ws, match="predictions are wrong")
    assert "case" in text  # the hint of the first wrong one (A)
    rejects(check.predictions, {"A": {}}, ws, match="no entry for")
    wrong_type = {k: {s: "yes" for s in check.SERVERS} for k in check.COLLATION_CONDITIONS}
    rejects(check.predictions, wrong_type, ws, match="use True or False")


def test_predictions_hidden_variants(ws, monkeypatch):
    truth = check.collation_truth(ws)
    for stored, conditions in check.COLLATION_VARIANTS:  # the same kinds of condition give the same answers
        assert sorted(conditions) == sorted(check.COLLATION_CONDITIONS)
        assert check._truth_on(ws, stored, conditions) == truth, stored
    # the hidden test really runs the variants: one whose A condition matches exactly everywhere
    exact = ("bob@example.org", dict(check.COLLATION_VARIANTS[0][1], A="email = 'bob@example.org'"))
    monkeypatch.setattr(check, "COLLATION_VARIANTS", [exact])
    check.predictions(truth, ws)  # the visible check does not look at them
    text = rejects(check.predictions, truth, ws, hidden=True,
                   match="with 'bob@example.org' stored instead, the condition of the same kind as A")
    assert "gives True on postgres" in text and "ignore case" in text


# --------------------------------------------------------------------------- 03.7

def test_duplicate_emails(ws):
    right = ("SELECT LOWER(TRIM(email)) AS email, COUNT(*) AS accounts FROM signups "
             "GROUP BY LOWER(TRIM(email)) HAVING COUNT(*) > 1")
    check.duplicate_emails(right, ws, hidden=True)
    naive = "SELECT email, COUNT(*) AS accounts FROM signups GROUP BY email HAVING COUNT(*) > 1"
    rejects(check.duplicate_emails, naive, ws, match="on MySQL has 2 row(s); expected 3")
    lower_only = ("SELECT LOWER(email) AS email, COUNT(*) AS accounts FROM signups GROUP BY LOWER(email) "
                  "HAVING COUNT(*) > 1")
    rejects(check.duplicate_emails, lower_only, ws, match="Your query on")
    rejects(check.duplicate_emails, "SELECT nope FROM signups", ws, match="failed in the database")


# --------------------------------------------------------------------------- 03.8

MYSQL_UPSERT = ("INSERT INTO stock_levels (sku, qty, deliveries) VALUES (%(sku)s, %(qty)s, 1) "
                "ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty), deliveries = deliveries + 1")
PG_UPSERT = ("INSERT INTO stock_levels (sku, qty, deliveries) VALUES (%(sku)s, %(qty)s, 1) "
             "ON CONFLICT (sku) DO UPDATE SET qty = stock_levels.qty + EXCLUDED.qty, "
             "deliveries = stock_levels.deliveries + 1")


def test_upsert(ws):
    check.upsert(MYSQL_UPSERT, PG_UPSERT, ws, hidden=True)
    plain = "INSERT INTO stock_levels (sku, qty, deliveries) VALUES (%(sku)s, %(qty)s, 1)"
    rejects(check.upsert, plain, PG_UPSERT, ws, match="ON DUPLICATE KEY UPDATE")
    rejects(check.upsert, MYSQL_UPSERT, plain, ws, match="ON CONFLICT")
    replace_qty = MYSQL_UPSERT.replace("qty = qty + VALUES(qty)", "qty = VALUES(qty)")
    rejects(check.upsert, replace_qty, PG_UPSERT, ws, match="MySQL after the deliveries")
    alias = ("INSERT INTO stock_levels (sku, qty, deliveries) VALUES (%(sku)s, %(qty)s, 1) AS new "
             "ON DUPLICATE KEY UPDATE qty = stock_levels.qty + new.qty, deliveries = stock_levels.deliveries + 1")
    conn = ws.connect_mysql()
    mariadb = check._is_mariadb(conn)
    conn.close()
    if mariadb:
        rejects(check.upsert, alias, PG_UPSERT, ws, match="AS new")
    else:
        check.upsert(alias, PG_UPSERT, ws)
    no_count = PG_UPSERT.replace(", deliveries = stock_levels.deliveries + 1", "")
    rejects(check.upsert, MYSQL_UPSERT, no_count, ws, match="PostgreSQL after the deliveries")


# --------------------------------------------------------------------------- 03.9

def right_add_label(conn, name):
    if isinstance(conn, sqlite3.Connection):
        new_id = conn.execute("INSERT INTO labels (name) VALUES (?)", (name,)).lastrowid
    elif isinstance(conn, psycopg.Connection):
        new_id = conn.execute("INSERT INTO labels (name) VALUES (%s) RETURNING label_id", (name,)).fetchone()[0]
    else:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO labels (name) VALUES (%s)", (name,))
            new_id = cur.lastrowid
    conn.commit()
    return new_id


def test_add_label(ws):
    check.add_label(right_add_label, ws, hidden=True)

    def percent_everywhere(conn, name):
        cur = conn.cursor()
        cur.execute("INSERT INTO labels (name) VALUES (%s)", (name,))
        conn.commit()
        return cur.lastrowid

    rejects(check.add_label, percent_everywhere, ws, match="PostgreSQL")  # psycopg has no lastrowid

    def no_commit(conn, name):
        if isinstance(conn, sqlite3.Connection):
            return conn.execute("INSERT INTO labels (name) VALUES (?)", (name,)).lastrowid
        with conn.cursor() as cur:
            cur.execute("INSERT INTO labels (name) VALUES (%s)", (name,))
            return cur.lastrowid

    rejects(check.add_label, no_commit, ws, match="commit before returning")

    def always_one(conn, name):
        right_add_label(conn, name)
        return 1

    rejects(check.add_label, always_one, ws, match="but the row has label_id")


# --------------------------------------------------------------------------- 03.10

SLOW = ("SELECT event_id, user_id, product_id, occurred_at FROM events "
        "WHERE event_type = 'purchase' AND DATE(occurred_at) = %(day)s ORDER BY event_id")
FAST = ("SELECT event_id, user_id, product_id, occurred_at FROM events WHERE event_type = 'purchase' "
        "AND occurred_at >= %(day)s AND occurred_at < %(day)s + INTERVAL 1 DAY ORDER BY event_id")


def drop_test_indexes(ws, keep=()):
    conn = ws.connect_mysql(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = 'events' AND INDEX_NAME LIKE 'test\\_%%'")
        for (name,) in set(cur.fetchall()):
            if name not in keep:
                cur.execute(f"DROP INDEX {name} ON events")
    conn.close()


def test_purchases(ws, monkeypatch):
    drop_test_indexes(ws)
    # an index that does not help: the whole table (or the whole primary key) is read
    rejects(check.purchases, "CREATE INDEX test_user ON events (user_id)", FAST, ws, match="type=")
    # the right index, but the date hidden in DATE(): the index narrows the type only
    rejects(check.purchases, "CREATE INDEX test_type_time ON events (event_type, occurred_at)", SLOW, ws,
            match="date is not used")
    check.purchases("CREATE INDEX test_type_time ON events (event_type, occurred_at)", FAST, ws, hidden=True)
    rejects(check.purchases, "CREATE INDEX test_type_time ON events (event_type, occurred_at)",
            FAST.replace("ORDER BY event_id", "ORDER BY occurred_at DESC"), ws, match="order")
    rejects(check.purchases, "CREATE INDEX oops", FAST, ws, match="your CREATE INDEX failed")
    rejects(check.purchases, "CREATE INDEX test_type_time ON events (event_type, occurred_at)",
            FAST.replace("%(day)s", "%s"), ws, match="%(day)s")
    rejects(check.purchases, "DROP INDEX test_type_time ON events", FAST, ws, match="one CREATE INDEX statement")

    # the same statement twice: the check replaces the index it created the first time
    check.purchases("CREATE INDEX test_type_time ON events (event_type, occurred_at)", FAST, ws)
    # a good index left from an earlier attempt does not make a useless new one pass
    text = rejects(check.purchases, "CREATE INDEX test_user ON events (user_id)", FAST, ws,
                   match="key=test_type_time, an index on ['event_type', 'occurred_at'] that your statement did not "
                         "create")
    assert "DROP INDEX test_type_time ON events" in text
    # a twin of the leftover (same columns, another name) is a right answer whichever the optimizer picks
    check.purchases("CREATE INDEX test_twin ON events (event_type, occurred_at)", FAST, ws, hidden=True)
    # a wider leftover doing the work is fine when the new index starts with the columns the plan uses
    check.purchases("CREATE INDEX test_wide ON events (event_type, occurred_at, user_id)", FAST, ws)
    check.purchases("CREATE INDEX test_type_time ON events (event_type, occurred_at)", FAST, ws, hidden=True)
    # a useless index left from an earlier attempt does not stop a right answer
    drop_test_indexes(ws, keep=("test_user",))
    check.purchases("CREATE INDEX test_fixed ON events (event_type, occurred_at)", FAST, ws, hidden=True)
    # an index that a foreign key came to rely on (test_user replaced the foreign key's own index on
    # user_id) is still replaced: the check gives the foreign key an index of its own first
    rejects(check.purchases, "CREATE INDEX test_user ON events (user_id)", FAST, ws,
            match="key=test_fixed, an index on ['event_type', 'occurred_at'] that your statement did not create")
    drop_test_indexes(ws)
    conn = ws.connect_mysql(autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = 'events' AND COLUMN_NAME = 'user_id' AND SEQ_IN_INDEX = 1")
        assert cur.fetchone()[0] >= 1  # the foreign key on user_id kept an index
    conn.close()

    # a learner's connection left in a transaction on events blocks CREATE INDEX: friendly, and quick
    monkeypatch.setattr(check, "LOCK_WAIT_SECONDS", 1)
    idle = ws.connect_mysql()
    with idle.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM events")
    try:
        text = rejects(check.purchases, "CREATE INDEX test_other ON events (session_id)", FAST, ws,
                       match="waited 1 s for a lock")
        assert "rollback()" in text
    finally:
        idle.rollback()
        idle.close()


# --------------------------------------------------------------------------- 03.11

def test_dialect_features(ws):
    check.dialect_features(check.reference_features, ws, hidden=True)

    def returning_for_every_mariadb(version):
        features = check.reference_features(version)
        if features["flavour"] == "MariaDB":
            features["returning"] = True
        return features

    rejects(check.dialect_features, returning_for_every_mariadb, ws, match="['returning'] is True; expected False")

    def ignores_the_prefix(version):
        import re

        major, minor = (int(n) for n in re.match(r"(\d+)\.(\d+)", version).groups())
        if "MariaDB" in version:
            return {"flavour": "MariaDB", "returning": (major, minor) >= (10, 5), "row_alias": False,
                    "sequences": (major, minor) >= (10, 3)}
        return check.reference_features(version)

    check.dialect_features(ignores_the_prefix, ws)
    rejects(check.dialect_features, ignores_the_prefix, ws, hidden=True, match="5.5.5-10.11.6")
    rejects(check.dialect_features, lambda version: "MariaDB", ws, match="expected a dict")
