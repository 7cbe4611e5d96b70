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
# # 08 · Production patterns and capstone
#
# Chapters 01 to 07 taught each database on its own. This chapter is about running them **for
# real**: safely, correctly, observably, recoverably, and at scale. It ends with a capstone in which
# you build the data layer of a small shop: schema, repository, cache and analytics.
#
# **After this chapter you will be able to**
#
# * spot SQL injection in any driver or ORM, and NoSQL operator injection in MongoDB, and fix
#   them: parameters for values, allow-lists and `sql.Identifier` for names;
# * store passwords with a real key-derivation function (Argon2, scrypt), encrypt a sensitive
#   column with Fernet and rotate its key;
# * create a database user that can only read, and prove that it cannot write;
# * let constraints stop bad data, and recognise (and fix) the five classic pitfalls;
# * test database code with pytest inside a notebook, against SQLite and a throwaway PostgreSQL
#   schema;
# * log SQL, catch slow queries and read their plan;
# * back up and restore PostgreSQL, MySQL, MongoDB and Redis, and **prove** the restore is complete;
# * route reads to a replica, shard by key, and say when one machine is no longer enough;
# * choose databases for a real system, and build one.
#
# **Time**: about 3 hours to work through (the capstone alone takes about an hour). Running the
# whole notebook takes under a minute (about 50 s measured on the course's 2-core machine, more
# when the machine is busy), of which 10 to 30 s is the setup cell loading the shop into three
# servers. It is one of the heavier chapters: it really dumps and restores four databases, starts
# temporary Redis servers and hashes passwords with a deliberately slow function.
#
# **What must be running**: PostgreSQL, MySQL (MariaDB), MongoDB and Redis (the setup cell checks
# them and names the fix if one is down). The backup section also uses the command-line tools
# `pg_dump`/`pg_restore` (of the server's version or newer), `mariadb-dump` (or `mysqldump`) and
# `redis-server`; the cell after the setup says which ones it found, and a backup step whose tool
# is missing or too old says how to get it and is skipped.
#
# **Everything stays in your namespace**: where this chapter needs more (a second database to
# restore into, a read-only role, a temporary Redis server), it names them after your namespace,
# and the last section removes them all.

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
from dbcourse.checks import ch08 as check

course = dbcourse.setup("08-production", namespace=namespace, scale=scale,
                        urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url))

# %% [markdown]
# A few tools used all along the chapter: `connect_db` opens a connection to *another* database of
# the same PostgreSQL server (for the restore, the replica and the shards), and `sibling` names
# those extra databases and roles after your namespace, so that two learners (or the solution and
# your notebook) never collide. PostgreSQL cuts names at 63 characters and MySQL user names at 32,
# so `sibling` shortens long names with a hash rather than letting the server truncate them.

# %%
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import closing
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PG = conninfo_to_dict(course.postgres_url)  # host, port, user, password, dbname of your namespace


def sibling(suffix: str, limit: int = 63) -> str:
    """The name of an extra database, role or user of this notebook: <namespace>_<suffix>."""
    name = f"{course.namespace}_{suffix}"
    if len(name) > limit:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{course.namespace[:limit - len(suffix) - 10]}_{digest}_{suffix}"
    return name


def connect_db(dbname: str, **kwargs) -> psycopg.Connection:
    """A connection to another database of the course's PostgreSQL server (same login)."""
    return psycopg.connect(make_conninfo(course.postgres_url, dbname=dbname), **kwargs)


def recreate_database(name: str) -> None:
    """Drop (if it exists) and create an empty PostgreSQL database."""
    with course.connect_postgres(autocommit=True) as admin:  # CREATE DATABASE cannot run in a transaction
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# The extra PostgreSQL databases of sections 6 and 7. An interrupted earlier run may have left them:
# drop them now (the last section drops them again).
EXTRA_DATABASES = {suffix: sibling(suffix) for suffix in ("restore", "primary", "replica", "shard0", "shard1")}


def drop_extra_databases() -> None:
    with course.connect_postgres(autocommit=True) as admin:
        for name in EXTRA_DATABASES.values():
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


drop_extra_databases()


TOOLS = {name: shutil.which(name) for name in
         ("pg_dump", "pg_restore", "mariadb-dump", "mysqldump", "mariadb", "mysql", "mongodump", "mongorestore",
          "redis-server")}
for name, path in TOOLS.items():
    print(f"{name:<13} {'found' if path else 'not installed'}")

# %% [markdown]
# ## 1. Security
#
# Three questions decide whether a data layer is safe: can an attacker make the database run
# **their** command (injection)? If the data leaks, what do they learn (hashing, encryption)? And
# if your application is taken over, what can its database login do (least privilege)?
#
# ```mermaid
# flowchart LR
#     user([request]) --> app["application<br/>parameters, validation"]
#     app -- "login with the least privilege it needs" --> db[(database<br/>constraints, roles)]
#     db --> disk[("disk and backups<br/>hashed passwords, encrypted fields")]
# ```
#
# ### 1.1 Injection, in every driver
#
# **Injection** happens when data is pasted into the *text* of a command: the database then parses
# part of the data as code. Every driver can send values **separately** from the text, through
# placeholders; only the spelling differs:
#
# | Library | Placeholder | How values travel |
# |---|---|---|
# | `sqlite3` | `?` or `:name` | bound by the SQLite library, never parsed as SQL |
# | psycopg 3 | `%s` or `%(name)s` | sent to the server separately (extended protocol) |
# | PyMySQL | `%s` or `%(name)s` | escaped and quoted by the driver, correctly for the connection's charset |
# | mysql-connector | `%s` (`prepared=True` for server-side binding) | escaped by the driver, or (with `prepared=True`) bound by the server |
# | SQLAlchemy `text()` | `:name` | handed to the driver as parameters |
# | Django `raw()`, `extra()`, `cursor.execute()` | `%s` with `params=[...]` | handed to the driver as parameters |
# | PyMongo | none: filters are dicts | no text is parsed, but a value that is a *dict* can smuggle in an operator |
#
# Here is the classic attack on `sqlite3`, with a function that glues the e-mail into the query:

# %%
import sqlite3

with closing(sqlite3.connect(":memory:")) as lite:
    lite.execute("CREATE TABLE accounts (user_id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)")
    lite.executemany("INSERT INTO accounts (email) VALUES (?)",
                     [("ann@example.org",), ("bob@example.org",), ("eve@example.org",)])

    def find_account_unsafe(email):  # DON'T: the e-mail becomes part of the SQL text
        return lite.execute(f"SELECT user_id, email FROM accounts WHERE email = '{email}'").fetchall()

    def find_account(email):  # DO: the e-mail travels as a parameter
        return lite.execute("SELECT user_id, email FROM accounts WHERE email = ?", (email,)).fetchall()

    attack = "' OR '1'='1"
    print("unsafe, honest input:", find_account_unsafe("bob@example.org"))
    print("unsafe, attack:      ", find_account_unsafe(attack))
    print("safe, attack:        ", find_account(attack))

# %% [markdown]
# The attack turns `WHERE email = '...'` into `WHERE email = '' OR '1'='1'`, which is true for
# every row. With a placeholder the same text is just an e-mail address nobody has.
#
# **psycopg** is worse when misused, because PostgreSQL accepts several statements in one string
# when no parameters are passed: the attacker can append a statement of their own (a *stacked*
# query). And a `UNION` can read any other table through a harmless-looking search. Both run
# below inside a transaction that is rolled back.

# %%
with course.connect_postgres() as conn:
    price_of_1 = "SELECT price FROM products WHERE product_id = 1"
    print("price of product 1 before:", conn.execute(price_of_1).fetchone()[0])

    attack = "x'; UPDATE products SET price = 0.01 WHERE product_id = 1; --"
    conn.execute(f"SELECT user_id FROM users WHERE email = '{attack}'")  # DON'T (on purpose)
    print("price of product 1 after an e-mail lookup:", conn.execute(price_of_1).fetchone()[0])
    conn.rollback()

    sku = "' UNION SELECT email FROM users WHERE user_id <= 3 ORDER BY 1 --"
    print("a product search that returns e-mails:",
          conn.execute(f"SELECT name FROM products WHERE sku = '{sku}'").fetchall())  # DON'T (on purpose)

    # The fix: parameters. The attack is now only a strange e-mail address...
    print("with a parameter:", conn.execute("SELECT user_id FROM users WHERE email = %s", [attack]).fetchall())
    # ...and with parameters the server refuses a second statement outright:
    try:
        conn.execute("SELECT user_id FROM users WHERE email = %s; SELECT 1", [attack])
    except psycopg.errors.SyntaxError as exc:
        print("two statements with parameters:", exc.diag.message_primary)
    conn.rollback()

# %% [markdown]
# **PyMySQL** does not send several statements unless you enable `CLIENT.MULTI_STATEMENTS`
# (leave it off), so the stacked query fails; but `OR '1'='1'` works just the same. PyMySQL binds
# parameters by escaping them itself; `cursor.mogrify` shows the exact text it sends.

# %%
import pymysql

mysql_conn = course.connect_mysql()
try:
    with mysql_conn.cursor() as cur:
        attack = "' OR '1'='1"
        cur.execute(f"SELECT count(*) FROM users WHERE email = '{attack}'")  # DON'T (on purpose)
        print("unsafe, attack matches", cur.fetchone()[0], "users")
        try:
            cur.execute("SELECT user_id FROM users WHERE email = 'x'; UPDATE products SET price = 0.01")
        except pymysql.err.ProgrammingError as exc:
            print("stacked query refused: error", exc.args[0])
        cur.execute("SELECT count(*) FROM users WHERE email = %s", (attack,))  # DO
        print("safe, attack matches", cur.fetchone()[0], "users")
        print("what PyMySQL sends:", cur.mogrify("SELECT * FROM users WHERE full_name = %s", ("O'Brien",)))
finally:
    mysql_conn.close()

# %% [markdown]
# **mysql-connector** (Oracle's driver) is the opposite: since version 9.2 one `execute` runs
# **every** statement in the string, so the stacked query that PyMySQL refused goes through.
# Parameters fix it again: the driver escapes them (`cur.statement` shows the text it sent), or,
# with `cursor(prepared=True)`, the server binds them to a statement it has already parsed, and a
# prepared statement can never be more than one statement.

# %%
import mysql.connector

connector_conn = course.connect_mysql(driver="connector")
price_of_1 = "SELECT price FROM products WHERE product_id = 1"
try:
    with connector_conn.cursor() as cur:
        cur.execute(price_of_1)
        print("price of product 1 before:", cur.fetchone()[0])
        attack = "x'; UPDATE products SET price = 0.01 WHERE product_id = 1; -- "
        cur.execute(f"SELECT user_id FROM users WHERE email = '{attack}'")  # DON'T (on purpose)
        for _ in cur.fetchsets():  # read the result of every statement it ran (the driver insists)
            pass
        cur.execute(price_of_1)
        print("price of product 1 after an e-mail lookup:", cur.fetchone()[0])
    connector_conn.rollback()  # undo the attacker's UPDATE

    with connector_conn.cursor() as cur:  # DO: a parameter
        cur.execute("SELECT count(*) FROM users WHERE email = %s", (attack,))
        print("with a parameter, the attack matches", cur.fetchone()[0], "users; sent as:", cur.statement)
    with connector_conn.cursor(prepared=True) as cur:  # DO: bound by the server
        cur.execute("SELECT count(*) FROM users WHERE email = %s", (attack,))
        print("prepared statement, the attack matches", cur.fetchone()[0], "users")
        try:
            cur.execute("SELECT user_id FROM users WHERE email = 'x'; UPDATE products SET price = 0.01")
        except mysql.connector.Error as exc:
            print("two statements in a prepared statement: error", exc.errno)
    connector_conn.rollback()
finally:
    connector_conn.close()

# %% [markdown]
# **ORMs** protect you only as long as you use their query builders. The moment you write SQL
# text yourself (SQLAlchemy's `text()`, Django's `raw()` and `extra()`), an f-string brings the
# injection straight back. In SQLAlchemy 2 the parameters go in a dict, as the second argument of
# `execute`; the old `conn.execute(text(...), user_id=5)` keyword form that some tutorials show
# was removed in 2.0 and fails.

# %%
import sqlalchemy as sa

engine = course.engine("postgres")
attack = "' OR '1'='1"
with engine.connect() as sa_conn:
    unsafe = sa_conn.execute(sa.text(f"SELECT count(*) FROM users WHERE email = '{attack}'")).scalar_one()  # DON'T
    safe = sa_conn.execute(sa.text("SELECT count(*) FROM users WHERE email = :email"), {"email": attack}).scalar_one()
    users_table = sa.Table("users", sa.MetaData(), autoload_with=sa_conn)
    built = sa_conn.execute(sa.select(sa.func.count()).where(users_table.c.email == attack)).scalar_one()
print(f"text() with an f-string: {unsafe} rows; text() with :email: {safe}; select(): {built}")

# %% [markdown]
# Django, on a small SQLite database. Jupyter runs your code inside an event loop, and Django
# refuses synchronous database calls there unless told that this is safe (it is, in a notebook:
# nothing else runs at the same time), hence `DJANGO_ALLOW_ASYNC_UNSAFE`. A model needs an app
# label when it lives outside an installed app.

# %%
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # notebooks only: see above
import django
from django.conf import settings as django_settings

if not django_settings.configured:
    django_settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(course.path("django.db"))}},
        INSTALLED_APPS=[], USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField")
    django.setup()
from django.db import connection as django_connection
from django.db import models

django_connection.close()  # the setup cell made a fresh django.db: forget a connection to the old one

if "Customer" not in globals():  # a model class can be declared only once per kernel
    class Customer(models.Model):
        name = models.CharField(max_length=100)
        email = models.CharField(max_length=200)

        class Meta:
            app_label = "shop08"
            db_table = "customers"

with django_connection.schema_editor() as editor:
    if "customers" in django_connection.introspection.table_names():
        editor.delete_model(Customer)
    editor.create_model(Customer)
Customer.objects.bulk_create([Customer(name="Ann", email="ann@example.org"), Customer(name="Bob", email="bob@example.org")])

name = "x' OR '1'='1"
print("raw() with an f-string:  ", len(list(Customer.objects.raw(f"SELECT * FROM customers WHERE name = '{name}'"))))
print("raw() with params:       ", len(list(Customer.objects.raw("SELECT * FROM customers WHERE name = %s", [name]))))
print("extra() with an f-string:", Customer.objects.extra(where=[f"name = '{name}'"]).count())
print("extra() with params:     ", Customer.objects.extra(where=["name = %s"], params=[name]).count())
print("filter() (the right way):", Customer.objects.filter(name=name).count())

# %% [markdown]
# `extra()` is Django's last resort (its documentation plans to deprecate it): prefer `filter()`,
# `annotate()` and expressions; when you do need SQL, pass `params`.
#
# **MongoDB** parses no query text, yet it has its own injection. A login handler that takes the
# JSON body of a request and drops its values into a filter lets the client send an *operator*
# instead of a string: `{"$ne": ""}` means "any password that is not empty".

# %%
from pydantic import BaseModel, ConfigDict, ValidationError

mongo_accounts = course.mongo_db.accounts
mongo_accounts.drop()
mongo_accounts.insert_one({"username": "admin", "password": "correct horse battery staple"})  # plaintext: see 1.2


def login_unsafe(body: str) -> bool:  # DON'T: whatever the client sends becomes part of the filter
    request = json.loads(body)
    return mongo_accounts.find_one({"username": request["username"], "password": request["password"]}) is not None


attack = '{"username": "admin", "password": {"$ne": ""}}'
print("unsafe login with the attack:", login_unsafe(attack))


class LoginRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # a dict is not a str: no silent conversion
    username: str
    password: str


def login(body: str) -> bool:  # DO: validate the shape and the types before any query
    try:
        request = LoginRequest.model_validate_json(body)
    except ValidationError as exc:
        print("  rejected:", exc.errors()[0]["loc"], exc.errors()[0]["type"])
        return False
    # (and in real code: look the user up by name only, then verify a password *hash*, as in 1.2)
    return mongo_accounts.find_one({"username": request.username, "password": request.password}) is not None


print("safe login with the attack:", login(attack))
print("safe login, right password:", login('{"username": "admin", "password": "correct horse battery staple"}'))

# %% [markdown]
# ### 1.2 Names cannot be parameters
#
# Placeholders stand for **values** only. A table or column name, a sort direction or a keyword
# cannot be a parameter; the server rejects it:

# %%
with course.connect_postgres() as conn:
    try:
        conn.execute("SELECT count(*) FROM %s", ["users"])
    except psycopg.errors.SyntaxError as exc:
        print("a table name as a parameter:", exc.diag.message_primary)
    conn.rollback()

# %% [markdown]
# When a name must come from outside (a "sort by" column chosen in the user interface, a table
# picked in an admin page), do two things: check it against an **allow-list** of the names you
# expect, and **quote** it as an identifier. psycopg's `sql` module composes queries safely:
# `sql.Identifier` quotes names (doubling any `"` inside), `sql.Literal` quotes values, and
# `sql.SQL(...).format(...)` assembles them. MySQL drivers have no such module: after the
# allow-list, quote the name in backticks yourself.

# %%
COUNTABLE = {"users", "products", "orders", "reviews"}


def count_rows(conn, table: str) -> int:
    if table not in COUNTABLE:  # the allow-list: anything unexpected stops here
        raise ValueError(f"cannot count {table!r}")
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))  # quoted as an identifier
    return conn.execute(query).fetchone()[0]


with course.connect_postgres() as conn:
    print("products:", count_rows(conn, "products"))
    print("as sent:  ", sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("products")).as_string(conn))
    print("a strange name, quoted:", sql.Identifier('my "table"; DROP').as_string(conn))
    try:
        count_rows(conn, "users; DROP TABLE users")
    except ValueError as exc:
        print("refused:", exc)

# %% [markdown]
# ### Exercise 08.1 · Find and fix: an injectable product search (find and fix)
#
# This search function works for honest input, and is open to injection twice: through
# `name_part` and through `sort_by`.
#
# ```python
# def search_products(conn, name_part, sort_by="name"):
#     query = (f"SELECT product_id, name, price FROM products "
#              f"WHERE name ILIKE '%{name_part}%' ORDER BY {sort_by}, product_id")
#     return conn.execute(query).fetchall()
# ```
#
# Rewrite `search_products(conn, name_part, sort_by="name")` (`conn` is a psycopg connection) so
# that it returns the same rows for honest input: `(product_id, name, price)` tuples of the
# products whose name contains `name_part` (case-insensitively), ordered by `sort_by` and then
# `product_id`; and so that it is safe:
#
# * `name_part` must travel as a **parameter** (build the `%...%` pattern in Python);
# * `sort_by` may only be `"name"`, `"price"` or `"product_id"`; anything else raises
#   `ValueError`; compose the name with `sql.Identifier`.
#
# The check searches with honest words, with names containing quotes, with injection attempts in
# both arguments, and verifies that the `products` table is unchanged afterwards.

# %% nbgrader={"grade": false, "grade_id": "ex08-1-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
SORTABLE_COLUMNS = ("name", "price", "product_id")


def search_products(conn, name_part, sort_by="name"):
    if sort_by not in SORTABLE_COLUMNS:
        raise ValueError(f"cannot sort by {sort_by!r}; choose one of {SORTABLE_COLUMNS}")
    query = sql.SQL("SELECT product_id, name, price FROM products "
                    "WHERE name ILIKE %s ORDER BY {}, product_id").format(sql.Identifier(sort_by))
    return conn.execute(query, [f"%{name_part}%"]).fetchall()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-1-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.search_products(search_products, course)
### BEGIN HIDDEN TESTS
check.search_products(search_products, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# `ILIKE` patterns have wildcards of their own (`%` and `_`): a search for `50%` also matches
# `500`. That is not injection (the database still runs only your query), but if it matters, escape
# them: `name_part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")`.
#
# ### 1.3 Passwords: hash them with a real KDF
#
# Never store a password, not even encrypted: store something from which you can **check** a
# password but never recover it. A plain hash such as SHA-256 is not enough, for two reasons:
#
# * **it is fast**: an attacker with a stolen table tries billions of guesses per second on a
#   graphics card;
# * **the same password gives the same hash**: one precomputed table ("rainbow table") cracks
#   every account at once, and users who share a password are visible at a glance.
#
# A **key-derivation function** (KDF) fixes both: it mixes in a random **salt** (so equal
# passwords give different hashes) and is **deliberately slow and memory-hungry** (so each guess
# costs the attacker, too). The current recommendation is **Argon2id** (`argon2-cffi`); `scrypt`
# comes with Python's `hashlib`; PBKDF2 and bcrypt are acceptable older choices. (Some tutorials
# use werkzeug's `generate_password_hash`: that is a KDF too, not a plain hash, so it is fine.)
#
# Let us measure how many guesses per second each one allows (the numbers depend on the machine,
# the conclusion does not):

# %% tags=["nbval-ignore-output"]
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

password_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters


def guesses_per_second(hash_once, seconds=0.3):
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        hash_once()
        count += 1
    return count / (time.perf_counter() - start)


sha_rate = guesses_per_second(lambda: hashlib.sha256(b"correct horse battery staple").hexdigest())
argon_rate = guesses_per_second(lambda: password_hasher.hash("correct horse battery staple"))
print(f"sha256: {sha_rate:,.0f} guesses per second; argon2id: {argon_rate:,.1f} guesses per second")

# %%
print("argon2id makes each guess at least 10,000 times more expensive:", sha_rate / argon_rate > 10_000)
print("sha256 gives equal passwords equal hashes:",
      hashlib.sha256(b"hunter2").hexdigest() == hashlib.sha256(b"hunter2").hexdigest())

# %% [markdown]
# `PasswordHasher` does everything in one call: `hash` makes a salted hash that **records its own
# parameters**, `verify` raises `VerifyMismatchError` for a wrong password, and `check_needs_rehash`
# tells you when a stored hash was made with weaker parameters than today's, so you can upgrade it
# the next time that user logs in (the only moment you have the password).

# %%
stored = password_hasher.hash("correct horse battery staple")
print("stored hash begins with:", stored.rsplit("$", 2)[0], "(then the salt and the hash)")
print("same password, new hash, differs:", stored != password_hasher.hash("correct horse battery staple"))
print("right password:", password_hasher.verify(stored, "correct horse battery staple"))
try:
    password_hasher.verify(stored, "Tr0ub4dor&3")
except VerifyMismatchError:
    print("wrong password: VerifyMismatchError")

weak_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024)  # what an old version of the app used
old_hash = weak_hasher.hash("correct horse battery staple")
print("an old, cheaper hash needs a rehash:", password_hasher.check_needs_rehash(old_hash))
print("a current one does not:", password_hasher.check_needs_rehash(stored))

# %% [markdown]
# With the standard library only, `hashlib.scrypt` is a sound KDF. You store the parameters and
# the salt next to the hash (here in one string), and compare with `hmac.compare_digest`, which
# takes the same time whether the first or the last byte differs (so the comparison leaks nothing).
# Its cost comes from three parameters: OWASP's Password Storage Cheat Sheet asks for at least
# `n=2**17, r=8, p=1`, which needs 128 MiB per hash, more than `hashlib` allows by default
# (`maxmem`, 32 MiB): pass `maxmem` as well. (Smaller values you may find in tutorials, such as
# `n=2**14`, date from older guidance.)

# %%
import base64
import hmac

SCRYPT = dict(n=2**17, r=8, p=1)  # OWASP's minimum for scrypt: 128 MiB of memory (128 * r * n bytes) per hash
SCRYPT_MAXMEM = 2**28  # hashlib refuses to use more than 32 MiB unless told: allow 256 MiB


def scrypt_hash(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=SCRYPT_MAXMEM, **SCRYPT)
    return "scrypt${n}${r}${p}${salt}${digest}".format(
        **SCRYPT, salt=base64.b64encode(salt).decode(), digest=base64.b64encode(digest).decode())


def scrypt_verify(stored: str, password: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), dklen=32, n=int(n), r=int(r), p=int(p),
                               maxmem=SCRYPT_MAXMEM)
    return hmac.compare_digest(candidate, base64.b64decode(digest))


stored_scrypt = scrypt_hash("correct horse battery staple")
print(stored_scrypt.split("$")[:4], scrypt_verify(stored_scrypt, "correct horse battery staple"),
      scrypt_verify(stored_scrypt, "Tr0ub4dor&3"))

# %% [markdown]
# In the database, the column holds the hash, and login looks the user up **by name only**, then
# verifies in Python. (Never `WHERE password_hash = %s`: with a salt you could not even compute
# the value to compare.)

# %%
with course.connect_postgres() as conn:
    conn.execute("DROP TABLE IF EXISTS app_logins")
    conn.execute("CREATE TABLE app_logins (username text PRIMARY KEY, password_hash text NOT NULL)")
    conn.execute("INSERT INTO app_logins VALUES (%s, %s)", ("ann", password_hasher.hash("correct horse battery staple")))

    def check_login(conn, username, password) -> bool:
        row = conn.execute("SELECT password_hash FROM app_logins WHERE username = %s", [username]).fetchone()
        if row is None:
            return False
        try:
            return password_hasher.verify(row[0], password)
        except VerifyMismatchError:
            return False

    print(check_login(conn, "ann", "correct horse battery staple"), check_login(conn, "ann", "guess"),
          check_login(conn, "nobody", "guess"))

# %% [markdown]
# ### Exercise 08.2 · Store passwords with a real KDF (practice)
#
# Write two functions:
#
# * `hash_password(password: str) -> str`: a salted, deliberately slow hash (Argon2id through
#   `PasswordHasher`, or `hashlib.scrypt`), as a string that can be stored in a text column;
# * `verify_password(stored: str, password: str) -> bool`: `True` for the right password, `False`
#   for any other, **without raising**.
#
# The check hashes and verifies several passwords (with accents, emoji, long ones), checks that the
# same password gives different hashes, that the hash does not contain the password, and that
# hashing is slow enough to be a KDF (a millisecond or more per hash; SHA-256 takes about a
# microsecond).

# %% nbgrader={"grade": false, "grade_id": "ex08-2-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, InvalidHashError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):  # wrong password, or not an argon2 hash at all
        return False
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-2-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.passwords(hash_password, verify_password)
### BEGIN HIDDEN TESTS
check.passwords(hash_password, verify_password, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### 1.4 Encrypting a sensitive field
#
# Some data you must be able to **read back** (a bank account number to pay a refund, a tax id for
# an invoice), so a hash will not do. Encrypt those columns in the application, so that the
# database, its backups and anyone with a `SELECT` see only ciphertext.
#
# `cryptography`'s **Fernet** is the simple, safe choice: authenticated encryption (AES with an
# HMAC: a tampered value fails to decrypt rather than decrypting to garbage) with a random IV, so
# the same plaintext encrypts differently every time. Three rules:
#
# * **the key never lives in the code or in the database**: it comes from the environment (or a
#   secret manager) at start-up;
# * encrypted values cannot be searched with `=`; when you must look a value up, store next to it
#   a **blind index**, a keyed HMAC of the normalized value, made with a *second* key;
# * plan **key rotation** from day one: `MultiFernet` decrypts with any of several keys and
#   re-encrypts with the newest.

# %%
from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def key_from_environment(variable: str) -> bytes:
    value = os.environ.get(variable)
    if value is None:  # for this demo only: a real application refuses to start without its key
        print(f"{variable} is not set: using a throwaway key for this demo")
        value = Fernet.generate_key().decode()
    return value.encode()


field_key = key_from_environment("SHOP_FIELD_KEY")
lookup_key = key_from_environment("SHOP_LOOKUP_KEY")
fernet = Fernet(field_key)


def blind_index(value: str) -> bytes:
    normalized = value.replace(" ", "").upper()
    return hmac.new(lookup_key, normalized.encode(), hashlib.sha256).digest()


ibans = {1: "DE89 3704 0044 0532 0130 00", 2: "FR14 2004 1010 0505 0001 3M02 606", 3: "NL91 ABNA 0417 1643 00"}
with course.connect_postgres() as conn:
    conn.execute("DROP TABLE IF EXISTS payment_details")
    conn.execute("""CREATE TABLE payment_details (
                        user_id int PRIMARY KEY REFERENCES users (user_id),
                        iban_encrypted bytea NOT NULL,
                        iban_lookup bytea NOT NULL UNIQUE)""")
    conn.cursor().executemany("INSERT INTO payment_details VALUES (%s, %s, %s)",
                     [(uid, fernet.encrypt(iban.encode()), blind_index(iban)) for uid, iban in ibans.items()])
    conn.commit()

    token = conn.execute("SELECT iban_encrypted FROM payment_details WHERE user_id = 1").fetchone()[0]
    print("what the database (and every backup) holds:", bytes(token[:6]), "...", len(token), "bytes",
          "(a version byte, a timestamp, a random IV, the ciphertext and an HMAC, in base64)")
    print("what the application reads back:", fernet.decrypt(bytes(token)).decode())
    print("same IBAN encrypted twice gives the same bytes:",
          fernet.encrypt(ibans[1].encode()) == fernet.encrypt(ibans[1].encode()))
    found = conn.execute("SELECT user_id FROM payment_details WHERE iban_lookup = %s",
                         [blind_index("nl91abna0417164300")]).fetchone()
    print("lookup through the blind index, typed differently:", found)

# %% [markdown]
# Rotating the key: put the new key **first** in a `MultiFernet`, re-encrypt every row with
# `rotate()` in one transaction, then retire the old key. (The blind index uses its own key and
# does not change.)

# %%
new_field_key = Fernet.generate_key()  # in production: a new secret, deployed before the rotation
rotator = MultiFernet([Fernet(new_field_key), Fernet(field_key)])

with course.connect_postgres() as conn:
    with conn.transaction():
        rows = conn.execute("SELECT user_id, iban_encrypted FROM payment_details ORDER BY user_id").fetchall()
        conn.cursor().executemany("UPDATE payment_details SET iban_encrypted = %s WHERE user_id = %s",
                         [(rotator.rotate(bytes(token)), uid) for uid, token in rows])
    token = bytes(conn.execute("SELECT iban_encrypted FROM payment_details WHERE user_id = 2").fetchone()[0])
    print("the new key decrypts:", Fernet(new_field_key).decrypt(token).decode())
    try:
        Fernet(field_key).decrypt(token)
    except InvalidToken:
        print("the old key no longer does: InvalidToken")

# %% [markdown]
# Encryption in the application is the strongest of three layers. The other two protect against
# other threats: **TLS** on the connection (`sslmode=require` or `verify-full` in the PostgreSQL
# URL) against someone on the network, and **disk encryption** against a stolen disk. Neither
# helps against a `SELECT` by someone who should not see the data; only field encryption and
# least privilege do.
#
# ### 1.5 Least-privilege database users
#
# The course logs you in as a superuser, which is convenient for learning and wrong for an
# application: if the application is compromised, the attacker inherits **everything** its login
# can do. Give each component the smallest set of rights it needs: a reporting tool gets a login
# that can only read.
#
# In PostgreSQL a user is a **role** with `LOGIN`. Roles belong to the whole server (not to a
# database), so this one is named after your namespace, dropped first if an earlier run left it,
# and dropped again at the end of the chapter.

# %%
import secrets

READER = sibling("reader")
reader_password = secrets.token_urlsafe(16)  # generated, never printed, never in the code


def drop_role(admin, role):
    """Drop a role and every privilege it holds in this database (DROP ROLE refuses otherwise)."""
    exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if exists:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


with course.connect_postgres(autocommit=True) as admin:
    drop_role(admin, READER)
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(READER),
                                                                     sql.Literal(reader_password)))
    admin.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(course.namespace),
                                                                       sql.Identifier(READER)))
    admin.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(READER)))
    admin.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(READER)))
print("role created:", READER == sibling("reader"))

# %% [markdown]
# Now connect **as that role** and try everything. `psycopg.errors.InsufficientPrivilege`
# (SQLSTATE 42501) is the error for "you may not".

# %%
reader_url = make_conninfo(course.postgres_url, user=READER, password=reader_password)
attempts = {
    "SELECT": "SELECT count(*) FROM orders",
    "INSERT": "INSERT INTO categories (category_id, name) VALUES (999, 'Hacked')",
    "UPDATE": "UPDATE products SET price = 0.01",
    "DELETE": "DELETE FROM reviews",
    "TRUNCATE": "TRUNCATE order_items",
    "CREATE TABLE": "CREATE TABLE backdoor (x int)",
    "DROP TABLE": "DROP TABLE users",
}
with psycopg.connect(reader_url, autocommit=True) as reader:
    for what, statement in attempts.items():
        try:
            result = reader.execute(statement).fetchone()
            print(f"{what:<13} allowed: {result}")
        except psycopg.errors.InsufficientPrivilege as exc:
            print(f"{what:<13} {type(exc).__name__}: {exc.diag.message_primary}")

# %% [markdown]
# Three details:
#
# * `CREATE TABLE` failed because, since PostgreSQL 15, ordinary roles may no longer create
#   objects in the `public` schema. On older servers run `REVOKE CREATE ON SCHEMA public FROM
#   PUBLIC` yourself.
# * `GRANT SELECT ON ALL TABLES` covers the tables that exist **now**. For tables created later,
#   add `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ...`.
# * Grant on specific tables when some hold personal data: a reporting role rarely needs `users`.
#
# In MySQL and MariaDB a user is `'name'@'host'`; `'%'` means "from any host". The same idea: a
# user with `SELECT` on your database and nothing else. (Note the `%%` in the `CREATE USER` line:
# PyMySQL uses `%` for its placeholders, so a literal `%` must be doubled when parameters are
# passed.)

# %%
MYSQL_READER = sibling("reader", limit=32)  # MySQL 8 allows at most 32 characters in a user name
mysql_reader_password = secrets.token_urlsafe(16)

mysql_admin = course.connect_mysql(autocommit=True)
try:
    with mysql_admin.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@'%%'", (MYSQL_READER,))
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (MYSQL_READER, mysql_reader_password))
        cur.execute(f"GRANT SELECT ON `{course.namespace}`.* TO %s@'%%'", (MYSQL_READER,))
finally:
    mysql_admin.close()

mysql_reader = pymysql.connect(**{**course.mysql_params, "user": MYSQL_READER, "password": mysql_reader_password})
try:
    with mysql_reader.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        print("SELECT        allowed:", cur.fetchone())
        for what, statement in list(attempts.items())[1:]:
            try:
                cur.execute(statement)
                print(f"{what:<13} allowed?!")
            except pymysql.err.OperationalError as exc:
                code, message = exc.args
                print(f"{what:<13} error {code}: {message.split(' to user')[0]}")
finally:
    mysql_reader.close()

# %% [markdown]
# ### Exercise 08.3 · A least-privilege reporting role (practice)
#
# The analytics team needs a login for its dashboards. It may **read** the catalogue and the
# orders and nothing else: no personal data, no writes.
#
# Write `grant_reporting(conn, role)`. `conn` is a psycopg connection to your database as the
# course's admin user; `role` is the name of a role that already exists (the check creates it,
# with a password, and drops it afterwards). Grant the role:
#
# * `CONNECT` on the current database, `USAGE` on schema `public`;
# * `SELECT` on exactly `products`, `categories`, `orders` and `order_items`.
#
# Nothing on `users`, `reviews`, `events` or any other table, and no write of any kind. Quote the
# role with `sql.Identifier` (role names may contain capitals or dashes) and commit at the end.
# The check connects **as the role** and verifies what it can and cannot do.

# %% nbgrader={"grade": false, "grade_id": "ex08-3-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
REPORTING_TABLES = ("products", "categories", "orders", "order_items")


def grant_reporting(conn, role):
    role_id = sql.Identifier(role)
    database = conn.execute("SELECT current_database()").fetchone()[0]
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role_id))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role_id))
    tables = sql.SQL(", ").join(sql.Identifier(t) for t in REPORTING_TABLES)
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(tables, role_id))
    conn.commit()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-3-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.grant_reporting(grant_reporting, course)
### BEGIN HIDDEN TESTS
check.grant_reporting(grant_reporting, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Integrity: let the database say no
#
# Validation in the application is useful (friendly messages, early rejection), but it is not
# enough: data also arrives through imports, scripts, a second service, an admin with a SQL console,
# and two requests racing each other. Only **constraints declared in the database** hold for every
# path. The four you use every day:
#
# | Constraint | Stops | psycopg error (all subclasses of `IntegrityError`) |
# |---|---|---|
# | `NOT NULL` | a missing value | `NotNullViolation` |
# | `UNIQUE` / `PRIMARY KEY` | a duplicate | `UniqueViolation` |
# | `FOREIGN KEY` | a reference to nothing (and deleting what is still referenced) | `ForeignKeyViolation` |
# | `CHECK (...)` | a value outside the rules | `CheckViolation` |
#
# The shop's tables declare them all. Each attempt below runs in a **savepoint** (a nested
# `conn.transaction()`), so that one failure does not abort the others.

# %%
USER_COLUMNS = "user_id, email, full_name, country, signup_at, is_active, marketing_opt_in"
violations = {
    "a review rated 6 stars":
        "INSERT INTO reviews (review_id, product_id, user_id, rating, title, created_at) "
        "VALUES (900001, 1, 1, 6, 'Wow', now())",
    "a second account with the same e-mail":
        f"INSERT INTO users ({USER_COLUMNS}) SELECT 900001, email, 'Copy', 'FR', now(), true, false "
        "FROM users WHERE user_id = 1",
    "an order of a user who does not exist":
        "INSERT INTO orders (order_id, user_id, ordered_at, status, shipping_country) "
        "VALUES (900001, 900001, now(), 'paid', 'FR')",
    "a user without an e-mail":
        f"INSERT INTO users ({USER_COLUMNS}) VALUES (900001, NULL, 'Nobody', 'FR', now(), true, false)",
    "deleting a product that was sold":
        "DELETE FROM products WHERE product_id = (SELECT min(product_id) FROM order_items)",
}
with course.connect_postgres() as conn:
    for label, statement in violations.items():
        try:
            with conn.transaction():  # a savepoint
                conn.execute(statement)
            print(f"{label:<40} accepted?!")
        except psycopg.errors.IntegrityError as exc:
            culprit = exc.diag.constraint_name or f"column {exc.diag.column_name}"
            print(f"{label:<40} {type(exc).__name__:<20} ({culprit})")
    conn.rollback()

# %% [markdown]
# MySQL and MariaDB enforce the same constraints, with error **codes** rather than classes. Watch
# out: PyMySQL raises `IntegrityError` for duplicates, NULLs and foreign keys, but a failed `CHECK`
# (MariaDB error 4025, MySQL 3819) arrives as `OperationalError`. And MySQL before 8.0.16 parsed
# `CHECK` constraints and silently ignored them: a reason to test that your constraints really
# reject bad rows (section 4).

# %%
mysql_conn = course.connect_mysql()
try:
    with mysql_conn.cursor() as cur:
        for label, statement in violations.items():
            try:
                cur.execute(statement.replace("now()", "NOW()"))
                print(f"{label:<40} accepted?!")
            except (pymysql.err.IntegrityError, pymysql.err.OperationalError) as exc:
                print(f"{label:<40} {type(exc).__name__:<17} error {exc.args[0]}")
    mysql_conn.rollback()
finally:
    mysql_conn.close()

# %% [markdown]
# **Validation only in the application** fails the day a second path writes data. Here the web
# form validates ratings with Pydantic, while a nightly import inserts straight into a table that
# has no `CHECK`:

# %%
from pydantic import Field


class ReviewForm(BaseModel):
    product_id: int
    rating: int = Field(ge=1, le=5)


try:
    ReviewForm(product_id=1, rating=7)
except ValidationError as exc:
    print("the form refuses:", exc.errors()[0]["msg"])

with course.connect_postgres() as conn:
    conn.execute("DROP TABLE IF EXISTS imported_ratings")
    conn.execute("CREATE TABLE imported_ratings (product_id int NOT NULL, rating int NOT NULL)")  # no CHECK
    conn.cursor().executemany("INSERT INTO imported_ratings VALUES (%s, %s)", [(1, 5), (2, 7), (3, 0)])  # the import
    print("bad ratings that got in:", conn.execute("SELECT count(*) FROM imported_ratings "
                                                   "WHERE rating NOT BETWEEN 1 AND 5").fetchone()[0])
    conn.commit()
    try:  # adding the rule later fails: existing rows break it
        conn.execute("ALTER TABLE imported_ratings ADD CONSTRAINT rating_range CHECK (rating BETWEEN 1 AND 5)")
    except psycopg.errors.CheckViolation as exc:
        print("adding the CHECK now:", exc.diag.message_primary)
    conn.rollback()
    # The way out: enforce the rule for new rows at once (NOT VALID), clean up, then VALIDATE.
    conn.execute("ALTER TABLE imported_ratings ADD CONSTRAINT rating_range "
                 "CHECK (rating BETWEEN 1 AND 5) NOT VALID")
    conn.execute("DELETE FROM imported_ratings WHERE rating NOT BETWEEN 1 AND 5")
    conn.execute("ALTER TABLE imported_ratings VALIDATE CONSTRAINT rating_range")
    conn.commit()
    print("constraint validated; rows left:", conn.execute("SELECT count(*) FROM imported_ratings").fetchone()[0])

# %% [markdown]
# ### Exercise 08.4 · Constraints that stop bad data (warm-up)
#
# The marketing team wants discount coupons. Write `coupons_ddl`, one `CREATE TABLE coupons (...)`
# statement for PostgreSQL with these columns and rules, **all enforced by the database**:
#
# | Column | Type | Rules |
# |---|---|---|
# | `code` | text | primary key; upper case only (`code = upper(code)`) |
# | `percent_off` | integer | required; from 1 to 90 |
# | `valid_from` | date | required |
# | `valid_until` | date | required; strictly after `valid_from` |
# | `product_id` | integer | optional (`NULL` = the whole shop); must be an existing product (`products`) |
# | `max_uses` | integer | optional (`NULL` = unlimited); if given, at least 1 |
#
# Write `products` without a schema name. The check creates your table in a scratch schema, inserts
# good coupons (which must be accepted) and bad ones (each must be rejected with an
# `IntegrityError`), and says which bad row got in.

# %% nbgrader={"grade": false, "grade_id": "ex08-4-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
coupons_ddl = """
CREATE TABLE coupons (
    code         text PRIMARY KEY CHECK (code = upper(code)),
    percent_off  integer NOT NULL CHECK (percent_off BETWEEN 1 AND 90),
    valid_from   date NOT NULL,
    valid_until  date NOT NULL,
    product_id   integer REFERENCES products (product_id),
    max_uses     integer CHECK (max_uses >= 1),
    CHECK (valid_until > valid_from)
)
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-4-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.coupons(coupons_ddl, course)
### BEGIN HIDDEN TESTS
check.coupons(coupons_ddl, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Note how `CHECK (max_uses >= 1)` lets `NULL` through: a `CHECK` fails only when its condition is
# **false**, and a comparison with `NULL` is unknown, not false. That is exactly "optional, but at
# least 1 when given".
#
# ## 3. Five pitfalls, each failing and then fixed
#
# The same few mistakes cause most database incidents in young applications. Each one below first
# fails, for real, and is then fixed.
#
# The shop's keys were loaded from files, so the database does not yet generate new ones. Turning
# each key into an **identity column** (and moving its sequence past the loaded ids) lets
# `INSERT` leave the id out, as an application does:

# %%
IS_IDENTITY = ("SELECT is_identity = 'YES' FROM information_schema.columns "
               "WHERE table_schema = 'public' AND table_name = %s AND column_name = %s")
with course.connect_postgres() as conn:
    for table, column in [("users", "user_id"), ("products", "product_id"), ("orders", "order_id"),
                          ("order_items", "order_item_id")]:
        if not conn.execute(IS_IDENTITY, [table, column]).fetchone()[0]:  # (already done if this cell ran before)
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} ADD GENERATED BY DEFAULT AS IDENTITY").format(
                sql.Identifier(table), sql.Identifier(column)))
        conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, {}), max({})) FROM {}").format(
            sql.Literal(table), sql.Literal(column), sql.Identifier(column), sql.Identifier(table)))
    conn.commit()
    print(conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                       "WHERE table_schema = 'public' AND is_identity = 'YES' ORDER BY 1").fetchall())

# %% [markdown]
# ### Pitfall 1: no connection pool
#
# Opening a connection is expensive: a TCP handshake, authentication, and on PostgreSQL a new
# server process. A web application that connects once per request spends most of its time there.
# A **pool** keeps a few connections open and lends them out. (With SQLAlchemy you already have
# one: `create_engine` pools by default, so the pitfall there is creating an engine per request,
# or `poolclass=NullPool`. Some tutorials show a bare `create_engine(url)` as the "bad, no pool"
# example: it is not.)

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt
from psycopg_pool import ConnectionPool

REQUESTS = 40


def handle_request_unpooled(user_id):  # connects, queries, disconnects: every time
    with course.connect_postgres() as conn:
        return conn.execute("SELECT full_name FROM users WHERE user_id = %s", [user_id]).fetchone()


with ConnectionPool(course.postgres_url, min_size=2, max_size=4, open=True) as pool:
    pool.wait()  # the pool opens its first connections in the background

    def handle_request_pooled(user_id):  # borrows an open connection, gives it back
        with pool.connection() as conn:
            return conn.execute("SELECT full_name FROM users WHERE user_id = %s", [user_id]).fetchone()

    timings = {}
    for label, handler in [("connect per request", handle_request_unpooled), ("pool", handle_request_pooled)]:
        start = time.perf_counter()
        for user_id in range(1, REQUESTS + 1):
            handler(user_id)
        timings[label] = (time.perf_counter() - start) / REQUESTS * 1000

fig, ax = plt.subplots(figsize=(6, 2.2))
ax.barh(list(timings), list(timings.values()), color=["#c44e52", "#55a868"])
ax.set_xlabel("milliseconds per request (lower is better)")
ax.set_title(f"{REQUESTS} requests, each one small query")
plt.tight_layout()
plt.show()
print({label: round(ms, 2) for label, ms in timings.items()})

# %%
print("the pool is at least 3 times faster:", timings["connect per request"] > 3 * timings["pool"])

# %% [markdown]
# ### Pitfall 2: connections that are never closed
#
# A connection that is not closed stays open on the server until the process ends. Leak one per
# request and the server reaches `max_connections` and refuses everyone. `pg_stat_activity` shows
# every open connection; filtering on `application_name` finds ours.

# %%
def open_connections(name):
    with course.connect_postgres() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND application_name = %s", [name]).fetchone()[0]


def wait_until_closed(name, timeout=5.0):
    """Server processes exit a moment after their client disconnects: wait for them."""
    deadline = time.monotonic() + timeout
    while open_connections(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    return open_connections(name)


leaked = []


def report_leaky(user_id):  # DON'T: the connection is never closed
    conn = course.connect_postgres(application_name="leaky-report")
    leaked.append(conn)  # (in a real app, a global, a cache or a reference cycle keeps it alive)
    return conn.execute("SELECT count(*) FROM orders WHERE user_id = %s", [user_id]).fetchone()[0]


for user_id in range(1, 6):
    report_leaky(user_id)
print("after 5 leaky calls, open connections:", open_connections("leaky-report"))

for conn in leaked:
    conn.close()
leaked.clear()
print("after closing them:", wait_until_closed("leaky-report"))


def report(user_id):  # DO: `with` closes the connection, even when the query fails
    with course.connect_postgres(application_name="tidy-report") as conn:
        return conn.execute("SELECT count(*) FROM orders WHERE user_id = %s", [user_id]).fetchone()[0]


for user_id in range(1, 6):
    report(user_id)
print("after 5 tidy calls:", wait_until_closed("tidy-report"))

# %% [markdown]
# ### Pitfall 3: plaintext passwords
#
# Stored as they are, passwords leak with the first backup that goes astray, and they reveal who
# shares a password. The MongoDB `accounts` collection of section 1.1 did exactly that:

# %%
mongo_accounts.delete_many({})  # start again from the plaintext accounts (so that this cell can run again)
mongo_accounts.insert_many([{"username": "admin", "password": "correct horse battery staple"},
                            {"username": "bob", "password": "hunter2"}, {"username": "eve", "password": "hunter2"}])
print("anyone who can read the collection sees:",
      [(a["username"], a["password"]) for a in mongo_accounts.find({}, {"_id": 0}).sort("username", 1)])

for account in mongo_accounts.find({"password": {"$exists": True}}):  # the fix: migrate to hashes
    mongo_accounts.update_one({"_id": account["_id"]},
                              {"$set": {"password_hash": password_hasher.hash(account["password"])},
                               "$unset": {"password": ""}})
hashes = [a["password_hash"] for a in mongo_accounts.find().sort("username", 1)]
print("after the migration: plaintext left:", mongo_accounts.count_documents({"password": {"$exists": True}}),
      "| bob and eve still look alike:", hashes[1] == hashes[2],
      "| eve's password still verifies:", password_hasher.verify(hashes[2], "hunter2"))

# %% [markdown]
# ### Pitfall 4: no transaction (the half-written order)
#
# An order is several writes: the order row, one row per item, the stock. If they are committed
# one by one and the third fails, the database keeps a **half-written order**: charged, but missing
# an item. This function commits after every step:

# %%
def place_order_broken(conn, user_id, items):
    """items: a list of (product_id, quantity). Returns the new order_id."""
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


LAST_ORDER = "SELECT order_id FROM orders WHERE user_id = %s ORDER BY order_id DESC LIMIT 1"
ITEMS = "SELECT product_id, quantity FROM order_items WHERE order_id = %s ORDER BY product_id"
with course.connect_postgres() as conn:
    try:
        place_order_broken(conn, 42, [(1, 1), (2, 0)])  # the second line has quantity 0: CHECK fails
    except psycopg.errors.CheckViolation as exc:
        print("the order failed:", exc.diag.constraint_name)
        conn.rollback()
    last = conn.execute(LAST_ORDER, [42]).fetchone()[0]
    print("yet the order is there, with only its first line:", conn.execute(ITEMS, [last]).fetchall())
    place_order_broken(conn, 42, [(3, 1), (999_999, 1)])  # an unknown product: no error at all...
    last = conn.execute(LAST_ORDER, [42]).fetchone()[0]
    print("...and the order silently has", conn.execute("SELECT count(*) FROM order_items WHERE order_id = %s",
                                                         [last]).fetchone()[0], "item instead of 2")

# %% [markdown]
# Two bugs: the commits split one unit of work into many, and `INSERT ... SELECT` inserts **no
# row** (and raises nothing) when the product does not exist.
#
# ### Exercise 08.5 · Find and fix: the half-written order (find and fix)
#
# Write `place_order(conn, user_id, items)`: the same job as `place_order_broken` above (same
# tables and columns, `items` a list of `(product_id, quantity)`, returns the new `order_id`), but
#
# * **all or nothing**: either the order, all its items and all the stock updates are committed
#   together, or nothing is written at all (use one transaction: `with conn.transaction():`);
# * an unknown `product_id` raises `ValueError`, and nothing is written;
# * any other failure (a quantity of 0, not enough stock: the table's `CHECK` constraints) raises,
#   and nothing is written.
#
# `conn` is a psycopg connection (not in autocommit mode). Write the table names without a schema.
# Tip: `conn.execute(...).rowcount` is the number of rows the statement inserted or updated. The
# check runs your function against copies of the tables, then looks at them from **another**
# connection (so an order that was never committed does not count).

# %% nbgrader={"grade": false, "grade_id": "ex08-5-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def place_order(conn, user_id, items):
    with conn.transaction():  # commits at the end of the block, rolls everything back on an exception
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
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-5-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.place_order(place_order, course)
### BEGIN HIDDEN TESTS
check.place_order(place_order, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Pitfall 5: ignoring constraints (check-then-insert)
#
# "Check that the e-mail is free, then insert" looks correct and is not: two requests can both
# check before either inserts. Two connections play the two requests, step by step:

# %%
def sign_up_race(table):
    """Two requests check the same e-mail, then both insert it."""
    with course.connect_postgres() as first, course.connect_postgres() as second:
        email = "twin@example.org"
        query = sql.SQL("SELECT count(*) FROM {} WHERE email = %s").format(sql.Identifier(table))
        insert = sql.SQL("INSERT INTO {} (email) VALUES (%s)").format(sql.Identifier(table))
        free_for_first = first.execute(query, [email]).fetchone()[0] == 0
        free_for_second = second.execute(query, [email]).fetchone()[0] == 0  # neither has inserted yet
        print("  both see the e-mail as free:", free_for_first and free_for_second)
        first.execute(insert, [email])
        first.commit()
        try:
            second.execute(insert, [email])
            second.commit()
        except psycopg.errors.UniqueViolation as exc:
            second.rollback()
            print("  the second insert fails:", type(exc).__name__)
        return first.execute(query, [email]).fetchone()[0]


with course.connect_postgres() as conn:
    conn.execute("DROP TABLE IF EXISTS signups_unchecked, signups")
    conn.execute("CREATE TABLE signups_unchecked (id int GENERATED ALWAYS AS IDENTITY, email text NOT NULL)")
    conn.execute("CREATE TABLE signups (id int GENERATED ALWAYS AS IDENTITY, email text NOT NULL UNIQUE)")
print("without UNIQUE:")
print("  accounts with that e-mail:", sign_up_race("signups_unchecked"))
print("with UNIQUE:")
print("  accounts with that e-mail:", sign_up_race("signups"))

# %% [markdown]
# Only the database sees every request, so only the database can enforce uniqueness. Let the
# constraint decide and handle its error (or write `INSERT ... ON CONFLICT (email) DO NOTHING
# RETURNING id` and look at what comes back).

# %% [markdown]
# ## 4. Testing database code with pytest
#
# Database code deserves tests as much as any other, and the questions above ("is the constraint
# really there?", "does a failure roll everything back?") can only be answered against a real
# database. Two kinds of fixture cover most needs:
#
# * an **in-memory SQLite** database: created in microseconds, gone when the test ends; perfect for
#   logic that does not depend on one server's features;
# * a **throwaway PostgreSQL schema**: a real server, so real types, constraints and errors; each
#   test gets its own schema (`CREATE SCHEMA`, then `search_path` points at it) and the teardown
#   drops it with `DROP SCHEMA ... CASCADE`.
#
# **ipytest** runs pytest on the cells of a notebook: `ipytest.autoconfig()` once, then a cell that
# starts with `%%ipytest` defines tests and runs them. (In the `.py` version of this notebook the
# magic line appears commented, as `# %%ipytest`: that is how Jupytext stores cell magics.) The
# options below keep pytest's report short and free of timings, and make a failing test fail its
# cell.

# %%
import uuid

import ipytest
import pytest

os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no third-party pytest plugins: none needed, much faster start
ipytest.autoconfig(raise_on_error=True,
                   addopts=["-p", "no:cacheprovider", "--no-header", "--color=no", "-o", "console_output_style=classic"])

# %% [markdown]
# The code under test: registering a user (normalize the e-mail, refuse anything that is not one,
# hash the password). It is written with SQLAlchemy Core, so the same function runs on SQLite and
# on PostgreSQL. In tests, the password hasher uses **cheap parameters**: hashing is slow on purpose,
# and a test suite that hashes hundreds of times would crawl. (Never use those parameters in
# production.)

# %%
accounts_metadata = sa.MetaData()
app_users = sa.Table(
    "app_users", accounts_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(200), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
)
cheap_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)  # tests only


def register_user(conn, email: str, password: str, hasher: PasswordHasher = password_hasher) -> int:
    email = email.strip().lower()
    if "@" not in email:
        raise ValueError(f"not an e-mail address: {email!r}")
    statement = sa.insert(app_users).values(email=email, password_hash=hasher.hash(password))
    return conn.execute(statement.returning(app_users.c.id)).scalar_one()

# %% [markdown]
# The fixtures. `db` is **parametrized**: every test that asks for `db` runs twice, once per
# backend. Each test works inside a transaction that is never committed, on a database or schema
# that exists only for that test.

# %%
@pytest.fixture
def sqlite_engine():
    engine = sa.create_engine("sqlite://")  # in memory: a new, empty database
    accounts_metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine():
    schema = f"test_{uuid.uuid4().hex[:8]}"  # unique: tests may run in parallel
    with course.connect_postgres(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    engine = sa.create_engine(course.sqlalchemy_url("postgres"),
                              connect_args={"options": f"-c search_path={schema}"})
    try:
        accounts_metadata.create_all(engine)
        yield engine
    finally:  # the teardown runs even when the test fails
        engine.dispose()
        with course.connect_postgres(autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgres"])
def db(request):
    engine = request.getfixturevalue(f"{request.param}_engine")
    with engine.connect() as conn:  # leaving the block rolls back what the test did
        yield conn

# %%
# %%ipytest -qq

def test_email_is_normalized(db):
    user_id = register_user(db, "  Ann@Example.ORG ", "pw", hasher=cheap_hasher)
    assert db.execute(sa.select(app_users.c.email).where(app_users.c.id == user_id)).scalar_one() == "ann@example.org"


def test_duplicate_email_is_rejected_by_the_database(db):
    register_user(db, "ann@example.org", "pw", hasher=cheap_hasher)
    with pytest.raises(sa.exc.IntegrityError):
        register_user(db, "ANN@example.org", "another pw", hasher=cheap_hasher)


def test_password_is_stored_hashed(db):
    register_user(db, "bob@example.org", "hunter2", hasher=cheap_hasher)
    stored = db.execute(sa.select(app_users.c.password_hash)).scalar_one()
    assert "hunter2" not in stored
    assert cheap_hasher.verify(stored, "hunter2")


def test_rejects_what_is_not_an_email(db):
    with pytest.raises(ValueError, match="not an e-mail"):
        register_user(db, "not-an-email", "pw", hasher=cheap_hasher)

# %% [markdown]
# Eight dots: four tests, each on two databases. No schema is left behind:

# %%
with course.connect_postgres() as conn:
    print("test schemas left:", conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'test\\_%'")
          .fetchone()[0])

# %% [markdown]
# A few habits that keep database tests trustworthy:
#
# * test **behaviour** against a real database (constraints, rollbacks, types), not mocks of a
#   cursor: a mock cannot tell you that PostgreSQL rejects what SQLite accepted;
# * make every test independent: its own schema or its own rolled-back transaction, never data
#   left by another test;
# * keep the slow things cheap in tests (password hashing parameters, small data) but keep the
#   **same** database engine as production for the tests that matter;
# * outside notebooks, the same fixtures live in a `conftest.py`, and the throwaway database is
#   often a container started by the test run.
#
# ### Exercise 08.6 · A throwaway schema for tests (practice)
#
# Turn the schema fixture into a reusable context manager. Write `throwaway_schema(conn,
# prefix="test")` with `contextlib.contextmanager` that:
#
# 1. creates a schema with a **unique** name that starts with `prefix` followed by `_` (quote it
#    with `sql.Identifier`: prefixes may contain capitals or dashes), points the connection's
#    `search_path` at it, commits, and yields the schema's name;
# 2. when the block ends, **even with an exception**, rolls back whatever transaction is open
#    (a failed statement leaves it aborted), drops the schema with `CASCADE`, restores the
#    `search_path` (`RESET search_path`), and commits; the exception, if any, goes on up.
#
# `conn` is a psycopg connection (not in autocommit mode). The check creates tables inside, nests
# two schemas, raises inside the block, and verifies from another connection that nothing is left.

# %% nbgrader={"grade": false, "grade_id": "ex08-6-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
from contextlib import contextmanager


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
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-6-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.throwaway_schema(throwaway_schema, course)
### BEGIN HIDDEN TESTS
check.throwaway_schema(throwaway_schema, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# With it, a pytest fixture is three lines:
# `with course.connect_postgres() as conn, throwaway_schema(conn) as schema: yield conn`.
#
# ## 5. Logging and observability
#
# When something is slow or wrong in production, you need to know **which statements** ran, **how
# long** they took and **how** the database executed them. Four tools, from the application
# outwards.
#
# **1. Log the SQL.** SQLAlchemy logs every statement through Python's `logging` module, under the
# logger `sqlalchemy.engine` (`create_engine(..., echo=True)` is a shortcut that attaches a handler
# printing to standard output). Here a handler is attached for one query; a small filter hides the
# statement-cache timings SQLAlchemy adds (`[generated in 0.00012s]`), which change on every run.

# %%
import logging
import sys


class HideTimings(logging.Filter):
    PATTERN = re.compile(r"\[(generated in|cached since) [^\]]*\]")

    def filter(self, record):
        record.msg, record.args = self.PATTERN.sub("[...]", record.getMessage()), None
        return True


sql_logger = logging.getLogger("sqlalchemy.engine")
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("%(levelname)s %(name)s | %(message)s"))
handler.addFilter(HideTimings())
sql_logger.addHandler(handler)
sql_logger.setLevel(logging.INFO)
try:
    with engine.connect() as sa_conn:
        sa_conn.execute(sa.text("SELECT name, price FROM products WHERE product_id = :id"), {"id": 7}).all()
finally:
    sql_logger.removeHandler(handler)
    sql_logger.setLevel(logging.WARNING)

# %% [markdown]
# In production, log at `INFO` only while investigating (every statement is a lot of output), and
# never log parameters that may hold personal data or secrets (`hide_parameters=True` on the engine).
#
# **2. Time the slow paths.** A decorator times a whole function and logs when it exceeds a
# threshold. Use `time.perf_counter()` (monotonic and precise) rather than `time.time()`, which
# jumps when the system clock is adjusted. At this small scale nothing is slow, so `pg_sleep`
# plays the part of a slow query.

# %%
import functools

slow_logger = logging.getLogger("shop.slow")
slow_records = []


class KeepRecords(logging.Handler):
    def emit(self, record):
        slow_records.append(record)


for old_handler in [h for h in slow_logger.handlers if type(h).__name__ == "KeepRecords"]:
    slow_logger.removeHandler(old_handler)  # re-running the cell must not add a second handler
slow_logger.addHandler(KeepRecords())
slow_logger.propagate = False


def warn_if_slower_than(milliseconds):
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = (time.perf_counter() - start) * 1000
                if elapsed > milliseconds:
                    slow_logger.warning("slow call %s (over %d ms)", func.__name__, milliseconds,
                                        extra={"elapsed_ms": elapsed})
        return wrapper
    return decorate


@warn_if_slower_than(100)
def monthly_report(conn):
    conn.execute("SELECT pg_sleep(0.25)")  # stands in for a slow query
    return conn.execute("SELECT date_trunc('month', ordered_at) AS month, count(*) FROM orders "
                        "GROUP BY 1 ORDER BY 1 DESC LIMIT 2").fetchall()


@warn_if_slower_than(100)
def product_name(conn, product_id):
    return conn.execute("SELECT name FROM products WHERE product_id = %s", [product_id]).fetchone()[0]


with course.connect_postgres() as conn:
    monthly_report(conn)
    product_name(conn, 7)  # a lookup by key: normally a millisecond or two, so nothing is logged
for record in slow_records:
    if "monthly_report" in record.getMessage():  # (on a very busy machine product_name may be logged too)
        print(record.levelname, record.getMessage(), "| measured over the threshold:", record.elapsed_ms > 100)

# %% [markdown]
# A decorator sees functions, not statements: it cannot tell **which** query inside was slow, and
# it misses queries run elsewhere. SQLAlchemy's **events** see every statement:
# `before_cursor_execute` and `after_cursor_execute` fire around each one, on the engine you attach
# them to. You will write that logger in exercise 08.7.
#
# **3. Ask the database.** PostgreSQL keeps its own statistics. The extension
# **`pg_stat_statements`** records every statement's count and total time, server-wide; it must be
# loaded when the server starts (`shared_preload_libraries`). Is it here?

# %%
with course.connect_postgres() as conn:
    shipped = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'").fetchone()[0]
    preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    slow_log_setting = conn.execute("SHOW log_min_duration_statement").fetchone()[0]
print("pg_stat_statements shipped with this server:", bool(shipped))
print("loaded at start-up:", "pg_stat_statements" in preload)
print("the server's own slow-statement log (log_min_duration_statement):",
      "off" if slow_log_setting == "-1" else slow_log_setting)

# %% [markdown]
# On the course's server it is **shipped but not loaded**, and loading it means changing the server's
# configuration and restarting it, which this notebook does not do to a server others use. On a
# server you run, it takes three steps (shown here, not run):
#
# ```sql
# ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';   -- then restart the server
# CREATE EXTENSION pg_stat_statements;                                 -- in the database
# SELECT calls, round(mean_exec_time::numeric, 2) AS mean_ms, round(total_exec_time::numeric) AS total_ms, query
# FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 3;
# ```
#
# On a busy shop the answer looks like this (**an illustration** with made-up numbers, not output
# of this notebook):
#
# ```text
#  calls | mean_ms | total_ms | query
# -------+---------+----------+------------------------------------------------------------
#  48210 |    4.21 |   202964 | SELECT order_id, ordered_at, status FROM orders WHERE user_id = $1 ...
#   1203 |   61.80 |    74345 | SELECT date_trunc($1, ordered_at) AS month, count(*) FROM orders ...
#  95310 |    0.05 |     4765 | SELECT name FROM products WHERE product_id = $1
# ```
#
# The first line is the one to fix: not the slowest statement, but the one that costs the most in
# total. Likewise `log_min_duration_statement = 250` (in milliseconds) makes the server write
# every statement slower than that to its log; MySQL's equivalent is the **slow query log**
# (`slow_query_log = ON`, `long_query_time = 0.25`). Both are server-wide settings, so this notebook
# only describes them.
#
# What you can always look at, without changing anything, is what runs **right now**:
# `pg_stat_activity` has a row per connection, with its `state`, what it is waiting for
# (`wait_event_type`, `wait_event`), its current `query` and when that started (`query_start`).
# Below, one connection runs a slow "report" (a 5-second `pg_sleep`, in a background thread); a
# second connection finds it there, as you would find a runaway query in production, and stops it
# with `pg_cancel_backend(pid)`, which cancels the statement and keeps the connection
# (`pg_terminate_backend` would close it). MySQL's equivalents are `SHOW PROCESSLIST` and
# `KILL QUERY`.

# %%
import threading

RUNNING_REPORT = """SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity
                    WHERE datname = current_database() AND application_name = 'slow-report'
                      AND state = 'active' AND wait_event IS NOT NULL"""
report_outcome = []


def slow_report():
    with course.connect_postgres(application_name="slow-report") as conn:
        try:
            conn.execute("SELECT pg_sleep(5) /* the monthly report */")
            report_outcome.append("finished")
        except psycopg.errors.QueryCanceled as exc:
            report_outcome.append(f"{type(exc).__name__}: {exc.diag.message_primary}")


worker = threading.Thread(target=slow_report)
worker.start()
with course.connect_postgres(autocommit=True) as watcher:  # autocommit: a fresh view of the activity each time
    deadline, seen = time.monotonic() + 30, None
    while seen is None and time.monotonic() < deadline:
        seen = watcher.execute(RUNNING_REPORT).fetchone()
        time.sleep(0.05)
    if seen is None:
        print("the slow report did not show up in pg_stat_activity within 30 s")
    else:
        pid, state, wait_event_type, wait_event, query = seen
        print(f"state: {state} | waiting for: {wait_event_type}/{wait_event} | query: {query}")
        print("cancelled:", watcher.execute("SELECT pg_cancel_backend(%s)", [pid]).fetchone()[0])
worker.join()
print("what the report's connection got:", report_outcome)

# %% [markdown]
# **4. Read the plan.** Once you know which query is slow, `EXPLAIN` says why. The query at the
# top of that illustration looks up a user's orders; without an index on `user_id` PostgreSQL
# reads the whole table:

# %%
user_orders = "SELECT order_id, ordered_at, status FROM orders WHERE user_id = 42 ORDER BY ordered_at DESC"
with course.connect_postgres() as conn:
    conn.execute("DROP INDEX IF EXISTS orders_user_id_idx")  # (so that this cell shows the same when run again)
    print("\n".join(r[0] for r in conn.execute("EXPLAIN (COSTS OFF) " + user_orders)))
    conn.execute("CREATE INDEX orders_user_id_idx ON orders (user_id)")
    conn.commit()
    print("--- with an index on orders (user_id):")
    print("\n".join(r[0] for r in conn.execute("EXPLAIN (COSTS OFF) " + user_orders)))

# %% [markdown]
# Chapter 07 covers plans in depth. The point here is the loop: **log, find the costly statement,
# explain it, fix it, watch the numbers again.**
#
# ### Exercise 08.7 · A slow-query logger with SQLAlchemy events (practice)
#
# Write `watch_slow_queries(engine, threshold)` that attaches two listeners to `engine`
# (`before_cursor_execute` and `after_cursor_execute`, with `sqlalchemy.event.listen` or
# `@event.listens_for`) and returns a list. From then on, every statement that takes at least
# `threshold` seconds appends a tuple `(statement, seconds)` to that list: the SQL text as the
# listener receives it, and the measured duration as a float.
#
# Store the start time in `conn.info` (a dict that belongs to the connection), not in a global:
# several connections may run statements at the same time. The check runs fast and slow
# (`pg_sleep`) statements on an engine of its own, and a second engine that must **not** be
# watched.

# %% nbgrader={"grade": false, "grade_id": "ex08-7-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
from sqlalchemy import event


def watch_slow_queries(engine, threshold):
    slow = []

    def start_timer(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("query_started", []).append(time.perf_counter())

    def stop_timer(conn, cursor, statement, parameters, context, executemany):
        elapsed = time.perf_counter() - conn.info["query_started"].pop()
        if elapsed >= threshold:
            slow.append((statement, elapsed))

    event.listen(engine, "before_cursor_execute", start_timer)
    event.listen(engine, "after_cursor_execute", stop_timer)
    return slow
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-7-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.slow_queries(watch_slow_queries, course)
### BEGIN HIDDEN TESTS
check.slow_queries(watch_slow_queries, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Backups and restores, for real
#
# A backup you have never restored is a hope, not a backup. Every procedure below goes all the way:
# dump, restore into a **separate** database, and **prove** that the copy holds the same data by
# comparing row counts and checksums, table by table.
#
# ```mermaid
# flowchart LR
#     live[(your database)] -- "dump: pg_dump, mariadb-dump,<br/>BSON files, RDB snapshot" --> file[/backup file/]
#     file -- "restore: pg_restore, mariadb,<br/>insert_many, redis-server" --> copy[(a separate database)]
#     live -. "count and checksum each table" .- copy
# ```
#
# Two numbers describe a backup strategy: how much data you may lose (**RPO**, the time since the
# last backup) and how long a restore takes (**RTO**). Nightly dumps give an RPO of a day. For
# minutes or less, PostgreSQL archives its write-ahead log continuously next to a base backup and
# can replay it to any point in time (*point-in-time recovery*); MySQL does the same with its
# binary log, MongoDB with its oplog, Redis with its append-only file. A **replica is not a
# backup**: it copies a `DELETE` within milliseconds.
#
# The dumps use command-line tools, which must be installed where this notebook runs (the cell
# after the setup listed them). Where one is missing or too old, as when the databases run in
# Docker and the machine running Jupyter has an older `pg_dump` or none, its step says what is
# wrong and how to fix it, shows what it prints when it runs, and is skipped; the rest of the
# notebook, exercise 08.8 included, does not need it.
#
# ### PostgreSQL: `pg_dump` and `pg_restore`
#
# `pg_dump` writes a consistent snapshot of one database while it keeps running. The **custom
# format** (`-Fc`) is compressed and lets `pg_restore` choose what to restore, in parallel.
# `pg_dump` must be at least as new as the server: it refuses to dump a newer one.
#
# The password must not go on the command line, where any user of the machine can read it with
# `ps`. PostgreSQL's documentation also advises against the `PGPASSWORD` environment variable
# (some systems show a process's environment to other users). The recommended place is a
# **password file**: `~/.pgpass`, or the file that `PGPASSFILE` names, with lines
# `host:port:database:user:password`. It must be readable by you only (libpq ignores it otherwise),
# so the cell creates it with mode `0600` from the start: not written first and protected
# afterwards. Everything else about the connection (host, port, user, TLS options) goes in a
# connection string passed as `--dbname`.

# %%
import textwrap
from pathlib import Path


def run(command, **kwargs):
    """Run a command-line tool; on failure show its error output, not just an exit code."""
    result = subprocess.run(command, capture_output=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed: {result.stderr.decode(errors='replace').strip()}")
    return result


def write_private(path: Path, text: str) -> Path:
    """Create a file that only you can read and write (mode 0600), from its first byte."""
    path.unlink(missing_ok=True)  # os.open sets the mode only when it creates the file
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    return path


def skipped(problem, fixes, expected):
    """Say why a backup step cannot run here, how to make it run, and what it prints when it does."""
    print("Skipped:", problem)
    print("To run it:" + "".join(f"\n  * {fix}" for fix in fixes))
    print("What this cell prints when it runs (measured on the course's machine, small scale):")
    print(textwrap.indent(textwrap.dedent(expected).strip("\n"), "  | "))


def pgpass_field(value) -> str:
    return str(value).replace("\\", "\\\\").replace(":", "\\:")


def pg_conninfo(dbname: str) -> str:
    """A connection string for --dbname: the course's connection, without the password."""
    return make_conninfo("", **{**{k: v for k, v in PG.items() if k != "password"}, "dbname": dbname})


def pg_tool_major(path: str) -> int:
    """15 for 'pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'."""
    return int(re.search(r"\)\s*(\d+)", run([path, "--version"]).stdout.decode()).group(1))


RESTORE_DB = EXTRA_DATABASES["restore"]  # the same name on PostgreSQL, MySQL and MongoDB
pg_passfile = write_private(course.path("pgpass"), ":".join(
    [pgpass_field(PG.get("host", "localhost")), pgpass_field(PG.get("port", 5432)), "*",  # * = any database
     pgpass_field(PG["user"]), pgpass_field(PG.get("password", ""))]) + "\n")
PG_ENV = {**{k: v for k, v in os.environ.items() if k != "PGPASSWORD"}, "PGPASSFILE": str(pg_passfile)}

with course.connect_postgres() as conn:
    server_major = conn.info.server_version // 10000
PG_FIXES = [
    f"install the PostgreSQL client tools, version {server_major} or newer: on Debian or Ubuntu "
    f"`apt-get install postgresql-client-{server_major}` from PostgreSQL's own apt repository (apt.postgresql.org), "
    "on macOS `brew install libpq`, on Windows the command-line tools of the EDB installer; then run the cell "
    "that looks for the tools (after the setup cell) and this one again;",
    "or use the tools inside the database's container, which match its server: "
    f"`docker compose -f docker/compose.yml exec -T postgres pg_dump --username={PG['user']} --format=custom "
    f"{course.namespace} > shop.dump` (and `pg_restore` the same way, reading `< shop.dump`).",
]

dump_file = course.path("shop.dump")
pg_restored, pg_problem = False, None
if not (TOOLS["pg_dump"] and TOOLS["pg_restore"]):
    pg_problem = "pg_dump and pg_restore are not installed here."
else:
    tool_major = min(pg_tool_major(TOOLS["pg_dump"]), pg_tool_major(TOOLS["pg_restore"]))
    print(f"pg_dump is new enough for the server: {tool_major >= server_major}")
    if tool_major < server_major:
        pg_problem = (f"these are the version {tool_major} tools, and the server is PostgreSQL {server_major}: "
                      "pg_dump refuses to dump a server newer than itself.")
if pg_problem is None:
    try:
        run([TOOLS["pg_dump"], "--format=custom", "--file", str(dump_file), "--dbname", pg_conninfo(course.namespace)],
            env=PG_ENV)
        listing = run([TOOLS["pg_restore"], "--list", str(dump_file)]).stdout.decode()
        print("tables with data in the dump:", sum(" TABLE DATA " in line for line in listing.splitlines()))

        recreate_database(RESTORE_DB)
        # --no-owner --no-privileges: restore the structure and the data, not who owns them or who may read them
        # (roles belong to a server; the server you restore to may not have the same ones)
        run([TOOLS["pg_restore"], "--no-owner", "--no-privileges", "--dbname", pg_conninfo(RESTORE_DB), str(dump_file)],
            env=PG_ENV)
        print("restored into a separate database")
        pg_restored = True
    except RuntimeError as exc:  # the tool ran and failed: its own message says why
        pg_problem = str(exc)
if pg_problem:
    skipped(pg_problem, PG_FIXES, """
        pg_dump is new enough for the server: True
        tables with data in the dump: 16
        restored into a separate database""")

# %% [markdown]
# Now the proof. For each table: its row count, and an **order-independent checksum** of its
# contents (the MD5 of all rows as text, sorted). Equal checksums mean equal data, whatever order
# the rows are stored in.

# %%
def pg_fingerprint(conn, table):
    query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} AS t")
    return conn.execute(query.format(sql.Identifier(table))).fetchone()


def pg_tables(conn):
    return [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1")]


if not pg_restored:
    skipped("nothing was restored (see the cell above).", ["make the cell above run, then this one."], """
        orders         6002 rows  identical: True
        order_items   15910 rows  identical: True
        products        300 rows  identical: True
        users          2000 rows  identical: True
        all 16 tables identical: True | same table list: True""")
else:
    with course.connect_postgres() as source, connect_db(RESTORE_DB) as restored:
        tables = pg_tables(source)
        same = {t: pg_fingerprint(source, t) == pg_fingerprint(restored, t) for t in tables}
        for table in ("orders", "order_items", "products", "users"):
            rows, checksum = pg_fingerprint(restored, table)
            print(f"{table:<12} {rows:>6} rows  identical: {same[table]}")
        print(f"all {len(tables)} tables identical:", all(same.values()),
              "| same table list:", pg_tables(restored) == tables)

# %% [markdown]
# ### MySQL and MariaDB: `mysqldump` (`mariadb-dump`)
#
# MariaDB names its tools `mariadb-dump` and `mariadb` (the old names `mysqldump` and `mysql` still
# work); real MySQL has only the old names, hence `shutil.which` on both. `--single-transaction`
# takes a consistent snapshot of InnoDB tables without locking them. The password goes in an
# **option file** readable only by you (created with mode `0600`, like the password file above),
# passed with `--defaults-extra-file` (which must be the first option). Values are written in
# double quotes: unquoted, a `#` in a password would start a comment.

# %%
mysql_dump = TOOLS["mariadb-dump"] or TOOLS["mysqldump"]
mysql_client = TOOLS["mariadb"] or TOOLS["mysql"]
params = course.mysql_params


def option_value(value) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


option_file = write_private(course.path("mysql-client.cnf"), "[client]\n" + "".join(
    f"{name}={option_value(params[name])}\n" for name in ("host", "port", "user", "password")))
OPTIONS = f"--defaults-extra-file={option_file}"
MYSQL_FIXES = [
    "install a MySQL or MariaDB client: on Debian or Ubuntu `apt-get install mariadb-client` (or MySQL's "
    "`mysql-client`), on macOS `brew install mysql-client`; then run the cell that looks for the tools (after "
    "the setup cell) and this one again;",
    "or use the tools inside the database's container: `docker compose -f docker/compose.yml exec mysql mysqldump "
    f"--single-transaction --user={params['user']} -p --result-file=/tmp/shop-mysql.sql {course.namespace}`, then "
    "`docker compose -f docker/compose.yml cp mysql:/tmp/shop-mysql.sql .`",
]

mysql_dump_file = course.path("shop-mysql.sql")
mysql_restored, mysql_problem = False, None
if not (mysql_dump and mysql_client):
    mysql_problem = "mysqldump (mariadb-dump) or the mysql (mariadb) client is not installed here."
else:
    try:
        run([mysql_dump, OPTIONS, "--single-transaction", "--routines", "--triggers", "--skip-dump-date",
             f"--result-file={mysql_dump_file}", course.namespace])
        print("dump written:", mysql_dump_file.stat().st_size > 0)

        mysql_admin = course.connect_mysql(autocommit=True)
        try:
            with mysql_admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{RESTORE_DB}`")
                cur.execute(f"CREATE DATABASE `{RESTORE_DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        finally:
            mysql_admin.close()
        with open(mysql_dump_file, "rb") as dump:
            run([mysql_client, OPTIONS, RESTORE_DB], stdin=dump)
        print("restored into a separate database")
        mysql_restored = True
    except RuntimeError as exc:  # for instance a MariaDB client refused by a MySQL server: the message says
        mysql_problem = str(exc)
if mysql_problem:
    skipped(mysql_problem, MYSQL_FIXES, """
        dump written: True
        restored into a separate database""")

# %% [markdown]
# MySQL computes a checksum of a whole table itself: `CHECKSUM TABLE` (equal contents give equal
# checksums on the same server version and table definition).

# %%
def mysql_fingerprints(database):
    conn = pymysql.connect(**{**course.mysql_params, "database": database})
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                        "AND table_type = 'BASE TABLE' ORDER BY table_name", (database,))
            tables = [r[0] for r in cur.fetchall()]
            result = {}
            for table in tables:
                cur.execute(f"SELECT count(*) FROM `{table}`")
                rows = cur.fetchone()[0]
                cur.execute(f"CHECKSUM TABLE `{table}`")
                result[table] = (rows, cur.fetchone()[1])
            return result
    finally:
        conn.close()


if not mysql_restored:
    skipped("nothing was restored (see the cell above).", ["make the cell above run, then this one."], """
        orders         6000 rows  identical: True
        order_items   15908 rows  identical: True
        products        300 rows  identical: True
        users          2000 rows  identical: True
        all 11 tables identical: True""")
else:
    source_prints, restored_prints = mysql_fingerprints(course.namespace), mysql_fingerprints(RESTORE_DB)
    for table in ("orders", "order_items", "products", "users"):
        print(f"{table:<12} {restored_prints[table][0]:>6} rows  "
              f"identical: {source_prints[table] == restored_prints[table]}")
    print(f"all {len(source_prints)} tables identical:", source_prints == restored_prints)

# %% [markdown]
# ### MongoDB: a dump in `mongodump`'s format
#
# `mongodump` writes, for each collection, a `.bson` file (the documents, one BSON document after
# another) and a `.metadata.json` file (its indexes and options); `mongorestore` reads them back.
# Both come with the *MongoDB Database Tools*, which are **not installed here** (and the course's
# MongoDB is a stand-in). So the next cell uses them when they are on the `PATH`, and otherwise
# writes **the same files** itself with PyMongo's `bson` module and restores them with
# `insert_many`. Documents are copied as raw BSON bytes (`RawBSONDocument`), so nothing is
# converted on the way: types such as `Decimal128` and dates survive exactly.
#
# The tools get the course's connection URL (with its user, password and TLS options, if any) from
# a private configuration file (`--config`, the password-file idea again), not from the command line.
# One collection is left out, as `--excludeCollection=events` does: the click log is large,
# append-only and usually archived on its own schedule (and the course's stand-in server restores
# documents slowly). Everything else is dumped.

# %%
from urllib.parse import urlsplit

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.errors import BulkWriteError

RAW = CodecOptions(document_class=RawBSONDocument)


def insert_all(collection, documents, batch=1000):
    """Insert in batches; like mongorestore, skip a document whose _id is already there (for
    instance from a batch the driver sent again after a dropped connection) rather than stop."""
    for start in range(0, len(documents), batch):
        try:
            collection.insert_many(documents[start:start + batch], ordered=False)
        except BulkWriteError as exc:
            if any(error["code"] != 11000 for error in exc.details["writeErrors"]):  # 11000: duplicate key
                raise


mongo_dump_dir = course.path("mongo-dump")
shutil.rmtree(mongo_dump_dir, ignore_errors=True)
source_db = course.mongo_client.get_database(course.namespace, codec_options=RAW)
restore_mongo = course.mongo_client.get_database(RESTORE_DB, codec_options=RAW)
course.mongo_client.drop_database(RESTORE_DB)

dumped_with_tools = False
if TOOLS["mongodump"] and TOOLS["mongorestore"]:
    server_url = urlsplit(course.mongodb_url)._replace(path="/").geturl()  # the URL without a database: --db says
    mongo_config = write_private(course.path("mongo-tools.yaml"), f"uri: {json.dumps(server_url)}\n")
    try:
        run([TOOLS["mongodump"], f"--config={mongo_config}", f"--db={course.namespace}",
             "--excludeCollection=events", f"--out={mongo_dump_dir}"])
        run([TOOLS["mongorestore"], f"--config={mongo_config}", f"--nsFrom={course.namespace}.*",
             f"--nsTo={RESTORE_DB}.*", str(mongo_dump_dir)])
        print("dumped and restored with mongodump and mongorestore")
        dumped_with_tools = True
    except RuntimeError as exc:
        print(exc, "\n-> writing the same files with PyMongo instead")
        shutil.rmtree(mongo_dump_dir, ignore_errors=True)
        course.mongo_client.drop_database(RESTORE_DB)
else:
    print("mongodump is not installed here: writing the same .bson and .metadata.json files with PyMongo")

if not dumped_with_tools:
    folder = mongo_dump_dir / course.namespace
    folder.mkdir(parents=True)
    for name in sorted(set(source_db.list_collection_names()) - {"events"}):
        collection = source_db[name]
        with open(folder / f"{name}.bson", "wb") as out:
            for document in collection.find().sort("_id", 1):
                out.write(document.raw)  # a .bson file is just BSON documents, back to back
        indexes = [dict(index) for index in course.mongo_db[name].list_indexes()]
        (folder / f"{name}.metadata.json").write_text(json_util.dumps({"indexes": indexes, "collectionName": name}))

    for bson_file in sorted(folder.glob("*.bson")):  # the restore, as mongorestore would do it
        name = bson_file.stem
        with open(bson_file, "rb") as dump:
            documents = list(bson.decode_file_iter(dump, codec_options=RAW))
        insert_all(restore_mongo[name], documents)
        metadata = json_util.loads((folder / f"{name}.metadata.json").read_text())
        for index in metadata["indexes"]:
            if index["name"] != "_id_":
                options = {k: v for k, v in index.items() if k not in ("key", "v", "ns")}
                restore_mongo[name].create_index(list(index["key"].items()), **options)

print("files:", sorted(p.name for p in (mongo_dump_dir / course.namespace).iterdir())[:4], "...")

# %%
def mongo_fingerprint(database, name):
    """Documents count, and a SHA-256 of all documents' raw BSON in _id order."""
    digest, count = hashlib.sha256(), 0
    for document in database[name].find().sort("_id", 1):
        digest.update(document.raw)
        count += 1
    return count, digest.hexdigest()


collections = sorted(set(source_db.list_collection_names()) - {"events"})
same = {name: mongo_fingerprint(source_db, name) == mongo_fingerprint(restore_mongo, name) for name in collections}
for name in ("orders", "posts", "products", "users"):
    print(f"{name:<10} {mongo_fingerprint(restore_mongo, name)[0]:>6} documents  identical: {same[name]}")
print(f"all {len(collections)} collections identical:", all(same.values()))

# %% [markdown]
# ### Redis: an RDB snapshot, restored into a second server
#
# Redis keeps everything in memory; its **RDB snapshot** is a compact file of the whole dataset at
# one instant. `BGSAVE` writes it in the background (a forked child process), into the server's
# directory (`CONFIG GET dir`) under the name `dbfilename`; `INFO persistence` says when that
# save has finished (`rdb_bgsave_in_progress`) and whether it worked (`rdb_last_bgsave_status`).
# To restore, a Redis server started with that file loads it at start-up.
#
# First some keys of different types in your namespace, one with an expiry:

# %%
r = course.redis
for key in r.scan_iter(match=course.key("*"), count=1000):  # count: fewer round trips on a big server
    r.delete(key)
r.hset(course.key("cart", 42), mapping={"product:7": 2, "product:12": 1})
r.set(course.key("session", "abc123"), json.dumps({"user_id": 42}), ex=3600)
r.zadd(course.key("leaderboard"), {"ann": 310, "bob": 270, "eve": 295})
r.rpush(course.key("queue", "emails"), "welcome:42", "receipt:6001")
r.sadd(course.key("tags", 7), "kitchen", "steel")
r.incrby(course.key("visits", "2026-06-30"), 1234)
namespace_keys = sorted(r.scan_iter(match=course.key("*"), count=1000))
print(len(namespace_keys), "keys:", [key.removeprefix(course.redis_prefix) for key in namespace_keys])

# %% [markdown]
# On a server of your own you would run `BGSAVE` there (or let its `save` rules do it) and copy the
# file from its directory. The course's server is **shared**, though: its snapshot holds every
# notebook's keys, another notebook's `BGSAVE` can replace the file while you copy it, and the
# server may run in a container whose directory you cannot read. So your keys get a Redis server
# of their own: the notebook starts a **temporary** `redis-server` on a free port, with its
# directory in your scratch folder and automatic snapshots off (`--save ""`), copies your keys into
# it (each with its type and its remaining time to live), takes the snapshot there and copies the
# file aside, as the backup. The course's server and its files are never touched.

# %%
import socket

import redis as redis_lib

if "temporary_servers" in globals():  # this cell ran before: stop whatever it left running
    for process in temporary_servers:
        if process.poll() is None:
            process.kill()
            process.wait()
temporary_servers = []  # every redis-server this notebook starts, so that each one is stopped
REDIS_DIR = course.path("redis-server")  # the temporary servers' directory, in your scratch folder


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_redis(process):
    """Stop a server this notebook started: by its process, never by its name."""
    if process.poll() is None:
        process.terminate()  # SIGTERM: Redis shuts down cleanly (and, with --save "", writes nothing)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_redis(folder: Path, dbfilename: str | None = None, attempts: int = 3):
    """Start a redis-server of our own on a free port. It loads folder/dbfilename if that file
    exists; without a dbfilename it starts empty."""
    folder.mkdir(parents=True, exist_ok=True)
    if dbfilename is None:
        dbfilename = "empty.rdb"
        (folder / dbfilename).unlink(missing_ok=True)
    for _ in range(attempts):  # another program may take the free port first: then try another one
        port = free_port()
        process = subprocess.Popen(
            [TOOLS["redis-server"], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
             "--dbfilename", dbfilename, "--save", "", "--appendonly", "no",
             "--logfile", str(folder / "temporary-redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        temporary_servers.append(process)
        client = redis_lib.Redis(port=port, decode_responses=True)
        deadline = time.monotonic() + 15
        while process.poll() is None and time.monotonic() < deadline:
            try:
                info = client.info()
                if info["process_id"] == process.pid and not info["loading"]:  # ours, and done loading its file
                    return process, client
            except redis_lib.ConnectionError:
                pass
            time.sleep(0.05)
        client.close()
        stop_redis(process)
    raise RuntimeError(f"the temporary Redis server did not start: see {folder / 'temporary-redis.log'}")


def redis_value(client, key):
    """A key's type and value, read back as Python data (for comparing two servers)."""
    kind = client.type(key)
    read = {"string": client.get, "hash": client.hgetall, "set": client.smembers,
            "list": lambda k: client.lrange(k, 0, -1), "zset": lambda k: client.zrange(k, 0, -1, withscores=True)}
    return kind, read[kind](key)


def copy_key(source, target, key):
    """Copy one key with its type and remaining time to live (plain commands: any two Redis versions)."""
    kind, value = redis_value(source, key)
    write = {"string": lambda: target.set(key, value), "hash": lambda: target.hset(key, mapping=value),
             "set": lambda: target.sadd(key, *value), "list": lambda: target.rpush(key, *value),
             "zset": lambda: target.zadd(key, dict(value))}
    target.delete(key)
    write[kind]()
    if (ttl := source.pttl(key)) > 0:
        target.pexpire(key, ttl)


def bgsave_and_wait(client, timeout=30.0):
    """BGSAVE, then wait until INFO persistence says that this save is over, and check that it worked."""
    saves_before = client.info("persistence").get("rdb_saves")  # saves started so far (Redis 7 and later)
    client.bgsave()
    deadline = time.monotonic() + timeout
    while True:
        info = client.info("persistence")
        ours_started = saves_before is None or info["rdb_saves"] > saves_before
        if ours_started and not info["rdb_bgsave_in_progress"]:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"BGSAVE had not finished after {timeout:.0f} s: see temporary-redis.log")
        time.sleep(0.05)
    if info["rdb_last_bgsave_status"] != "ok":
        raise RuntimeError("BGSAVE failed: see temporary-redis.log")
    return info


REDIS_FIXES = [
    "install Redis, for its redis-server program (the notebook starts servers of its own): on Debian or Ubuntu "
    "`apt-get install redis-server`, on macOS `brew install redis`; then run the cell that looks for the tools "
    "(after the setup cell) and this one again;",
    "with Redis in Docker, the snapshot of that server is made with `docker compose -f docker/compose.yml exec "
    "redis redis-cli BGSAVE` and, once `redis-cli INFO persistence` shows `rdb_bgsave_in_progress:0`, copied with "
    "`docker compose -f docker/compose.yml cp redis:/data/dump.rdb snapshot.rdb`.",
]

snapshot = course.path("snapshot.rdb")  # the backup: a copy, kept apart from the server's directory
snapshot.unlink(missing_ok=True)
redis_problem = None if TOOLS["redis-server"] else "redis-server is not installed here."
if redis_problem is None:
    try:
        (REDIS_DIR / "dump.rdb").unlink(missing_ok=True)  # an earlier run's snapshot: the server must start empty
        live, live_client = start_redis(REDIS_DIR, "dump.rdb")
        try:
            for key in namespace_keys:
                copy_key(r, live_client, key)
            print("keys copied into the temporary server:", live_client.dbsize())
            info = bgsave_and_wait(live_client)
            print("BGSAVE finished:", info["rdb_last_bgsave_status"],
                  "| changes not in the snapshot:", info["rdb_changes_since_last_save"])
            shutil.copy(REDIS_DIR / "dump.rdb", snapshot)
        finally:
            live_client.close()
            stop_redis(live)
        print("snapshot copied into your scratch folder:", snapshot.stat().st_size > 0)
    except RuntimeError as exc:
        redis_problem = str(exc)
if redis_problem:
    skipped(redis_problem, REDIS_FIXES, """
        keys copied into the temporary server: 6
        BGSAVE finished: ok | changes not in the snapshot: 0
        snapshot copied into your scratch folder: True""")

# %% [markdown]
# The restore: start another temporary server that reads the copied file at start-up (with
# snapshots off, so that it never writes over the backup it loads), and compare every key of your
# namespace with the **original** on the course's server: its type, its value read back as Python
# data, and its remaining time to live. (Comparing the bytes of `DUMP` is tempting but wrong: a set
# or a hash may serialize its members in another order after a reload, with the same value.)

# %%
def same_key(source, copy, key):
    return redis_value(source, key) == redis_value(copy, key) and abs(source.ttl(key) - copy.ttl(key)) <= 5


if redis_problem:
    skipped("no snapshot was made (see the cell above).", ["make the cell above run, then this one."], """
        temporary server started; keys it loaded from the snapshot: 6
          cart:42                  hash   identical: True
          leaderboard              zset   identical: True
          queue:emails             list   identical: True
          session:abc123           string identical: True
          tags:7                   set    identical: True
          visits:2026-06-30        string identical: True
        every key of the namespace restored: True | session TTL kept: True
        temporary server stopped: True""")
else:
    temporary, restored_redis = start_redis(snapshot.parent, snapshot.name)
    try:
        print("temporary server started; keys it loaded from the snapshot:", restored_redis.dbsize())
        checks = {key: same_key(r, restored_redis, key) for key in namespace_keys}
        for key, ok in checks.items():
            print(f"  {key.removeprefix(course.redis_prefix):<24} {r.type(key):<6} identical: {ok}")
        print("every key of the namespace restored:", all(checks.values()),
              "| session TTL kept:", restored_redis.ttl(course.key("session", "abc123")) > 3000)
    finally:
        restored_redis.close()
        stop_redis(temporary)
    print("temporary server stopped:", temporary.poll() is not None)

# %% [markdown]
# An RDB snapshot holds the **whole** server (every namespace on it). To back up only your own keys,
# use `DUMP` (a key's value, serialized) and `RESTORE` (which recreates it, here with its TTL in
# milliseconds): the same data, key by key, written to a file and restored into a fresh, empty
# temporary server. `DUMP`'s format belongs to a Redis version: a server refuses a payload from a
# newer version than its own.

# %%
backup = [(key, max(r.pttl(key), 0), r.dump(key)) for key in namespace_keys]  # pttl -1 (no expiry) -> 0
course.path("namespace-keys.json").write_text(json.dumps(
    [(key, ttl, base64.b64encode(payload).decode()) for key, ttl, payload in backup]))
print("keys written to namespace-keys.json:", len(backup))

if redis_problem:
    skipped("redis-server is needed for the restore (see above).", REDIS_FIXES, """
        keys written to namespace-keys.json: 6
        DUMP/RESTORE: every key identical: True""")
else:
    fresh, fresh_client = start_redis(REDIS_DIR)  # no file: an empty server
    try:
        for key, ttl, payload in json.loads(course.path("namespace-keys.json").read_text()):
            fresh_client.restore(key, ttl, base64.b64decode(payload), replace=True)
        print("DUMP/RESTORE: every key identical:", all(same_key(r, fresh_client, key) for key in namespace_keys))
    except redis_lib.ResponseError as exc:  # an older redis-server than the course's server
        print("this redis-server cannot read the course server's DUMP format (it is older):", exc)
    finally:
        fresh_client.close()
        stop_redis(fresh)

# %% [markdown]
# ### Exercise 08.8 · Did the restore really work? (practice)
#
# Write `verify_restore(source, restored, tables)`: `source` and `restored` are psycopg connections
# to two databases (or schemas), `tables` a list of table names. Return a dict `{table: bool}`:
# `True` when the table has the same number of rows **and** the same contents in both, whatever the
# order the rows are stored in; `False` otherwise.
#
# A row count alone is not enough (a restore can have every row with a wrong value), and comparing
# `SELECT *` results without `ORDER BY` is not either (row order is not defined). Quote table
# names with `sql.Identifier`. The check restores copies with rows stored in another order, with a
# row missing, with a value changed, and with `NULL`s. It makes those copies with SQL, in scratch
# schemas of your database, so this exercise needs none of the command-line tools above: it works
# (and is graded) the same where a backup step was skipped.

# %% nbgrader={"grade": false, "grade_id": "ex08-8-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def verify_restore(source, restored, tables):
    def fingerprint(conn, table):
        query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                        "FROM {} AS t").format(sql.Identifier(table))
        return conn.execute(query).fetchone()

    return {table: fingerprint(source, table) == fingerprint(restored, table) for table in tables}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-8-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.verify_restore(verify_restore, course)
### BEGIN HIDDEN TESTS
check.verify_restore(verify_restore, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Scaling: replicas, sharding, and when to leave one machine
#
# One well-indexed PostgreSQL or MySQL server on decent hardware handles thousands of queries per
# second and terabytes of data. Scale out when you have measured that you must, and in this order:
# fix the queries and indexes (chapter 07), cache the hot reads (chapter 06), buy a bigger machine,
# add **read replicas**, and only then **shard**.
#
# ### 7.1 Read replicas and routing
#
# A **replica** is a second server that replays everything the **primary** writes (PostgreSQL's
# streaming replication ships its write-ahead log; MySQL ships its binary log). Writes must go to
# the primary; reads can go to either. A **router** in the data layer makes that choice. The catch:
# replication is usually **asynchronous**, so a replica lags a little behind, and a read just after
# a write may not see it.
#
# ```mermaid
# flowchart LR
#     app[application] --> router{router}
#     router -- "writes" --> primary[(primary)]
#     router -- "reads" --> replica[(replica)]
#     primary -- "replication log<br/>(with some lag)" --> replica
#     router -. "reads right after<br/>this session's write" .-> primary
# ```
#
# Two real servers are beyond this notebook, so the demonstration uses two **databases** on the
# course's server, a primary and a replica. First both get the same starting copy (as a base backup
# would give them); `COPY ... TO STDOUT` on one connection feeds `COPY ... FROM STDIN` on the other.

# %%
PRIMARY, REPLICA = EXTRA_DATABASES["primary"], EXTRA_DATABASES["replica"]
PROFILE_DDL = "CREATE TABLE profiles (user_id int PRIMARY KEY, full_name text NOT NULL, country text NOT NULL)"


def copy_rows(source, target, select_sql, table):
    with source.cursor().copy(f"COPY ({select_sql}) TO STDOUT") as out, \
            target.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as into:
        for block in out:
            into.write(block)


for name in (PRIMARY, REPLICA):
    recreate_database(name)
    with course.connect_postgres() as shop, connect_db(name) as target:
        target.execute(PROFILE_DDL)
        copy_rows(shop, target, "SELECT user_id, full_name, country FROM users", "profiles")
        role = "primary" if name == PRIMARY else "replica"
        print(f"{role}: {target.execute('SELECT count(*) FROM profiles').fetchone()[0]} profiles")

# %% [markdown]
# The simulation: every write goes to the primary and is appended to a **replication log**; the
# replica applies the log only when `replicate()` is called, which plays the part of the network
# and of the replica's replay (the lag). The router sends reads to the replica, except for a
# session whose last write the replica has not applied yet: **read-your-writes**.

# %%
class ReplicatedDatabase:
    def __init__(self, primary_name, replica_name):
        self.primary = connect_db(primary_name, autocommit=True)
        self.replica = connect_db(replica_name, autocommit=True)
        self.log = []  # the primary's replication log: (statement, params)
        self.applied = 0  # how much of it the replica has replayed

    def write(self, statement, params=()):
        self.primary.execute(statement, params)
        self.log.append((statement, params))
        return len(self.log)  # the log position of this write (like a PostgreSQL LSN)

    def replicate(self):
        for statement, params in self.log[self.applied:]:
            self.replica.execute(statement, params)
        self.applied = len(self.log)

    def close(self):
        self.primary.close()
        self.replica.close()


class Router:
    """Writes to the primary; reads to the replica unless this session would read a stale value."""

    def __init__(self, database, read_your_writes=True):
        self.db, self.read_your_writes, self.last_write = database, read_your_writes, 0

    def write(self, statement, params=()):
        self.last_write = self.db.write(statement, params)

    def read(self, statement, params=()):
        stale = self.db.applied < self.last_write
        target = "primary" if (self.read_your_writes and stale) else "replica"
        conn = self.db.primary if target == "primary" else self.db.replica
        return target, conn.execute(statement, params).fetchall()


database = ReplicatedDatabase(PRIMARY, REPLICA)
COUNTRY = "SELECT country FROM profiles WHERE user_id = %s"
naive, careful = Router(database, read_your_writes=False), Router(database)

naive.write("UPDATE profiles SET country = 'NZ' WHERE user_id = %s", [42])
print("naive router, right after the write:  ", naive.read(COUNTRY, [42]), "<- stale")
careful.write("UPDATE profiles SET country = 'NZ' WHERE user_id = %s", [43])
print("read-your-writes router:              ", careful.read(COUNTRY, [43]))
database.replicate()
print("after the replica caught up (naive):  ", naive.read(COUNTRY, [42]))
print("after the replica caught up (careful):", careful.read(COUNTRY, [43]))
database.close()

# %% [markdown]
# Real systems implement the same idea with real positions: PostgreSQL reports
# `pg_current_wal_lsn()` on the primary and `pg_last_wal_replay_lsn()` on a replica; a router can
# remember the primary's position after each write and read from a replica only once it has
# replayed that far, or simply pin a user to the primary for a few seconds after they write.
# In the frameworks, this logic lives in Django's **database routers** (`db_for_read` and
# `db_for_write`), and in SQLAlchemy in a `Session` subclass that overrides `get_bind()` to pick the
# primary's or a replica's engine for each statement (the documentation's "custom vertical
# partitioning" recipe). SQLAlchemy's `horizontal_shard` extension is something else: it spreads the
# rows of a table over several databases, which is sharding, the next topic.
#
# ### 7.2 Sharding by key
#
# When one primary can no longer absorb the **writes** (or hold the data), split the data across
# several independent databases, the **shards**, each holding a slice chosen by a **shard key**.
# For a shop the natural key is `user_id`: a user, their orders and their cart live on the same
# shard, so everything about one user is a single-shard query.
#
# A stable rule maps a key to a shard: a hash of the key, modulo the number of shards. Stable means
# the same in every process and every run: `zlib.crc32` is; Python's built-in `hash()` of a string
# is **not** (it is salted per process).

# %%
import zlib

SHARDS = [EXTRA_DATABASES["shard0"], EXTRA_DATABASES["shard1"]]


def shard_for(user_id: int, shards: int = len(SHARDS)) -> int:
    return zlib.crc32(str(user_id).encode()) % shards


SHARD_DDL = """
CREATE TABLE users (user_id int PRIMARY KEY, full_name text NOT NULL, country text NOT NULL);
CREATE TABLE orders (order_id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, ordered_at timestamptz NOT NULL,
                     status text NOT NULL, total numeric(12, 2) NOT NULL);
"""
for name in SHARDS:
    recreate_database(name)

with course.connect_postgres() as shop:
    users = shop.execute("SELECT user_id, full_name, country FROM users ORDER BY user_id").fetchall()
    orders = shop.execute("""SELECT o.order_id, o.user_id, o.ordered_at, o.status,
                                    coalesce(sum(i.quantity * i.unit_price), 0)
                             FROM orders o LEFT JOIN order_items i USING (order_id)
                             GROUP BY o.order_id ORDER BY o.order_id""").fetchall()

shard_conns = [connect_db(name) for name in SHARDS]
for conn in shard_conns:
    conn.execute(SHARD_DDL)
for index, conn in enumerate(shard_conns):  # the router decides where each row goes
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO users VALUES (%s, %s, %s)", [u for u in users if shard_for(u[0]) == index])
        cur.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)",
                        [o for o in orders if shard_for(o[1]) == index])
    conn.commit()
for index, conn in enumerate(shard_conns):
    print(f"shard {index}:", conn.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders)")
          .fetchone(), "(users, orders)")

# %% [markdown]
# A question about **one user** goes to one shard. A question about **everyone** must ask every
# shard (**fan-out**) and merge the partial answers in the application. Merging is easy for sums and
# counts, but an average of averages is wrong: fetch sums and counts, and divide at the end.

# %%
def orders_of(user_id):
    conn = shard_conns[shard_for(user_id)]  # one shard, found by the key
    return conn.execute("SELECT order_id, status FROM orders WHERE user_id = %s ORDER BY order_id", [user_id]).fetchall()


rows = orders_of(42)
print(f"user 42 lives on shard {shard_for(42)}: {len(rows)} orders, the first ones {rows[:3]}")

PARTIAL = """SELECT u.country, sum(o.total) AS revenue, count(*) AS orders
             FROM orders o JOIN users u USING (user_id)            -- a join inside one shard: co-located data
             WHERE o.status NOT IN ('cancelled', 'refunded')
             GROUP BY u.country"""
merged = {}
for conn in shard_conns:  # fan-out: the same query on every shard
    for country, revenue, count in conn.execute(PARTIAL):
        total, n = merged.get(country, (0, 0))
        merged[country] = (total + revenue, n + count)
top = sorted(merged.items(), key=lambda item: (-item[1][0], item[0]))[:3]
for country, (revenue, n) in top:
    print(f"{country}: revenue {revenue:,.2f} over {n} orders, average order {revenue / n:,.2f}")

with course.connect_postgres() as shop:  # the same question on the unsharded database
    single = shop.execute("""SELECT u.country, sum(i.quantity * i.unit_price), count(DISTINCT o.order_id)
                             FROM orders o JOIN users u USING (user_id) LEFT JOIN order_items i USING (order_id)
                             WHERE o.status NOT IN ('cancelled', 'refunded') GROUP BY u.country""").fetchall()
print("fan-out result equals the single-database result:",
      {c: (float(rev or 0), n) for c, rev, n in single} == {c: (float(rev), n) for c, (rev, n) in merged.items()})

# %% [markdown]
# What sharding costs you:
#
# * **cross-shard joins and transactions**: an order between two users on two shards, or a
#   foreign key across shards, is no longer one transaction; design the key so that they are rare;
# * **resharding**: with `hash % N`, going from 2 to 3 shards moves most keys. Count them:

# %%
moved = sum(shard_for(u, 2) != shard_for(u, 3) for u, _, _ in users)
print(f"users that change shard when going from 2 to 3 shards: {moved / len(users):.0%}")

# %% [markdown]
# That is why real systems use **consistent hashing** or many small virtual shards assigned to
# servers through a directory (only the directory changes), or let the database do it (Citus for
# PostgreSQL, Vitess for MySQL, MongoDB's built-in sharding, Redis Cluster's 16,384 hash slots).
#
# ### 7.3 When to move off one machine
#
# | Signal (measured, sustained) | First try | Then |
# |---|---|---|
# | a few queries are slow | indexes, better queries (chapter 07) | - |
# | the same reads over and over | a cache (Redis, chapter 06) | read replicas |
# | CPU or I/O saturated by reads | a bigger machine | read replicas |
# | writes saturate the primary | batching, fewer indexes, a bigger machine | partitioning, then sharding |
# | the data outgrows one disk | archive cold data, partition by time | sharding |
# | one machine is a single point of failure | a standby replica with automatic failover | replicas in several zones |
#
# Each step adds operational work (monitoring lag, failover, rebalancing, backups of every shard),
# so take the next one only when the numbers say so.
#
# ### Exercise 08.9 · A shard router (practice)
#
# Write a class `ShardRouter` whose constructor takes a list of psycopg connections, one per shard;
# each shard has a table `users (user_id int PRIMARY KEY, email text, country text)`. Methods:
#
# * `shard_for(user_id) -> int`: the index of the shard that owns `user_id`: **stable** (same answer
#   every time, in every process: no built-in `hash()` of strings, no randomness) and **balanced**
#   (consecutive ids spread evenly over the shards);
# * `add_user(user_id, email, country)`: inserts the user into its shard only, and commits;
# * `get_user(user_id)`: the row `(user_id, email, country)` from its shard only, or `None`;
# * `count_by_country() -> dict`: `{country: number of users}` over **all** shards (fan-out).
#
# The check gives your router fresh shards (2, and 3 in the hidden tests), adds a few hundred users
# from the shop, and then looks at what landed where.

# %% nbgrader={"grade": false, "grade_id": "ex08-9-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
from collections import Counter


class ShardRouter:
    def __init__(self, shards):
        self.shards = list(shards)

    def shard_for(self, user_id):
        return zlib.crc32(str(user_id).encode()) % len(self.shards)

    def _conn(self, user_id):
        return self.shards[self.shard_for(user_id)]

    def add_user(self, user_id, email, country):
        conn = self._conn(user_id)
        conn.execute("INSERT INTO users (user_id, email, country) VALUES (%s, %s, %s)", [user_id, email, country])
        conn.commit()

    def get_user(self, user_id):
        row = self._conn(user_id).execute(
            "SELECT user_id, email, country FROM users WHERE user_id = %s", [user_id]).fetchone()
        return tuple(row) if row else None

    def count_by_country(self):
        totals = Counter()
        for conn in self.shards:
            for country, count in conn.execute("SELECT country, count(*) FROM users GROUP BY country"):
                totals[country] += count
        return dict(totals)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-9-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.shard_router(ShardRouter, course)
### BEGIN HIDDEN TESTS
check.shard_router(ShardRouter, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 8. Choosing databases for real systems
#
# Chapter 00 gave the decision tree for one need at a time. A real system has several needs, and
# usually combines two or three stores, each doing what it is good at, with **one of them the
# source of truth** for each piece of data.
#
# | System | Source of truth | Beside it | Why |
# |---|---|---|---|
# | **e-commerce** | PostgreSQL: customers, products, orders, stock, payments | Redis: carts, sessions, cache, rate limits | money needs transactions and constraints; carts and sessions are hot, per-key and expiring |
# | **CMS / content site** | MongoDB: articles, videos, pages as documents of varying shape | a CDN and a cache; a search engine | a page is read whole; each content type has its own fields |
# | **analytics** | an append-only event log (MongoDB, or files in a data lake) | pre-aggregated counters (MongoDB upserts, Redis), a column store for large scale (ClickHouse, BigQuery) | write once, read aggregated; never join on the hot path |
# | **social network** | PostgreSQL (users, posts) | a graph database (Neo4j) when walks get deep or large; Redis for feeds | "friends of friends" is a walk over relationships |
#
# A quick tour of each, on the data you already have.
#
# **E-commerce: the cart in Redis, the order in PostgreSQL.** The cart changes at every click and
# may be abandoned: a Redis hash with an expiry. Checkout turns it into an order in one PostgreSQL
# transaction, and deletes the cart only after the commit.

# %%
cart_key = course.key("cart", 7)
r.delete(cart_key)
r.hset(cart_key, mapping={"5": 1, "9": 2})  # product_id -> quantity
r.expire(cart_key, 7 * 24 * 3600)  # abandoned carts disappear after a week

with course.connect_postgres() as conn:
    with conn.transaction():
        order_id = conn.execute(
            "INSERT INTO orders (user_id, ordered_at, status, shipping_country) "
            "SELECT user_id, now(), 'pending', country FROM users WHERE user_id = %s RETURNING order_id",
            [7]).fetchone()[0]
        for product_id, quantity in sorted((int(p), int(q)) for p, q in r.hgetall(cart_key).items()):
            conn.execute("INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                         "SELECT %s, product_id, %s, price FROM products WHERE product_id = %s",
                         [order_id, quantity, product_id])
            conn.execute("UPDATE products SET stock = stock - %s WHERE product_id = %s", [quantity, product_id])
    r.delete(cart_key)  # after the commit: if the transaction had failed, the cart would still be there
    for line in conn.execute("SELECT product_id, quantity, unit_price FROM order_items "
                             "WHERE order_id = %s ORDER BY product_id", [order_id]):
        print("order line: product {}, quantity {}, unit price {}".format(*line))
    print("cart left in Redis:", r.exists(cart_key))

# %% [markdown]
# **CMS: content as documents.** Articles and videos share one collection, with different fields
# per kind; the comments and tag names are embedded, so a page is one read.

# %%
posts = course.mongo_db.posts
latest = posts.find({"tags": "postgresql", "published_at": {"$exists": True}},
                    {"_id": 1, "kind": 1, "title": 1, "word_count": 1, "duration_seconds": 1})
for post in latest.sort([("published_at", -1), ("_id", 1)]).limit(4):
    size = f"{post['word_count']} words" if post["kind"] == "article" else f"{post['duration_seconds'] // 60} min"
    print(f"{post['_id']:>4} {post['kind']:<8} {size:<10} {post['title']}")
print(list(posts.aggregate([{"$group": {"_id": "$kind", "posts": {"$sum": 1}}}, {"$sort": {"_id": 1}}])))

# %% [markdown]
# **Analytics: aggregate, do not join on the hot path.** At this size PostgreSQL answers analytical
# questions directly; at scale, the events go to a column store or are pre-aggregated as they arrive
# (capstone 4 does that in MongoDB).

# %%
with course.connect_postgres() as conn:
    for month, revenue, buyers in conn.execute("""
            SELECT date_trunc('month', o.ordered_at)::date AS month,
                   sum(i.quantity * i.unit_price) AS revenue, count(DISTINCT o.user_id) AS buyers
            FROM orders o JOIN order_items i USING (order_id)
            WHERE o.status NOT IN ('cancelled', 'refunded') AND o.ordered_at >= '2026-01-01' AND o.ordered_at < '2026-07-01'
            GROUP BY 1 ORDER BY 1"""):
        print(f"{month}  revenue {revenue:>10,.2f}  buyers {buyers}")

# %% [markdown]
# **Social graph: friends of friends with a recursive CTE.** A friendship is a pair of people;
# storing it in both directions makes every walk a simple join. A **recursive CTE** has two parts:
# a starting query (my friends, one hop), and a query that takes the rows found so far and goes one
# hop further, repeated until it adds nothing. The `path` array stops it from walking in circles.
#
# ```mermaid
# graph LR
#     Ann --- Bob
#     Ann --- Chen
#     Bob --- Dara
#     Chen --- Dara
#     Chen --- Eli
#     Dara --- Femi
#     Eli --- Gus
#     Gus --- Hana
# ```

# %%
people = {1: "Ann", 2: "Bob", 3: "Chen", 4: "Dara", 5: "Eli", 6: "Femi", 7: "Gus", 8: "Hana"}
pairs = [(1, 2), (1, 3), (2, 4), (3, 4), (3, 5), (4, 6), (5, 7), (7, 8)]
with course.connect_postgres() as conn:
    conn.execute("DROP TABLE IF EXISTS friendships, people")
    conn.execute("CREATE TABLE people (person_id int PRIMARY KEY, name text NOT NULL)")
    conn.execute("""CREATE TABLE friendships (
                        user_id int REFERENCES people, friend_id int REFERENCES people,
                        PRIMARY KEY (user_id, friend_id), CHECK (user_id <> friend_id))""")
    conn.cursor().executemany("INSERT INTO people VALUES (%s, %s)", list(people.items()))
    conn.cursor().executemany("INSERT INTO friendships VALUES (%s, %s)", pairs + [(b, a) for a, b in pairs])  # both ways
    conn.commit()

    FRIENDS_OF_FRIENDS = """
    WITH RECURSIVE walk (person_id, hops, path) AS (
        SELECT friend_id, 1, ARRAY[user_id, friend_id]          -- my friends: one hop
        FROM friendships WHERE user_id = %(me)s
      UNION ALL
        SELECT f.friend_id, w.hops + 1, w.path || f.friend_id   -- one hop further
        FROM walk w JOIN friendships f ON f.user_id = w.person_id
        WHERE w.hops < 2 AND f.friend_id <> ALL (w.path)        -- at most 2 hops, never back
    )
    SELECT p.name, count(*) AS through_mutual_friends
    FROM walk w JOIN people p USING (person_id)
    WHERE w.hops = 2
      AND w.person_id NOT IN (SELECT friend_id FROM friendships WHERE user_id = %(me)s)  -- not already a friend
    GROUP BY p.name ORDER BY through_mutual_friends DESC, p.name
    """
    print("people Ann may know:", conn.execute(FRIENDS_OF_FRIENDS, {"me": 1}).fetchall())
    print("people Gus may know:", conn.execute(FRIENDS_OF_FRIENDS, {"me": 7}).fetchall())

# %% [markdown]
# Dara comes first for Ann: two mutual friends (Bob and Chen). The same query with a larger hop
# limit finds everyone within N hops; on a graph of millions of users with deep walks, that is the
# point where a graph database earns its place.
#
# ### Exercise 08.10 · Degrees of separation (practice)
#
# Write `separation_sql`: a query with a recursive CTE over `friendships (user_id, friend_id)`
# (each friendship stored in both directions) that returns **exactly one row** with one column
# `hops`: the length of the shortest chain of friendships from person `%(a)s` to person `%(b)s`;
# `0` when `a` and `b` are the same person; `NULL` when they are not connected within **6** hops.
#
# Use the placeholders `%(a)s` and `%(b)s` (psycopg's named parameters). The check runs it on a
# graph of its own (a few dozen people, several separate groups, long chains), for many pairs.
# Tip: start the walk at `a` with 0 hops, and `UNION` (not `UNION ALL`) keeps it small.

# %% nbgrader={"grade": false, "grade_id": "ex08-10-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
separation_sql = """
WITH RECURSIVE walk (person_id, hops) AS (
    SELECT %(a)s::int, 0
  UNION
    SELECT f.friend_id, w.hops + 1
    FROM walk w JOIN friendships f ON f.user_id = w.person_id
    WHERE w.hops < 6
)
SELECT min(hops) AS hops FROM walk WHERE person_id = %(b)s
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-10-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.separation(separation_sql, course)
### BEGIN HIDDEN TESTS
check.separation(separation_sql, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 9. Capstone: the data layer of a small shop
#
# Four exercises build, piece by piece, what an online shop needs beneath its web pages. Each one is
# checked on its own (the checks of capstones 2 and 3 build their own copy of the schema from a
# reference answer, so a mistake in one exercise does not block the next).
#
# ```mermaid
# flowchart TB
#     web[web handlers] --> cached["CachedProductRepository<br/>(capstone 3: Redis, cache-aside, TTL)"]
#     cached --> repo["ShopRepository<br/>(capstone 2: all the SQL, transactions, a pool)"]
#     repo --> schema[("the schema<br/>(capstone 1: PostgreSQL, constraints)")]
#     web -- "every click" --> analytics["track_event, top_users<br/>(capstone 4: MongoDB, $inc upserts)"]
# ```
#
# ### Exercise 08.11 · Capstone 1: an e-commerce schema (challenge)
#
# Write `ecommerce_ddl`: the PostgreSQL statements (several, separated by `;`) that create these
# four tables, with every rule enforced by the database. Write table names without a schema.
#
# | Table | Columns and rules |
# |---|---|
# | `customers` | `customer_id` generated identity primary key; `email` text, required, unique; `full_name` text, required; `created_at` timestamptz, required, defaults to now |
# | `products` | `product_id` generated identity primary key; `sku` text, required, unique; `name` text, required; `price` **numeric(10,2)**, required, `>= 0`; `stock` integer, required, defaults to 0, `>= 0` |
# | `orders` | `order_id` generated identity primary key; `customer_id` required, references `customers`; `status` text, required, defaults to `'pending'`, one of `pending`, `paid`, `shipped`, `delivered`, `cancelled`; `created_at` timestamptz, required, defaults to now |
# | `order_items` | `order_id` references `orders`, **deleting an order deletes its items**; `product_id` references `products`; `quantity` integer, required, `> 0`; `unit_price` **numeric(10,2)**, required, `>= 0`; primary key `(order_id, product_id)` (a product appears once per order) |
#
# Also: deleting a customer who has orders, or a product that appears in an order, must **fail**
# (the default for a foreign key); and add an **index on `orders (customer_id)`**: PostgreSQL does not
# index foreign keys by itself, and "the orders of this customer" is the most frequent query.
#
# The check runs your DDL in a scratch schema, inserts valid rows (which must be accepted, with the
# defaults filled in) and a series of invalid ones (each must be rejected), deletes an order and a
# product, and looks for the index.

# %% nbgrader={"grade": false, "grade_id": "ex08-11-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
ecommerce_ddl = """
CREATE TABLE customers (
    customer_id  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text NOT NULL UNIQUE,
    full_name    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
    product_id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku          text NOT NULL UNIQUE,
    name         text NOT NULL,
    price        numeric(10, 2) NOT NULL CHECK (price >= 0),
    stock        integer NOT NULL DEFAULT 0 CHECK (stock >= 0)
);
CREATE TABLE orders (
    order_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  integer NOT NULL REFERENCES customers (customer_id),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE TABLE order_items (
    order_id     integer NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    product_id   integer NOT NULL REFERENCES products (product_id),
    quantity     integer NOT NULL CHECK (quantity > 0),
    unit_price   numeric(10, 2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, product_id)
);
"""
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-11-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.ecommerce_schema(ecommerce_ddl, course)
### BEGIN HIDDEN TESTS
check.ecommerce_schema(ecommerce_ddl, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 08.12 · Capstone 2: a repository (challenge)
#
# A **repository** is the one place that knows how an aggregate (here: products, customers and their
# orders) is stored. The rest of the application calls methods such as `get_product(7)` and never
# sees SQL, connections or transactions. Two benefits: the SQL lives in one class, where it can be
# reviewed and tested; and the repository receives its connection pool from outside (*dependency
# injection*), so tests hand it a pool on a throwaway schema, and production a pool on the real
# database.
#
# Write a class `ShopRepository` for the schema of capstone 1, constructed with a
# `psycopg_pool.ConnectionPool` (`ShopRepository(pool)`). Every method borrows a connection with
# `with self.pool.connection() as conn:` (it commits when the block ends, rolls back on an
# exception, and always returns the connection to the pool):
#
# | Method | Returns | Behaviour |
# |---|---|---|
# | `add_product(sku, name, price, stock=0)` | the new `product_id` | |
# | `get_product(product_id)` | a dict with exactly the keys `product_id`, `sku`, `name`, `price` (a `Decimal`), `stock`; or `None` | |
# | `update_price(product_id, price)` | `True` if a product was updated, else `False` | |
# | `add_customer(email, full_name)` | the new `customer_id` | a duplicate e-mail raises (the database's `UniqueViolation` is fine) |
# | `place_order(customer_id, items)` | the new `order_id` | `items` is a dict `{product_id: quantity}`; one transaction: the order, its items at the product's **current** price, and the stock decreased; raises `ValueError` (writing nothing) when `items` is empty, a product does not exist, or there is not enough stock |
# | `order_total(order_id)` | a `Decimal`: the sum of quantity × unit price | |
#
# Tip: `psycopg.rows.dict_row` makes a cursor return dicts: `conn.cursor(row_factory=dict_row)`.
# The check uses a pool of at most **2** connections, so a method that keeps a connection fails fast.

# %% nbgrader={"grade": false, "grade_id": "ex08-12-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
from psycopg.rows import dict_row


class ShopRepository:
    def __init__(self, pool):
        self.pool = pool

    def add_product(self, sku, name, price, stock=0):
        with self.pool.connection() as conn:
            return conn.execute("INSERT INTO products (sku, name, price, stock) VALUES (%s, %s, %s, %s) "
                                "RETURNING product_id", [sku, name, price, stock]).fetchone()[0]

    def get_product(self, product_id):
        with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return cur.execute("SELECT product_id, sku, name, price, stock FROM products WHERE product_id = %s",
                               [product_id]).fetchone()

    def update_price(self, product_id, price):
        with self.pool.connection() as conn:
            return conn.execute("UPDATE products SET price = %s WHERE product_id = %s",
                                [price, product_id]).rowcount == 1

    def add_customer(self, email, full_name):
        with self.pool.connection() as conn:
            return conn.execute("INSERT INTO customers (email, full_name) VALUES (%s, %s) RETURNING customer_id",
                                [email, full_name]).fetchone()[0]

    def place_order(self, customer_id, items):
        if not items:
            raise ValueError("an order needs at least one item")
        with self.pool.connection() as conn, conn.transaction():
            order_id = conn.execute("INSERT INTO orders (customer_id) VALUES (%s) RETURNING order_id",
                                    [customer_id]).fetchone()[0]
            for product_id, quantity in sorted(items.items()):  # a fixed order avoids deadlocks
                row = conn.execute("UPDATE products SET stock = stock - %s "
                                   "WHERE product_id = %s AND stock >= %s RETURNING price",
                                   [quantity, product_id, quantity]).fetchone()
                if row is None:
                    raise ValueError(f"product {product_id} does not exist or has fewer than {quantity} in stock")
                conn.execute("INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                             "VALUES (%s, %s, %s, %s)", [order_id, product_id, quantity, row[0]])
            return order_id

    def order_total(self, order_id):
        with self.pool.connection() as conn:
            return conn.execute("SELECT coalesce(sum(quantity * unit_price), 0) FROM order_items "
                                "WHERE order_id = %s", [order_id]).fetchone()[0]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-12-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.repository(ShopRepository, course)
### BEGIN HIDDEN TESTS
check.repository(ShopRepository, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# The `UPDATE ... WHERE stock >= %s RETURNING price` line checks the stock and takes it in one
# atomic statement: two customers racing for the last item cannot both get it (the second one's
# `UPDATE` finds no row). A `SELECT` followed by an `UPDATE` would reopen the race of pitfall 5.
#
# ### Exercise 08.13 · Capstone 3: a caching layer (challenge)
#
# Product pages are read thousands of times for each price change: a **cache-aside** layer in Redis
# takes that load off PostgreSQL (chapter 06 measured the gain). Write `CachedProductRepository(repo,
# redis_client, key_prefix, ttl=60)`, which wraps any object with `get_product(product_id)` and
# `update_price(product_id, price)` methods (such as a `ShopRepository`):
#
# * `get_product(product_id)`: look in Redis under the key `f"{key_prefix}:product:{product_id}"`;
#   on a **hit** return the cached product; on a **miss** ask `repo`, store the product as JSON with
#   an expiry of `ttl` seconds, and return it. The product you return has the same keys and values
#   as the repository's (turn the price back into a `Decimal`: JSON has no decimal type). A missing
#   product returns `None`.
# * `update_price(product_id, price)`: update through `repo` **first**, then delete the cached key
#   (**invalidation**), and return what `repo` returned.
# * `hits` and `misses`: counters (ints) of cache hits and misses so far.
#
# `redis_client` returns strings (`decode_responses=True`). The check wraps a real repository that
# counts its calls, and looks at the keys and their TTLs in Redis.

# %% nbgrader={"grade": false, "grade_id": "ex08-13-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
class CachedProductRepository:
    def __init__(self, repo, redis_client, key_prefix, ttl=60):
        self.repo, self.redis, self.prefix, self.ttl = repo, redis_client, key_prefix, ttl
        self.hits = self.misses = 0

    def _key(self, product_id):
        return f"{self.prefix}:product:{product_id}"

    def get_product(self, product_id):
        cached = self.redis.get(self._key(product_id))
        if cached is not None:
            self.hits += 1
            product = json.loads(cached)
            product["price"] = Decimal(product["price"])
            return product
        self.misses += 1
        product = self.repo.get_product(product_id)
        if product is not None:
            self.redis.set(self._key(product_id), json.dumps({**product, "price": str(product["price"])}), ex=self.ttl)
        return product

    def update_price(self, product_id, price):
        result = self.repo.update_price(product_id, price)
        self.redis.delete(self._key(product_id))
        return result
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-13-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.caching(CachedProductRepository, course)
### BEGIN HIDDEN TESTS
check.caching(CachedProductRepository, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Why update the database first and delete the key second? In the other order, a reader can slip in
# between, miss the cache, read the **old** price from the database and cache it again, for a whole
# TTL. Deleting (rather than writing the new value into the cache) also avoids two concurrent
# updates leaving the older value cached. The TTL is the safety net that bounds how long any stale
# value can survive.
#
# ### Exercise 08.14 · Capstone 4: an analytics system on MongoDB (challenge)
#
# Every click on the shop is an event, shaped like the documents of the `events` collection:
# `{"user_id": 42, "type": "page_view", "at": datetime(...), ...}` (`user_id` is absent for
# anonymous visitors). Instead of scanning millions of events for each report, **pre-aggregate**
# them as they arrive, with atomic upserts. The right form of a counter is `$inc` at the top of the
# update (`{"$inc": {"events": 1}}`); some tutorials nest it inside `$set`, which counts nothing. On
# this server it is even stored as data:

# %%
demo_counters = course.mongo_db.demo_counters
demo_counters.drop()
demo_counters.update_one({"_id": "wrong"}, {"$set": {"views": {"$inc": 1}}}, upsert=True)  # DON'T
for _ in range(3):
    demo_counters.update_one({"_id": "right"}, {"$inc": {"views": 1}, "$setOnInsert": {"since": "2026-06-30"}},
                             upsert=True)
print(list(demo_counters.find().sort("_id", 1)))

# %% [markdown]
# (A real MongoDB may refuse the wrong form instead, depending on its version; either way, nothing
# is counted.) `$setOnInsert` sets a field only when the upsert creates the document; `$min` and
# `$max` keep the smallest or largest value seen, which is what you need when events arrive out of
# order.
#
# Write two functions; `db` is a PyMongo database:
#
# * `track_event(db, event)`: ignore events without a `user_id` (absent or `None`); otherwise
#   update, with **one upsert each**:
#   * `db.user_stats`, one document per user with `_id` = the user id: `events` (total count),
#     `by_type` (a sub-document: count per event type, e.g. `by_type.page_view`), `first_at` and
#     `last_at` (the earliest and latest `at` seen, **whatever order events arrive in**);
#   * `db.daily_stats`, one document per user and day, with the fields `user_id`, `day` (the UTC
#     date of `at` as a `"YYYY-MM-DD"` string), `events` and `by_type` as above;
# * `top_users(db, first_day, last_day, limit=5)`: with an aggregation pipeline over `daily_stats`,
#   the `limit` users with the most events over the days from `first_day` to `last_day` (strings,
#   inclusive), as a list of dicts `{"user_id": ..., "events": ...}`, most events first, ties by
#   `user_id` ascending.
#
# The check feeds a few dozen events (in shuffled order, some anonymous) into a scratch database
# and compares every document and report with what it computes itself.

# %% nbgrader={"grade": false, "grade_id": "ex08-14-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def track_event(db, event):
    user_id = event.get("user_id")
    if user_id is None:
        return
    at, kind = event["at"], event["type"]
    counters = {"events": 1, f"by_type.{kind}": 1}
    db.user_stats.update_one({"_id": user_id},
                             {"$inc": counters, "$min": {"first_at": at}, "$max": {"last_at": at}}, upsert=True)
    db.daily_stats.update_one({"user_id": user_id, "day": at.strftime("%Y-%m-%d")}, {"$inc": counters}, upsert=True)


def top_users(db, first_day, last_day, limit=5):
    pipeline = [
        {"$match": {"day": {"$gte": first_day, "$lte": last_day}}},
        {"$group": {"_id": "$user_id", "events": {"$sum": "$events"}}},
        {"$sort": {"events": -1, "_id": 1}},
        {"$limit": limit},
        {"$project": {"_id": 0, "user_id": "$_id", "events": 1}},
    ]
    return list(db.daily_stats.aggregate(pipeline))
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex08-14-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.analytics(track_event, top_users, course)
### BEGIN HIDDEN TESTS
check.analytics(track_event, top_users, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# In production, add a unique index on `daily_stats (user_id, day)`, so that two upserts racing to
# create the same document cannot create two; and keep the raw events too (in a capped or
# time-series collection, or a data lake), so that a new report can always be computed from scratch.
#
# ## 10. Cleaning up
#
# Everything this chapter created **outside** your namespace goes now: the extra databases (restore,
# primary, replica, shards) on PostgreSQL, MySQL and MongoDB, the read-only role and user. (The
# temporary Redis servers were stopped in section 6.) The files that hold passwords for the tools
# go too; the other files in your scratch folder stay, and go with the namespace.

# %%
for conn in shard_conns:
    conn.close()
engine.dispose()

drop_extra_databases()
with course.connect_postgres(autocommit=True) as admin:
    drop_role(admin, READER)
    left = admin.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", [list(EXTRA_DATABASES.values())])
    print("PostgreSQL: extra databases left:", left.fetchone()[0],
          "| role left:", admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [READER]).fetchone()[0])

mysql_admin = course.connect_mysql(autocommit=True)
try:
    with mysql_admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{RESTORE_DB}`")
        cur.execute("DROP USER IF EXISTS %s@'%%'", (MYSQL_READER,))
        cur.execute("SELECT count(*) FROM mysql.user WHERE user = %s", (MYSQL_READER,))
        print("MySQL: user left:", cur.fetchone()[0])
finally:
    mysql_admin.close()

course.mongo_client.drop_database(RESTORE_DB)
print("MongoDB: restore database left:", RESTORE_DB in course.mongo_client.list_database_names())
print("temporary Redis servers running:", sum(process.poll() is None for process in temporary_servers))

password_files = [course.path(name) for name in ("pgpass", "mysql-client.cnf", "mongo-tools.yaml")]
for path in password_files:
    path.unlink(missing_ok=True)
print("password files left:", sum(path.exists() for path in password_files))

# %% [markdown]
# ## Key points
#
# * **Values travel as parameters**, in every driver and ORM (`?`, `%s`, `:name`); names go through
#   an **allow-list** and `sql.Identifier`. In MongoDB, validate types so a value can never be an
#   operator.
# * **Passwords**: a salted, slow KDF (Argon2id, scrypt), never a plain hash; upgrade old hashes at
#   login with `check_needs_rehash`. **Secrets you must read back**: Fernet in the application, keys from
#   the environment, rotation with `MultiFernet`, a blind index for lookups.
# * **Least privilege**: each component logs in with only the rights it needs; test that the rest
#   really fails (`InsufficientPrivilege`, MySQL error 1142).
# * **Constraints** (`NOT NULL`, `UNIQUE`, `FOREIGN KEY`, `CHECK`) are the only validation that
#   holds for every path into the data; let them decide, and handle their errors.
# * **Pitfalls**: pool your connections, close them (`with`), hash passwords, wrap each unit of work
#   in **one transaction**, and never check-then-insert.
# * **Test** against real databases with fixtures that clean up (in-memory SQLite, throwaway schemas).
# * **Observe**: log SQL when investigating, time statements with events, see what runs now in
#   `pg_stat_activity`, use `pg_stat_statements` and the slow-query logs on servers you run, and read
#   the plan.
# * **Back up and restore for real**, and verify the copy with counts and checksums. Tools get their
#   passwords from files only you can read (`0600`), never from the command line; `pg_dump` must be
#   at least as new as the server.
# * **Scale in steps**: queries and indexes, cache, bigger machine, replicas (mind the lag:
#   read-your-writes), and only then shards (a stable hash of a well-chosen key; fan-out for global
#   questions).
# * Real systems **combine stores**, each the source of truth for its own data.
#
# Your progress in this chapter:

# %%
check.progress()

# %% [markdown]
# **Where next**: this was the last chapter. Go back to the exercises marked ❌ in any chapter's
# progress table, or take the capstone further: put the repository and the cache behind a FastAPI
# app (chapter 04b), add Alembic migrations for the schema (chapter 04a), and load-test it with the
# `large` data (chapter 07).
