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
# # 00 · Start here: what databases are for, and how this course works
#
# **After this chapter you will be able to**
#
# * say what a database gives a program that variables and files do not (persistence,
#   consistency, fast queries, concurrency, structure, scale), and watch the first four at work;
# * name the main kinds of databases and pick one for a given need, with a reason;
# * check that the course's servers are up, start one that is down, and reset your data (and see
#   a reset happen);
# * answer an exercise, check it, and read the feedback.
#
# **Time**: about 45 minutes.
#
# **What must be running**: PostgreSQL, MySQL (MariaDB), MongoDB and Redis. SQLite is part of
# Python. The setup cell below checks all four; if one is down it stops with one message that
# names the command to run (usually `dbcourse services up`).
#
# **How to use this notebook**: run the cells from top to bottom (Shift+Enter). Cells marked
# *Exercise* are yours: replace the placeholder, run the cell, then run the *check* cell under it.

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
from dbcourse.checks import ch00 as check

course = dbcourse.setup(
    "00-start-here",
    services=["sqlite", "postgres", "mysql", "mongodb", "redis"],
    namespace=namespace,
    scale=scale,
    urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url),
)

# %% [markdown]
# `dbcourse.setup` gave this notebook a **namespace** of its own: a fresh PostgreSQL database, a
# MySQL database, a MongoDB database, a prefix for Redis keys and a folder for SQLite files, all
# called `dbc_00_start_here`. Everything you create here lands there, and running the setup cell
# again starts from a clean slate. Other notebooks have their own namespaces, so they never see
# your experiments.
#
# ## 1. What a database gives you
#
# A program keeps its data in variables. That works until the program stops, two programs want
# the same data, the data no longer fits in memory, or a half-finished update must be undone.
# A **database** is a program whose whole job is to keep data safe and findable under those
# conditions. Six things it gives you:
#
# | Property | What it means | Without a database |
# |---|---|---|
# | **Persistence** | data survives the program stopping, a crash, a reboot | a dict is gone when the process ends |
# | **Consistency (ACID)** | rules hold and changes are all-or-nothing | a crash between two writes leaves a half-done update |
# | **Fast queries** | indexes find one record among millions without reading them all | you loop over everything |
# | **Concurrency** | many users read and write at once without corrupting data | two writers overwrite each other |
# | **Structure** | a schema rejects data that breaks the rules | bad data slips in and is found much later |
# | **Scale** | from kilobytes on a phone to terabytes on a cluster | you rewrite the storage layer when you grow |
#
# Let us see the first four run, with SQLite (a database that is just a file, built into Python).
#
# ### Persistence
#
# A dict lives in the memory of one process. A database writes to disk, so the data is still
# there when a new process (or a new connection, as here) asks for it.

# %%
import sqlite3
from contextlib import closing

notes_in_memory = {"first": "gone when the program stops"}

db_path = course.path("persistence-demo.db")
with closing(sqlite3.connect(db_path)) as conn:  # closing(): always close the connection
    with conn:  # a transaction: commit on success, roll back on an exception
        conn.execute("DROP TABLE IF EXISTS notes")  # so that this cell can run again
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        conn.execute("INSERT INTO notes (text) VALUES (?)", ("still here after a restart",))

del notes_in_memory  # what a restart does to your variables

with closing(sqlite3.connect(db_path)) as conn:  # a new connection, as a restarted program would open
    print(conn.execute("SELECT id, text FROM notes").fetchall())

# %% [markdown]
# Two details in that cell matter in every chapter:
#
# * `with conn:` on an `sqlite3` connection wraps a **transaction**: it commits when the block
#   ends normally and rolls back if an exception escapes. It does **not** close the connection,
#   which is why the cell also uses `contextlib.closing`. Many tutorials get this wrong.
# * `?` is a **placeholder**: the value travels separately from the SQL text, so quotes in it can
#   never break (or hijack) the query. Never build SQL by gluing strings together.
#
# ### Consistency and atomicity
#
# A database enforces rules you declare (here: a balance is never negative) and makes a group of
# changes **atomic**: all of them happen, or none.

# %%
with closing(sqlite3.connect(course.path("bank-demo.db"))) as conn:
    with conn:
        conn.execute("DROP TABLE IF EXISTS accounts")
        conn.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))")
        conn.executemany("INSERT INTO accounts VALUES (?, ?)", [("alice", 50), ("bob", 10)])

    try:
        with conn:  # one transaction for both updates
            conn.execute("UPDATE accounts SET balance = balance + 80 WHERE name = 'bob'")
            conn.execute("UPDATE accounts SET balance = balance - 80 WHERE name = 'alice'")  # breaks the CHECK
    except sqlite3.IntegrityError as exc:
        print("transfer refused:", exc)

    print(conn.execute("SELECT name, balance FROM accounts ORDER BY name").fetchall())

# %% [markdown]
# Bob's +80 ran first and succeeded, yet his balance is still 10: when Alice's update broke the
# rule, the whole transaction was rolled back. Nobody ever sees money that was created but not
# taken from anyone.
#
# ### Fast queries
#
# To find rows, a database either reads the whole table (**scan**) or looks them up in an
# **index**, a sorted structure like the index at the back of a book. `EXPLAIN QUERY PLAN` asks
# SQLite which one it will do.

# %%
import random

rng = random.Random(42)
with closing(sqlite3.connect(course.path("readings-demo.db"))) as conn:
    with conn:
        conn.execute("DROP TABLE IF EXISTS readings")  # its index goes with it
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT, value REAL)")
        conn.executemany(
            "INSERT INTO readings (sensor, value) VALUES (?, ?)",
            ((f"sensor-{rng.randrange(5000)}", rng.random()) for _ in range(200_000)),
        )
    query = "SELECT count(*) FROM readings WHERE sensor = 'sensor-42'"
    print("before:", conn.execute("EXPLAIN QUERY PLAN " + query).fetchall()[0][-1])
    conn.execute("CREATE INDEX readings_sensor ON readings (sensor)")
    print("after: ", conn.execute("EXPLAIN QUERY PLAN " + query).fetchall()[0][-1])
    print("rows for sensor-42:", conn.execute(query).fetchone()[0])

# %% [markdown]
# `SCAN` reads all 200,000 rows; `SEARCH ... USING COVERING INDEX` jumps straight to the few that
# match. Chapter 07 measures the difference on a million rows: it is a factor of hundreds.
#
# ### Concurrency
#
# Two programs use the same data at the same time: here, two connections to one file, as two
# users booking the last seat on a flight would. Alice's booking is still in progress (not
# committed) when Bob looks at the seat and then tries to book it too. Bob's connection waits at
# most half a second for a lock (`timeout=0.5`).
#
# %%
seats_path = course.path("seats-demo.db")
with closing(sqlite3.connect(seats_path)) as conn:
    with conn:
        conn.execute("DROP TABLE IF EXISTS seats")
        conn.execute("CREATE TABLE seats (seat TEXT PRIMARY KEY, holder TEXT)")
        conn.execute("INSERT INTO seats VALUES ('12A', NULL)")

book = "UPDATE seats SET holder = ? WHERE seat = '12A' AND holder IS NULL"  # only a free seat
who_has_it = "SELECT holder FROM seats WHERE seat = '12A'"
alice = sqlite3.connect(seats_path)
bob = sqlite3.connect(seats_path, timeout=0.5)
try:
    alice.execute(book, ("alice",))  # opens a transaction; not committed yet
    print("Bob reads during Alice's booking:", bob.execute(who_has_it).fetchall())
    try:
        bob.execute(book, ("bob",))
    except sqlite3.OperationalError as exc:
        print("Bob books at the same time:      ", exc)
        bob.rollback()  # Bob gives up
    alice.commit()
    print("Bob reads after Alice's commit:  ", bob.execute(who_has_it).fetchall())
    with bob:
        print("Bob books again: rows changed =", bob.execute(book, ("bob",)).rowcount)
finally:
    alice.close()
    bob.close()

# %% [markdown]
# Bob never saw Alice's half-finished change; he saw the seat free (`None`) until she committed.
# SQLite lets one writer at a time change a file, so Bob's booking had to wait, and after half a
# second it gave up with `database is locked`. When he tried again the guard `holder IS NULL`
# found the seat taken: no seat is ever sold twice. Server databases let many writers work at once
# and lock single rows instead of the whole file; chapter 02 shows two live PostgreSQL connections
# at different isolation levels.
#
# **Structure** and **scale** get whole sections later: schemas and constraints (chapters 01 and
# 08), replicas and sharding (chapter 08).
#
# ### ACID
#
# Relational databases promise four things about transactions, remembered as **ACID**:
# **A**tomicity (all or nothing), **C**onsistency (every declared rule holds before and after),
# **I**solation (concurrent transactions do not see each other's half-done work) and
# **D**urability (once committed, a change survives a crash).

# %% [markdown]
# ### Exercise 00.1 · ACID in your own words (warm-up)
#
# Match each property to the statement that describes it. Statements:
#
# * **A**: Once the database says "committed", the change survives a crash or a power cut.
# * **B**: A transfer either moves the money from one account to the other, or does nothing at all.
# * **C**: A rule such as "a balance is never negative" holds before and after every transaction.
# * **D**: Two people buying the last ticket at the same moment cannot both get it.
#
# Set `acid` to a dict with the keys `"atomicity"`, `"consistency"`, `"isolation"`,
# `"durability"` and the letters as values.

# %% nbgrader={"grade": false, "grade_id": "ex00-1-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
acid = {"atomicity": "B", "consistency": "C", "isolation": "D", "durability": "A"}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex00-1-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.acid(acid)
### BEGIN HIDDEN TESTS
check.acid(acid, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Kinds of databases
#
# "Database" covers several families. They differ in the **shape of the data** they store and
# in **how you ask** for it.
#
# | Kind | Data looks like | You ask by | Examples | In this course |
# |---|---|---|---|---|
# | **Relational** | tables of rows with fixed columns, linked by keys | SQL: joins, filters, aggregates | PostgreSQL, MySQL, MariaDB | chapters 02, 03, 04, 07 |
# | **Embedded relational** | the same, in a single file inside your program | SQL | SQLite | chapter 01 |
# | **Document** | JSON-like documents, nested, of varying shape | filters on fields, pipelines | MongoDB | chapter 05 |
# | **Key-value** | a value (string, hash, list, set, sorted set) per key | the key | Redis | chapter 06 |
# | **Graph** | nodes and edges | walking relationships | Neo4j | a recursive CTE in chapter 08 |
# | **Time-series** | timestamped measurements | time windows | InfluxDB, TimescaleDB | `DATE_TRUNC` analytics in chapter 02 |
#
# Relational and document databases are general-purpose; key-value stores trade query power for
# speed; graph and time-series databases specialise. "SQL vs NoSQL" is about the first column:
# relational databases speak SQL; the others ("NoSQL") each have their own way of asking.
#
# Here is the same fact stored in each of the four servers of this course. Look at how each one
# wants the data shaped.

# %%
ada = {"name": "Ada Lovelace", "born": 1815, "languages": ["English", "French"]}

# PostgreSQL: a table with typed columns (an array column for the languages)
with course.connect_postgres() as conn:
    conn.execute("DROP TABLE IF EXISTS people")  # so that this cell can run again
    conn.execute("CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, born int, languages text[])")
    conn.execute("INSERT INTO people (name, born, languages) VALUES (%s, %s, %s)",
                 (ada["name"], ada["born"], ada["languages"]))
    print("PostgreSQL:", conn.execute("SELECT name, born, languages FROM people").fetchone())

# MySQL: a table too; no array type, so the languages go in a second table
mysql_conn = course.connect_mysql()
try:
    with mysql_conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS person_languages, people")
        cur.execute("CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, born INT)")
        cur.execute("CREATE TABLE person_languages (person_id INT NOT NULL, language VARCHAR(50) NOT NULL,"
                    " PRIMARY KEY (person_id, language), FOREIGN KEY (person_id) REFERENCES people (id))")
        cur.execute("INSERT INTO people (name, born) VALUES (%s, %s)", (ada["name"], ada["born"]))
        cur.executemany("INSERT INTO person_languages VALUES (%s, %s)",
                        [(cur.lastrowid, language) for language in ada["languages"]])
        mysql_conn.commit()
        cur.execute("SELECT p.name, p.born, GROUP_CONCAT(l.language ORDER BY l.language) FROM people p"
                    " JOIN person_languages l ON l.person_id = p.id GROUP BY p.id")
        print("MySQL:     ", cur.fetchone())
finally:
    mysql_conn.close()  # close it even when a statement fails

# MongoDB: the dict goes in as it is, as a document
course.mongo_db.people.delete_many({})
course.mongo_db.people.insert_one(dict(ada))
print("MongoDB:   ", course.mongo_db.people.find_one({"name": "Ada Lovelace"}, {"_id": 0}))

# Redis: a hash under a key; every value is a string
course.redis.delete(course.key("person", 1))
course.redis.hset(course.key("person", 1), mapping={"name": ada["name"], "born": ada["born"],
                                                   "languages": ",".join(ada["languages"])})
print("Redis:     ", course.redis.hgetall(course.key("person", 1)))

# %% [markdown]
# Notice:
#
# * PostgreSQL and MySQL want a **schema** first (`CREATE TABLE`) and check every value against
#   it. MySQL has no array type, so a list becomes a second table: that is *normalization*, the
#   subject of chapter 01.
# * MongoDB took the dict unchanged, nested list included: no schema unless you add one.
# * Redis stored strings: `born` came back as `'1815'`. Redis is fast because it is simple.
# * Placeholders are `%s` for psycopg and PyMySQL, `?` for sqlite3; chapter 03 compares them.

# %% [markdown]
# ### Exercise 00.2 · Kinds of databases
#
# Set `kinds` to a dict that maps each engine below to its kind, one of `"relational"`,
# `"embedded relational"`, `"document"`, `"key-value"`, `"graph"`, `"time-series"`:
# PostgreSQL, MySQL, SQLite, MongoDB, Redis, Neo4j, InfluxDB.

# %% nbgrader={"grade": false, "grade_id": "ex00-2-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
kinds = {
    "PostgreSQL": "relational",
    "MySQL": "relational",
    "SQLite": "embedded relational",
    "MongoDB": "document",
    "Redis": "key-value",
    "Neo4j": "graph",
    "InfluxDB": "time-series",
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex00-2-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.kinds(kinds)
### BEGIN HIDDEN TESTS
check.kinds(kinds, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. SQL or NoSQL? Choosing a database
#
# Start from what the data needs, not from what is fashionable. Walk this tree from the top:
#
# ```mermaid
# flowchart TD
#     start([What does the data need?]) --> money{"Money, stock, bookings: anything<br/>that must never be half-written?"}
#     money -- yes --> rel[("Relational<br/>PostgreSQL, MySQL")]
#     money -- no --> embedded{"Lives inside one app or device,<br/>no server to run?"}
#     embedded -- yes --> sqlite[("Embedded relational<br/>SQLite")]
#     embedded -- no --> bykey{"Always read and written by one key,<br/>must be very fast, may expire?"}
#     bykey -- yes --> kv[("Key-value<br/>Redis")]
#     bykey -- no --> shape{"Records of varying shape,<br/>read and written whole?"}
#     shape -- yes --> doc[("Document<br/>MongoDB")]
#     shape -- no --> hops{"Questions that walk relationships<br/>many hops deep?"}
#     hops -- yes --> graphdb[("Graph: Neo4j<br/>or a recursive CTE")]
#     hops -- no --> time{"Timestamped measurements,<br/>queried by time window?"}
#     time -- yes --> ts[("Time-series<br/>TimescaleDB, InfluxDB")]
#     time -- no --> rel
# ```
#
# And the same advice as a table:
#
# | You need | Choose | Because |
# |---|---|---|
# | orders, payments, inventory, bookings | relational (PostgreSQL, MySQL) | transactions, constraints, joins |
# | a local store in an app, tests, prototypes | SQLite | no server; one file |
# | a cache, sessions, rate limits, counters, leaderboards, queues | Redis | in memory, by key, with expiry |
# | content of varying shape (catalogues, CMS, profiles, events) | MongoDB (or PostgreSQL JSONB) | flexible documents, read whole |
# | recommendations, networks, "friends of friends" | a graph database (or a recursive CTE) | relationships first |
# | metrics, sensor data, logs over time | a time-series database | time-window queries, compression |
# | reports over all your data | a relational database (or a warehouse) | SQL aggregates and window functions |
#
# Real systems combine stores: an online shop keeps orders in PostgreSQL and sessions, cache and
# rate limits in Redis (chapter 08 builds one). When in doubt, start with PostgreSQL: it covers
# most needs well, including documents (JSONB) and full-text search.

# %% [markdown]
# ### Exercise 00.3 · Pick a store (part 1)
#
# For each scenario, choose the kind of database that fits best, with the decision tree and the
# table above. The kinds are the same as in 00.2: `"relational"`, `"embedded relational"`,
# `"document"`, `"key-value"`, `"graph"`, `"time-series"`. Set `choices_a` to a dict with the four
# scenarios below as keys, written exactly like this, and a kind as each value:
#
# ```python
# choices_a = {
#     "shop orders and payments": ...,
#     "page cache that expires": ...,
#     "catalogue with per-category attributes": ...,
#     "mobile app offline data": ...,
# }
# ```

# %% nbgrader={"grade": false, "grade_id": "ex00-3-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
choices_a = {
    "shop orders and payments": "relational",
    "page cache that expires": "key-value",
    "catalogue with per-category attributes": "document",
    "mobile app offline data": "embedded relational",
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex00-3-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.pick_a(choices_a)
### BEGIN HIDDEN TESTS
check.pick_a(choices_a, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 00.4 · Pick a store (part 2)
#
# Four more scenarios, same kinds. Set `choices_b` to a dict with these keys, written exactly like
# this, and a kind as each value:
#
# ```python
# choices_b = {
#     "friends of friends": ...,
#     "sensor readings every second": ...,
#     "live game leaderboard": ...,
#     "login sessions with sliding expiry": ...,
# }
# ```

# %% nbgrader={"grade": false, "grade_id": "ex00-4-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
choices_b = {
    "friends of friends": "graph",
    "sensor readings every second": "time-series",
    "live game leaderboard": "key-value",
    "login sessions with sliding expiry": "key-value",
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex00-4-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.pick_b(choices_b)
### BEGIN HIDDEN TESTS
check.pick_b(choices_b, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The course environment
#
# The course runs four real database servers. On your machine they were started by
# `make lab` (or `dbcourse services up`): with Docker when a Docker engine runs, otherwise
# natively from installed packages, in the git-ignored folder `.services/`. Where no MongoDB is
# installed, a stand-in (SecantusDB, a MongoDB-compatible server) takes its place, and the
# MongoDB chapter tells you where it differs. This table is live:

# %% tags=["nbval-ignore-output"]
import pandas as pd

from dbcourse import services

statuses = services.status()
pd.DataFrame(services.rows(statuses), columns=services.COLUMNS)

# %%
down = [s.display_name for s in statuses if not s.up]
print("All four database servers are up." if not down else f"Down: {down}: run the command in the 'fix' column.")

# %% [markdown]
# The commands you need, in a terminal (or in a cell, prefixed with `!`):
#
# | To | Run |
# |---|---|
# | see what runs | `dbcourse services status` |
# | start what is missing | `dbcourse services up` |
# | stop what the course started | `dbcourse services down` |
# | wipe every notebook's data (namespaces) | `dbcourse services reset` |
# | start again in one notebook | run its setup cell again |
#
# ### SQL in a cell: the `%sql` magic
#
# Chapters 01 to 03 often write SQL straight into a cell. The course ships **JupySQL** (the
# maintained successor of ipython-sql; both understand what follows). Load it once, switch off
# the connection banner, connect, and a cell that starts with `%%sql` goes to the database. (When it
# loads, JupySQL may print a tip about configuration files: the course needs none.)

# %% tags=["nbval-ignore-output"]
# %load_ext sql
# %config SqlMagic.displaycon = False
# %config SqlMagic.feedback = False
# %config SqlMagic.displaylimit = 0
# Usually you would type `%sql sqlite:///bank.db`; this connects to your namespace's file:
course.sql_connect(course.sqlite_url("bank-demo.db"))

# %% language="sql"
# SELECT name, balance
# FROM accounts
# ORDER BY name

# %% [markdown]
# ### Starting again
#
# Running the setup cell again empties this notebook's namespace in every store (and loads the
# chapter's data again, where it has some). Here it is, called from a cell: what sections 1 and 2
# created is gone afterwards.

# %%
def what_is_there():
    """What the earlier sections left in this notebook's namespace."""
    with course.connect_postgres() as conn:
        in_postgres = conn.execute("SELECT to_regclass('people') IS NOT NULL").fetchone()[0]
    mysql_conn = course.connect_mysql()
    try:
        with mysql_conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND table_name = 'people'")
            in_mysql = cur.fetchone()[0] == 1
    finally:
        mysql_conn.close()
    return {
        "PostgreSQL: table people": in_postgres,
        "MySQL: table people": in_mysql,
        "MongoDB: collection people": "people" in course.mongo_db.list_collection_names(),
        "Redis: hash person:1": course.redis.exists(course.key("person", 1)) == 1,
        "SQLite: files in the folder": len(list(course.folder.glob("*.db"))),
    }


before = what_is_there()
course.close()  # the MongoDB and Redis clients of the old workspace
course = dbcourse.setup(
    "00-start-here",
    services=["sqlite", "postgres", "mysql", "mongodb", "redis"],
    namespace=namespace,
    scale=scale,
    urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url),
    quiet=True,
)
after = what_is_there()
for what in before:
    print(f"{what:<30} before: {before[what]!s:<6} after: {after[what]}")

# %% [markdown]
# When a server is down, every helper fails within a few seconds with a message that says what
# to do, rather than hanging. Here is what that looks like (this cell fails on purpose: it asks
# for a PostgreSQL on port 1, where there is none):

# %% tags=["raises-exception"]
dbcourse.connect.connect_postgres(url="postgresql://course:course@127.0.0.1:1/course")

# %% [markdown]
# ### How exercises work
#
# Each exercise has an **answer cell** (in your copy it holds a placeholder that raises
# `NotImplementedError` until you replace it) and a **check cell** that you run but do not edit.
# The check compares *results*, not your code, so any correct answer passes; when something is off
# it says what and gives a hint. Instructors grade with extra hidden tests, so make your answer
# work in general, not just for the case you see. Here is the feedback for a wrong answer to a
# demo question, "what is 6 × 7?" (this cell fails on purpose):

# %% tags=["raises-exception"]
check.demo(41)

# %%
check.demo(6 * 7)

# %% [markdown]
# ### Exercise 00.5 · Ask each server its version
#
# Ask each server for its version and put the answers in a dict `server_versions` with the keys
# `"postgres"`, `"mysql"`, `"mongodb"`, `"redis"`. Ask the servers themselves: PostgreSQL answers
# `SHOW server_version`, MySQL `SELECT VERSION()`, PyMongo's `client.server_info()` returns a dict
# with a `"version"`, and redis-py's `r.info("server")` one with a `"redis_version"`. Use the
# connections `course` gives you: `course.connect_postgres()`, `course.connect_mysql()`,
# `course.mongo_client` and `course.redis`.

# %% nbgrader={"grade": false, "grade_id": "ex00-5-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
with course.connect_postgres() as conn:
    postgres_version = conn.execute("SHOW server_version").fetchone()[0]

mysql_conn = course.connect_mysql()
try:
    with mysql_conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        mysql_version = cur.fetchone()[0]
finally:
    mysql_conn.close()

server_versions = {
    "postgres": postgres_version,
    "mysql": mysql_version,
    "mongodb": course.mongo_client.server_info()["version"],
    "redis": course.redis.info("server")["redis_version"],
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex00-5-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.versions(server_versions)
### BEGIN HIDDEN TESTS
check.versions(server_versions, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. First programs with a database
#
# ### Exercise 00.6 · Find and fix: the note that vanished
#
# A colleague wrote `add_note` to keep notes in an SQLite file. It seems to work: no error. But
# after a restart the notes are gone, and a note such as `It's raining` crashes it. Find the two
# bugs and fix them (keep the name and the arguments). The check calls your function, then opens
# a **new** connection to see what was really stored.
#
# ```python
# def add_note(path, text):
#     conn = sqlite3.connect(path)
#     conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
#     conn.execute("INSERT INTO notes (text) VALUES ('" + text + "')")
#     conn.close()
# ```

# %% nbgrader={"grade": false, "grade_id": "ex00-6-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def add_note(path, text):
    with closing(sqlite3.connect(path)) as conn:
        with conn:  # commits when the block succeeds (the original never committed)
            conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
            conn.execute("INSERT INTO notes (text) VALUES (?)", (text,))  # a placeholder, not string gluing
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex00-6-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.add_note(add_note)
### BEGIN HIDDEN TESTS
check.add_note(add_note, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 00.7 · Predict: a transaction that fails half-way
#
# The next cell creates a table in your PostgreSQL database, commits one row, then tries a
# transaction of two inserts where the second breaks the primary key. **Before you run it**,
# predict how many rows the table holds afterwards and set `predicted_rows`. Then run the
# experiment and the check.

# %%
import psycopg

with course.connect_postgres() as conn:
    conn.execute("DROP TABLE IF EXISTS visits")  # so that the experiment can run again
    conn.execute("CREATE TABLE visits (id int PRIMARY KEY, page text NOT NULL)")
    conn.execute("INSERT INTO visits VALUES (1, 'home')")
    conn.commit()  # transaction 1 is committed
    try:
        with conn.transaction():  # transaction 2
            conn.execute("INSERT INTO visits VALUES (2, 'about')")
            conn.execute("INSERT INTO visits VALUES (1, 'home, again')")  # id 1 exists already
    except psycopg.errors.UniqueViolation as exc:
        print("transaction 2 failed:", exc.diag.message_primary)

# %% nbgrader={"grade": false, "grade_id": "ex00-7-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
predicted_rows = 1  # transaction 2 was rolled back as a whole, its first insert included
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex00-7-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.predict(predicted_rows, course)
### BEGIN HIDDEN TESTS
check.predict(predicted_rows, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 00.8 · Fail fast: is a server up? (challenge)
#
# Write `is_up(url)` that returns `True` when a PostgreSQL server accepts a login at `url` and
# `False` otherwise (server down, wrong port, wrong password, or a hung server that accepts the
# connection but never answers), **within 3 seconds**, without raising. psycopg raises
# `psycopg.OperationalError` for all of these; `psycopg.connect` accepts `connect_timeout=`
# (seconds), and without it psycopg waits minutes for a server that never answers. Close the
# connection you open. The check tries each case, the hung server included.

# %% nbgrader={"grade": false, "grade_id": "ex00-8-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def is_up(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex00-8-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.is_up(is_up, good_url=course.postgres_url)
### BEGIN HIDDEN TESTS
check.is_up(is_up, good_url=course.postgres_url, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Key points
#
# * A database keeps data **persistent**, **consistent** (ACID transactions and declared rules),
#   **fast to query** (indexes), safe under **concurrency**, **structured**, and able to **scale**.
# * Kinds: relational (tables, SQL), embedded relational (SQLite), document (MongoDB), key-value
#   (Redis), graph and time-series. Choose from what the data needs; combine stores when needs
#   differ; when in doubt, start with PostgreSQL.
# * Commit your transactions, close your connections, and pass values as **parameters**, never by
#   gluing strings into SQL.
# * `dbcourse services status | up | down | reset` manage the servers; each notebook works in its
#   own namespace, so you can rerun anything.
#
# Your progress in this chapter:

# %%
check.progress()

# %% [markdown]
# **Where next**: chapter 01 teaches SQL itself, with SQLite and the course's online-shop data:
# open `01_sqlite.ipynb`.
