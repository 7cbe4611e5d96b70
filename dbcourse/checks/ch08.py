"""Checks for chapter 08, "Production patterns and capstone".

Every check works in scratch space of its own (a schema ``chk08_*`` in the learner's PostgreSQL
database, a scratch MongoDB database, Redis keys under the namespace) and removes it afterwards,
so a check can run any number of times and never depends on what the notebook did before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import secrets
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Iterator

from .compare import compare_rows, compare_value, fetch_rows, run_sql, values_equal
from .core import Chapter, expect, fail, not_answered

chapter = Chapter("08", "Production patterns and capstone")
exercise = chapter.exercise
progress = chapter.progress


# --------------------------------------------------------------------------- helpers

def sibling_name(namespace: str, suffix: str, limit: int = 63) -> str:
    """``<namespace>_<suffix>``, shortened with a hash when longer than ``limit`` (as the notebook does)."""
    name = f"{namespace}_{suffix}"
    if len(name) > limit:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{namespace[:limit - len(suffix) - 10]}_{digest}_{suffix}"
    return name


def _sql():
    from psycopg import sql

    return sql


def _drop_schema(workspace: Any, schema: str) -> None:
    sql = _sql()
    with workspace.connect_postgres(autocommit=True) as admin:
        admin.execute("SET lock_timeout = '10s'")
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def _scratch_schema(workspace: Any, schema: str, ddl: str | None = None) -> Iterator[str]:
    """A fresh schema in the learner's database (dropped before and after)."""
    sql = _sql()
    _drop_schema(workspace, schema)
    with workspace.connect_postgres(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        if ddl:
            admin.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            admin.execute(ddl)
    try:
        yield schema
    finally:
        _drop_schema(workspace, schema)


def _connect_in(workspace: Any, search_path: str, **kwargs: Any):
    """A connection whose ``search_path`` is ``search_path`` (a schema, or "a,b" without spaces)."""
    return workspace.connect_postgres(options=f"-c search_path={search_path}", **kwargs)


def _db_error(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None and diag.message_primary else str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _callable(value: Any, name: str, signature: str) -> None:
    not_answered(value, name)
    expect(callable(value), f"`{name}` should be a function {signature}, not {type(value).__name__}.")


def _is_class(value: Any, name: str, signature: str) -> None:
    not_answered(value, name)
    expect(isinstance(value, type), f"`{name}` should be a class ({signature}), not {type(value).__name__}.",
           hint=f"write `class {name}:` with the methods the exercise lists.")


# --------------------------------------------------------------------------- 08.1 injection

_SORTABLE = ("name", "price", "product_id")


def _search_reference(conn: Any, part: str, sort_by: str) -> list[tuple]:
    sql = _sql()
    query = sql.SQL("SELECT product_id, name, price FROM products WHERE name ILIKE %s ORDER BY {}, product_id")
    return conn.execute(query.format(sql.Identifier(sort_by)), [f"%{part}%"]).fetchall()


@exercise("08.1", "Find and fix: an injectable product search", answer="search_products")
def search_products(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "search_products", "search_products(conn, name_part, sort_by='name')")
    import psycopg

    with workspace.connect_postgres(autocommit=True) as admin:
        original_price = admin.execute("SELECT price FROM products WHERE product_id = 1").fetchone()
    try:
        with workspace.connect_postgres() as conn:
            word = conn.execute("SELECT split_part(name, ' ', 1) FROM products GROUP BY 1 "
                                "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
            cases = [(word.lower(), "name"), (word.upper()[:3], "price")]
            if hidden:
                conn.execute("INSERT INTO products (product_id, sku, name, category_id, price, stock, created_at, "
                             "is_discontinued) VALUES (-8001, 'SKU-CHK-8001', 'Chef''s Knife by O''Brien', "
                             "(SELECT min(category_id) FROM categories), 49.50, 3, now(), false)")
                cases += [(word, "product_id"), ("chef's", "name"), ("O'BRIEN", "price"), ("", "price")]
            for part, sort_by in cases:
                try:
                    got = func(conn, part, sort_by)
                except psycopg.Error as exc:
                    conn.rollback()
                    fail(f"search_products(conn, {part!r}, {sort_by!r}) failed in the database: {_db_error(exc)}.",
                         hint="a quote in the search text must not break the query: pass name_part as a parameter.")
                compare_rows(fetch_rows(got), fetch_rows(_search_reference(conn, part, sort_by)), ordered=True,
                             check_columns=False, what=f"search_products(conn, {part!r}, {sort_by!r})",
                             order_hint="order by the sort_by column, then by product_id.")

            for attack in ("' OR '1'='1", "x%' OR 1=1 --"):
                try:
                    got = fetch_rows(func(conn, attack, "name"))
                except psycopg.Error as exc:
                    conn.rollback()
                    fail(f"Searching for {attack!r} made the database fail ({_db_error(exc)}): the search text was "
                         "parsed as SQL.", hint="pass name_part as a parameter (%s), with the % signs added in Python.")
                expect(len(got) == 0, f"Searching for the text {attack!r} returned {len(got)} products: the text was "
                                      "run as SQL (no product name contains it).",
                       hint="pass name_part as a parameter (%s), with the % signs added in Python.")

            stacked = "x'; UPDATE products SET price = 0 WHERE product_id = 1; --"
            before = conn.execute("SELECT price FROM products WHERE product_id = 1").fetchone()
            try:
                func(conn, stacked, "name")
            except psycopg.Error:
                conn.rollback()
            after = conn.execute("SELECT price FROM products WHERE product_id = 1").fetchone()
            expect(before == after, f"Searching for {stacked!r} changed the price of product 1: the attacker's UPDATE "
                                    "ran.", hint="never put the search text into the SQL string: use a parameter.")

            bad_sorts = ["price; DROP TABLE products", "name DESC", "(SELECT email FROM users LIMIT 1)"]
            if hidden:
                bad_sorts += ["users.email", "1", "NAME", ""]
            for bad in bad_sorts:
                try:
                    func(conn, word, bad)
                except ValueError:
                    continue
                except psycopg.Error as exc:
                    conn.rollback()
                    fail(f"sort_by={bad!r} reached the database ({_db_error(exc)}) instead of being refused.",
                         hint="check sort_by against ('name', 'price', 'product_id') first and raise ValueError.")
                fail(f"sort_by={bad!r} was accepted; only 'name', 'price' and 'product_id' are allowed.",
                     hint="raise ValueError for anything else, before building the query.")
            conn.rollback()
    finally:
        with workspace.connect_postgres(autocommit=True) as admin:  # undo anything a committed attack did
            admin.execute("DELETE FROM products WHERE product_id = -8001")
            if original_price:
                admin.execute("UPDATE products SET price = %s WHERE product_id = 1 AND price <> %s",
                              [original_price[0], original_price[0]])


# --------------------------------------------------------------------------- 08.2 passwords

@exercise("08.2", "Store passwords with a real KDF", answer="hash_password")
def passwords(hash_password: Any, verify_password: Any, *, hidden: bool = False) -> None:
    _callable(hash_password, "hash_password", "hash_password(password) -> str")
    _callable(verify_password, "verify_password", "verify_password(stored, password) -> bool")
    samples = ["correct horse battery staple", "Tr0ub4dor&3"]
    if hidden:  # other passwords (a KDF is slow: the visible ones are not hashed again)
        samples = ["pässwörd with spaces and 🔑", "x" * 200, "'; DROP TABLE users; --"]

    def hashed(password: str) -> Any:
        try:
            return hash_password(password)
        except Exception as exc:  # noqa: BLE001 - the learner's function
            hint = ("hashlib.scrypt refuses to use more than 32 MiB unless told: with n=2**17, r=8 (128 MiB), pass "
                    "maxmem=2**28." if "memory limit" in str(exc) else None)
            fail(f"hash_password({password!r}) raised {type(exc).__name__}: {exc}", hint=hint)

    for number, password in enumerate(samples):
        started = time.perf_counter()
        stored = hashed(password)
        elapsed = time.perf_counter() - started
        expect(isinstance(stored, str) and stored.strip(),
               f"hash_password({password!r}) returned {type(stored).__name__} {stored!r}; expected a non-empty str.",
               hint="PasswordHasher().hash(...) returns a str; for scrypt, encode the salt and hash with base64.")
        expect(password not in stored, f"The hash of {password!r} contains the password itself.")
        plain = {getattr(hashlib, name)(password.encode()).hexdigest() for name in ("md5", "sha1", "sha256", "sha512")}
        expect(not any(p in stored.lower() for p in plain),
               f"hash_password({password!r}) is a plain digest of the password: anyone can precompute it.",
               hint="use a KDF with a random salt: argon2's PasswordHasher, or hashlib.scrypt.")
        if number == 0:
            started = time.perf_counter()
            again = hashed(password)
            elapsed = min(elapsed, time.perf_counter() - started)
            expect(again != stored, f"Hashing {password!r} twice gave the same string: there is no random salt, so "
                                    "equal passwords are visible and precomputed tables work.",
                   hint="PasswordHasher adds a salt by itself; with scrypt, use os.urandom(16) and store it.")
            expect(elapsed >= 0.001, f"hash_password takes {elapsed * 1e6:.0f} µs: fast enough for an attacker to try "
                                     "millions of guesses per second, so it is not a key-derivation function.",
                   hint="use argon2's PasswordHasher() or hashlib.scrypt(n=2**17, r=8, p=1, maxmem=2**28): "
                        "they are slow on purpose.")
        try:
            right = verify_password(stored, password)
        except Exception as exc:  # noqa: BLE001 - the learner's function
            fail(f"verify_password(stored, the right password) raised {type(exc).__name__}: {exc}")
        expect(right is True, f"verify_password(stored, {password!r}) returned {right!r} for the right password; "
                              "expected True.")
        wrong = (password.swapcase() if password.swapcase() != password else password + "!") if number % 2 else ""
        try:
            result = verify_password(stored, wrong)
        except Exception as exc:  # noqa: BLE001
            fail(f"verify_password(stored, a wrong password) raised {type(exc).__name__} instead of returning False.",
                 hint="argon2 raises VerifyMismatchError for a wrong password: catch it and return False.")
        expect(result is False, f"verify_password(stored, {wrong!r}) returned {result!r} for a wrong password; "
                                "expected False.")


# --------------------------------------------------------------------------- 08.3 least privilege

def _drop_role(admin: Any, role: str) -> None:
    sql = _sql()
    if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# Privileges that let a role change something. INSERT, UPDATE and REFERENCES can also be granted on
# single columns, which has_table_privilege does not see: has_any_column_privilege does.
_COLUMN_WRITES = ("INSERT", "UPDATE", "REFERENCES")
_TABLE_WRITES = ("DELETE", "TRUNCATE", "TRIGGER")

_WRITE_PRIVILEGES_SQL = """
SELECT c.relname, p.privilege
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN unnest(%(privileges)s::text[]) AS p (privilege)
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND CASE WHEN p.privilege = ANY (%(column_writes)s::text[])
           THEN has_any_column_privilege(%(role)s::name, c.oid, p.privilege)
           ELSE has_table_privilege(%(role)s::name, c.oid, p.privilege) END
ORDER BY c.relname, array_position(%(privileges)s::text[], p.privilege)
"""


def _no_write_privileges(workspace: Any, role: str) -> None:
    """Fail when ``role`` holds any privilege that changes data or structure (asked of the catalogue,
    so that TRUNCATE, for one, is found without being tried)."""
    hint = ("grant SELECT only (not ALL, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES or TRIGGER), "
            "and no CREATE on the schema or the database.")
    with workspace.connect_postgres(autocommit=True) as admin:
        privileges = list(_COLUMN_WRITES + _TABLE_WRITES)
        if admin.info.server_version >= 170000:  # PostgreSQL 17: VACUUM, ANALYZE, LOCK TABLE, ...
            privileges.append("MAINTAIN")
        found = admin.execute(_WRITE_PRIVILEGES_SQL, {"privileges": privileges, "role": role,
                                                      "column_writes": list(_COLUMN_WRITES)}).fetchall()
        if found:
            table, privilege = found[0]
            others = f" (and {len(found) - 1} more privilege(s) of that kind)" if len(found) > 1 else ""
            fail(f"The role has {privilege} on `{table}`{others}: a reporting login must not write anything.",
                 hint=hint)
        can_create = admin.execute("SELECT has_schema_privilege(%s::name, 'public', 'CREATE'), "
                                   "has_database_privilege(%s::name, current_database(), 'CREATE')",
                                   [role, role]).fetchone()
        expect(not can_create[0], "The role may CREATE tables in schema `public`: a reporting login must not write "
                                  "anything.", hint=hint)
        expect(not can_create[1], "The role may CREATE schemas in your database: a reporting login must not write "
                                  "anything.", hint=hint)
        sequences = admin.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'S' "
            "AND (has_sequence_privilege(%s::name, c.oid, 'UPDATE') OR has_sequence_privilege(%s::name, c.oid, 'USAGE')) "
            "ORDER BY 1", [role, role]).fetchall()
        expect(not sequences, f"The role may advance the sequence `{sequences[0][0] if sequences else ''}` "
                              "(nextval): a reporting login must not write anything.", hint=hint)


@exercise("08.3", "A least-privilege reporting role", answer="grant_reporting")
def grant_reporting(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "grant_reporting", "grant_reporting(conn, role)")
    import psycopg
    from psycopg.conninfo import make_conninfo

    sql = _sql()
    role = sibling_name(workspace.namespace, "Report-Team" if hidden else "chk_report")
    password = secrets.token_urlsafe(16)
    with workspace.connect_postgres(autocommit=True) as admin:
        _drop_role(admin, role)
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        with workspace.connect_postgres() as conn:
            try:
                func(conn, role)
                conn.commit()
            except psycopg.Error as exc:
                fail(f"grant_reporting(conn, {role!r}) failed in the database: {_db_error(exc)}.",
                     hint="quote the role with sql.Identifier(role): role names may contain capitals and dashes.")
        url = make_conninfo(workspace.postgres_url, user=role, password=password)
        try:
            reader = psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            fail(f"The role cannot even connect to your database: {str(exc).strip().splitlines()[-1]}",
                 hint="GRANT CONNECT ON DATABASE <your database> TO the role.")
        with reader:
            for table in ("products", "categories", "orders", "order_items"):
                try:
                    reader.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
                except psycopg.errors.InsufficientPrivilege:
                    fail(f"The role cannot read `{table}`.", hint="GRANT SELECT ON products, categories, orders, "
                                                                  "order_items TO the role (and USAGE on the schema).")
            with workspace.connect_postgres(autocommit=True) as admin:  # column grants and views count too
                readable = {r[0] for r in admin.execute(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                    "AND has_any_column_privilege(%s::name, c.oid, 'SELECT')", [role])}
            allowed = {"products", "categories", "orders", "order_items"}
            extra = sorted(readable - allowed, key=lambda t: (t != "users", t))  # users first: personal data
            expect(not extra, f"The role can read `{extra[0] if extra else ''}`, which it does not need"
                              + (" (and `users` holds personal data)." if "users" in extra else "."),
                   hint="grant SELECT on the four tables by name, not ON ALL TABLES IN SCHEMA public.")
            secret_tables = ["users", "reviews", "events"] + (["comments", "posts", "tags"] if hidden else [])
            for table in secret_tables:
                try:
                    reader.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
                except psycopg.errors.InsufficientPrivilege:
                    continue
                except psycopg.errors.UndefinedTable:
                    continue
                fail(f"The role can read `{table}`, which it does not need (and `users` holds personal data).",
                     hint="grant SELECT on the four tables by name, not ON ALL TABLES IN SCHEMA public.")
            _no_write_privileges(workspace, role)
            writes = {
                "INSERT into categories": "INSERT INTO categories SELECT * FROM categories WHERE false",
                "UPDATE products": "UPDATE products SET price = price WHERE false",
                "DELETE from orders": "DELETE FROM orders WHERE false",
                "CREATE TABLE": "CREATE TABLE chk08_backdoor (x int)",
            }
            if hidden:
                writes["UPDATE order_items"] = "UPDATE order_items SET quantity = quantity WHERE false"
                writes["DELETE from categories"] = "DELETE FROM categories WHERE false"
            for what, statement in writes.items():
                try:
                    reader.execute(statement)
                except psycopg.errors.InsufficientPrivilege:
                    continue
                fail(f"The role may {what}: a reporting login must not write anything.",
                     hint="grant SELECT only (not ALL, INSERT, UPDATE or DELETE), and no CREATE on the schema.")
    finally:
        with workspace.connect_postgres(autocommit=True) as admin:
            _drop_role(admin, role)


# --------------------------------------------------------------------------- 08.4 coupons

_COUPON_COLUMNS = ("code", "percent_off", "valid_from", "valid_until", "product_id", "max_uses")


@exercise("08.4", "Constraints that stop bad data", answer="coupons_ddl")
def coupons(ddl: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(ddl, "coupons_ddl")
    expect(isinstance(ddl, str), "`coupons_ddl` should be a string holding a CREATE TABLE statement.")
    import psycopg

    d = dt.date
    schema = "chk08_coupons"
    with _scratch_schema(workspace, schema), _connect_in(workspace, f"{schema},public") as conn:
        try:
            conn.execute(ddl)
            conn.commit()
        except psycopg.Error as exc:
            fail(f"Your DDL failed: {_db_error(exc)}.", hint="run it on its own in a cell to see the whole error.")
        columns = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema "
                                              "= %s AND table_name = 'coupons' ORDER BY ordinal_position", [schema])]
        expect(columns, "Your DDL did not create a table named `coupons`.",
               hint="write CREATE TABLE coupons (...) without a schema name.")
        missing = [c for c in _COUPON_COLUMNS if c not in columns]
        expect(not missing, f"The table `coupons` has no column(s) {missing}.",
               hint=f"the columns are {list(_COUPON_COLUMNS)}.")
        product = conn.execute("SELECT min(product_id) FROM public.products").fetchone()[0]
        insert = ("INSERT INTO coupons (code, percent_off, valid_from, valid_until, product_id, max_uses) "
                  "VALUES (%s, %s, %s, %s, %s, %s)")
        good = [("SPRING10", 10, d(2026, 3, 1), d(2026, 3, 31), None, None),
                ("KETTLE25", 25, d(2026, 1, 1), d(2026, 12, 31), product, 100)]
        if hidden:
            good += [("MAX90", 90, d(2026, 1, 1), d(2026, 1, 2), None, 1),
                     ("MIN1", 1, d(2025, 12, 31), d(2026, 1, 1), product, None),
                     ("2026SALE", 50, d(2026, 6, 1), d(2026, 6, 30), None, 5000)]
        for row in good:
            try:
                with conn.transaction():
                    conn.execute(insert, row)
            except psycopg.Error as exc:
                fail(f"Your table rejected a valid coupon {row[:4]}... ({_db_error(exc)}).",
                     hint="check the types and the bounds: 1 and 90 are allowed; product_id and max_uses may be NULL.")
        bad = [
            ("a lower-case code", ("spring5", 5, d(2026, 3, 1), d(2026, 3, 31), None, None)),
            ("0 percent off", ("ZERO", 0, d(2026, 3, 1), d(2026, 3, 31), None, None)),
            ("95 percent off", ("HUGE", 95, d(2026, 3, 1), d(2026, 3, 31), None, None)),
            ("no percent_off (NULL)", ("NOPCT", None, d(2026, 3, 1), d(2026, 3, 31), None, None)),
            ("valid_until before valid_from", ("BACKWARDS", 10, d(2026, 3, 31), d(2026, 3, 1), None, None)),
            ("valid_until equal to valid_from", ("ONEDAY", 10, d(2026, 3, 1), d(2026, 3, 1), None, None)),
            ("a product that does not exist", ("GHOST", 10, d(2026, 3, 1), d(2026, 3, 31), -1, None)),
            ("a second coupon with the same code", ("SPRING10", 15, d(2026, 4, 1), d(2026, 4, 30), None, None)),
            ("max_uses of 0", ("NOUSE", 10, d(2026, 3, 1), d(2026, 3, 31), None, 0)),
            ("no code (NULL)", (None, 10, d(2026, 3, 1), d(2026, 3, 31), None, None)),
            ("no valid_from (NULL)", ("NOSTART", 10, None, d(2026, 3, 31), None, None)),
        ]
        if hidden:
            bad += [
                ("-5 percent off", ("NEG", -5, d(2026, 3, 1), d(2026, 3, 31), None, None)),
                ("91 percent off", ("NINETY1", 91, d(2026, 3, 1), d(2026, 3, 31), None, None)),
                ("a mixed-case code", ("Spring20", 20, d(2026, 3, 1), d(2026, 3, 31), None, None)),
                ("max_uses of -3", ("MINUS", 10, d(2026, 3, 1), d(2026, 3, 31), None, -3)),
                ("no valid_until (NULL)", ("NOEND", 10, d(2026, 3, 1), None, None, None)),
            ]
        for label, row in bad:
            try:
                with conn.transaction():
                    conn.execute(insert, row)
            except psycopg.errors.IntegrityError:
                continue
            except psycopg.Error as exc:
                fail(f"Inserting {label} failed with {_db_error(exc)}, not with a constraint violation.",
                     hint="use the types of the table above, and let NOT NULL, CHECK, UNIQUE and REFERENCES reject rows.")
            fail(f"Your table accepted {label}: {row}.", hint="add the constraint that forbids it (NOT NULL, CHECK, "
                                                              "UNIQUE/PRIMARY KEY or REFERENCES).")
        conn.rollback()


# --------------------------------------------------------------------------- 08.5 place_order

_ORDERS_DDL = """
CREATE TABLE users (user_id int PRIMARY KEY, email text NOT NULL, full_name text NOT NULL, country text NOT NULL);
CREATE TABLE products (product_id int PRIMARY KEY, name text NOT NULL,
                       price numeric(10, 2) NOT NULL CHECK (price >= 0), stock int NOT NULL CHECK (stock >= 0));
CREATE TABLE orders (order_id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                     user_id int NOT NULL REFERENCES users, ordered_at timestamptz NOT NULL,
                     status text NOT NULL, shipping_country text NOT NULL);
CREATE TABLE order_items (order_item_id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                          order_id int NOT NULL REFERENCES orders, product_id int NOT NULL REFERENCES products,
                          quantity int NOT NULL CHECK (quantity > 0),
                          unit_price numeric(10, 2) NOT NULL CHECK (unit_price >= 0), UNIQUE (order_id, product_id));
"""


def _order_state(conn: Any) -> tuple:
    return (conn.execute("SELECT count(*) FROM orders").fetchone()[0],
            conn.execute("SELECT count(*) FROM order_items").fetchone()[0],
            tuple(conn.execute("SELECT product_id, stock FROM products ORDER BY product_id").fetchall()))


@exercise("08.5", "Find and fix: the half-written order", answer="place_order")
def place_order(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "place_order", "place_order(conn, user_id, items)")
    import psycopg

    schema = "chk08_orders"
    with _scratch_schema(workspace, schema, _ORDERS_DDL):
        with workspace.connect_postgres(autocommit=True) as admin:
            admin.execute(f"INSERT INTO {schema}.users SELECT user_id, email, full_name, country FROM public.users "
                          "WHERE user_id <= 20")
            admin.execute(f"INSERT INTO {schema}.products SELECT product_id, name, price, 5 FROM public.products "
                          "WHERE product_id <= 20")
        with _connect_in(workspace, schema) as conn, _connect_in(workspace, schema, autocommit=True) as observer:

            def must_fail(label: str, user_id: int, items: list, expected: type = Exception) -> None:
                before = _order_state(observer)
                try:
                    func(conn, user_id, items)
                except expected:
                    pass
                except Exception as exc:  # noqa: BLE001
                    fail(f"place_order with {label} raised {type(exc).__name__}; expected {expected.__name__}.",
                         hint="check how many rows the INSERT ... SELECT inserted (cursor.rowcount) and raise "
                              "ValueError when it is 0.")
                else:
                    fail(f"place_order with {label} returned normally; it should raise "
                         f"{expected.__name__ if expected is not Exception else 'an exception'}.",
                         hint="an INSERT ... SELECT of a product that does not exist inserts no row and raises "
                              "nothing: check cursor.rowcount.")
                try:
                    conn.rollback()  # what a caller does after an exception; must leave nothing behind
                except psycopg.Error:
                    pass
                after = _order_state(observer)
                expect(after == before, f"After place_order failed with {label}, the database holds "
                                        f"{after[0] - before[0]} new order(s) and {after[1] - before[1]} new item(s)"
                                        + (" and changed stock" if after[2] != before[2] else "")
                                        + ": the order was half-written.",
                       hint="do all the writes in one transaction (with conn.transaction():) and never commit in "
                            "between.")

            def must_work(user_id: int, items: list) -> None:
                stock_before = dict(_order_state(observer)[2])
                try:
                    order_id = func(conn, user_id, items)
                except Exception as exc:  # noqa: BLE001
                    fail(f"place_order(conn, {user_id}, {items}) raised {type(exc).__name__}: {exc}",
                         hint="after an earlier failure, the connection must be usable again (roll back on errors).")
                expect(isinstance(order_id, int), f"place_order returned {order_id!r}; expected the new order_id.")
                row = observer.execute("SELECT user_id, status, shipping_country FROM orders WHERE order_id = %s",
                                       [order_id]).fetchone()
                expect(row is not None, f"Another connection cannot see order {order_id}: it was never committed.",
                       hint="`with conn.transaction():` commits when the block ends.")
                country = observer.execute("SELECT country FROM users WHERE user_id = %s", [user_id]).fetchone()[0]
                compare_value(tuple(row), (user_id, "pending", country), name=f"order {order_id} (user, status, country)")
                expected_items = [(p, q, observer.execute("SELECT price FROM products WHERE product_id = %s",
                                                          [p]).fetchone()[0]) for p, q in sorted(items)]
                compare_rows(observer.execute("SELECT product_id, quantity, unit_price FROM order_items "
                                              "WHERE order_id = %s ORDER BY product_id", [order_id]).fetchall(),
                             expected_items, check_columns=False, what=f"the items of order {order_id}")
                stock_after = dict(_order_state(observer)[2])
                for product_id, quantity in items:
                    compare_value(stock_after[product_id], stock_before[product_id] - quantity,
                                  name=f"the stock of product {product_id} after the order")

            must_work(3, [(1, 2), (2, 1)])
            must_fail("a quantity of 0 on the second line", 4, [(3, 1), (4, 0)])
            must_fail("an unknown product on the second line", 5, [(5, 1), (999_999, 1)], ValueError)
            if hidden:
                must_fail("not enough stock on the second line", 6, [(6, 1), (7, 9)])
                must_fail("an unknown product on the first line", 7, [(999_998, 1), (8, 1)], ValueError)
                must_fail("an unknown product on the third line", 8, [(9, 1), (10, 1), (999_997, 2)], ValueError)
                must_work(9, [(11, 5), (12, 1), (13, 2)])


# --------------------------------------------------------------------------- 08.6 throwaway schema

def _schema_exists(workspace: Any, name: str) -> bool:
    with workspace.connect_postgres(autocommit=True) as other:
        return other.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name]).fetchone() is not None


@exercise("08.6", "A throwaway schema for tests", answer="throwaway_schema")
def throwaway_schema(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "throwaway_schema", "throwaway_schema(conn, prefix='test') (a context manager)")
    import psycopg

    prefix = "My-Tests" if hidden else "test"
    seen: list[str] = []
    try:
        with workspace.connect_postgres() as conn:
            manager = func(conn, prefix=prefix)
            expect(hasattr(manager, "__enter__") and hasattr(manager, "__exit__"),
                   "throwaway_schema(conn) should return a context manager (usable in a `with` block).",
                   hint="decorate a generator function with @contextlib.contextmanager and `yield` the name.")
            try:
                with manager as name:
                    seen.append(name)
                    expect(isinstance(name, str) and name.startswith(prefix + "_"),
                           f"The schema's name is {name!r}; it should start with {prefix + '_'!r}.")
                    expect(_schema_exists(workspace, name),
                           f"Another connection does not see the schema {name!r}: it was not created with exactly "
                           "that name, or not committed.",
                           hint="quote the name with sql.Identifier (prefixes may contain capitals and dashes), "
                                "then commit.")
                    conn.execute("CREATE TABLE chk08_probe (x int)")
                    where = conn.execute("SELECT table_schema FROM information_schema.tables "
                                         "WHERE table_name = 'chk08_probe'").fetchall()
                    expect([r[0] for r in where] == [name],
                           f"A table created inside the block landed in schema(s) {[r[0] for r in where]}, "
                           f"not in {name!r}.", hint="SET search_path TO the new schema (sql.Identifier again).")
                    with func(conn, prefix=prefix) as inner:
                        seen.append(inner)
                        expect(inner != name, "Two schemas made by throwaway_schema have the same name.",
                               hint="add something unique to the prefix, e.g. uuid.uuid4().hex[:12].")
                    expect(not _schema_exists(workspace, inner), f"The schema {inner!r} still exists after its "
                                                                 "`with` block.", hint="DROP SCHEMA ... CASCADE, then commit.")
            except psycopg.Error as exc:
                fail(f"Using throwaway_schema failed in the database: {_db_error(exc)}.")
            expect(not _schema_exists(workspace, name),
                   f"The schema {name!r} still exists after the `with` block ended.",
                   hint="in a `finally:` after the yield: DROP SCHEMA ... CASCADE, then commit.")
            path = conn.execute("SHOW search_path").fetchone()[0]
            expect(name not in path, f"After the block, the connection's search_path is still {path!r}.",
                   hint="RESET search_path (then commit) when the block ends.")

            failures = [(psycopg.errors.DivisionByZero, "SELECT 1 / 0")]
            if hidden:
                failures.append((KeyError, None))
            for error, statement in failures:
                raised = False
                try:
                    with func(conn, prefix=prefix) as failing:
                        seen.append(failing)
                        if statement:
                            conn.execute(statement)
                        else:
                            raise KeyError("raised inside the block")
                except error:
                    raised = True
                except psycopg.Error as exc:
                    fail(f"After a failed statement inside the block, cleaning up failed: {_db_error(exc)}.",
                         hint="roll back first: a failed statement aborts the transaction, and PostgreSQL refuses "
                              "every command until the rollback.")
                expect(raised, "An exception raised inside the `with` block did not reach the caller.",
                       hint="use try/finally around the yield, not try/except.")
                expect(not _schema_exists(workspace, failing),
                       f"After an exception inside the block, the schema {failing!r} was left behind.",
                       hint="put the cleanup in `finally:` so that it runs when the block fails, too.")
                try:
                    conn.execute("SELECT 1")
                    conn.rollback()
                except psycopg.Error as exc:
                    fail(f"After an exception inside the block, the connection is unusable: {_db_error(exc)}.",
                         hint="roll back before dropping the schema.")
    finally:
        sql = _sql()
        with workspace.connect_postgres(autocommit=True) as admin:
            for name in seen:
                if isinstance(name, str):
                    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


# --------------------------------------------------------------------------- 08.7 slow queries

@exercise("08.7", "A slow-query logger with SQLAlchemy events", answer="watch_slow_queries")
def slow_queries(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "watch_slow_queries", "watch_slow_queries(engine, threshold) -> list")
    import sqlalchemy as sa

    watched, other = workspace.engine("postgres"), workspace.engine("postgres")
    try:
        # every slow statement sleeps at least twice the threshold, and fast ones take milliseconds: a busy
        # machine cannot push a correct answer over or under the line
        threshold = 0.15 if hidden else 0.2
        slow = func(watched, threshold)
        expect(isinstance(slow, list), f"watch_slow_queries returned {type(slow).__name__}; expected a list that the "
                                       "listeners append to.")
        with watched.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            conn.execute(sa.text("SELECT pg_sleep(0.4)"))
            conn.execute(sa.text("SELECT count(*) FROM products"))
        with other.connect() as conn:
            conn.execute(sa.text("SELECT pg_sleep(0.3) AS not_watched"))
        expected_sleeps = [0.4]
        if hidden:
            def sleep(seconds: float, delay: float) -> None:
                time.sleep(delay)
                with watched.connect() as conn:
                    conn.execute(sa.text(f"SELECT pg_sleep({seconds})"))

            # two connections at once: the second statement starts while the first still runs, so a start
            # time shared between connections (a global) records the first one as too short
            threads = [threading.Thread(target=sleep, args=(1.0, 0)), threading.Thread(target=sleep, args=(0.3, 0.4))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            expected_sleeps += [0.3, 1.0]
        for entry in slow:
            expect(isinstance(entry, (tuple, list)) and len(entry) == 2,
                   f"Each entry should be a tuple (statement, seconds); found {entry!r}.")
        statements = [str(s) for s, _ in slow]
        expect(not any("not_watched" in s for s in statements),
               "A statement run on another engine was recorded: the listeners are attached to every engine.",
               hint="pass the engine to event.listen(engine, ...), not the Engine class.")
        expect(all("pg_sleep" in s for s in statements),
               f"Fast statements were recorded as slow: {[s for s in statements if 'pg_sleep' not in s][:2]}.",
               hint="append only when the measured time is at least `threshold`.")
        expect(len(slow) == len(expected_sleeps),
               f"{len(slow)} statement(s) were recorded; expected {len(expected_sleeps)} (the pg_sleep calls).",
               hint="time each statement between before_cursor_execute and after_cursor_execute.")
        for seconds in expected_sleeps:
            matching = [t for s, t in slow if f"pg_sleep({seconds})" in str(s)]
            expect(matching, f"The statement pg_sleep({seconds}) was not recorded.")
            measured = matching[0]
            expect(isinstance(measured, (int, float)) and seconds * 0.9 <= measured < seconds + 5,
                   f"pg_sleep({seconds}) was recorded as taking {measured!r} seconds.",
                   hint="store the start time per connection in conn.info (concurrent statements must not share it), "
                        "and record time.perf_counter() differences in seconds.")
    finally:
        watched.dispose()
        other.dispose()


# --------------------------------------------------------------------------- 08.8 verify a restore

@exercise("08.8", "Did the restore really work?", answer="verify_restore")
def verify_restore(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "verify_restore", "verify_restore(source, restored, tables) -> dict")
    src, dst = "chk08_src", "chk08_dst"
    with _scratch_schema(workspace, src), _scratch_schema(workspace, dst):
        with workspace.connect_postgres(autocommit=True) as admin:
            for schema, direction in ((src, "ASC"), (dst, "DESC")):  # the copy stores rows in another order
                admin.execute(f"CREATE TABLE {schema}.products AS SELECT product_id, sku, name, price, attributes "
                              f"FROM public.products ORDER BY product_id {direction}")
                admin.execute(f"CREATE TABLE {schema}.categories AS SELECT * FROM public.categories "
                              f"ORDER BY category_id {direction}")
                admin.execute(f"CREATE TABLE {schema}.notes (id int, body text)")
                admin.execute(f"INSERT INTO {schema}.notes VALUES (1, NULL), (2, 'two'), (3, NULL)")

            def run(tables: list[str], expected: dict[str, bool], situation: str) -> None:
                with _connect_in(workspace, src) as source, _connect_in(workspace, dst) as restored:
                    try:
                        result = func(source, restored, list(tables))
                    except Exception as exc:  # noqa: BLE001
                        fail(f"verify_restore raised {type(exc).__name__} ({situation}): {exc}")
                expect(isinstance(result, dict), f"verify_restore returned {type(result).__name__}; expected a dict "
                                                 "{table: bool}.")
                expect(set(result) == set(tables), f"verify_restore returned the keys {sorted(result)}; expected "
                                                   f"{sorted(tables)}.")
                for table, ok in expected.items():
                    expect(result[table] is ok or result[table] == ok,
                           f"When {situation}, verify_restore says {table!r}: {result[table]!r}; expected {ok}.",
                           hint="compare the row count and an order-independent checksum of the contents "
                                "(e.g. md5 of string_agg(t::text, '|' ORDER BY t::text)).")

            run(["products", "categories"], {"products": True, "categories": True},
                "the copy is complete but stores its rows in another order")
            admin.execute(f"DELETE FROM {dst}.products WHERE product_id = (SELECT max(product_id) FROM {dst}.products)")
            run(["products", "categories"], {"products": False, "categories": True},
                "one product is missing from the copy")
            if hidden:
                admin.execute(f"INSERT INTO {dst}.products SELECT * FROM {src}.products "
                              f"WHERE product_id = (SELECT max(product_id) FROM {src}.products)")
                run(["products"], {"products": True}, "the missing product was put back")
                admin.execute(f"UPDATE {dst}.products SET price = price + 0.01 WHERE product_id = "
                              f"(SELECT min(product_id) FROM {dst}.products)")
                run(["products", "notes"], {"products": False, "notes": True},
                    "one price differs by a cent (same row count)")
                admin.execute(f"UPDATE {dst}.notes SET body = '' WHERE id = 3")
                run(["notes", "categories"], {"notes": False, "categories": True}, "a NULL became an empty string")


# --------------------------------------------------------------------------- 08.9 shard router

@exercise("08.9", "A shard router", answer="ShardRouter")
def shard_router(cls: Any, workspace: Any, *, hidden: bool = False) -> None:
    _is_class(cls, "ShardRouter", "ShardRouter(shards)")
    n = 3 if hidden else 2
    schemas = [f"chk08_shard{i}" for i in range(n)]
    ddl = "CREATE TABLE users (user_id int PRIMARY KEY, email text NOT NULL, country text NOT NULL)"
    first, last = (401, 1000) if hidden else (1, 400)
    with workspace.connect_postgres() as shop:
        users = shop.execute("SELECT user_id, email, country FROM users WHERE user_id BETWEEN %s AND %s "
                             "ORDER BY user_id", [first, last]).fetchall()
    managers = [_scratch_schema(workspace, s, ddl) for s in schemas]
    for manager in managers:
        manager.__enter__()
    conns = []
    try:
        conns = [_connect_in(workspace, s) for s in schemas]
        router = cls(conns)
        owner = {}
        for user_id, _, _ in users:
            shard = router.shard_for(user_id)
            expect(isinstance(shard, int) and 0 <= shard < n,
                   f"shard_for({user_id}) returned {shard!r}; expected an index from 0 to {n - 1}.")
            expect(router.shard_for(user_id) == shard, f"shard_for({user_id}) gave two different answers.",
                   hint="use a stable function of the id: zlib.crc32(str(user_id).encode()) % len(shards), or "
                        "user_id % len(shards).")
            owner[user_id] = shard
        again = cls(conns)
        expect(all(again.shard_for(u) == s for u, s in owner.items()),
               "A second ShardRouter on the same shards maps some users elsewhere: shard_for is not stable.",
               hint="no randomness, no per-process state: only a function of user_id and the number of shards.")
        shares = Counter(owner.values())
        expect(min(shares.get(i, 0) for i in range(n)) >= len(users) / n * 0.6,
               f"The users are spread unevenly over the {n} shards: {[shares.get(i, 0) for i in range(n)]}.",
               hint="a hash (or the id itself) modulo the number of shards spreads consecutive ids evenly.")
        for user in users:
            try:
                router.add_user(*user)
            except Exception as exc:  # noqa: BLE001
                fail(f"add_user{user} raised {type(exc).__name__}: {exc}")
        with workspace.connect_postgres(autocommit=True) as admin:
            for i, schema in enumerate(schemas):
                stored = {r[0] for r in admin.execute(f"SELECT user_id FROM {schema}.users")}
                wanted = {u for u, s in owner.items() if s == i}
                expect(stored, f"Shard {i} holds no user at all (seen from another connection).",
                       hint="commit after each insert.")
                expect(stored == wanted, f"Shard {i} holds {len(stored)} users; {len(wanted)} belong there by "
                                         f"shard_for ({len(stored - wanted)} are misplaced, "
                                         f"{len(wanted - stored)} are missing).",
                       hint="insert each user into shards[shard_for(user_id)] only.")
        counts = router.count_by_country()
        expect(isinstance(counts, dict), f"count_by_country returned {type(counts).__name__}; expected a dict.")
        expected_counts = Counter(country for _, _, country in users)
        expect({k: int(v) for k, v in counts.items()} == dict(expected_counts),
               f"count_by_country differs from the users added, e.g. "
               f"{next(((c, counts.get(c), v) for c, v in expected_counts.items() if counts.get(c) != v), None)} "
               "(country, yours, expected).",
               hint="ask every shard (fan-out) and add up the counts per country.")
        probes = users[:: max(1, len(users) // 7)]
        decoy_user = next(u for u in users if owner[u[0]] == n - 1)  # owned by the last shard...
        for wrong_shard in range(n - 1):  # ...and planted in every other one: only its own shard has the truth
            conns[wrong_shard].execute("INSERT INTO users VALUES (%s, 'decoy@example.org', 'XX')", [decoy_user[0]])
            conns[wrong_shard].commit()
        probes.append(decoy_user)
        for user in probes:
            got = router.get_user(user[0])
            expect(got is not None and tuple(got) == tuple(user),
                   f"get_user({user[0]}) returned {got!r}; expected {tuple(user)!r}.",
                   hint="read from shards[shard_for(user_id)] only, and return (user_id, email, country).")
        missing = router.get_user(-5)
        expect(missing is None, f"get_user(-5) returned {missing!r} for a user that does not exist; expected None.")
    finally:
        for conn in conns:
            conn.close()
        for manager in managers:
            manager.__exit__(None, None, None)


# --------------------------------------------------------------------------- 08.10 separation

_SEPARATION_REFERENCE = """
WITH RECURSIVE walk (person_id, hops) AS (
    SELECT %(a)s::int, 0
  UNION
    SELECT f.friend_id, w.hops + 1 FROM walk w JOIN friendships f ON f.user_id = w.person_id WHERE w.hops < 6
)
SELECT min(hops) AS hops FROM walk WHERE person_id = %(b)s
"""


def _graph(seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    edges = set()
    for group in (range(1, 26), range(26, 41)):  # two separate groups, each connected
        members = list(group)
        rng.shuffle(members)
        for i in range(1, len(members)):
            edges.add((members[rng.randrange(i)], members[i]))
        for _ in range(len(members) // 3):
            a, b = rng.sample(members, 2)
            edges.add((a, b))
    for person in range(41, 50):  # a chain 41 - 42 - ... - 50
        edges.add((person, person + 1))
    return sorted({(a, b) for a, b in edges if a != b} | {(b, a) for a, b in edges if a != b})


@exercise("08.10", "Degrees of separation", answer="separation_sql")
def separation(query: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(query, "separation_sql")
    schema = "chk08_graph"
    ddl = "CREATE TABLE friendships (user_id int NOT NULL, friend_id int NOT NULL, PRIMARY KEY (user_id, friend_id))"
    with _scratch_schema(workspace, schema, ddl), _connect_in(workspace, schema) as conn:
        conn.cursor().executemany("INSERT INTO friendships VALUES (%s, %s)", _graph(808 if not hidden else 909))
        conn.commit()
        rng = random.Random(7 if not hidden else 8)
        pairs = [(1, 1), (41, 47), (41, 48), (41, 50), (1, 30), (55, 55), (55, 1)]
        pairs += [tuple(rng.sample(range(1, 26), 2)) for _ in range(6)]
        pairs += [tuple(rng.sample(range(26, 41), 2)) for _ in range(3)]

        def compare_all(situation: str) -> None:
            for a, b in pairs:
                expected = run_sql(conn, _SEPARATION_REFERENCE, {"a": a, "b": b}, what="The reference query")
                got = run_sql(conn, query, {"a": a, "b": b})
                compare_rows(got, expected, what=f"Your query for a={a}, b={b}{situation}")

        compare_all("")
        if hidden:
            conn.execute("INSERT INTO friendships VALUES (41, 46), (46, 41), (25, 26), (26, 25)")
            pairs += [(1, 40), (41, 50), (50, 25)]
            compare_all(" (after adding shortcuts to the graph)")
        conn.rollback()


# --------------------------------------------------------------------------- 08.11 e-commerce schema

REFERENCE_ECOMMERCE_DDL = """
CREATE TABLE customers (
    customer_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    full_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
    product_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku text NOT NULL UNIQUE,
    name text NOT NULL,
    price numeric(10, 2) NOT NULL CHECK (price >= 0),
    stock integer NOT NULL DEFAULT 0 CHECK (stock >= 0)
);
CREATE TABLE orders (
    order_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (customer_id),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE TABLE order_items (
    order_id integer NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    product_id integer NOT NULL REFERENCES products (product_id),
    quantity integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10, 2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, product_id)
);
"""

_ECOMMERCE_COLUMNS = {
    "customers": ("customer_id", "email", "full_name", "created_at"),
    "products": ("product_id", "sku", "name", "price", "stock"),
    "orders": ("order_id", "customer_id", "status", "created_at"),
    "order_items": ("order_id", "product_id", "quantity", "unit_price"),
}


@exercise("08.11", "Capstone 1: an e-commerce schema", answer="ecommerce_ddl")
def ecommerce_schema(ddl: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(ddl, "ecommerce_ddl")
    expect(isinstance(ddl, str), "`ecommerce_ddl` should be a string of CREATE statements.")
    import psycopg

    schema = "chk08_shop"
    with _scratch_schema(workspace, schema), _connect_in(workspace, schema) as conn:
        try:
            conn.execute(ddl)
            conn.commit()
        except psycopg.Error as exc:
            fail(f"Your DDL failed: {_db_error(exc)}.", hint="run it on its own in a cell to see the whole error.")
        columns = defaultdict(dict)
        for table, column, data_type in conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s",
                [schema]):
            columns[table][column] = data_type
        for table, wanted in _ECOMMERCE_COLUMNS.items():
            expect(table in columns, f"Your DDL creates no table `{table}`.", hint="write the table names without "
                                                                                  "a schema.")
            missing = [c for c in wanted if c not in columns[table]]
            expect(not missing, f"The table `{table}` has no column(s) {missing}.")
        for table, column in (("products", "price"), ("order_items", "unit_price")):
            expect(columns[table][column] == "numeric",
                   f"`{table}.{column}` is {columns[table][column]}; money needs numeric(10,2) (a float cannot "
                   "hold 0.10 exactly).")

        def insert(statement: str, params: list, label: str) -> Any:
            try:
                with conn.transaction():
                    return conn.execute(statement, params).fetchone()
            except psycopg.Error as exc:
                fail(f"Your schema rejected {label}: {_db_error(exc)}.",
                     hint="check the identity columns (generated keys) and the defaults.")

        customer = insert("INSERT INTO customers (email, full_name) VALUES (%s, %s) RETURNING customer_id, created_at",
                          ["ann@example.org", "Ann Example"], "a valid customer")
        expect(customer[1] is not None, "A new customer's created_at is NULL: it should default to now().")
        other = insert("INSERT INTO customers (email, full_name) VALUES (%s, %s) RETURNING customer_id",
                       ["bob@example.org", "Bob Example"], "a second valid customer")[0]
        expect(other != customer[0], "Two customers got the same customer_id: make it a generated identity.")
        kettle = insert("INSERT INTO products (sku, name, price, stock) VALUES (%s, %s, %s, %s) RETURNING product_id, "
                        "price", ["SKU-KETTLE", "Kettle", Decimal("19.99"), 10], "a valid product")
        expect(kettle[1] == Decimal("19.99"), f"A price of 19.99 was stored as {kettle[1]!r}.",
               hint="use numeric(10, 2).")
        mug = insert("INSERT INTO products (sku, name, price) VALUES (%s, %s, %s) RETURNING product_id, stock",
                     ["SKU-MUG", "Mug", Decimal("4.50")], "a product without a stock value")
        expect(mug[1] == 0, f"A product inserted without a stock has stock {mug[1]!r}; it should default to 0.")
        order = insert("INSERT INTO orders (customer_id) VALUES (%s) RETURNING order_id, status, created_at",
                       [customer[0]], "an order with only a customer_id")
        expect(order[1] == "pending" and order[2] is not None,
               f"A new order has status {order[1]!r} and created_at {order[2]!r}; expected 'pending' and now().")
        second_order = insert("INSERT INTO orders (customer_id, status) VALUES (%s, 'paid') RETURNING order_id",
                              [other], "an order with status 'paid'")[0]
        for status in ("shipped", "delivered", "cancelled"):
            insert("INSERT INTO orders (customer_id, status) VALUES (%s, %s) RETURNING order_id", [other, status],
                   f"an order with status {status!r}")
        for order_id, product_id, quantity in ((order[0], kettle[0], 2), (order[0], mug[0], 1),
                                               (second_order, kettle[0], 1)):
            insert("INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (%s, %s, %s, %s) "
                   "RETURNING order_id", [order_id, product_id, quantity, Decimal("19.99")], "a valid order item")
        conn.commit()

        bad = [
            ("a second customer with the same e-mail", "INSERT INTO customers (email, full_name) VALUES (%s, %s)",
             ["ann@example.org", "Ann Again"]),
            ("a customer without an e-mail", "INSERT INTO customers (email, full_name) VALUES (NULL, %s)", ["Nobody"]),
            ("a product with a negative price", "INSERT INTO products (sku, name, price) VALUES (%s, %s, %s)",
             ["SKU-NEG", "Negative", Decimal("-1.00")]),
            ("a product with negative stock", "INSERT INTO products (sku, name, price, stock) VALUES (%s, %s, %s, %s)",
             ["SKU-MINUS", "Minus", Decimal("1.00"), -1]),
            ("a second product with the same sku", "INSERT INTO products (sku, name, price) VALUES (%s, %s, %s)",
             ["SKU-KETTLE", "Kettle copy", Decimal("1.00")]),
            ("an order of a customer who does not exist", "INSERT INTO orders (customer_id) VALUES (%s)", [999_999]),
            ("an order with status 'lost'", "INSERT INTO orders (customer_id, status) VALUES (%s, 'lost')", [other]),
            ("an order item with quantity 0", "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
             "VALUES (%s, %s, 0, 1)", [second_order, mug[0]]),
            ("the same product twice in one order", "INSERT INTO order_items (order_id, product_id, quantity, "
             "unit_price) VALUES (%s, %s, 1, 1)", [order[0], kettle[0]]),
            ("an order item of a product that does not exist", "INSERT INTO order_items (order_id, product_id, "
             "quantity, unit_price) VALUES (%s, 999999, 1, 1)", [second_order]),
        ]
        if hidden:
            bad += [
                ("a product without a price", "INSERT INTO products (sku, name, price) VALUES (%s, %s, NULL)",
                 ["SKU-NULL", "No price"]),
                ("a product without a sku", "INSERT INTO products (sku, name, price) VALUES (NULL, %s, 1)", ["No sku"]),
                ("an order with status 'refunded'", "INSERT INTO orders (customer_id, status) VALUES (%s, 'refunded')",
                 [other]),
                ("an order without a customer", "INSERT INTO orders (customer_id) VALUES (NULL)", []),
                ("an order item with quantity -1", "INSERT INTO order_items (order_id, product_id, quantity, "
                 "unit_price) VALUES (%s, %s, -1, 1)", [second_order, mug[0]]),
                ("an order item with a negative unit price", "INSERT INTO order_items (order_id, product_id, "
                 "quantity, unit_price) VALUES (%s, %s, 1, -0.01)", [second_order, mug[0]]),
                ("an order item of an order that does not exist", "INSERT INTO order_items (order_id, product_id, "
                 "quantity, unit_price) VALUES (999999, %s, 1, 1)", [mug[0]]),
                ("a customer without a name", "INSERT INTO customers (email, full_name) VALUES (%s, NULL)",
                 ["nameless@example.org"]),
            ]
        for label, statement, params in bad:
            try:
                with conn.transaction():
                    conn.execute(statement, params)
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
                continue
            except psycopg.Error as exc:
                fail(f"Inserting {label} failed with {_db_error(exc)}, not with a constraint violation.")
            fail(f"Your schema accepted {label}.", hint="add the NOT NULL, UNIQUE, CHECK, PRIMARY KEY or REFERENCES "
                                                        "that forbids it.")

        for label, statement, params in (
                ("deleting a product that is in an order", "DELETE FROM products WHERE product_id = %s", [kettle[0]]),
                ("deleting a customer who has orders", "DELETE FROM customers WHERE customer_id = %s", [customer[0]])):
            try:
                with conn.transaction():
                    conn.execute(statement, params)
            except psycopg.errors.IntegrityError:
                continue
            fail(f"Your schema allowed {label}: the orders would point at nothing (or lose their lines).",
                 hint="a plain REFERENCES (no ON DELETE CASCADE) on order_items.product_id and orders.customer_id.")
        try:
            with conn.transaction():
                conn.execute("DELETE FROM orders WHERE order_id = %s", [order[0]])
        except psycopg.errors.IntegrityError as exc:
            fail(f"Deleting an order failed ({_db_error(exc)}): its items should go with it.",
                 hint="order_items.order_id REFERENCES orders ON DELETE CASCADE.")
        left = conn.execute("SELECT count(*) FROM order_items WHERE order_id = %s", [order[0]]).fetchone()[0]
        expect(left == 0, f"After deleting an order, {left} of its items are still there.",
               hint="order_items.order_id REFERENCES orders ON DELETE CASCADE.")
        indexed = conn.execute("""
            SELECT count(*) FROM pg_index i
            JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
            WHERE n.nspname = %s AND t.relname = 'orders' AND a.attname = 'customer_id'""", [schema]).fetchone()[0]
        expect(indexed > 0, "There is no index whose first column is orders.customer_id.",
               hint="CREATE INDEX orders_customer_id_idx ON orders (customer_id);")
        conn.rollback()


# --------------------------------------------------------------------------- 08.12 repository

class ReferenceShopRepository:
    """The reference answer of 08.12, used by the check of 08.13 (so 08.13 does not depend on 08.12)."""

    def __init__(self, pool: Any):
        self.pool = pool

    def add_product(self, sku: str, name: str, price: Any, stock: int = 0) -> int:
        with self.pool.connection() as conn:
            return conn.execute("INSERT INTO products (sku, name, price, stock) VALUES (%s, %s, %s, %s) "
                                "RETURNING product_id", [sku, name, price, stock]).fetchone()[0]

    def get_product(self, product_id: int) -> dict | None:
        from psycopg.rows import dict_row

        with self.pool.connection() as conn:
            return conn.cursor(row_factory=dict_row).execute(
                "SELECT product_id, sku, name, price, stock FROM products WHERE product_id = %s",
                [product_id]).fetchone()

    def update_price(self, product_id: int, price: Any) -> bool:
        with self.pool.connection() as conn:
            return conn.execute("UPDATE products SET price = %s WHERE product_id = %s",
                                [price, product_id]).rowcount == 1


@contextmanager
def _pool_on_schema(workspace: Any, schema: str, max_size: int = 2):
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(workspace.postgres_url, min_size=1, max_size=max_size, timeout=5, open=True,
                          kwargs={"options": f"-c search_path={schema}"})
    try:
        yield pool
    finally:
        pool.close()


def _call(label: str, func: Any, *args: Any) -> Any:
    from psycopg_pool import PoolTimeout

    try:
        return func(*args)
    except PoolTimeout:
        fail(f"{label} waited in vain for a connection: the pool (2 connections) is empty, so earlier calls did not "
             "give their connections back.", hint="borrow connections with `with self.pool.connection() as conn:`.")


@exercise("08.12", "Capstone 2: a repository", answer="ShopRepository")
def repository(cls: Any, workspace: Any, *, hidden: bool = False) -> None:
    _is_class(cls, "ShopRepository", "ShopRepository(pool)")
    import psycopg

    schema = "chk08_repo"
    with _scratch_schema(workspace, schema, REFERENCE_ECOMMERCE_DDL), _pool_on_schema(workspace, schema) as pool, \
            _connect_in(workspace, schema, autocommit=True) as observer:
        repo = cls(pool)

        def state() -> tuple:
            return observer.execute("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items), "
                                    "(SELECT sum(stock) FROM products)").fetchone()

        kettle = _call("add_product", repo.add_product, "SKU-KETTLE", "Kettle", Decimal("19.99"), 5)
        expect(isinstance(kettle, int), f"add_product returned {kettle!r}; expected the new product_id (an int).")
        mug = _call("add_product", repo.add_product, "SKU-MUG", "Mug", Decimal("4.50"), 20)
        got = _call("get_product", repo.get_product, kettle)
        expected = {"product_id": kettle, "sku": "SKU-KETTLE", "name": "Kettle", "price": Decimal("19.99"), "stock": 5}
        expect(isinstance(got, dict), f"get_product returned {type(got).__name__}; expected a dict.",
               hint="conn.cursor(row_factory=dict_row) returns rows as dicts.")
        expect(set(got) == set(expected), f"get_product returned the keys {sorted(got)}; expected {sorted(expected)}.")
        for key, value in expected.items():
            compare_value(got[key], value, name=f"get_product({kettle})[{key!r}]")
        expect(_call("get_product", repo.get_product, 999_999) is None,
               "get_product of a product that does not exist should return None.")
        ann = _call("add_customer", repo.add_customer, "ann@example.org", "Ann")
        expect(isinstance(ann, int), f"add_customer returned {ann!r}; expected the new customer_id.")
        try:
            repo.add_customer("ann@example.org", "Ann again")
        except psycopg.Error:
            pass
        except Exception as exc:  # noqa: BLE001
            if "PoolTimeout" in type(exc).__name__:
                raise
        else:
            fail("add_customer accepted a second customer with the same e-mail.")

        order = _call("place_order", repo.place_order, ann, {kettle: 2, mug: 3})
        expect(isinstance(order, int), f"place_order returned {order!r}; expected the new order_id.")
        items = observer.execute("SELECT product_id, quantity, unit_price FROM order_items WHERE order_id = %s "
                                 "ORDER BY product_id", [order]).fetchall()
        compare_rows(items, [(kettle, 2, Decimal("19.99")), (mug, 3, Decimal("4.50"))], check_columns=False,
                     what=f"the items of order {order} (seen from another connection)")
        compare_value(_call("order_total", repo.order_total, order), Decimal("53.48"), name="order_total")
        compare_value(_call("get_product", repo.get_product, kettle)["stock"], 3,
                      name="the kettle's stock after an order of 2")
        expect(_call("update_price", repo.update_price, kettle, Decimal("17.50")) is True,
               "update_price of an existing product should return True.")
        expect(_call("update_price", repo.update_price, 999_999, Decimal("1.00")) is False,
               "update_price of a product that does not exist should return False.")
        compare_value(_call("get_product", repo.get_product, kettle)["price"], Decimal("17.50"),
                      name="the price after update_price")
        compare_value(_call("order_total", repo.order_total, order), Decimal("53.48"),
                      name="the total of the earlier order after a price change (unit prices are kept)")

        def must_refuse(label: str, items: dict) -> None:
            before = state()
            try:
                _call("place_order", repo.place_order, ann, items)
            except ValueError:
                pass
            except Exception as exc:  # noqa: BLE001
                fail(f"place_order with {label} raised {type(exc).__name__}; expected ValueError.")
            else:
                fail(f"place_order with {label} succeeded; it should raise ValueError.")
            expect(state() == before, f"place_order with {label} wrote something before failing: orders, items or "
                                      "stock changed.", hint="do every write of the order in one transaction.")

        must_refuse("more than the stock", {mug: 1, kettle: 4})
        must_refuse("a product that does not exist", {mug: 1, 999_999: 1})
        if hidden:
            must_refuse("no items", {})
            must_refuse("a product that does not exist first", {999_998: 1, mug: 1})
            second = _call("place_order", repo.place_order, ann, {kettle: 3})
            compare_value(_call("order_total", repo.order_total, second), Decimal("52.50"),
                          name="the total of an order placed after a price change")
            compare_value(_call("get_product", repo.get_product, kettle)["stock"], 0,
                          name="the stock after selling the last kettles")
            must_refuse("a product that is out of stock", {kettle: 1})
            for _ in range(5):  # a leaked connection would exhaust the pool of 2 here
                _call("get_product", repo.get_product, mug)
                _call("order_total", repo.order_total, order)
        with pool.connection(timeout=3):
            pass


# --------------------------------------------------------------------------- 08.13 caching

class _CountingRepository:
    def __init__(self, inner: Any):
        self.inner, self.reads, self.updates = inner, 0, 0

    def get_product(self, product_id: int) -> Any:
        self.reads += 1
        return self.inner.get_product(product_id)

    def update_price(self, product_id: int, price: Any) -> Any:
        self.updates += 1
        return self.inner.update_price(product_id, price)


def _same_product(got: Any, expected: dict, label: str) -> None:
    expect(isinstance(got, dict), f"{label} returned {type(got).__name__}; expected a dict like the repository's.")
    expect(set(got) == set(expected), f"{label} returned the keys {sorted(got)}; expected {sorted(expected)}.")
    for key, value in expected.items():
        expect(values_equal(got[key], value) or (key == "price" and str(got[key]) == str(value)),
               f"{label}[{key!r}] is {got[key]!r}; expected {value!r}.",
               hint="JSON turns the Decimal price into a string or a float: turn it back into Decimal(...).")
    expect(not isinstance(got["price"], str), f"{label}['price'] is the string {got['price']!r}; expected a number.",
           hint="turn it back into Decimal(...) when reading from the cache.")


@exercise("08.13", "Capstone 3: a caching layer", answer="CachedProductRepository")
def caching(cls: Any, workspace: Any, *, hidden: bool = False) -> None:
    _is_class(cls, "CachedProductRepository", "CachedProductRepository(repo, redis_client, key_prefix, ttl=60)")
    schema = "chk08_cache"
    redis = workspace.redis
    prefix = workspace.key("chk08cache")

    used: set[str] = set()

    def clear() -> None:  # only the keys this check can have created (no SCAN over a shared server)
        if used:
            redis.delete(*used)

    with _scratch_schema(workspace, schema, REFERENCE_ECOMMERCE_DDL), _pool_on_schema(workspace, schema) as pool:
        try:
            inner = ReferenceShopRepository(pool)
            kettle = inner.add_product("SKU-KETTLE", "Kettle", Decimal("19.99"), 5)
            mug = inner.add_product("SKU-MUG", "Mug", Decimal("4.50"), 20)
            repo = _CountingRepository(inner)
            ttl = 5 if hidden else 60
            cache = cls(repo, redis, prefix, ttl=ttl)
            key = f"{prefix}:product:{kettle}"
            used.update(f"{prefix}:product:{p}" for p in (kettle, mug, 999_999))
            clear()

            first = cache.get_product(kettle)
            _same_product(first, inner.get_product(kettle), "the first get_product (a miss)")
            expect(repo.reads == 1, f"The first get_product read the repository {repo.reads} times; expected once.")
            expect(redis.exists(key), f"After a miss, nothing is cached under the key {key!r}.",
                   hint="the key is f'{key_prefix}:product:{product_id}'.")
            remaining = redis.ttl(key)
            expect(0 < remaining <= ttl, f"The cached key has a TTL of {remaining} s; expected at most {ttl} s "
                                         "(-1 means no expiry at all).", hint="set(key, value, ex=self.ttl).")
            second = cache.get_product(kettle)
            _same_product(second, inner.get_product(kettle), "the second get_product (a hit)")
            expect(repo.reads == 1, "The second get_product of the same product read the repository again: the "
                                    "cache was not used.")
            expect((cache.hits, cache.misses) == (1, 1),
                   f"After one miss and one hit, hits={cache.hits!r} and misses={cache.misses!r}.")

            result = cache.update_price(kettle, Decimal("17.50"))
            expect(result is True, f"update_price returned {result!r}; expected what the repository returned (True).")
            expect(repo.updates == 1, "update_price did not call the repository's update_price.")
            expect(not redis.exists(key), "After update_price, the old product is still cached: readers would see the "
                                          "old price until the TTL expires.", hint="delete the key after the update.")
            third = cache.get_product(kettle)
            compare_value(third["price"], Decimal("17.50"), name="the price read after update_price")
            expect(repo.reads == 2, "After an update, get_product should miss and read the repository again.")

            expect(cache.get_product(999_999) is None, "get_product of a product that does not exist should return "
                                                       "None.")
            if hidden:
                _same_product(cache.get_product(mug), inner.get_product(mug), "get_product of a second product")
                _same_product(cache.get_product(mug), inner.get_product(mug), "get_product of a second product, again")
                expect(cache.hits == 2, f"hits is {cache.hits}; expected 2 after two hits.")
                expect(cache.get_product(999_999) is None, "get_product of a missing product, asked twice, should "
                                                           "return None both times.")
                expect(redis.exists(f"{prefix}:product:{mug}"), "The second product is not cached under "
                                                               f"{prefix}:product:<id>.")
        finally:
            clear()


# --------------------------------------------------------------------------- 08.14 analytics

_EVENT_TYPES = ("page_view", "search", "add_to_cart", "purchase", "login")


def _events(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    start = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    events = []
    for number in range(count):
        event = {"session_id": f"s{rng.randrange(10**6):06d}",
                 "type": rng.choices(_EVENT_TYPES, weights=(50, 15, 15, 5, 15))[0],
                 "at": start + dt.timedelta(seconds=rng.randrange(6 * 86400))}
        roll = rng.random()
        if roll < 0.08:
            pass  # anonymous: no user_id at all
        elif roll < 0.12:
            event["user_id"] = None  # anonymous too, spelled differently
        else:
            event["user_id"] = int(rng.triangular(1, 9, 2))
        if rng.random() < 0.5:
            event["product_id"] = rng.randrange(1, 300)
        events.append(event)
    return events


@exercise("08.14", "Capstone 4: an analytics system on MongoDB", answer="track_event")
def analytics(track_event: Any, top_users: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(track_event, "track_event", "track_event(db, event)")
    _callable(top_users, "top_users", "top_users(db, first_day, last_day, limit=5)")
    client = workspace.mongo_client
    name = sibling_name(workspace.namespace, "chk_analytics")
    client.drop_database(name)
    db = client[name]
    try:
        events = _events(seed=81 if not hidden else 82, count=30 if not hidden else 40)
        for event in events:
            track_event(db, dict(event))

        per_user: dict = {}
        per_day: dict = {}
        for event in events:
            user = event.get("user_id")
            if user is None:
                continue
            stats = per_user.setdefault(user, {"events": 0, "by_type": Counter(), "first_at": event["at"],
                                               "last_at": event["at"]})
            stats["events"] += 1
            stats["by_type"][event["type"]] += 1
            stats["first_at"] = min(stats["first_at"], event["at"])
            stats["last_at"] = max(stats["last_at"], event["at"])
            day = per_day.setdefault((user, event["at"].strftime("%Y-%m-%d")), {"events": 0, "by_type": Counter()})
            day["events"] += 1
            day["by_type"][event["type"]] += 1

        stored = {doc["_id"]: doc for doc in db.user_stats.find()}
        expect(None not in stored, "user_stats has a document for user None: anonymous events must be ignored.")
        expect(set(stored) == set(per_user),
               f"user_stats has documents for {len(stored)} users; expected {len(per_user)} (one per user id, with "
               "_id = the user id).", hint="update_one({'_id': user_id}, {...}, upsert=True).")
        for user, wanted in sorted(per_user.items()):
            doc = stored[user]
            compare_value(doc.get("events"), wanted["events"], name=f"user_stats[{user}].events",
                          hint="{'$inc': {'events': 1, ...}} at the top level of the update.")
            expect(dict(doc.get("by_type") or {}) == dict(wanted["by_type"]),
                   f"user_stats[{user}].by_type is {doc.get('by_type')!r}; expected {dict(wanted['by_type'])!r}.",
                   hint="$inc with a dotted path: {'$inc': {f'by_type.{event_type}': 1}}.")
            for field, operator in (("first_at", "$min"), ("last_at", "$max")):
                expect(isinstance(doc.get(field), dt.datetime) and values_equal(doc[field], wanted[field]),
                       f"user_stats[{user}].{field} is {doc.get(field)!r}; expected {wanted[field]!r}.",
                       hint=f"events arrive out of order: {operator} keeps the right one, $set keeps the last.")

        days = list(db.daily_stats.find())
        keys = Counter((doc.get("user_id"), doc.get("day")) for doc in days)
        duplicates = [k for k, n in keys.items() if n > 1]
        expect(not duplicates, f"daily_stats has several documents for the same user and day, e.g. {duplicates[:1]}.",
               hint="upsert with the filter {'user_id': ..., 'day': ...}.")
        expect(set(keys) == set(per_day),
               f"daily_stats has {len(keys)} (user_id, day) documents; expected {len(per_day)}.",
               hint="day is the UTC date of `at` as a 'YYYY-MM-DD' string; ignore events without user_id.")
        for doc in days:
            wanted = per_day[(doc["user_id"], doc["day"])]
            expect(doc.get("events") == wanted["events"] and dict(doc.get("by_type") or {}) == dict(wanted["by_type"]),
                   f"daily_stats for user {doc['user_id']} on {doc['day']} has events={doc.get('events')!r}, "
                   f"by_type={doc.get('by_type')!r}; expected {wanted['events']} and {dict(wanted['by_type'])}.")

        reports = [("2026-06-01", "2026-06-06", 5), ("2026-06-03", "2026-06-04", 3)]
        if hidden:
            reports += [("2026-06-05", "2026-06-05", 1), ("2026-07-01", "2026-07-31", 5), ("2026-06-02", "2026-06-05", 12)]
        for first_day, last_day, limit in reports:
            totals = Counter()
            for (user, day), wanted in per_day.items():
                if first_day <= day <= last_day:
                    totals[user] += wanted["events"]
            expected = [{"user_id": u, "events": n} for u, n in sorted(totals.items(), key=lambda x: (-x[1], x[0]))]
            expected = expected[:limit]
            got = top_users(db, first_day, last_day, limit)
            expect(isinstance(got, list), f"top_users returned {type(got).__name__}; expected a list of dicts "
                                          "(list(collection.aggregate(...))).")
            try:
                got = [{"user_id": row["user_id"], "events": row["events"]} for row in got]
            except (KeyError, TypeError):
                fail(f"top_users returned rows like {got[:1]!r}; each should be a dict with the keys 'user_id' and "
                     "'events'.", hint="end the pipeline with {'$project': {'_id': 0, 'user_id': '$_id', 'events': 1}}.")
            expect(got == expected, f"top_users(db, {first_day!r}, {last_day!r}, {limit}) returned {got}; expected "
                                    f"{expected}.",
                   hint="$match the days (inclusive), $group by user_id summing events, $sort by events descending "
                        "then user_id, $limit.")
    finally:
        client.drop_database(name)


__all__ = [
    "chapter", "progress", "search_products", "passwords", "grant_reporting", "coupons", "place_order",
    "throwaway_schema", "slow_queries", "verify_restore", "shard_router", "separation", "ecommerce_schema",
    "repository", "caching", "analytics", "REFERENCE_ECOMMERCE_DDL", "ReferenceShopRepository", "sibling_name",
]
