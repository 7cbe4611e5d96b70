"""The checks of chapter 08 accept right answers and reject wrong ones with a helpful message.

They run against the real servers, in a namespace of their own (``dbc_test_ch08_checks``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import uuid
import zlib
from collections import Counter
from contextlib import contextmanager
from decimal import Decimal

import pytest

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from dbcourse.checks import ch08 as check  # noqa: E402

from .conftest import feedback  # noqa: E402


@pytest.fixture(scope="module")
def course():
    import dbcourse
    from dbcourse import namespaces

    workspace = dbcourse.setup("08-production", services=["postgres", "mongodb", "redis"],
                               data={"postgres": "shop"}, namespace="test_ch08_checks", quiet=True)
    yield workspace
    workspace.close()
    for store in ("postgres", "mongodb", "redis"):
        namespaces.DROP[store](workspace.namespace)
    shutil.rmtree(namespaces.sqlite_dir(workspace.namespace), ignore_errors=True)


def rejects(call, pattern: str) -> str:
    text = feedback(call)
    assert re.search(pattern, text), text
    return text


# --------------------------------------------------------------------------- 08.1

SORTABLE = ("name", "price", "product_id")


def search_products(conn, name_part, sort_by="name"):
    if sort_by not in SORTABLE:
        raise ValueError(sort_by)
    query = sql.SQL("SELECT product_id, name, price FROM products WHERE name ILIKE %s ORDER BY {}, product_id")
    return conn.execute(query.format(sql.Identifier(sort_by)), [f"%{name_part}%"]).fetchall()


def search_products_injectable(conn, name_part, sort_by="name"):
    return conn.execute(f"SELECT product_id, name, price FROM products WHERE name ILIKE '%{name_part}%' "
                        f"ORDER BY {sort_by}, product_id").fetchall()


def search_products_no_allow_list(conn, name_part, sort_by="name"):
    query = sql.SQL("SELECT product_id, name, price FROM products WHERE name ILIKE %s ORDER BY {}, product_id")
    return conn.execute(query.format(sql.SQL(sort_by)), [f"%{name_part}%"]).fetchall()


def search_products_unordered(conn, name_part, sort_by="name"):
    if sort_by not in SORTABLE:
        raise ValueError(sort_by)
    return conn.execute("SELECT product_id, name, price FROM products WHERE name ILIKE %s ORDER BY product_id DESC",
                        [f"%{name_part}%"]).fetchall()


def test_search_products(course):
    check.search_products(search_products, course)
    check.search_products(search_products, course, hidden=True)
    rejects(lambda: check.search_products(search_products_injectable, course), "was run as SQL|parsed as SQL")
    rejects(lambda: check.search_products(search_products_no_allow_list, course), r"sort_by=.*(accepted|reached)")
    rejects(lambda: check.search_products(search_products_unordered, course), "order")
    with course.connect_postgres() as conn:  # the attacks left nothing behind
        assert conn.execute("SELECT count(*) FROM products WHERE product_id = -8001").fetchone()[0] == 0
        assert conn.execute("SELECT price > 0 FROM products WHERE product_id = 1").fetchone()[0]


# --------------------------------------------------------------------------- 08.2

def test_passwords():
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = PasswordHasher(time_cost=1, memory_cost=16 * 1024, parallelism=1)

    def hash_password(password):
        return hasher.hash(password)

    def verify_password(stored, password):
        try:
            return hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    check.passwords(hash_password, verify_password)
    check.passwords(hash_password, verify_password, hidden=True)

    def sha256(password):
        return hashlib.sha256(password.encode()).hexdigest()

    rejects(lambda: check.passwords(sha256, lambda stored, pw: sha256(pw) == stored), "plain digest")

    def fast_salted(password):
        salt = uuid.uuid4().hex
        return salt + "$" + hashlib.sha256((salt + password).encode()).hexdigest()

    def fast_verify(stored, password):
        salt, digest = stored.split("$")
        return hashlib.sha256((salt + password).encode()).hexdigest() == digest

    rejects(lambda: check.passwords(fast_salted, fast_verify), "not a key-derivation function")

    def raising_verify(stored, password):
        return hasher.verify(stored, password)

    rejects(lambda: check.passwords(hash_password, raising_verify), "raised VerifyMismatchError")

    def scrypt_without_maxmem(password):  # OWASP's cost, but hashlib's default memory limit
        return hashlib.scrypt(password.encode(), salt=uuid.uuid4().bytes, n=2**17, r=8, p=1).hex()

    feedback = rejects(lambda: check.passwords(scrypt_without_maxmem, lambda stored, pw: False), "raised ValueError")
    assert "maxmem=2**28" in feedback


# --------------------------------------------------------------------------- 08.3

def grant_reporting(conn, role):
    role_id = sql.Identifier(role)
    database = conn.execute("SELECT current_database()").fetchone()[0]
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role_id))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role_id))
    conn.execute(sql.SQL("GRANT SELECT ON products, categories, orders, order_items TO {}").format(role_id))
    conn.commit()


def grant_everything(conn, role):
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
    conn.commit()


def grant_unquoted(conn, role):
    conn.execute(f"GRANT SELECT ON products, categories, orders, order_items TO {role}")
    conn.commit()


def grant_writes(conn, role):
    grant_reporting(conn, role)
    conn.execute(sql.SQL("GRANT INSERT, UPDATE ON categories, products TO {}").format(sql.Identifier(role)))
    conn.commit()


def grant_also(statement):
    """The right grants, plus one more (``{}`` is the role)."""
    def grant(conn, role):
        grant_reporting(conn, role)
        conn.execute(sql.SQL(statement).format(sql.Identifier(role)))
        conn.commit()
    return grant


def test_grant_reporting(course):
    check.grant_reporting(grant_reporting, course)
    check.grant_reporting(grant_reporting, course, hidden=True)
    rejects(lambda: check.grant_reporting(grant_everything, course), "can read `users`")
    rejects(lambda: check.grant_reporting(grant_unquoted, course, hidden=True), "sql.Identifier")
    rejects(lambda: check.grant_reporting(grant_writes, course), "must not write")
    # writes that the statements the check tries do not reveal, found in the catalogue
    for statement, message in [
        ("GRANT INSERT ON orders TO {}", "has INSERT on `orders`"),
        ("GRANT TRUNCATE ON products TO {}", "has TRUNCATE on `products`"),
        ("GRANT UPDATE (price) ON products TO {}", "has UPDATE on `products`"),  # a column grant
        ("GRANT INSERT (name) ON categories TO {}", "has INSERT on `categories`"),
        ("GRANT REFERENCES, TRIGGER ON order_items TO {}", "has REFERENCES on `order_items`"),
        ("GRANT DELETE ON reviews TO {}", "has DELETE on `reviews`"),
        ("GRANT CREATE ON SCHEMA public TO {}", "CREATE tables in schema `public`"),
        ("GRANT CREATE ON DATABASE " + sql.Identifier(course.namespace).as_string() + " TO {}",
         "CREATE schemas in your database"),
        ("GRANT SELECT (email) ON users TO {}", "can read `users`"),  # a column of personal data
    ]:
        feedback = rejects(lambda: check.grant_reporting(grant_also(statement), course, hidden=True), message)
        assert "must not write" in feedback or "can read" in feedback
    with course.connect_postgres(autocommit=True) as admin:
        admin.execute("CREATE SEQUENCE IF NOT EXISTS chk08_test_counter")
    try:
        rejects(lambda: check.grant_reporting(grant_also("GRANT USAGE ON SEQUENCE chk08_test_counter TO {}"), course),
                "advance the sequence `chk08_test_counter`")
    finally:
        with course.connect_postgres(autocommit=True) as admin:
            admin.execute("DROP SEQUENCE chk08_test_counter")
    with course.connect_postgres() as conn:  # every check role is gone
        left = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", [course.namespace + "%"])
        assert left.fetchone()[0] == 0


# --------------------------------------------------------------------------- 08.4

COUPONS = """
CREATE TABLE coupons (
    code text PRIMARY KEY CHECK (code = upper(code)),
    percent_off integer NOT NULL CHECK (percent_off BETWEEN 1 AND 90),
    valid_from date NOT NULL,
    valid_until date NOT NULL,
    product_id integer REFERENCES products (product_id),
    max_uses integer CHECK (max_uses >= 1),
    CHECK (valid_until > valid_from)
)"""


def test_coupons(course):
    check.coupons(COUPONS, course)
    check.coupons(COUPONS, course, hidden=True)
    rejects(lambda: check.coupons(COUPONS.replace("CHECK (valid_until > valid_from)", "CHECK (true)"), course),
            "accepted valid_until before valid_from")
    rejects(lambda: check.coupons(COUPONS.replace("BETWEEN 1 AND 90", "BETWEEN 0 AND 100"), course),
            "accepted 0 percent off")
    rejects(lambda: check.coupons(COUPONS.replace("max_uses >= 1", "max_uses >= 1 OR max_uses = 0"), course),
            "accepted max_uses of 0")
    rejects(lambda: check.coupons(COUPONS.replace("code text", "code varchar(5)"), course), "rejected a valid coupon")
    rejects(lambda: check.coupons(COUPONS.replace("coupons (", "vouchers ("), course), "named `coupons`")
    rejects(lambda: check.coupons(None, course), "no answer")


# --------------------------------------------------------------------------- 08.5

def place_order(conn, user_id, items):
    with conn.transaction():
        order_id = conn.execute(
            "INSERT INTO orders (user_id, ordered_at, status, shipping_country) "
            "SELECT user_id, now(), 'pending', country FROM users WHERE user_id = %s RETURNING order_id",
            [user_id]).fetchone()[0]
        for product_id, quantity in items:
            inserted = conn.execute(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s",
                [order_id, quantity, product_id]).rowcount
            if inserted != 1:
                raise ValueError(f"unknown product {product_id}")
            conn.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", [quantity, product_id])
    return order_id


def place_order_broken(conn, user_id, items):
    order_id = conn.execute(
        "INSERT INTO orders (user_id, ordered_at, status, shipping_country) "
        "SELECT user_id, now(), 'pending', country FROM users WHERE user_id = %s RETURNING order_id",
        [user_id]).fetchone()[0]
    conn.commit()
    for product_id, quantity in items:
        conn.execute("INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                     "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s",
                     [order_id, quantity, product_id])
        conn.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", [quantity, product_id])
        conn.commit()
    return order_id


def place_order_transaction_only(conn, user_id, items):
    with conn.transaction():
        return place_order_broken.__wrapped__(conn, user_id, items)


def _no_commit(conn, user_id, items):
    order_id = conn.execute(
        "INSERT INTO orders (user_id, ordered_at, status, shipping_country) "
        "SELECT user_id, now(), 'pending', country FROM users WHERE user_id = %s RETURNING order_id",
        [user_id]).fetchone()[0]
    for product_id, quantity in items:
        conn.execute("INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                     "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s",
                     [order_id, quantity, product_id])
        conn.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", [quantity, product_id])
    return order_id


place_order_broken.__wrapped__ = _no_commit


def test_place_order(course):
    check.place_order(place_order, course)
    check.place_order(place_order, course, hidden=True)
    rejects(lambda: check.place_order(place_order_broken, course), "half-written")
    rejects(lambda: check.place_order(place_order_transaction_only, course), "expected ValueError|should raise")
    rejects(lambda: check.place_order(_no_commit, course), "never committed")


# --------------------------------------------------------------------------- 08.6

@contextmanager
def throwaway_schema(conn, prefix="test"):
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
    conn.commit()
    try:
        yield name
    finally:
        conn.rollback()
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        conn.execute("RESET search_path")
        conn.commit()


@contextmanager
def throwaway_no_rollback(conn, prefix="test"):
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
    conn.commit()
    try:
        yield name
    finally:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        conn.execute("RESET search_path")
        conn.commit()


@contextmanager
def throwaway_fixed_name(conn, prefix="test"):
    name = f"{prefix}_schema"
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
    conn.commit()
    yield name
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    conn.commit()


@contextmanager
def throwaway_unquoted(conn, prefix="test"):
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE SCHEMA {name}")
    conn.execute(f"SET search_path TO {name}")
    conn.commit()
    try:
        yield name
    finally:
        conn.rollback()
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute("RESET search_path")
        conn.commit()


def test_throwaway_schema(course):
    check.throwaway_schema(throwaway_schema, course)
    check.throwaway_schema(throwaway_schema, course, hidden=True)
    rejects(lambda: check.throwaway_schema(throwaway_no_rollback, course), "roll back")
    rejects(lambda: check.throwaway_schema(throwaway_fixed_name, course), "same name|still exists")
    rejects(lambda: check.throwaway_schema(throwaway_unquoted, course, hidden=True), "sql.Identifier|failed")
    rejects(lambda: check.throwaway_schema(lambda conn, prefix="test": "test_x", course), "context manager")
    with course.connect_postgres() as conn:
        left = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'test\\_%' OR nspname LIKE 'My-%'")
        assert left.fetchone()[0] == 0


# --------------------------------------------------------------------------- 08.7

def watch_slow_queries(engine, threshold):
    from sqlalchemy import event

    slow = []

    def start(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("query_started", []).append(time.perf_counter())

    def stop(conn, cursor, statement, parameters, context, executemany):
        elapsed = time.perf_counter() - conn.info["query_started"].pop()
        if elapsed >= threshold:
            slow.append((statement, elapsed))

    event.listen(engine, "before_cursor_execute", start)
    event.listen(engine, "after_cursor_execute", stop)
    return slow


def watch_with_a_global_timer(engine, threshold):
    from sqlalchemy import event

    slow, started = [], {}

    def start(conn, cursor, statement, parameters, context, executemany):
        started["at"] = time.perf_counter()

    def stop(conn, cursor, statement, parameters, context, executemany):
        elapsed = time.perf_counter() - started["at"]
        if elapsed >= threshold:
            slow.append((statement, elapsed))

    event.listen(engine, "before_cursor_execute", start)
    event.listen(engine, "after_cursor_execute", stop)
    return slow


def watch_everything(engine, threshold):
    from sqlalchemy import event

    slow = []

    def start(conn, cursor, statement, parameters, context, executemany):
        conn.info["t"] = time.perf_counter()

    def stop(conn, cursor, statement, parameters, context, executemany):
        slow.append((statement, time.perf_counter() - conn.info["t"]))

    event.listen(engine, "before_cursor_execute", start)
    event.listen(engine, "after_cursor_execute", stop)
    return slow


def watch_with_a_fixed_threshold(engine, threshold):
    return watch_slow_queries(engine, 0.35)  # ignores its argument: right for the visible check only


def test_slow_queries(course):
    check.slow_queries(watch_slow_queries, course)
    check.slow_queries(watch_slow_queries, course, hidden=True)
    rejects(lambda: check.slow_queries(watch_everything, course), "Fast statements were recorded")
    # (on a very busy machine the overlap can shift, and the count is what is off)
    rejects(lambda: check.slow_queries(watch_with_a_global_timer, course, hidden=True),
            r"recorded as taking|statement\(s\) were recorded; expected|was not recorded")
    check.slow_queries(watch_with_a_fixed_threshold, course)
    rejects(lambda: check.slow_queries(watch_with_a_fixed_threshold, course, hidden=True),
            r"2 statement\(s\) were recorded; expected 3")
    rejects(lambda: check.slow_queries(lambda engine, threshold: None, course), "expected a list")


# --------------------------------------------------------------------------- 08.8

def verify_restore(source, restored, tables):
    def fingerprint(conn, table):
        query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} AS t")
        return conn.execute(query.format(sql.Identifier(table))).fetchone()

    return {table: fingerprint(source, table) == fingerprint(restored, table) for table in tables}


def verify_counts_only(source, restored, tables):
    query = "SELECT count(*) FROM {}"
    return {t: source.execute(query.format(t)).fetchone() == restored.execute(query.format(t)).fetchone()
            for t in tables}


def verify_unordered_lists(source, restored, tables):
    return {t: source.execute(f"SELECT * FROM {t}").fetchall() == restored.execute(f"SELECT * FROM {t}").fetchall()
            for t in tables}


def test_verify_restore(course):
    check.verify_restore(verify_restore, course)
    check.verify_restore(verify_restore, course, hidden=True)
    rejects(lambda: check.verify_restore(verify_counts_only, course, hidden=True), "differs by a cent")
    rejects(lambda: check.verify_restore(verify_unordered_lists, course), "another order")


# --------------------------------------------------------------------------- 08.9

class ShardRouter:
    def __init__(self, shards):
        self.shards = list(shards)

    def shard_for(self, user_id):
        return zlib.crc32(str(user_id).encode()) % len(self.shards)

    def add_user(self, user_id, email, country):
        conn = self.shards[self.shard_for(user_id)]
        conn.execute("INSERT INTO users VALUES (%s, %s, %s)", [user_id, email, country])
        conn.commit()

    def get_user(self, user_id):
        row = self.shards[self.shard_for(user_id)].execute(
            "SELECT user_id, email, country FROM users WHERE user_id = %s", [user_id]).fetchone()
        return tuple(row) if row else None

    def count_by_country(self):
        totals = Counter()
        for conn in self.shards:
            for country, count in conn.execute("SELECT country, count(*) FROM users GROUP BY country"):
                totals[country] += count
        return dict(totals)


class RandomRouter(ShardRouter):
    def shard_for(self, user_id):
        import random

        return random.randrange(len(self.shards))


class OneShardRouter(ShardRouter):
    def shard_for(self, user_id):
        return 0 if user_id % 10 else 1


class FirstShardOnlyCount(ShardRouter):
    def count_by_country(self):
        return dict(self.shards[0].execute("SELECT country, count(*) FROM users GROUP BY country").fetchall())


class ScanningGet(ShardRouter):
    def get_user(self, user_id):
        for conn in self.shards:
            row = conn.execute("SELECT user_id, email, country FROM users WHERE user_id = %s", [user_id]).fetchone()
            if row:
                return tuple(row)
        return None


def test_shard_router(course):
    check.shard_router(ShardRouter, course)
    check.shard_router(ShardRouter, course, hidden=True)
    rejects(lambda: check.shard_router(RandomRouter, course), "different answers|not stable")
    rejects(lambda: check.shard_router(OneShardRouter, course), "unevenly")
    rejects(lambda: check.shard_router(FirstShardOnlyCount, course), "count_by_country differs")
    rejects(lambda: check.shard_router(ScanningGet, course), r"get_user\(\d+\) returned")
    rejects(lambda: check.shard_router(ShardRouter(()), course), "should be a class")


# --------------------------------------------------------------------------- 08.10

SEPARATION = """
WITH RECURSIVE walk (person_id, hops) AS (
    SELECT %(a)s::int, 0
  UNION
    SELECT f.friend_id, w.hops + 1 FROM walk w JOIN friendships f ON f.user_id = w.person_id WHERE w.hops < 6
)
SELECT min(hops) AS hops FROM walk WHERE person_id = %(b)s
"""


def test_separation(course):
    check.separation(SEPARATION, course)
    check.separation(SEPARATION, course, hidden=True)
    rejects(lambda: check.separation(SEPARATION.replace("< 6", "< 8"), course), "a=41, b=48")
    rejects(lambda: check.separation(SEPARATION.replace("min(hops)", "max(hops)"), course), "values differ")
    rejects(lambda: check.separation(SEPARATION.replace("AS hops", "AS distance"), course), "columns")
    rejects(lambda: check.separation("SELECT hops FROM nowhere", course), "failed in the database")


# --------------------------------------------------------------------------- 08.11

def test_ecommerce_schema(course):
    ddl = check.REFERENCE_ECOMMERCE_DDL
    check.ecommerce_schema(ddl, course)
    check.ecommerce_schema(ddl, course, hidden=True)
    rejects(lambda: check.ecommerce_schema(ddl.replace(" ON DELETE CASCADE", ""), course), "Deleting an order failed")
    rejects(lambda: check.ecommerce_schema(ddl.replace("numeric(10, 2) NOT NULL CHECK (price", "real NOT NULL CHECK "
                                                                                               "(price"), course),
            "money needs numeric")
    rejects(lambda: check.ecommerce_schema(ddl.replace("CREATE INDEX orders_customer_id_idx ON orders (customer_id);",
                                                       ""), course), "no index")
    rejects(lambda: check.ecommerce_schema(ddl.replace("'delivered', 'cancelled'", "'delivered', 'cancelled', 'lost'"),
                                           course), "accepted an order with status 'lost'")
    rejects(lambda: check.ecommerce_schema(ddl.replace("PRIMARY KEY (order_id, product_id)", "CHECK (true)"), course),
            "the same product twice")
    rejects(lambda: check.ecommerce_schema(
        ddl.replace("REFERENCES customers (customer_id)", "REFERENCES customers (customer_id) ON DELETE CASCADE"),
        course), "deleting a customer who has orders")
    rejects(lambda: check.ecommerce_schema(ddl.replace("DEFAULT 'pending' ", ""), course), "rejected an order with "
                                                                                          "only a customer_id")


# --------------------------------------------------------------------------- 08.12 and 08.13

class ShopRepository:
    def __init__(self, pool):
        self.pool = pool

    def add_product(self, sku, name, price, stock=0):
        with self.pool.connection() as conn:
            return conn.execute("INSERT INTO products (sku, name, price, stock) VALUES (%s, %s, %s, %s) "
                                "RETURNING product_id", [sku, name, price, stock]).fetchone()[0]

    def get_product(self, product_id):
        with self.pool.connection() as conn:
            return conn.cursor(row_factory=dict_row).execute(
                "SELECT product_id, sku, name, price, stock FROM products WHERE product_id = %s",
                [product_id]).fetchone()

    def update_price(self, product_id, price):
        with self.pool.connection() as conn:
            return conn.execute("UPDATE products SET price = %s WHERE product_id = %s", [price, product_id]).rowcount == 1

    def add_customer(self, email, full_name):
        with self.pool.connection() as conn:
            return conn.execute("INSERT INTO customers (email, full_name) VALUES (%s, %s) RETURNING customer_id",
                                [email, full_name]).fetchone()[0]

    def place_order(self, customer_id, items):
        if not items:
            raise ValueError("empty")
        with self.pool.connection() as conn, conn.transaction():
            order_id = conn.execute("INSERT INTO orders (customer_id) VALUES (%s) RETURNING order_id",
                                    [customer_id]).fetchone()[0]
            for product_id, quantity in sorted(items.items()):
                row = conn.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s AND stock >= %s "
                                   "RETURNING price", [quantity, product_id, quantity]).fetchone()
                if row is None:
                    raise ValueError(product_id)
                conn.execute("INSERT INTO order_items VALUES (%s, %s, %s, %s)", [order_id, product_id, quantity, row[0]])
            return order_id

    def order_total(self, order_id):
        with self.pool.connection() as conn:
            return conn.execute("SELECT coalesce(sum(quantity * unit_price), 0) FROM order_items WHERE order_id = %s",
                                [order_id]).fetchone()[0]


class LeakyRepository(ShopRepository):
    def get_product(self, product_id):
        conn = self.pool.getconn()  # never given back
        return conn.cursor(row_factory=dict_row).execute(
            "SELECT product_id, sku, name, price, stock FROM products WHERE product_id = %s", [product_id]).fetchone()


class TodaysPriceTotal(ShopRepository):
    def order_total(self, order_id):
        with self.pool.connection() as conn:
            return conn.execute("SELECT coalesce(sum(i.quantity * p.price), 0) FROM order_items i JOIN products p "
                                "USING (product_id) WHERE order_id = %s", [order_id]).fetchone()[0]


class StepByStepOrder(ShopRepository):
    def place_order(self, customer_id, items):
        with self.pool.connection() as conn:
            order_id = conn.execute("INSERT INTO orders (customer_id) VALUES (%s) RETURNING order_id",
                                    [customer_id]).fetchone()[0]
        for product_id, quantity in items.items():
            with self.pool.connection() as conn:
                row = conn.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s AND stock >= %s "
                                   "RETURNING price", [quantity, product_id, quantity]).fetchone()
                if row is None:
                    raise ValueError(product_id)
                conn.execute("INSERT INTO order_items VALUES (%s, %s, %s, %s)", [order_id, product_id, quantity, row[0]])
        return order_id


def test_repository(course):
    check.repository(ShopRepository, course)
    check.repository(ShopRepository, course, hidden=True)
    rejects(lambda: check.repository(LeakyRepository, course), "did not give their connections back")
    rejects(lambda: check.repository(TodaysPriceTotal, course), "unit prices are kept")
    rejects(lambda: check.repository(StepByStepOrder, course), "wrote something before failing")


class CachedProductRepository:
    def __init__(self, repo, redis_client, key_prefix, ttl=60):
        self.repo, self.redis, self.prefix, self.ttl = repo, redis_client, key_prefix, ttl
        self.hits = self.misses = 0

    def key(self, product_id):
        return f"{self.prefix}:product:{product_id}"

    def get_product(self, product_id):
        cached = self.redis.get(self.key(product_id))
        if cached is not None:
            self.hits += 1
            product = json.loads(cached)
            product["price"] = Decimal(product["price"])
            return product
        self.misses += 1
        product = self.repo.get_product(product_id)
        if product is not None:
            self.redis.set(self.key(product_id), json.dumps({**product, "price": str(product["price"])}), ex=self.ttl)
        return product

    def update_price(self, product_id, price):
        result = self.repo.update_price(product_id, price)
        self.redis.delete(self.key(product_id))
        return result


class NoInvalidation(CachedProductRepository):
    def update_price(self, product_id, price):
        return self.repo.update_price(product_id, price)


class NoExpiry(CachedProductRepository):
    def get_product(self, product_id):
        product = super().get_product(product_id)
        self.redis.persist(self.key(product_id))
        return product


class StringPrice(CachedProductRepository):
    def get_product(self, product_id):
        product = super().get_product(product_id)
        if product is not None:
            product["price"] = str(product["price"])
        return product


class NoCache(CachedProductRepository):
    def get_product(self, product_id):
        self.misses += 1
        return self.repo.get_product(product_id)


def test_caching(course):
    check.caching(CachedProductRepository, course)
    check.caching(CachedProductRepository, course, hidden=True)
    rejects(lambda: check.caching(NoInvalidation, course), "still cached")
    rejects(lambda: check.caching(NoExpiry, course), "TTL of -1")
    rejects(lambda: check.caching(StringPrice, course), "string")
    rejects(lambda: check.caching(NoCache, course), "nothing is cached")


# --------------------------------------------------------------------------- 08.14

def track_event(db, event):
    user_id = event.get("user_id")
    if user_id is None:
        return
    at, kind = event["at"], event["type"]
    counters = {"events": 1, f"by_type.{kind}": 1}
    db.user_stats.update_one({"_id": user_id}, {"$inc": counters, "$min": {"first_at": at}, "$max": {"last_at": at}},
                             upsert=True)
    db.daily_stats.update_one({"user_id": user_id, "day": at.strftime("%Y-%m-%d")}, {"$inc": counters}, upsert=True)


def top_users(db, first_day, last_day, limit=5):
    return list(db.daily_stats.aggregate([
        {"$match": {"day": {"$gte": first_day, "$lte": last_day}}},
        {"$group": {"_id": "$user_id", "events": {"$sum": "$events"}}},
        {"$sort": {"events": -1, "_id": 1}},
        {"$limit": limit},
        {"$project": {"_id": 0, "user_id": "$_id", "events": 1}},
    ]))


def track_with_set(db, event):
    user_id = event.get("user_id")
    if user_id is None:
        return
    at, kind = event["at"], event["type"]
    counters = {"events": 1, f"by_type.{kind}": 1}
    db.user_stats.update_one({"_id": user_id}, {"$inc": counters, "$setOnInsert": {"first_at": at},
                                                "$set": {"last_at": at}}, upsert=True)
    db.daily_stats.update_one({"user_id": user_id, "day": at.strftime("%Y-%m-%d")}, {"$inc": counters}, upsert=True)


def track_anonymous_too(db, event):
    track_event(db, {**event, "user_id": event.get("user_id", 0)})


def top_users_no_tiebreak(db, first_day, last_day, limit=5):
    rows = top_users(db, first_day, last_day, 100)
    rows.sort(key=lambda r: (-r["events"], -r["user_id"]))
    return rows[:limit]


def test_analytics(course):  # few calls: the course's MongoDB stand-in is slow at upserts
    check.analytics(track_event, top_users, course, hidden=True)
    rejects(lambda: check.analytics(track_with_set, top_users, course), r"first_at|last_at")
    rejects(lambda: check.analytics(track_event, top_users_no_tiebreak, course), "top_users")
    rejects(lambda: check.analytics(track_anonymous_too, top_users, course), "expected")
    assert check.sibling_name(course.namespace, "chk_analytics") not in course.mongo_client.list_database_names()


def test_sibling_names_fit_the_servers():
    long = "dbc_grade_" + "x" * 60
    assert len(check.sibling_name(long, "restore")) <= 63
    assert len(check.sibling_name(long, "reader", limit=32)) <= 32
    assert check.sibling_name("dbc_08", "restore") == "dbc_08_restore"
    assert check.sibling_name(long, "a") != check.sibling_name(long + "y", "a")
