# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: nbgrader,tags,editable,deletable,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · MySQL and MariaDB from Python
#
# **After this chapter you will be able to**
#
# * connect to MySQL or MariaDB with **PyMySQL** and with **mysql-connector-python** from settings
#   (never from a password written in the code), and tell which flavour of server you reached;
# * read rows as dicts (`DictCursor`, `dictionary=True`) and borrow connections from a **pool**;
# * create **InnoDB** tables with `AUTO_INCREMENT` keys in **utf8mb4**, and explain why `utf8`
#   loses the emoji in the shop's reviews;
# * insert, read, update and delete with parameters, get the new key with `lastrowid`, and group
#   writes in **transactions** that commit or roll back as a whole;
# * move code between MySQL, PostgreSQL and SQLite knowing what changes: placeholders, upserts,
#   identity columns, case and collation, `EXPLAIN`;
# * say what MariaDB and MySQL 8 share, and where they differ.
#
# **Time**: about 2 hours, with 11 exercises. The notebook itself runs in well under a minute.
#
# **What must be running**: a MySQL-compatible server (the course runs **MariaDB 10.11** natively;
# with Docker it runs **MySQL 8.4**) and PostgreSQL for the comparisons of section 7. SQLite is part
# of Python. The setup cell checks both servers and loads the shop into MySQL; if one is down it
# stops with one message naming the command to run (usually `dbcourse services up`).
#
# Everything in this notebook runs on both MariaDB and MySQL 8. Where the two differ for something
# shown here, the code detects the flavour at run time and the text says what the other one does.

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
from dbcourse.checks import ch03 as check

course = dbcourse.setup("03-mysql", namespace=namespace, scale=scale,
                        urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url))

# %% [markdown]
# Your MySQL database holds the shop's eleven tables (users, products, orders, order items,
# reviews, events...). The PostgreSQL database and the SQLite folder start empty: section 7 puts a
# few small tables there to compare the three side by side.
#
# ## 1. Configuration: one set of settings, two drivers
#
# A connection needs a host, a port, a user, a password and a database name. Where should a
# program get them? **Not from its source code.** A password written in a notebook ends up in git,
# in screenshots and in error logs, and pointing the program at another server would mean editing
# code. The usual answer is the environment: the course reads `DBCOURSE_MYSQL_URL` (or
# `DBCOURSE_HOST`, `DBCOURSE_MYSQL_PORT`, `DBCOURSE_USER`, `DBCOURSE_PASSWORD`) from environment
# variables or from a git-ignored `.env` file, and falls back to the defaults of its own servers.
#
# Both Python drivers for MySQL take the same keyword arguments, so a program builds **one dict**
# from its settings and passes it to either driver. Here is that dict, built from the URL the
# course has already read for this notebook:

# %%
from urllib.parse import unquote, urlsplit


def mysql_config_from_url(url: str) -> dict:
    """Keyword arguments for pymysql.connect() and mysql.connector.connect(), from a mysql:// URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/"),
        "charset": "utf8mb4",  # real UTF-8 between Python and the server (section 4)
        "connect_timeout": 3,  # seconds: fail fast when the server is down
    }


# In an application: config = mysql_config_from_url(os.environ["DBCOURSE_MYSQL_URL"]).
# Here the course has read the environment and .env already: course.mysql_url is this notebook's URL.
config = mysql_config_from_url(course.mysql_url)


def masked(settings: dict) -> dict:
    """The settings with the password hidden: safe to print or log."""
    return {key: ("***" if key == "password" else value) for key, value in settings.items()}


# %% [markdown]
# Host, port and user depend on where the course runs (native servers, Docker, your own `.env`), so
# the next cell's output is not compared; the cell after it states what holds everywhere.

# %% tags=["nbval-ignore-output"]
print(masked(config))

# %%
print("the same as course.mysql_params:",
      all(config[k] == course.mysql_params[k] for k in ("host", "port", "user", "password", "database", "charset")))
print("this notebook's own database, password masked:",
      masked(config)["database"] == course.namespace, masked(config)["password"] == "***")

# %% [markdown]
# Two more good habits: never print or log the settings unmasked, and keep machine-wide defaults in
# MySQL's own option file if you have one (`~/.my.cnf`, section `[client]`): PyMySQL reads it with
# `read_default_file=`, mysql-connector with `option_files=`.
#
# ### The two drivers
#
# **PyMySQL** is a community driver written in pure Python. **mysql-connector-python** is Oracle's
# driver; it is written in Python too, and it can also use a **C extension** (a compiled module
# built on the MySQL client library) that parses results faster. `use_pure=True` forces the
# Python implementation; `use_pure=False` (the default) uses the C extension when it can be loaded.
# Both speak the same wire protocol, so both work with MySQL and MariaDB.
#
# One habit from the start: with autocommit off (the drivers' default), even a `SELECT` opens a
# transaction, and that transaction holds a lock on every table it read until it ends, which can
# block another connection's `CREATE INDEX` or `DROP TABLE` (section 6 and exercise 03.10 come back
# to this). So `cn_conn` below, which only reads, is opened with `autocommit=True`, and the cells
# that only read through `py_conn` end with `py_conn.rollback()`.

# %%
import mysql.connector
import pymysql

py_conn = pymysql.connect(**config)  # autocommit off: it writes in transactions later on
cn_conn = mysql.connector.connect(**config, use_pure=True, autocommit=True)  # it only reads


def server_flavour(conn) -> str:
    """'MariaDB' or 'MySQL': MariaDB always says so in its version string."""
    cur = conn.cursor()
    cur.execute("SELECT VERSION()")
    version = cur.fetchone()[0]
    cur.close()
    return "MariaDB" if "MariaDB" in version else "MySQL"


for name, conn in [("PyMySQL", py_conn), ("mysql-connector", cn_conn)]:
    print(f"{name:<16} {type(conn).__module__}.{type(conn).__name__}")

FLAVOUR = server_flavour(py_conn)
MARIADB = FLAVOUR == "MariaDB"
py_conn.rollback()  # end the read transaction that SELECT VERSION() opened
print("both drivers reach the same server:", server_flavour(cn_conn) == FLAVOUR)

# %% [markdown]
# Which flavour and version this is depends on your installation (the course runs MariaDB natively
# and MySQL 8.4 in Docker), so the next cell's output is not compared. `FLAVOUR` and `MARIADB` are
# used below wherever the two servers differ.

# %% tags=["nbval-ignore-output"]
with py_conn.cursor() as cur:
    cur.execute("SELECT VERSION()")
    print("flavour:", FLAVOUR, "| version:", cur.fetchone()[0])
py_conn.rollback()

# %% [markdown]
# Is the C extension usable in this installation? The wheel of mysql-connector-python ships it as a
# compiled module, `_mysql_connector`, but whether that module loads depends on the machine: it is
# linked against system libraries (OpenSSL among them). The next cell asks, and when the module
# does not load, prints the import error that says why. On the course's own Debian 12 machine, for
# example, the module asks for a newer OpenSSL (3.2) than the system has. The output depends on
# the machine, so it is not compared.

# %% tags=["nbval-ignore-output"]
print("C extension usable:", mysql.connector.HAVE_CEXT)
if not mysql.connector.HAVE_CEXT:
    try:
        import _mysql_connector  # noqa: F401 - the compiled module itself
    except ImportError as exc:
        print("why not:", exc)
try:
    mysql.connector.connect(**config, use_pure=False).close()
    print("use_pure=False: connected through the C extension")
except ImportError as exc:
    print("use_pure=False:", exc)

# %% [markdown]
# When the extension cannot load, mysql-connector runs in pure Python: the default silently falls
# back to it, and only an explicit `use_pure=False` complains (with `ImportError`). The API is the
# same in both modes, and this notebook asks for the pure-Python implementation everywhere
# (`use_pure=True`), so it behaves the same on every machine:

# %%
print("cn_conn is the pure-Python connection class:", type(cn_conn).__name__ == "MySQLConnection")
print("and it works:", cn_conn.is_connected())

# %% [markdown]
#
# The same query, with the same `%s` placeholder, through both drivers:

# %%
category_query = """
    SELECT c.name AS category, COUNT(*) AS products, MIN(p.price) AS cheapest
    FROM products p JOIN categories c ON c.category_id = p.category_id
    WHERE p.is_discontinued = %s
    GROUP BY c.name
    ORDER BY products DESC, category
    LIMIT 3
"""
results = {}
for name, conn in [("PyMySQL", py_conn), ("mysql-connector", cn_conn)]:
    cur = conn.cursor()
    cur.execute(category_query, (False,))
    results[name] = cur.fetchall()
    cur.close()
    print(f"{name:<16} {type(results[name]).__name__:<6}", results[name])
py_conn.rollback()  # end the read transaction (cn_conn autocommits)

print("same values:", [tuple(r) for r in results["PyMySQL"]] == [tuple(r) for r in results["mysql-connector"]])

# %% [markdown]
# Same values, same Python types (`Decimal` for `DECIMAL`, `int`, `str`); only the container differs
# (PyMySQL gives a tuple of rows, mysql-connector a list). Side by side:
#
# | | PyMySQL | mysql-connector-python |
# |---|---|---|
# | Made by, licence | community, MIT | Oracle, GPL 2 with the FOSS exception |
# | Written in | pure Python | Python, plus an optional C extension (`use_pure`) |
# | Placeholders | `%s` and `%(name)s` (`paramstyle = "pyformat"`) | the same |
# | Rows as dicts | `conn.cursor(pymysql.cursors.DictCursor)` | `conn.cursor(dictionary=True)` |
# | Autocommit | off | off |
# | Connection pool | none (SQLAlchemy's pool works with it, chapter 04) | `mysql.connector.pooling` |
# | Errors | `pymysql.err.IntegrityError`, ... | `mysql.connector.errors.IntegrityError`, ... |
# | Extras | the base of `aiomysql` (asyncio) | server-side prepared statements (`cursor(prepared=True)`), `mysql.connector.aio` |
#
# Both follow the DB-API (PEP 249): `connect`, `cursor`, `execute`, `fetchone`/`fetchall`,
# `commit`, `rollback`, `close`. What you learn with one works with the other.
#
# ## 2. Rows as dicts: DictCursor
#
# A tuple row makes you count positions (`row[3]` is the birth year... or was it the city?). A
# **dict cursor** returns each row as a dict keyed by column label.

# %%
from pymysql.cursors import DictCursor

lookup = "SELECT user_id, full_name, country, birth_year FROM users WHERE user_id = %s"
with py_conn.cursor(DictCursor) as cur:  # PyMySQL: choose the cursor class per cursor...
    cur.execute(lookup, (23,))
    print("PyMySQL   :", cur.fetchone())

with cn_conn.cursor(dictionary=True) as cur:  # mysql-connector: a flag
    cur.execute(lookup, (23,))
    print("connector :", cur.fetchone())
py_conn.rollback()

# %% [markdown]
# ...or for every cursor of a connection: `pymysql.connect(**config, cursorclass=DictCursor)`.
# For results too big for memory, `pymysql.cursors.SSDictCursor` streams rows from the server
# (read them with `fetchmany` or by iterating).
#
# The keys are the column **labels**, so name every expression with `AS`:

# %%
with py_conn.cursor(DictCursor) as cur:
    cur.execute("SELECT country, COUNT(*) FROM users WHERE country = %s GROUP BY country", ("NL",))
    print(cur.fetchone())
    cur.execute("SELECT country, COUNT(*) AS customers FROM users WHERE country = %s GROUP BY country", ("NL",))
    print(cur.fetchone())
py_conn.rollback()

# %% [markdown]
# ### Exercise 03.1 · A DictCursor report (warm-up)
#
# Write `country_report(conn, min_customers)`: given a PyMySQL connection, return the countries
# with **at least** `min_customers` users, as a **list of dicts** with the keys `country` (the
# country code in capitals) and `customers` (the number of users), largest first and, on a tie, by
# country code. Pass `min_customers` as a parameter (`%s`), never by formatting it into the SQL.
#
# A trap: about 1% of users have a lower-case country code (`de`). In MySQL, `GROUP BY country`
# already merges `de` and `DE`, because the column's collation ignores case (section 7.4), but it
# shows whichever spelling it met first. `UPPER(country)` makes the result explicit, and also right
# on PostgreSQL, which would keep `de` and `DE` apart.
#
# The check calls your function with its own `min_customers` values and compares the rows; the
# hidden test adds users with the codes `zz`, `ZZ` and `Zz` (then rolls them back).

# %% nbgrader={"grade": false, "grade_id": "ex03-1-answer", "locked": false, "schema_version": 3, "solution": true}
def country_report(conn, min_customers):
    ### BEGIN SOLUTION
    with conn.cursor(DictCursor) as cur:
        cur.execute(
            """
            SELECT UPPER(country) AS country, COUNT(*) AS customers
            FROM users
            GROUP BY UPPER(country)
            HAVING COUNT(*) >= %s
            ORDER BY customers DESC, country
            """,
            (min_customers,),
        )
        return list(cur.fetchall())
    ### END SOLUTION


report = country_report(py_conn, 150)
py_conn.rollback()  # end the read transaction
report

# %% nbgrader={"grade": true, "grade_id": "ex03-1-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.country_report(country_report, course)
### BEGIN HIDDEN TESTS
check.country_report(country_report, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Connection pooling
#
# Opening a connection is expensive: a TCP handshake, the server's greeting, a password
# challenge, then session settings (character set, autocommit). PyMySQL 1.2 even prepares a TLS
# context on every connect, because it tries TLS by default. A web application that opens a
# connection per request spends much of its time there, and a busy one can hit the server's
# `max_connections`. A **pool** opens a few connections once; your code **borrows** one, uses it,
# and **gives it back**.
#
# ```mermaid
# sequenceDiagram
#     participant App as your code
#     participant Pool as MySQLConnectionPool (pool_size=3)
#     participant DB as MySQL server
#     Pool->>DB: at creation, open and log in 3 connections
#     App->>Pool: get_connection()
#     Pool-->>App: a PooledMySQLConnection
#     App->>DB: queries on it
#     App->>Pool: conn.close(): back to the pool, session reset
#     App->>Pool: get_connection() while all 3 are borrowed
#     Pool-->>App: PoolError: pool exhausted
# ```
#
# mysql-connector ships a pool: `mysql.connector.pooling.MySQLConnectionPool`. PyMySQL has none of
# its own; with PyMySQL you use SQLAlchemy's pool (chapter 04), which works with any driver.

# %%
from mysql.connector import errors as connector_errors
from mysql.connector import pooling

pool = pooling.MySQLConnectionPool(pool_name="ch03_pool", pool_size=3, pool_reset_session=True,
                                   use_pure=True, **config)
print("pool:", pool.pool_name, "| size:", pool.pool_size)

with pool.get_connection() as conn:  # leaving the block calls conn.close(): the connection goes back
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM orders WHERE status = %s", ("pending",))
        print(type(conn).__name__, "| pending orders:", cur.fetchone()[0])

# %% [markdown]
# `close()` on a pooled connection does **not** disconnect: it hands the connection back. Forget it
# and the pool runs dry:

# %%
borrowed = [pool.get_connection() for _ in range(pool.pool_size)]
try:
    pool.get_connection()
except connector_errors.PoolError as exc:
    print("PoolError:", exc)

for conn in borrowed:
    conn.close()
with pool.get_connection() as conn:
    print("after giving them back, borrowing works again:", conn.is_connected())

# %% [markdown]
# With `pool_reset_session=True` (the default), a returned connection is reset: session variables,
# temporary tables and an open transaction do not leak from one borrower to the next. A pool of one
# connection shows it, since both borrows get the same server connection:

# %%
single = pooling.MySQLConnectionPool(pool_name="ch03_single", pool_size=1, use_pure=True, **config)
server_ids = []
for turn in (1, 2):
    with single.get_connection() as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID(), @cart")
            connection_id, cart = cur.fetchone()
            server_ids.append(connection_id)
            print(f"borrow {turn}: @cart = {cart!r}")
            cur.execute("SET @cart = 'three items'")  # a session variable, left behind on purpose
print("both borrows used the same server connection:", server_ids[0] == server_ids[1])

# %% [markdown]
# How much does the pool save? Each measurement opens (or borrows) a connection, runs `SELECT 1` and
# closes (or returns) it; the three are interleaved so that a busy machine slows them all alike.

# %% tags=["nbval-ignore-output"]
import statistics
import time

import matplotlib.pyplot as plt


def one_query(conn):
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.fetchall()
    cur.close()


def new_pymysql():
    conn = pymysql.connect(**config)
    one_query(conn)
    conn.close()


def new_connector():
    conn = mysql.connector.connect(**config, use_pure=True)
    one_query(conn)
    conn.close()


def from_pool():
    with pool.get_connection() as conn:
        one_query(conn)


ways = {"new PyMySQL connection": new_pymysql, "new connector connection": new_connector,
        "borrowed from the pool": from_pool}
samples = {label: [] for label in ways}
for _ in range(15):
    for label, action in ways.items():
        start = time.perf_counter()
        action()
        samples[label].append((time.perf_counter() - start) * 1000)
timings = {label: statistics.median(values) for label, values in samples.items()}
for label, ms in timings.items():
    print(f"{label:<26} {ms:6.2f} ms")

fig, ax = plt.subplots(figsize=(7, 2.4))
ax.barh(list(timings), list(timings.values()), color=["#999999", "#999999", "#2a9d8f"])
ax.invert_yaxis()
ax.set_xlabel("median ms for connect + SELECT 1 + close")
ax.set_title("A pooled connection skips the handshake")
plt.tight_layout()
plt.show()

# %%
print("borrowing is faster than opening a new connection:",
      timings["borrowed from the pool"] < min(timings["new PyMySQL connection"], timings["new connector connection"]))

# %% [markdown]
# ### Exercise 03.2 · A pooled function (practice)
#
# Write `order_summary(pool, user_id)`. It borrows a connection from `pool` (a
# `MySQLConnectionPool`), reads with a **dictionary cursor**, **gives the connection back**, and
# returns a dict with exactly these keys:
#
# * `user_id`, `full_name`;
# * `orders`: how many orders the user placed (0 if none);
# * `last_order_at`: the `ordered_at` of the latest one (`None` if none).
#
# If there is no such user, return `None`. The check builds a pool of only **2** connections and
# calls your function more than twice: a connection you do not give back makes the pool run dry.

# %% nbgrader={"grade": false, "grade_id": "ex03-2-answer", "locked": false, "schema_version": 3, "solution": true}
def order_summary(pool, user_id):
    ### BEGIN SOLUTION
    with pool.get_connection() as conn:  # returned to the pool on every path, even an exception
        with conn.cursor(dictionary=True) as cur:
            cur.execute(
                """
                SELECT u.user_id, u.full_name, COUNT(o.order_id) AS orders, MAX(o.ordered_at) AS last_order_at
                FROM users u LEFT JOIN orders o ON o.user_id = u.user_id
                WHERE u.user_id = %s
                GROUP BY u.user_id, u.full_name
                """,
                (user_id,),
            )
            return cur.fetchone()  # None when there is no such user
    ### END SOLUTION


order_summary(pool, 41)

# %% nbgrader={"grade": true, "grade_id": "ex03-2-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.order_summary(order_summary, course)
### BEGIN HIDDEN TESTS
check.order_summary(order_summary, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Tables for MySQL: InnoDB, AUTO_INCREMENT and utf8mb4
#
# A MySQL `CREATE TABLE` makes three choices that PostgreSQL never asks you about:
#
# * **The storage engine.** MySQL stores tables through pluggable engines. **InnoDB** (the default
#   since MySQL 5.5, and MariaDB's too) has transactions, row-level locks, crash recovery and
#   foreign keys. **MyISAM**, the old default, has none of them: a crash can corrupt a table and a
#   failed statement can stay half-done. Use InnoDB, and write `ENGINE=InnoDB` so that a server
#   configured with another default cannot surprise you.
# * **The character set.** MySQL's `utf8` is **utf8mb3**: at most **3 bytes** per character, so
#   only the first 65,536 code points of Unicode. Emoji (👍 is `F0 9F 91 8D` in UTF-8), many CJK
#   characters and mathematical letters need **4 bytes**. **utf8mb4** is real UTF-8. Use it for
#   tables *and* for the connection (`charset="utf8mb4"` in the settings above). Recent versions
#   already print `utf8` as `utf8mb3`, and MySQL 8 warns that it is deprecated.
# * **The collation**: how text compares and sorts (case, accents, trailing spaces): section 7.4.
#
# And the key: `AUTO_INCREMENT` makes the server hand out the next integer when you insert a row
# without one.
#
# The shop's reviews need 4 bytes per emoji:

# %%
with py_conn.cursor() as cur:
    cur.execute("SELECT review_id, body, CHAR_LENGTH(body), LENGTH(body) FROM reviews WHERE review_id = %s", (1,))
    print("review 1 (text, characters, bytes):", cur.fetchone())
    cur.execute("SELECT body FROM reviews WHERE body IS NOT NULL")
    bodies = [row[0] for row in cur.fetchall()]

py_conn.rollback()

outside_bmp = sum(any(ord(ch) > 0xFFFF for ch in body) for body in bodies)
print(f"{outside_bmp} of {len(bodies)} review texts contain a 4-byte character")

# %% [markdown]
# A table declared with the legacy `utf8` takes the reviews without emoji and refuses the others:

# %%
with py_conn.cursor() as cur:
    cur.execute("DROP TABLE IF EXISTS legacy_reviews")
    cur.execute("CREATE TABLE legacy_reviews (review_id INT PRIMARY KEY, body TEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8")
    cur.execute("""
        SELECT c.CHARACTER_SET_NAME
        FROM information_schema.TABLES t
        JOIN information_schema.COLLATIONS c ON c.COLLATION_NAME = t.TABLE_COLLATION
        WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = 'legacy_reviews'""")
    print("legacy_reviews is stored as", cur.fetchone()[0])

    cur.execute("SELECT review_id, body FROM reviews WHERE review_id IN (1, 2) ORDER BY review_id")
    for review_id, body in cur.fetchall():
        try:
            cur.execute("INSERT INTO legacy_reviews (review_id, body) VALUES (%s, %s)", (review_id, body))
            print(f"review {review_id} stored:   {body!r}")
        except pymysql.err.DataError as exc:
            code, message = exc.args
            print(f"review {review_id} refused:  error {code}: {message.split(' for column')[0]}")
    cur.execute("SELECT @@sql_mode")
    print("strict mode on:", "STRICT_TRANS_TABLES" in cur.fetchone()[0])
py_conn.rollback()

# %% [markdown]
# The error is the good outcome. Without **strict mode** (`STRICT_TRANS_TABLES` in `sql_mode`, the
# default since MySQL 5.7 and MariaDB 10.2.4), the server would store the review with `?` in place
# of the emoji, or cut the text at the emoji, and only leave a warning nobody reads.
#
# Now the tables this chapter writes to: web orders and their items, next to the shop's own tables.
#
# ```mermaid
# erDiagram
#     users ||--o{ web_orders : "user_id"
#     web_orders ||--|{ web_order_items : "order_id"
#     products ||--o{ web_order_items : "product_id"
#     web_orders { int order_id PK "AUTO_INCREMENT"
#         int user_id FK
#         varchar status "default pending"
#         varchar note "utf8mb4: emoji welcome"
#         datetime created_at "default CURRENT_TIMESTAMP" }
#     web_order_items { int order_id PK, FK
#         int product_id PK, FK
#         int quantity "CHECK > 0"
#         decimal unit_price }
# ```

# %%
WEB_ORDERS_DDL = """
CREATE TABLE web_orders (
    order_id    INT NOT NULL AUTO_INCREMENT,
    user_id     INT NOT NULL,
    status      VARCHAR(12) NOT NULL DEFAULT 'pending',
    note        VARCHAR(200) NULL,
    created_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (order_id),
    CONSTRAINT web_orders_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""
WEB_ORDER_ITEMS_DDL = """
CREATE TABLE web_order_items (
    order_id    INT NOT NULL,
    product_id  INT NOT NULL,
    quantity    INT NOT NULL CHECK (quantity > 0),
    unit_price  DECIMAL(10, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id),
    CONSTRAINT web_items_order_fk FOREIGN KEY (order_id) REFERENCES web_orders (order_id) ON DELETE CASCADE,
    CONSTRAINT web_items_product_fk FOREIGN KEY (product_id) REFERENCES products (product_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""
with py_conn.cursor() as cur:
    cur.execute("DROP TABLE IF EXISTS web_order_items")  # children first: a foreign key points at web_orders
    cur.execute("DROP TABLE IF EXISTS web_orders")
    cur.execute(WEB_ORDERS_DDL)
    cur.execute(WEB_ORDER_ITEMS_DDL)
    cur.execute("""
        SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ('web_orders', 'web_order_items')
        ORDER BY TABLE_NAME""")
    for row in cur.fetchall():
        print(row)
py_conn.rollback()

# %% [markdown]
# `SHOW CREATE TABLE` prints what the server really stored. Its text differs between the flavours
# (MariaDB writes `int(11)`, a display width that means nothing, where MySQL 8.0.19+ prints plain
# `int`; defaults are spelled `current_timestamp()` or `CURRENT_TIMESTAMP`), so the next cell's
# output is not compared, and the cell after it checks what matters. A `CHECK` constraint is
# enforced by MySQL since 8.0.16 and by MariaDB since 10.2.1 (older MySQL versions parsed it and
# ignored it).

# %% tags=["nbval-ignore-output"]
with py_conn.cursor() as cur:
    cur.execute("SHOW CREATE TABLE web_orders")
    stored_ddl = cur.fetchone()[1]
py_conn.rollback()
print(stored_ddl)

# %%
print("AUTO_INCREMENT key, InnoDB, utf8mb4 and the foreign key are all kept:",
      all(part in stored_ddl for part in ("AUTO_INCREMENT", "ENGINE=InnoDB", "CHARSET=utf8mb4",
                                          "FOREIGN KEY (`user_id`) REFERENCES `users`")))

# %% [markdown]
# DDL in MySQL is **not transactional**: a `CREATE TABLE` commits whatever was pending first, and
# cannot itself be rolled back (section 6 shows it).
#
# ### Exercise 03.3 · A table for emoji (practice)
#
# Write `review_archive_ddl`: one `CREATE TABLE review_archive` statement with
#
# * `archive_id`: a `BIGINT` primary key filled in by the server (`AUTO_INCREMENT`);
# * `review_id`: an `INT`, not null, **unique** (a review is archived at most once);
# * `body`: a `TEXT` that can hold any review, emoji included (null allowed);
# * `archived_at`: a `DATETIME`, not null, defaulting to the current time;
#
# on the InnoDB engine, in utf8mb4. The check drops `review_archive` if it exists, runs your
# statement, inspects `information_schema`, then copies every review into the table and compares
# the texts read back with the originals.

# %% nbgrader={"grade": false, "grade_id": "ex03-3-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
review_archive_ddl = """
CREATE TABLE review_archive (
    archive_id   BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    review_id    INT NOT NULL UNIQUE,
    body         TEXT NULL,
    archived_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03-3-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.review_archive(review_archive_ddl, course)
### BEGIN HIDDEN TESTS
check.review_archive(review_archive_ddl, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. CRUD and `lastrowid`
#
# Create, read, update, delete: four statements, always with placeholders. Two attributes of the
# cursor tell you what happened:
#
# * `cursor.lastrowid`: the `AUTO_INCREMENT` value generated by the last `INSERT` **on this
#   connection** (SQL's `LAST_INSERT_ID()`). It is per connection, so two programs inserting at the
#   same moment each get their own id. Never use `SELECT MAX(order_id)` for that: another program
#   may have inserted in between.
# * `cursor.rowcount` (also what PyMySQL's `execute` returns): how many rows the statement affected.
#
# **Create** an order and its items:

# %%
with py_conn.cursor() as cur:
    cur.execute("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)", (18, "Gift wrap, please 🎁"))
    order_id = cur.lastrowid
    print("new order id:", order_id)

    cur.execute("SELECT product_id, price FROM products WHERE product_id IN (%s, %s)", (1, 3))
    prices = dict(cur.fetchall())
    cur.executemany(
        "INSERT INTO web_order_items (order_id, product_id, quantity, unit_price) VALUES (%s, %s, %s, %s)",
        [(order_id, 1, 2, prices[1]), (order_id, 3, 1, prices[3])],
    )
    print("items inserted:", cur.rowcount)
py_conn.commit()

# %% [markdown]
# **Read** it back, joined with the product names:

# %%
with py_conn.cursor(DictCursor) as cur:
    cur.execute("""
        SELECT o.order_id, o.status, o.note, i.product_id, p.name, i.quantity, i.unit_price
        FROM web_orders o
        JOIN web_order_items i ON i.order_id = o.order_id
        JOIN products p ON p.product_id = i.product_id
        WHERE o.order_id = %s
        ORDER BY i.product_id""", (order_id,))
    for row in cur.fetchall():
        print(row)
py_conn.rollback()

# %% [markdown]
# **Update** and **delete**. Watch the row counts:

# %%
with py_conn.cursor() as cur:
    print("UPDATE to 'paid':       ", cur.execute("UPDATE web_orders SET status = %s WHERE order_id = %s", ("paid", order_id)))
    print("the same UPDATE again:  ", cur.execute("UPDATE web_orders SET status = %s WHERE order_id = %s", ("paid", order_id)))
    print("DELETE one item:        ", cur.execute("DELETE FROM web_order_items WHERE order_id = %s AND product_id = %s",
                                                  (order_id, 3)))
py_conn.commit()

# %% [markdown]
# The second `UPDATE` reports **0**: MySQL counts rows **changed**, not rows **matched** (the status
# was already `'paid'`). PostgreSQL and SQLite report 1 here. To get matched rows from MySQL, connect
# with `client_flag=pymysql.constants.CLIENT.FOUND_ROWS` (SQLAlchemy does this for you).
#
# `executemany` with a plain `INSERT ... VALUES` is sent by PyMySQL (and mysql-connector) as **one**
# multi-row `INSERT`, much faster than a loop. `lastrowid` then holds the **first** id of the batch.
# And ids are never handed out twice, even when the insert is rolled back:

# %%
with py_conn.cursor() as cur:
    cur.executemany("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)",
                    [(30, "batch a"), (30, "batch b"), (30, "batch c")])
    print("lastrowid after a 3-row INSERT:", cur.lastrowid)
    cur.execute("SELECT order_id, note FROM web_orders WHERE note LIKE %s ORDER BY order_id", ("batch%",))
    print("the batch:", cur.fetchall())
py_conn.rollback()

with py_conn.cursor() as cur:
    cur.execute("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)", (30, "after a rollback"))
    print("next id after rolling the batch back:", cur.lastrowid)
py_conn.commit()

# %% [markdown]
# Ids 2 to 4 are gone for good: `AUTO_INCREMENT` guarantees unique ids, not gap-free ones. Never
# give gaps a meaning (such as "an invoice number is missing").
#
# ### Exercise 03.4 · An order and its items, with `lastrowid` (practice)
#
# Write `place_order(conn, user_id, items)`, where `conn` is a PyMySQL connection and `items` a
# list of `(product_id, quantity)` pairs. It inserts one row into `web_orders` for the user, then
# one row per item into `web_order_items` with `unit_price` set to the product's **current** price
# (read it from `products`, or use `INSERT ... SELECT`), **commits**, and returns the new
# `order_id` (an `int`, from `lastrowid`). The check calls your function and then looks at the
# tables through a **new** connection, which sees only committed rows; it deletes its orders
# afterwards.

# %% nbgrader={"grade": false, "grade_id": "ex03-4-answer", "locked": false, "schema_version": 3, "solution": true}
def place_order(conn, user_id, items):
    ### BEGIN SOLUTION
    with conn.cursor() as cur:
        cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
        order_id = cur.lastrowid
        for product_id, quantity in items:
            cur.execute(
                "INSERT INTO web_order_items (order_id, product_id, quantity, unit_price) "
                "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s",
                (order_id, quantity, product_id),
            )
    conn.commit()
    return order_id
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03-4-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.place_order(place_order, course)
### BEGIN HIDDEN TESTS
check.place_order(place_order, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Autocommit and transactions
#
# The MySQL server's own default is `autocommit=1`: every statement is its own transaction. The
# Python drivers turn that **off** when they connect, as the DB-API asks: your first statement then
# opens a transaction that lasts until you call `commit()` or `rollback()`. Until then, other
# connections do not see your changes, and closing the connection throws them away.
#
# | | PyMySQL | mysql-connector | psycopg 3 | sqlite3 (Python 3.11) |
# |---|---|---|---|---|
# | autocommit by default | off | off | off | off-ish: an implicit `BEGIN` before `INSERT`/`UPDATE`/`DELETE` |
# | turn it on | `autocommit=True` | `autocommit=True` | `autocommit=True` | `isolation_level=None` |
# | `with connect(...) as conn:` at the end | **closes** (no commit) | **closes** (no commit) | commits (rolls back on an exception), closes | commits or rolls back, does **not** close |
#
# The last row is a classic trap: with PyMySQL, `with pymysql.connect(...) as conn:` does **not**
# commit. Call `conn.commit()` yourself.
#
# First, uncommitted work is invisible to others and lost when the connection closes:

# %%
def count_notes(conn, note):
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM web_orders WHERE note = %s", (note,))
        return cur.fetchone()[0]


writer = course.connect_mysql()  # autocommit off, like every PyMySQL connection
observer = course.connect_mysql(autocommit=True)  # each of its SELECTs sees the latest committed data
with writer.cursor() as cur:
    cur.execute("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)", (23, "never committed"))
print("the writer sees its row:    ", count_notes(writer, "never committed"))
print("another connection sees it: ", count_notes(observer, "never committed"))
writer.close()  # closing without commit() = rollback
print("after writer.close():       ", count_notes(observer, "never committed"))

# %% [markdown]
# Second, a subtler trap: with autocommit off, even a `SELECT` opens a transaction, and InnoDB's
# default isolation level, **REPEATABLE READ**, gives that transaction a snapshot taken at its first
# read. A long-lived connection that only reads keeps seeing old data until it commits:

# %%
reader = course.connect_mysql()
writer = course.connect_mysql()
print("reader, before:                      ", count_notes(reader, "committed"))
with writer.cursor() as cur:
    cur.execute("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)", (23, "committed"))
writer.commit()
print("reader, after the writer committed:  ", count_notes(reader, "committed"), " (its snapshot is older)")
reader.commit()  # ends the reader's transaction: the next SELECT takes a fresh snapshot
print("reader, after its own commit():      ", count_notes(reader, "committed"))
for conn in (reader, writer, observer):
    conn.close()

# %% [markdown]
# PostgreSQL's default, READ COMMITTED, would have shown the new row at the second read. In MySQL,
# end read-only transactions too (`commit()`), or use `autocommit=True` for connections that only
# read.
#
# ### An order with its items, all or nothing
#
# The pattern for a transaction with a DB-API driver: do the work, `commit()` once at the end; if
# anything raises, `rollback()` and re-raise.
#
# ```mermaid
# flowchart LR
#     start([place order]) --> o[INSERT web_orders] --> i[INSERT each item]
#     i -- all succeeded --> c[commit: order and items visible together]
#     o -- error --> r[rollback: nothing was written]
#     i -- error --> r
#     r --> e([re-raise the error])
# ```

# %%
def place_order_atomic(conn, user_id, items, note=None):
    """The order and every item, or none of them."""
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)", (user_id, note))
            order_id = cur.lastrowid
            cur.executemany(
                "INSERT INTO web_order_items (order_id, product_id, quantity, unit_price) "
                "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s",
                [(order_id, quantity, product_id) for product_id, quantity in items],
            )
        conn.commit()
        return order_id
    except Exception:
        conn.rollback()
        raise


place_order_atomic(py_conn, 23, [(1, 1), (2, 3)], note="atomic: fine")
try:
    place_order_atomic(py_conn, 23, [(1, 1), (2, 0)], note="atomic: bad item")  # quantity 0 breaks CHECK (quantity > 0)
except pymysql.err.MySQLError as exc:  # MariaDB reports error 4025, MySQL 3819
    print("refused by the CHECK constraint:", exc.args[0] in (3819, 4025))
print("orders 'atomic: fine':    ", count_notes(py_conn, "atomic: fine"))
print("orders 'atomic: bad item':", count_notes(py_conn, "atomic: bad item"), "(its first item was rolled back too)")
py_conn.rollback()

# %% [markdown]
# (PyMySQL also has `conn.begin()` to start a transaction explicitly, and mysql-connector has
# `conn.start_transaction(isolation_level=...)`; with autocommit off you rarely need them.)
#
# Two differences from PostgreSQL matter when you write transactions for MySQL.
#
# **DDL commits.** `CREATE`, `ALTER`, `DROP` end the current transaction with an implicit commit;
# in PostgreSQL they are transactional like everything else:

# %%
with py_conn.cursor() as cur:
    cur.execute("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)", (23, "before DDL"))
    cur.execute("CREATE TABLE IF NOT EXISTS ddl_demo (id INT PRIMARY KEY)")  # commits the INSERT first
py_conn.rollback()
print("MySQL: the INSERT survived the rollback:", count_notes(py_conn, "before DDL") == 1)
py_conn.rollback()  # end the read transaction

with course.connect_postgres() as pg_demo:
    pg_demo.execute("CREATE TABLE ddl_notes (note text)")
    pg_demo.execute("INSERT INTO ddl_notes VALUES ('before DDL')")
    pg_demo.execute("CREATE TABLE ddl_demo (id int PRIMARY KEY)")
    pg_demo.rollback()
    undone = pg_demo.execute("SELECT to_regclass('ddl_notes') IS NULL AND to_regclass('ddl_demo') IS NULL").fetchone()[0]
    print("PostgreSQL: the rollback undid both tables and the INSERT:", undone)

# %% [markdown]
# **An error does not end a MySQL transaction.** MySQL undoes only the failed statement; what came
# before is still pending and would be committed by the next `commit()`. PostgreSQL marks the whole
# transaction as failed and refuses every further statement until you roll back:

# %%
import psycopg

with py_conn.cursor() as cur:
    cur.execute("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)", (23, "survives an error"))
    try:
        cur.execute("INSERT INTO web_orders (user_id, note) VALUES (%s, %s)", (-1, "no such user"))  # breaks the FK
    except pymysql.err.IntegrityError as exc:
        print("MySQL: error", exc.args[0], "(foreign key); the transaction goes on")
    print("MySQL: the first INSERT is still pending:", count_notes(py_conn, "survives an error"))
py_conn.rollback()

with course.connect_postgres() as pg_demo:
    pg_demo.execute("CREATE TABLE notes (note text NOT NULL)")
    pg_demo.execute("INSERT INTO notes VALUES ('survives an error')")
    try:
        pg_demo.execute("INSERT INTO notes VALUES (NULL)")
    except psycopg.errors.NotNullViolation as exc:
        print("PostgreSQL: error", exc.sqlstate, "(not null)")
    try:
        pg_demo.execute("SELECT count(*) FROM notes")
    except psycopg.errors.InFailedSqlTransaction as exc:
        print("PostgreSQL:", str(exc).splitlines()[0])
    pg_demo.rollback()

# %% [markdown]
# So in MySQL code, a caught exception followed by `commit()` silently commits half of the work.
# Roll back in the `except` branch, as `place_order_atomic` does.
#
# ### Exercise 03.5 · Find and fix: the half-written order (find and fix)
#
# A colleague wrote this to place an order and take the items out of stock. In production it leaves
# orders with missing items, and stock that was taken for orders that never completed.
#
# ```python
# def place_order_with_stock(conn, user_id, items):
#     with conn.cursor() as cur:
#         cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
#         order_id = cur.lastrowid
#         conn.commit()
#         for product_id, quantity in items:
#             try:
#                 cur.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s",
#                             (quantity, product_id))
#                 cur.execute(
#                     "INSERT INTO web_order_items (order_id, product_id, quantity, unit_price) "
#                     "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s",
#                     (order_id, quantity, product_id),
#                 )
#                 conn.commit()
#             except pymysql.err.MySQLError as exc:
#                 print("skipped an item:", exc)
#     return order_id
# ```
#
# Fix it (keep the name and arguments). It must be **all or nothing**: either the order, all its
# items and all the stock changes are committed and the function returns the new `order_id`, or
# nothing at all is changed and the function **raises** an exception (any kind). `products` has
# `CHECK (stock >= 0)`, so selling more than the stock fails in the database. Look closely at an
# item whose `product_id` does not exist: what do the `UPDATE` and the `INSERT ... SELECT` do then?
#
# The check places a good order, then orders that must fail (a sold-out product, and in the hidden
# test an unknown product and an absurd quantity), and looks through a new connection. It restores
# the stock and deletes its orders afterwards.

# %% nbgrader={"grade": false, "grade_id": "ex03-5-answer", "locked": false, "schema_version": 3, "solution": true}
def place_order_with_stock(conn, user_id, items):
    ### BEGIN SOLUTION
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO web_orders (user_id) VALUES (%s)", (user_id,))
            order_id = cur.lastrowid
            for product_id, quantity in items:
                # CHECK (stock >= 0) makes this UPDATE fail when the stock is too low
                cur.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", (quantity, product_id))
                if cur.rowcount != 1:  # no error for an unknown product: just 0 rows
                    raise ValueError(f"there is no product {product_id}")
                cur.execute(
                    "INSERT INTO web_order_items (order_id, product_id, quantity, unit_price) "
                    "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s",
                    (order_id, quantity, product_id),
                )
        conn.commit()  # once, at the end
        return order_id
    except Exception:
        conn.rollback()  # the order, the items and the stock changes, all undone
        raise
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03-5-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.place_order_with_stock(place_order_with_stock, course)
### BEGIN HIDDEN TESTS
check.place_order_with_stock(place_order_with_stock, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. MySQL, PostgreSQL and SQLite side by side
#
# SQL is a standard, but each database speaks its own dialect, and each Python driver has its own
# habits. What changes when you move code between the three:
#
# | | MySQL / MariaDB (PyMySQL) | PostgreSQL (psycopg 3) | SQLite (sqlite3) |
# |---|---|---|---|
# | placeholders | `%s`, `%(name)s` | `%s`, `%(name)s` | `?`, `:name` |
# | upsert | `ON DUPLICATE KEY UPDATE` | `ON CONFLICT (...) DO UPDATE` | `ON CONFLICT (...) DO UPDATE` |
# | generated key | `AUTO_INCREMENT` | `GENERATED ... AS IDENTITY` (`serial` before) | `INTEGER PRIMARY KEY` (the rowid) |
# | the new id | `lastrowid` (MariaDB 10.5+: also `RETURNING`) | `RETURNING` | `lastrowid` or `RETURNING` |
# | `'abc' = 'ABC'` | true (`_ci` collations) | false | false |
# | query plan | `EXPLAIN`, `EXPLAIN FORMAT=JSON` | `EXPLAIN` | `EXPLAIN QUERY PLAN` |
#
# Each subsection runs the same task on all three. The connections:

# %%
import sqlite3

pg = course.connect_postgres()  # psycopg 3, this notebook's PostgreSQL database
lite = sqlite3.connect(course.path("compare.db"))  # a file in this notebook's folder
my = py_conn  # PyMySQL
servers = {"MySQL": my, "PostgreSQL": pg, "SQLite": lite}
placeholder = {"MySQL": "%s", "PostgreSQL": "%s", "SQLite": "?"}


def run(conn, sql, params=None):
    """One statement on any of the three connections: the rows of a SELECT, else the row count."""
    cur = conn.cursor()
    try:
        cur.execute(sql) if params is None else cur.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()] if cur.description else cur.rowcount
    finally:
        cur.close()


def end_reads():
    """End the transactions that reads opened on the three connections (a SELECT opens one too)."""
    for conn in servers.values():
        conn.rollback()


print({"pymysql": pymysql.paramstyle, "mysql.connector": mysql.connector.paramstyle,
       "psycopg": psycopg.paramstyle, "sqlite3": sqlite3.paramstyle})

# %% [markdown]
# ### 7.1 Placeholders
#
# The DB-API lets each driver choose its **paramstyle**. PyMySQL, mysql-connector and psycopg use
# `pyformat` (`%s`, or `%(name)s` with a dict); sqlite3 uses `qmark` (`?`, or `:name` with a dict).
# The SQL text is otherwise the same. Copying the users' e-mails into an `accounts` table on all
# three servers shows both styles (the table serves again in section 7.4):

# %%
account_rows = run(my, "SELECT user_id, email, UPPER(country) FROM users ORDER BY user_id")
for name, conn in servers.items():
    p = placeholder[name]
    run(conn, "DROP TABLE IF EXISTS accounts")
    run(conn, "CREATE TABLE accounts (user_id INT PRIMARY KEY, email VARCHAR(120) NOT NULL UNIQUE, "
              "country VARCHAR(2) NOT NULL)")
    cur = conn.cursor()
    cur.executemany(f"INSERT INTO accounts (user_id, email, country) VALUES ({p}, {p}, {p})", account_rows)
    cur.close()
    conn.commit()

named = {
    "MySQL": "SELECT COUNT(*) FROM accounts WHERE country = %(country)s AND user_id <= %(max_id)s",
    "PostgreSQL": "SELECT COUNT(*) FROM accounts WHERE country = %(country)s AND user_id <= %(max_id)s",
    "SQLite": "SELECT COUNT(*) FROM accounts WHERE country = :country AND user_id <= :max_id",
}
for name, conn in servers.items():
    print(f"{name:<10} {len(account_rows)} rows copied; Dutch users among the first 1000:",
          run(conn, named[name], {"country": "NL", "max_id": 1000})[0][0])
end_reads()

# %% [markdown]
# How the value travels differs. **psycopg 3** sends the SQL and the values separately (the server
# binds them), and so does **sqlite3** inside the library. **PyMySQL** and mysql-connector (without
# `prepared=True`) quote and escape each value **in Python** and send one finished SQL string. That
# is safe, since the driver escapes properly, and `mogrify` shows you the string it would send:

# %%
with my.cursor() as cur:
    print(cur.mogrify("SELECT user_id FROM users WHERE full_name = %s AND email LIKE %s",
                      ("Fatima O'Brien", "%@example.com")))

# %% [markdown]
# One consequence of `pyformat`: when you pass parameters, a literal `%` in the SQL text must be
# written `%%`, otherwise the driver takes it for the start of a placeholder. Better: pass the
# pattern as a parameter, as above.

# %%
for sql in ["SELECT COUNT(*) FROM accounts WHERE email LIKE 'zoe%' AND country = %s",
            "SELECT COUNT(*) FROM accounts WHERE email LIKE 'zoe%%' AND country = %s"]:
    try:
        print(run(my, sql, ("DE",)), "<-", sql)
    except (TypeError, ValueError) as exc:
        print(f"{type(exc).__name__}: {exc}  <- {sql}")
end_reads()

# %% [markdown]
# ### 7.2 Upserts
#
# "Insert this row, or update it if the key exists" is an **upsert**. The three dialects:
#
# * MySQL: `INSERT ... ON DUPLICATE KEY UPDATE col = ...`. Inside the update, `VALUES(col)` means
#   "the value this INSERT tried to put in `col`". MySQL 8.0.20 deprecated `VALUES()` in favour of a
#   row alias, `INSERT ... VALUES (...) AS new ON DUPLICATE KEY UPDATE col = new.col` (8.0.19+);
#   **MariaDB does not have the alias**, and keeps `VALUES()`.
# * PostgreSQL and SQLite (3.24+): `INSERT ... ON CONFLICT (key) DO UPDATE SET col = ...`, where
#   `EXCLUDED.col` is the value that was refused.

# %%
for name, conn in servers.items():
    run(conn, "DROP TABLE IF EXISTS inventory")
    run(conn, "CREATE TABLE inventory (sku VARCHAR(20) PRIMARY KEY, qty INT NOT NULL)")
    conn.commit()

upsert_sql = {
    "MySQL": "INSERT INTO inventory (sku, qty) VALUES (%s, %s) "
             "ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty)",
    "PostgreSQL": "INSERT INTO inventory (sku, qty) VALUES (%s, %s) "
                  "ON CONFLICT (sku) DO UPDATE SET qty = inventory.qty + EXCLUDED.qty",
    "SQLite": "INSERT INTO inventory (sku, qty) VALUES (?, ?) "
              "ON CONFLICT (sku) DO UPDATE SET qty = qty + excluded.qty",
}
deliveries = [("SKU-1", 5), ("SKU-2", 3), ("SKU-1", 2)]
for name, conn in servers.items():
    counts = [run(conn, upsert_sql[name], delivery) for delivery in deliveries]
    conn.commit()
    print(f"{name:<10} row counts {counts} -> {run(conn, 'SELECT sku, qty FROM inventory ORDER BY sku')}")
end_reads()

# %% [markdown]
# Same final table everywhere. MySQL's row count tells you what happened: **1** for an insert,
# **2** for an update, 0 when the update changed nothing. The MySQL 8 row alias (what it prints
# depends on the flavour, so the next cell's output is not compared), then a form that works on
# both MySQL flavours (the named parameter used twice):

# %% tags=["nbval-ignore-output"]
alias_form = ("INSERT INTO inventory (sku, qty) VALUES (%s, %s) AS new "
              "ON DUPLICATE KEY UPDATE qty = inventory.qty + new.qty")
try:
    run(my, alias_form, ("SKU-2", 1))
    alias_works = True
    print(f"{FLAVOUR}: the row alias works")
except pymysql.err.ProgrammingError as exc:
    alias_works = False
    print(f"{FLAVOUR}: the row alias is a syntax error ({exc.args[0]})")
my.rollback()

# %%
print("the row alias works exactly when the server is MySQL 8:", alias_works == (not MARIADB))

both_flavours = ("INSERT INTO inventory (sku, qty) VALUES (%(sku)s, %(qty)s) "
                 "ON DUPLICATE KEY UPDATE qty = qty + %(qty)s")
run(my, both_flavours, {"sku": "SKU-2", "qty": 1})
print("with the parameter twice:", run(my, "SELECT sku, qty FROM inventory ORDER BY sku"))
my.rollback()

# %% [markdown]
# Know the relatives too:
#
# * `ON DUPLICATE KEY UPDATE` fires on a clash with **any** unique key of the table, not one you
#   name. With two unique keys it may update a row you did not expect; `ON CONFLICT (sku)` names
#   its target.
# * `REPLACE INTO` **deletes** the old row and inserts a new one: columns you did not give fall
#   back to defaults, `ON DELETE CASCADE` children disappear, and a new `AUTO_INCREMENT` id is used.
# * `INSERT IGNORE` turns errors (duplicates, but also bad values) into warnings. Prefer
#   `ON CONFLICT DO NOTHING` in PostgreSQL and SQLite, and in MySQL an explicit
#   `ON DUPLICATE KEY UPDATE sku = sku`.
#
# ### Exercise 03.6 · One upsert, two dialects (practice)
#
# A table `stock_levels (sku PRIMARY KEY, qty, deliveries)` records deliveries. Write two
# statements, `upsert_mysql_sql` for MySQL/MariaDB and `upsert_postgres_sql` for PostgreSQL, that
# record one delivery given the named parameters `%(sku)s` and `%(qty)s`:
#
# * a new `sku` gets a row with `qty` and `deliveries = 1`;
# * a known `sku` gets `qty` **added** to its `qty`, and its `deliveries` increased by 1.
#
# The MySQL statement must run on this course's server; on MariaDB that means no `AS new` alias
# (`VALUES(qty)` works on both flavours). The check creates `stock_levels` in
# both servers and runs a series of deliveries through each statement.

# %% nbgrader={"grade": false, "grade_id": "ex03-6-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
upsert_mysql_sql = """
INSERT INTO stock_levels (sku, qty, deliveries) VALUES (%(sku)s, %(qty)s, 1)
ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty), deliveries = deliveries + 1
"""
upsert_postgres_sql = """
INSERT INTO stock_levels (sku, qty, deliveries) VALUES (%(sku)s, %(qty)s, 1)
ON CONFLICT (sku) DO UPDATE
SET qty = stock_levels.qty + EXCLUDED.qty, deliveries = stock_levels.deliveries + 1
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03-6-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.upsert(upsert_mysql_sql, upsert_postgres_sql, course)
### BEGIN HIDDEN TESTS
check.upsert(upsert_mysql_sql, upsert_postgres_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### 7.3 Identity columns and the new id
#
# All three can generate keys; they differ in how, and in how you learn the value:
#
# * **MySQL**: `AUTO_INCREMENT`, one per table, on an indexed integer column; `cursor.lastrowid`.
#   You may also insert an explicit id; the counter then jumps past it. MariaDB 10.5+ also has
#   `INSERT ... RETURNING`; MySQL 8 does not.
# * **PostgreSQL**: `GENERATED ALWAYS AS IDENTITY` (standard SQL, since PostgreSQL 10) or the older
#   `serial`; both draw from a sequence. psycopg has no `lastrowid`: ask with `RETURNING`.
# * **SQLite**: a column declared exactly `INTEGER PRIMARY KEY` *is* the table's rowid; a new row
#   gets the largest rowid + 1. `cursor.lastrowid` works, and so does `RETURNING` (SQLite 3.35+).
#   The `AUTOINCREMENT` keyword only adds a promise never to reuse the ids of deleted rows.

# %%
labels_ddl = {
    "MySQL": "CREATE TABLE labels (label_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(60) NOT NULL UNIQUE)",
    "PostgreSQL": "CREATE TABLE labels (label_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                  "name varchar(60) NOT NULL UNIQUE)",
    "SQLite": "CREATE TABLE labels (label_id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
}
for name, conn in servers.items():
    run(conn, "DROP TABLE IF EXISTS labels")
    run(conn, labels_ddl[name])
    conn.commit()

with my.cursor() as cur:
    cur.execute("INSERT INTO labels (name) VALUES (%s)", ("sql",))
    print("MySQL      lastrowid:", cur.lastrowid)
    if MARIADB:  # MariaDB 10.5+ has INSERT ... RETURNING
        cur.execute("INSERT INTO labels (name) VALUES (%s) RETURNING label_id", ("python",))
        second = cur.fetchone()[0]
    else:  # MySQL 8 has no INSERT ... RETURNING: lastrowid is the way
        cur.execute("INSERT INTO labels (name) VALUES (%s)", ("python",))
        second = cur.lastrowid
    print("MySQL      second id (MariaDB: RETURNING, MySQL 8: lastrowid):", second)
my.commit()

with pg.cursor() as cur:
    cur.execute("INSERT INTO labels (name) VALUES (%s) RETURNING label_id", ("sql",))
    print("PostgreSQL RETURNING:", cur.fetchone()[0], "| psycopg cursors have a lastrowid:", hasattr(cur, "lastrowid"))
pg.commit()

cur = lite.cursor()
cur.execute("INSERT INTO labels (name) VALUES (?)", ("sql",))
print("SQLite     lastrowid:", cur.lastrowid)
cur.execute("INSERT INTO labels (name) VALUES (?) RETURNING label_id", ("python",))
print("SQLite     RETURNING:", cur.fetchone()[0])
cur.close()
lite.commit()

# %% [markdown]
# And an explicit id, which only PostgreSQL's `GENERATED ALWAYS` refuses (it protects the sequence
# from collisions; `OVERRIDING SYSTEM VALUE` would force it):

# %%
with my.cursor() as cur:
    cur.execute("INSERT INTO labels (label_id, name) VALUES (%s, %s)", (100, "explicit"))
    cur.execute("INSERT INTO labels (name) VALUES (%s)", ("next",))
    print("MySQL: after an explicit id 100, the next generated id is", cur.lastrowid)
my.rollback()

try:
    pg.execute("INSERT INTO labels (label_id, name) VALUES (%s, %s)", (100, "explicit"))
except psycopg.errors.GeneratedAlways as exc:
    print("PostgreSQL:", exc.diag.message_primary)
pg.rollback()

# %% [markdown]
# ### Exercise 03.7 · One function, three drivers (challenge)
#
# Write `add_label(conn, name)` that inserts a label into the `labels` table and returns its new
# `label_id` as an `int`, where `conn` may be a **sqlite3**, a **psycopg** or a **PyMySQL**
# connection. Use the right placeholder for each driver, get the id the way each one allows, and
# commit. (`isinstance(conn, sqlite3.Connection)` and `isinstance(conn, psycopg.Connection)` tell
# them apart.) The check creates its own `labels` table in each server (in the hidden test with ids
# that start elsewhere), calls your function with names such as `O'Reilly`, and compares the id you
# return with the row a new connection finds.

# %% nbgrader={"grade": false, "grade_id": "ex03-7-answer", "locked": false, "schema_version": 3, "solution": true}
def add_label(conn, name):
    ### BEGIN SOLUTION
    if isinstance(conn, sqlite3.Connection):
        new_id = conn.execute("INSERT INTO labels (name) VALUES (?)", (name,)).lastrowid
    elif isinstance(conn, psycopg.Connection):
        new_id = conn.execute("INSERT INTO labels (name) VALUES (%s) RETURNING label_id", (name,)).fetchone()[0]
    else:  # PyMySQL (mysql-connector would work the same way)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO labels (name) VALUES (%s)", (name,))
            new_id = cur.lastrowid
    conn.commit()
    return new_id
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03-7-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.add_label(add_label, course)
### BEGIN HIDDEN TESTS
check.add_label(add_label, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### 7.4 Case, collation and trailing spaces
#
# A **collation** is the rule a database uses to compare and sort text. Every MySQL string column
# has one, and its name says what it ignores:
#
# * `_ci`: case-insensitive (`a` = `A`); `_cs` or `_bin`: case-sensitive;
# * `_ai`: accent-insensitive (`é` = `e`); `utf8mb4_unicode_ci` is accent-insensitive too;
# * **PAD SPACE** collations (all the older ones, `utf8mb4_unicode_ci` included) ignore **trailing**
#   spaces when comparing with `=`; **NO PAD** collations (MySQL 8's `utf8mb4_0900_*`, MariaDB's
#   `*_nopad_*`) do not. **Leading** spaces always count.
#
# This course's MySQL databases use `utf8mb4_unicode_ci`. PostgreSQL compares exactly by default
# (case-insensitive search there means `lower()`, the `citext` type or a nondeterministic ICU
# collation). SQLite compares bytes (`BINARY`) unless a column says `COLLATE NOCASE` (ASCII letters
# only) or `COLLATE RTRIM`.
#
# The shop has e-mails typed with stray spaces and capitals. Look one up four ways:

# %%
stored = run(my, "SELECT email FROM accounts WHERE user_id = %s", (1346,))[0][0]
print("stored:", repr(stored))
variants = {
    "exactly as stored": stored,
    "lower case, same spaces": stored.lower(),
    "lower case, no trailing space": stored.rstrip().lower(),
    "cleaned: lower case, no spaces": stored.strip().lower(),
}
print(f"{'looked up as':<32}" + "".join(f"{name:>12}" for name in servers))
for label, value in variants.items():
    found = [run(conn, f"SELECT COUNT(*) FROM accounts WHERE email = {placeholder[name]}", (value,))[0][0]
             for name, conn in servers.items()]
    print(f"{label:<32}" + "".join(f"{'found' if n else '-':>12}" for n in found))
end_reads()

# %% [markdown]
# MySQL found the row without the capitals and without the trailing space, but not without the
# leading spaces; PostgreSQL and SQLite only found the exact value. The rules on their own, with
# explicit collations (the NO PAD collation is named differently in the two flavours):

# %%
nopad = "utf8mb4_nopad_bin" if MARIADB else "utf8mb4_0900_bin"
modern = "utf8mb4_uca1400_ai_ci" if MARIADB else "utf8mb4_0900_ai_ci"
collations = {  # label printed -> the collation on this server
    "utf8mb4_unicode_ci": "utf8mb4_unicode_ci",
    "utf8mb4_bin": "utf8mb4_bin",
    "NO PAD binary (*)": nopad,
    "modern UCA, ai_ci (**)": modern,
}
comparisons = [
    ("'abc' = 'ABC'", "utf8mb4_unicode_ci"),
    ("'abc' = 'ABC'", "utf8mb4_bin"),
    ("'abc' = 'abc   '", "utf8mb4_unicode_ci"),
    ("'abc' = 'abc   '", "NO PAD binary (*)"),
    ("'abc' = '  abc'", "utf8mb4_unicode_ci"),
    ("'resume' = 'résumé'", "utf8mb4_unicode_ci"),
    ("'👍' = '😍'", "utf8mb4_unicode_ci"),
    ("'👍' = '😍'", "modern UCA, ai_ci (**)"),
]
for expression, label in comparisons:
    left, right = expression.split(" = ")
    value = run(my, f"SELECT {left} = {right} COLLATE {collations[label]}")[0][0]
    print(f"{expression:<22} {label:<24} {bool(value)}")
my.rollback()
print("(*) MariaDB: utf8mb4_nopad_bin, MySQL 8: utf8mb4_0900_bin")
print("(**) MariaDB 10.10+: utf8mb4_uca1400_ai_ci, MySQL 8: utf8mb4_0900_ai_ci")

# %% [markdown]
# The last two lines hold a surprise: `utf8mb4_unicode_ci` implements Unicode 4.0 collation, in
# which every character outside the first 65,536 (every emoji) weighs the same, so `'👍' = '😍'`.
# A `UNIQUE` column of emoji in that collation would refuse the second one. The newer collations
# (MySQL 8's `utf8mb4_0900_ai_ci`, MariaDB 10.10+'s `utf8mb4_uca1400_ai_ci`) tell them apart.
#
# Collations decide what a **unique key** allows, too. An upper-case twin of an existing e-mail:

# %%
twin = run(my, "SELECT email FROM accounts WHERE user_id = %s", (18,))[0][0].upper()
for name, conn in servers.items():
    p = placeholder[name]
    try:
        run(conn, f"INSERT INTO accounts (user_id, email, country) VALUES ({p}, {p}, {p})", (99_999, twin, "NL"))
        print(f"{name:<10} accepted {twin!r} next to its lower-case twin")
    except (pymysql.err.IntegrityError, psycopg.errors.UniqueViolation, sqlite3.IntegrityError):
        print(f"{name:<10} refused {twin!r}: a duplicate")
    conn.rollback()

# %% [markdown]
# And sorting. With a case-insensitive collation `a` and `A` are **equal**, so `ORDER BY` may return
# them in either order: add a tie-breaker (here the binary collation) when order matters.
# PostgreSQL's default order comes from the locale the database was created with:

# %%
print("this PostgreSQL database's collation:",
      pg.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()").fetchone()[0])
for name, conn in servers.items():
    p = placeholder[name]
    run(conn, "DROP TABLE IF EXISTS words")
    run(conn, "CREATE TABLE words (w VARCHAR(10) NOT NULL)")
    cur = conn.cursor()
    cur.executemany(f"INSERT INTO words (w) VALUES ({p})", [(w,) for w in ["b", "B", "a", "A", "é", "e"]])
    cur.close()
    conn.commit()

orderings = {
    "MySQL, utf8mb4_unicode_ci": (my, "SELECT w FROM words ORDER BY w, w COLLATE utf8mb4_bin"),
    'PostgreSQL, COLLATE "C"': (pg, 'SELECT w FROM words ORDER BY w COLLATE "C"'),
    'PostgreSQL, COLLATE "und-x-icu"': (pg, 'SELECT w FROM words ORDER BY w COLLATE "und-x-icu"'),
    "SQLite, BINARY": (lite, "SELECT w FROM words ORDER BY w"),
    "SQLite, NOCASE": (lite, "SELECT w FROM words ORDER BY w COLLATE NOCASE, w"),
}
for label, (conn, sql) in orderings.items():
    print(f"{label:<32}", " ".join(row[0] for row in run(conn, sql)))
end_reads()

# %% [markdown]
# Byte order (`C`, `BINARY`) puts every capital before every small letter and `é` after `z`;
# linguistic orders (MySQL's collation, ICU) keep `a A` and `e é` together.
#
# ### Exercise 03.8 · Predict: case, spaces and accents (warm-up)
#
# Each server has a one-row table holding the e-mail `alice@example.com` in a column with the
# server's default rules (MySQL: `utf8mb4_unicode_ci`; PostgreSQL: `varchar` with the database's
# collation printed above; SQLite: `TEXT`). For each condition below, predict whether
# `SELECT ... WHERE <condition>` finds the row on each server.
#
# | key | condition |
# |---|---|
# | A | `email = 'ALICE@example.com'` |
# | B | `email = 'alice@example.com   '` (trailing spaces) |
# | C | `email = '  alice@example.com'` (leading spaces) |
# | D | `email LIKE 'ALICE%'` |
# | E | `email = 'alicé@example.com'` |
# | F | `email < 'Bob@example.com'` |
#
# Set `predictions` to a dict: key → `{"mysql": bool, "postgres": bool, "sqlite": bool}`. The
# check runs every condition on every server and compares; the hidden test runs the same six kinds
# of condition on other stored e-mails, so predict from the rules, not from the one string. (One
# hint: SQLite's `LIKE` has a rule of its own.)

# %% nbgrader={"grade": false, "grade_id": "ex03-8-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
predictions = {
    "A": {"mysql": True, "postgres": False, "sqlite": False},  # _ci ignores case
    "B": {"mysql": True, "postgres": False, "sqlite": False},  # PAD SPACE ignores trailing spaces
    "C": {"mysql": False, "postgres": False, "sqlite": False},  # leading spaces always count
    "D": {"mysql": True, "postgres": False, "sqlite": True},  # SQLite's LIKE ignores ASCII case
    "E": {"mysql": True, "postgres": False, "sqlite": False},  # utf8mb4_unicode_ci ignores accents
    "F": {"mysql": True, "postgres": False, "sqlite": False},  # byte order: 'B' < 'a'
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03-8-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.predictions(predictions, course)
### BEGIN HIDDEN TESTS
check.predictions(predictions, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Finding the same person twice
#
# Newsletter sign-ups: some people typed their e-mail twice, once carefully and once with stray
# spaces or capitals. The cell below builds the `signups` table in MySQL and in PostgreSQL with the
# same rows, then runs the query a colleague wrote to find people who signed up twice:

# %%
all_emails = [row[0] for row in run(my, "SELECT email FROM users ORDER BY user_id")]
messy = [e for e in all_emails if e != e.strip()]  # typed with stray spaces (and capitals)
clean = [e for e in all_emails if e == e.strip() and e == e.lower()][::40]  # one clean e-mail in 40
signups = (
    messy  # each typed once with stray spaces and capitals...
    + [e.strip().lower() for e in messy[::2]]  # ...and half of those people again, carefully
    + clean  # people who signed up once, carefully
    + [e.upper() + "  " for e in clean[:3]]  # three of them again, in capitals with trailing spaces
    + [e.capitalize() for e in clean[3:6]]  # three again, with a capital first letter
)
signups_ddl = {
    "MySQL": "CREATE TABLE signups (signup_id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(120) NOT NULL)",
    "PostgreSQL": "CREATE TABLE signups (signup_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                  "email varchar(120) NOT NULL)",
}
for name in signups_ddl:
    conn = servers[name]
    run(conn, "DROP TABLE IF EXISTS signups")
    run(conn, signups_ddl[name])
    cur = conn.cursor()
    cur.executemany("INSERT INTO signups (email) VALUES (%s)", [(e,) for e in signups])
    cur.close()
    conn.commit()

naive_duplicates_sql = "SELECT email, COUNT(*) AS accounts FROM signups GROUP BY email HAVING COUNT(*) > 1"
print("sign-ups:", len(signups), "| people who really signed up twice:", len(messy[::2]) + 6)
for name in signups_ddl:
    print(f"{name:<10} the colleague's query finds {len(run(servers[name], naive_duplicates_sql))}")
end_reads()

# %% [markdown]
# ### Exercise 03.9 · Find and fix: the same person, signed up twice (find and fix)
#
# The colleague's query (`naive_duplicates_sql` above) finds 6 people in MySQL, thanks to the
# collation, but none in PostgreSQL, and both miss the e-mails typed with leading spaces. Fix it:
# write `duplicate_emails_sql`, one query that gives the **right** answer on **both** servers, with
# the columns
#
# * `email`: the normalized e-mail (lower case, no spaces around it);
# * `accounts`: how many sign-ups share it;
#
# one row per normalized e-mail that occurs more than once, in any order. The check runs your query
# on MySQL and PostgreSQL and compares it with the duplicates it computes in Python; the hidden test
# adds more sign-ups first. (Careful with `GROUP BY email`: when an output column and a table column
# share a name, both servers group by the table column.)

# %% nbgrader={"grade": false, "grade_id": "ex03-9-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
duplicate_emails_sql = """
SELECT LOWER(TRIM(email)) AS email, COUNT(*) AS accounts
FROM signups
GROUP BY LOWER(TRIM(email))
HAVING COUNT(*) > 1
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03-9-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.duplicate_emails(duplicate_emails_sql, course)
### BEGIN HIDDEN TESTS
check.duplicate_emails(duplicate_emails_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# A query that cleans values on every read cannot use an index on `email`. The lasting fix is to
# clean on the way **in** (`email.strip().lower()` before the `INSERT`) and to let a unique key
# enforce it: a plain `UNIQUE` in MySQL with a `_ci` collation, a unique index on `lower(email)` or a
# `citext` column in PostgreSQL. MySQL 8.0.13+ can also index an expression
# (`CREATE UNIQUE INDEX ... ((LOWER(TRIM(email))))`); MariaDB indexes a generated column instead.
#
# ### 7.5 EXPLAIN
#
# Each database tells you how it will run a query: which table it reads, whether it uses an index,
# whether it sorts. To compare like with like, copy the shop's events (about 20,000 at the small
# scale) from MySQL into PostgreSQL (with `COPY`) and SQLite:

# %%
events = run(my, "SELECT event_id, user_id, session_id, event_type, occurred_at FROM events ORDER BY event_id")
my.rollback()  # end the read transaction

pg.execute("DROP TABLE IF EXISTS events")
pg.execute("CREATE TABLE events (event_id bigint PRIMARY KEY, user_id int, session_id varchar(16) NOT NULL, "
           "event_type varchar(16) NOT NULL, occurred_at timestamp NOT NULL)")
with pg.cursor() as cur:
    with cur.copy("COPY events (event_id, user_id, session_id, event_type, occurred_at) FROM STDIN") as copy:
        for row in events:
            copy.write_row(row)
pg.execute("ANALYZE events")  # statistics for the planner
pg.commit()

run(lite, "DROP TABLE IF EXISTS events")
run(lite, "CREATE TABLE events (event_id INTEGER PRIMARY KEY, user_id INTEGER, session_id TEXT NOT NULL, "
          "event_type TEXT NOT NULL, occurred_at TEXT NOT NULL)")
lite.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                 [(e, u, s, t, at.isoformat(sep=" ")) for e, u, s, t, at in events])
lite.commit()
print({name: run(conn, "SELECT COUNT(*) FROM events")[0][0] for name, conn in servers.items()})
end_reads()

# %% [markdown]
# The query: the events of one browsing session, in time order. Four ways to ask for its plan:
#
# * MySQL's **tabular `EXPLAIN`**: one row per table read. Read `type` (how rows are found: see the
#   table below), `possible_keys`, `key` (the index chosen) and `Extra` (`Using filesort` = a sort
#   step). The `rows` column is an estimate, so it is left out here.
# * MySQL's **`EXPLAIN FORMAT=JSON`**: the same and more, as a document (the structure differs
#   between MariaDB and MySQL, so the function below searches it for `access_type` and `key`).
# * PostgreSQL's **`EXPLAIN`** (with `COSTS OFF` for a stable text): a tree of plan nodes.
# * SQLite's **`EXPLAIN QUERY PLAN`**: `SCAN` (read everything) or `SEARCH ... USING INDEX`.
#
# The details of a plan differ between server versions (MariaDB and MySQL word `Extra`
# differently, PostgreSQL 15 and 18 may pick different scan nodes), so the cells that print plans
# are not compared; the cell after each one states what they all agree on.

# %%
import json

session = run(my, "SELECT session_id FROM events ORDER BY event_id LIMIT 1")[0][0]
my.rollback()
by_session = "SELECT event_type, occurred_at FROM events WHERE session_id = {p} ORDER BY occurred_at"


def mysql_plan(sql, params):
    with my.cursor(DictCursor) as cur:
        cur.execute("EXPLAIN " + sql, params)
        return [{k: row[k] for k in ("table", "type", "possible_keys", "key", "Extra")} for row in cur.fetchall()]


def mysql_json_plan(sql, params):
    with my.cursor() as cur:
        cur.execute("EXPLAIN FORMAT=JSON " + sql, params)
        document = json.loads(cur.fetchone()[0])
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "table_name" in node and "access_type" in node:
                found.append({k: node.get(k) for k in ("table_name", "access_type", "key")})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def postgres_plan(sql, params):
    return " | ".join(row[0].strip() for row in pg.execute("EXPLAIN (COSTS OFF) " + sql, params))


def sqlite_plan(sql, params):
    return " | ".join(row[-1] for row in lite.execute("EXPLAIN QUERY PLAN " + sql, params))


def session_plans():
    """The plan of the by-session query on each database (and the read transactions ended)."""
    try:
        return {"MySQL": mysql_plan(by_session.format(p="%s"), (session,)),
                "MySQL JSON": mysql_json_plan(by_session.format(p="%s"), (session,)),
                "PostgreSQL": postgres_plan(by_session.format(p="%s"), (session,)),
                "SQLite": sqlite_plan(by_session.format(p="?"), (session,))}
    finally:
        my.rollback()
        pg.rollback()


def show_plans(title):
    print(f"--- {title}")
    for name, shown in session_plans().items():
        print(f"{name:<11}", shown)


# %% tags=["nbval-ignore-output"]
show_plans("no index on session_id")

# %%
plans = session_plans()
print("every database reads the whole table:", plans["MySQL"][0]["type"] == "ALL"
      and "Seq Scan on events" in plans["PostgreSQL"] and "SCAN events" in plans["SQLite"])
print("and then sorts:", "Using filesort" in plans["MySQL"][0]["Extra"]
      and "Sort" in plans["PostgreSQL"] and "TEMP B-TREE FOR ORDER BY" in plans["SQLite"])

# %% [markdown]
# All three read the whole table (`type: ALL`, `Seq Scan`, `SCAN`) and then sort. An index on
# `session_id`, in each (MySQL has no `CREATE INDEX IF NOT EXISTS`, MariaDB does; the `try` keeps
# the cell re-runnable on both):

# %%
try:
    run(my, "CREATE INDEX events_session_idx ON events (session_id)")
except pymysql.err.MySQLError as exc:
    if exc.args[0] != 1061:  # 1061: duplicate key name, i.e. the index exists already
        raise
run(pg, "CREATE INDEX IF NOT EXISTS events_session_idx ON events (session_id)")
pg.commit()
run(lite, "CREATE INDEX IF NOT EXISTS events_session_idx ON events (session_id)")
lite.commit()

# %% tags=["nbval-ignore-output"]
show_plans("with an index on session_id")

# %%
plans = session_plans()
print("every database uses events_session_idx:", plans["MySQL"][0]["key"] == "events_session_idx"
      and "events_session_idx" in plans["PostgreSQL"] and "USING INDEX events_session_idx" in plans["SQLite"])
print("MySQL's access type is ref (the rows of one key value):", plans["MySQL"][0]["type"] == "ref")
print("each still sorts what it found:", "Using filesort" in plans["MySQL"][0]["Extra"]
      and "Sort" in plans["PostgreSQL"] and "TEMP B-TREE FOR ORDER BY" in plans["SQLite"])

# %% [markdown]
# Now MySQL looks the session up in the index (`type: ref`, `key: events_session_idx`),
# PostgreSQL runs an index scan and SQLite a `SEARCH ... USING INDEX`; each still sorts the handful
# of rows it found. The values of MySQL's `type`, from best to worst:
#
# | `type` | meaning |
# |---|---|
# | `const`, `eq_ref` | at most one row, through a primary or unique key |
# | `ref` | the rows with one key value, through an index |
# | `range` | a range of an index (`<`, `BETWEEN`, `IN`, `LIKE 'abc%'`) |
# | `index` | the **whole** index, in index order (cheaper than the table, still everything) |
# | `ALL` | the whole table |
#
# To see what really happened (actual rows and times), run the query under the analyzer:
# `EXPLAIN ANALYZE` in MySQL 8.0.18+ and PostgreSQL, `ANALYZE SELECT ...` (or
# `ANALYZE FORMAT=JSON`) in MariaDB. Timings vary from run to run, so this cell's output is not
# compared:

# %% tags=["nbval-ignore-output"]
with my.cursor(DictCursor) as cur:
    if MARIADB:
        cur.execute("ANALYZE " + by_session.format(p="%s"), (session,))
        print({k: v for k, v in cur.fetchone().items() if k in ("table", "type", "key", "rows", "r_rows", "Extra")})
    else:
        cur.execute("EXPLAIN ANALYZE " + by_session.format(p="%s"), (session,))
        print(cur.fetchone()["EXPLAIN"])
print(" | ".join(row[0].strip() for row in pg.execute("EXPLAIN ANALYZE " + by_session.format(p="%s"), (session,))))
my.rollback()
pg.rollback()

# %% [markdown]
# ### Exercise 03.10 · Find and fix: a slow query (challenge)
#
# The shop's dashboard lists the purchases of a given day with this query, and it gets slower
# every day:

# %% tags=["nbval-ignore-output"]
import datetime as dt

slow_purchases_sql = """
SELECT event_id, user_id, product_id, occurred_at
FROM events
WHERE event_type = 'purchase' AND DATE(occurred_at) = %(day)s
ORDER BY event_id
"""
slow_plan = mysql_plan(slow_purchases_sql, {"day": dt.date(2026, 6, 26)})[0]
print(slow_plan)
my.rollback()  # end this connection's read transaction (see the note below)

# %%
print("purchases on 2026-06-26:", len(run(my, slow_purchases_sql, {"day": dt.date(2026, 6, 26)})))
my.rollback()
print("MySQL reads every event, through no index of its own:",
      slow_plan["type"] in ("ALL", "index") and slow_plan["key"] in (None, "PRIMARY"))

# %% [markdown]
# On MariaDB the plan says `type: index` with `key: PRIMARY`: it walks the **whole** primary key
# (that gives it the `ORDER BY event_id` for free) and tests every event. (MySQL 8 may report the
# same walk as `type: ALL`: an InnoDB table is stored in primary-key order. The wording depends on
# the flavour, so the plan cell above is not compared.) There is no index that helps, and even with
# one, `DATE(occurred_at)` hides the column inside a function, which an index on `occurred_at`
# cannot look up.
#
# One more MySQL trap before you start. `my` has autocommit off, so the `SELECT`s above opened a
# transaction, and a transaction that has read a table holds a **metadata lock** on it until it
# ends. `CREATE INDEX` (like any `ALTER TABLE`) on that table from another connection then waits,
# by default for a very long time (`lock_wait_timeout`: 31536000 s, a year, on MySQL; 86400 s, a
# day, on MariaDB since 10.2.4), showing `Waiting for table metadata lock` in `SHOW PROCESSLIST`.
# That is why these cells end with `my.rollback()`. On a production server, an idle connection in
# an open transaction can block a migration this way, and every query queued behind it.
#
# Fix it with two answers:
#
# * `purchases_index_sql`: one `CREATE INDEX` statement on `events`;
# * `purchases_sql`: the same query, returning the same rows (`event_id, user_id, product_id,
#   occurred_at`, ordered by `event_id`), with the named parameter `%(day)s` (a `datetime.date`),
#   written so that MySQL can use your index for **both** conditions.
#
# The check creates your index (replacing an index of the same name left by an earlier run) and
# runs `EXPLAIN` on your query: `key` must be **your** index (an index left over from an earlier
# attempt does not count, unless it starts with the same columns as yours) and `type` must be
# `range`. Then it compares the rows with the slow query's, for several days in the hidden test.

# %% nbgrader={"grade": false, "grade_id": "ex03-10-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
purchases_index_sql = "CREATE INDEX events_type_time_idx ON events (event_type, occurred_at)"
purchases_sql = """
SELECT event_id, user_id, product_id, occurred_at
FROM events
WHERE event_type = 'purchase'
  AND occurred_at >= %(day)s AND occurred_at < %(day)s + INTERVAL 1 DAY
ORDER BY event_id
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex03-10-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.purchases(purchases_index_sql, purchases_sql, course)
### BEGIN HIDDEN TESTS
check.purchases(purchases_index_sql, purchases_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 8. MariaDB and MySQL: what is compatible
#
# MariaDB began in 2009 as a fork of MySQL 5.1 by MySQL's original author, after Oracle bought
# MySQL. Until 5.5 it was a drop-in replacement; since MariaDB 10.0 (against MySQL 5.6 and later)
# the two have grown apart. For the code of this chapter:
#
# **The same**: the client/server protocol (PyMySQL, mysql-connector and SQLAlchemy's `mysql`
# dialects talk to both), the bulk of the SQL, InnoDB, `utf8mb4`, `AUTO_INCREMENT` and `lastrowid`,
# `ON DUPLICATE KEY UPDATE ... VALUES()`, `information_schema`, tabular `EXPLAIN`, strict mode.
#
# **Different**, for what this chapter shows:
#
# | | MariaDB | MySQL 8 |
# |---|---|---|
# | default collation of utf8mb4 | `utf8mb4_general_ci` (PAD SPACE); `utf8mb4_uca1400_ai_ci` from 11.5 | `utf8mb4_0900_ai_ci` (**NO PAD**: `'a' = 'a '` is false) |
# | `INSERT ... RETURNING` | yes, since 10.5 (also `DELETE ... RETURNING`) | no: use `lastrowid` |
# | upsert row alias `AS new` | no: `VALUES(col)` | since 8.0.19 (`VALUES()` deprecated since 8.0.20) |
# | `JSON` column | an alias of `LONGTEXT` with a `json_valid()` CHECK | a binary JSON type |
# | sequences | `CREATE SEQUENCE`, `NEXTVAL()` since 10.3 | none: only `AUTO_INCREMENT` |
# | `CHECK` constraints | enforced since 10.2.1 | enforced since 8.0.16 (parsed and ignored before) |
# | default login plugin | `mysql_native_password` (also `ed25519`, `unix_socket`) | `caching_sha2_password`; 8.4 disables `mysql_native_password` by default |
# | isolation variable | `@@tx_isolation` (`@@transaction_isolation` from 11.1) | `@@transaction_isolation` |
# | plans with actual numbers | `ANALYZE SELECT`, `ANALYZE FORMAT=JSON` | `EXPLAIN ANALYZE` (8.0.18+) |
# | `EXPLAIN FORMAT=JSON` | its own structure | another structure |
#
# The course configures both of its servers with `utf8mb4_unicode_ci`, so collation behaves the
# same on either; a default MySQL 8 install would be NO PAD. About logins: `caching_sha2_password`
# needs TLS or the server's RSA key on the first login, so PyMySQL wants the `cryptography`
# package for it (installed here).
#
# Rather than trusting a version number, ask the server. Each probe below tries the feature and
# rolls back:

# %%
def works(*statements) -> bool:
    """True if every statement runs on this server; changes are rolled back."""
    try:
        with my.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
                cur.fetchall()
        return True
    except pymysql.err.MySQLError:
        return False
    finally:
        my.rollback()


run(my, "DROP TABLE IF EXISTS compat_probe")
run(my, "CREATE TABLE compat_probe (id INT AUTO_INCREMENT PRIMARY KEY, qty INT NOT NULL CHECK (qty >= 0), doc JSON)")
json_type = run(my, "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = 'compat_probe' AND COLUMN_NAME = 'doc'")[0][0]
features = {
    "INSERT ... RETURNING": works("INSERT INTO compat_probe (qty) VALUES (1) RETURNING id"),
    "ON DUPLICATE KEY UPDATE ... VALUES(qty)": works(
        "INSERT INTO compat_probe (id, qty) VALUES (1, 1) ON DUPLICATE KEY UPDATE qty = VALUES(qty)"),
    "ON DUPLICATE KEY UPDATE with AS new": works(
        "INSERT INTO compat_probe (id, qty) VALUES (1, 1) AS new ON DUPLICATE KEY UPDATE qty = new.qty"),
    "CHECK constraints enforced": not works("INSERT INTO compat_probe (qty) VALUES (-1)"),
    "CREATE SEQUENCE": works("CREATE SEQUENCE compat_seq", "DROP SEQUENCE compat_seq"),
    "@@transaction_isolation": works("SELECT @@transaction_isolation"),
    "@@tx_isolation": works("SELECT @@tx_isolation"),
    "collation utf8mb4_0900_ai_ci": works("SELECT 'a' COLLATE utf8mb4_0900_ai_ci"),
    "collation utf8mb4_uca1400_ai_ci": works("SELECT 'a' COLLATE utf8mb4_uca1400_ai_ci"),
}
run(my, "DROP TABLE compat_probe")
default_collation = run(my, "SELECT DEFAULT_COLLATE_NAME FROM information_schema.CHARACTER_SETS "
                            "WHERE CHARACTER_SET_NAME = 'utf8mb4'")[0][0]
plugins = [row[0] for row in run(my, "SELECT PLUGIN_NAME FROM information_schema.PLUGINS "
                                     "WHERE PLUGIN_TYPE = 'AUTHENTICATION' AND PLUGIN_STATUS = 'ACTIVE' "
                                     "ORDER BY PLUGIN_NAME")]
my.rollback()

# %% [markdown]
# What this server answers depends on its flavour and version (and the login plugins on its
# configuration), so the next cell's output is not compared; the cell after it checks the answers
# against the table above.

# %% tags=["nbval-ignore-output"]
print(f"flavour: {FLAVOUR}")
for feature, ok in features.items():
    print(f"  {feature:<42} {'yes' if ok else 'no'}")
print(f"  {'a JSON column is stored as':<42} {json_type}")
print(f"  {'default collation of utf8mb4':<42} {default_collation}")
print(f"  {'login plugins available':<42} " + ", ".join(plugins))

# %%
agreement = {
    "the same on both: VALUES() upserts, CHECK enforced": features["ON DUPLICATE KEY UPDATE ... VALUES(qty)"]
    and features["CHECK constraints enforced"],
    "INSERT ... RETURNING only on MariaDB": features["INSERT ... RETURNING"] == MARIADB,
    "the AS new row alias only on MySQL 8": features["ON DUPLICATE KEY UPDATE with AS new"] == (not MARIADB),
    "CREATE SEQUENCE only on MariaDB": features["CREATE SEQUENCE"] == MARIADB,
    "JSON: longtext on MariaDB, a JSON type on MySQL": json_type.lower() == ("longtext" if MARIADB else "json"),
}
for rule, holds in agreement.items():
    print(f"{rule:<50} {holds}")

# %% [markdown]
# `VERSION()` tells you the flavour and version, and MariaDB always includes `MariaDB` in it. One
# oddity: MariaDB servers before 11.0 announce themselves to clients, in the connection handshake,
# as `5.5.5-10.x.y-MariaDB` (old MySQL clients refused a major version of 10), so code that reads
# the handshake version must skip that `5.5.5-` prefix. `SELECT VERSION()` gives the plain string.
#
# ### Exercise 03.11 · MariaDB or MySQL: what can this server do? (practice)
#
# Write `dialect_features(version)` that takes a version string, as `SELECT VERSION()` or the
# handshake reports it (for example `'10.11.6-MariaDB-0+deb12u1'`, `'8.0.36'`,
# `'5.5.5-10.4.32-MariaDB'`), and returns a dict with the keys:
#
# * `flavour`: `"MariaDB"` or `"MySQL"`;
# * `returning`: whether `INSERT ... RETURNING` works (MariaDB 10.5+, never MySQL);
# * `row_alias`: whether the `AS new` alias of `ON DUPLICATE KEY UPDATE` works (MySQL 8.0.19+, never MariaDB);
# * `sequences`: whether `CREATE SEQUENCE` works (MariaDB 10.3+, never MySQL).
#
# The check tries this server's own version and a list of others, old and new, from both flavours.

# %% nbgrader={"grade": false, "grade_id": "ex03-11-answer", "locked": false, "schema_version": 3, "solution": true}
import re


def dialect_features(version):
    ### BEGIN SOLUTION
    if "mariadb" in version.lower():
        version = re.sub(r"^5\.5\.5-", "", version)  # the handshake prefix of MariaDB before 11.0
        major, minor = (int(n) for n in re.match(r"(\d+)\.(\d+)", version).groups())
        return {"flavour": "MariaDB", "returning": (major, minor) >= (10, 5), "row_alias": False,
                "sequences": (major, minor) >= (10, 3)}
    major, minor, patch = (int(n) for n in re.match(r"(\d+)\.(\d+)\.(\d+)", version).groups())
    return {"flavour": "MySQL", "returning": False, "row_alias": (major, minor, patch) >= (8, 0, 19),
            "sequences": False}
    ### END SOLUTION


this_server = dialect_features(run(my, "SELECT VERSION()")[0][0])
my.rollback()
print("your function agrees with what this server did in the probes above:",
      this_server["flavour"] == FLAVOUR and this_server["returning"] == features["INSERT ... RETURNING"]
      and this_server["row_alias"] == features["ON DUPLICATE KEY UPDATE with AS new"]
      and this_server["sequences"] == features["CREATE SEQUENCE"])

# %% nbgrader={"grade": true, "grade_id": "ex03-11-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.dialect_features(dialect_features, course)
### BEGIN HIDDEN TESTS
check.dialect_features(dialect_features, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Close what this notebook opened (the pool's connections close with the kernel):

# %%
for conn in (py_conn, cn_conn, pg, lite):
    conn.close()
print("closed")

# %% [markdown]
# ## Key points
#
# * Read connection settings from the environment (or `.env`), build one dict, pass it to
#   `pymysql.connect(**config)` or `mysql.connector.connect(**config)`; never print it unmasked.
# * PyMySQL and mysql-connector are both DB-API drivers with `%s` placeholders; rows as dicts with
#   `DictCursor` / `dictionary=True`; mysql-connector adds a pool (`MySQLConnectionPool`,
#   `get_connection()`, and `close()` to give it back) and an optional C extension (`use_pure`).
# * Tables: `ENGINE=InnoDB`, `DEFAULT CHARSET=utf8mb4` (`utf8` is utf8mb3 and refuses emoji),
#   `AUTO_INCREMENT` keys read back with `lastrowid` (per connection, first id of a batch, gaps
#   allowed).
# * Autocommit is off in the drivers: `commit()` once at the end, `rollback()` and re-raise on error.
#   In MySQL an error does not end the transaction, DDL commits implicitly, and REPEATABLE READ keeps
#   an idle reader on an old snapshot.
# * Moving between databases: `%s` vs `?`; `ON DUPLICATE KEY UPDATE` vs `ON CONFLICT`; `lastrowid` vs
#   `RETURNING`; MySQL's `_ci`, PAD SPACE collations make `'abc' = 'ABC '` true; `EXPLAIN` everywhere,
#   read `type` and `key` in MySQL.
# * MariaDB and MySQL share the protocol and most SQL, but differ in defaults (collation, login),
#   in features (`RETURNING`, sequences, the upsert alias, JSON) and in names: detect, don't assume.
#
# Your progress in this chapter:

# %%
check.progress()

# %% [markdown]
# **Where next**: chapter 04 puts an ORM on top of these drivers. SQLAlchemy's engine is a
# connection pool for any driver, and the same models run on SQLite, PostgreSQL and MySQL by changing
# only the URL: open `04a_sqlalchemy.ipynb`.
