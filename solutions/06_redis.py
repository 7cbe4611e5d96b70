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
# # 06 · Redis from Python
#
# **After this chapter you will be able to**
#
# * connect to Redis with `redis-py` (`from_url`, `decode_responses`, connection pools) and keep
#   every key under a prefix of your own;
# * pick the right Redis type (string, hash, list, set, sorted set) and give keys a lifetime (TTL);
# * save round trips with pipelines, and make several commands atomic with MULTI/EXEC, WATCH and
#   Lua scripts;
# * put a cache in front of PostgreSQL (cache-aside, invalidation, a caching decorator) and
#   measure its hit rate and its speed;
# * build sessions with sliding expiry, rate limiters (fixed and sliding window) that stay correct
#   under concurrency, pub/sub listeners, leaderboards, locks that protect a payment, and work queues;
# * say what Redis keeps after a restart (RDB snapshots, the AOF log), and what it does not.
#
# **Time**: about 2 hours to work through. The notebook itself runs in about 30 seconds on an
# idle machine (50 on a busy one): about 12 of them are spent waiting on purpose, for keys to
# expire, sessions to time out and a slow "card network" to answer.
#
# **What must be running**: Redis and PostgreSQL. The setup cell checks both and stops with the
# command to run if one is down (usually `dbcourse services up`). It loads the course's shop into
# this notebook's PostgreSQL database and seeds Redis with the same shop under this notebook's
# key prefix: a hash per product (`product:<id>`) and per user (`user:<id>`), a set of product ids
# per category (`category:<id>:products`) and a sorted set of units sold per product
# (`sales:units_by_product`).
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
from dbcourse.checks import ch06 as check

course = dbcourse.setup("06-redis", namespace=namespace, scale=scale,
                        urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url))
r = course.redis  # a redis.Redis client made with decode_responses=True

# %% [markdown]
# One Redis server serves every notebook of the course at once, so this chapter follows two rules
# you should keep in real projects that share a server:
#
# * **every key carries a prefix**: `course.key("user", 42)` gives `<namespace>:user:42`. Nothing
#   in this notebook ever writes a bare key such as `user:42`;
# * **never `FLUSHDB` or `FLUSHALL`**: they delete every key of every user of the server. The
#   last section deletes exactly the keys under this notebook's prefix, and says how many.
#
# ## 1. Connecting to Redis
#
# Redis keeps all its data in memory, in one server process that runs commands one at a time.
# Two facts follow that the whole chapter builds on:
#
# * **every single command is atomic**: no other client's command runs in the middle of an
#   `INCR` or an `HSET`;
# * **a command takes microseconds**, so the time you measure from Python is mostly the
#   **round trip**: the request travelling to the server and the reply coming back.
#
# A client connects with a URL, `redis://[user:password@]host:port/db` (`rediss://` for TLS).
# Take it from configuration, never from a literal in the code: here the course's settings
# provide it, and the `redis_url` parameter above can override it.
#
# Redis stores bytes. By default `redis-py` hands them back as `bytes`;
# `decode_responses=True` decodes every reply as UTF-8 text, which is what you want whenever
# you store text (as this chapter does). Keep `decode_responses=False` for binary values
# such as images or pickles.

# %%
import redis
from dbcourse.config import get_settings

REDIS_URL = redis_url or get_settings().redis.url  # the course's configuration; the parameter wins

as_bytes = redis.Redis.from_url(REDIS_URL)                        # replies are bytes
as_text = redis.Redis.from_url(REDIS_URL, decode_responses=True)  # replies are str

greeting = course.key("greeting")
as_text.set(greeting, "Grüß dich 👋")
print("decode_responses=False ->", as_bytes.get(greeting))
print("decode_responses=True  ->", as_text.get(greeting))
print("PING ->", as_text.ping())
as_bytes.close()
as_text.close()

# %% [markdown]
# ### Connection pools
#
# Opening a TCP connection costs far more than a Redis command, so a `redis.Redis` client does
# not own a connection: it borrows one from a **connection pool** for each command and gives it
# back. `from_url` creates a pool for you; create one yourself when several clients should share
# it or when you want to bound it. A `ConnectionPool` opens more connections on demand (and
# raises an error past `max_connections`); a `BlockingConnectionPool` makes a thread wait for a
# free connection instead. Because of the pool, **one client can be shared by many threads**; a
# pipeline or a pub/sub object, which holds one connection, cannot.

# %%
bounded = redis.ConnectionPool.from_url(REDIS_URL, decode_responses=True, max_connections=2)
client = redis.Redis(connection_pool=bounded)
print("PING through the pool:", client.ping())
held = [bounded.get_connection(), bounded.get_connection()]  # as if two commands were in flight
try:
    bounded.get_connection()
except redis.ConnectionError as exc:
    print("a third connection from a ConnectionPool of 2:", type(exc).__name__, "-", exc)
for connection in held:
    bounded.release(connection)
bounded.disconnect()

# %% [markdown]
# A `BlockingConnectionPool` of 4 serving 16 threads: they take turns, and the pool never opens
# more than 4 sockets.

# %%
from concurrent.futures import ThreadPoolExecutor

pool = redis.BlockingConnectionPool.from_url(
    REDIS_URL, decode_responses=True,
    max_connections=4, timeout=5,             # at most 4 sockets; wait up to 5 s for a free one
    client_name=course.key("pool-demo"))      # a name we can look for in CLIENT LIST
shared = redis.Redis(connection_pool=pool)    # a client is only a handle on its pool: cheap
another = redis.Redis(connection_pool=pool)
counter = course.key("pool-demo", "requests")

with ThreadPoolExecutor(max_workers=16) as executor:  # 16 threads, 400 commands, one client
    list(executor.map(lambda _: shared.incr(counter), range(400)))

opened = [c for c in r.client_list() if c["name"] == course.key("pool-demo")]
print("counter:", r.get(counter))
print("sockets the pool opened, at most 4:", 1 <= len(opened) <= 4)
print("two clients, one pool:", shared.connection_pool is another.connection_pool)
pool.disconnect()  # close the pool's sockets

# %% [markdown]
# `course.redis` (the `r` of this notebook) is a client made with `redis.Redis.from_url(url,
# decode_responses=True)`, backed by its own pool, and the course closes it for you. In an
# application, create one client (or one pool) at start-up and share it; do not connect per
# request.
#
# ### Keys and prefixes
#
# A Redis database is one flat dictionary of keys. Structure comes from naming conventions:
# colon-separated parts, most general first (`<prefix>:product:207`). To list keys, use
# `SCAN` (`scan_iter` in Python), which walks the key space in small batches; `KEYS pattern`
# does the same in one blocking command and freezes a production server with millions of keys.

# %%
from collections import Counter

prefix = course.key()  # every key of this notebook starts with this
families = Counter(k[len(prefix):].split(":")[0] for k in r.scan_iter(match=prefix + "*", count=1000))
print("prefix:", prefix)
print(dict(sorted(families.items())))

# %% [markdown]
# ## 2. Five data types
#
# A Redis key holds one value of one type. Each type comes with its own commands, which run on
# the server: you increment a counter or add to a set without reading it into Python first.
#
# | Type | Holds | Typical uses | Commands |
# |---|---|---|---|
# | **string** | text, a number or bytes (up to 512 MB) | cached JSON, counters, flags | `SET` `GET` `INCR` `MGET` |
# | **hash** | a map of fields to string values | one object: a product, a session | `HSET` `HGET` `HGETALL` `HINCRBY` |
# | **list** | an ordered sequence, pushed and popped at both ends | queues, "latest N" | `LPUSH` `RPOP` `LRANGE` `LTRIM` |
# | **set** | unique members, no order | tags, memberships, "who has seen this" | `SADD` `SISMEMBER` `SINTER` |
# | **sorted set** | unique members ordered by a numeric score | rankings, time windows | `ZADD` `ZRANGE` `ZINCRBY` `ZRANK` |
#
# **Strings** hold text or numbers. Numbers are stored as text, and `INCR` does the arithmetic
# on the server, atomically.

# %%
views = course.key("views", "product", 207)
r.set(views, 0)
r.incr(views)             # +1 on the server: no read-modify-write in Python, no race
r.incrby(views, 10)
print(repr(r.get(views)), "<- a number comes back as a string")

r.mset({course.key("greeting", "en"): "hello", course.key("greeting", "fr"): "bonjour"})
print(r.mget(course.key("greeting", "en"), course.key("greeting", "fr"), course.key("greeting", "xx")))

# %% [markdown]
# **Hashes** hold the fields of one object. The seeded shop keeps each product in a hash. Every
# value is a string, whatever it looked like in PostgreSQL.

# %%
product = course.key("product", 207)
print(r.hgetall(product))
print(r.hget(product, "price"), r.hmget(product, ["name", "stock"]))
print("stock after selling 2:", r.hincrby(product, "stock", -2))
print("stock after putting them back:", r.hincrby(product, "stock", 2))  # the exercises compare with PostgreSQL

# %% [markdown]
# **Lists** keep order. "Recently viewed products" is a list: push the newest at the left, drop a
# repeat of the same product, keep the first five.

# %%
recent = course.key("recently-viewed", "user", 42)
for product_id in [207, 15, 91, 207, 47, 144, 252]:
    r.lrem(recent, 0, product_id)  # remove an earlier view of the same product (0 = every copy)
    r.lpush(recent, product_id)    # newest first
    r.ltrim(recent, 0, 4)          # keep five
print(r.lrange(recent, 0, -1))

# %% [markdown]
# **Sets** answer membership questions and combine with each other on the server. The seed keeps
# the product ids of each category in a set; here a user's wish list meets the Cookware category
# (id 12).

# %%
cookware = course.key("category", 12, "products")
wishlist = course.key("wishlist", "user", 42)
first_two_cookware = sorted(r.smembers(cookware), key=int)[:2]
r.delete(wishlist)  # start the wish list afresh, so that this cell can run again
r.sadd(wishlist, 207, 15, *first_two_cookware)
print("cookware products:", r.scard(cookware))
print("wish-list items that are cookware:", sorted(r.sinter(wishlist, cookware), key=int))
print("is product 207 cookware?", r.sismember(cookware, 207))

# %% [markdown]
# **Sorted sets** keep members ordered by a score. The seed's `sales:units_by_product` scores every
# product by the units it sold; section 9 builds leaderboards on it.

# %%
sales = course.key("sales", "units_by_product")
print("products ranked:", r.zcard(sales))
print("top 3 (member, score):", r.zrevrange(sales, 0, 2, withscores=True))
for key in (views, product, recent, wishlist, sales):
    print(f"{r.type(key):<5} {key[len(prefix):]}")

# %% [markdown]
# ### Exercise 06.1 · Connect, read a hash, intersect two sets (warm-up)
#
# Three short functions, one per idea of sections 1 and 2:
#
# * `connect(url)` returns a `redis.Redis` client for `url` whose replies are text
#   (`decode_responses=True`) and whose connections come from a `BlockingConnectionPool` of at
#   most **4** connections;
# * `product_card(r, product_id)` reads the product's seeded hash
#   (`course.key("product", product_id)`) and returns a dict with exactly the keys `name` (str),
#   `category` (str), `price` (a `decimal.Decimal`: money is never a float) and `stock` (an
#   `int`), or `None` when there is no such product;
# * `wished_in_category(r, user_id, category_id)` returns the ids (ints, ascending) of the
#   products on the user's wish list (`course.key("wishlist", "user", user_id)`) that belong to
#   the category (`course.key("category", category_id, "products")`), computed by Redis with one
#   `SINTER`; `[]` when there are none or the user has no wish list.
#
# The check connects with your `connect`, reads product cards through that client and compares
# them with PostgreSQL's `products` table, then fills wish lists of its own.

# %% nbgrader={"grade": false, "grade_id": "ex06-1-answer", "locked": false, "schema_version": 3, "solution": true}
from decimal import Decimal

### BEGIN SOLUTION
def connect(url):
    pool = redis.BlockingConnectionPool.from_url(url, decode_responses=True, max_connections=4, timeout=5)
    return redis.Redis(connection_pool=pool)


def product_card(r, product_id):
    fields = r.hgetall(course.key("product", product_id))
    if not fields:  # HGETALL of a missing key returns {}, not an error
        return None
    return {"name": fields["name"], "price": Decimal(fields["price"]),
            "stock": int(fields["stock"]), "category": fields["category"]}


def wished_in_category(r, user_id, category_id):
    both = r.sinter(course.key("wishlist", "user", user_id), course.key("category", category_id, "products"))
    return sorted(int(member) for member in both)  # a missing key is an empty set: SINTER gives {}


print(wished_in_category(r, 42, 12))
product_card(r, 207)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-1-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.product_card(product_card, connect, wished_in_category, course)
### BEGIN HIDDEN TESTS
check.product_card(product_card, connect, wished_in_category, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Expiry: keys with a time to live
#
# Any key can carry an **expiry time**; once it passes, the key is gone. This is what makes Redis
# the natural home of caches, sessions, one-time tokens and rate-limit counters: data that must
# disappear by itself.
#
# * `SET key value EX 60` (`ex=`, seconds) or `PX 1500` (`px=`, milliseconds) sets a value and its
#   expiry in one command; `EXPIRE` / `PEXPIRE` set the expiry of an existing key.
# * `TTL` / `PTTL` say how long a key has left: `-1` means "no expiry", `-2` "no such key".
# * `PERSIST` removes the expiry. So does **any plain `SET`** of the key, unless it says
#   `KEEPTTL`: a classic way to end up with a cache entry that never expires.
# * Redis deletes expired keys lazily (a read never sees one) and with a background sampler that
#   frees their memory soon after.

# %%
import time

token = course.key("reset-token", "user", 42)
r.set(token, "a1b2c3", ex=3600)  # SET ... EX: value and expiry in one command
print("TTL:", r.ttl(token))
print("PTTL within a second of 3,600,000 ms:", 3_599_000 < r.pttl(token) <= 3_600_000)
r.expire(token, 600)             # a new expiry replaces the old one
print("after EXPIRE 600:", r.ttl(token))
r.persist(token)
print("after PERSIST:", r.ttl(token))
r.expire(token, 600)
r.set(token, "d4e5f6")           # a plain SET drops the expiry...
print("after a plain SET:", r.ttl(token))
r.set(token, "a1b2c3", ex=600)
r.set(token, "g7h8i9", keepttl=True)  # ...unless it keeps it
print("after SET ... KEEPTTL:", r.ttl(token))
print("a key that does not exist:", r.ttl(course.key("no-such-key")))

# %% [markdown]
# An expiry in milliseconds, and what a client sees once it has passed:

# %%
flash_sale = course.key("flash-sale", 207)
r.set(flash_sale, "20% off", px=300)
print("right away:", r.get(flash_sale))
time.sleep(0.4)
print("after 400 ms:", r.get(flash_sale), "| exists:", r.exists(flash_sale))

# %% [markdown]
# `SET` has two conditions: `NX` (only if the key does **not** exist) and `XX` (only if it
# does). `NX` with an expiry is a one-line **cool-down**: "at most one password-reset mail per
# user per 10 minutes". `EXPIRE` has conditions too (Redis 7): `NX`, `XX`, `GT` (only a longer
# expiry), `LT` (only a shorter one).

# %%
cooldown = course.key("cooldown", "password-reset", "user", 42)
r.delete(cooldown)  # a fresh start, so that this cell can run again


def may_send_reset_mail():
    """True for the first request, then False until the cool-down key expires."""
    return r.set(cooldown, 1, nx=True, ex=600) is True  # redis-py returns True, or None when NX refused


print("three requests:", [may_send_reset_mail() for _ in range(3)])
print("SET ... XX on a missing key:", r.set(course.key("missing"), 1, xx=True))
print("EXPIRE ... GT 300 (shorter: refused):", r.expire(cooldown, 300, gt=True), r.ttl(cooldown))
print("EXPIRE ... GT 900 (longer: applied):", r.expire(cooldown, 900, gt=True), r.ttl(cooldown))
print("what this server does when memory is full:", r.config_get("maxmemory-policy"))

# %% [markdown]
# The last line is worth knowing: with `noeviction` (this server's setting, and Redis's default)
# a full Redis refuses writes. A server used purely as a cache is usually configured with
# `allkeys-lru` or `allkeys-lfu`, so that it evicts the least recently (or least frequently)
# used keys instead; keys that must never disappear (sessions, queues) then belong on another
# server, or under `volatile-*` policies that only evict keys with a TTL.

# %% [markdown]
# ### Exercise 06.2 · A TTL cache: remember and recall (warm-up)
#
# Write two functions:
#
# * `remember(r, key, value, ttl_seconds)` stores any JSON-serialisable `value` (dict, list,
#   number, string, `False`...) as JSON under `key`, expiring after `ttl_seconds`; remembering
#   a key again replaces its value and its expiry;
# * `recall(r, key, default=None)` returns the stored value, or `default` when the key does not
#   exist (never stored, or expired).
#
# Careful: a stored `0`, `""` or `[]` is a value, not a miss.

# %% nbgrader={"grade": false, "grade_id": "ex06-2-answer", "locked": false, "schema_version": 3, "solution": true}
import json

### BEGIN SOLUTION
def remember(r, key, value, ttl_seconds):
    r.set(key, json.dumps(value), ex=ttl_seconds)


def recall(r, key, default=None):
    raw = r.get(key)
    return default if raw is None else json.loads(raw)  # not `if raw:`: '0' and '[]' are values
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-2-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.ttl_cache(remember, recall, course)
### BEGIN HIDDEN TESTS
check.ttl_cache(remember, recall, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Round trips, pipelines and transactions
#
# ### Pipelines: fewer round trips
#
# Each command you send waits for its reply before the next one leaves. For 2,000 commands that
# is 2,000 round trips, and the waiting dwarfs the work. A **pipeline** buffers commands in the
# client and sends them in one go; the replies come back together. Commands that exist in a
# multi-key form (`MSET`, `MGET`, `HSET` with a mapping) go further: one command, one reply.
#
# The timings vary from run to run, so the measuring cell is not compared by the notebook tests;
# the conclusion under it is.

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt

N = 1_000
bench = [course.key("bench", i) for i in range(N)]


def one_by_one():
    for i, key in enumerate(bench):
        r.set(key, i)  # N round trips


def pipelined():
    with r.pipeline(transaction=False) as pipe:  # buffer...
        for i, key in enumerate(bench):
            pipe.set(key, i)
        pipe.execute()                           # ...send, and read every reply: one round trip


def one_command():
    r.mset({key: i for i, key in enumerate(bench)})


def best_of(function, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


timings = {"one by one": best_of(one_by_one), "pipeline": best_of(pipelined), "MSET": best_of(one_command)}
fig, ax = plt.subplots(figsize=(6, 2.2))
ax.barh(list(timings), [seconds * 1000 for seconds in timings.values()])
ax.invert_yaxis()
ax.set_xlabel(f"milliseconds for {N:,} SETs (best of 3)")
plt.show()

# %%
print("pipeline faster than one command at a time:", timings["pipeline"] < timings["one by one"])
print("MSET faster than one command at a time:", timings["MSET"] < timings["one by one"])
print("keys deleted:", r.delete(*bench))

# %% [markdown]
# ### MULTI/EXEC: a transaction
#
# `r.pipeline()` (with the default `transaction=True`) wraps its commands in `MULTI` ... `EXEC`.
# Redis queues them and runs them **as one unit: no other client's command runs in between**.
# That is isolation. It is not a rollback: if one queued command fails (a wrong type, say), the
# others still run. Redis checks almost nothing at queue time, so there is little to roll back
# anyway; design the commands so they cannot fail.

# %%
warehouse_a, warehouse_b = course.key("stock", "warehouse-a"), course.key("stock", "warehouse-b")
r.mset({warehouse_a: 10, warehouse_b: 0})
with r.pipeline() as pipe:  # MULTI
    pipe.decrby(warehouse_a, 3)
    pipe.incrby(warehouse_b, 3)
    print("EXEC replies:", pipe.execute())  # EXEC: both moves, nothing in between
print("stock a, b:", r.mget(warehouse_a, warehouse_b))

with r.pipeline() as pipe:
    pipe.incrby(warehouse_b, 1)
    pipe.hincrby(warehouse_a, "units", 1)   # wrong type: warehouse_a holds a string, not a hash
    pipe.incrby(warehouse_b, 1)
    replies = pipe.execute(raise_on_error=False)  # errors come back in the list instead of being raised
print([f"{type(reply).__name__}: {reply}" if isinstance(reply, Exception) else reply for reply in replies])
print("stock b:", r.get(warehouse_b), "<- both INCRBYs ran: no rollback")

# %% [markdown]
# ### WATCH: optimistic locking
#
# A transaction's commands are queued before any of them runs, so they cannot depend on a value
# read inside the transaction. For "read, compute, write" Redis offers **optimistic locking**:
# `WATCH` the keys, read them, then `MULTI` ... `EXEC`. If another client changed a watched key
# in the meantime, `EXEC` does nothing and `redis-py` raises `WatchError`: read again and retry.
#
# First the bug it prevents, the **lost update**. To make the interleaving repeatable, a second
# client (`intruder`, another process in real life) writes exactly between our read and our write:

# %%
points = course.key("points", "user", 42)
intruder = redis.Redis.from_url(REDIS_URL, decode_responses=True)


def add_points_naive(amount, meanwhile):
    current = int(r.get(points) or 0)  # read
    meanwhile()                        # another client adds 50 points now
    r.set(points, current + amount)    # write back what we computed: the other update is lost


r.set(points, 100)
add_points_naive(10, meanwhile=lambda: intruder.incrby(points, 50))
print("expected 160, got", r.get(points))

# %%
def add_points(amount, meanwhile=None):
    """Add points with WATCH; returns how many attempts it took."""
    attempts = 0
    with r.pipeline() as pipe:
        while True:
            attempts += 1
            try:
                pipe.watch(points)                  # EXEC will fail if `points` changes from now on
                current = int(pipe.get(points) or 0)  # after WATCH, commands run immediately
                if meanwhile and attempts == 1:
                    meanwhile()                     # the same interference as above, once
                pipe.multi()                        # from here on, commands are queued
                pipe.set(points, current + amount)
                pipe.execute()                      # raises WatchError if `points` changed
                return attempts
            except redis.WatchError:
                continue                            # somebody else won: read again, retry


r.set(points, 100)
print("attempts:", add_points(10, meanwhile=lambda: intruder.incrby(points, 50)))
print("expected 160, got", r.get(points))
intruder.close()

# %% [markdown]
# `r.transaction(func, *keys)` packages the same loop: it WATCHes the keys, calls `func(pipe)`,
# and retries on `WatchError`. For a plain "+N", of course, `INCRBY` alone is atomic: WATCH is
# for logic that no single command does, like a transfer that must not overdraw (the exercise).

# %%
def add_ten(pipe):
    current = int(pipe.get(points))  # immediate: the key is being watched
    pipe.multi()
    pipe.set(points, current + 10)


r.set(points, 160)  # where the cell above left it (so that this cell can run again)
r.transaction(add_ten, points)
print("points:", r.get(points))

# %% [markdown]
# ### Lua scripts: logic that runs inside Redis
#
# A **Lua script** runs on the server, atomically, like a single command: read a value, decide,
# write, with no other command in between and in one round trip. `r.register_script(source)`
# returns a callable that runs the script by its SHA1 digest (`EVALSHA`), sending the source only
# when the server does not know it yet.
# Pass key names in `keys=` (Redis Cluster routes commands by them) and everything else in
# `args=`. Keep scripts short: while one runs, the whole server waits.
#
# Reserving stock must never go below zero; the check and the decrement belong together:

# %%
reserve_stock = r.register_script("""
local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
local wanted = tonumber(ARGV[1])
if stock == nil or stock < wanted then
    return -1
end
return redis.call('HINCRBY', KEYS[1], 'stock', -wanted)
""")

demo_product = course.key("demo", "product", 207)
r.copy(course.key("product", 207), demo_product, replace=True)  # a scratch copy; the seed stays intact
stock = int(r.hget(demo_product, "stock"))
print("stock:", stock)
print("reserve 5 ->", reserve_stock(keys=[demo_product], args=[5]))
print(f"reserve {stock} ->", reserve_stock(keys=[demo_product], args=[stock]),
      "(refused: only", r.hget(demo_product, "stock"), "left)")

# %% [markdown]
# ### Exercise 06.3 · A transfer with WATCH (challenge)
#
# Loyalty points live in string keys, one wallet per key. Write `transfer(r, src, dst, amount)`
# that moves `amount` points from wallet `src` to wallet `dst` and returns `True`, or changes
# nothing and returns `False` when `src` holds less than `amount` (a missing wallet holds 0).
#
# Many transfers run at the same time: use `WATCH` on both keys, read the balance, then
# `MULTI`/`EXEC` the two changes, and retry when `EXEC` raises `redis.WatchError`. The check
# runs ten transfers of 10 at once from a wallet of 50, through a client on a slow network:
# exactly five may succeed, and the two wallets must still hold 50 together.

# %% nbgrader={"grade": false, "grade_id": "ex06-3-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def transfer(r, src, dst, amount):
    with r.pipeline() as pipe:
        while True:
            try:
                pipe.watch(src, dst)
                balance = int(pipe.get(src) or 0)
                if balance < amount:
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.decrby(src, amount)
                pipe.incrby(dst, amount)
                pipe.execute()
                return True
            except redis.WatchError:
                continue  # a wallet changed under us: read it again
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-3-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.transfer(transfer, course)
### BEGIN HIDDEN TESTS
check.transfer(transfer, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. A cache in front of PostgreSQL
#
# The most common job of Redis is to answer repeated questions that are expensive to compute.
# In the **cache-aside** pattern the application, not the database, manages the cache:
#
# ```mermaid
# sequenceDiagram
#     participant App
#     participant Redis
#     participant PG as PostgreSQL
#     App->>Redis: GET cache:product:207
#     alt hit
#         Redis-->>App: JSON
#     else miss
#         Redis-->>App: nil
#         App->>PG: SELECT ... (expensive)
#         PG-->>App: row
#         App->>Redis: SET cache:product:207 JSON EX 300
#     end
# ```
#
# The product page of the shop needs a product, its category, its units sold and its reviews:
# three scans of other tables (no index on `product_id` yet: chapter 07 adds them).

# %%
import json
from decimal import Decimal

from psycopg.rows import dict_row

db = course.connect_postgres(autocommit=True, row_factory=dict_row)  # each statement commits by itself

PRODUCT_PAGE_SQL = """
SELECT p.product_id, p.name, p.price, c.name AS category, p.stock,
       (SELECT coalesce(sum(oi.quantity), 0) FROM order_items oi WHERE oi.product_id = p.product_id) AS units_sold,
       (SELECT count(*) FROM reviews rv WHERE rv.product_id = p.product_id) AS reviews,
       (SELECT round(avg(rv.rating), 2) FROM reviews rv WHERE rv.product_id = p.product_id) AS avg_rating
FROM products p JOIN categories c USING (category_id)
WHERE p.product_id = %s
"""


def load_product_page(product_id):
    """The data of a product page, straight from PostgreSQL (or None)."""
    row = db.execute(PRODUCT_PAGE_SQL, (product_id,)).fetchone()
    if row is None:
        return None
    return {**row, "price": str(row["price"]),  # Decimal is not JSON: keep money as exact text
            "avg_rating": None if row["avg_rating"] is None else float(row["avg_rating"])}


load_product_page(207)

# %% [markdown]
# The cache stores that dict as JSON with an expiry. The expiry is the safety net: if an
# invalidation is ever missed, a stale page survives at most `CACHE_TTL` seconds. The hits and
# misses are counted in a hash in Redis, so that every process serving the shop adds to the
# same statistics.

# %%
CACHE_TTL = 300  # seconds
stats = course.key("cache", "stats")


def product_key(product_id):
    return course.key("cache", "product", product_id)


def get_product(product_id):
    """Cache-aside: answer from Redis when we can, else from PostgreSQL, and remember the answer."""
    key = product_key(product_id)
    cached = r.get(key)
    if cached is not None:  # `if cached:` would treat a cached '' or '0' as a miss
        r.hincrby(stats, "hits", 1)
        return json.loads(cached)
    r.hincrby(stats, "misses", 1)
    page = load_product_page(product_id)
    r.set(key, json.dumps(page), ex=CACHE_TTL)  # SET ... EX: the value and its expiry in one command
    return page


r.delete(stats, product_key(207))  # empty statistics and a cold cache: this cell can run again
first, second = get_product(207), get_product(207)
print("same answer:", first == second)
print("stats:", r.hgetall(stats))
print("TTL:", r.ttl(product_key(207)))

# %% [markdown]
# Tutorials (and the syllabus) write that last step as `SETEX key seconds value`. It does the same
# as `SET key value EX seconds`, which has replaced it since Redis 2.6.12; redis-py 8 marks
# `setex()` as deprecated:

# %%
import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r.setex(course.key("setex-demo"), 600, "old style")
print(caught[0].category.__name__, "-", caught[0].message)
print("same effect, TTL:", r.ttl(course.key("setex-demo")))

# %% [markdown]
# ### The hit rate, measured
#
# A cache is worth what its **hit rate** is worth: the share of requests answered from Redis.
# Here are 1,000 product-page requests drawn from the shop's real popularity (the sales sorted
# set), with a seeded random generator so that every run sends the same requests.

# %%
import random

ranking = r.zrange(sales, 0, -1, withscores=True)  # product id -> units sold, worst first
popular_products, weights = [int(m) for m, _ in ranking], [score for _, score in ranking]
workload = random.Random(6).choices(popular_products, weights=weights, k=1_000)

r.delete(stats, *{product_key(p) for p in workload})  # start with a cold cache
hit_rate_so_far = []
for n, product_id in enumerate(workload, start=1):
    get_product(product_id)
    hit_rate_so_far.append(int(r.hget(stats, "hits") or 0) / n)

hits, misses = int(r.hget(stats, "hits")), int(r.hget(stats, "misses"))
print(f"requests: {hits + misses:,}  hits: {hits}  misses: {misses}  hit rate: {hits / (hits + misses):.1%}")
print("distinct products requested:", len(set(workload)), "= the misses:", len(set(workload)) == misses)

fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(range(1, len(workload) + 1), hit_rate_so_far)
ax.set_xlabel("requests so far")
ax.set_ylabel("hit rate")
ax.set_ylim(0, 1)
ax.set_title("A cold cache warms up")
plt.show()

# %% [markdown]
# Every miss here is a first request for a product (the TTL outlives the run). Because a few
# products get most of the traffic, the cache answers most requests after a short warm-up: the
# same skew that makes caching pay off in real shops.
#
# ### Latency, measured
#
# How much faster is a hit? The timings vary, so they are plotted in an ignored cell and the
# conclusion is printed under it.

# %% tags=["nbval-ignore-output"]
from statistics import median


def milliseconds(function, *args):
    start = time.perf_counter()
    function(*args)
    return (time.perf_counter() - start) * 1000


best_seller = popular_products[-1]  # its page is cached by now
database_ms = [milliseconds(load_product_page, best_seller) for _ in range(50)]
cache_ms = [milliseconds(get_product, best_seller) for _ in range(50)]

fig, ax = plt.subplots(figsize=(6, 2.2))
ax.boxplot([database_ms, cache_ms], orientation="horizontal", tick_labels=["PostgreSQL query", "Redis hit"])
ax.set_xscale("log")
ax.set_xlabel("milliseconds per product page (log scale)")
plt.show()
print(f"median: PostgreSQL {median(database_ms):.2f} ms, Redis hit {median(cache_ms):.3f} ms")

# %%
print("cache hit faster than the database:", median(cache_ms) < median(database_ms))

# %% [markdown]
# A hit costs two round trips to Redis here (the `GET` and the statistics counter); the query
# costs a round trip to PostgreSQL plus three table scans. On a network with more distance
# between the machines both pay more per round trip, which is why the number of round trips per
# request matters as much as the speed of each query.
#
# ### Invalidation
#
# When the data changes, the cached copy is wrong until it expires. The fix is to **invalidate**
# it: delete the cache key when you change the row, and let the next read load the new data.
# Delete rather than overwrite: two writers that each `SET` their version can finish in the
# wrong order, while a delete is always safe.

# %%
def set_price(product_id, new_price):
    db.execute("UPDATE products SET price = %s WHERE product_id = %s",
               (new_price, product_id))  # autocommit: committed when execute returns
    r.delete(product_key(product_id))    # then invalidate


def database_price(product_id):
    return db.execute("SELECT price FROM products WHERE product_id = %s", (product_id,)).fetchone()["price"]


old_price = Decimal(get_product(15)["price"])  # the page is cached
db.execute("UPDATE products SET price = %s WHERE product_id = %s", (old_price + 10, 15))  # forgets the cache
print("database:", database_price(15), "| cache:", get_product(15)["price"], "<- stale")
set_price(15, old_price + 5)
print("database:", database_price(15), "| cache:", get_product(15)["price"])
set_price(15, old_price)  # put the price back (and invalidate): the exercises compare with PostgreSQL

# %% [markdown]
# **Invalidate after the commit**, never before. While a transaction is open, other connections
# still read the old row, and a request that arrives in that window refills the cache with it:
#
# ```mermaid
# sequenceDiagram
#     participant W as Writer
#     participant R as Another request
#     participant C as Redis
#     participant DB as PostgreSQL
#     W->>DB: BEGIN; UPDATE price
#     W->>C: DEL cache key (too early)
#     R->>C: GET: miss
#     R->>DB: SELECT: still the old price (not committed)
#     R->>C: SET old price, EX 300
#     W->>DB: COMMIT
#     Note over C: the old price is served for 5 more minutes
# ```
#
# Two more problems to know by name: a **stampede** (a popular key expires and a hundred requests
# recompute it at once; cure: a short lock around the recomputation, or refreshing before
# expiry) and **negative caching** (this cache also stores "no such product" as `null`, so that
# lookups of missing ids do not all reach the database; give such entries a shorter TTL).

# %% [markdown]
# ### Exercise 06.4 · Cache-aside `get_or_set` (practice)
#
# Generalise `get_product` into `get_or_set(r, key, loader, ttl_seconds)`:
#
# * if `key` holds a cached value, return it (decoded from JSON) without calling `loader`;
# * otherwise call `loader()` (no arguments), store its result as JSON under `key` with an expiry
#   of `ttl_seconds`, and return it.
#
# The check's loader runs a real PostgreSQL query and counts its calls: one miss, then hits; after
# the price changes in the database and the key is deleted, a fresh read. A loader may return
# `0`, `""` or `[]`: those are values too.

# %% nbgrader={"grade": false, "grade_id": "ex06-4-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def get_or_set(r, key, loader, ttl_seconds):
    cached = r.get(key)
    if cached is not None:
        return json.loads(cached)
    value = loader()
    r.set(key, json.dumps(value), ex=ttl_seconds)
    return value


get_or_set(r, course.key("cache", "page", 91), lambda: load_product_page(91), 600)["name"]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-4-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.get_or_set(get_or_set, course)
### BEGIN HIDDEN TESTS
check.get_or_set(get_or_set, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 06.5 · Find and fix: the price that comes back (find and fix)
#
# A colleague wrote this for the shop's admin screen. The price is updated in a transaction (in
# real code, a price-history row would be written in the same transaction), and the cache key is
# deleted right after the `UPDATE`. Yet after some price changes, the shop keeps showing the old
# price for five minutes. Nobody can reproduce it on their laptop.

# %%
def update_price_buggy(conn, r, key, product_id, new_price):
    """Change a product's price and invalidate its cached page."""
    with conn.transaction():
        conn.execute("UPDATE products SET price = %s WHERE product_id = %s", (new_price, product_id))
        r.delete(key)  # invalidate the cached page

# %% [markdown]
# Write the corrected `update_price(conn, r, key, product_id, new_price)`. `conn` is a psycopg
# connection with autocommit off (psycopg's default), `key` is the product's cache key. The
# check caches the product page, then calls your function while "another request" reads the
# product through the cache right after your code touches the key.

# %% nbgrader={"grade": false, "grade_id": "ex06-5-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def update_price(conn, r, key, product_id, new_price):
    with conn.transaction():  # commits when the block ends...
        conn.execute("UPDATE products SET price = %s WHERE product_id = %s", (new_price, product_id))
    r.delete(key)             # ...so invalidate after it, once the new price is visible to everyone
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-5-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.update_price(update_price, course)
### BEGIN HIDDEN TESTS
check.update_price(update_price, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### A caching decorator
#
# Writing `get`/`set` around every expensive function repeats itself; a **decorator** puts the
# cache around a function without touching its body. Here is one for functions without
# arguments (a dashboard query), with an `invalidate` handle for the code that changes the data:

# %%
import functools


def cached_query(name, ttl_seconds=60):
    """Cache what an argument-less function returns, under one key, for ttl_seconds."""
    key = course.key("cache", "query", name)

    def decorate(func):
        @functools.wraps(func)  # keep the function's name and docstring
        def wrapper():
            cached = r.get(key)
            if cached is not None:
                return json.loads(cached)
            result = func()
            r.set(key, json.dumps(result), ex=ttl_seconds)
            return result

        wrapper.invalidate = lambda: r.delete(key)
        return wrapper

    return decorate


query_runs = 0


@cached_query("revenue-by-category", ttl_seconds=600)
def revenue_by_category():
    """The three categories with the most revenue (cancelled and refunded orders excluded)."""
    global query_runs
    query_runs += 1
    return db.execute("""
        SELECT c.name AS category, sum(oi.quantity * oi.unit_price)::text AS revenue
        FROM order_items oi JOIN orders o USING (order_id)
             JOIN products p USING (product_id) JOIN categories c USING (category_id)
        WHERE o.status NOT IN ('cancelled', 'refunded')
        GROUP BY c.name
        ORDER BY sum(oi.quantity * oi.unit_price) DESC, c.name
        LIMIT 3""").fetchall()


for _ in range(3):
    top_categories = revenue_by_category()
print(top_categories)
print("query runs for 3 calls:", query_runs, "| name kept:", revenue_by_category.__name__)
revenue_by_category.invalidate()
revenue_by_category()
print("query runs after invalidate() and one more call:", query_runs)

# %% [markdown]
# ### Exercise 06.6 · A caching decorator for functions with arguments (practice)
#
# Write `cached(r, prefix, ttl_seconds)`, a decorator factory: `@cached(r, prefix, 30)` above
# `def f(...)` caches what `f` returns, as JSON, with an expiry of `ttl_seconds`. Requirements:
#
# * every key starts with `prefix` and includes the function's name (`func.__qualname__`) and
#   its arguments, positional and keyword (`json.dumps` of them makes a good key part), so that
#   different arguments, or two functions with the same arguments, never share an entry;
# * the wrapped function keeps its `__name__` and docstring (`functools.wraps`);
# * a cached result such as `0` is a hit.

# %% nbgrader={"grade": false, "grade_id": "ex06-6-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def cached(r, prefix, ttl_seconds):
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            key = f"{prefix}:{func.__qualname__}:{json.dumps([args, sorted(kwargs.items())])}"
            raw = r.get(key)
            if raw is not None:
                return json.loads(raw)
            value = func(*args, **kwargs)
            r.set(key, json.dumps(value), ex=ttl_seconds)
            return value

        return wrapper

    return decorate
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-6-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.cached(cached, course)
### BEGIN HIDDEN TESTS
check.cached(cached, course, hidden=True)
### END HIDDEN TESTS

# %%
db.close()  # the cache section's PostgreSQL connection

# %% [markdown]
# ## 6. Sessions with sliding expiry
#
# A web session (who is logged in, what is in the cart) is read on every request and must
# disappear after a period of inactivity. A hash per session with a TTL does both. **Sliding
# expiry** renews the TTL on each access, so an active user stays logged in while an idle one is
# logged out 30 minutes after the last click.
#
# Two details the usual tutorial code gets wrong:
#
# * create the hash and its expiry in one `MULTI`/`EXEC`: two separate round trips leave a
#   session that never expires if the process dies in between;
# * the session id must be unguessable (`secrets.token_urlsafe`), never a counter or a user id.

# %%
import secrets

SESSION_TTL = 30 * 60  # seconds of inactivity


def session_key(session_id):
    return course.key("session", session_id)


def create_session(user_id, ttl_seconds=SESSION_TTL):
    session_id = secrets.token_urlsafe(24)
    user = r.hgetall(course.key("user", user_id))
    with r.pipeline() as pipe:  # MULTI/EXEC: never a session without its TTL
        pipe.hset(session_key(session_id),
                  mapping={"user_id": user_id, "name": user["name"], "country": user["country"]})
        pipe.expire(session_key(session_id), ttl_seconds)
        pipe.execute()
    return session_id


def get_session(session_id, ttl_seconds=SESSION_TTL):
    """The session's fields, or None; each access pushes the expiry back (sliding expiry)."""
    key = session_key(session_id)
    with r.pipeline() as pipe:
        pipe.hgetall(key)
        pipe.expire(key, ttl_seconds)  # on a missing key EXPIRE does nothing: no zombie sessions
        fields, _ = pipe.execute()
    return fields or None


def destroy_session(session_id):
    """Log out."""
    return r.delete(session_key(session_id)) == 1


session_id = create_session(42)
print(get_session(session_id))
print("TTL:", r.ttl(session_key(session_id)))

# %% [markdown]
# The sliding part, with a two-second TTL so that we can watch it: a user who clicks every 0.6 s
# stays logged in past the TTL; once they stop, the session goes. (Each click has 1.4 s to
# spare, so a busy machine that runs a click late does not log the user out.)

# %%
short_session = create_session(7, ttl_seconds=2)
still_logged_in = []
for _ in range(4):  # 2.4 s of activity, longer than the 2 s TTL
    time.sleep(0.6)
    still_logged_in.append(get_session(short_session, ttl_seconds=2) is not None)
print("logged in at each click:", still_logged_in)
time.sleep(2.2)  # the user walks away
print("after 2.2 s without a click:", get_session(short_session, ttl_seconds=2))

goodbye = create_session(42)
print("logout:", destroy_session(goodbye), "| the session afterwards:", get_session(goodbye))

# %% [markdown]
# Real applications add an **absolute** limit too (log out after 12 hours whatever happens:
# store `created_at` in the hash and check it), and renew the TTL only when less than half of it
# is left, to save a write per request.
#
# ### Exercise 06.7 · Sliding expiry: touch a session (practice)
#
# Write `touch_session(r, key, ttl_seconds)` for a session stored as a hash under `key`: it
# returns the session's fields as a dict and renews its expiry to `ttl_seconds`, or returns
# `None` when the session does not exist (never created, logged out or expired). A missing
# session must stay missing: do not write anything that would bring it back.

# %% nbgrader={"grade": false, "grade_id": "ex06-7-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def touch_session(r, key, ttl_seconds):
    with r.pipeline() as pipe:
        pipe.hgetall(key)
        pipe.expire(key, ttl_seconds)
        fields, _ = pipe.execute()
    return fields or None
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-7-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.touch_session(touch_session, course)
### BEGIN HIDDEN TESTS
check.touch_session(touch_session, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Rate limiting
#
# An API allows each user, say, 3 requests per hour. A counter per user and per window, with an
# expiry that ends the window, is the classic **fixed window**. Here it is the way most tutorials
# write it, in two round trips:

# %%
def allow_naive(client, key, limit, window_seconds):
    count = client.incr(key)                   # round trip 1: count this request
    if count == 1:                             # the first request of a window...
        client.expire(key, window_seconds)     # round trip 2: ...starts the window's clock
    return count <= limit


naive_key = course.key("ratelimit", "naive", "user", 42)
r.delete(naive_key)  # a new user, each time this cell runs
print([allow_naive(r, naive_key, 3, 3600) for _ in range(5)], "| TTL:", r.ttl(naive_key))

# %% [markdown]
# It works, in a test on a quiet laptop. Two things go wrong in production, and both can be shown
# step by step.
#
# **A process that dies between the two round trips** (a deploy, a crash, a timeout) leaves a
# counter without an expiry. Only a count of 1 sets the expiry, so nothing ever will: once the
# user reaches the limit, they are locked out for good.

# %%
crashed_key = course.key("ratelimit", "crashed", "user", 43)
r.delete(crashed_key)
r.incr(crashed_key)  # round trip 1 of the user's first request...
#                      ...and the worker process is killed here: EXPIRE never runs
print("TTL after the crash:", r.ttl(crashed_key))
print("the next five requests:", [allow_naive(r, crashed_key, 3, 3600) for _ in range(5)])
print("TTL still:", r.ttl(crashed_key), "<- denied for ever")

# %% [markdown]
# **Check, then act.** A variant reads the count first and increments only when the request is
# allowed. Two requests of the same user arrive at the same moment on two web workers, A and B,
# with 4 of 5 requests used. Interleaving their steps the way the operating system may schedule
# them:

# %%
race_key = course.key("ratelimit", "check-then-act", "user", 44)
r.set(race_key, 4, ex=3600)     # 4 requests used this window; the limit is 5
count_a = int(r.get(race_key))  # A reads 4
count_b = int(r.get(race_key))  # B reads 4
allowed_a, allowed_b = count_a < 5, count_b < 5  # both decide "allowed"
for allowed in (allowed_a, allowed_b):
    if allowed:
        r.incr(race_key)
print("A allowed:", allowed_a, "| B allowed:", allowed_b, "| count:", r.get(race_key), "(limit 5)")

# %% [markdown]
# The cure for both is the same: make the whole decision **one atomic step** on the server. A Lua
# script does it in one round trip; `INCR` returns the new count, and the script decides from it.

# %%
fixed_window = r.register_script("""
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
""")


def allow_lua(client, key, limit, window_seconds):
    return fixed_window(keys=[key], args=[window_seconds], client=client) <= limit


lua_key = course.key("ratelimit", "lua", "user", 45)
burst_key = course.key("ratelimit", "lua", "user", 46)
r.delete(lua_key, burst_key)  # new users, each time this cell runs
print("one at a time:", [allow_lua(r, lua_key, 3, 3600) for _ in range(5)], "| TTL:", r.ttl(lua_key))

with ThreadPoolExecutor(max_workers=20) as executor:  # 20 requests at once, limit 5
    answers = list(executor.map(lambda _: allow_lua(r, burst_key, 5, 3600), range(20)))
print("20 simultaneous requests, limit 5: allowed", answers.count(True), "| count:", r.get(burst_key))

# %% [markdown]
# ### Exercise 06.8 · Find and fix: an atomic fixed-window limiter (find and fix)
#
# `allow_naive` above is the limiter this shop runs in production. Fix it **without Lua**: write
# `allow_request(r, key, limit, window_seconds)` (same meaning, returns `True` or `False`) that
# sends `INCR` and the expiry in **one `MULTI`/`EXEC` transaction** (`r.pipeline()`), using
# `EXPIRE ... NX` (`pipe.expire(key, window_seconds, nx=True)`, Redis 7) so that only the first
# request of a window sets the clock. Use the client `r` you are given.
#
# The check counts sequential requests, kills your "process" between two round trips, and sends
# twenty requests at once through a slow network: never more than the limit, never a counter
# without an expiry.

# %% nbgrader={"grade": false, "grade_id": "ex06-8-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def allow_request(r, key, limit, window_seconds):
    with r.pipeline() as pipe:  # MULTI
        pipe.incr(key)
        pipe.expire(key, window_seconds, nx=True)  # only if the key has no expiry yet
        count, _ = pipe.execute()  # EXEC: both or neither, in one round trip
    return count <= limit
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-8-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.allow_request(allow_request, course)
### BEGIN HIDDEN TESTS
check.allow_request(allow_request, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Sliding windows
#
# A fixed window resets on the clock, so a user can send `limit` requests at the end of one window
# and `limit` more at the start of the next: twice the limit within a few milliseconds. A
# **sliding window** counts the requests of the last `window` milliseconds, whenever "now" is. A
# sorted set per user holds one member per request, scored by its time: remove the members older
# than the window (`ZREMRANGEBYSCORE`), add this request (`ZADD`), count (`ZCARD`), all in one
# transaction. The clock is a parameter here, so the example is repeatable.

# %%
def allow_sliding_log(client, key, limit, window_ms, now_ms):
    member = f"{now_ms}-{secrets.token_hex(4)}"  # unique even for two requests in the same millisecond
    with client.pipeline() as pipe:              # MULTI ... EXEC
        pipe.zremrangebyscore(key, "-inf", now_ms - window_ms)  # forget requests that left the window
        pipe.zadd(key, {member: now_ms})                        # log this one
        pipe.zcard(key)                                         # count, this one included
        pipe.pexpire(key, window_ms)                            # an idle user leaves no key behind
        _, _, count, _ = pipe.execute()
    return count <= limit


def allow_fixed_at(key, limit, window_ms, now_ms):
    """The fixed window again, with an explicit clock: one counter per window of the clock."""
    return fixed_window(keys=[f"{key}:{now_ms // window_ms}"], args=[3600]) <= limit


fixed_key = course.key("ratelimit", "compare", "fixed")
sliding_key = course.key("ratelimit", "compare", "sliding")
r.delete(sliding_key, *[f"{fixed_key}:{window}" for window in range(3)])  # a clean slate for a re-run
print("limit 3 per 1,000 ms")
print(f"{'t (ms)':>7}  fixed  sliding")
for now_ms in [900, 950, 990, 1000, 1010, 1050, 1950, 2100]:
    print(f"{now_ms:>7}  {allow_fixed_at(fixed_key, 3, 1000, now_ms)!s:<5}  "
          f"{allow_sliding_log(r, sliding_key, 3, 1000, now_ms)}")
print("sliding log deleted:", r.delete(sliding_key) == 1)  # it expires in a second: delete it, do not race it

# %% [markdown]
# The fixed window let six requests through between 900 and 1050 ms; the sliding window let three.
# But look at 1950 ms: only one *allowed* request (990) is less than a second old, yet the sliding
# log says no, because it logs **denied** requests too. A client that retries in a loop is then
# never let through. Fixing that needs "count, then add only if allowed", a decision inside
# Redis, which is a job for Lua: the next exercise.
#
# ### Exercise 06.9 · A sliding window that forgives (challenge)
#
# Write `allow_sliding(r, key, limit, window_ms, now_ms)`: allow the request when fewer than
# `limit` **allowed** requests fall in the window `(now_ms - window_ms, now_ms]` (a request
# exactly `window_ms` old no longer counts); record the request only when it is allowed; give
# the key an expiry of `window_ms` milliseconds. Two requests in the same millisecond are two
# requests. It must stay correct when twenty requests arrive at once: do it in one Lua script
# (`r.register_script`), called through the client `r` you are given.

# %% nbgrader={"grade": false, "grade_id": "ex06-9-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
SLIDING_WINDOW_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def allow_sliding(r, key, limit, window_ms, now_ms):
    script = r.register_script(SLIDING_WINDOW_LUA)  # cheap: it only computes the SHA1
    member = f"{now_ms}-{secrets.token_hex(8)}"
    return script(keys=[key], args=[now_ms, window_ms, limit, member]) == 1
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-9-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.allow_sliding(allow_sliding, course)
### BEGIN HIDDEN TESTS
check.allow_sliding(allow_sliding, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 8. Pub/sub with a listener thread
#
# **Publish/subscribe** broadcasts messages: `PUBLISH channel message` delivers the message to
# every client subscribed to the channel *at that moment*, and returns how many received it.
# Nothing is stored: a subscriber that is not connected misses the message (at-most-once
# delivery). Use it for notifications that may be lost (a "new order" badge in an admin screen,
# a cache-invalidation broadcast); use a queue (section 11) or a stream for work that must be done.
#
# A subscribed connection can do nothing else but wait for messages, so the listener runs in a
# thread of its own, with its own `PubSub` object (its own connection). The loop often shown,
# `for message in pubsub.listen():`, blocks for ever and cannot be stopped cleanly; this one
# waits at most 0.1 s per call and checks a stop flag in between. Channels are not keys, so no
# database number separates them: on a shared server, prefix them too.

# %%
import threading

orders_channel = course.key("channel", "orders")
print("published with nobody listening, received by:", r.publish(orders_channel, "lost"))

received = []
subscribed = threading.Event()
stop = threading.Event()


def listen():
    with r.pubsub() as pubsub:                         # its own connection; closed when the block ends
        pubsub.subscribe(orders_channel)
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)  # wait at most 0.1 s, then look at `stop` again
            if message is None:
                continue
            if message["type"] == "subscribe":         # the server confirmed the subscription
                subscribed.set()
            elif message["type"] == "message":
                received.append(json.loads(message["data"]))


listener = threading.Thread(target=listen, name="orders-listener", daemon=True)
listener.start()
subscribed.wait(timeout=5)  # publishing before this would reach nobody
for order_id in (101, 102, 103):
    receivers = r.publish(orders_channel, json.dumps({"order_id": order_id, "event": "paid"}))
print("received by:", receivers)

deadline = time.monotonic() + 5
while len(received) < 3 and time.monotonic() < deadline:  # the listener runs on its own schedule
    time.sleep(0.01)
stop.set()
listener.join(timeout=5)
print("listener stopped:", not listener.is_alive())
print(received)

# %% [markdown]
# `PSUBSCRIBE` subscribes to a **pattern** of channels (`*` matches anything), and redis-py can run
# the loop for you: give each subscription a handler and call `run_in_thread`. Here one listener
# hears the notifications of every user:

# %%
notifications = []
pubsub = r.pubsub()
pubsub.psubscribe(**{course.key("channel", "user", "*"): lambda m: notifications.append(
    (m["channel"].rsplit(":", 1)[-1], m["data"]))})
print(pubsub.get_message(timeout=5)["type"])  # wait for the confirmation before publishing
worker = pubsub.run_in_thread(sleep_time=0.05, daemon=True)
r.publish(course.key("channel", "user", 42), "your order shipped")
r.publish(course.key("channel", "user", 7), "your review was published")
deadline = time.monotonic() + 5
while len(notifications) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
worker.stop()
worker.join(timeout=5)
pubsub.close()
print(notifications)

# %% [markdown]
# ### Exercise 06.10 · Collect pub/sub messages (practice)
#
# Write `collect_messages(r, channel, n, timeout)`: subscribe to `channel`, wait for messages,
# and return the data (strings) of the first `n` messages published there, in order. Stop
# waiting after `timeout` seconds in total and return what arrived by then. When it returns, the
# subscription must be closed (use `with r.pubsub() as p:`). The check publishes from another
# thread once it sees your subscription.

# %% nbgrader={"grade": false, "grade_id": "ex06-10-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def collect_messages(r, channel, n, timeout):
    messages = []
    deadline = time.monotonic() + timeout
    with r.pubsub(ignore_subscribe_messages=True) as p:
        p.subscribe(channel)
        while len(messages) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            message = p.get_message(timeout=min(left, 0.1))
            if message is not None and message["type"] == "message":
                messages.append(message["data"])
    return messages
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-10-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.collect_messages(collect_messages, course)
### BEGIN HIDDEN TESTS
check.collect_messages(collect_messages, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 9. Leaderboards with sorted sets
#
# A sorted set keeps its members ordered by score at all times, so "the top 10", "my rank" and
# "my score" are each one fast command (logarithmic in the set's size), however many players or
# products there are:
#
# | Question | Command | redis-py |
# |---|---|---|
# | add or set scores | `ZADD` | `r.zadd(key, {member: score})` |
# | add to a score | `ZINCRBY` | `r.zincrby(key, amount, member)` |
# | the top n with scores | `ZREVRANGE key 0 n-1 WITHSCORES` (or `ZRANGE ... REV`) | `r.zrevrange(key, 0, n - 1, withscores=True)` |
# | a member's rank (0 = best) | `ZREVRANK` | `r.zrevrank(key, member)` |
# | a member's score | `ZSCORE` | `r.zscore(key, member)` |
#
# The seeded `sales:units_by_product` is an all-time best-seller board. First, is it right?

# %%
with course.connect_postgres() as conn:
    sql_units = conn.execute("SELECT sum(quantity) FROM order_items").fetchone()[0]
redis_units = sum(score for _, score in r.zrange(sales, 0, -1, withscores=True))
print("units sold, PostgreSQL:", sql_units, "| Redis:", int(redis_units))


def show_top(key, n):
    top = r.zrevrange(key, 0, n - 1, withscores=True)
    with r.pipeline(transaction=False) as pipe:  # all the names in one round trip
        for member, _ in top:
            pipe.hget(course.key("product", member), "name")
        names = pipe.execute()
    for rank, ((member, units), name) in enumerate(zip(top, names), start=1):
        print(f"{rank}. {name} (#{member}): {int(units):,} units")


show_top(sales, 5)

# %% [markdown]
# A new order arrives: 200 units of product 47. `ZINCRBY` updates the board, and the ranks follow
# at once (in the shop, the code that stores the order in PostgreSQL would also run this line).
# We try it on a copy of the board, so that the seeded one keeps agreeing with PostgreSQL.

# %%
def standing(key, product_id):
    rank = r.zrevrank(key, product_id)
    return None if rank is None else (rank + 1, int(r.zscore(key, product_id)))


board = course.key("demo", "units_by_product")
r.copy(sales, board, replace=True)  # a fresh copy each time this cell runs
print("product 47 before (rank, units):", standing(board, 47))
r.zincrby(board, 200, 47)
print("product 47 after:", standing(board, 47))
print("a product that is not on the board:", standing(board, 999_999))

# %% [markdown]
# `ZADD` builds a board from any query: here the best sellers of June 2026 (the data's last
# month), paid orders only.

# %%
june = course.key("leaderboard", "units", "2026-06")
with course.connect_postgres() as conn:
    rows = conn.execute("""
        SELECT oi.product_id, sum(oi.quantity) AS units
        FROM order_items oi JOIN orders o USING (order_id)
        WHERE o.ordered_at >= '2026-06-01' AND o.ordered_at < '2026-07-01'
          AND o.status NOT IN ('cancelled', 'refunded')
        GROUP BY oi.product_id""").fetchall()
r.delete(june)
print("products added:", r.zadd(june, {product_id: units for product_id, units in rows}))
show_top(june, 3)

# %% [markdown]
# ### Exercise 06.11 · Top sellers from the leaderboard (practice)
#
# Two functions on the seeded board (`course.key("sales", "units_by_product")`):
#
# * `top_sellers(r, n)` returns the `n` best sellers, best first, as a list of tuples
#   `(rank, product_id, name, units)`: `rank` from 1, `product_id` and `units` as ints, `name`
#   from the product's hash. `top_sellers(r, 0)` is an empty list.
# * `product_standing(r, product_id)` returns the tuple `(rank, units)` of one product: its
#   position on the board as `ZREVRANK` gives it, counted from 1, and its units (`ZSCORE`) as an
#   int; `None` when the product is not on the board.
#
# The check reads the live board and changes it while it runs, so your functions must read it
# on every call.

# %% nbgrader={"grade": false, "grade_id": "ex06-11-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def top_sellers(r, n):
    if n <= 0:
        return []  # ZREVRANGE 0 -1 would mean "everything"
    top = r.zrevrange(course.key("sales", "units_by_product"), 0, n - 1, withscores=True)
    with r.pipeline(transaction=False) as pipe:
        for member, _ in top:
            pipe.hget(course.key("product", member), "name")
        names = pipe.execute()
    return [(rank, int(member), name, int(units))
            for rank, ((member, units), name) in enumerate(zip(top, names), start=1)]


def product_standing(r, product_id):
    board = course.key("sales", "units_by_product")
    with r.pipeline(transaction=False) as pipe:  # both answers in one round trip
        pipe.zrevrank(board, product_id)
        pipe.zscore(board, product_id)
        rank, units = pipe.execute()
    return None if rank is None else (rank + 1, int(units))  # both are None for a missing member


print(product_standing(r, 47))
top_sellers(r, 3)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-11-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.top_sellers(top_sellers, product_standing, course)
### BEGIN HIDDEN TESTS
check.top_sellers(top_sellers, product_standing, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 10. Distributed locks: paying an order once
#
# Two workers (threads here; processes on different machines in production) receive the same
# "pay order 17" job, because a user double-clicked or a queue delivered twice. Charging a card is
# not something to do twice. Inside one process a `threading.Lock` would do; across processes,
# the lock must live where they all can see it: in Redis.
#
# A Redis lock is a key: `SET lock:<name> <random token> NX PX <timeout>`. `NX` makes only one
# worker succeed; the **timeout** frees the lock if its holder crashes; the **token** makes sure
# only the holder can release it. `r.lock(name, timeout=..., blocking_timeout=...)` does all of
# this.
#
# ```mermaid
# sequenceDiagram
#     participant W1 as Worker 1
#     participant W2 as Worker 2
#     participant R as Redis
#     participant DB as PostgreSQL
#     W1->>R: SET lock token1 NX PX 10000
#     R-->>W1: OK
#     W2->>R: SET lock token2 NX PX 10000
#     R-->>W2: nil (busy)
#     W1->>DB: status pending? charge card, UPDATE status = 'paid', COMMIT
#     W1->>R: delete lock if its value is token1 (Lua)
# ```
#
# The payments below use four pending orders of the shop, and a stand-in for the card network
# that takes half a second and writes down every charge. Each demonstration puts its order back
# to pending when it is done, so that every cell of this section can run again.

# %%
with course.connect_postgres() as conn:
    order_a, order_b, order_c, order_d = [row[0] for row in conn.execute(
        "SELECT order_id FROM orders WHERE status = 'pending' ORDER BY order_id LIMIT 4")]
print("pending orders:", order_a, order_b, order_c, order_d)

PAYMENT_SECONDS = 0.5
charges = []  # the card network's record: one entry per charge


def reset_order(order_id):
    """Undo a demonstration: the order is pending again and its charges are forgotten."""
    with course.connect_postgres() as conn:  # commits when the block ends
        conn.execute("UPDATE orders SET status = 'pending' WHERE order_id = %s", (order_id,))
    charges[:] = [charged for charged in charges if charged != order_id]


def charge_card(order_id):
    """Stands in for the payment provider: slow, and never to be called twice for one order."""
    time.sleep(PAYMENT_SECONDS)
    charges.append(order_id)


def order_status(conn, order_id):
    return conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]


def race(pay, order_id):
    """Two workers pay the same order at the same moment; their answers, sorted."""
    barrier = threading.Barrier(2)
    outcomes = []

    def worker():
        barrier.wait()  # both start together
        outcomes.append(pay(order_id))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def pay_without_lock(order_id, after_reading=None):
    with course.connect_postgres() as conn:  # commits when the block ends
        if order_status(conn, order_id) == "paid":
            return "already paid"
        if after_reading:
            after_reading()  # the demonstration holds each worker here, see below
        charge_card(order_id)
        conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = %s", (order_id,))
        return "paid"


# Two workers that start together usually both read "pending" within the half second the card
# takes, but a busy machine could start one of them late. A barrier makes the interleaving
# certain: neither worker charges the card before both have read the status.
both_have_read = threading.Barrier(2, timeout=10)
print("without a lock:", race(lambda o: pay_without_lock(o, after_reading=both_have_read.wait), order_a),
      "| card charged", charges.count(order_a), "times")
reset_order(order_a)

# %% [markdown]
# Both workers read "pending" before either wrote "paid": the customer pays twice. With a lock,
# acquired **without blocking**: the second worker does not wait, it reports that the order is
# busy.

# %%
def pay(order_id):
    lock = r.lock(course.key("lock", "order", order_id), timeout=10)  # freed after 10 s if we crash
    if not lock.acquire(blocking=False):  # someone is paying this order right now
        return "busy"
    try:
        with course.connect_postgres() as conn:
            if order_status(conn, order_id) == "paid":  # checked inside the lock
                return "already paid"
            charge_card(order_id)
            conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = %s", (order_id,))
            return "paid"
        # the with block has committed here: the next lock holder sees 'paid'
    finally:
        lock.release()


print("with a lock:", race(pay, order_b), "| card charged", charges.count(order_b), "time(s)")
print("paying again later:", pay(order_b), "| card charged", charges.count(order_b), "time(s)")
reset_order(order_b)

# %% [markdown]
# Two choices in `pay` matter. The status is read *inside* the lock: read before acquiring it,
# it could be stale by the time the lock is held. And the commit happens *before* the release, so
# the next holder of the lock sees "paid".
#
# Instead of giving up at once, a worker can wait a bounded time: `blocking_timeout=2` means "try
# for up to 2 s". Used as a context manager, the lock raises `LockError` when the wait runs out.

# %%
def pay_or_wait(order_id, wait_seconds):
    try:
        with r.lock(course.key("lock", "order", order_id), timeout=10, blocking_timeout=wait_seconds):
            with course.connect_postgres() as conn:
                if order_status(conn, order_id) == "paid":
                    return "already paid"
                charge_card(order_id)
                conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = %s", (order_id,))
                return "paid"
    except redis.exceptions.LockNotOwnedError:
        raise  # our lock expired while we worked: see below
    except redis.exceptions.LockError:
        return "gave up waiting"


print("waiting up to 2 s:", race(lambda o: pay_or_wait(o, 2), order_c), "| charges:", charges.count(order_c))
print("waiting up to 0.1 s:", race(lambda o: pay_or_wait(o, 0.1), order_d), "| charges:", charges.count(order_d))
reset_order(order_c)
reset_order(order_d)

# %% [markdown]
# ### When the lock expires in the middle of the work
#
# The timeout that protects against a crashed holder has a cost: if the work takes longer than
# the timeout (a slow card network, a long garbage-collection pause), the lock expires while its
# holder still works, and a second worker gets in. Here is that sequence, step by step:

# %%
expiry_demo = course.key("lock", "expiry-demo")
worker_1 = r.lock(expiry_demo, timeout=0.2)   # worker 1 thinks 0.2 s is plenty
print("worker 1 acquires:", worker_1.acquire(blocking=False))
time.sleep(0.3)                              # ...but its work takes 0.3 s: the lock expires
worker_2 = r.lock(expiry_demo, timeout=5)
print("worker 2 acquires:", worker_2.acquire(blocking=False), "<- two workers in the critical section")
try:
    worker_1.release()
except redis.exceptions.LockNotOwnedError as exc:
    print("worker 1 releases:", type(exc).__name__, "-", exc)
print("worker 2 still holds the lock:", worker_2.owned())
worker_2.release()

# %% [markdown]
# The release is **token-checked**: worker 1's release did not delete worker 2's lock, because the
# key no longer held worker 1's token. redis-py does that check with this Lua script, so that the
# comparison and the delete are one atomic step:

# %%
import textwrap

print(textwrap.dedent(redis.lock.Lock.LUA_RELEASE_SCRIPT).strip())

# %% [markdown]
# The check keeps the lock sane, but it cannot undo what worker 1 did after its lock expired. So:
#
# * set the timeout well above the worst case of the work, and call `lock.extend(seconds)` during
#   long work;
# * let the database have the last word: `UPDATE orders SET status = 'paid' WHERE order_id = %s
#   AND status <> 'paid'` updates zero rows the second time, and a unique constraint on a
#   `payments(order_id)` table rejects a second payment whatever the locks did. The Redis lock
#   keeps two workers from doing the work at the same time; the database keeps the data right
#   when the lock fails.
#
# ### Exercise 06.12 · A payment behind a lock (challenge)
#
# Write `pay_order(r, conn, lock_key, order_id, charge)`, run by several workers at once, each
# with its own PostgreSQL connection `conn` (autocommit off). It returns:
#
# * `"busy"` when another worker holds the lock `lock_key` (acquire it without blocking, with a
#   timeout of 10 s);
# * `"already paid"` when the order's status (table `orders`, columns `order_id` and `status`) is
#   `'paid'`, read while holding the lock;
# * `"paid"` after calling `charge(order_id)` once and setting the order's status to `'paid'`
#   (committed before the lock is released).
#
# If `charge` raises (a declined card), let the exception propagate: the order stays unpaid and the
# lock is released. The check runs two workers at once on one order, then pays it again.

# %% nbgrader={"grade": false, "grade_id": "ex06-12-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def pay_order(r, conn, lock_key, order_id, charge):
    lock = r.lock(lock_key, timeout=10)
    if not lock.acquire(blocking=False):
        return "busy"
    try:
        with conn.transaction():  # commits at the end of the block, rolls back on an exception
            status = conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]
            if status == "paid":
                return "already paid"
            charge(order_id)
            conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = %s", (order_id,))
        return "paid"
    finally:
        lock.release()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-12-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.pay_order(pay_order, course)
### BEGIN HIDDEN TESTS
check.pay_order(pay_order, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 11. Queues
#
# A list is a queue: producers `LPUSH` jobs at one end, workers take them from the other. `BRPOP`
# **blocks** until a job arrives (or a timeout passes), so an idle worker costs nothing and a new
# job is picked up at once. Several workers can wait on the same list: each job goes to exactly
# one of them.
#
# Here the shop queues order-confirmation e-mails for its five latest orders, and one worker
# thread sends them (prints them, here). A `stop` job tells the worker to finish.

# %%
emails = course.key("queue", "emails")
sent = []


def email_worker():
    while True:
        item = r.brpop(emails, timeout=5)  # (queue name, job), or None after 5 s without a job
        if item is None:
            break
        job = json.loads(item[1])
        if job.get("stop"):
            break
        sent.append(f"order {job['order_id']}: confirmation sent to user {job['user_id']}")


with course.connect_postgres() as conn:
    latest = conn.execute("SELECT order_id, user_id FROM orders ORDER BY ordered_at DESC, order_id DESC "
                          "LIMIT 5").fetchall()

worker_thread = threading.Thread(target=email_worker, name="email-worker")
worker_thread.start()
for order_id, user_id in reversed(latest):  # oldest first
    r.lpush(emails, json.dumps({"order_id": order_id, "user_id": user_id}))
r.lpush(emails, json.dumps({"stop": True}))
worker_thread.join(timeout=10)
print("\n".join(sent))
print("jobs left:", r.llen(emails))

# %% [markdown]
# `BRPOP` removes the job from Redis the moment it hands it out. If the worker dies while
# sending, that job is lost. The **reliable queue** pattern moves the job instead, atomically,
# into a *processing* list (`BLMOVE`, which replaced the older `BRPOPLPUSH`), and removes it from
# there only when the work is done (`LREM`). After a crash, whatever is still in the processing
# list goes back to the queue.

# %%
invoices = course.key("queue", "invoices")
in_progress = course.key("queue", "invoices", "processing")
r.lpush(invoices, *[json.dumps({"order_id": order_id}) for order_id, _ in reversed(latest[:3])])

job = r.blmove(invoices, in_progress, 1, "RIGHT", "LEFT")  # take the oldest job...
print("taken:", job)
#                                                            ...and the worker crashes here
print("after the crash, processing:", r.lrange(in_progress, 0, -1), "| queue:", r.llen(invoices))

while r.lmove(in_progress, invoices, "RIGHT", "RIGHT"):  # recovery: unfinished jobs back to the front
    pass
done = []
while (job := r.lmove(invoices, in_progress, "RIGHT", "LEFT")) is not None:  # LMOVE: the non-blocking form
    done.append(json.loads(job)["order_id"])  # the work
    r.lrem(in_progress, 1, job)               # acknowledge: remove this one copy
print("invoiced:", done, "| processing:", r.llen(in_progress), "| queue:", r.llen(invoices))

# %% [markdown]
# For more than this (several consumer groups, acknowledgements, replaying history), Redis has
# **streams** (`XADD`, `XREADGROUP`, `XACK`), and there are dedicated brokers (RabbitMQ, Kafka).
# Lists remain the simplest queue that works.
#
# ### Exercise 06.13 · A reliable queue worker (practice)
#
# Write `process_one(r, queue, processing, handler, timeout)` that handles one job of a reliable
# queue whose producers `LPUSH` jobs:
#
# * atomically move the **oldest** job from `queue` to the list `processing`, waiting at most
#   `timeout` seconds; return `None` if no job came;
# * call `handler(job)`; if it raises, let the exception propagate and leave the job in
#   `processing`;
# * when the handler succeeds, remove that one job from `processing` (other workers may be
#   processing an identical job) and return the job.

# %% nbgrader={"grade": false, "grade_id": "ex06-13-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def process_one(r, queue, processing, handler, timeout):
    job = r.blmove(queue, processing, timeout, "RIGHT", "LEFT")
    if job is None:
        return None
    handler(job)  # an exception leaves the job in `processing`, for recovery
    r.lrem(processing, 1, job)  # 1: this copy only
    return job
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex06-13-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.process_one(process_one, course)
### BEGIN HIDDEN TESTS
check.process_one(process_one, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 12. Persistence, in brief
#
# Redis answers from memory, but it can keep a copy on disk, in two ways:
#
# | | **RDB snapshots** | **AOF (append-only file)** |
# |---|---|---|
# | what | a compact dump of all data at one moment | a log of every write command |
# | when | every N seconds if M keys changed (`save 3600 1 300 100 60 10000`), or on `BGSAVE` | continuously; fsync `always`, `everysec` (default) or `no` |
# | after a crash you lose | everything since the last snapshot (minutes) | at most about a second (`everysec`) |
# | cost | a `fork()` per snapshot; fast restarts | a bigger file, rewritten now and then; slower restarts |
#
# Production servers usually run both: the AOF for safety, RDB files for backups (and the AOF
# itself starts with an RDB snapshot, `aof-use-rdb-preamble`, so that restarts stay fast). `BGSAVE` forks the server and writes a snapshot in the background;
# `LASTSAVE` says when the last one finished. Reading the configuration is harmless:

# %%
save, appendonly = r.config_get("save")["save"], r.config_get("appendonly")["appendonly"]
persistence = r.info("persistence")
print("save:", repr(save), "| appendonly:", appendonly, "| aof_enabled:", persistence["aof_enabled"])
print("snapshots off on this server:", save == "" and appendonly == "no")
print("LASTSAVE returns a", type(r.lastsave()).__name__, "| last background save:",
      persistence["rdb_last_bgsave_status"])

# %% [markdown]
# **This course's Redis runs with snapshots and the AOF turned off** (`--save "" --appendonly no`):
# it is a scratch server, and restarting it empties it (`dbcourse` reloads each notebook's data
# when its setup cell runs). This notebook therefore does not run `BGSAVE`: on a shared server it
# would write every notebook's keys to a `dump.rdb` that the server would load again at its next
# start. On a Redis of your own, try:
#
# ```text
# CONFIG SET appendonly yes     # start logging writes (CONFIG REWRITE saves it in redis.conf)
# BGSAVE                        # "Background saving started"
# LASTSAVE                      # the Unix time of the last successful save
# ```
#
# Whatever the settings, treat Redis as the place for data you can rebuild (caches, sessions,
# counters, queues you can refill) and keep the data you cannot lose in PostgreSQL.
#
# ## 13. Cleaning up
#
# Everything this notebook created is under its prefix, so cleaning up is a `SCAN` over that
# prefix and an `UNLINK` (a `DEL` that frees the memory in the background). The shop's seeded
# keys are included: run the setup cell again to get them back.

# %%
mine = list(r.scan_iter(match=prefix + "*", count=1000))
seeded = [k for k in mine if k[len(prefix):].startswith(("product:", "user:", "category:", "sales:"))]
print("keys under the prefix:", len(mine), "| seeded by the setup:", len(seeded),
      "| created by this notebook:", len(mine) - len(seeded))
deleted = sum(r.unlink(*mine[i:i + 1000]) for i in range(0, len(mine), 1000))
print("keys deleted:", deleted)
print("keys left under the prefix:", sum(1 for _ in r.scan_iter(match=prefix + "*", count=1000)))

# %% [markdown]
# ## Key points
#
# * Connect with `redis.Redis.from_url(url, decode_responses=True)` from configuration; share one
#   client (it holds a connection pool) across threads; prefix every key and every channel; list
#   keys with `SCAN`, never `KEYS`, and never `FLUSHDB` a shared server.
# * Five types: strings (values, counters), hashes (objects), lists (queues, latest N), sets
#   (membership), sorted sets (rankings, time windows). Every value is a string: convert on read.
# * `SET key value EX n` stores and expires in one command (`SETEX` is its deprecated ancestor);
#   a plain `SET` drops a TTL; `TTL` returns -1 for no expiry and -2 for no key.
# * Pipelines cut round trips; `MULTI`/`EXEC` runs commands as one isolated unit (no rollback);
#   `WATCH` plus retry gives optimistic read-compute-write; a Lua script is an atomic decision
#   inside Redis.
# * Cache-aside: read Redis, fall back to the database, store with a TTL; invalidate by deleting
#   the key **after** the commit; measure the hit rate.
# * Sliding sessions renew the TTL on every access, in the same round trip as the read.
# * Rate limiters must decide atomically: `INCR` + `EXPIRE NX` in one transaction, or Lua; a
#   sorted set gives a sliding window.
# * Pub/sub is fire-and-forget; lists with `BLMOVE` make a reliable queue.
# * A Redis lock (`r.lock`, token-checked release) stops two workers doing the same work at once,
#   but it can expire mid-work: let the database have the last word.
# * RDB snapshots and the AOF make Redis survive restarts to a degree; keep what you cannot lose in
#   PostgreSQL.
#
# Your progress in this chapter:

# %%
check.progress()

# %% [markdown]
# **Where next**: chapter 07 measures performance across every database of the course: indexes
# (the product page above needs one on `order_items.product_id`), query plans, N+1 queries,
# bulk loading, connection pooling, and caching hot queries in Redis, at the large data scale.
# Open `07_optimization.ipynb`.
