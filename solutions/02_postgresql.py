# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: nbgrader,tags,editable,deletable,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · PostgreSQL from Python with psycopg 3
#
# **After this chapter you will be able to**
#
# * connect to PostgreSQL with **psycopg 3** from a URL that comes from configuration, borrow
#   connections from a **pool**, get rows as **dicts**, pass values as **parameters** and compose
#   table and column names safely;
# * write rows and get generated values back with **`RETURNING`**, and wrap units of work in a
#   **DatabaseManager** that commits, rolls back and closes for you;
# * control **transactions** (ACID, autocommit, savepoints) and show, with **two live
#   connections**, a lost update, how to prevent it, and a **serialization failure** that is
#   retried;
# * use what sets PostgreSQL apart: **full-text search** with ranking and a **GIN** index,
#   **JSONB** documents, **arrays**;
# * write analytics with **window functions**, **CTEs** (recursive ones too) and **`DATE_TRUNC`**;
# * read **`EXPLAIN` / `EXPLAIN ANALYZE`** and bulk-load with **`COPY`**;
# * translate the **psycopg2** code of older tutorials into psycopg 3.
#
# **Time**: about 3 hours (the whole notebook runs in well under a minute).
#
# **What must be running**: PostgreSQL. The setup cell checks it and loads the course's shop
# (users, products, orders, posts, ...; see `datasets/README.md`) into a database of this notebook's
# own. If the server is down it stops with one message naming the fix (`dbcourse services up`).
#
# **How to use this notebook**: run the cells from top to bottom. Cells marked *Exercise* are
# yours: replace the placeholder, run the cell, then run the *check* cell under it.

# %% tags=["parameters"]
# Parameters: the defaults come from the course configuration. Graders and papermill runs may
# change them; you never need to.
namespace = None
scale = "small"
postgres_url = None
mysql_url = None
mongodb_url = None
redis_url = None

# %%
import dbcourse
from dbcourse.checks import ch02 as check

course = dbcourse.setup("02-postgresql", namespace=namespace, scale=scale,
                        urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url))

# %% [markdown]
# ## 1. Connecting with psycopg 3
#
# ### Where the connection details come from
#
# A PostgreSQL client needs a host, a port, a database, a user and a password. libpq, the C
# library under psycopg (and under `psql`), accepts them in two spellings:
#
# | Form | Example |
# |---|---|
# | **URL** | `postgresql://alice:s3cret@db.example.org:5432/shop?sslmode=require` |
# | **key=value conninfo** | `host=db.example.org port=5432 dbname=shop user=alice password=s3cret sslmode=require` |
#
# Both mean the same; psycopg also takes keyword arguments (`psycopg.connect(host=..., dbname=...)`).
# In a URL, special characters in the password must be percent-encoded (`p@ss` is `p%40ss`);
# in the key=value form, values with spaces are quoted (`password='two words'`). Anything left
# out falls back to libpq's **environment variables** (`PGHOST`, `PGPORT`, `PGDATABASE`,
# `PGUSER`, `PGPASSWORD`) and to the password file `~/.pgpass`.
#
# **Never write a password into your code** (it ends up in git, in screenshots, in logs). Read
# the URL from the environment or a configuration file. This course does exactly that:
# `course.postgres_url` is built from `DBCOURSE_*` variables (or a `.env` file), pointing at the
# database the setup cell made for this notebook. We only ever print it with the password masked.

# %% [markdown]
# Host, port, user and database depend on where the course runs (native servers, Docker, your own
# configuration), so the next cell's output is not compared; the cell after it states what holds
# everywhere.

# %% tags=["nbval-ignore-output"]
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from dbcourse.config import mask_url

print("URL from the configuration:", mask_url(course.postgres_url))

parts = conninfo_to_dict(course.postgres_url)  # parse either form into a dict
print({key: "***" if key == "password" else value for key, value in parts.items()})

# The same target as key=value conninfo, plus two session settings of our own: a name that shows
# up in the server's activity view, and the session time zone (timestamps print in UTC).
conninfo = make_conninfo(course.postgres_url, application_name="dbcourse-ch02", options="-c TimeZone=UTC")
print(make_conninfo(conninfo, password="***"))

# %%
settings = conninfo_to_dict(conninfo)
print("the URL and the conninfo name this notebook's database:", settings["dbname"] == parts["dbname"] == course.namespace)
print("our own session settings:", {key: settings[key] for key in ("application_name", "options")})

# %% [markdown]
# `conninfo` is what the rest of the chapter passes to `psycopg.connect`. (The course's own helper
# `course.connect_postgres()` does the same with a short connect timeout.)
#
# A connection used as a context manager is **closed** at the end of the `with` block, after
# **committing** the open transaction, or **rolling it back** if an exception escaped. Note also
# that psycopg opened a transaction by itself for the first statement:

# %%
with psycopg.connect(conninfo) as conn:
    configured_user, mine, tz, app = conn.execute(
        "SELECT current_user = %s, current_database() = %s, current_setting('TimeZone'), "
        "current_setting('application_name')",
        (parts.get("user"), course.namespace),
    ).fetchone()
    print(f"the configured user: {configured_user}  my own database: {mine}  TimeZone={tz}  application_name={app}")
    print("transaction status inside the block:", conn.info.transaction_status.name)
print("closed after the block:", conn.closed)

# %% [markdown]
# ### Running queries: cursors, placeholders, fetching
#
# `conn.execute(query, params)` creates a **cursor**, runs the query and returns the cursor; you
# then `fetchone()`, `fetchmany(n)`, `fetchall()` or simply iterate over it. (`conn.cursor()` gives
# you a cursor object to reuse, exactly as in the DB-API.)
#
# Values go in through **placeholders**: `%s` for positional parameters (a tuple or list), or
# `%(name)s` for named ones (a dict). This is the same for every Python type: no quotes around
# `%s`, even for strings and dates, and a literal `%` in the query is written `%%`.

# %%
from datetime import datetime, timedelta, timezone

with psycopg.connect(conninfo) as conn:
    cur = conn.execute(
        "SELECT user_id, full_name, country FROM users WHERE full_name LIKE %s ORDER BY user_id LIMIT 3",
        ("%O'Brien%",),  # a one-element tuple: note the comma
    )
    for row in cur:
        print(row)

    cur = conn.execute(
        "SELECT count(*) FROM orders WHERE status = %(status)s AND ordered_at >= %(since)s",
        {"status": "refunded", "since": datetime(2026, 1, 1, tzinfo=timezone.utc)},
    )
    print("refunded orders since 2026:", cur.fetchone()[0])

# %% [markdown]
# Why placeholders and never f-strings or `+`: a value glued into the SQL text becomes **SQL**.
# Here is what a user who types a quote can do to a query built by string formatting (done on
# purpose, once, to see it):

# %%
typed_by_a_user = "nobody@example.com' OR '1'='1"

with psycopg.connect(conninfo) as conn:
    glued = f"SELECT count(*) FROM users WHERE email = '{typed_by_a_user}'"  # WRONG: injectable
    print("glued into the SQL:", conn.execute(glued).fetchone()[0], "users   <-", glued)
    safe = conn.execute("SELECT count(*) FROM users WHERE email = %s", (typed_by_a_user,)).fetchone()[0]
    print("as a parameter:    ", safe, "users")

# %% [markdown]
# psycopg 3 goes further than psycopg2 here: it uses **server-side binding**. The query travels
# with `$1, $2, ...` in place of the placeholders and the values travel separately, so a value
# can never be parsed as SQL. (psycopg2 merged the values into the text on the client, with
# escaping.) The consequence you will meet: parameters work wherever SQL accepts a *value*, but
# not in statements without a planner such as `SET`, nor in place of a table or column name.

# %%
with psycopg.connect(conninfo) as conn:
    try:
        conn.execute("SET statement_timeout = %s", ("5s",))
    except psycopg.errors.SyntaxError as exc:
        print("SET with a parameter:", type(exc).__name__, "-", exc.diag.message_primary)
        conn.rollback()
    conn.execute("SELECT set_config('statement_timeout', %s, false)", ("5s",))  # a function takes values
    print("statement_timeout is now", conn.execute("SHOW statement_timeout").fetchone()[0])

# %% [markdown]
# ### Names in queries: `psycopg.sql`
#
# When the **table or column name** is what varies (a generic helper, an admin tool), compose the
# query with `psycopg.sql`: `sql.Identifier` quotes a name as PostgreSQL requires (double quotes,
# embedded quotes doubled), `sql.Literal` a constant, `sql.Placeholder()` a `%s`, and `sql.SQL`
# holds the fixed text with `{}` slots.

# %%
from psycopg import sql


def count_rows(conn, table, column=None, value=None):
    """Rows of `table`, optionally only those where `column` = `value`."""
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
    params = None
    if column is not None:
        query += sql.SQL(" WHERE {} = {}").format(sql.Identifier(column), sql.Placeholder())
        params = (value,)
    return conn.execute(query, params).fetchone()[0]


with psycopg.connect(conninfo) as conn:
    print("orders:", count_rows(conn, "orders"), "| shipped:", count_rows(conn, "orders", "status", "shipped"))
    query = sql.SQL("SELECT {} FROM {}").format(sql.Identifier("name"), sql.Identifier('odd "table"; DROP TABLE users'))
    print(query.as_string(conn))  # the whole hostile string is one (non-existent) table name

# %% [markdown]
# ### Rows as tuples, dicts, named tuples or your own classes
#
# By default a row is a tuple. A **row factory** changes that: `dict_row` (keys are the column
# names), `namedtuple_row`, or `class_row(SomeClass)` to build your own objects (a dataclass, a
# pydantic model). Set it for one cursor (`conn.cursor(row_factory=...)`) or for every cursor of
# a connection (`psycopg.connect(..., row_factory=...)`).

# %%
from dataclasses import dataclass
from decimal import Decimal

from psycopg.rows import class_row, dict_row, namedtuple_row


@dataclass
class Product:
    product_id: int
    name: str
    price: Decimal


query = "SELECT product_id, name, price FROM products ORDER BY product_id LIMIT 2"
with psycopg.connect(conninfo) as conn:
    print("tuple      :", conn.execute(query).fetchone())
    with conn.cursor(row_factory=dict_row) as cur:
        print("dict_row   :", cur.execute(query).fetchone())
    with conn.cursor(row_factory=namedtuple_row) as cur:
        print("namedtuple :", cur.execute(query).fetchone())
    with conn.cursor(row_factory=class_row(Product)) as cur:
        print("class_row  :", cur.execute(query).fetchone())

with psycopg.connect(conninfo, row_factory=dict_row) as conn:  # every cursor of this connection
    print("connection-wide dict rows:", conn.execute(query).fetchall())

# %% [markdown]
# For tables in this notebook we will also use a tiny helper that turns a query's result into a
# pandas DataFrame (for display only):

# %%
import pandas as pd

pd.set_option("display.max_colwidth", 60)

def frame(conn, query, params=None):
    """Run `query` and return its rows as a DataFrame."""
    cur = conn.execute(query, params)
    return pd.DataFrame(cur.fetchall(), columns=[column.name for column in cur.description])


# %% [markdown]
# ### Coming from psycopg2
#
# Most tutorials and Stack Overflow answers still use **psycopg2**. Nearly everything maps one to
# one; the differences that bite are marked **(!)**.
#
# | Task | psycopg2 (older code) | psycopg 3 (this course) |
# |---|---|---|
# | install | `pip install psycopg2-binary` | `pip install "psycopg[binary,pool]"` |
# | connect | `psycopg2.connect(dsn)` or `connect(host=..., ...)` | `psycopg.connect(conninfo)`, same arguments |
# | `with conn:` | ends the transaction, leaves the connection **open** | commits or rolls back **and closes** **(!)** |
# | run a query | `cur = conn.cursor(); cur.execute(q, p)` | the same, or the shortcut `conn.execute(q, p)` |
# | dict rows | `conn.cursor(cursor_factory=RealDictCursor)` (`psycopg2.extras`) | `conn.cursor(row_factory=dict_row)` (`psycopg.rows`) |
# | named tuples | `NamedTupleCursor` | `row_factory=namedtuple_row` |
# | parameters | merged into the text on the client | sent separately (server-side binding): no parameters in `SET`/DDL **(!)** |
# | many rows | `extras.execute_values`, `execute_batch` | `cur.executemany(...)` (pipelined, fast), or `COPY` |
# | COPY | `cur.copy_expert(sql, file)`, `copy_from`, `copy_to` | `with cur.copy(sql) as copy:` then `write_row`, `rows()`, `read()` |
# | JSON parameter | `extras.Json(obj)` | `psycopg.types.json.Jsonb(obj)`; a bare dict is refused **(!)** |
# | transactions | `conn.commit()`, `conn.rollback()`, `conn.autocommit` | the same, plus `with conn.transaction():` blocks (savepoints when nested) |
# | isolation level | `conn.set_isolation_level(ISOLATION_LEVEL_SERIALIZABLE)` | `conn.isolation_level = IsolationLevel.SERIALIZABLE` |
# | errors | `psycopg2.errors.SerializationFailure`, `e.pgcode` | `psycopg.errors.SerializationFailure`, `e.sqlstate`, `e.diag` |
# | connection pool | `psycopg2.pool.SimpleConnectionPool`: `getconn()` / `putconn()` | `psycopg_pool.ConnectionPool`: `with pool.connection() as conn:` |
# | async | none (third-party `aiopg`) | `psycopg.AsyncConnection`, `psycopg_pool.AsyncConnectionPool` |
# | names in SQL | `psycopg2.sql` | `psycopg.sql` (same API) |
#
# Async, for completeness: the same API with `await`. Jupyter runs `await` at the top level of a
# cell; two queries run concurrently on two connections:

# %%
import asyncio


async def count_orders(status):
    async with await psycopg.AsyncConnection.connect(conninfo) as aconn:
        cur = await aconn.execute("SELECT count(*) FROM orders WHERE status = %s", (status,))
        return (await cur.fetchone())[0]


print(await asyncio.gather(count_orders("paid"), count_orders("shipped")))

# %% [markdown]
# ### Exercise 02.1 · Products as dicts, with parameters (warm-up)
#
# Write `find_products(conn, category, max_price)` that returns a **list of dicts**, one per
# product of the category named `category` (exact category name, e.g. `"Laptops"`) whose price is
# at most `max_price` and that is **not discontinued**. Each dict has the keys `product_id`,
# `name`, `price`. Order by price, then `product_id`.
#
# The check calls your function with its own connection (which returns tuples: choose dict rows
# for your cursor) and with awkward category names, quotes included. Use placeholders.

# %% nbgrader={"grade": false, "grade_id": "ex02-1-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def find_products(conn, category, max_price):
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT p.product_id, p.name, p.price
            FROM products p JOIN categories c ON c.category_id = p.category_id
            WHERE c.name = %s AND p.price <= %s AND NOT p.is_discontinued
            ORDER BY p.price, p.product_id
            """,
            (category, max_price),
        )
        return cur.fetchall()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-1-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.find_products(find_products, course)
### BEGIN HIDDEN TESTS
check.find_products(find_products, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Writing: identity columns, `RETURNING`, pools and a DatabaseManager
#
# ### Ids the database generates
#
# The shop was bulk-loaded with its ids, so its keys have no default. New rows need the database
# to generate ids. The modern, SQL-standard way is an **identity column** (`GENERATED ... AS
# IDENTITY`; the older `serial` pseudo-type does the same with more quirks). `BY DEFAULT` still
# lets a loader write explicit ids; `setval` moves the sequence past the existing ones. The cell
# is safe to run twice: it skips columns that already are identity columns.

# %%
with psycopg.connect(conninfo) as conn:
    for table, column in [("orders", "order_id"), ("order_items", "order_item_id"), ("reviews", "review_id")]:
        is_identity = conn.execute(
            "SELECT is_identity FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
            (table, column),
        ).fetchone()[0]
        if is_identity == "NO":
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} ADD GENERATED BY DEFAULT AS IDENTITY").format(
                sql.Identifier(table), sql.Identifier(column)))
            conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s), (SELECT max({}) FROM {}))").format(
                sql.Identifier(column), sql.Identifier(table)), (table, column))
        print(f"{table}.{column}: next id", conn.execute(
            "SELECT last_value + 1 FROM pg_sequences WHERE sequencename = %s", (f"{table}_{column}_seq",)).fetchone()[0])

# %% [markdown]
# ### `RETURNING`: get back what the database computed
#
# `INSERT`, `UPDATE` and `DELETE` can end with `RETURNING <columns>`: the statement then returns
# the rows it wrote, as a `SELECT` would, including generated ids and defaults. One round trip
# instead of an insert followed by a query (and no race with other writers in between).
# `executemany(..., returning=True)` does it for a batch: each statement's result is a result set
# of the cursor, stepped through with `nextset()`.

# %%
with psycopg.connect(conninfo, row_factory=dict_row) as conn:
    user_id = 1
    product_ids = [r["product_id"] for r in conn.execute(
        "SELECT product_id FROM products WHERE product_id NOT IN (SELECT product_id FROM reviews WHERE user_id = %s) "
        "ORDER BY product_id LIMIT 3", (user_id,))]

    new = conn.execute(
        """INSERT INTO reviews (product_id, user_id, rating, title, body, created_at)
           VALUES (%s, %s, %s, %s, %s, now())
           RETURNING review_id, product_id, rating""",
        (product_ids[0], user_id, 5, "Great", "Does what it says."),
    ).fetchone()
    print("inserted:", new)

    print("updated: ", conn.execute(
        "UPDATE reviews SET rating = rating - 1 WHERE review_id = %s RETURNING review_id, rating",
        (new["review_id"],)).fetchone())

    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reviews (product_id, user_id, rating, title, created_at) VALUES (%s, %s, %s, %s, now()) "
            "RETURNING review_id",
            [(pid, user_id, 4, "Fine") for pid in product_ids[1:]],
            returning=True,
        )
        batch = []
        while True:
            batch.append(cur.fetchone()["review_id"])
            if not cur.nextset():
                break
    print("batch ids:", batch)

    deleted = conn.execute("DELETE FROM reviews WHERE review_id = ANY(%s) RETURNING review_id",
                           ([new["review_id"], *batch],)).fetchall()
    print("deleted:", [r["review_id"] for r in deleted])

# %% [markdown]
# ### A connection pool
#
# Opening a connection costs a TCP handshake, authentication and a new server process: several
# milliseconds, far more than a simple query. An application that serves many short requests
# keeps a few connections open in a **pool** and lends them out.
#
# `psycopg_pool.ConnectionPool(conninfo, min_size=, max_size=)` keeps between `min_size` and
# `max_size` connections. `with pool.connection() as conn:` borrows one; at the end of the block
# the transaction is **committed** (or **rolled back** on an exception) and the connection goes
# back to the pool, not closed. Create the pool with `open=False` and call `pool.open(wait=True)`,
# which fails fast if the database is unreachable; `pool.close()` (or a `with ConnectionPool(...)`
# block) closes every connection.

# %%
import time

from psycopg_pool import ConnectionPool

pool = ConnectionPool(conninfo, min_size=2, max_size=5, open=False, name="ch02", kwargs={"row_factory": dict_row})
pool.open(wait=True, timeout=10)

with pool.connection() as conn:
    print(conn.execute("SELECT count(*) AS orders FROM orders").fetchone())

# %% [markdown]
# How much does the pool save? Thirty short queries, first with a new connection each time, then
# with a borrowed one (timings vary from run to run, so the next cell's numbers are not checked;
# the cell after it states the stable conclusion).

# %% tags=["nbval-ignore-output"]
N = 30
start = time.perf_counter()
for _ in range(N):
    with psycopg.connect(conninfo) as conn:
        conn.execute("SELECT 1")
per_connect = (time.perf_counter() - start) / N

start = time.perf_counter()
for _ in range(N):
    with pool.connection() as conn:
        conn.execute("SELECT 1")
per_pooled = (time.perf_counter() - start) / N
print(f"new connection per query: {per_connect * 1000:.2f} ms   pooled: {per_pooled * 1000:.2f} ms")

# %%
print("borrowing from the pool is at least 3 times faster than connecting:", per_connect > 3 * per_pooled)
pool.close()

# %% [markdown]
# ### A DatabaseManager
#
# Older tutorials wrap psycopg2 in a `DatabaseManager` whose `__enter__` opens a connection and
# whose `__exit__` commits or rolls back and closes it. The idea is good (no forgotten commit, no
# leaked connection); opening a new connection for every unit of work is not. Here is the same
# pattern on top of a pool: the manager owns the pool for the application's lifetime, and
# `unit_of_work()` lends one connection for one transaction.
#
# ```mermaid
# sequenceDiagram
#     participant App
#     participant DB as DatabaseManager
#     participant Pool
#     participant PG as PostgreSQL
#     App->>DB: with DatabaseManager(conninfo) as db
#     DB->>Pool: open(): min_size connections
#     App->>DB: with db.unit_of_work() as conn
#     DB->>Pool: borrow a connection
#     App->>PG: conn.execute(...) (BEGIN sent by psycopg)
#     alt the block succeeds
#         DB->>PG: COMMIT
#     else an exception escapes
#         DB->>PG: ROLLBACK, then re-raise
#     end
#     DB->>Pool: give the connection back
#     App->>DB: leave the outer with
#     DB->>Pool: close(): every connection closed
# ```

# %%
from contextlib import contextmanager


class DatabaseManager:
    """Owns a connection pool; lends one connection per unit of work (one transaction)."""

    def __init__(self, conninfo, *, min_size=1, max_size=5):
        self.pool = ConnectionPool(conninfo, min_size=min_size, max_size=max_size, open=False,
                                   kwargs={"row_factory": dict_row})

    def __enter__(self):
        self.pool.open(wait=True, timeout=10)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.pool.close()

    @contextmanager
    def unit_of_work(self):
        with self.pool.connection() as conn:
            try:
                yield conn
            except BaseException:
                conn.rollback()  # the pool would do it too; explicit is clearer
                raise
            else:
                conn.commit()

    def fetch_all(self, query, params=None):
        with self.unit_of_work() as conn:
            return conn.execute(query, params).fetchall()


with DatabaseManager(conninfo) as db:
    rows = db.fetch_all(
        """SELECT o.order_id, o.ordered_at::date AS day, p.name AS product, oi.quantity
           FROM orders o
           JOIN order_items oi ON oi.order_id = o.order_id
           JOIN products p ON p.product_id = oi.product_id
           WHERE o.user_id = %s
           ORDER BY o.ordered_at, p.name""",
        (42,),
    )
    for row in rows[:3]:
        print(row)

    try:
        with db.unit_of_work() as conn:
            conn.execute("UPDATE products SET price = price * 2")  # every price doubled...
            raise RuntimeError("payment service down")  # ...then something fails
    except RuntimeError as exc:
        print("unit of work failed:", exc)
    print("prices unchanged:", db.fetch_all("SELECT price FROM products WHERE product_id = 1"))

# %% [markdown]
# ### Exercise 02.2 · Place an order through a pool, with `RETURNING` (practice)
#
# Write `place_order(pool, user_id, items)`, where `pool` is a `psycopg_pool.ConnectionPool` (its
# connections return tuples) and `items` a list of `(product_id, quantity)` pairs. Borrow **one**
# connection from the pool for **one transaction**, exactly as `DatabaseManager.unit_of_work()`
# does above, and in it:
#
# 1. insert the order: `user_id`, `ordered_at` = `now()`, `status` = `'pending'`,
#    `shipping_country` = the user's country **in upper case** (one `INSERT ... SELECT ... FROM
#    users` does it) and get its new `order_id` with `RETURNING`;
# 2. insert one `order_items` row per item, with `unit_price` = the product's **current** price;
# 3. return the new `order_id` (an int), committed.
#
# If the user or a product does not exist, raise `ValueError` and leave **nothing** behind (careful:
# an `INSERT ... SELECT` whose `SELECT` finds nothing inserts nothing, silently). Database errors
# (a quantity of 0 breaks a `CHECK`) must also leave nothing behind. `with pool.connection() as
# conn:` gives you all of that: the block commits when it ends, rolls back when an exception
# escapes, and gives the connection back to the pool either way.
#
# The check builds a pool of only **2** connections, places orders, reads them back from another
# connection, tries orders that must be refused, makes sure both connections came back to the
# pool, and deletes its orders again. To try your function yourself:
# `with ConnectionPool(conninfo, min_size=1, max_size=2) as pool: print(place_order(pool, 42, [(1, 2)]))`.

# %% nbgrader={"grade": false, "grade_id": "ex02-2-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def place_order(pool, user_id, items):
    with pool.connection() as conn:  # one unit of work: COMMIT at the end, ROLLBACK on an exception
        row = conn.execute(
            """INSERT INTO orders (user_id, ordered_at, status, shipping_country)
               SELECT user_id, now(), 'pending', upper(country) FROM users WHERE user_id = %s
               RETURNING order_id""",
            (user_id,),
        ).fetchone()
        if row is None:
            raise ValueError(f"no user {user_id}")
        order_id = row[0]
        for product_id, quantity in items:
            added = conn.execute(
                """INSERT INTO order_items (order_id, product_id, quantity, unit_price)
                   SELECT %s, product_id, %s, price FROM products WHERE product_id = %s
                   RETURNING order_item_id""",
                (order_id, quantity, product_id),
            ).fetchone()
            if added is None:
                raise ValueError(f"no product {product_id}")  # leaving the block rolls everything back
    return order_id
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-2-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.place_order(place_order, course)
### BEGIN HIDDEN TESTS
check.place_order(place_order, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Transactions and ACID
#
# A **transaction** groups statements into one unit with four guarantees, **ACID**, and
# PostgreSQL has a mechanism behind each:
#
# | Guarantee | Meaning | How PostgreSQL does it |
# |---|---|---|
# | **Atomicity** | all of the transaction's changes happen, or none | a transaction's row versions become visible together at COMMIT; ROLLBACK just never makes them visible |
# | **Consistency** | declared rules hold before and after | constraints (`CHECK`, `UNIQUE`, foreign keys) checked on every change |
# | **Isolation** | concurrent transactions do not see each other's half-done work | MVCC snapshots (readers never block writers) and row locks; the isolation level decides how strict |
# | **Durability** | once COMMIT returns, the change survives a crash | the write-ahead log (WAL) is flushed to disk before COMMIT returns |
#
# psycopg 3's model, step by step: a connection is **not** in autocommit mode; the first
# statement sends `BEGIN` for you, and everything until `commit()` or `rollback()` is one
# transaction. After an error, the transaction is **aborted**: every further statement fails until
# you roll back.

# %%
with psycopg.connect(conninfo) as conn:
    print("1. new connection:        ", conn.info.transaction_status.name)
    conn.execute("SELECT 1")
    print("2. after a SELECT:        ", conn.info.transaction_status.name, "(BEGIN was sent for you)")
    conn.commit()
    print("3. after commit():        ", conn.info.transaction_status.name)
    try:
        conn.execute("SELECT 1 / 0")
    except psycopg.errors.DivisionByZero:
        print("4. after an error:        ", conn.info.transaction_status.name)
    try:
        conn.execute("SELECT 1")
    except psycopg.errors.InFailedSqlTransaction as exc:
        print("5. next statement fails:  ", exc.diag.message_primary)
    conn.rollback()
    print("6. after rollback():      ", conn.info.transaction_status.name)

# %% [markdown]
# A transaction left open ("idle in transaction") holds locks and keeps old row versions alive,
# so end every transaction promptly. Two tools make that easy:
#
# * **`with conn.transaction():`** starts a transaction (`BEGIN`) and ends it with `COMMIT`, or
#   `ROLLBACK` if an exception escapes. Nested blocks become **savepoints**: an inner failure
#   undoes only the inner block. Raising `psycopg.Rollback` inside a block rolls it back quietly.
# * **`autocommit=True`**: every statement commits by itself (needed for commands that refuse to
#   run in a transaction, such as `CREATE DATABASE` or `VACUUM`); `conn.transaction()` then opens
#   a real transaction only where you ask for one.

# %%
with psycopg.connect(conninfo) as conn:
    conn.execute("DROP TABLE IF EXISTS ledger")
    conn.execute("CREATE TABLE ledger (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL UNIQUE)")
    conn.commit()

    with conn.transaction():  # BEGIN
        conn.execute("INSERT INTO ledger (note) VALUES ('kept')")
        try:
            with conn.transaction():  # SAVEPOINT
                conn.execute("INSERT INTO ledger (note) VALUES ('kept')")  # duplicate: fails
        except psycopg.errors.UniqueViolation:
            print("the inner block was rolled back to its savepoint; the outer transaction goes on")
        with conn.transaction():
            conn.execute("INSERT INTO ledger (note) VALUES ('undone on purpose')")
            raise psycopg.Rollback  # roll this block back without an error
        conn.execute("INSERT INTO ledger (note) VALUES ('also kept')")
    # COMMIT happened here
    print([note for (note,) in conn.execute("SELECT note FROM ledger ORDER BY id")])

with psycopg.connect(conninfo, autocommit=True) as conn:
    conn.execute("INSERT INTO ledger (note) VALUES ('autocommitted')")
    print("autocommit, after a statement:", conn.info.transaction_status.name)
    with conn.transaction():
        conn.execute("INSERT INTO ledger (note) VALUES ('in an explicit transaction')")
        print("inside conn.transaction():   ", conn.info.transaction_status.name)

# %% [markdown]
# ## 4. Isolation levels, with two live connections
#
# Isolation is about what one transaction sees of the others running **at the same time**. The
# SQL standard names four levels by the anomalies they allow. PostgreSQL implements three (asking
# for READ UNCOMMITTED gives READ COMMITTED):
#
# | Level | Dirty read | Non-repeatable read | Lost update (read, then write) | Write skew |
# |---|---|---|---|---|
# | READ COMMITTED (**default**) | never | possible | **possible** | possible |
# | REPEATABLE READ (a snapshot) | never | never | prevented: the second writer gets a **serialization failure** | possible |
# | SERIALIZABLE (SSI) | never | never | prevented | prevented: one transaction gets a **serialization failure** |
#
# * **READ COMMITTED**: every *statement* sees the data committed when it started.
# * **REPEATABLE READ**: the whole *transaction* sees one snapshot, taken at its first statement.
#   If it tries to change a row that someone else changed after that snapshot, it fails with
#   `SerializationFailure` (SQLSTATE `40001`) rather than overwrite a change it never saw.
# * **SERIALIZABLE**: as REPEATABLE READ, and PostgreSQL also tracks what each transaction *read*;
#   if the outcome could not have happened with the transactions run one after the other, one of
#   them fails with `SerializationFailure`.
#
# A serialization failure is not a bug: it is the database asking you to **run the transaction
# again**. Code that uses these levels needs a retry loop.
#
# To see all this we open three connections: two clerks of the shop, Alice and Bob, who sell the
# same product at the same time, and an autocommit `admin` connection that sets things up and
# looks from outside. One Python thread can drive both clerks step by step, which makes every
# interleaving exact and repeatable.

# %%
from psycopg import IsolationLevel

PRODUCT = 1
alice = psycopg.connect(conninfo)
bob = psycopg.connect(conninfo)
admin = psycopg.connect(conninfo, autocommit=True)
saved_stock = admin.execute("SELECT stock FROM products WHERE product_id = %s", (PRODUCT,)).fetchone()[0]


def stock(conn):
    return conn.execute("SELECT stock FROM products WHERE product_id = %s", (PRODUCT,)).fetchone()[0]


def set_stock(value):
    admin.execute("UPDATE products SET stock = %s WHERE product_id = %s", (value, PRODUCT))


# A non-repeatable read: Alice reads twice in one transaction while Bob commits a change in between.
for level in (IsolationLevel.READ_COMMITTED, IsolationLevel.REPEATABLE_READ):
    set_stock(10)
    alice.isolation_level = level  # applies to the next transaction
    first = stock(alice)
    with bob.transaction():
        bob.execute("UPDATE products SET stock = stock + 5 WHERE product_id = %s", (PRODUCT,))
    second = stock(alice)
    alice.commit()
    print(f"{level.name:<16} Alice reads {first}; Bob commits +5; Alice reads again: {second}")

# %% [markdown]
# ### A lost update
#
# The classic bug: read a value, compute the new value **in Python**, write it back. Under READ
# COMMITTED nothing stops two transactions from doing that with the same starting value:
#
# ```mermaid
# sequenceDiagram
#     participant A as Alice
#     participant PG as products.stock
#     participant B as Bob
#     A->>PG: SELECT stock → 10
#     B->>PG: SELECT stock → 10
#     A->>PG: UPDATE stock = 7 (sold 3), COMMIT
#     B->>PG: UPDATE stock = 8 (sold 2), COMMIT
#     Note over PG: 8 in stock, but 5 units were sold: Alice's sale is lost
# ```

# %%
set_stock(10)
alice.isolation_level = bob.isolation_level = IsolationLevel.READ_COMMITTED

seen_by_alice = stock(alice)
seen_by_bob = stock(bob)
alice.execute("UPDATE products SET stock = %s WHERE product_id = %s", (seen_by_alice - 3, PRODUCT))
alice.commit()
bob.execute("UPDATE products SET stock = %s WHERE product_id = %s", (seen_by_bob - 2, PRODUCT))
bob.commit()
print(f"10 in stock, 3 + 2 sold: expected 5, the table says {stock(admin)}")

# %% [markdown]
# ### Preventing it
#
# **1. Let the database do the arithmetic.** `UPDATE ... SET stock = stock - 3` reads and writes
# the row in one statement, under the row's lock. A second `UPDATE` of the same row waits for the
# first transaction to end, then re-reads the newly committed row. Add the business rule to the
# `WHERE` clause and use `RETURNING` to learn the outcome:

# %%
set_stock(10)
sell_sql = "UPDATE products SET stock = stock - %s WHERE product_id = %s AND stock >= %s RETURNING stock"
with alice.transaction():
    print("Alice sells 3, stock now:", alice.execute(sell_sql, (3, PRODUCT, 3)).fetchone())
with bob.transaction():
    print("Bob sells 2, stock now:  ", bob.execute(sell_sql, (2, PRODUCT, 2)).fetchone())
with bob.transaction():
    print("Bob tries 9:             ", bob.execute(sell_sql, (9, PRODUCT, 9)).fetchone(), "(no row: refused)")

# %% [markdown]
# **2. Lock the row before reading it: `SELECT ... FOR UPDATE`.** When the new value needs logic
# that SQL cannot express easily, read with `FOR UPDATE`: the row is locked until your
# transaction ends, and anyone else's `FOR UPDATE` (or `UPDATE`) on it **waits**. To *see* Bob
# wait, his sale runs in a second thread while the main thread watches the server's
# `pg_stat_activity` view, where a blocked session shows `wait_event_type = 'Lock'`.

# %%
import threading


def sell_with_lock(conn, quantity):
    with conn.transaction():
        current = conn.execute("SELECT stock FROM products WHERE product_id = %s FOR UPDATE", (PRODUCT,)).fetchone()[0]
        if current < quantity:
            raise ValueError(f"only {current} left")
        conn.execute("UPDATE products SET stock = %s WHERE product_id = %s", (current - quantity, PRODUCT))
        return current


def waits_on_a_lock(pid, timeout=5.0):
    """Poll the server until session `pid` is blocked on a lock (True), or give up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row and row[0] == "Lock":
            return True
        time.sleep(0.02)
    return False


set_stock(10)
log = []
bob_sale = threading.Thread(target=lambda: log.append(f"Bob reads {sell_with_lock(bob, 2)} and sells 2"))
with alice.transaction():
    current = alice.execute("SELECT stock FROM products WHERE product_id = %s FOR UPDATE", (PRODUCT,)).fetchone()[0]
    log.append(f"Alice locks the row and reads {current}")
    bob_sale.start()
    log.append(f"Bob is waiting for Alice's lock: {waits_on_a_lock(bob.info.backend_pid)}")
    alice.execute("UPDATE products SET stock = %s WHERE product_id = %s", (current - 3, PRODUCT))
    log.append("Alice sells 3 and commits")
bob_sale.join()
print("\n".join(log))
print("stock:", stock(admin), "(10 - 3 - 2)")

# %% [markdown]
# ### REPEATABLE READ: a serialization failure instead of a lost update
#
# Run the lost-update interleaving again at REPEATABLE READ. Alice commits first; when Bob then
# updates the row that changed after his snapshot, PostgreSQL refuses:

# %%
set_stock(10)
alice.isolation_level = bob.isolation_level = IsolationLevel.REPEATABLE_READ

seen_by_alice = stock(alice)
seen_by_bob = stock(bob)
alice.execute("UPDATE products SET stock = %s WHERE product_id = %s", (seen_by_alice - 3, PRODUCT))
alice.commit()
try:
    bob.execute("UPDATE products SET stock = %s WHERE product_id = %s", (seen_by_bob - 2, PRODUCT))
    bob.commit()
except psycopg.errors.SerializationFailure as exc:
    print(f"Bob: {type(exc).__name__} (SQLSTATE {exc.sqlstate}): {exc.diag.message_primary}")
    bob.rollback()
print("stock:", stock(admin), "(Alice's sale is kept; Bob's must be tried again)")

# %% [markdown]
# The fix is to **retry the whole transaction**: a new transaction takes a new snapshot, reads the
# new stock and succeeds. Here Alice's sale sneaks in during Bob's first attempt only:

# %%
set_stock(10)
for attempt in range(1, 6):
    try:
        with bob.transaction():
            seen = stock(bob)
            if attempt == 1:  # Alice sells 3 while Bob is still deciding (first attempt only)
                with alice.transaction():
                    alice.execute("UPDATE products SET stock = stock - 3 WHERE product_id = %s", (PRODUCT,))
            bob.execute("UPDATE products SET stock = %s WHERE product_id = %s", (seen - 2, PRODUCT))
        break  # committed
    except psycopg.errors.SerializationFailure:
        print(f"attempt {attempt}: serialization failure, trying again")
print(f"Bob's sale went through on attempt {attempt}; stock: {stock(admin)} (10 - 3 - 2)")

# %% [markdown]
# ### SERIALIZABLE: write skew
#
# REPEATABLE READ protects a row from being overwritten, but not a **rule that spans rows**. A
# hospital requires at least one doctor on call. Alice and Bob are both on call, both feel ill, and
# each checks "is someone else on call?" before signing off. Each changes a *different* row, so no
# row conflict exists, yet together they break the rule. Only SERIALIZABLE catches it:

# %%
def on_call_story(level):
    admin.execute("DROP TABLE IF EXISTS on_call")
    admin.execute("CREATE TABLE on_call (doctor text PRIMARY KEY, on_call boolean NOT NULL)")
    admin.execute("INSERT INTO on_call VALUES ('alice', true), ('bob', true)")
    alice.isolation_level = bob.isolation_level = level
    check_sql = "SELECT count(*) FROM on_call WHERE on_call AND doctor <> %s"
    others_for_alice = alice.execute(check_sql, ("alice",)).fetchone()[0]  # 1: Bob is on call
    others_for_bob = bob.execute(check_sql, ("bob",)).fetchone()[0]  # 1: Alice is on call
    if others_for_alice:
        alice.execute("UPDATE on_call SET on_call = false WHERE doctor = 'alice'")
    if others_for_bob:
        bob.execute("UPDATE on_call SET on_call = false WHERE doctor = 'bob'")
    outcome = {}
    for name, conn in (("Alice", alice), ("Bob", bob)):
        try:
            conn.commit()
            outcome[name] = "committed"
        except psycopg.errors.SerializationFailure as exc:
            conn.rollback()
            outcome[name] = f"SerializationFailure ({exc.sqlstate})"
    still = [d for (d,) in admin.execute("SELECT doctor FROM on_call WHERE on_call ORDER BY doctor")]
    print(f"{level.name:<16} {outcome}  still on call: {still}")


on_call_story(IsolationLevel.REPEATABLE_READ)
on_call_story(IsolationLevel.SERIALIZABLE)

# %% [markdown]
# Which to use? READ COMMITTED with atomic updates or `FOR UPDATE` where needed covers most
# applications. SERIALIZABLE is the simplest to reason about (every transaction behaves as if it
# ran alone) at the price of retries: wrap each transaction in a retry loop and keep transactions
# short. We are done with the three connections:

# %%
set_stock(saved_stock)
admin.execute("DROP TABLE IF EXISTS on_call")
for c in (alice, bob, admin):
    c.close()

# %% [markdown]
# ### Exercise 02.3 · Find and fix: the lost sale (find and fix)
#
# The shop's checkout uses this function, and the stock figures drift: sometimes more units have
# been sold than the stock went down by.
#
# ```python
# def sell(conn, product_id, quantity):
#     with conn.transaction():
#         stock = conn.execute("SELECT stock FROM products WHERE product_id = %s",
#                              (product_id,)).fetchone()[0]
#         if stock < quantity:
#             raise ValueError(f"only {stock} left")
#         new_stock = stock - quantity
#         conn.execute("UPDATE products SET stock = %s WHERE product_id = %s",
#                      (new_stock, product_id))
#     return new_stock
# ```
#
# Write a fixed `sell(conn, product_id, quantity)` that keeps the same contract: one transaction,
# committed before returning; returns the new stock; raises `ValueError` and changes nothing when
# the stock is too low. It must stay correct when **several connections sell the same product at
# the same moment**: the check runs your function from several threads, each with its own
# connection, and makes them collide.

# %% nbgrader={"grade": false, "grade_id": "ex02-3-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def sell(conn, product_id, quantity):
    with conn.transaction():
        row = conn.execute(
            "UPDATE products SET stock = stock - %s WHERE product_id = %s AND stock >= %s RETURNING stock",
            (quantity, product_id, quantity),
        ).fetchone()
    if row is None:
        raise ValueError(f"not enough stock of product {product_id} for {quantity}")
    return row[0]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-3-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.sell(sell, course)
### BEGIN HIDDEN TESTS
check.sell(sell, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 02.4 · Retry a serialization failure (challenge)
#
# Write `run_with_retries(conn, work, attempts=5)` that runs `work(conn)` (a function that does one
# transaction's statements) inside a **SERIALIZABLE** transaction and returns what it returns.
#
# * Each attempt is a fresh transaction that is committed when `work` returns, rolled back when
#   it raises.
# * On `psycopg.errors.SerializationFailure`, try again, at most `attempts` tries in total; after
#   the last one, let the error propagate.
# * Any other exception propagates at once, without a retry.
# * Leave the connection idle (no transaction open) when you return or raise.
#
# Hint: the isolation level can only change between transactions (`conn.isolation_level = ...`).
# The check's `work` reads a counter and increments it while another connection changes the same
# counter during some attempts.

# %% nbgrader={"grade": false, "grade_id": "ex02-4-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def run_with_retries(conn, work, attempts=5):
    conn.isolation_level = IsolationLevel.SERIALIZABLE
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                return work(conn)
        except psycopg.errors.SerializationFailure:
            if attempt == attempts:
                raise
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-4-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.run_with_retries(run_with_retries, course)
### BEGIN HIDDEN TESTS
check.run_with_retries(run_with_retries, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Full-text search
#
# `LIKE '%cache%'` finds substrings, not words: it misses "caching", matches "cacheless", cannot
# rank, and scans every row. PostgreSQL's full-text search works on **lexemes**:
#
# * `to_tsvector('english', text)` turns a document into a **tsvector**: words normalized by a
#   dictionary (lower case, stemmed: *caching* → `cach`), stop words (*the*, *of*) dropped, with
#   their positions.
# * A **tsquery** is lexemes joined by `&` (and), `|` (or), `!` (not), `<->` (followed by). Build it
#   from user input with `plainto_tsquery` (all words must appear) or better
#   `websearch_to_tsquery`, which understands search-engine syntax (`"exact phrase"`, `-word`,
#   `or`) and never raises a syntax error. (`to_tsquery` expects the operator syntax itself.)
# * `vector @@ query` is true when the document matches; `ts_rank(vector, query)` scores how well
#   (frequency, and **weights** `A` to `D` given with `setweight`, e.g. title above body).

# %%
with psycopg.connect(conninfo) as conn:
    print(conn.execute("SELECT to_tsvector('english', %s)::text",
                       ("The indexes of the indexed rows: indexing rows.",)).fetchone()[0])
    for text in ["caching redis", '"read replicas" -basics', "mongodb or redis"]:
        plain, web = conn.execute("SELECT plainto_tsquery('english', %s)::text, websearch_to_tsquery('english', %s)::text",
                                  (text, text)).fetchone()
        print(f"{text!r:28} plainto: {plain:40} websearch: {web}")

# %% [markdown]
# Recomputing `to_tsvector` for every row of every search is wasteful. Store it in a **generated
# column** (computed by PostgreSQL on every insert and update) and index it with **GIN**, an
# inverted index that maps each lexeme to the rows containing it. A generated column needs an
# immutable expression: that is why the configuration `'english'` is given explicitly (the
# one-argument `to_tsvector(text)` depends on a setting and is not allowed there). And `||` with a
# NULL gives NULL: a post without a body would lose its title's lexemes too, so a column that may
# be NULL is wrapped in `coalesce(..., '')` (the shop's `body` is `NOT NULL`, but the habit costs
# nothing).

# %%
with psycopg.connect(conninfo) as conn:
    conn.execute("""
        ALTER TABLE posts ADD COLUMN IF NOT EXISTS search tsvector
        GENERATED ALWAYS AS (
            setweight(to_tsvector('english', title), 'A') ||
            setweight(to_tsvector('english', coalesce(body, '')), 'B')
        ) STORED""")
    conn.execute("CREATE INDEX IF NOT EXISTS posts_search_idx ON posts USING gin (search)")
    conn.execute("ANALYZE posts")
    results = frame(conn, """
        SELECT post_id, title, round(ts_rank(search, query)::numeric, 4) AS rank,
               ts_headline('english', body, query, 'StartSel=*, StopSel=*, MaxWords=8, MinWords=4') AS snippet
        FROM posts, websearch_to_tsquery('english', %s) AS query
        WHERE published_at IS NOT NULL AND search @@ query
        ORDER BY rank DESC, post_id
        LIMIT 5""", ("index data",))
results

# %% [markdown]
# `plainto_tsquery` searches and ranks the same way; it only reads the text differently. For plain
# words the two build the same query, so they find and rank the same posts. But `plainto_tsquery`
# treats every word as required, so `or` (a stop word to it) cannot widen the search, while
# `websearch_to_tsquery` reads `or` as an operator:

# %%
ranked_sql = sql.SQL("""
    SELECT post_id, round(ts_rank(search, query)::numeric, 4) AS rank
    FROM posts, {}('english', %s) AS query
    WHERE published_at IS NOT NULL AND search @@ query
    ORDER BY rank DESC, post_id""")
with psycopg.connect(conninfo) as conn:
    for text in ("redis caching", "replicas or sharding"):
        for function in ("plainto_tsquery", "websearch_to_tsquery"):
            rows = conn.execute(ranked_sql.format(sql.Identifier(function)), (text,)).fetchall()
            print(f"{text!r:23} {function:<21} {len(rows):>3} posts; best 3 (post_id, rank): {rows[:3]}")

# %% [markdown]
# Does the search use the index? `EXPLAIN` shows the plan the planner chose (section 11 explains
# plans in detail; `COSTS OFF` hides the estimates so the output is stable). Compare a rare term
# with a common one:

# %%
def plan(conn, query, params=None):
    return "\n".join(row[0] for row in conn.execute("EXPLAIN (COSTS OFF) " + query, params))


search_query = "SELECT post_id FROM posts WHERE search @@ websearch_to_tsquery('english', %s)"
with psycopg.connect(conninfo) as conn:
    posts_total = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    for term in ["vacuum caching", "index"]:
        matches = conn.execute(search_query.replace("post_id", "count(*)"), (term,)).fetchone()[0]
        print(f"--- {term!r}: {matches} of {posts_total} posts match\n{plan(conn, search_query, (term,))}")

# %% [markdown]
# For the common word the planner preferred a **sequential scan**, and it was right: at the small
# scale `posts` has a few hundred rows on a few pages, and about half of them match, so reading the
# table straight through is cheaper than visiting the index and then most of the table anyway. An index pays off when it
# narrows the search to a small fraction of a big table.
#
# To check that an index *can* be used (for example when writing an exercise on small data),
# discourage sequential scans for one transaction with `SET LOCAL enable_seqscan = off` (it adds
# a huge cost to them rather than forbidding them). Never do this in production code: the
# planner's choice was the better one.

# %%
with psycopg.connect(conninfo) as conn:
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")  # LOCAL: until the end of this transaction
        print(plan(conn, search_query, ("index",)))
    print("after the transaction:", conn.execute("SHOW enable_seqscan").fetchone()[0])

# %% [markdown]
# ### Exercise 02.5 · Ranked full-text search (practice)
#
# Set `search_sql` to a query with one named parameter `%(q)s` (the user's search text) that
# returns the **published** posts (`published_at IS NOT NULL`) matching
# `websearch_to_tsquery('english', %(q)s)`, with the columns `post_id`, `title`, `rank`, where
# `rank` is `ts_rank` of the `search` column built above against that query (not rounded).
# Order by `rank`, highest first, then `post_id`; at most 10 rows.
#
# The check runs your query with several search texts, including quotes and texts that match
# nothing.

# %% nbgrader={"grade": false, "grade_id": "ex02-5-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
search_sql = """
SELECT post_id, title, ts_rank(search, query) AS rank
FROM posts, websearch_to_tsquery('english', %(q)s) AS query
WHERE published_at IS NOT NULL AND search @@ query
ORDER BY rank DESC, post_id
LIMIT 10
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-5-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.search(search_sql, course)
### BEGIN HIDDEN TESTS
check.search(search_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. JSONB: documents inside a relational table
#
# `products.attributes` holds what varies by category: a colour for most products, `pages` and
# `format` for books, `ram_gb` and `wireless` for electronics, a list of `sizes` for clothes. It
# is **jsonb**: JSON parsed into a binary form (keys de-duplicated and sorted, so it can be
# compared and indexed; plain `json` keeps the text as typed and can do neither efficiently).
#
# | Operator | Returns | Example |
# |---|---|---|
# | `->` | a JSON value | `attributes -> 'sizes'` → `["M", "S", "XL"]` |
# | `->>` | text | `attributes ->> 'ram_gb'` → `'16'` (cast it: `::int`) |
# | `#>>` | text at a path | `attributes #>> '{sizes,0}'` → `'M'` |
# | `@>` | contains? | `attributes @> '{"wireless": true}'` |
# | `?` | has this key? (or array element) | `attributes ? 'sizes'` |
# | `@?` / `jsonb_path_query` | SQL/JSON path | `attributes @? '$.sizes[*] ? (@ == "XL")'` |
#
# psycopg turns `jsonb` results into Python dicts and lists. In the other direction a dict is
# **not** adapted by itself: wrap it in `Jsonb(...)` to say how you want it sent.

# %%
from psycopg.types.json import Jsonb

with psycopg.connect(conninfo) as conn:
    print(frame(conn, """
        SELECT name, attributes -> 'sizes' AS sizes_json, attributes ->> 'material' AS material,
               attributes #>> '{sizes,0}' AS first_size
        FROM products WHERE attributes ? 'sizes' ORDER BY product_id LIMIT 3"""))

    print("\nwireless with at least 32 GB:", conn.execute("""
        SELECT count(*) FROM products
        WHERE attributes @> '{"wireless": true}' AND (attributes ->> 'ram_gb')::int >= %s""", (32,)).fetchone()[0])
    print("available in XL:", conn.execute(
        """SELECT count(*) FROM products WHERE attributes @? '$.sizes[*] ? (@ == "XL")'""").fetchone()[0])
    print("colours:", conn.execute("""
        SELECT attributes ->> 'color' AS color, count(*) FROM products WHERE attributes ? 'color'
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 4""").fetchall())

    with conn.transaction():  # an update, rolled back at the end of the block
        updated = conn.execute(
            "UPDATE products SET attributes = coalesce(attributes, '{}') || %s WHERE product_id = %s "
            "RETURNING attributes", (Jsonb({"gift_wrap": True}), 1)).fetchone()[0]
        print("\nmerged with ||:", updated)
        raise psycopg.Rollback
    try:
        conn.execute("SELECT %s", ({"gift_wrap": True},))
    except psycopg.ProgrammingError as exc:
        print("a bare dict:", exc)

# %% [markdown]
# **Storing a document.** To insert a Python dict as a JSONB document, wrap it in `Jsonb`; read it
# back and psycopg gives you a dict again. The server keeps its own key order (shorter keys first),
# numbers keep their type, `None` is JSON `null`:

# %%
spec = {"model": "Trail Pack 40", "weight_kg": 1.35, "waterproof": True, "sizes": ["M", "L"], "warranty": None}
with psycopg.connect(conninfo) as conn:
    conn.execute("DROP TABLE IF EXISTS product_specs")
    conn.execute("CREATE TABLE product_specs (sku text PRIMARY KEY, spec jsonb NOT NULL)")
    conn.execute("INSERT INTO product_specs (sku, spec) VALUES (%s, %s)", ("SKU-SPEC-1", Jsonb(spec)))
    stored, as_text, sizes, weight = conn.execute(
        "SELECT spec, spec::text, spec -> 'sizes', (spec ->> 'weight_kg')::numeric FROM product_specs WHERE sku = %s",
        ("SKU-SPEC-1",)).fetchone()
print("stored as:", as_text)
print("read back:", stored)
print("the same dict:", stored == spec, "| spec -> 'sizes':", sizes, "| (spec ->> 'weight_kg')::numeric:", weight)

# %% [markdown]
# **Indexing JSONB.** A GIN index on the column serves `@>` (and `?`, `@?`). The `jsonb_path_ops`
# flavour is smaller and faster for containment but does not support the key-exists operators.
# A filter on one extracted value, `attributes ->> 'color' = 'red'`, needs an ordinary B-tree
# index on that **expression** instead.

# %%
with psycopg.connect(conninfo) as conn:
    conn.execute("CREATE INDEX IF NOT EXISTS products_attributes_idx ON products USING gin (attributes jsonb_path_ops)")
    conn.execute("CREATE INDEX IF NOT EXISTS products_color_idx ON products ((attributes ->> 'color'))")
    conn.execute("ANALYZE products")
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")  # small table: show that the indexes can be used
        print(plan(conn, """SELECT name FROM products WHERE attributes @> '{"wireless": true}'"""))
        print(plan(conn, "SELECT name FROM products WHERE attributes ->> 'color' = %s", ("red",)))

# %% [markdown]
# ### Exercise 02.6 · Filter on JSONB attributes (practice)
#
# Set `wireless_sql` to a query with a named parameter `%(min_ram)s` that returns the products
# whose attributes say `"wireless": true` and whose `ram_gb` is at least `min_ram`, with the
# columns `product_id`, `name`, `ram_gb` (an integer), `price`. Order by `ram_gb` (largest first),
# then `price`, then `product_id`. Products without attributes, without `ram_gb` or not wireless
# are left out.

# %% nbgrader={"grade": false, "grade_id": "ex02-6-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
wireless_sql = """
SELECT product_id, name, (attributes ->> 'ram_gb')::int AS ram_gb, price
FROM products
WHERE attributes @> '{"wireless": true}'
  AND (attributes ->> 'ram_gb')::int >= %(min_ram)s
ORDER BY ram_gb DESC, price, product_id
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-6-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.wireless(wireless_sql, course)
### BEGIN HIDDEN TESTS
check.wireless(wireless_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Arrays
#
# A PostgreSQL column can hold an **array** of any type: `text[]`, `int[]`. The shop keeps post
# tags the normalized way, in `post_tags` (post ↔ tag pairs). For a blog that always shows a post
# with its tags, a copy of the tag names in a `tags text[]` column of `posts` saves a join on
# every page. That copy is **denormalized**: `post_tags` stays the source of truth, and the copy
# must be refreshed when tags change (by the code that changes them, or a trigger).
#
# `array_agg(... ORDER BY ...)` builds the arrays:

# %%
with psycopg.connect(conninfo) as conn:
    conn.execute("ALTER TABLE posts ADD COLUMN IF NOT EXISTS tags text[] NOT NULL DEFAULT '{}'")
    conn.execute("""
        UPDATE posts p SET tags = t.tags
        FROM (SELECT pt.post_id, array_agg(tg.name ORDER BY tg.name) AS tags
              FROM post_tags pt JOIN tags tg ON tg.tag_id = pt.tag_id
              GROUP BY pt.post_id) AS t
        WHERE t.post_id = p.post_id""")
    conn.execute("CREATE INDEX IF NOT EXISTS posts_tags_idx ON posts USING gin (tags)")
    print(frame(conn, "SELECT post_id, title, tags FROM posts ORDER BY post_id LIMIT 4"))

# %% [markdown]
# The array operators, with Python lists as parameters (psycopg sends a list as an array and
# returns arrays as lists):
#
# | Test | SQL |
# |---|---|
# | the array contains this value | `%s = ANY(tags)` |
# | contains **all** of these | `tags @> %s` |
# | contains **any** of these (overlap) | `tags && %s` |
# | one row per element | `unnest(tags)` |
# | number of elements | `cardinality(tags)` |
#
# `@>` and `&&` can use the GIN index; `= ANY(...)` cannot (write `tags @> ARRAY[%s]` when it
# matters).

# %%
with psycopg.connect(conninfo) as conn:
    count = "SELECT count(*) FROM posts WHERE published_at IS NOT NULL AND "
    print("tagged 'redis':               ", conn.execute(count + "%s = ANY(tags)", ("redis",)).fetchone()[0])
    print("tagged 'redis' AND 'caching': ", conn.execute(count + "tags @> %s", (["redis", "caching"],)).fetchone()[0])
    print("tagged 'redis' OR 'mongodb':  ", conn.execute(count + "tags && %s", (["redis", "mongodb"],)).fetchone()[0])
    print(conn.execute("SELECT post_id, tags, cardinality(tags) FROM posts WHERE tags @> %s ORDER BY post_id LIMIT 1",
                       (["redis", "caching"],)).fetchone())
    print(frame(conn, """
        SELECT tag, count(*) AS posts
        FROM posts, unnest(tags) AS tag
        WHERE published_at IS NOT NULL
        GROUP BY tag ORDER BY posts DESC, tag LIMIT 5"""))

# %% [markdown]
# ### Exercise 02.7 · Posts with all of these tags (practice)
#
# Set `tagged_sql` to a query with a named parameter `%(tags)s` (a Python list of tag names) that
# returns the **published** posts carrying **all** of those tags, with the columns `post_id`,
# `title`, `tags` (the post's tag names as an array sorted alphabetically, as in the `tags`
# column), ordered by `post_id`.

# %% nbgrader={"grade": false, "grade_id": "ex02-7-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
tagged_sql = """
SELECT post_id, title, tags
FROM posts
WHERE published_at IS NOT NULL AND tags @> %(tags)s::text[]
ORDER BY post_id
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-7-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.tagged(tagged_sql, course)
### BEGIN HIDDEN TESTS
check.tagged(tagged_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 8. Window functions
#
# `GROUP BY` collapses rows into one per group. A **window function** computes over a set of
# rows related to the current row (its *window*) and keeps every row:
#
# ```sql
# function(...) OVER (PARTITION BY <groups> ORDER BY <order within a group> [frame])
# ```
#
# * Ranking: `ROW_NUMBER()` (1, 2, 3, 4: ties broken arbitrarily), `RANK()` (1, 2, 2, 4: ties share,
#   then a gap), `DENSE_RANK()` (1, 2, 2, 3: no gap).
# * Aggregates over a window: `SUM(x) OVER (ORDER BY t)` is a **running total**;
#   `AVG(x) OVER (ORDER BY t ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)` a moving average.
# * Neighbours: `LAG(x)` / `LEAD(x)` read the previous / next row's value.
#
# Window functions run after `WHERE`, `GROUP BY` and `HAVING`, so they can rank aggregates; to
# filter on their result, wrap the query in a CTE or subquery.
#
# Revenue counts only orders that were not cancelled or refunded, and uses `unit_price`, the
# price paid, not today's price. The three ranking functions side by side on the skincare
# products, where two products sold the same number of units (`WINDOW w AS (...)` names a window
# definition that several functions share; `ROW_NUMBER` gets a tie-breaker, the product name, so
# that its numbering is repeatable):

# %%
with psycopg.connect(conninfo) as conn:
    ranked = frame(conn, """
        SELECT p.name AS product, sum(oi.quantity) AS units,
               row_number() OVER (ORDER BY sum(oi.quantity) DESC, p.name) AS row_number,
               rank() OVER w AS rank, dense_rank() OVER w AS dense_rank
        FROM order_items oi
        JOIN orders o ON o.order_id = oi.order_id
        JOIN products p ON p.product_id = oi.product_id
        JOIN categories c ON c.category_id = p.category_id
        WHERE c.name = 'Skincare' AND o.status NOT IN ('cancelled', 'refunded')
        GROUP BY p.product_id, p.name
        WINDOW w AS (ORDER BY sum(oi.quantity) DESC)
        ORDER BY units DESC, product""")
ranked

# %% [markdown]
# A customer's orders with a running total of what they spent and the days since their previous
# order (note `ROWS` in the frame: with the default `RANGE` frame, rows that tie on the `ORDER
# BY` value would share one running total):

# %%
with psycopg.connect(conninfo) as conn:
    history = frame(conn, """
        WITH order_totals AS (
            SELECT o.order_id, o.ordered_at, sum(oi.quantity * oi.unit_price) AS total
            FROM orders o JOIN order_items oi ON oi.order_id = o.order_id
            WHERE o.user_id = %s AND o.status NOT IN ('cancelled', 'refunded')
            GROUP BY o.order_id
        )
        SELECT order_id, ordered_at::date AS day, total,
               sum(total) OVER (ORDER BY ordered_at ROWS UNBOUNDED PRECEDING) AS running_total,
               ordered_at::date - lag(ordered_at::date) OVER (ORDER BY ordered_at) AS days_since_previous
        FROM order_totals
        ORDER BY ordered_at""", (42,))
history

# %% [markdown]
# ### Exercise 02.8 · Best sellers per category (practice)
#
# Set `top_products_sql` to a query that ranks, **within each category**, the products by units
# sold (the sum of `quantity` over orders that are not cancelled or refunded; products that never
# sold are left out) and keeps the top 3 with `RANK()` (so ties share a rank and a category can
# return more than 3 rows, or fewer after a tie). Columns: `category` (the category's name),
# `product` (the product's name), `units`, `rnk`. Order by `category`, `rnk`, `product`.

# %% nbgrader={"grade": false, "grade_id": "ex02-8-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
top_products_sql = """
WITH units AS (
    SELECT c.name AS category, p.name AS product, sum(oi.quantity) AS units,
           rank() OVER (PARTITION BY c.category_id ORDER BY sum(oi.quantity) DESC) AS rnk
    FROM order_items oi
    JOIN orders o ON o.order_id = oi.order_id
    JOIN products p ON p.product_id = oi.product_id
    JOIN categories c ON c.category_id = p.category_id
    WHERE o.status NOT IN ('cancelled', 'refunded')
    GROUP BY c.category_id, c.name, p.product_id, p.name
)
SELECT category, product, units, rnk
FROM units
WHERE rnk <= 3
ORDER BY category, rnk, product
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-8-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.top_products(top_products_sql, course)
### BEGIN HIDDEN TESTS
check.top_products(top_products_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 9. CTEs, recursive ones included
#
# A **common table expression** (`WITH name AS (SELECT ...)`) names a subquery so the main query
# can read like a sequence of steps. Since PostgreSQL 12 a CTE used once is inlined into the
# query and optimized with it (write `AS MATERIALIZED` to force computing it once on its own).
#
# `WITH RECURSIVE` lets a CTE refer to itself, which walks hierarchies of any depth: an **anchor**
# query gives the starting rows, then the **recursive** part (after `UNION ALL`) is run on the rows
# produced in the previous round, until a round produces nothing.
#
# ```mermaid
# flowchart LR
#     A["anchor:<br/>top-level categories<br/>(parent_id IS NULL)"] --> R1["round 1:<br/>their children"]
#     R1 --> R2["round 2:<br/>grandchildren"]
#     R2 --> E["round n:<br/>no new rows: stop"]
# ```
#
# The shop's categories are two levels deep. In a transaction that we roll back, we add two
# deeper levels to see the recursion follow them:

# %%
tree_sql = """
WITH RECURSIVE tree AS (
    SELECT category_id, name, 1 AS depth, name::text AS path
    FROM categories WHERE parent_id IS NULL
    UNION ALL
    SELECT c.category_id, c.name, t.depth + 1, t.path || ' > ' || c.name
    FROM categories c JOIN tree t ON c.parent_id = t.category_id
)
SELECT path, depth FROM tree WHERE path LIKE %s ORDER BY path
"""
with psycopg.connect(conninfo) as conn:
    with conn.transaction():
        conn.execute("""INSERT INTO categories (category_id, name, parent_id)
                        SELECT 1001, 'PostgreSQL', category_id FROM categories WHERE name = 'Databases'""")
        conn.execute("INSERT INTO categories (category_id, name, parent_id) VALUES (1002, 'Internals', 1001)")
        print(frame(conn, tree_sql, ("Books%",)))
        raise psycopg.Rollback

# %% [markdown]
# (The `LIKE` pattern `'Books%'` travels as a parameter. Written inside a query that has
# parameters, its `%` would have to be doubled, `'Books%%'`, because psycopg reads `%` as the start
# of a placeholder.) Non-recursive CTEs shine for step-by-step analytics. Customers by how many
# orders they placed, and what they are worth:

# %%
with psycopg.connect(conninfo) as conn:
    segments = frame(conn, """
        WITH paid_orders AS (
            SELECT o.user_id, o.order_id, sum(oi.quantity * oi.unit_price) AS total
            FROM orders o JOIN order_items oi ON oi.order_id = o.order_id
            WHERE o.status NOT IN ('cancelled', 'refunded')
            GROUP BY o.user_id, o.order_id
        ), customers AS (
            SELECT user_id, count(*) AS orders, sum(total) AS spent
            FROM paid_orders GROUP BY user_id
        )
        SELECT CASE WHEN orders = 1 THEN '1 order' WHEN orders <= 5 THEN '2-5 orders' ELSE '6+ orders' END AS segment,
               count(*) AS customers, round(avg(spent), 2) AS avg_spent
        FROM customers
        GROUP BY segment ORDER BY segment""")
segments

# %% [markdown]
# ### Exercise 02.9 · Revenue by top-level category (challenge)
#
# Set `category_revenue_sql` to a query that returns, for **every top-level category**
# (`parent_id IS NULL`), the revenue of all products in it **or in any category below it, at
# any depth** (use `WITH RECURSIVE`: the check adds deeper levels), with the columns
# `top_category` (its name) and `revenue` (sum of `quantity * unit_price` over orders that are not
# cancelled or refunded; 0 for a top-level category that sold nothing). Order by `revenue`,
# largest first, then `top_category`.

# %% nbgrader={"grade": false, "grade_id": "ex02-9-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
category_revenue_sql = """
WITH RECURSIVE tree AS (
    SELECT category_id, name AS top_category FROM categories WHERE parent_id IS NULL
    UNION ALL
    SELECT c.category_id, t.top_category FROM categories c JOIN tree t ON c.parent_id = t.category_id
), sales AS (
    SELECT p.category_id, oi.quantity * oi.unit_price AS amount
    FROM order_items oi
    JOIN orders o ON o.order_id = oi.order_id
    JOIN products p ON p.product_id = oi.product_id
    WHERE o.status NOT IN ('cancelled', 'refunded')
)
SELECT t.top_category, coalesce(sum(s.amount), 0) AS revenue
FROM tree t LEFT JOIN sales s ON s.category_id = t.category_id
GROUP BY t.top_category
ORDER BY revenue DESC, t.top_category
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-9-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.category_revenue(category_revenue_sql, course)
### BEGIN HIDDEN TESTS
check.category_revenue(category_revenue_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 10. Time-series analytics with `DATE_TRUNC`
#
# `date_trunc('month', ts)` cuts a timestamp down to the start of its month (or `'day'`, `'week'`,
# `'quarter'`, `'year'`, ...): group by it and you have monthly figures. Two details matter:
#
# * For a `timestamptz`, "the start of the month" depends on a **time zone**: 23:30 UTC on 31
#   January is already February in Tokyo. `date_trunc` uses the session's `TimeZone`, so the same
#   query gives other months in another session. Reports should say which zone they use.
# * A month without any orders produces **no group**. To show it as a 0, start from a calendar
#   made by `generate_series` and `LEFT JOIN` the figures to it.
#
# For **UTC months whatever the session**, turn the instant into UTC wall-clock time first:
# `ordered_at AT TIME ZONE 'UTC'` is a plain `timestamp` (no zone), and `date_trunc` and `::date`
# on a plain timestamp involve no time zone at all: `date_trunc('month', ordered_at AT TIME ZONE
# 'UTC')::date`. Beware of the tempting `date_trunc('month', ordered_at, 'UTC')::date`
# (PostgreSQL 12+): the three-argument form truncates in UTC, but it returns a **timestamptz**, the
# instant "1 January, 00:00 UTC", and `::date` converts that instant back in the *session's* zone.
# East of UTC that is still 1 January; west of UTC, in New York, it is **31 December**, the day
# before. (`(date_trunc('month', ordered_at, 'UTC') AT TIME ZONE 'UTC')::date` is correct too.)

# %%
month_forms = {
    "date_trunc(ts)::date": "date_trunc('month', %(ts)s::timestamptz)::date",
    "date_trunc(ts, 'UTC')::date": "date_trunc('month', %(ts)s::timestamptz, 'UTC')::date",
    "date_trunc(ts AT TIME ZONE 'UTC')::date": "date_trunc('month', %(ts)s::timestamptz AT TIME ZONE 'UTC')::date",
}
late_order = datetime(2025, 1, 31, 23, 30, tzinfo=timezone.utc)
zones = ("UTC", "Asia/Tokyo", "America/New_York")
by_zone = {}
with psycopg.connect(conninfo) as conn:
    for tz in zones:
        conn.execute("SELECT set_config('TimeZone', %s, false)", (tz,))
        by_zone[tz] = conn.execute("SELECT " + ", ".join(month_forms.values()), {"ts": late_order}).fetchone()
print(f"{'the month of 2025-01-31 23:30 UTC':<42}" + "".join(f"{tz:>18}" for tz in zones))
for i, form in enumerate(month_forms):
    print(f"{form:<42}" + "".join(f"{by_zone[tz][i].isoformat():>18}" for tz in zones))

# %% [markdown]
# Monthly revenue over the shop's whole history, gaps filled, with the growth against the same
# month a year earlier (`LAG(..., 12)`):

# %%
monthly_all_sql = """
WITH months AS (
    SELECT generate_series(date '2021-12-01', date '2026-06-01', interval '1 month')::date AS month
), revenue AS (
    SELECT date_trunc('month', o.ordered_at AT TIME ZONE 'UTC')::date AS month,
           count(DISTINCT o.order_id) AS orders, sum(oi.quantity * oi.unit_price) AS revenue
    FROM orders o JOIN order_items oi ON oi.order_id = o.order_id
    WHERE o.status NOT IN ('cancelled', 'refunded')
    GROUP BY 1
)
SELECT m.month, coalesce(r.orders, 0) AS orders, coalesce(r.revenue, 0) AS revenue,
       round(100 * (r.revenue / lag(r.revenue, 12) OVER (ORDER BY m.month) - 1), 1) AS yoy_pct
FROM months m LEFT JOIN revenue r ON r.month = m.month
ORDER BY m.month
"""
with psycopg.connect(conninfo) as conn:
    monthly_all = frame(conn, monthly_all_sql)
monthly_all.tail(8)

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(10, 3.5))
ax.plot(pd.to_datetime(monthly_all["month"]), monthly_all["revenue"].astype(float), marker=".")
ax.set_yscale("log")  # the shop grew a thousandfold: a log scale shows every year
ax.set_title("Shop revenue per month (UTC months; cancelled and refunded orders excluded)")
ax.set_ylabel("revenue (log scale)")
ax.grid(alpha=0.3)
plt.show()

# %%
by_month = monthly_all.set_index(monthly_all["month"].map(lambda m: f"{m:%Y-%m}"))["revenue"].astype(float)
print("months without a single order:", list(by_month[by_month == 0].index))
yearly = by_month.groupby(by_month.index.str[:4]).sum()
print("revenue grew every year from 2022 to 2025:", yearly.loc["2022":"2025"].is_monotonic_increasing)
for year in ("2024", "2025"):
    peak = min(by_month[f"{year}-11"], by_month[f"{year}-12"])
    print(f"{year}: November and December above October and the next January:",
          peak > by_month[f"{year}-10"] and peak > by_month[f"{int(year) + 1}-01"])

# %% [markdown]
# The shop grows fast (so fast that only a log scale shows its first years), its first months
# include some without a single order (the calendar from `generate_series` keeps them, as 0),
# and the Christmas season stands out once the shop is big enough for it to show.
#
# ### Exercise 02.10 · A monthly report (practice)
#
# Set `monthly_sql` to a query with a named parameter `%(year)s` that returns **12 rows**, one per
# month of that year, with the columns:
#
# * `month`: the first day of the month, as a `date` (UTC months, **whatever the session's time
#   zone**: the check also runs your query in other time zones);
# * `orders`: the number of orders placed that month that are not cancelled or refunded (orders
#   without any items count too);
# * `revenue`: the sum of `quantity * unit_price` of those orders' items; 0 when there is none.
#
# Order by `month`. Months without orders appear with 0 and 0.

# %% nbgrader={"grade": false, "grade_id": "ex02-10-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
monthly_sql = """
WITH months AS (
    SELECT generate_series(make_date(%(year)s, 1, 1), make_date(%(year)s, 12, 1), interval '1 month')::date AS month
), per_order AS (
    SELECT o.order_id, date_trunc('month', o.ordered_at AT TIME ZONE 'UTC')::date AS month,
           coalesce(sum(oi.quantity * oi.unit_price), 0) AS revenue
    FROM orders o LEFT JOIN order_items oi ON oi.order_id = o.order_id
    WHERE o.status NOT IN ('cancelled', 'refunded')
    GROUP BY o.order_id
)
SELECT m.month, count(p.order_id) AS orders, coalesce(sum(p.revenue), 0) AS revenue
FROM months m LEFT JOIN per_order p ON p.month = m.month
GROUP BY m.month
ORDER BY m.month
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-10-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.monthly(monthly_sql, course)
### BEGIN HIDDEN TESTS
check.monthly(monthly_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 11. `EXPLAIN` and `EXPLAIN ANALYZE`
#
# The **planner** turns SQL into a **plan**: a tree of nodes, each producing rows for its parent.
# The ones you will meet most:
#
# | Node | What it does |
# |---|---|
# | Seq Scan | reads the whole table, filtering row by row |
# | Index Scan | walks an index and fetches each matching row from the table |
# | Index Only Scan | answers from the index alone (all needed columns are in it) |
# | Bitmap Index Scan + Bitmap Heap Scan | collects matches from an index, then reads the table pages in order |
# | Nested Loop / Hash Join / Merge Join | the three ways of joining |
# | Sort, Aggregate, Limit | what their names say |
#
# * `EXPLAIN query` shows the chosen plan with **estimates**: `cost=startup..total` (arbitrary
#   units), `rows` (estimated), `width` (bytes per row). It does not run the query.
# * `EXPLAIN (ANALYZE) query` **runs** it and adds what happened: `actual time` (ms), `rows`,
#   `loops`; with `BUFFERS`, the pages read. Compare estimated and actual rows: a big gap means
#   stale statistics (`ANALYZE table`) or a condition the planner cannot estimate.
# * `EXPLAIN ANALYZE` of an `INSERT`/`UPDATE`/`DELETE` really changes data: run it in a
#   transaction and roll back.
#
# A customer's activity: how do we find one user's events among all of them (about 20,000 at the
# small scale)?

# %%
events_sql = "SELECT event_type, count(*) FROM events WHERE user_id = %s GROUP BY event_type ORDER BY event_type"
with psycopg.connect(conninfo) as conn:
    print(plan(conn, events_sql, (42,)))

# %% [markdown]
# A sequential scan: there is no index on `events.user_id` (PostgreSQL does not index foreign keys
# by itself). `EXPLAIN ANALYZE` shows the cost in practice; its timings change from run to run,
# so this cell's output is not compared:

# %% tags=["nbval-ignore-output"]
with psycopg.connect(conninfo) as conn:
    print("\n".join(r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + events_sql, (42,))))

# %% [markdown]
# Instead of reading timings by eye, ask for the plan as JSON (`FORMAT JSON`) and extract stable
# facts from it: which nodes ran, and how many rows each scan **read** (`Actual Rows` returned plus
# `Rows Removed by Filter`). The helpers `explain_json`, `plan_nodes` and `describe_plan` come with
# the checks of this chapter (a dozen lines: read them with `check.plan_nodes??`).

# %%
def rows_read(conn, query, params):
    top = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, params).fetchone()[0][0]["Plan"]
    scans = [n for n in check.plan_nodes(top) if n.get("Relation Name") == "events"]
    return check.describe_plan(top), sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in scans)


with psycopg.connect(conninfo) as conn:
    before = rows_read(conn, events_sql, (42,))
    conn.execute("CREATE INDEX IF NOT EXISTS events_user_id_idx ON events (user_id)")
    conn.execute("ANALYZE events")
    after = rows_read(conn, events_sql, (42,))
    print(plan(conn, events_sql, (42,)))
print(f"\nwithout the index: {before[0]}\n    rows of events read: {before[1]:,}")
print(f"with the index:    {after[0]}\n    rows of events read: {after[1]:,}")

# %% [markdown]
# The index turned "read every event in the table" into "read the few that belong to user 42". The same
# JSON plan shows that `EXPLAIN ANALYZE` of a `DELETE` really deletes, and that a rollback undoes it:

# %%
with psycopg.connect(conninfo) as conn:
    with conn.transaction():
        top = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) DELETE FROM events WHERE event_type = 'login'").fetchone()[0]
        print("rows the DELETE removed:", check.plan_nodes(top[0]["Plan"])[-1]["Actual Rows"])
        print("login events inside the transaction:",
              conn.execute("SELECT count(*) FROM events WHERE event_type = 'login'").fetchone()[0])
        raise psycopg.Rollback
    print("login events after the rollback:    ",
          conn.execute("SELECT count(*) FROM events WHERE event_type = 'login'").fetchone()[0])

# %% [markdown]
# ### Exercise 02.11 · Find and fix: a slow order history (find and fix)
#
# The "My orders" page runs this query for the logged-in user, and it gets slower as the shop
# grows:
#
# ```sql
# SELECT order_id, ordered_at, status FROM orders
# WHERE user_id = %s ORDER BY ordered_at DESC LIMIT 10
# ```
#
# Look at its plan first, in a new cell, for the shop's busiest customer (the query is also
# available as `check.ORDER_HISTORY_SQL`):
#
# ```python
# with psycopg.connect(conninfo) as conn:
#     busiest = conn.execute("SELECT user_id FROM orders GROUP BY user_id "
#                            "ORDER BY count(*) DESC, user_id LIMIT 1").fetchone()[0]
#     print("user", busiest)
#     print(plan(conn, check.ORDER_HISTORY_SQL, (busiest,)))
# ```
#
# Then set `order_history_index_sql` to **one `CREATE INDEX` statement** (name it as you like)
# such that the plan neither reads the whole `orders` table (no `Seq Scan` on `orders`) nor sorts
# the busy customer's orders (no `Sort` node): the index should hand a user's orders over already
# in date order, so that the `LIMIT` can stop after 10 rows.
#
# The check drops the indexes you may have created on `orders`, runs your statement in a
# transaction, looks at the plans for a few users, and rolls everything back.

# %% nbgrader={"grade": false, "grade_id": "ex02-11-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
order_history_index_sql = "CREATE INDEX orders_user_id_ordered_at_idx ON orders (user_id, ordered_at DESC)"
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-11-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.order_history_index(order_history_index_sql, course)
### BEGIN HIDDEN TESTS
check.order_history_index(order_history_index_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 12. Bulk loading with `COPY`
#
# `INSERT` sends one statement per row (or batch). **`COPY`** streams many rows in one statement,
# in a compact format the server parses very fast: it is how `pg_dump` restores data and how the
# course loaded the shop.
#
# * `COPY table (columns) FROM STDIN`: the client sends the rows. In psycopg:
#   `with cur.copy("COPY ... FROM STDIN") as copy:` then `copy.write_row(row)` for each Python
#   tuple (psycopg converts each value, `None` included, so no escaping by hand), or
#   `copy.write(data)` for text already in COPY or CSV format.
# * `COPY (SELECT ...) TO STDOUT`: the server sends rows; read them with `copy.rows()` (tuples) or
#   `copy.read()` (raw chunks, to write a file).
# * `COPY table FROM '/path/file.csv'` (no `STDIN`) makes the **server** read a file on the
#   server's disk, which needs special privileges. From a client, use `STDIN`/`STDOUT` (that is
#   what `psql`'s `\copy` does).
#
# A comparison on 20,000 generated page-view rows: `executemany` (which psycopg 3 already
# pipelines) against `COPY`.

# %%
import random

rng = random.Random(2)
page_views = [(i, rng.randrange(1, 2001), f"/products/{rng.randrange(1, 301)}",
               datetime(2026, 6, 1, tzinfo=timezone.utc) + timedelta(seconds=7 * i))
              for i in range(20_000)]

load_table_sql = """
DROP TABLE IF EXISTS page_views;
CREATE TABLE page_views (view_id int PRIMARY KEY, user_id int NOT NULL, path text NOT NULL, seen_at timestamptz NOT NULL)
"""
timings = {}
with psycopg.connect(conninfo) as conn:
    conn.execute(load_table_sql)
    with conn.cursor() as cur:
        start = time.perf_counter()
        cur.executemany("INSERT INTO page_views (view_id, user_id, path, seen_at) VALUES (%s, %s, %s, %s)", page_views)
        timings["executemany"] = time.perf_counter() - start
    conn.commit()
    by_insert = conn.execute("SELECT count(*), sum(user_id), max(seen_at) FROM page_views").fetchone()

    conn.execute(load_table_sql)
    with conn.cursor() as cur:
        start = time.perf_counter()
        with cur.copy("COPY page_views (view_id, user_id, path, seen_at) FROM STDIN") as copy:
            for row in page_views:
                copy.write_row(row)
        timings["COPY"] = time.perf_counter() - start
    conn.commit()
    by_copy = conn.execute("SELECT count(*), sum(user_id), max(seen_at) FROM page_views").fetchone()

print("same rows either way:", by_insert == by_copy, "| rows:", by_copy[0])

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(6, 2.2))
ax.barh(list(timings), [t * 1000 for t in timings.values()], color=["#999", "#36c"])
ax.set_xlabel("milliseconds to load 20,000 rows (this run)")
for i, t in enumerate(timings.values()):
    ax.text(t * 1000, i, f" {t * 1000:.0f} ms", va="center")
plt.show()

# %%
print("COPY was faster than executemany:", timings["COPY"] < timings["executemany"])

# %% [markdown]
# And the way out: `COPY ... TO STDOUT` exports a query's result, here to a CSV file with a header,
# written chunk by chunk (nothing is held in memory whole):

# %%
export = course.path("orders-2025-12.csv")
with psycopg.connect(conninfo) as conn, conn.cursor() as cur, open(export, "wb") as f:
    with cur.copy("""COPY (SELECT order_id, user_id, ordered_at, status FROM orders
                           WHERE ordered_at >= '2025-12-01 00:00+00' AND ordered_at < '2026-01-01 00:00+00'
                           ORDER BY order_id) TO STDOUT WITH (FORMAT csv, HEADER)""") as copy:
        for chunk in copy:
            f.write(chunk)

lines = export.read_text().splitlines()
print(len(lines) - 1, "orders exported; first lines:")
print("\n".join(lines[:3]))

# %% [markdown]
# ### Exercise 02.12 · A COPY loader (challenge)
#
# Write `copy_rows(conn, table, columns, rows)` that loads `rows` (a list of tuples, in the order
# of `columns`) into the existing table `table` with **one `COPY ... FROM STDIN`** and returns the
# number of rows loaded. `table` and `columns` are names given as strings: compose the statement
# with `psycopg.sql` (names may contain capitals, spaces, quotes or reserved words such as
# `user`), and list the columns (the table may have others, with defaults). Do not commit: the
# caller decides.
#
# The check records every statement that inserts into its table, and wants to see only COPY.

# %% nbgrader={"grade": false, "grade_id": "ex02-12-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def copy_rows(conn, table, columns, rows):
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur:
        with cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return cur.rowcount
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex02-12-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.copy_rows(copy_rows, course)
### BEGIN HIDDEN TESTS
check.copy_rows(copy_rows, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Key points
#
# * Connect with `psycopg.connect(conninfo)` where the URL or conninfo comes from configuration,
#   never from the code. `with psycopg.connect(...)` commits (or rolls back) **and closes**.
# * Values go in as parameters, `%s` or `%(name)s`, always; names go in with `psycopg.sql`.
#   psycopg 3 binds on the server, so parameters cannot appear in `SET` or DDL.
# * Row factories (`dict_row`, `namedtuple_row`, `class_row`) shape the rows; `RETURNING` gives
#   back generated ids and computed values in the same round trip.
# * A pool (`psycopg_pool.ConnectionPool`, `with pool.connection()`) saves the cost of
#   connecting; a DatabaseManager on top of it gives one committed-or-rolled-back unit of work.
# * psycopg opens transactions for you; end them. `with conn.transaction()` commits or rolls back,
#   nested blocks are savepoints.
# * READ COMMITTED allows lost updates in read-modify-write code: update atomically or lock with
#   `SELECT ... FOR UPDATE`. REPEATABLE READ and SERIALIZABLE turn conflicts into
#   `SerializationFailure`: retry the whole transaction.
# * Full-text search: a generated `tsvector` column, `websearch_to_tsquery`, `ts_rank`, a GIN index.
#   JSONB: `->`, `->>`, `@>`, jsonpath, GIN or expression indexes. Arrays: `ANY`, `@>`, `&&`,
#   `unnest`.
# * Window functions rank and accumulate without collapsing rows; recursive CTEs walk trees;
#   `date_trunc('month', ts AT TIME ZONE 'UTC')::date` (UTC months in any session) plus
#   `generate_series` makes honest monthly reports.
# * Read plans with `EXPLAIN`, measure with `EXPLAIN ANALYZE` (in a rolled-back transaction for
#   writes); on small tables a sequential scan is often the right plan.
# * `COPY` is the fast way in and out: `cur.copy()` with `write_row`, `rows()`, `read()`.
#
# Your progress in this chapter:

# %%
check.progress()

# %% [markdown]
# **Where next**: chapter 03 does the same work with MySQL and MariaDB (PyMySQL and
# mysql-connector-python) and compares the two servers: open `03_mysql.ipynb`. Chapter 07 returns
# to `EXPLAIN` with a million rows.
