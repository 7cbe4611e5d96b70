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
# # 01 · SQLite and SQL: your first database, from Python
#
# **After this chapter you will be able to**
#
# * open an SQLite database (a file, or one in memory) from Python, run statements through a
#   cursor, and read rows by column name;
# * ask questions in SQL: filter, sort, join tables (inner, left, right, full), group and
#   aggregate, nest queries, and give them names with views and CTEs, recursive ones included;
# * design tables whose keys and constraints keep bad data out, and change them with `ALTER TABLE`;
# * insert, update and delete from Python with placeholders and `executemany`;
# * model one-to-one, one-to-many and many-to-many relationships, and normalize a table that
#   repeats itself;
# * group changes into transactions that commit or roll back as a whole, inside a connection
#   context manager of your own;
# * use SQLite from several threads (WAL mode), and say when SQLite is the right database and when
#   it is not;
# * recognise SQL injection, carry one out, and fix it for good.
#
# **Time**: about 3 hours, with 12 exercises. Run top to bottom, the notebook takes about 20 seconds
# (most of it loading the `%sql` extension).
#
# **What must be running**: nothing. SQLite is not a server: it is a library inside Python's
# standard library. The setup cell copies the course's online shop into an SQLite file of your own.
#
# **How to work**: run the cells from top to bottom (Shift+Enter). In each exercise, replace the
# placeholder in the answer cell, run it, then run the check cell under it. You can re-run the
# setup cell at any time to get a fresh copy of the data.

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
from dbcourse.checks import ch01 as check

course = dbcourse.setup("01-sqlite", namespace=namespace, scale=scale,
                        urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url))

# %% [markdown]
# ### The shop
#
# The whole course uses one data set: a small online shop with 2,000 customers, 300 products and
# 6,000 orders from December 2021 to 30 June 2026 ("today" in the data). These are the tables
# this chapter uses; a line between two tables is a **foreign key**, a column whose value is the
# key of a row in another table (`orders.user_id` holds the `user_id` of the customer).
#
# ```mermaid
# erDiagram
#     categories ||--o{ categories : "parent_id"
#     categories ||--o{ products : "category_id"
#     users ||--o{ orders : "user_id"
#     orders ||--o{ order_items : "order_id"
#     products ||--o{ order_items : "product_id"
#     users ||--o{ reviews : "user_id"
#     products ||--o{ reviews : "product_id"
#     posts ||--o{ post_tags : "post_id"
#     tags ||--o{ post_tags : "tag_id"
#     users { int user_id PK
#         text email UK
#         text full_name
#         text country
#         int birth_year "NULL = unknown" }
#     orders { int order_id PK
#         int user_id FK
#         text ordered_at
#         text status }
#     order_items { int order_item_id PK
#         int order_id FK
#         int product_id FK
#         int quantity
#         numeric unit_price "price paid" }
#     products { int product_id PK
#         text sku UK
#         text name
#         int category_id FK
#         numeric price "today's price"
#         int stock }
# ```
#
# Like real data, it has flaws on purpose, and the exercises use them: e-mails with stray spaces
# and capitals, a few country codes in lower case, unknown birth years, orders without any items,
# cancelled and refunded orders (they are not revenue), and prices that changed since customers
# paid them (`order_items.unit_price` is what they paid; `products.price` is today's price).
#
# ## 1. Connections, cursors and rows
#
# An SQLite database is **one ordinary file**. There is no server to start, no user and no
# password: `sqlite3.connect(path)` opens the file (and creates it if it does not exist). The
# special name `":memory:"` gives a database that lives in RAM, belongs to that one connection
# and vanishes when it closes: ideal for experiments and tests.
#
# You talk to the database through a **cursor**: `cursor.execute(sql, parameters)` runs one
# statement, and for a `SELECT` the cursor then walks through the result, row by row.

# %% tags=["nbval-ignore-output"]
import sqlite3
from contextlib import closing

print("SQLite library inside this Python:", sqlite3.sqlite_version)  # not sqlite3.version (deprecated)

# %%
print("RIGHT and FULL OUTER JOIN (SQLite 3.39+):", sqlite3.sqlite_version_info >= (3, 39, 0))
print("RETURNING (SQLite 3.35+):", sqlite3.sqlite_version_info >= (3, 35, 0))
print("STRICT tables (SQLite 3.37+):", sqlite3.sqlite_version_info >= (3, 37, 0))

# %% [markdown]
# The version that matters is the SQLite **library** Python was built with
# (`sqlite3.sqlite_version`), not Python's own version: it decides which SQL you can use. Here is a
# complete first session with a database in memory:

# %%
conn = sqlite3.connect(":memory:")  # a brand-new, empty database in RAM
cur = conn.cursor()
cur.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")

cur.execute("INSERT INTO notes (text) VALUES (?)", ("buy milk",))  # ? is a placeholder, see section 7
print("lastrowid:", cur.lastrowid, "| rowcount:", cur.rowcount)

cur.executemany("INSERT INTO notes (text) VALUES (?)", [("call Ada",), ("learn SQL",)])
print("rowcount after executemany:", cur.rowcount)

cur.execute("UPDATE notes SET text = upper(text) WHERE id >= ?", (2,))
print("rows updated:", cur.rowcount)

cur.execute("SELECT id, text FROM notes ORDER BY id")
print("columns:", [column[0] for column in cur.description], "| rowcount of a SELECT:", cur.rowcount)
print("fetchone():", cur.fetchone())
print("fetchall():", cur.fetchall())  # the rest of the rows
print("fetchone() at the end:", cur.fetchone())
conn.close()

# %% [markdown]
# What each piece does:
#
# | | |
# |---|---|
# | `conn.cursor()` | a cursor on the connection (`conn.execute(...)` is a shortcut that makes one and returns it) |
# | `cur.execute(sql, params)` | runs **one** statement; values travel separately in `params` |
# | `cur.executemany(sql, seq)` | runs the statement once per parameter set in `seq` |
# | `cur.fetchone()` / `fetchmany(n)` / `fetchall()` | the next row (or `None`), the next `n`, all the rest |
# | `for row in cur:` | rows one at a time, without loading them all into memory |
# | `cur.rowcount` | rows changed by the last INSERT/UPDATE/DELETE (summed over `executemany`); `-1` after a SELECT |
# | `cur.lastrowid` | the `rowid` of the last row inserted: the new key of an `INTEGER PRIMARY KEY` table |
# | `cur.description` | the column names of the last query |
#
# Rows come back as **tuples** unless you set a **row factory**. `sqlite3.Row` rows can be read by
# position *and* by column name (case-insensitive), and turn into dicts with `dict(row)`. Let us
# open the shop's file:

# %%
shop_path = course.sqlite_path  # the shop's file in your namespace

with closing(sqlite3.connect(shop_path)) as conn:  # closing(): close the connection when the block ends
    conn.row_factory = sqlite3.Row
    tables = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
                          "ORDER BY name").fetchall()
    print("tables:", ", ".join(row["name"] for row in tables))

    user = conn.execute("SELECT user_id, full_name, country, birth_year FROM users WHERE user_id = ?",
                        (3,)).fetchone()
    print(user["full_name"], "lives in", user["COUNTRY"], "| by position:", user[0], "| as a dict:", dict(user))

    cur = conn.execute("SELECT sku, name FROM products ORDER BY product_id")
    print("fetchmany(2):", [tuple(row) for row in cur.fetchmany(2)])
    print("rows left after that:", len(cur.fetchall()))

# %% [markdown]
# `sqlite_schema` is SQLite's own catalogue: one row per table, index and view, with the SQL that
# created it.
#
# **A trap with files**: `connect()` silently creates a file that does not exist, so a typo in the
# path gives you a new, empty database and the puzzling error `no such table`. A **URI** with a
# `mode` makes the intent explicit: `mode=rw` refuses a missing file and `mode=ro` refuses writes.

# %%
typo = course.path("shpo.db")
try:
    sqlite3.connect(f"{typo.as_uri()}?mode=rw", uri=True)
except sqlite3.OperationalError as exc:
    print("mode=rw, missing file:", exc)

with closing(sqlite3.connect(f"{shop_path.as_uri()}?mode=ro", uri=True)) as conn:
    try:
        conn.execute("DELETE FROM reviews")
    except sqlite3.OperationalError as exc:
        print("mode=ro, a write:", exc)

# %% [markdown]
# ### Exercise 01.1 · Read rows with a cursor (warm-up)
#
# Write a function `cheapest_products(path, n)` that opens the SQLite file at `path`, returns the
# `n` cheapest products that are still sold (`is_discontinued = 0`) and closes the connection.
#
# * Return a **list of dicts** with exactly the keys `sku`, `name` and `price`.
# * Cheapest first; products with the same price in `sku` order.
# * Pass `n` as a parameter (`LIMIT ?`), and use `sqlite3.Row` so that `dict(row)` does the work.
#
# The check calls `cheapest_products(course.sqlite_path, 5)` and with other `n`; the hidden tests
# use a copy of the shop with new products.

# %% nbgrader={"grade": false, "grade_id": "ex01-1-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def cheapest_products(path, n):
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT sku, name, price FROM products WHERE is_discontinued = 0 "
                            "ORDER BY price, sku LIMIT ?", (n,)).fetchall()
    return [dict(row) for row in rows]


cheapest_products(course.sqlite_path, 3)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-1-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.cheapest_products(cheapest_products, course)
### BEGIN HIDDEN TESTS
check.cheapest_products(cheapest_products, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Asking questions: SELECT, WHERE, ORDER BY, LIMIT
#
# From here on much of the SQL is written straight into cells with the **`%%sql` magic**
# (JupySQL; chapter 00 introduced it). The next cell loads it and connects it to your shop file.
# `displaylimit = 0` makes it fetch and show every row (the queries here all have a `LIMIT`):
# a result that is only partly read keeps its read transaction open, and with it a lock that
# stops other connections from writing to the file (section 10 explains locks). (JupySQL may
# print a tip about configuration files when it loads: the course needs none.)

# %% tags=["nbval-ignore-output"]
# %load_ext sql
# %config SqlMagic.displaycon = False
# %config SqlMagic.feedback = False
# %config SqlMagic.displaylimit = 0
# Usually you would type `%sql sqlite:///shop.db`. This does the same for your namespace's file
# (closing first a connection left over from an earlier run of the setup cell):
course.sql_connect()

# %% [markdown]
# A query names the columns it wants (`SELECT`), the table they come from (`FROM`), which rows to
# keep (`WHERE`), their order (`ORDER BY`, ascending unless you say `DESC`) and how many to return
# (`LIMIT`). Without `ORDER BY` the order of rows is **undefined**: it may change from one run, or
# one SQLite version, to the next. Always sort when order matters, and add a **tie-breaker** (here
# `sku`) so that equal prices still come out in a fixed order.

# %% language="sql"
# SELECT sku, name, price
# FROM products
# ORDER BY price DESC, sku
# LIMIT 5

# %% [markdown]
# `WHERE` combines conditions with `AND`, `OR` and `NOT`. `IN (...)` tests membership,
# `BETWEEN a AND b` includes both ends, and `LIKE` matches patterns: `%` is any run of characters
# and `_` exactly one (SQLite's `LIKE` ignores the case of ASCII letters).

# %% language="sql"
# SELECT product_id, name, price, category_id
# FROM products
# WHERE category_id IN (21, 22, 23)
#   AND price BETWEEN 20 AND 80
#   AND (name LIKE '%yoga%' OR name LIKE '%helmet%')
# ORDER BY price, product_id

# %% [markdown]
# ### NULL: "unknown", not zero
#
# `NULL` marks a missing value: 15% of customers did not give their birth year. Any comparison
# with NULL is neither true nor false but *unknown*, and `WHERE` keeps only rows where the
# condition is true. So `birth_year = NULL` matches nothing, and "born in 1980" plus "not born in
# 1980" does not add up to all customers. Test for it with `IS NULL` / `IS NOT NULL`; aggregate
# functions such as `count(column)` skip NULLs, while `count(*)` counts rows.

# %% language="sql"
# SELECT count(*) AS users,
#        count(birth_year) AS with_birth_year,
#        (SELECT count(*) FROM users WHERE birth_year = NULL) AS "= NULL",
#        (SELECT count(*) FROM users WHERE birth_year IS NULL) AS "IS NULL",
#        (SELECT count(*) FROM users WHERE birth_year = 1980)
#          + (SELECT count(*) FROM users WHERE birth_year <> 1980) AS "= 1980 plus <> 1980"
# FROM users

# %% [markdown]
# ### Expressions, functions and dirty data
#
# A `SELECT` list can compute: arithmetic, `CASE WHEN ... THEN ... END`, and functions such as
# `lower`, `upper`, `trim`, `length`, `round`, `coalesce` (the first non-NULL argument). Use them
# to see, and then to clean, what is wrong in the data:

# %% language="sql"
# SELECT user_id, email, lower(trim(email)) AS clean_email, country, upper(country) AS clean_country,
#        coalesce(birth_year, 'unknown') AS born
# FROM users
# WHERE email <> lower(trim(email)) OR country <> upper(country)
# ORDER BY user_id
# LIMIT 6

# %% [markdown]
# SQLite has no date type: the shop stores times as ISO-8601 text (`'2026-06-30 14:05:00'`, UTC).
# That format sorts in time order, so plain comparisons work, and the date functions (`date`,
# `strftime`, `julianday`) understand it. `DISTINCT` removes duplicate rows, and `OFFSET` skips
# rows (page 2 of a list is `LIMIT 5 OFFSET 5`).

# %% language="sql"
# SELECT order_id, ordered_at, date(ordered_at) AS day, strftime('%Y-%m', ordered_at) AS month,
#        CASE WHEN status IN ('cancelled', 'refunded') THEN 'no' ELSE 'yes' END AS is_revenue
# FROM orders
# WHERE ordered_at >= '2026-06-30'
# ORDER BY ordered_at, order_id
# LIMIT 5

# %% language="sql"
# SELECT DISTINCT upper(country) AS country
# FROM users
# ORDER BY country
# LIMIT 5 OFFSET 5

# %% [markdown]
# SQL is **declarative**: you describe the result and the database decides how to compute it. It
# is written in one order but evaluated in another. That is why standard SQL does not let `WHERE`
# use a column alias defined in `SELECT` (`WHERE` runs first; SQLite bends this rule, PostgreSQL
# does not), while `ORDER BY`, which runs last, can:
#
# ```mermaid
# flowchart LR
#     F["FROM / JOIN<br/>which rows exist"] --> W["WHERE<br/>keep rows"] --> G["GROUP BY<br/>make groups"]
#     G --> H["HAVING<br/>keep groups"] --> S["SELECT<br/>compute columns"] --> O["ORDER BY<br/>sort"] --> L["LIMIT / OFFSET<br/>cut"]
# ```
#
# A magic's result can also go into a Python variable (`name = %sql SELECT ...`), and
# `.DataFrame()` turns it into a pandas DataFrame:

# %%
# recent = %sql SELECT order_id, ordered_at, status FROM orders ORDER BY ordered_at DESC, order_id LIMIT 3
recent.DataFrame()

# %% [markdown]
# The exercises give their answers as **SQL text in a Python string**, which the check runs on a
# private copy of your shop. To try a query while you write it, use a `%%sql` cell, or this small
# helper that runs a query with `sqlite3` and shows the result as a DataFrame:

# %%
import pandas as pd


def show(sql, params=(), n=10):
    """Run a query on the shop and show its first n rows."""
    with closing(sqlite3.connect(shop_path)) as conn:
        return pd.read_sql_query(sql, conn, params=params).head(n)


show("SELECT count(*) AS products, min(price) AS cheapest, max(price) AS dearest FROM products")

# %% [markdown]
# ### Exercise 01.2 · German customers born by 1960 (warm-up)
#
# Write a query, as a string in `german_seniors_sql`, that lists the customers from Germany
# (country code `DE`) born in 1960 or earlier.
#
# * Columns, in this order: `user_id`, `full_name`, `birth_year`.
# * Oldest first; people born in the same year by `user_id`.
# * Watch the data: some country codes are in lower case. Customers whose birth year is unknown
#   are not "born by 1960".

# %% nbgrader={"grade": false, "grade_id": "ex01-2-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
german_seniors_sql = """
SELECT user_id, full_name, birth_year
FROM users
WHERE upper(country) = 'DE'
  AND birth_year <= 1960
ORDER BY birth_year, user_id
"""
show(german_seniors_sql, n=5)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-2-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.german_seniors(german_seniors_sql, course)
### BEGIN HIDDEN TESTS
check.german_seniors(german_seniors_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Joining tables
#
# The shop keeps each fact in one place: the customer's name in `users`, the order in `orders`
# with only the customer's `user_id`. A **join** puts them back together: it pairs the rows of two
# tables that satisfy a condition, usually "this foreign key equals that primary key". The kinds
# of join differ in what happens to rows that find **no partner**:
#
# | Join | Keeps | The missing side |
# |---|---|---|
# | `A [INNER] JOIN B ON ...` | only pairs that match | (no rows without a partner) |
# | `A LEFT [OUTER] JOIN B ON ...` | every row of A, matched or not | B's columns are NULL |
# | `A RIGHT [OUTER] JOIN B ON ...` | every row of B, matched or not | A's columns are NULL |
# | `A FULL [OUTER] JOIN B ON ...` | every row of both | the other side's columns are NULL |
# | `A CROSS JOIN B` | every combination (no condition) | |
#
# An inner join, with **table aliases** (`o`, `u`) to keep it short:

# %% language="sql"
# SELECT o.order_id, o.ordered_at, o.status, u.full_name
# FROM orders AS o
# JOIN users AS u ON u.user_id = o.user_id
# ORDER BY o.ordered_at DESC, o.order_id
# LIMIT 5

# %% [markdown]
# Joins chain. The lines of order 6, with product and category names, and both prices: what the
# customer paid then (`unit_price`) and what the product costs today (`price`):

# %% language="sql"
# SELECT i.order_item_id, p.name AS product, c.name AS category, i.quantity, i.unit_price, p.price AS price_today
# FROM order_items AS i
# JOIN products AS p ON p.product_id = i.product_id
# JOIN categories AS c ON c.category_id = p.category_id
# WHERE i.order_id = 6
# ORDER BY i.order_item_id

# %% [markdown]
# ### Left joins keep the rows without a partner
#
# 25 orders have no items at all. An inner join with `order_items` silently drops them; a left
# join keeps them, with NULL in every column of `order_items`. Keeping only those NULL rows is the
# standard way to find **rows without a partner** (an *anti-join*):

# %% language="sql"
# SELECT (SELECT count(DISTINCT o.order_id) FROM orders AS o
#         JOIN order_items AS i ON i.order_id = o.order_id) AS orders_inner_join,
#        (SELECT count(DISTINCT o.order_id) FROM orders AS o
#         LEFT JOIN order_items AS i ON i.order_id = o.order_id) AS orders_left_join

# %% language="sql"
# SELECT o.order_id, o.ordered_at, o.status, i.order_item_id
# FROM orders AS o
# LEFT JOIN order_items AS i ON i.order_id = o.order_id
# WHERE i.order_item_id IS NULL
# ORDER BY o.order_id
# LIMIT 5

# %% [markdown]
# **ON or WHERE?** In a left join, a condition on the right table belongs in `ON`. In `WHERE` it
# runs *after* the join, where the kept rows have NULL on the right, fails for them, and quietly
# turns your left join into an inner join:

# %% language="sql"
# SELECT 'status test in ON' AS variant, count(DISTINCT u.user_id) AS users_kept
# FROM users AS u
# LEFT JOIN orders AS o ON o.user_id = u.user_id AND o.status = 'refunded'
# UNION ALL
# SELECT 'status test in WHERE', count(DISTINCT u.user_id)
# FROM users AS u
# LEFT JOIN orders AS o ON o.user_id = u.user_id
# WHERE o.status = 'refunded'

# %% [markdown]
# (`UNION ALL` stacks the rows of two queries with the same columns; `UNION` also removes
# duplicates.) A table can be joined **to itself**, with two aliases: each category with its parent.

# %% language="sql"
# SELECT child.category_id, child.name AS category, parent.name AS parent
# FROM categories AS child
# LEFT JOIN categories AS parent ON parent.category_id = child.parent_id
# ORDER BY child.category_id
# LIMIT 7

# %% [markdown]
# ### Right and full outer joins
#
# `A RIGHT JOIN B` is `B LEFT JOIN A`: it keeps every row of the table on the right. Which
# categories hold no products of their own? (The top-level ones: products sit in sub-categories.)

# %% language="sql"
# SELECT c.category_id, c.name AS category
# FROM products AS p
# RIGHT JOIN categories AS c ON c.category_id = p.category_id
# WHERE p.product_id IS NULL
# ORDER BY c.category_id

# %% [markdown]
# A **full outer join** keeps unmatched rows from *both* sides. Its classic use is reconciling two
# lists. The warehouse counted the shelf of the "Databases" books (category 4) and typed the
# counts into a table; comparing it with the catalogue shows books that were not counted, counts
# that differ, and counted items that are not in the catalogue at all:

# %% language="sql"
# DROP TABLE IF EXISTS stock_count;
# CREATE TABLE stock_count (sku TEXT PRIMARY KEY, counted INTEGER NOT NULL);
# INSERT INTO stock_count (sku, counted) VALUES
#     ('SKU-000002', 153), ('SKU-000087', 120), ('SKU-000093', 227), ('SKU-000108', 143),
#     ('SKU-000150', 103), ('SKU-000163', 310), ('SKU-000284', 43), ('SKU-000999', 12);
# SELECT coalesce(p.sku, s.sku) AS sku, p.name, p.stock, s.counted,
#        CASE WHEN p.sku IS NULL THEN 'not in the catalogue'
#             WHEN s.sku IS NULL THEN 'not counted'
#             WHEN p.stock <> s.counted THEN 'differs'
#             ELSE 'ok' END AS verdict
# FROM products AS p
# FULL OUTER JOIN stock_count AS s ON s.sku = p.sku
# WHERE p.category_id = 4 OR p.sku IS NULL
# ORDER BY sku

# %% [markdown]
# `RIGHT` and `FULL` joins arrived in **SQLite 3.39** (2022): older SQLite versions have neither,
# and MySQL and MariaDB still have no `FULL JOIN`. (A `RIGHT JOIN` is easy to replace: swap the
# tables of a `LEFT JOIN`.) For the full join, this rewrite works everywhere: a left join, plus the rows of
# the right table that have no partner (the anti-join from above), stacked with `UNION ALL`.
# Python checks that both give the same rows:

# %%
full_join = """
SELECT coalesce(p.sku, s.sku) AS sku, p.stock, s.counted
FROM products AS p
FULL OUTER JOIN stock_count AS s ON s.sku = p.sku
WHERE p.category_id = 4 OR p.sku IS NULL
ORDER BY sku
"""
emulated = """
SELECT p.sku AS sku, p.stock, s.counted
FROM products AS p
LEFT JOIN stock_count AS s ON s.sku = p.sku
WHERE p.category_id = 4
UNION ALL
SELECT s.sku, NULL, s.counted
FROM stock_count AS s
LEFT JOIN products AS p ON p.sku = s.sku
WHERE p.sku IS NULL
ORDER BY sku
"""
with closing(sqlite3.connect(shop_path)) as conn:
    same = conn.execute(full_join).fetchall() == conn.execute(emulated).fetchall()
print("LEFT JOIN + UNION ALL + anti-join gives the same rows as FULL OUTER JOIN:", same)

# %% [markdown]
# ### Exercise 01.3 · Customers who never ordered (practice)
#
# Marketing wants to write to everyone who signed up but never placed an order (an order of any
# status counts as an order). Write `never_ordered_sql`:
#
# * Columns: `user_id`, `full_name`, `signup_at`.
# * Newest sign-ups first; equal sign-up times by `user_id`.
# * Use a `LEFT JOIN` (a `NOT EXISTS` subquery, section 5, works too).

# %% nbgrader={"grade": false, "grade_id": "ex01-3-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
never_ordered_sql = """
SELECT u.user_id, u.full_name, u.signup_at
FROM users AS u
LEFT JOIN orders AS o ON o.user_id = u.user_id
WHERE o.order_id IS NULL
ORDER BY u.signup_at DESC, u.user_id
"""
show(never_ordered_sql, n=3)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-3-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.never_ordered(never_ordered_sql, course)
### BEGIN HIDDEN TESTS
check.never_ordered(never_ordered_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Grouping and aggregating
#
# **Aggregate functions** turn many rows into one value: `count`, `sum`, `avg`, `min`, `max`,
# `group_concat`. `GROUP BY` first splits the rows into groups (one per distinct value of its
# columns) and the aggregates then run once per group. Every column in the `SELECT` list must be
# either grouped by or aggregated.

# %% language="sql"
# SELECT status, count(*) AS orders, min(ordered_at) AS first, max(ordered_at) AS last
# FROM orders
# GROUP BY status
# ORDER BY orders DESC, status

# %% [markdown]
# `WHERE` filters **rows before** grouping; `HAVING` filters **groups after** it, so only `HAVING`
# can test an aggregate. Countries (cleaned, so that `de` and `DE` form one group) with at least
# 100 customers; note that `avg` and `count(column)` skip the unknown birth years:

# %% language="sql"
# SELECT upper(country) AS country,
#        count(*) AS customers,
#        count(birth_year) AS with_birth_year,
#        round(avg(2026 - birth_year), 1) AS avg_age
# FROM users
# GROUP BY upper(country)
# HAVING count(*) >= 100
# ORDER BY customers DESC, country

# %% [markdown]
# Aggregates work on joins too. The best-rated products with at least 15 reviews:

# %% language="sql"
# SELECT p.name, count(*) AS reviews, round(avg(r.rating), 2) AS avg_rating
# FROM reviews AS r
# JOIN products AS p ON p.product_id = r.product_id
# GROUP BY p.product_id, p.name
# HAVING count(*) >= 15
# ORDER BY avg_rating DESC, reviews DESC, p.name
# LIMIT 5

# %% [markdown]
# **Joins multiply rows.** After `orders JOIN order_items` there is one row per *item*, so
# `count(*)` counts items, not orders, and a column of `orders` summed over the join is counted
# once per item. Count orders with `count(DISTINCT o.order_id)`, or aggregate the items per order
# first (section 5). And **money**: SQLite stores `NUMERIC` values with decimals as binary
# floating point, so sums come out as `1530789.9600000023`; round them for display
# (`round(x, 2)`), or store cents as integers when every cent must be exact.

# %% language="sql"
# SELECT count(*) AS rows_after_join,
#        count(DISTINCT o.order_id) AS orders,
#        sum(i.quantity * i.unit_price) AS raw_sum,
#        round(sum(i.quantity * i.unit_price), 2) AS rounded
# FROM orders AS o
# JOIN order_items AS i ON i.order_id = o.order_id

# %% [markdown]
# ### Exercise 01.4 · Revenue by category (practice)
#
# Write `category_revenue_sql`: for each product category, the number of orders, the units sold
# and the revenue, counting only orders that are **not** `cancelled` or `refunded`.
#
# * Columns: `category` (the category's name), `orders` (orders that contain the category, each
#   counted once), `units` (sum of quantities), `revenue` (sum of quantity × `unit_price`, rounded
#   to 2 decimals).
# * Keep only categories with a revenue of at least 100,000.
# * Highest revenue first; equal revenues by category name.

# %% nbgrader={"grade": false, "grade_id": "ex01-4-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
category_revenue_sql = """
SELECT c.name AS category,
       count(DISTINCT o.order_id) AS orders,
       sum(i.quantity) AS units,
       round(sum(i.quantity * i.unit_price), 2) AS revenue
FROM order_items AS i
JOIN orders AS o ON o.order_id = i.order_id
JOIN products AS p ON p.product_id = i.product_id
JOIN categories AS c ON c.category_id = p.category_id
WHERE o.status NOT IN ('cancelled', 'refunded')
GROUP BY c.category_id, c.name
HAVING sum(i.quantity * i.unit_price) >= 100000
ORDER BY revenue DESC, category
"""
show(category_revenue_sql, n=3)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-4-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.category_revenue(category_revenue_sql, course)
### BEGIN HIDDEN TESTS
check.category_revenue(category_revenue_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Subqueries, views and CTEs
#
# A **subquery** is a query in parentheses inside another. It can stand for one value (a
# *scalar* subquery), a list (`IN`), a test (`EXISTS`) or a whole table (in `FROM`).

# %% language="sql"
# SELECT name, price, round((SELECT avg(price) FROM products), 2) AS average_price
# FROM products
# WHERE price > 5 * (SELECT avg(price) FROM products)
# ORDER BY price DESC, name
# LIMIT 5

# %% [markdown]
# `EXISTS (subquery)` is true when the subquery returns at least one row. When the subquery
# refers to the outer row (`r.user_id = u.user_id`) it is **correlated**: conceptually it runs once
# per outer row. Of the customers who ordered, how many wrote a review, and how many never did?

# %% language="sql"
# SELECT sum(EXISTS (SELECT 1 FROM reviews AS r WHERE r.user_id = u.user_id)) AS ordered_and_reviewed,
#        sum(NOT EXISTS (SELECT 1 FROM reviews AS r WHERE r.user_id = u.user_id)) AS ordered_never_reviewed
# FROM users AS u
# WHERE EXISTS (SELECT 1 FROM orders AS o WHERE o.user_id = u.user_id)

# %% [markdown]
# **`NOT IN` and NULL**: `x NOT IN (list)` means "x differs from every element". If the list holds
# a NULL, "differs from NULL" is unknown, so the whole test is unknown and no row passes. A
# subquery that can return NULL makes `NOT IN` return nothing at all; `NOT EXISTS` has no such trap.

# %% language="sql"
# SELECT 1 IN (1, NULL) AS "1 IN (1, NULL)",
#        1 NOT IN (2, 3) AS "1 NOT IN (2, 3)",
#        1 NOT IN (2, NULL) AS "1 NOT IN (2, NULL)"

# %% [markdown]
# A subquery in `FROM` is a **derived table**: aggregate once, then aggregate the result. Items
# per order, then their average:

# %% language="sql"
# SELECT round(avg(items), 2) AS avg_items_per_order, max(items) AS most_items
# FROM (SELECT order_id, count(*) AS items FROM order_items GROUP BY order_id)

# %% [markdown]
# ### Views: a query with a name
#
# A **view** stores a query, not data. You query it like a table and it runs its query each
# time, so it is always up to date. Views give a name to logic that many queries share, such as
# "the total of each order" (with a left join, so that empty orders have a total of 0):

# %% language="sql"
# DROP VIEW IF EXISTS order_totals;
# CREATE VIEW order_totals AS
# SELECT o.order_id, o.user_id, o.ordered_at, o.status,
#        count(i.order_item_id) AS items,
#        round(coalesce(sum(i.quantity * i.unit_price), 0), 2) AS total
# FROM orders AS o
# LEFT JOIN order_items AS i ON i.order_id = o.order_id
# GROUP BY o.order_id;
# SELECT * FROM order_totals ORDER BY total DESC, order_id LIMIT 3

# %% [markdown]
# ### CTEs: named steps inside one query
#
# A **common table expression** (`WITH name AS (query)`) names a subquery for the length of one
# statement. A chain of CTEs reads top to bottom like the steps of a recipe, where nested
# subqueries read inside out. The five best customers, from the view above:

# %% language="sql"
# WITH revenue_orders AS (
#     SELECT * FROM order_totals WHERE status NOT IN ('cancelled', 'refunded')
# ),
# per_customer AS (
#     SELECT user_id, count(*) AS orders, sum(total) AS spent
#     FROM revenue_orders
#     GROUP BY user_id
# )
# SELECT u.user_id, u.full_name, pc.orders, round(pc.spent, 2) AS spent
# FROM per_customer AS pc
# JOIN users AS u ON u.user_id = pc.user_id
# ORDER BY pc.spent DESC, u.user_id
# LIMIT 5

# %% [markdown]
# ### Recursive CTEs
#
# `WITH RECURSIVE` lets a CTE refer to itself. It has an **anchor** (the first rows) and, after
# `UNION ALL`, a **recursive step** that computes new rows from the previous ones; it stops when a
# step adds no rows, so the step needs a condition that eventually fails.

# %% language="sql"
# WITH RECURSIVE countdown (n) AS (
#     SELECT 3
#     UNION ALL
#     SELECT n - 1 FROM countdown WHERE n > 0
# )
# SELECT n FROM countdown

# %% [markdown]
# Two everyday uses. A **calendar** fills the gaps that `GROUP BY` cannot show: the shop's first
# year had months without a single order, which only appear when a generated list of months is
# left-joined to the orders.

# %% language="sql"
# WITH RECURSIVE months (month) AS (
#     SELECT '2022-01'
#     UNION ALL
#     SELECT strftime('%Y-%m', month || '-01', '+1 month') FROM months WHERE month < '2022-12'
# )
# SELECT m.month, count(o.order_id) AS orders
# FROM months AS m
# LEFT JOIN orders AS o ON strftime('%Y-%m', o.ordered_at) = m.month
# GROUP BY m.month
# ORDER BY m.month

# %% [markdown]
# And **trees**: categories point to their parent, and a recursive CTE walks down from any node
# to every descendant, however deep, counting the levels as it goes:

# %% language="sql"
# WITH RECURSIVE below (category_id, name, depth) AS (
#     SELECT category_id, name, 0 FROM categories WHERE name = 'Electronics'
#     UNION ALL
#     SELECT c.category_id, c.name, b.depth + 1
#     FROM categories AS c
#     JOIN below AS b ON c.parent_id = b.category_id
# )
# SELECT category_id, name, depth FROM below ORDER BY depth, name

# %% [markdown]
# ### Exercise 01.5 · Find and fix: monthly revenue (find and fix)
#
# A colleague wrote this report of the shop's revenue per month in 2025. Finance says the revenue
# is too high, December looks too low, and the order counts are wrong.

# %%
colleague_sql = """
SELECT substr(o.ordered_at, 1, 7) AS month,
       COUNT(*) AS orders,
       SUM(i.quantity * p.price) AS revenue
FROM orders AS o
JOIN order_items AS i ON i.order_id = o.order_id
JOIN products AS p ON p.product_id = i.product_id
WHERE o.ordered_at BETWEEN '2025-01-01' AND '2025-12-31'
GROUP BY month
ORDER BY month
"""
show(colleague_sql, n=3)

# %% [markdown]
# Find the bugs and write the corrected query in `monthly_revenue_sql` (start from a copy of
# the colleague's query). The report should have:
#
# * one row per month of 2025 with the columns `month` (`'2025-01'`...), `orders` and `revenue`,
#   in month order;
# * `orders`: the orders placed that month, each counted once, **without** cancelled and refunded
#   ones; an order without items still counts (it adds 0 to the revenue);
# * `revenue`: what customers paid for those orders (quantity × the price at purchase), rounded to
#   2 decimals.
#
# There are five bugs. A CTE that first computes one row per order (its month and its total) makes
# the fix much easier to get right.

# %% nbgrader={"grade": false, "grade_id": "ex01-5-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
monthly_revenue_sql = """
WITH order_totals_2025 AS (
    SELECT o.order_id,
           substr(o.ordered_at, 1, 7) AS month,
           coalesce(sum(i.quantity * i.unit_price), 0) AS total    -- the price paid, not today's
    FROM orders AS o
    LEFT JOIN order_items AS i ON i.order_id = o.order_id             -- keep orders without items
    WHERE o.status NOT IN ('cancelled', 'refunded')                   -- not revenue
      AND o.ordered_at >= '2025-01-01' AND o.ordered_at < '2026-01-01' -- all of 31 December
    GROUP BY o.order_id                                               -- one row per order
)
SELECT month, count(*) AS orders, round(sum(total), 2) AS revenue
FROM order_totals_2025
GROUP BY month
ORDER BY month
"""
show(monthly_revenue_sql, n=3)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-5-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.monthly_revenue(monthly_revenue_sql, course)
### BEGIN HIDDEN TESTS
check.monthly_revenue(monthly_revenue_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 01.6 · The category tree (challenge)
#
# Write `category_paths_sql`, a recursive CTE that lists **every** category with its full path
# from the top of the tree.
#
# * Columns: `category_id`, `path` (names from the top down, joined by `' > '`, e.g.
#   `'Books > Databases'`), `depth` (1 for a top-level category, 2 for its children, ...).
# * Sorted by `path`.
# * The shop's tree has two levels today, but the query must work for **any depth**: the hidden
#   tests add deeper categories. (`||` concatenates text in SQL.)

# %% nbgrader={"grade": false, "grade_id": "ex01-6-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
category_paths_sql = """
WITH RECURSIVE tree (category_id, path, depth) AS (
    SELECT category_id, name, 1
    FROM categories
    WHERE parent_id IS NULL
    UNION ALL
    SELECT c.category_id, t.path || ' > ' || c.name, t.depth + 1
    FROM categories AS c
    JOIN tree AS t ON c.parent_id = t.category_id
)
SELECT category_id, path, depth
FROM tree
ORDER BY path
"""
show(category_paths_sql, n=4)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-6-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.category_paths(category_paths_sql, course)
### BEGIN HIDDEN TESTS
check.category_paths(category_paths_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Designing tables: DDL and constraints
#
# The **data definition language** (DDL: `CREATE`, `ALTER`, `DROP`) describes tables. A good
# table definition is your first line of defence: every rule you declare is checked on every
# write, by every program, forever. The experiments of this section use a scratch database in
# memory, `lab`.
#
# ### Types: flexible by default, STRICT on request
#
# SQLite stores five kinds of values (NULL, INTEGER, REAL, TEXT, BLOB). A column's declared type
# is only a preference (its *affinity*): SQLite converts `'42'` to 42 for an `INTEGER` column,
# but keeps `'forty-two'` as text rather than refusing it. Tables declared `STRICT` (SQLite 3.37+)
# refuse values of the wrong type, as other databases do.

# %%
lab = sqlite3.connect(":memory:")
lab.execute("PRAGMA foreign_keys = ON")  # explained below
lab.execute("CREATE TABLE loose (n INTEGER)")
lab.execute("CREATE TABLE firm (n INTEGER) STRICT")
lab.execute("INSERT INTO loose VALUES ('42'), ('forty-two')")
print("a flexible table stores:", lab.execute("SELECT n, typeof(n) FROM loose").fetchall())
try:
    lab.execute("INSERT INTO firm VALUES ('forty-two')")
except sqlite3.IntegrityError as exc:
    print("a STRICT table refuses:", exc)

# %% [markdown]
# ### Primary keys, rowid and AUTOINCREMENT
#
# A **primary key** identifies a row: unique and never NULL. In SQLite every ordinary table has a
# hidden integer key, the `rowid`, and a column declared exactly `INTEGER PRIMARY KEY` *becomes*
# that rowid: leave it out of an `INSERT` and SQLite numbers the row itself (one more than the
# largest key in use). (`INT PRIMARY KEY`, spelt differently, is *not* the rowid and is not
# numbered automatically: a classic surprise.)
#
# Adding `AUTOINCREMENT` changes one thing: a key is **never reused**, even after the row with the
# largest key was deleted. SQLite then records the largest key ever used in a table of its own,
# `sqlite_sequence`, which costs a little on every insert.

# %%
for table, key in [("plain_keys", "INTEGER PRIMARY KEY"), ("auto_keys", "INTEGER PRIMARY KEY AUTOINCREMENT")]:
    lab.execute(f"DROP TABLE IF EXISTS {table}")
    lab.execute(f"CREATE TABLE {table} (id {key}, label TEXT)")
    lab.executemany(f"INSERT INTO {table} (label) VALUES (?)", [("a",), ("b",), ("c",)])
    lab.execute(f"DELETE FROM {table} WHERE label = 'c'")  # delete the newest row (id 3)
    new_id = lab.execute(f"INSERT INTO {table} (label) VALUES ('d')").lastrowid
    print(f"{table:<10} ids 1, 2, 3; id 3 deleted; the next insert gets id {new_id}")
print("sqlite_sequence:", lab.execute("SELECT name, seq FROM sqlite_sequence").fetchall())

# %% [markdown]
# **When do you need AUTOINCREMENT?** Only when a reused id could be mistaken for the old row:
# ids that leave the database (in URLs, e-mails, invoices, other systems, logs), or that a
# deleted record may still be referenced by. For ids that stay inside the database and are always
# joined through foreign keys, plain `INTEGER PRIMARY KEY` is enough, and SQLite's own
# documentation advises it.
#
# ### Constraints
#
# | Constraint | Rule |
# |---|---|
# | `NOT NULL` | a value is required |
# | `UNIQUE` | no two rows share the value (NULLs excepted); also `UNIQUE (a, b)` for a pair |
# | `DEFAULT value` | used when an `INSERT` omits the column; `DEFAULT CURRENT_TIMESTAMP` stores the time of the insert (UTC text) |
# | `CHECK (condition)` | the condition must not be false |
# | `PRIMARY KEY` | unique and not NULL, one per table |
# | `REFERENCES table (column)` | a foreign key: the value must exist there |
#
# Each violation raises `sqlite3.IntegrityError`, and the statement changes nothing:

# %%
lab.execute("DROP TABLE IF EXISTS suppliers")
lab.execute("""
CREATE TABLE suppliers (
    supplier_id INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    country     TEXT NOT NULL DEFAULT 'DE' CHECK (length(country) = 2 AND country = upper(country)),
    rating      INTEGER CHECK (rating BETWEEN 1 AND 5),  -- NULL allowed: not rated yet
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)""")
attempts = [
    ("Acme Books", "orders@acme.example", "GB", 4),
    ("Bolt Bikes", "hello@bolt.example", None, None),   # country omitted: DEFAULT 'DE'
    (None, "anon@example.com", "FR", 3),                 # no name
    ("Acme again", "orders@acme.example", "GB", 5),      # the same e-mail
    ("Lower Case Ltd", "ll@example.com", "fr", 2),       # breaks the CHECK on country
    ("Too Good", "tg@example.com", "IT", 7),             # rating out of range
]
for name, email, country, rating in attempts:
    columns = ["name", "email", "rating"] + (["country"] if country else [])
    values = [name, email, rating] + ([country] if country else [])
    try:
        with lab:
            marks = ", ".join("?" for _ in values)
            lab.execute(f"INSERT INTO suppliers ({', '.join(columns)}) VALUES ({marks})", values)
        print(f"accepted  {name!r}")
    except sqlite3.IntegrityError as exc:
        print(f"rejected  {name!r}: {exc}")

# %%
for row in lab.execute("SELECT supplier_id, name, country, rating, "
                       "created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] *' AS has_timestamp "
                       "FROM suppliers ORDER BY supplier_id"):
    print(row)

# %% [markdown]
# (The `f"..."` strings above only assemble column names and `?` marks from the program's own
# lists; the *values* still travel as parameters. Section 11 shows why that distinction matters.)
#
# ### Foreign keys: declared, but off by default
#
# A foreign key promises that `orders.user_id` always names an existing user. For historical
# reasons SQLite **does not check foreign keys unless each connection asks for it** with
# `PRAGMA foreign_keys = ON` (outside a transaction). Without it, nothing stops an order for a
# customer who does not exist:

# %%
new_order = ("INSERT INTO orders (order_id, user_id, ordered_at, status, shipping_country) "
             "VALUES (999001, 999999, '2026-06-30 12:00:00', 'paid', 'DE')")
with closing(sqlite3.connect(shop_path)) as conn:
    print("PRAGMA foreign_keys on a new connection:", conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute(new_order)
    print("an order for user 999999 was accepted; rows breaking a foreign key:",
          conn.execute("PRAGMA foreign_key_check").fetchall())
    conn.rollback()  # undo it

    conn.execute("PRAGMA foreign_keys = ON")
    try:
        conn.execute(new_order)
    except sqlite3.IntegrityError as exc:
        print("with foreign_keys = ON:", exc)

# %% [markdown]
# `PRAGMA foreign_key_check` lists rows that break a foreign key (each as table, rowid, parent
# table, constraint number), useful after loading data with the checks off. A foreign key can also
# say what happens when the parent row is deleted: the default refuses the delete while children
# exist; `ON DELETE CASCADE` deletes the children too; `ON DELETE SET NULL` empties their key.

# %%
lab.executescript("""
DROP TABLE IF EXISTS answers; DROP TABLE IF EXISTS questions;
CREATE TABLE questions (question_id INTEGER PRIMARY KEY, title TEXT NOT NULL);
CREATE TABLE answers (
    answer_id   INTEGER PRIMARY KEY,
    question_id INTEGER NOT NULL REFERENCES questions (question_id) ON DELETE CASCADE,
    body        TEXT NOT NULL
);
INSERT INTO questions VALUES (1, 'Is SQLite a real database?');
INSERT INTO answers (question_id, body) VALUES (1, 'Yes.'), (1, 'The most deployed one.');
""")
with lab:
    lab.execute("DELETE FROM questions WHERE question_id = 1")
print("answers left after deleting their question:", lab.execute("SELECT count(*) FROM answers").fetchone()[0])

# %% [markdown]
# ### Indexes
#
# To find the orders of one customer, SQLite must read the whole `orders` table (a **scan**),
# unless an **index** on `user_id` lets it jump to the right rows (a **search**). Unlike MySQL,
# SQLite does not index foreign keys by itself. `EXPLAIN QUERY PLAN` shows which it will do;
# chapter 07 measures what indexes are worth.

# %%
query = "SELECT order_id, ordered_at FROM orders WHERE user_id = ?"
with closing(sqlite3.connect(shop_path)) as conn:
    with conn:
        conn.execute("DROP INDEX IF EXISTS orders_user_id")  # so that a re-run shows "before" again
    print("before:", conn.execute("EXPLAIN QUERY PLAN " + query, (42,)).fetchone()[-1])
    with conn:
        conn.execute("CREATE INDEX IF NOT EXISTS orders_user_id ON orders (user_id)")
    print("after: ", conn.execute("EXPLAIN QUERY PLAN " + query, (42,)).fetchone()[-1])
    print("orders of user 42:", len(conn.execute(query, (42,)).fetchall()))

# %% [markdown]
# `CREATE UNIQUE INDEX` doubles as a constraint, and an index can be on an **expression**. This one
# makes e-mails unique *after cleaning*, so `' Ada@Example.com'` can no longer sneak in beside
# `'ada@example.com'`:

# %%
with closing(sqlite3.connect(shop_path)) as conn:
    with conn:
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS users_clean_email ON users (lower(trim(email)))")
    email = conn.execute("SELECT email FROM users WHERE user_id = 1").fetchone()[0]
    try:
        with conn:
            conn.execute("INSERT INTO users (email, full_name, country, signup_at, is_active, marketing_opt_in) "
                         "VALUES (?, 'A Duplicate', 'ES', '2026-06-30 12:00:00', 1, 0)", ("  " + email.upper(),))
    except sqlite3.IntegrityError as exc:
        print(f"{'  ' + email.upper()!r} refused:", exc)

# %% [markdown]
# ### ALTER TABLE
#
# SQLite's `ALTER TABLE` can rename a table, rename a column, add a column and (3.35+) drop one.
# A new `NOT NULL` column needs a `DEFAULT` for the rows already there.

# %%
lab.execute("DROP TABLE IF EXISTS vendors")
lab.execute("CREATE TABLE suppliers_copy AS SELECT * FROM suppliers")  # keep `suppliers` for re-runs
lab.execute("ALTER TABLE suppliers_copy RENAME TO vendors")
lab.execute("ALTER TABLE vendors RENAME COLUMN rating TO score")
lab.execute("ALTER TABLE vendors ADD COLUMN phone TEXT")
lab.execute("ALTER TABLE vendors ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1")
lab.execute("ALTER TABLE vendors DROP COLUMN phone")
try:
    lab.execute("ALTER TABLE vendors ADD COLUMN code TEXT NOT NULL")
except sqlite3.OperationalError as exc:
    print("refused:", exc)
print([row[1] for row in lab.execute("PRAGMA table_info(vendors)")])

# %% [markdown]
# What it cannot do is change an existing column: its type, a `CHECK`, a foreign key. For those
# the recipe is to **rebuild** the table in one transaction: create the new table under a
# temporary name, copy the rows with `INSERT INTO new SELECT ... FROM old`, drop the old table,
# rename the new one, then recreate its indexes (with `PRAGMA foreign_keys = OFF` during the swap
# and `PRAGMA foreign_key_check` after it). Migration tools such as Alembic (chapter 04) automate
# this "batch" mode.

# %%
lab.close()

# %% [markdown]
# ### Exercise 01.7 · A table with every kind of constraint (practice)
#
# The shop wants discount coupons. Write the `CREATE TABLE` statement for `coupons`, as a string in
# `coupons_ddl`, with these columns and rules:
#
# | Column | Rule |
# |---|---|
# | `coupon_id` | integer primary key, numbered automatically |
# | `code` | text, required, unique |
# | `percent_off` | integer, required, from 5 to 50 (both included) |
# | `user_id` | optional (NULL = anyone may use it); otherwise must be a `user_id` of `users` |
# | `max_uses` | integer, required, at least 1, 1 when not given |
# | `created_at` | text, required, the time of the insert when not given |
#
# The check runs your DDL on a fresh database that has a `users` table with users 1 and 2 (and
# `PRAGMA foreign_keys = ON`), then inserts good and bad coupons and looks at which are refused.

# %% nbgrader={"grade": false, "grade_id": "ex01-7-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
coupons_ddl = """
CREATE TABLE coupons (
    coupon_id   INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    percent_off INTEGER NOT NULL CHECK (percent_off BETWEEN 5 AND 50),
    user_id     INTEGER REFERENCES users (user_id),
    max_uses    INTEGER NOT NULL DEFAULT 1 CHECK (max_uses >= 1),
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-7-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.coupons(coupons_ddl)
### BEGIN HIDDEN TESTS
check.coupons(coupons_ddl, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Changing data from Python: CRUD with placeholders
#
# CRUD is **c**reate, **r**ead, **u**pdate, **d**elete: `INSERT`, `SELECT`, `UPDATE`, `DELETE`.
# From Python, values always travel as **parameters**, never pasted into the SQL text:
#
# * `?` placeholders take a tuple (or list), by position: `execute("... WHERE id = ?", (42,))`;
#   note the comma, `(42,)` is a tuple and `(42)` is just 42;
# * named placeholders `:name` take a dict: `execute("... WHERE id = :id", {"id": 42})`.
#
# The driver hands the values to SQLite separately from the statement, so a quote or a semicolon
# in a value is just a character (section 11 shows what goes wrong otherwise). Each block below is
# one transaction (`with conn:` commits at the end, or rolls back on an error; section 9).

# %%
conn = sqlite3.connect(shop_path)  # used by the next cells of this section; the last one closes it
conn.row_factory = sqlite3.Row
conn.execute("PRAGMA foreign_keys = ON")

email = "siobhan.oreilly@example.ie"
with conn:  # if an earlier run of this section stopped before its last cell, remove what it left
    for (old_user,) in conn.execute("SELECT user_id FROM users WHERE email = ?", (email,)).fetchall():
        conn.execute("DELETE FROM order_items WHERE order_id IN (SELECT order_id FROM orders WHERE user_id = ?)",
                     (old_user,))
        for table in ("orders", "reviews", "users"):
            conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (old_user,))

with conn:
    cur = conn.execute(
        "INSERT INTO users (email, full_name, country, city, birth_year, signup_at, is_active, marketing_opt_in) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (email, "Siobhán O'Reilly", "IE", "Cork", None, "2026-06-30 12:00:00", 1, 0))
    new_user = cur.lastrowid
print("new user_id:", new_user)

with conn:
    order = {"user_id": new_user, "at": "2026-06-30 12:05:00", "status": "pending", "country": "IE"}
    order_id = conn.execute("INSERT INTO orders (user_id, ordered_at, status, shipping_country) "
                            "VALUES (:user_id, :at, :status, :country)", order).lastrowid
    lines = [{"order_id": order_id, "sku": "SKU-000001", "quantity": 2},
             {"order_id": order_id, "sku": "SKU-000087", "quantity": 1},
             {"order_id": order_id, "sku": "SKU-NO-SUCH", "quantity": 9}]
    cur = conn.executemany("INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                           "SELECT :order_id, product_id, :quantity, price FROM products WHERE sku = :sku", lines)
    print(f"order {order_id}: {cur.rowcount} items inserted from {len(lines)} lines (one sku does not exist)")

for row in conn.execute("SELECT p.sku, i.quantity, i.unit_price FROM order_items AS i "
                        "JOIN products AS p ON p.product_id = i.product_id WHERE i.order_id = ? ORDER BY p.sku",
                        (order_id,)):
    print(dict(row))

# %% [markdown]
# `INSERT ... SELECT` copies rows produced by a query: here it looks up each product by its `sku`
# and records today's price as the price paid. `rowcount` tells `UPDATE` and `DELETE` how many
# rows they touched, which makes a **guarded update** easy to check: pay the order only if it is
# still pending. The second attempt changes nothing:

# %%
for attempt in (1, 2):
    with conn:
        cur = conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = ? AND status = 'pending'", (order_id,))
    print(f"attempt {attempt}: {cur.rowcount} row(s) updated")

# %% [markdown]
# Two modern SQLite features save a round trip. `RETURNING` (3.35+) hands back values of the rows
# an `INSERT`, `UPDATE` or `DELETE` changed, and an **upsert**, `INSERT ... ON CONFLICT (...) DO
# UPDATE`, updates the row that is already there instead of failing (`excluded` is the row that
# could not be inserted):

# %%
with conn:
    row = conn.execute("UPDATE products SET stock = stock - 2 WHERE sku = ? RETURNING product_id, stock",
                       ("SKU-000001",)).fetchone()
print("RETURNING:", dict(row))

review = ("INSERT INTO reviews (product_id, user_id, rating, title, body, created_at) VALUES (?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (product_id, user_id) DO UPDATE SET rating = excluded.rating, title = excluded.title")
with conn:
    conn.execute(review, (1, new_user, 3, "Fine", None, "2026-06-30 13:00:00"))
    conn.execute(review, (1, new_user, 5, "Love it, on second thought", None, "2026-06-30 14:00:00"))
print([dict(r) for r in conn.execute("SELECT rating, title FROM reviews WHERE user_id = ?", (new_user,))])

# %% [markdown]
# Deleting respects the foreign keys: the customer cannot go while their order and review still
# point at them. Delete the children first (or declare `ON DELETE CASCADE`):

# %%
try:
    with conn:
        conn.execute("DELETE FROM users WHERE user_id = ?", (new_user,))
except sqlite3.IntegrityError as exc:
    print("the customer cannot be deleted yet:", exc)

with conn:
    deleted = {
        "order_items": conn.execute("DELETE FROM order_items WHERE order_id = ?", (order_id,)).rowcount,
        "orders": conn.execute("DELETE FROM orders WHERE order_id = ?", (order_id,)).rowcount,
        "reviews": conn.execute("DELETE FROM reviews WHERE user_id = ?", (new_user,)).rowcount,
        "users": conn.execute("DELETE FROM users WHERE user_id = ?", (new_user,)).rowcount,
    }
    conn.execute("UPDATE products SET stock = stock + 2 WHERE sku = ?", ("SKU-000001",))
print("deleted:", deleted)
conn.close()

# %% [markdown]
# `executemany` also accepts a **generator**, so rows can stream from a file or another query
# without a list in memory, and doing all of them in **one transaction** is what makes bulk loads
# fast (section 10 measures it).
#
# ### Exercise 01.8 · Restock with executemany (practice)
#
# A delivery arrives as a list of `(sku, quantity)` pairs. Write `restock(conn, deliveries)` that
#
# * adds each quantity to the `stock` of the product with that `sku`, with **one** `executemany`
#   call (a sku may appear twice: both deliveries count; an unknown sku changes nothing);
# * commits the change (and leaves the connection open: it is the caller's);
# * returns the `rowcount` of the cursor that `executemany` returns: the row updates summed over
#   all the pairs, so a sku delivered twice counts twice and an unknown sku counts 0.
#
# The check calls it on a connection to a copy of the shop (a connection that also notes whether
# `execute` or `executemany` ran), and reads the stock back through a new connection, which sees
# only committed data.

# %% nbgrader={"grade": false, "grade_id": "ex01-8-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def restock(conn, deliveries):
    with conn:
        cur = conn.executemany("UPDATE products SET stock = stock + ? WHERE sku = ?",
                               ((quantity, sku) for sku, quantity in deliveries))
    return cur.rowcount
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-8-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.restock(restock, course)
### BEGIN HIDDEN TESTS
check.restock(restock, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 8. Relational modelling and normalization
#
# **Modelling** decides which tables exist and how they relate. Three kinds of relationship cover
# almost everything:
#
# ```mermaid
# erDiagram
#     users ||--o| user_settings : "one-to-one"
#     users ||--o{ orders : "one-to-many"
#     posts ||--o{ post_tags : "many-to-many..."
#     tags ||--o{ post_tags : "...through a junction table"
# ```
#
# * **One-to-many** (a customer has many orders, an order has one customer): the foreign key goes
#   on the "many" side, `orders.user_id`.
# * **One-to-one** (a customer has at most one settings row): the foreign key is *also* the primary
#   key of the second table, so a second row for the same customer is impossible. Use it for
#   optional or rarely read columns, or data with other access rules.
# * **Many-to-many** (a post has many tags, a tag is on many posts): neither table can hold the
#   other's key, so a **junction table** holds one row per pair, `post_tags (post_id, tag_id)`,
#   with the pair as its primary key.

# %%
with closing(sqlite3.connect(shop_path)) as conn:
    conn.execute("PRAGMA foreign_keys = ON")
    with conn:
        conn.execute("DROP TABLE IF EXISTS user_settings")
        conn.execute("""
            CREATE TABLE user_settings (
                user_id  INTEGER PRIMARY KEY REFERENCES users (user_id),  -- the key IS the foreign key
                theme    TEXT NOT NULL DEFAULT 'light' CHECK (theme IN ('light', 'dark')),
                language TEXT NOT NULL DEFAULT 'en'
            )""")
        conn.execute("INSERT INTO user_settings (user_id, theme) VALUES (1, 'dark')")
    try:
        conn.execute("INSERT INTO user_settings (user_id) VALUES (1)")
    except sqlite3.IntegrityError as exc:
        print("a second settings row for user 1:", exc)

# %% [markdown]
# Reading a many-to-many relationship takes two joins through the junction table; `group_concat`
# folds the tags of each post into one string for display. In which order? Before version 3.44,
# SQLite's documentation calls the order of the concatenated values *arbitrary*. Sorting the rows
# in a subquery first, as below, gives sorted tags with today's SQLite, but that is how it happens
# to work, not a promise:

# %% language="sql"
# SELECT post_id, title, group_concat(tag, ', ') AS tags
# FROM (SELECT p.post_id, p.title, t.name AS tag
#       FROM posts AS p
#       JOIN post_tags AS pt ON pt.post_id = p.post_id
#       JOIN tags AS t ON t.tag_id = pt.tag_id
#       WHERE p.post_id <= 4
#       ORDER BY p.post_id, t.name)
# GROUP BY post_id, title
# ORDER BY post_id

# %% [markdown]
# SQLite 3.44 (2023) added the form that *guarantees* the order, an `ORDER BY` inside the
# aggregate: `group_concat(tag, ', ' ORDER BY tag)`. PostgreSQL writes it
# `string_agg(tag, ', ' ORDER BY tag)` and MySQL `GROUP_CONCAT(tag ORDER BY tag SEPARATOR ', ')`.
# Older SQLite versions refuse it with a syntax error. Which one does your Python have?

# %% tags=["nbval-ignore-output"]
ordered_tags = """
SELECT p.post_id, group_concat(t.name, ', ' ORDER BY t.name) AS tags
FROM posts AS p
JOIN post_tags AS pt ON pt.post_id = p.post_id
JOIN tags AS t ON t.tag_id = pt.tag_id
WHERE p.post_id <= 4
GROUP BY p.post_id
ORDER BY p.post_id
"""
with closing(sqlite3.connect(shop_path)) as conn:
    try:
        print(f"SQLite {sqlite3.sqlite_version} accepts ORDER BY inside group_concat:", conn.execute(ordered_tags).fetchall())
    except sqlite3.OperationalError as exc:
        print(f"SQLite {sqlite3.sqlite_version} is older than 3.44 and refuses ORDER BY inside group_concat: {exc}")

# %% [markdown]
# When the order matters and the SQLite your program will run with may be older than 3.44, the way
# that works everywhere is to let SQL sort the pairs (`ORDER BY` on a query's result is always
# honoured) and join the strings in Python:

# %%
from itertools import groupby

with closing(sqlite3.connect(shop_path)) as conn:
    pairs = conn.execute("SELECT pt.post_id, t.name FROM post_tags AS pt JOIN tags AS t ON t.tag_id = pt.tag_id "
                         "WHERE pt.post_id <= 4 ORDER BY pt.post_id, t.name").fetchall()
for post_id, group in groupby(pairs, key=lambda pair: pair[0]):
    print(post_id, ", ".join(tag for _, tag in group))

# %% [markdown]
# ### Normalization: each fact in one place
#
# Spreadsheets and CSV exports are usually **flat**: every line repeats everything. Here is the
# shop as one flat table of order lines, built with `CREATE TABLE ... AS SELECT`:

# %% language="sql"
# DROP TABLE IF EXISTS order_lines_flat;
# CREATE TABLE order_lines_flat AS
# SELECT o.order_id, o.ordered_at, u.user_id AS customer_id, u.email AS customer_email,
#        u.full_name AS customer_name, p.sku, p.name AS product_name, c.name AS category,
#        i.quantity, i.unit_price
# FROM order_items AS i
# JOIN orders AS o ON o.order_id = i.order_id
# JOIN users AS u ON u.user_id = o.user_id
# JOIN products AS p ON p.product_id = i.product_id
# JOIN categories AS c ON c.category_id = p.category_id;
# SELECT customer_id, customer_email, count(*) AS copies_of_the_email
# FROM order_lines_flat
# GROUP BY customer_id, customer_email
# ORDER BY copies_of_the_email DESC, customer_id
# LIMIT 3

# %% [markdown]
# Customer 1367's e-mail is stored 110 times, once per order line. Redundancy wastes space, but the real damage is the
# **anomalies** it causes:
#
# * **Update anomaly**: the customer changes their e-mail, and an update that misses some of the
#   copies leaves two "truths".
# * **Insertion anomaly**: a new product cannot be recorded until someone orders it, since every
#   row is an order line.
# * **Deletion anomaly**: deleting the only order of a product deletes the product's name too.
#
# Here is the update anomaly happening: support changes the e-mail "on the customer's latest
# order", the way a flat sheet invites you to.

# %% language="sql"
# UPDATE order_lines_flat SET customer_email = 'new.address@example.com'
# WHERE order_id = (SELECT max(order_id) FROM order_lines_flat WHERE customer_id = 1367);
# SELECT customer_email, count(*) AS lines
# FROM order_lines_flat
# WHERE customer_id = 1367
# GROUP BY customer_email
# ORDER BY customer_email

# %% [markdown]
# Which address is right? The data cannot say any more. In the normalized shop the e-mail lives in
# exactly one row of `users`, and one `UPDATE` of one row changes it everywhere.
#
# **Normalizing** means splitting a table until every fact is stored once. The *normal forms*
# name the steps:
#
# * **1NF**: one value per cell. No lists inside a column (`tags = 'sql, python'`), no repeating
#   columns (`phone1`, `phone2`, `phone3`); they become rows of another table.
# * **2NF**: every column depends on the **whole** key. In a table keyed by `(order_id, sku)`,
#   `product_name` depends on `sku` alone, so it moves to `products`.
# * **3NF**: columns depend on **nothing but** the key. `customer_email` depends on `customer_id`,
#   not on the order line, so it moves to `users`.
#
# ("The key, the whole key and nothing but the key.") Why 1NF matters, in one query: with the tags
# stored as one comma-separated string, "posts tagged sql" becomes a `LIKE` that also matches
# `postgresql`, `mysql` and `sqlite`:

# %% language="sql"
# WITH posts_flat AS (
#     SELECT pt.post_id, group_concat(t.name, ',') AS tags
#     FROM post_tags AS pt JOIN tags AS t ON t.tag_id = pt.tag_id
#     GROUP BY pt.post_id
# )
# SELECT (SELECT count(*) FROM posts_flat WHERE tags LIKE '%sql%') AS "tags LIKE '%sql%'",
#        (SELECT count(*) FROM post_tags AS pt JOIN tags AS t ON t.tag_id = pt.tag_id
#         WHERE t.name = 'sql') AS "tagged sql"

# %% [markdown]
# **Denormalizing on purpose** is sometimes right: a reporting table rebuilt every night, a cached
# total, a MongoDB document that embeds what is always read together (chapter 05). And not every
# copy is redundancy: `order_items.unit_price` *looks* like a copy of `products.price`, but it is a
# different fact, the price on the day of the order, which must not change when today's price does.
#
# ### Exercise 01.9 · Normalize a wish list (challenge)
#
# A partner sends wish lists as a flat table, one row per (customer, product):
# `wishlist_flat (email, full_name, sku, product_name, added_at)`. This cell builds a scratch
# database with a sample, so that you can try your script on it:

# %%
wishlist_db = course.path("wishlist.db")
wishlist_db.unlink(missing_ok=True)
with closing(sqlite3.connect(wishlist_db)) as conn:
    with conn:
        conn.execute(check.WISHLIST_FLAT_DDL)
        conn.executemany("INSERT INTO wishlist_flat VALUES (?, ?, ?, ?, ?)", check.wishlist_rows())
    flat = pd.read_sql_query("SELECT * FROM wishlist_flat", conn)
flat

# %% [markdown]
# Write `wishlist_sql`, a **script** (several statements separated by `;`, run with
# `conn.executescript`) that creates three normalized tables and fills them from `wishlist_flat`:
#
# * `wishlist_users (user_id, email, full_name)`: `user_id` numbered automatically, `email`
#   required and unique, `full_name` required;
# * `wishlist_products (product_id, sku, name)`: `product_id` numbered automatically, `sku`
#   required and unique, `name` required;
# * `wishlist_items (user_id, product_id, added_at)`: the many-to-many junction; both ids required
#   and foreign keys to the tables above, `added_at` required, and **the pair (user_id,
#   product_id) is the primary key**.
#
# `INSERT INTO t (columns) SELECT DISTINCT ...` fills a table from a query; the junction needs the
# new ids, which you get by joining `wishlist_flat` to the two new tables on `email` and `sku`.
# The check runs your script on a fresh copy of the flat table (the hidden tests on different
# rows), joins your three tables back together, and tries rows that the keys must refuse.

# %% nbgrader={"grade": false, "grade_id": "ex01-9-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
wishlist_sql = """
CREATE TABLE wishlist_users (
    user_id   INTEGER PRIMARY KEY,
    email     TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL
);
CREATE TABLE wishlist_products (
    product_id INTEGER PRIMARY KEY,
    sku        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL
);
CREATE TABLE wishlist_items (
    user_id    INTEGER NOT NULL REFERENCES wishlist_users (user_id),
    product_id INTEGER NOT NULL REFERENCES wishlist_products (product_id),
    added_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
INSERT INTO wishlist_users (email, full_name)
SELECT DISTINCT email, full_name FROM wishlist_flat ORDER BY email;
INSERT INTO wishlist_products (sku, name)
SELECT DISTINCT sku, product_name FROM wishlist_flat ORDER BY sku;
INSERT INTO wishlist_items (user_id, product_id, added_at)
SELECT u.user_id, p.product_id, f.added_at
FROM wishlist_flat AS f
JOIN wishlist_users AS u ON u.email = f.email
JOIN wishlist_products AS p ON p.sku = f.sku;
"""
with closing(sqlite3.connect(wishlist_db)) as conn:
    conn.executescript("DROP TABLE IF EXISTS wishlist_items; DROP TABLE IF EXISTS wishlist_users; "
                       "DROP TABLE IF EXISTS wishlist_products;")
    conn.executescript(wishlist_sql)
    print(conn.execute("SELECT count(*) FROM wishlist_users").fetchone()[0], "customers,",
          conn.execute("SELECT count(*) FROM wishlist_products").fetchone()[0], "products,",
          conn.execute("SELECT count(*) FROM wishlist_items").fetchone()[0], "wish-list items")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-9-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.wishlists(wishlist_sql)
### BEGIN HIDDEN TESTS
check.wishlists(wishlist_sql, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 9. Transactions and a connection context manager
#
# A **transaction** groups statements into one all-or-nothing unit: `COMMIT` makes all of its
# changes permanent at once, `ROLLBACK` undoes all of them, and until the commit other connections
# see none of them. (Chapter 00 introduced ACID; chapter 02 puts two connections side by side.)
#
# How Python's `sqlite3` drives transactions, in the Python 3.11 used here:
#
# * Before an `INSERT`, `UPDATE`, `DELETE` or `REPLACE`, it opens a transaction by itself (an
#   implicit `BEGIN`); `SELECT` and DDL statements do not open one.
# * Nothing is permanent until `conn.commit()`; `conn.rollback()` undoes everything since the
#   `BEGIN`; `conn.in_transaction` says whether one is open. **Closing a connection without
#   committing throws the changes away.**
# * `sqlite3.connect(path, isolation_level=None)` switches this off (autocommit: every statement
#   is its own transaction), and you write `BEGIN` / `COMMIT` yourself.
# * Python 3.12 adds `sqlite3.connect(path, autocommit=False)`, the recommended mode from then on:
#   a transaction is always open, and `commit()` / `rollback()` start the next one.

# %%
tx_db = course.path("transactions.db")
tx_db.unlink(missing_ok=True)
with closing(sqlite3.connect(tx_db)) as conn:
    conn.execute("CREATE TABLE visits (page TEXT NOT NULL)")
    print("after CREATE TABLE, in a transaction:", conn.in_transaction)
    conn.execute("INSERT INTO visits VALUES ('home')")
    print("after INSERT, in a transaction:      ", conn.in_transaction)
    conn.rollback()
    print("after rollback, rows:", conn.execute("SELECT count(*) FROM visits").fetchone()[0])

# %% [markdown]
# Used as a context manager, a connection manages **the transaction, not the connection**:
# `with conn:` commits when the block ends normally and rolls back when an exception escapes it,
# but it does **not close** the connection (a common misunderstanding, found in many tutorials).
# That is why this chapter writes `with closing(sqlite3.connect(...)) as conn:`.

# %%
conn = sqlite3.connect(tx_db)
with conn:
    conn.execute("DELETE FROM visits WHERE page = 'about'")  # so that this cell can run again
    conn.execute("INSERT INTO visits VALUES ('about')")
print("after `with conn:` the connection is still open:",
      conn.execute("SELECT page FROM visits WHERE page = 'about'").fetchall())
conn.close()
try:
    conn.execute("SELECT 1")
except sqlite3.ProgrammingError as exc:
    print("after conn.close():", exc)

# %% [markdown]
# So let us write the context manager we actually want, for one **unit of work**: open and
# configure the connection, commit on success, roll back on any error, and always close.

# %%
from contextlib import contextmanager


@contextmanager
def connect(path, **kwargs):
    """One unit of work on an SQLite file: commit on success, roll back on error, always close."""
    conn = sqlite3.connect(path, **kwargs)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


with connect(tx_db) as conn:
    conn.execute("DELETE FROM visits WHERE page IN ('contact', 'checkout')")  # so that this cell can run again
    conn.execute("INSERT INTO visits VALUES ('contact')")
try:
    with connect(tx_db) as conn:
        conn.execute("INSERT INTO visits VALUES ('checkout')")
        raise RuntimeError("payment service down")
except RuntimeError as exc:
    print("the unit of work failed:", exc)
with connect(tx_db) as conn:
    print("pages stored:", [row["page"] for row in conn.execute("SELECT page FROM visits ORDER BY page")])

# %% [markdown]
# ### A points transfer
#
# Customers collect loyalty points and can give them to each other. Each customer has a
# wallet whose balance can never go below zero, and every transfer is logged:

# %%
points_schema = """
CREATE TABLE wallets (
    user_id INTEGER PRIMARY KEY,
    points  INTEGER NOT NULL CHECK (points >= 0)
);
CREATE TABLE transfers (
    transfer_id INTEGER PRIMARY KEY,
    from_user   INTEGER NOT NULL REFERENCES wallets (user_id),
    to_user     INTEGER NOT NULL REFERENCES wallets (user_id),
    points      INTEGER NOT NULL CHECK (points > 0),
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""
points_db = course.path("points.db")


def fresh_wallets():
    points_db.unlink(missing_ok=True)
    with connect(points_db) as conn:
        conn.executescript(points_schema)
        conn.executemany("INSERT INTO wallets (user_id, points) VALUES (?, ?)", [(1, 100), (2, 50), (3, 0)])


def balances():
    with connect(points_db) as conn:
        return dict(conn.execute("SELECT user_id, points FROM wallets ORDER BY user_id").fetchall())


fresh_wallets()
print(balances())

# %% [markdown]
# First, what goes wrong **without** a transaction. This version runs in autocommit mode, so each
# `UPDATE` is committed on its own, and it fails between the two:

# %%
def transfer_without_transaction(conn, sender, recipient, points):
    conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ?", (points, sender))
    if conn.execute("SELECT 1 FROM wallets WHERE user_id = ?", (recipient,)).fetchone() is None:
        raise ValueError(f"user {recipient} has no wallet")
    conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?", (points, recipient))


fresh_wallets()  # 100, 50 and 0 points again
with closing(sqlite3.connect(points_db, isolation_level=None)) as conn:  # autocommit
    try:
        transfer_without_transaction(conn, 1, 99, 30)  # user 99 does not exist
    except ValueError as exc:
        print("failed:", exc)
print("balances:", balances(), "| 30 points have vanished")

# %% [markdown]
# The fix is to make the transfer **one transaction**: both updates and the log entry commit
# together, or none does. The function also checks its own preconditions: the `UPDATE` that takes
# the points succeeds only if the balance suffices (`AND points >= ?`), and `rowcount` says whether
# it did.
#
# ```mermaid
# sequenceDiagram
#     participant App
#     participant DB as SQLite
#     App->>DB: BEGIN (implicit, before the first UPDATE)
#     App->>DB: UPDATE wallets SET points = points - 30 WHERE user_id = 1 AND points >= 30
#     DB-->>App: rowcount 1 (or 0: insufficient points, raise)
#     App->>DB: UPDATE wallets SET points = points + 30 WHERE user_id = 2
#     DB-->>App: rowcount 1 (or 0: unknown recipient, raise)
#     App->>DB: INSERT INTO transfers ...
#     alt everything succeeded
#         App->>DB: COMMIT: all three changes at once
#     else an exception
#         App->>DB: ROLLBACK: none of them
#     end
# ```

# %%
def transfer_points(conn, sender, recipient, points):
    """Move points from sender to recipient: all of it, or nothing (ValueError)."""
    if points <= 0:
        raise ValueError("the number of points must be positive")
    with conn:  # one transaction: commit at the end, roll back if anything raises
        taken = conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ? AND points >= ?",
                             (points, sender, points)).rowcount
        if taken != 1:
            raise ValueError(f"user {sender} has no wallet or fewer than {points} points")
        given = conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?", (points, recipient)).rowcount
        if given != 1:
            raise ValueError(f"user {recipient} has no wallet")
        conn.execute("INSERT INTO transfers (from_user, to_user, points) VALUES (?, ?, ?)", (sender, recipient, points))


fresh_wallets()
for sender, recipient, points in [(1, 2, 30), (3, 1, 10), (1, 99, 30)]:
    try:
        with connect(points_db) as conn:
            transfer_points(conn, sender, recipient, points)
        print(f"{sender} -> {recipient}, {points} points: done")
    except ValueError as exc:
        print(f"{sender} -> {recipient}, {points} points: refused, nothing changed ({exc})")
print("balances:", balances(), "| total:", sum(balances().values()))

# %% [markdown]
# The total stays 150 whatever fails. Two more tools for real applications. `BEGIN IMMEDIATE`
# takes the write lock at the *start* of a transaction that reads before it writes: with a plain
# `BEGIN`, two such transactions can both read, and then one of them fails with `database is
# locked` when it tries to write, however long its busy timeout (section 10 explains the locks).
# And the `CHECK (points >= 0)` on the table is the last line of defence, should a bug ever skip
# the test in the code.
#
# ### Exercise 01.10 · Send points to several people, all or nothing (practice)
#
# Write `send_points(conn, sender, payments)` where `payments` is a dict `{recipient: points}`,
# e.g. `{2: 30, 3: 20}`, on the wallets schema above:
#
# * each payment moves its points from `sender` to the recipient and adds one row to `transfers`;
# * **all or nothing**: if any payment is invalid (not a positive whole number of points, an
#   unknown sender or recipient, or a total larger than the sender's balance), raise `ValueError`
#   and change nothing, not even the payments that came before the bad one;
# * commit on success, and leave the connection open.
#
# The check uses its own wallets database; after each call it compares what your connection and a
# brand-new connection see.

# %% nbgrader={"grade": false, "grade_id": "ex01-10-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def send_points(conn, sender, payments):
    if any(not isinstance(points, int) or points <= 0 for points in payments.values()):
        raise ValueError("every payment must be a positive number of points")
    with conn:
        for recipient, points in payments.items():
            taken = conn.execute("UPDATE wallets SET points = points - ? WHERE user_id = ? AND points >= ?",
                                 (points, sender, points)).rowcount
            if taken != 1:
                raise ValueError(f"user {sender} has no wallet or not enough points")
            given = conn.execute("UPDATE wallets SET points = points + ? WHERE user_id = ?",
                                 (points, recipient)).rowcount
            if given != 1:
                raise ValueError(f"user {recipient} has no wallet")
            conn.execute("INSERT INTO transfers (from_user, to_user, points) VALUES (?, ?, ?)",
                         (sender, recipient, points))


fresh_wallets()
with connect(points_db) as conn:
    send_points(conn, 1, {2: 30, 3: 20})
print(balances())
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-10-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.send_points(send_points)
### BEGIN HIDDEN TESTS
check.send_points(send_points, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 10. Concurrency: WAL mode and threads
#
# SQLite lets **many readers, but one writer at a time**, for the whole file. How readers and the
# writer get along depends on the **journal mode**:
#
# * **Rollback journal** (`DELETE`, the default): a writer copies the pages it changes into a
#   journal file and writes the database in place. To commit it needs the file to itself, so a
#   reader in the middle of a read transaction holds up the commit (and a committing writer holds
#   up new readers).
# * **WAL** (write-ahead log): a writer appends its changes to a `-wal` file and leaves the
#   database alone; now and then a *checkpoint* copies them back. **Readers never block the writer
#   and the writer never blocks readers**: each reader keeps seeing the snapshot it started with.
#   The mode is stored in the file, so it only needs to be set once.
#
# In both modes a second **writer** must wait its turn; the connection's **busy timeout**
# (`sqlite3.connect(..., timeout=5)`, Python's default being 5 seconds) is how long it waits
# before giving up with `database is locked`.
#
# Watch it happen: a report starts a read transaction, a customer buys an item (an update) in
# the middle of it, then the report reads again and ends.

# %%
def report_and_purchase(journal_mode):
    path = course.path(f"journal-{journal_mode.lower()}.db")
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        with conn:
            conn.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL)")
            conn.execute("INSERT INTO stock VALUES ('SKU-000001', 10)")
    report = sqlite3.connect(path, isolation_level=None)
    customer = sqlite3.connect(path, isolation_level=None, timeout=0.2)  # wait at most 0.2 s for a lock
    try:
        report.execute("BEGIN")
        first_read = report.execute("SELECT qty FROM stock").fetchone()[0]
        try:
            customer.execute("UPDATE stock SET qty = qty - 1")  # autocommit: commits at once, if it can
            purchase = "committed"
        except sqlite3.OperationalError as exc:
            purchase = f"failed: {exc}"
        second_read = report.execute("SELECT qty FROM stock").fetchone()[0]
        report.execute("COMMIT")
        after = report.execute("SELECT qty FROM stock").fetchone()[0]
    finally:
        report.close()
        customer.close()
    print(f"{journal_mode:>6}: purchase {purchase}; the report read {first_read} then {second_read}; "
          f"after the report: {after}")


report_and_purchase("DELETE")
report_and_purchase("WAL")

# %% [markdown]
# With the rollback journal the purchase had to wait for the report and gave up; with WAL it
# committed at once, while the report went on seeing its consistent snapshot (10) until it ended.
#
# ### Threads: one connection per thread
#
# A `sqlite3` connection belongs to the thread that created it: by default
# (`check_same_thread=True`) using it from another thread raises `ProgrammingError`. The simple,
# correct pattern is **one connection per thread** (connections are cheap to open).

# %%
import threading

shared = sqlite3.connect(tx_db)  # created in the notebook's main thread
outcome = []


def use_from_another_thread():
    try:
        shared.execute("SELECT count(*) FROM visits").fetchone()
        outcome.append("it worked")
    except sqlite3.ProgrammingError as exc:
        outcome.append(f"ProgrammingError: {str(exc).split('.')[0]}.")


worker = threading.Thread(target=use_from_another_thread)
worker.start()
worker.join()
shared.close()
print(outcome[0])

# %% [markdown]
# `check_same_thread=False` lifts the guard. Do that only when something else makes sure that one
# thread at a time uses the connection, such as a lock or a connection pool (SQLAlchemy's does
# that for SQLite): the flag does not make the connection safe to share. A connection has only one
# transaction at a time, so two threads using it freely would mix their statements into each
# other's transactions. Here two threads share one connection, and a `threading.Lock` lets one
# thread at a time in, for a whole transaction:

# %%
shared = sqlite3.connect(tx_db, check_same_thread=False)
shared_lock = threading.Lock()
with shared:
    shared.execute("DELETE FROM visits WHERE page LIKE 'thread %'")  # so that this cell can run again


def log_visits(worker, pages=50):
    for n in range(pages):
        with shared_lock:  # wait until no other thread uses the connection...
            with shared:  # ...then one transaction, committed before the lock is released
                shared.execute("INSERT INTO visits VALUES (?)", (f"thread {worker} page {n}",))


sharing = [threading.Thread(target=log_visits, args=(worker,)) for worker in (1, 2)]
for thread in sharing:
    thread.start()
for thread in sharing:
    thread.join()
print("rows the two threads wrote through one shared connection:",
      shared.execute("SELECT count(*) FROM visits WHERE page LIKE 'thread %'").fetchone()[0])
shared.close()

# %% [markdown]
# The lock also means the threads never write at the same time, so they gain nothing from
# running in parallel. The simpler pattern scales better: each thread opens its **own**
# connection. Four writer threads and two reader threads, each with its own connection, in WAL
# mode:

# %%
def open_for_threads(path):
    conn = sqlite3.connect(path, timeout=5)  # wait up to 5 s for the write lock
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL, much faster than FULL
    return conn


app_db = course.path("threads.db")
with closing(open_for_threads(app_db)) as conn:
    with conn:
        conn.execute("DROP TABLE IF EXISTS page_views")
        conn.execute("CREATE TABLE page_views (id INTEGER PRIMARY KEY, worker INTEGER NOT NULL, n INTEGER NOT NULL)")

errors, seen = [], {0: [], 1: []}
writers_done = threading.Event()


def writer(worker, rows=100):
    try:
        with closing(open_for_threads(app_db)) as conn:  # this thread's own connection
            for n in range(rows):
                with conn:  # one short transaction per row
                    conn.execute("INSERT INTO page_views (worker, n) VALUES (?, ?)", (worker, n))
    except sqlite3.Error as exc:
        errors.append(f"writer {worker}: {exc}")


def reader(number):
    try:
        with closing(open_for_threads(app_db)) as conn:
            while not writers_done.is_set():
                seen[number].append(conn.execute("SELECT count(*) FROM page_views").fetchone()[0])
    except sqlite3.Error as exc:
        errors.append(f"reader {number}: {exc}")


writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
readers = [threading.Thread(target=reader, args=(r,)) for r in range(2)]
for thread in readers + writers:
    thread.start()
for thread in writers:
    thread.join()
writers_done.set()
for thread in readers:
    thread.join()

with closing(sqlite3.connect(app_db)) as conn:
    print("rows written by 4 threads:", conn.execute("SELECT count(*) FROM page_views").fetchone()[0])
print("errors:", errors)
print("every reader saw the count only grow:", all(counts == sorted(counts) for counts in seen.values()))

# %% [markdown]
# ### What a commit costs
#
# Each commit must reach the disk (an `fsync`), and that, not the SQL, is what limits writes. Let
# us measure commits per second in four set-ups: the default (`DELETE` journal, `synchronous =
# FULL`), WAL with `FULL`, WAL with `NORMAL` (WAL then syncs at checkpoints, not at every commit: a
# power cut may lose the last commits, but never corrupts the file), and all rows in **one**
# transaction. The numbers depend on your disk and on what else the machine is doing; the lesson
# does not: with the default settings every commit waits for the disk, so write many rows in one
# transaction (or switch to WAL + NORMAL, where a commit no longer waits, and it comes close).

# %% tags=["nbval-ignore-output"]
import time

import matplotlib.pyplot as plt


def inserts_per_second(journal_mode, synchronous, one_transaction=False, n=100):
    path = course.path(f"speed-{journal_mode}-{synchronous}-{one_transaction}.db")
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("CREATE TABLE t (x INTEGER)")
        start = time.perf_counter()
        if one_transaction:
            conn.execute("BEGIN")
        for i in range(n):
            conn.execute("INSERT INTO t VALUES (?)", (i,))  # in autocommit mode, each insert is a commit
        if one_transaction:
            conn.execute("COMMIT")
        return n / (time.perf_counter() - start)


speeds = {
    "DELETE + FULL\n(default)": inserts_per_second("DELETE", "FULL"),
    "WAL + FULL": inserts_per_second("WAL", "FULL"),
    "WAL + NORMAL": inserts_per_second("WAL", "NORMAL"),
    "one transaction\nfor all rows": inserts_per_second("WAL", "NORMAL", one_transaction=True),
}
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(list(speeds), list(speeds.values()), color=["#999999", "#6baed6", "#3182bd", "#08519c"])
ax.set_yscale("log")
ax.set_ylabel("inserts per second (log)")
ax.set_title("100 inserts, each its own commit (except the last bar)")
plt.tight_layout()
plt.show()

# %%
default, wal_normal, batched = speeds["DELETE + FULL\n(default)"], speeds["WAL + NORMAL"], \
    speeds["one transaction\nfor all rows"]
print("WAL + NORMAL commits faster than the default:", wal_normal > default)
print("one transaction for all rows is over 10 times faster than the default:", batched > 10 * default)

# %% [markdown]
# ### When SQLite fits, and when it does not
#
# | SQLite fits | Choose a server (PostgreSQL, MySQL) |
# |---|---|
# | an app's own data: desktop, mobile, embedded devices, browsers | many application servers writing to the same data over a network |
# | development and tests (a file or `:memory:`, nothing to install) | many concurrent writers: SQLite has one write lock per file |
# | websites and APIs with mostly reads and modest writes, on one machine | users, roles and permissions inside the database |
# | analysis of a data set you ship as a file; a cache; a file format | replication, failover, point-in-time recovery |
# | a queue or log for one machine | data that must outgrow one machine's disk |
#
# SQLite is fast (no network, no separate process) and reliable (it is tested more thoroughly than
# most software); what it lacks is a server's **concurrency** and **administration**. One place
# it should never run is a network file system: file locks are unreliable there, and WAL mode does
# not work at all.
#
# ### Exercise 01.11 · A connection factory for a threaded app (practice)
#
# A small web app runs its request handlers in threads, and each handler opens its own connection.
# Write `connect_for_app(path)` that returns a new `sqlite3.Connection` to `path` with:
#
# * WAL journal mode, and `synchronous = NORMAL`;
# * foreign keys enforced;
# * a busy timeout of at least 5 seconds;
# * rows as `sqlite3.Row`.
#
# The check inspects the settings, then starts writer and reader threads that each call your
# function and write or read at the same time; none may fail.

# %% nbgrader={"grade": false, "grade_id": "ex01-11-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def connect_for_app(path):
    conn = sqlite3.connect(path, timeout=5)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-11-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.connect_for_app(connect_for_app)
### BEGIN HIDDEN TESTS
check.connect_for_app(connect_for_app, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 11. SQL injection
#
# **SQL injection** happens when a program builds SQL by pasting input into the statement's text.
# The input can then close the string it was meant to fill and write SQL of its own: the database
# cannot tell which part was the programmer's and which the attacker's.
#
# ```mermaid
# flowchart LR
#     subgraph unsafe["String building"]
#         direction TB
#         i1["input: admin' --"] --> s1["f#quot;... WHERE username = '{input}' AND ...#quot;"]
#         s1 --> q1["... WHERE username = 'admin' -- ' AND password_hash = ..."]
#         q1 --> r1["the password test is now a comment"]
#     end
#     subgraph safe["Parameters"]
#         direction TB
#         i2["input: admin' --"] --> s2["#quot;... WHERE username = ? AND ...#quot;, (input, ...)"]
#         s2 --> r2["the statement is fixed; the input is only ever a value"]
#     end
# ```
#
# A login check built with an f-string (the accounts live in a scratch database):

# %%
import hashlib


def password_hash(password):
    # Demo only: real applications store a slow, salted hash (argon2, bcrypt, scrypt) and verify
    # it in Python; a plain SHA-256 keeps this example short.
    return hashlib.sha256(password.encode()).hexdigest()


login_db = course.path("login.db")
login_db.unlink(missing_ok=True)
with closing(sqlite3.connect(login_db)) as conn:
    with conn:
        conn.execute("CREATE TABLE accounts (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, "
                     "is_admin INTEGER NOT NULL DEFAULT 0)")
        conn.executemany("INSERT INTO accounts VALUES (?, ?, ?)",
                         [("admin", password_hash("correct horse battery staple"), 1),
                          ("ada", password_hash("analytical-engine"), 0)])


def login_unsafe(conn, username, password):
    sql = ("SELECT username, is_admin FROM accounts "
           f"WHERE username = '{username}' AND password_hash = '{password_hash(password)}'")
    print("   SQL sent:", sql[:95] + "...")
    return conn.execute(sql).fetchone()


with closing(sqlite3.connect(login_db)) as conn:
    print("right password:", login_unsafe(conn, "ada", "analytical-engine"))
    print("wrong password:", login_unsafe(conn, "ada", "guess"))
    print("attack:        ", login_unsafe(conn, "admin' --", "no idea"))

# %% [markdown]
# `--` starts a comment in SQL, so the password test disappeared and the attacker is logged in as
# the administrator. Injection also **reads data**: a search box built the same way lets `UNION`
# append any query whose columns line up, such as every customer's e-mail (and
# `SELECT name, sql FROM sqlite_schema` would list every table first):

# %%
def search_products_unsafe(conn, text):
    return conn.execute(f"SELECT name, price FROM products WHERE name LIKE '%{text}%' ORDER BY name LIMIT 3").fetchall()


with closing(sqlite3.connect(shop_path)) as conn:
    print("a normal search:", search_products_unsafe(conn, "yoga mat"))
    leaked = search_products_unsafe(conn, "nothing' UNION SELECT email, birth_year FROM users --")
    print(f"the attack returned {len(leaked)} rows, e.g.", sorted(leaked)[:2])

# %% [markdown]
# Python's `sqlite3` refuses to run two statements in one `execute()`, which stops the famous
# `'; DROP TABLE users; --` (but `executescript()` runs them all: never give it input). That does
# not save you: the two attacks above are single statements.
#
# **The fix is parameters, every time.** With placeholders the statement's text is fixed, and the
# input can only ever be a value:

# %%
def login(conn, username, password):
    return conn.execute("SELECT username, is_admin FROM accounts WHERE username = ? AND password_hash = ?",
                        (username, password_hash(password))).fetchone()


def search_products(conn, text):
    return conn.execute("SELECT name, price FROM products WHERE name LIKE '%' || ? || '%' ORDER BY name LIMIT 3",
                        (text,)).fetchall()


with closing(sqlite3.connect(login_db)) as conn:
    print("right password:", login(conn, "ada", "analytical-engine"))
    print("attack:        ", login(conn, "admin' --", "no idea"))
with closing(sqlite3.connect(shop_path)) as conn:
    print("search attack: ", search_products(conn, "nothing' UNION SELECT email, birth_year FROM users --"))
    try:
        conn.execute("SELECT 1; DROP TABLE users")
    except sqlite3.ProgrammingError as exc:
        print("two statements:", exc)

# %% [markdown]
# Placeholders stand for **values** only, never for table or column names, keywords or `ASC` /
# `DESC`. When those must vary (a "sort by" menu), map the input onto a fixed list of SQL
# fragments that you wrote, and refuse anything else:

# %%
SORT_ORDERS = {"cheapest": "price, sku", "dearest": "price DESC, sku", "name": "name, sku"}


def list_products(conn, sort="cheapest", limit=3):
    order_by = SORT_ORDERS.get(sort)
    if order_by is None:
        raise ValueError(f"unknown sort order {sort!r}: choose from {sorted(SORT_ORDERS)}")
    return conn.execute(f"SELECT sku, price FROM products ORDER BY {order_by} LIMIT ?", (limit,)).fetchall()


with closing(sqlite3.connect(shop_path)) as conn:
    print(list_products(conn, "dearest"))
    try:
        list_products(conn, "price; DROP TABLE users")
    except ValueError as exc:
        print("refused:", exc)

# %% [markdown]
# ### Exercise 01.12 · Find and fix: an injectable search (find and fix)
#
# The support team's customer search is below. It crashes on the many customers called O'Brien,
# and it is injectable.

# %%
def find_customers(conn, text):
    sql = f"SELECT user_id, full_name FROM users WHERE full_name LIKE '%{text}%' ORDER BY user_id"
    return conn.execute(sql).fetchall()


with closing(sqlite3.connect(shop_path)) as conn:
    print("'brien':", find_customers(conn, "brien")[:3], "...")
    try:
        find_customers(conn, "O'Brien")
    except sqlite3.OperationalError as exc:
        print("\"O'Brien\":", exc)
    print("\"' OR '1'='1\":", len(find_customers(conn, "' OR '1'='1")), "rows")

# %% [markdown]
# Rewrite `find_customers(conn, text)` so that it returns `(user_id, full_name)` rows of the
# customers whose name **contains** `text`, ignoring the case of letters (of ASCII letters, as
# SQLite's `lower()` and `LIKE` do), in `user_id` order:
#
# * `text` must always be a parameter;
# * `text` is plain text, not a pattern: a search for `%` or `_` finds only names containing that
#   character (none do). Either escape the wildcards for `LIKE ... ESCAPE '\'`, or use
#   `instr(lower(full_name), lower(?)) > 0`, which has no wildcards at all.
#
# The check tries ordinary names, names with apostrophes, wildcards and attacks.

# %% nbgrader={"grade": false, "grade_id": "ex01-12-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def find_customers(conn, text):
    return conn.execute("SELECT user_id, full_name FROM users WHERE instr(lower(full_name), lower(?)) > 0 "
                        "ORDER BY user_id", (text,)).fetchall()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex01-12-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.find_customers(find_customers, course)
### BEGIN HIDDEN TESTS
check.find_customers(find_customers, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Key points
#
# * An SQLite database is one file (or `:memory:`). `sqlite3.connect` opens it, a cursor runs one
#   statement at a time, `fetchone` / `fetchall` read rows, `sqlite3.Row` reads them by name,
#   `rowcount` and `lastrowid` report what a write did. Use the library version,
#   `sqlite3.sqlite_version`, to know which SQL you have.
# * SQL describes the result: `FROM`/`JOIN` → `WHERE` → `GROUP BY` → `HAVING` → `SELECT` →
#   `ORDER BY` → `LIMIT`. Sort with a tie-breaker; NULL is unknown (`IS NULL`, and beware
#   `NOT IN`); left joins keep rows without a partner (conditions on the right side go in `ON`);
#   `FULL JOIN` needs SQLite 3.39, and `LEFT JOIN` + `UNION ALL` + an anti-join replaces it.
# * Subqueries, views (stored queries) and CTEs (named steps) organise complex queries; a recursive
#   CTE walks trees and generates series.
# * Declare the rules: `INTEGER PRIMARY KEY` (add `AUTOINCREMENT` only if ids must never be reused),
#   `NOT NULL`, `UNIQUE`, `CHECK`, `DEFAULT`, and foreign keys, **with `PRAGMA foreign_keys = ON` on
#   every connection**. Index what you search by. `ALTER TABLE` adds, renames and drops columns;
#   anything more is a table rebuild.
# * Values go in as parameters (`?` or `:name`), every time; identifiers come from a whitelist.
#   `executemany` in one transaction is the fast way to write many rows.
# * Normalize so each fact is stored once (1NF, 2NF, 3NF); many-to-many needs a junction table.
# * A transaction is all or nothing. `with conn:` commits or rolls back but does not close; a
#   context manager of your own can do all three.
# * WAL mode lets readers and a writer work at once; one connection per thread; one writer at a
#   time per file. SQLite fits one machine; many writers across a network need a server.
#
# Your progress in this chapter:

# %%
check.progress()

# %% [markdown]
# **Where next**: chapter 02 moves the same shop to **PostgreSQL**, a database server: connection
# pools, isolation levels with two live connections, full-text search, JSONB, arrays and window
# functions. Open `02_postgresql.ipynb`.
