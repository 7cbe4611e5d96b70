"""Checks for chapter 06, "Redis from Python".

Every check runs against the real Redis server (and the namespace's PostgreSQL database where the
exercise involves one) and recomputes what it expects from the data. Scratch keys live under the
check's own sub-prefix of the namespace (``<namespace>:check:<exercise>:...``) and are deleted
before and after each check; rows a check changes in PostgreSQL are put back.

Some checks run the learner's code through special clients, real ``redis.Redis`` subclasses on
the same server (no mocks):

* :class:`_SlowRedis` delays every reply by a few milliseconds, as a busy network does. A
  "read, decide, write" done in separate round trips then races reliably when threads run it
  together, so a non-atomic answer fails every time rather than once in a while.
* :class:`_DiesAfterFirstRoundTrip` raises ``ConnectionError`` when the learner's code sends a
  second command, as if the process had died between two round trips.
* :class:`_ConcurrentReader` lets "another request" read through the cache right after the
  learner's code writes or deletes the cache key.

Commands sent through a pipeline (MULTI/EXEC) or a single Lua script are one round trip: these
clients see them as one step, which is exactly the point of using them.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Callable, Iterator

from .core import Chapter, expect, fail, not_answered

chapter = Chapter("06", "Redis")
exercise = chapter.exercise
progress = chapter.progress


# --------------------------------------------------------------------------- helpers

def _redis_module():
    import redis

    return redis


def _redis_url(workspace: Any) -> str:
    from ..config import get_settings

    return workspace.urls.get("redis") or get_settings().redis.url


def _client(workspace: Any, cls: type | None = None):
    """A new client of class ``cls`` (a ``redis.Redis`` subclass) on the workspace's server."""
    redis = _redis_module()
    cls = cls or redis.Redis
    return cls.from_url(_redis_url(workspace), decode_responses=True, socket_timeout=15)


def _slow_redis_class():
    redis = _redis_module()

    class _SlowRedis(redis.Redis):
        """Every reply arrives ``delay`` seconds late (a busy network)."""

        delay = 0.02

        def execute_command(self, *args: Any, **options: Any) -> Any:
            result = super().execute_command(*args, **options)
            time.sleep(self.delay)
            return result

    return _SlowRedis


def _dying_redis_class():
    redis = _redis_module()

    class _DiesAfterFirstRoundTrip(redis.Redis):
        """The process "dies" (ConnectionError) when a second command is about to be sent."""

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.round_trips = 0

        def execute_command(self, *args: Any, **options: Any) -> Any:
            if self.round_trips >= 1:
                raise redis.ConnectionError("simulated crash: the process died after its first round trip")
            result = super().execute_command(*args, **options)
            self.round_trips += 1
            return result

    return _DiesAfterFirstRoundTrip


_CACHE_WRITES = {"DEL", "UNLINK", "SET", "SETEX", "PSETEX", "GETDEL", "GETEX", "EXPIRE", "PEXPIRE", "EXPIREAT",
                 "PEXPIREAT", "SETNX", "MSET"}


def _concurrent_reader_class():
    redis = _redis_module()

    class _ConcurrentReader(redis.Redis):
        """Right after the first write to ``watched_key``, run ``on_write()`` once: another request."""

        watched_key: str | None = None
        on_write: Callable[[], None] | None = None
        fired = False

        def execute_command(self, *args: Any, **options: Any) -> Any:
            result = super().execute_command(*args, **options)
            name = str(args[0]).upper() if args else ""
            if (self.on_write is not None and not self.fired and name in _CACHE_WRITES
                    and self.watched_key in [str(a) for a in args[1:]]):
                self.fired = True
                self.on_write()
            return result

    return _ConcurrentReader


def _scratch_prefix(workspace: Any, number: str) -> str:
    return workspace.key("check", number)


def _clean(workspace: Any, number: str) -> None:
    r = workspace.redis
    keys = list(r.scan_iter(match=_scratch_prefix(workspace, number) + ":*", count=1000))
    if keys:
        r.unlink(*keys)


@contextmanager
def _scratch(workspace: Any, number: str) -> Iterator[Callable[..., str]]:
    """Yield a function that makes scratch keys for exercise ``number``; delete them afterwards."""
    _clean(workspace, number)
    try:
        yield lambda *parts: workspace.key("check", number, *parts)
    finally:
        _clean(workspace, number)


def _run_together(calls: list[Callable[[], Any]], *, timeout: float = 20, what: str = "your function") -> list[Any]:
    """Run ``calls`` in threads released at the same moment; return their results in order.

    An exception in a thread is re-raised here (so the learner sees it); a thread that does not
    finish in ``timeout`` seconds fails the check.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            results[index] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors[index] = exc

    threads = [threading.Thread(target=run, args=(i, c), daemon=True, name=f"check-worker-{i}")
               for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        fail(f"{what} did not return within {timeout:.0f} s when {len(calls)} threads called it at once.",
             hint="look for a loop that never ends or a blocking call without a timeout.")
    for error in errors:
        if error is not None and not isinstance(error, threading.BrokenBarrierError):
            raise error
    return results


def _callable(value: Any, name: str, signature: str) -> None:
    not_answered(value, name)
    expect(callable(value), f"`{name}` should be a function {signature}, not {type(value).__name__}.")


def _ttl_hint(ttl: int) -> str:
    if ttl == -1:
        return ("the key has no expiry at all (TTL -1): store it with r.set(key, value, ex=seconds) "
                "(SET ... EX, the modern SETEX).")
    if ttl == -2:
        return "the key does not exist (TTL -2)."
    return f"its TTL is {ttl} s."


def _pg_dict(workspace: Any):
    from psycopg.rows import dict_row

    return workspace.connect_postgres(autocommit=True, row_factory=dict_row)


# --------------------------------------------------------------------------- 06.1

def _expected_card(conn: Any, product_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT p.name, p.price, p.stock, c.name AS category FROM products p "
                       "JOIN categories c USING (category_id) WHERE p.product_id = %s", (product_id,)).fetchone()
    return None if row is None else dict(row)


def _compare_card(got: Any, expected: dict[str, Any], product_id: int) -> None:
    call = f"product_card(r, {product_id})"
    expect(isinstance(got, dict), f"{call} returned {type(got).__name__}; expected a dict.",
           hint="build a dict with the keys name, price, stock and category.")
    expect(set(got) == set(expected), f"{call} has the keys {sorted(got)}; expected {sorted(expected)}.",
           hint="keep exactly the four keys name, price, stock and category.")
    expect(isinstance(got["price"], Decimal),
           f"{call}['price'] is {got['price']!r} ({type(got['price']).__name__}); expected a decimal.Decimal.",
           hint="Redis returns every value as a string: Decimal('68.99') keeps money exact, float does not.")
    expect(isinstance(got["stock"], int) and not isinstance(got["stock"], bool),
           f"{call}['stock'] is {got['stock']!r} ({type(got['stock']).__name__}); expected an int.",
           hint="Redis returns '304', a string: convert it with int().")
    for field, value in expected.items():
        expect(got[field] == value, f"{call}[{field!r}] is {got[field]!r}; expected {value!r}.",
               hint="read the fields of the product's hash (HGETALL) and convert price and stock.")


def _check_connect(connect: Any, url: str) -> Any:
    """Call the learner's connect(url); return the client after checking how it is built."""
    from urllib.parse import urlsplit

    redis = _redis_module()
    client = connect(url)
    expect(isinstance(client, redis.Redis), f"connect(url) returned {type(client).__name__}; expected a redis.Redis "
                                            "client.", hint="return redis.Redis(connection_pool=pool).")
    pool = client.connection_pool
    try:
        expect(isinstance(pool, redis.BlockingConnectionPool),
               f"the client's connections come from a {type(pool).__name__}; expected a BlockingConnectionPool "
               "(a thread waits for a free connection instead of failing).",
               hint="pool = redis.BlockingConnectionPool.from_url(url, decode_responses=True, max_connections=4), "
                    "then redis.Redis(connection_pool=pool).")
        expect(pool.max_connections == 4,
               f"the pool allows {pool.max_connections} connections; expected at most 4.",
               hint="pass max_connections=4 when you create the pool.")
        kwargs = pool.connection_kwargs
        expect(kwargs.get("decode_responses") is True,
               "the client returns bytes, not text: decode_responses is not set.",
               hint="pass decode_responses=True to BlockingConnectionPool.from_url: the pool's connections decode.")
        parts = urlsplit(url)
        want = (parts.hostname, parts.port or 6379, int((parts.path or "/0").lstrip("/") or 0))
        got = (kwargs.get("host"), kwargs.get("port"), int(kwargs.get("db", 0)))
        expect(got == want, f"connect({url!r}) connects to host, port, db {got}; expected {want}.",
               hint="build the pool from the url you are given (from_url), not from a fixed address.")
        expect(client.ping() is True, "the client returned by connect(url) does not answer PING.")
    except BaseException:
        client.close()
        pool.disconnect()
        raise
    return client


def _check_wishlist(func: Any, workspace: Any, conn: Any, user_id: int, wished: list[int], category_id: int) -> None:
    r = workspace.redis
    key = workspace.key("wishlist", "user", user_id)
    r.delete(key)
    if wished:
        r.sadd(key, *wished)
    in_category = {row["product_id"] for row in conn.execute(
        "SELECT product_id FROM products WHERE category_id = %s", (category_id,))}
    expected = sorted(p for p in wished if p in in_category)
    call = f"wished_in_category(r, {user_id}, {category_id})"
    got = func(r, user_id, category_id)
    expect(isinstance(got, list), f"{call} returned {type(got).__name__}; expected a list of ints.",
           hint="SINTER returns a set of strings: sorted(int(m) for m in members).")
    expect(all(isinstance(x, int) and not isinstance(x, bool) for x in got),
           f"{call} returned {got!r}; expected ints, not strings.", hint="set members come back as strings: int(m).")
    expect(sorted(got) == expected, f"{call} returned {got!r}; expected {expected!r} (the wish list holds "
                                    f"{sorted(wished)!r}).",
           hint="intersect the user's wish list with the category's set: r.sinter(wishlist_key, category_key).")
    expect(got == expected, f"{call} returned the right ids in the wrong order: {got!r}; expected ascending.")


@exercise("06.1", "Connect, read a hash, intersect two sets", answer="product_card")
def product_card(func: Any, connect: Any, wished_in_category: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "product_card", "product_card(r, product_id)")
    _callable(connect, "connect", "connect(url)")
    _callable(wished_in_category, "wished_in_category", "wished_in_category(r, user_id, category_id)")
    url = _redis_url(workspace)
    client = _check_connect(connect, url)
    try:
        if hidden:  # another database number: the answer must use the url it is given
            from urllib.parse import urlsplit, urlunsplit

            other = urlunsplit(urlsplit(url)._replace(path="/3"))
            second = _check_connect(connect, other)
            expect(second.connection_pool is not client.connection_pool,
                   "two calls of connect(url) returned clients that share one pool: each call should make its own.")
            second.close()
            second.connection_pool.disconnect()
        r = workspace.redis
        with _pg_dict(workspace) as conn:
            last = conn.execute("SELECT max(product_id) AS m FROM products").fetchone()["m"]
            ids = [1, 2, last] if not hidden else [7, last // 2, last - 1]
            for product_id in ids:
                _compare_card(func(client, product_id), _expected_card(conn, product_id), product_id)
            missing = last + 1000
            got = func(client, missing)
            expect(got is None, f"product_card(r, {missing}) returned {got!r} for a product that does not exist; "
                                "expected None.",
                   hint="HGETALL of a missing key returns an empty dict {}: return None in that case.")
            if hidden:  # the answer must read the live hash, not a copy or a hard-coded value
                key = workspace.key("product", ids[0])
                old = r.hget(key, "stock")
                try:
                    r.hset(key, "stock", int(old) + 17)
                    got = func(client, ids[0])
                    expect(isinstance(got, dict) and got.get("stock") == int(old) + 17,
                           f"after the hash's stock changed to {int(old) + 17}, product_card(r, {ids[0]}) still says "
                           f"{got.get('stock') if isinstance(got, dict) else got!r}.",
                           hint="read the hash from Redis on every call.")
                finally:
                    r.hset(key, "stock", old)

            categories = [row["category_id"] for row in conn.execute(
                "SELECT category_id FROM products GROUP BY category_id HAVING count(*) >= 3 ORDER BY category_id")]
            first, second_cat = categories[0], categories[-1]

            def some(category_id: int, n: int) -> list[int]:
                return [row["product_id"] for row in conn.execute(
                    "SELECT product_id FROM products WHERE category_id = %s ORDER BY product_id DESC LIMIT %s",
                    (category_id, n))]

            users = [990_001, 990_002, 990_003]
            try:
                _check_wishlist(wished_in_category, workspace, conn, users[0],
                                some(first, 3) + some(second_cat, 2) + [last + 500], first)
                if hidden:
                    _check_wishlist(wished_in_category, workspace, conn, users[1], some(first, 2), second_cat)
                    _check_wishlist(wished_in_category, workspace, conn, users[2], [], first)  # no wish list
                    _check_wishlist(wished_in_category, workspace, conn, users[0],
                                    some(second_cat, 3) + some(first, 1), second_cat)
            finally:
                r.delete(*[workspace.key("wishlist", "user", u) for u in users])
    finally:
        client.close()
        client.connection_pool.disconnect()


# --------------------------------------------------------------------------- 06.2

@exercise("06.2", "A TTL cache: remember and recall", answer="remember")
def ttl_cache(remember: Any, recall: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(remember, "remember", "remember(r, key, value, ttl_seconds)")
    _callable(recall, "recall", "recall(r, key, default=None)")
    r = workspace.redis
    with _scratch(workspace, "06.2") as key:
        report = key("report")
        value = {"title": "Best sellers", "top": [207, 188, 15], "share": 0.25, "city": "Zoë's town"}
        remember(r, report, value, 60)
        raw = r.get(report)
        expect(raw is not None, "after remember(r, key, value, 60) nothing is stored under `key`.",
               hint="store the value with r.set(key, json.dumps(value), ex=ttl_seconds).")
        try:
            stored = json.loads(raw)
        except ValueError:
            fail(f"the value stored under `key` is {raw[:60]!r}, which is not JSON.",
                 hint="store json.dumps(value), so that any dict, list or number comes back as it was.")
        expect(stored == value, f"the JSON stored under `key` decodes to {stored!r}; expected {value!r}.")
        ttl = r.ttl(report)
        expect(0 < ttl <= 60, "the key should expire within ttl_seconds (60 s): " + _ttl_hint(ttl),
               hint="r.set(key, text, ex=ttl_seconds) stores the value and sets its expiry in one command.")
        got = recall(r, report)
        expect(got == value, f"recall(r, key) returned {got!r}; expected {value!r}.",
               hint="json.loads the string that r.get(key) returns.")
        missing = key("missing")
        got = recall(r, missing)
        expect(got is None, f"recall(r, key) of a key that does not exist returned {got!r}; expected None.")
        got = recall(r, missing, default="n/a")
        expect(got == "n/a", f"recall(r, key, default='n/a') of a missing key returned {got!r}; expected 'n/a'.")
        if hidden:
            for falsy in (0, "", [], {}, False):
                remember(r, report, falsy, 60)
                got = recall(r, report, default="DEFAULT")
                expect(got == falsy and type(got) is type(falsy),
                       f"after remember(r, key, {falsy!r}, 60), recall(r, key, default='DEFAULT') returned {got!r}.",
                       hint="a stored 0, '' or [] is a hit: test `raw is not None`, not `if raw:`.")
            remember(r, report, {"v": 1}, 60)
            remember(r, report, {"v": 2}, 30)
            ttl = r.ttl(report)
            expect(recall(r, report) == {"v": 2} and 0 < ttl <= 30,
                   "remembering a key again should replace its value and its TTL (30 s here): "
                   f"value {recall(r, report)!r}, " + _ttl_hint(ttl))
            remember(r, report, "soon gone", 1)
            ttl = r.pttl(report)
            expect(0 < ttl <= 1000, "remember(r, key, value, 1) should make the key expire within a second: "
                                    f"its PTTL is {ttl} ms.")


# --------------------------------------------------------------------------- 06.3

def _balances(r: Any, *keys: str) -> list[int]:
    return [int(v) if v is not None else 0 for v in r.mget(*keys)]


@exercise("06.3", "A transfer with WATCH", answer="transfer")
def transfer(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "transfer", "transfer(r, src, dst, amount)")
    r = workspace.redis
    with _scratch(workspace, "06.3") as key:
        alice, bob = key("wallet", "alice"), key("wallet", "bob")
        r.mset({alice: 50, bob: 0})
        result = func(r, alice, bob, 20)
        expect(result is True, f"transfer(r, alice, bob, 20) with 50 on alice's wallet returned {result!r}; "
                               "expected True.")
        expect(_balances(r, alice, bob) == [30, 20],
               f"after moving 20 from alice (50) to bob (0) the balances are {_balances(r, alice, bob)}; "
               "expected [30, 20].")
        result = func(r, alice, bob, 40)
        expect(result is False, f"transfer(r, alice, bob, 40) with only 30 on alice's wallet returned {result!r}; "
                                "expected False.", hint="read the balance and refuse the transfer when it is too low.")
        expect(_balances(r, alice, bob) == [30, 20],
               f"a refused transfer changed the balances to {_balances(r, alice, bob)}; expected [30, 20].")

        # ten transfers of 10 at the same moment from a wallet of 50, on a slow network
        r.mset({alice: 50, bob: 0})
        slow = _client(workspace, _slow_redis_class())
        try:
            results = _run_together([lambda: func(slow, alice, bob, 10) for _ in range(10)],
                                    what="transfer")
        finally:
            slow.close()
        a, b = _balances(r, alice, bob)
        expect(a >= 0, f"ten concurrent transfers of 10 from a wallet of 50 left it at {a}: money was spent "
                       "that was not there (a lost update).",
               hint="WATCH both keys, read the balance, then MULTI ... EXEC; if EXEC raises WatchError, "
                    "another client changed a key in between: read again and retry.")
        expect(a + b == 50, f"after concurrent transfers the two wallets hold {a} + {b} = {a + b}; expected 50 "
                            "(money was created or destroyed).",
               hint="change both wallets inside the same MULTI/EXEC transaction.")
        ok = sum(1 for x in results if x is True)
        expect(ok == 5 and a == 0, f"{ok} of 10 concurrent transfers of 10 succeeded (wallet left at {a}); the "
                                   "wallet of 50 could pay exactly 5.",
               hint="when EXEC fails with WatchError, retry the whole read-check-write (a loop), instead of "
                    "giving up.")
        if hidden:
            carol = key("wallet", "carol")
            result = func(r, carol, bob, 5)
            expect(result is False and _balances(r, carol, bob) == [0, 50],
                   f"a transfer of 5 from a wallet that does not exist returned {result!r} and left the balances "
                   f"at {_balances(r, carol, bob)}; expected False and [0, 50] (a missing wallet holds 0).",
                   hint="r.get of a missing key is None: treat it as 0.")
            r.mset({alice: 15, bob: 1})
            result = func(r, alice, bob, 15)
            expect(result is True and _balances(r, alice, bob) == [0, 16],
                   f"moving a whole balance (15) returned {result!r} and left {_balances(r, alice, bob)}; "
                   "expected True and [0, 16].", hint="a balance equal to the amount is enough.")
            dave = key("wallet", "dave")
            result = func(r, bob, dave, 6)
            expect(result is True and _balances(r, bob, dave) == [10, 6],
                   f"moving 6 from bob (16) to a new wallet returned {result!r} and left "
                   f"{_balances(r, bob, dave)}; expected True and [10, 6].")


# --------------------------------------------------------------------------- 06.4 / 06.5

_PRODUCT_ROW_SQL = "SELECT product_id, name, price::text AS price, stock FROM products WHERE product_id = %s"


def _best_seller(conn: Any, offset: int = 0) -> int:
    return conn.execute("SELECT product_id FROM order_items GROUP BY product_id "
                        "ORDER BY sum(quantity) DESC, product_id LIMIT 1 OFFSET %s", (offset,)).fetchone()["product_id"]


@exercise("06.4", "Cache-aside get_or_set", answer="get_or_set")
def get_or_set(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "get_or_set", "get_or_set(r, key, loader, ttl_seconds)")
    r = workspace.redis
    with _scratch(workspace, "06.4") as key, _pg_dict(workspace) as conn:
        product_id = _best_seller(conn, 3 if hidden else 0)
        original = conn.execute("SELECT price FROM products WHERE product_id = %s", (product_id,)).fetchone()["price"]
        calls: list[int] = []

        def loader() -> dict[str, Any]:
            calls.append(product_id)
            return dict(conn.execute(_PRODUCT_ROW_SQL, (product_id,)).fetchone())

        expected = dict(conn.execute(_PRODUCT_ROW_SQL, (product_id,)).fetchone())
        cache_key = key("product", product_id)
        try:
            first = func(r, cache_key, loader, 60)
            expect(len(calls) == 1, f"on a cold cache (the key did not exist) get_or_set called the loader "
                                    f"{len(calls)} time(s); expected once.",
                   hint="GET the key; only when it is missing (None), call loader() and store its result.")
            expect(first == expected, f"get_or_set returned {first!r} on a miss; expected what the loader "
                                      f"returned, {expected!r}.")
            raw = r.get(cache_key)
            expect(raw is not None, "after a miss, nothing was stored under `key`.",
                   hint="store the loader's result with r.set(key, json.dumps(value), ex=ttl_seconds).")
            try:
                stored = json.loads(raw)
            except ValueError:
                fail(f"the value stored under `key` is {raw[:60]!r}, which is not JSON.",
                     hint="store json.dumps(value).")
            expect(stored == expected, f"the JSON stored under `key` decodes to {stored!r}; expected {expected!r}.")
            ttl = r.ttl(cache_key)
            expect(0 < ttl <= 60, "the cached value should expire within ttl_seconds (60 s): " + _ttl_hint(ttl),
                   hint="r.set(key, text, ex=ttl_seconds) sets the value and its TTL in one command.")
            second = func(r, cache_key, loader, 60)
            expect(len(calls) == 1, "the second call should be a cache hit, but the loader (the PostgreSQL "
                                    "query) ran again.", hint="return json.loads(cached) when GET found the key.")
            expect(second == expected, f"on a hit get_or_set returned {second!r}; expected {expected!r}.",
                   hint="decode the cached JSON with json.loads.")
            # the price changes in PostgreSQL: the cache serves the old one until the key is invalidated
            conn.execute("UPDATE products SET price = price + 1 WHERE product_id = %s", (product_id,))
            new_price = str(original + 1)
            stale = func(r, cache_key, loader, 60)
            expect(len(calls) == 1 and stale == expected,
                   "before invalidation, get_or_set should still answer from the cache (the old row).")
            r.delete(cache_key)
            fresh = func(r, cache_key, loader, 60)
            expect(len(calls) == 2 and isinstance(fresh, dict) and fresh.get("price") == new_price,
                   f"after the price changed in PostgreSQL and the key was deleted, get_or_set returned "
                   f"{fresh!r}; expected the new price {new_price!r} from a fresh database read.")
        finally:
            conn.execute("UPDATE products SET price = %s WHERE product_id = %s", (original, product_id))
        if hidden:
            for index, value in enumerate([0, "", [], {"name": "Zoë's café ☕"}, [1, 2.5, None]]):
                runs: list[int] = []

                def constant(value: Any = value) -> Any:
                    runs.append(1)
                    return value

                value_key = key("value", index)
                results = [func(r, value_key, constant, 5) for _ in range(2)]
                expect(len(runs) == 1, f"for a loader that returns {value!r}, two calls of get_or_set ran the loader "
                                       f"{len(runs)} times; expected once.",
                       hint="a cached 0, '' or [] is still a hit: test `cached is not None`, not `if cached:`.")
                expect(all(x == value for x in results),
                       f"for a loader that returns {value!r}, get_or_set returned {results!r}.")
                ttl = r.ttl(value_key)
                expect(0 < ttl <= 5, "with ttl_seconds=5 the key should expire within 5 s: " + _ttl_hint(ttl))


def _read_through(r: Any, conn: Any, key: str, product_id: int) -> dict[str, Any]:
    """What another request does: answer from the cache, or read PostgreSQL and cache the row."""
    raw = r.get(key)
    if raw is not None:
        return json.loads(raw)
    row = dict(conn.execute(_PRODUCT_ROW_SQL, (product_id,)).fetchone())
    r.set(key, json.dumps(row), ex=300)
    return row


@exercise("06.5", "Find and fix: the price that comes back", answer="update_price")
def update_price(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "update_price", "update_price(conn, r, key, product_id, new_price)")
    r = workspace.redis
    cases = [(1, Decimal("0.50"), True)]
    if hidden:
        cases += [(5, Decimal("19.90"), True), (8, Decimal("7.05"), False)]  # False: the cache starts cold
    with _scratch(workspace, "06.5") as key, _pg_dict(workspace) as reader:
        for offset, delta, warm in cases:
            product_id = _best_seller(reader, offset)
            original = reader.execute("SELECT price FROM products WHERE product_id = %s",
                                      (product_id,)).fetchone()["price"]
            new_price = original + delta
            cache_key = key("product", product_id)
            if warm:
                _read_through(r, reader, cache_key, product_id)  # the product page was viewed: old price cached
            client = _client(workspace, _concurrent_reader_class())
            client.watched_key = cache_key
            client.on_write = lambda: _read_through(r, reader, cache_key, product_id)
            learner_conn = workspace.connect_postgres()
            try:
                func(learner_conn, client, cache_key, product_id, new_price)
                learner_conn.close()  # whatever update_price did not commit is rolled back now
                committed = reader.execute("SELECT price FROM products WHERE product_id = %s",
                                           (product_id,)).fetchone()["price"]
                expect(committed == new_price,
                       f"after update_price(conn, r, key, {product_id}, Decimal('{new_price}')) the database says "
                       f"the price is {committed}: the UPDATE was not committed.",
                       hint="run the UPDATE inside `with conn.transaction():` (it commits when the block ends).")
                shown = _read_through(r, reader, cache_key, product_id)["price"]
                if shown != str(new_price):
                    if client.fired:
                        fail(f"the cache shows the old price {shown} again after update_price. Right after your "
                             f"code touched the cache key, another request found it missing, read the product "
                             f"from PostgreSQL, where the UPDATE was not committed yet, and cached the old price "
                             f"for 5 more minutes.",
                             hint="`with conn.transaction():` commits when the block ends: delete the key after "
                                  "the block, once the new price is committed.")
                    fail(f"the cache still shows the old price {shown} after update_price changed it to {new_price}: "
                         "the cache key was not invalidated.",
                         hint="delete the cache key (r.delete(key)) after the transaction has committed.")
            finally:
                learner_conn.close()
                client.close()
                reader.execute("UPDATE products SET price = %s WHERE product_id = %s", (original, product_id))


# --------------------------------------------------------------------------- 06.6

@exercise("06.6", "A caching decorator", answer="cached")
def cached(factory: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(factory, "cached", "cached(r, prefix, ttl_seconds)")
    r = workspace.redis
    with _scratch(workspace, "06.6") as key:
        prefix = key("cache")
        calls: list[tuple] = []

        def price_with_tax(product_id: int, rate: float = 0.2) -> dict[str, Any]:
            """A slow computation (imagine a database query)."""
            calls.append((product_id, rate))
            return {"product_id": product_id, "gross": round(10.0 * product_id * (1 + rate), 2)}

        reference = price_with_tax
        decorator = factory(r, prefix, 30)
        expect(callable(decorator), f"cached(r, prefix, 30) returned {decorator!r}; expected a decorator "
                                    "(a function that takes the function to cache).",
               hint="def cached(r, prefix, ttl_seconds):\n    def decorate(func): ...\n    return decorate")
        wrapped = decorator(price_with_tax)
        expect(callable(wrapped), "the decorator should return a function (the wrapper).")
        expect(getattr(wrapped, "__name__", None) == "price_with_tax" and wrapped.__doc__ == reference.__doc__,
               f"the decorated function is called {getattr(wrapped, '__name__', None)!r}; expected "
               "'price_with_tax', with its docstring.", hint="decorate the wrapper with @functools.wraps(func).")
        expected = {"product_id": 3, "gross": 36.0}
        results = [wrapped(3), wrapped(3)]
        calls_now = len(calls)
        expect(calls_now == 1, f"two calls of the decorated function with the same argument ran it {calls_now} "
                               "time(s); expected once (the second one is a cache hit).")
        expect(results == [expected, expected], f"the decorated function returned {results!r}; expected "
                                                f"{[expected, expected]!r}.")
        other = wrapped(4)
        expect(len(calls) == 2 and other == {"product_id": 4, "gross": 48.0},
               f"wrapped(4) after wrapped(3) returned {other!r} and ran the function {len(calls) - 1} more time(s): "
               "different arguments need different cache keys.",
               hint="build the key from the prefix, the function's name and its arguments.")
        keys = sorted(r.scan_iter(match=prefix + "*", count=1000))
        expect(len(keys) == 2, f"found {len(keys)} key(s) starting with `prefix` after caching two calls; "
                               "expected 2.", hint="every cache key must start with the prefix you were given.")
        for cache_key in keys:
            ttl = r.ttl(cache_key)
            expect(0 < ttl <= 30, f"the cache key {cache_key!r} should expire within 30 s: " + _ttl_hint(ttl))
        if hidden:
            with_kw = [wrapped(3, rate=0.1), wrapped(3, rate=0.1)]
            expect(with_kw == [{"product_id": 3, "gross": 33.0}] * 2 and len(calls) == 3,
                   f"wrapped(3, rate=0.1) returned {with_kw[0]!r} (expected {{'product_id': 3, 'gross': 33.0}}) "
                   f"and the function ran {len(calls) - 2} time(s) for two such calls (expected once).",
                   hint="keyword arguments belong in the key too (sort them, so their order does not matter).")

            def discount(product_id: int, rate: float = 0.2) -> int:
                calls.append(("discount", product_id))
                return 0

            wrapped_discount = decorator(discount)
            got = [wrapped_discount(3), wrapped_discount(3)]
            expect(got == [0, 0], f"a second cached function, discount(3), returned {got!r}; expected [0, 0]: "
                                  "two functions with the same arguments must not share a key.",
                   hint="put the function's name (func.__qualname__) in the key.")
            expect(sum(1 for c in calls if c[0] == "discount") == 1,
                   "a cached function that returns 0 ran again on the second call: 0 is a value, not a miss.",
                   hint="test `cached is not None`, not `if cached:`.")


# --------------------------------------------------------------------------- 06.7

@exercise("06.7", "Sliding expiry: touch a session", answer="touch_session")
def touch_session(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "touch_session", "touch_session(r, key, ttl_seconds)")
    r = workspace.redis
    with _scratch(workspace, "06.7") as key:
        session = key("session", "abc")
        data = {"user_id": "42", "name": "Zoë O'Brien", "country": "FR"}
        r.hset(session, mapping=data)
        r.pexpire(session, 3000)
        got = func(r, session, 600)
        expect(got == data, f"touch_session(r, key, 600) returned {got!r}; expected the session's fields {data!r}.",
               hint="HGETALL returns the fields as a dict.")
        ttl = r.ttl(session)
        expect(590 <= ttl <= 600, "after touch_session(r, key, 600) the session should live 600 more seconds: "
                                  + _ttl_hint(ttl), hint="renew the TTL on every access: EXPIRE key ttl_seconds.")
        missing = key("session", "nobody")
        got = func(r, missing, 600)
        expect(got is None, f"touch_session of a session that does not exist returned {got!r}; expected None.",
               hint="HGETALL of a missing key returns {}: return None then.")
        expect(r.exists(missing) == 0, "touch_session created a session that did not exist: an expired or "
                                       "logged-out session must stay gone.",
               hint="do not write fields on a touch; EXPIRE on a missing key does nothing, which is what you want.")
        if hidden:
            r.hset(session, mapping={"user_id": "7", "cart": "3"})
            r.expire(session, 5)
            got = func(r, session, 120)
            expect(isinstance(got, dict) and got.get("cart") == "3" and 110 <= r.ttl(session) <= 120,
                   f"touch_session(r, key, 120) on a session with 5 s left returned {got!r} and left TTL "
                   f"{r.ttl(session)}; expected its fields and about 120 s.")
            gone = key("session", "expired")
            r.hset(gone, mapping={"user_id": "9"})
            r.pexpire(gone, 50)
            time.sleep(0.1)
            got = func(r, gone, 600)
            expect(got is None and r.exists(gone) == 0,
                   f"touching a session that had just expired returned {got!r} and the key "
                   f"{'exists again' if r.exists(gone) else 'is gone'}; expected None and no key.")


# --------------------------------------------------------------------------- 06.8

@exercise("06.8", "Find and fix: an atomic fixed-window limiter", answer="allow_request")
def allow_request(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "allow_request", "allow_request(r, key, limit, window_seconds)")
    redis = _redis_module()
    r = workspace.redis
    with _scratch(workspace, "06.8") as key:
        user = key("user", 1)
        got = [func(r, user, 3, 10) for _ in range(5)]
        expect(got == [True, True, True, False, False],
               f"five requests with limit 3 per 10 s gave {got}; expected [True, True, True, False, False].")
        ttl = r.ttl(user)
        expect(0 < ttl <= 10, "the counter should expire when the 10 s window ends: " + _ttl_hint(ttl))

        # the process dies between the first and the second round trip
        dying = _client(workspace, _dying_redis_class())
        crashed = key("user", "crashed")
        try:
            try:
                func(dying, crashed, 3, 10)
            except redis.ConnectionError:
                pass
        finally:
            dying.close()
        ttl = r.ttl(crashed)
        expect(ttl != -1, "when the process died right after its first round trip, the counter was left without "
                          "a TTL (TTL -1): once that user reaches the limit they are locked out for ever, because "
                          "only a count of 1 sets the expiry.",
               hint="send INCR and EXPIRE in one round trip: a MULTI/EXEC pipeline (r.pipeline()) with "
                    "pipe.incr(key) and pipe.expire(key, window_seconds, nx=True), then pipe.execute().")

        # twenty requests at the same moment, on a slow network
        slow = _client(workspace, _slow_redis_class())
        burst = key("user", "burst")
        try:
            results = _run_together([lambda: func(slow, burst, 5, 10) for _ in range(20)], what="allow_request")
        finally:
            slow.close()
        allowed = sum(1 for x in results if x)
        expect(allowed == 5, f"twenty simultaneous requests with limit 5 let {allowed} through; expected exactly 5.",
               hint="reading the count, deciding, then writing is a race: let Redis count atomically (INCR) and "
                    "decide from the value INCR returns.")
        if hidden:
            short = key("user", "short")
            got = [func(r, short, 2, 1) for _ in range(3)]
            expect(got == [True, True, False], f"limit 2 per 1 s gave {got}; expected [True, True, False].")
            time.sleep(1.2)
            got = func(r, short, 2, 1)
            expect(got is True, f"after the 1 s window ended, the next request gave {got!r}; expected True "
                                "(a new window).")
            other = key("user", 2)
            expect(func(r, other, 1, 10) is True, "a different key is a different user: its first request should "
                                                  "be allowed.")

            # a window lasts window_seconds from its FIRST request: later requests must not push its end back
            late = key("user", "late")
            first = func(r, late, 2, 1)
            opened = time.monotonic()  # the window's clock was set before this moment
            time.sleep(0.6)
            second = func(r, late, 2, 1)
            elapsed_ms = (time.monotonic() - opened) * 1000
            pttl = r.pttl(late)  # at most 1000 - elapsed_ms if only the first request set the expiry
            # the second request set the expiry again (only decidable while the first window is still open)
            pushed_back = elapsed_ms < 900 and pttl > 1000 - elapsed_ms + 50
            time.sleep(max(0.0, 1.1 - (time.monotonic() - opened)))
            third = func(r, late, 2, 1)
            got = [first, second, third]
            if pushed_back or got != [True, True, True]:
                fail(f"limit 2 per 1 s, requests at 0 s, 0.6 s and 1.1 s gave {got}; expected [True, True, True]: "
                     "the window that opened at 0 s ends at 1 s, so the request at 1.1 s starts a new window. "
                     + (f"After the second request the counter still had {pttl} ms to live: each request set the "
                        "expiry again and pushed the end of the window back." if pushed_back else ""),
                     hint="only the first request of a window may set the expiry: "
                          "pipe.expire(key, window_seconds, nx=True) (EXPIRE ... NX).")


# --------------------------------------------------------------------------- 06.9

def _sliding_model(times: list[int], limit: int, window_ms: int) -> list[bool]:
    """The specification: a request is allowed when fewer than ``limit`` *allowed* requests fall in
    (now - window_ms, now]; denied requests are not counted."""
    allowed_at: list[int] = []
    out = []
    for now in times:
        allowed_at = [t for t in allowed_at if t > now - window_ms]
        ok = len(allowed_at) < limit
        if ok:
            allowed_at.append(now)
        out.append(ok)
    return out


def _check_sliding(func: Any, r: Any, key: str, limit: int, window_ms: int, times: list[int]) -> None:
    expected = _sliding_model(times, limit, window_ms)
    for index, now in enumerate(times):
        got = func(r, key, limit, window_ms, now)
        if bool(got) is not expected[index]:
            earlier = ", ".join(f"{t}{'' if ok else ' (denied)'}" for t, ok in zip(times[:index], expected))
            allowed_in_window = sum(1 for t, ok in zip(times[:index], expected) if ok and t > now - window_ms)
            fail(f"with limit {limit} per {window_ms} ms, after requests at {earlier or 'no earlier time'}, "
                 f"the request at now_ms={now} was {'allowed' if got else 'denied'}; expected "
                 f"{'allowed' if expected[index] else 'denied'}: {allowed_in_window} allowed request(s) fall in "
                 f"({now - window_ms}, {now}].",
                 hint="count only allowed requests: remove entries with score <= now_ms - window_ms, count what "
                      "is left, and add this request only when the count is below the limit, all in one Lua "
                      "script.")


@exercise("06.9", "A sliding window that forgives", answer="allow_sliding")
def allow_sliding(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "allow_sliding", "allow_sliding(r, key, limit, window_ms, now_ms)")
    r = workspace.redis
    with _scratch(workspace, "06.9") as key:
        _check_sliding(func, r, key("user", 1), 3, 1000, [0, 100, 200, 300, 400, 1050, 1060, 1201])
        pttl = r.pttl(key("user", 1))
        expect(0 < pttl <= 2000, f"the sorted set should expire once the window has passed; its PTTL is {pttl}.",
               hint="PEXPIRE key window_ms after each allowed request, so idle users leave no keys behind.")
        _check_sliding(func, r, key("user", 2), 3, 1000, [500, 500, 500, 500])
        slow = _client(workspace, _slow_redis_class())
        try:
            results = _run_together([lambda: func(slow, key("user", "burst"), 5, 1000, 10_000) for _ in range(20)],
                                    what="allow_sliding")
        finally:
            slow.close()
        allowed = sum(1 for x in results if x)
        expect(allowed == 5, f"twenty simultaneous requests with limit 5 let {allowed} through; expected exactly 5.",
               hint="count and add in one atomic step: a Lua script (r.register_script) runs without "
                    "interruption.")
        if hidden:
            _check_sliding(func, r, key("user", 3), 2, 500, [0, 499, 500, 998, 999, 1000, 1499, 2100, 2100, 2100])
            _check_sliding(func, r, key("user", 4), 1, 60_000, [1_000_000, 1_030_000, 1_060_001])


# --------------------------------------------------------------------------- 06.10

def _subscribers(r: Any, channel: str) -> int:
    return int(dict(r.pubsub_numsub(channel)).get(channel, 0))


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _collect(func: Any, r: Any, channel: str, n: int, timeout: float, publish: list[tuple[str, str]]) -> list[Any]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = func(r, channel, n, timeout)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="check-collect-messages")
    thread.start()
    if not _wait_for(lambda: _subscribers(r, channel) >= 1 or not thread.is_alive(), 5):
        fail("collect_messages did not subscribe to `channel` within 5 s.",
             hint="p = r.pubsub(); p.subscribe(channel), then read with p.get_message(timeout=...).")
    if "error" in box:
        raise box["error"]
    expect(_subscribers(r, channel) >= 1, "collect_messages returned without ever subscribing to `channel`.")
    for where, payload in publish:
        r.publish(where, payload)
    thread.join(timeout + 5)
    if thread.is_alive():
        fail(f"collect_messages(r, channel, {n}, timeout={timeout}) did not return within {timeout + 5:.0f} s.",
             hint="stop after n messages, or when `timeout` seconds have passed since you subscribed.")
    if "error" in box:
        raise box["error"]
    expect(_wait_for(lambda: _subscribers(r, channel) == 0, 3),
           "after collect_messages returned, its connection is still subscribed to `channel`.",
           hint="close the PubSub object when you are done: `with r.pubsub() as p:` does it for you.")
    return box.get("result")


@exercise("06.10", "Collect pub/sub messages", answer="collect_messages")
def collect_messages(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "collect_messages", "collect_messages(r, channel, n, timeout)")
    r = workspace.redis
    with _scratch(workspace, "06.10") as key:
        channel, other = key("channel", "news"), key("channel", "other")
        messages = ['{"order_id": 1, "event": "paid"}', "second", "third", "fourth"]
        got = _collect(func, r, channel, 3, 5.0, [(other, "not for you")] + [(channel, m) for m in messages])
        expect(got == messages[:3], f"collect_messages(r, channel, 3, 5.0) returned {got!r}; expected the first three "
                                    f"messages published on the channel, {messages[:3]!r}.",
               hint="keep only messages whose type is 'message' and return their 'data', in order.")
        if hidden:
            start = time.monotonic()
            got = _collect(func, r, channel, 3, 0.5, [(channel, "only one"), (other, "ignored")])
            elapsed = time.monotonic() - start
            expect(got == ["only one"], f"with one message published and timeout=0.5, collect_messages returned "
                                        f"{got!r}; expected ['only one'].",
                   hint="when the timeout passes, return the messages received so far.")
            expect(elapsed < 3, f"collect_messages with timeout=0.5 took {elapsed:.1f} s to give up.")
            got = _collect(func, r, channel, 1, 5.0, [(channel, "42"), (channel, "43")])
            expect(got == ["42"], f"collect_messages(r, channel, 1, 5.0) returned {got!r}; expected ['42'] "
                                  "(strings, as published).")


# --------------------------------------------------------------------------- 06.11

def _sales_key(workspace: Any) -> str:
    return workspace.key("sales", "units_by_product")


def _check_top(func: Any, workspace: Any, conn: Any, n: int) -> None:
    r = workspace.redis
    got = func(r, n)
    call = f"top_sellers(r, {n})"
    expect(isinstance(got, (list, tuple)), f"{call} returned {type(got).__name__}; expected a list of tuples.")
    got = [tuple(row) if isinstance(row, (list, tuple)) else row for row in got]
    ranking = r.zrevrange(_sales_key(workspace), 0, -1, withscores=True)
    units_of = {int(member): int(score) for member, score in ranking}
    expected_units = [int(score) for _, score in ranking[:n]]
    expect(len(got) == len(expected_units), f"{call} returned {len(got)} row(s); expected {len(expected_units)}.",
           hint=("ZREVRANGE's stop index is inclusive (0 .. n-1); with n = 0 that is -1, which means 'the last "
                 "element': return [] for n = 0.") if n == 0 else "ZREVRANGE's stop index is inclusive: 0 .. n-1.")
    names = {row["product_id"]: row["name"] for row in conn.execute("SELECT product_id, name FROM products")}
    for index, row in enumerate(got, start=1):
        expect(isinstance(row, tuple) and len(row) == 4,
               f"row {index} of {call} is {row!r}; expected a tuple (rank, product_id, name, units).")
        rank, product_id, name, units = row
        expect(rank == index, f"row {index} of {call} has rank {rank!r}; expected {index} (ranks start at 1).",
               hint="ZREVRANK and positions count from 0: add 1.")
        expect(isinstance(product_id, int) and not isinstance(product_id, bool),
               f"row {index}: product_id is {product_id!r} ({type(product_id).__name__}); expected an int.",
               hint="sorted-set members come back as strings: int(member).")
        expect(isinstance(units, int) and not isinstance(units, bool),
               f"row {index}: units is {units!r} ({type(units).__name__}); expected an int.",
               hint="scores come back as floats: int(score).")
        expect(product_id in units_of and units == units_of[product_id],
               f"row {index}: product {product_id} has {units} units in your answer; the sorted set says "
               f"{units_of.get(product_id)}.")
        expect(name == names.get(product_id), f"row {index}: product {product_id} is called {name!r} in your "
                                              f"answer; expected {names.get(product_id)!r}.",
               hint="read the name from the product's hash: HGET product:<id> name.")
    got_units = [row[3] for row in got]
    expect(got_units == expected_units, f"{call} lists units {got_units}; expected {expected_units} (best first).",
           hint="ZREVRANGE key 0 n-1 WITHSCORES gives the highest scores first.")


def _check_standing(func: Any, workspace: Any, product_id: int) -> None:
    r = workspace.redis
    sales = _sales_key(workspace)
    rank = r.zrevrank(sales, product_id)
    expected = None if rank is None else (rank + 1, int(r.zscore(sales, product_id)))
    call = f"product_standing(r, {product_id})"
    try:
        got = func(r, product_id)
    except TypeError as exc:
        if expected is None:
            fail(f"{call} raised TypeError ({exc}) for a product that is not on the board.",
                 hint="ZREVRANK and ZSCORE return None for a missing member: return None then, before any int().")
        raise
    if expected is None:
        expect(got is None, f"{call} returned {got!r} for a product that is not on the board; expected None.",
               hint="ZREVRANK returns None for a missing member: return None then.")
        return
    expect(isinstance(got, (tuple, list)) and len(got) == 2,
           f"{call} returned {got!r}; expected a tuple (rank, units).")
    got_rank, got_units = got
    expect(isinstance(got_rank, int) and isinstance(got_units, int)
           and not isinstance(got_rank, bool) and not isinstance(got_units, bool),
           f"{call} returned {tuple(got)!r}; expected two ints (ZSCORE returns a float: int() it).")
    expect(got_units == expected[1], f"{call} says {got_units} units; the board says {expected[1]}.",
           hint="ZSCORE key member gives the member's score.")
    expect(got_rank == expected[0], f"{call} says rank {got_rank}; expected {expected[0]}"
                                    + (" (ranks start at 1)." if got_rank == expected[0] - 1 else "."),
           hint="ZREVRANK counts from 0 at the highest score: add 1. (ZRANK counts from the lowest.)")


@exercise("06.11", "Top sellers from the leaderboard", answer="top_sellers")
def top_sellers(func: Any, standing: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "top_sellers", "top_sellers(r, n)")
    _callable(standing, "product_standing", "product_standing(r, product_id)")
    r = workspace.redis
    sales = _sales_key(workspace)
    with _pg_dict(workspace) as conn:
        _check_top(func, workspace, conn, 5)
        ranking = [int(m) for m in r.zrevrange(sales, 0, -1)]
        _check_standing(standing, workspace, ranking[0])
        _check_standing(standing, workspace, ranking[len(ranking) // 2])
        if hidden:
            last = r.zrange(sales, 0, 0)[0]  # the worst seller becomes the best for a moment
            try:
                r.zincrby(sales, 100_000, last)
                _check_top(func, workspace, conn, 3)
                _check_standing(standing, workspace, int(last))
                _check_standing(standing, workspace, ranking[0])  # now second
            finally:
                r.zincrby(sales, -100_000, last)
            _check_top(func, workspace, conn, 1)
            _check_top(func, workspace, conn, 0)
            _check_standing(standing, workspace, ranking[-1])
            missing = max(ranking) + 1000
            _check_standing(standing, workspace, missing)


# --------------------------------------------------------------------------- 06.12

def _order_status(workspace: Any, order_id: int) -> str:
    with workspace.connect_postgres() as conn:
        return conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]


def _set_status(workspace: Any, order_id: int, status: str) -> None:
    with workspace.connect_postgres(autocommit=True) as conn:
        conn.execute("UPDATE orders SET status = %s WHERE order_id = %s", (status, order_id))


@exercise("06.12", "A payment behind a lock", answer="pay_order")
def pay_order(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "pay_order", "pay_order(r, conn, lock_key, order_id, charge)")
    r = workspace.redis
    with workspace.connect_postgres() as conn:
        pending = [row[0] for row in conn.execute(
            "SELECT order_id FROM orders WHERE status = 'pending' ORDER BY order_id DESC LIMIT 2")]
    expect(len(pending) == 2, "the check needs pending orders, and the shop has none left.",
           hint="run the setup cell again to reload the shop.")
    order_id = pending[1] if hidden else pending[0]
    with _scratch(workspace, "06.12") as key:
        lock_key = key("lock", "order", order_id)
        charges: list[int] = []

        def charge(oid: int) -> None:
            time.sleep(0.3)  # the card network is slow: plenty of time for a second worker to arrive
            charges.append(oid)

        def worker() -> Any:
            with workspace.connect_postgres() as own:
                return func(r, own, lock_key, order_id, charge)

        try:
            results = _run_together([worker, worker], what="pay_order")
            expect(len(charges) <= 1, f"two workers paying order {order_id} at the same moment charged the card "
                                      f"{len(charges)} times.",
                   hint="take the lock before reading the order: lock = r.lock(lock_key, timeout=10); "
                        "if not lock.acquire(blocking=False): return 'busy'.")
            expect(len(charges) == 1, f"two workers paying order {order_id} returned {sorted(map(str, results))} and "
                                      "never charged the card.")
            expect(sorted(map(str, results)) in (["busy", "paid"], ["already paid", "paid"]),
                   f"the two workers returned {sorted(map(str, results))}; expected one 'paid' and one 'busy' "
                   "(or 'already paid' if it waited for the lock).")
            status = _order_status(workspace, order_id)
            expect(status == "paid", f"after a successful payment order {order_id} has status {status!r}; "
                                     "expected 'paid'.", hint="UPDATE orders SET status = 'paid' ... and commit.")
            expect(r.exists(lock_key) == 0, "the lock key still exists after both workers returned: the lock was "
                                            "not released.", hint="release it in a `finally:` block.")
            with workspace.connect_postgres() as own:
                again = func(r, own, lock_key, order_id, charge)
            expect(again == "already paid" and len(charges) == 1,
                   f"paying order {order_id} again returned {again!r} and charged {len(charges) - 1} more time(s); "
                   "expected 'already paid' and no charge.",
                   hint="inside the lock, read the order's status and return 'already paid' when it is 'paid'.")
            if hidden:
                _set_status(workspace, order_id, "pending")

                def declined(oid: int) -> None:
                    raise RuntimeError("card declined")

                with workspace.connect_postgres() as own:
                    try:
                        outcome = func(r, own, lock_key, order_id, declined)
                    except RuntimeError:
                        outcome = "raised"
                expect(outcome == "raised", f"when charge() raised 'card declined', pay_order returned {outcome!r}; "
                                            "expected the exception to propagate.")
                expect(r.exists(lock_key) == 0, "after charge() raised, the lock was still held.",
                       hint="release the lock in a `finally:` block, so an error cannot leave it behind.")
                status = _order_status(workspace, order_id)
                expect(status == "pending", f"after a declined card the order's status is {status!r}; expected "
                                            "'pending' (unchanged).", hint="update the status after charge() returns.")
                with workspace.connect_postgres() as own:
                    outcome = func(r, own, lock_key, order_id, charge)
                expect(outcome == "paid" and len(charges) == 2,
                       f"paying again after the declined card returned {outcome!r}; expected 'paid'.")
        finally:
            _set_status(workspace, order_id, "pending")


# --------------------------------------------------------------------------- 06.13

@exercise("06.13", "A reliable queue worker", answer="process_one")
def process_one(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    _callable(func, "process_one", "process_one(r, queue, processing, handler, timeout)")
    r = workspace.redis
    with _scratch(workspace, "06.13") as key:
        queue, processing = key("queue"), key("queue", "processing")
        jobs = [json.dumps({"order_id": i}) for i in (101, 102, 103)]
        for job in jobs:
            r.lpush(queue, job)  # the producer pushes on the left: the oldest job is on the right
        handled: list[str] = []
        for expected in jobs:
            got = func(r, queue, processing, handled.append, 1.0)
            expect(got == expected, f"process_one returned {got!r}; expected the oldest job, {expected!r}.",
                   hint="jobs are LPUSHed: take from the RIGHT end, e.g. r.blmove(queue, processing, timeout, "
                        "'RIGHT', 'LEFT').")
            left = r.lrange(processing, 0, -1)
            expect(left == [], f"after the job was handled, the processing list still holds {left!r}.",
                   hint="acknowledge a finished job: r.lrem(processing, 1, job).")
        expect(handled == jobs, f"the handler was called with {handled!r}; expected {jobs!r}, oldest first.")
        start = time.monotonic()
        got = func(r, queue, processing, handled.append, 0.3)
        expect(got is None and time.monotonic() - start < 3,
               f"with an empty queue process_one returned {got!r}; expected None after `timeout` seconds.",
               hint="BLMOVE returns None when the timeout passes.")

        def broken(job: str) -> None:
            raise ValueError("the mail server is down")

        r.lpush(queue, jobs[0])
        try:
            func(r, queue, processing, broken, 1.0)
        except ValueError:
            pass
        else:
            fail("when the handler raised ValueError, process_one did not let the exception propagate.")
        left = r.lrange(processing, 0, -1)
        expect(left == [jobs[0]] and r.llen(queue) == 0,
               f"after the handler failed, the processing list holds {left!r} and the queue {r.llen(queue)} job(s); "
               f"expected the job to wait in the processing list, [{jobs[0]!r}].",
               hint="move the job to the processing list first (BLMOVE) and remove it only after the handler "
                    "succeeded.")
        if hidden:
            r.delete(processing)
            twin = json.dumps({"order_id": 7})
            r.lpush(processing, twin)  # an identical job still being processed by another worker
            r.lpush(queue, twin)
            got = func(r, queue, processing, handled.append, 1.0)
            left = r.lrange(processing, 0, -1)
            expect(got == twin and left == [twin],
                   f"with an identical job already in the processing list, acknowledging one left {left!r}; "
                   f"expected the other worker's copy to stay ([{twin!r}]).",
                   hint="LREM's count says how many copies to remove: 1, not 0 (0 removes them all).")
