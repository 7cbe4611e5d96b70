"""Chapter 06 checks: each accepts a correct answer and rejects typical wrong ones with the right feedback.

Runs against the real Redis and PostgreSQL servers, in a namespace of its own.
"""

from __future__ import annotations

import functools
import json
import secrets
import shutil
import time
from decimal import Decimal

import pytest
import redis

import dbcourse
from dbcourse import namespaces
from dbcourse.checks import NotAnswered
from dbcourse.checks import ch06 as check

from .conftest import rejects


@pytest.fixture(scope="module")
def ws():
    workspace = dbcourse.setup("06-redis", namespace="test_ch06_checks", quiet=True)
    yield workspace
    leftovers = list(workspace.redis.scan_iter(match=workspace.key("check", "*")))
    workspace.close()
    namespaces.drop_redis(workspace.namespace)
    namespaces.drop_postgres(workspace.namespace)
    shutil.rmtree(namespaces.sqlite_dir(workspace.namespace), ignore_errors=True)
    assert leftovers == [], "checks must delete their scratch keys"


# --------------------------------------------------------------------------- answers that pass

def product_card_for(ws):
    def product_card(r, product_id):
        fields = r.hgetall(ws.key("product", product_id))
        if not fields:
            return None
        return {"name": fields["name"], "price": Decimal(fields["price"]), "stock": int(fields["stock"]),
                "category": fields["category"]}
    return product_card


def connect(url):
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, decode_responses=True,
                                                                             max_connections=4))


def wished_in_category_for(ws):
    def wished_in_category(r, user_id, category_id):
        return sorted(int(m) for m in r.sinter(ws.key("wishlist", "user", user_id),
                                               ws.key("category", category_id, "products")))
    return wished_in_category


def product_standing_for(ws):
    def product_standing(r, product_id):
        rank = r.zrevrank(ws.key("sales", "units_by_product"), product_id)
        return None if rank is None else (rank + 1, int(r.zscore(ws.key("sales", "units_by_product"), product_id)))
    return product_standing


def remember(r, key, value, ttl_seconds):
    r.set(key, json.dumps(value), ex=ttl_seconds)


def recall(r, key, default=None):
    raw = r.get(key)
    return default if raw is None else json.loads(raw)


def transfer(r, src, dst, amount):
    with r.pipeline() as pipe:
        while True:
            try:
                pipe.watch(src, dst)
                if int(pipe.get(src) or 0) < amount:
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.decrby(src, amount)
                pipe.incrby(dst, amount)
                pipe.execute()
                return True
            except redis.WatchError:
                continue


def get_or_set(r, key, loader, ttl_seconds):
    cached = r.get(key)
    if cached is not None:
        return json.loads(cached)
    value = loader()
    r.set(key, json.dumps(value), ex=ttl_seconds)
    return value


def update_price(conn, r, key, product_id, new_price):
    with conn.transaction():
        conn.execute("UPDATE products SET price = %s WHERE product_id = %s", (new_price, product_id))
    r.delete(key)


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


def touch_session(r, key, ttl_seconds):
    with r.pipeline() as pipe:
        pipe.hgetall(key)
        pipe.expire(key, ttl_seconds)
        fields, _ = pipe.execute()
    return fields or None


def allow_request(r, key, limit, window_seconds):
    with r.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, window_seconds, nx=True)
        count, _ = pipe.execute()
    return count <= limit


SLIDING = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def allow_sliding(r, key, limit, window_ms, now_ms):
    return r.register_script(SLIDING)(keys=[key], args=[now_ms, window_ms, limit,
                                                        f"{now_ms}-{secrets.token_hex(8)}"]) == 1


def collect_messages(r, channel, n, timeout):
    messages, deadline = [], time.monotonic() + timeout
    with r.pubsub(ignore_subscribe_messages=True) as p:
        p.subscribe(channel)
        while len(messages) < n and time.monotonic() < deadline:
            message = p.get_message(timeout=0.05)
            if message and message["type"] == "message":
                messages.append(message["data"])
    return messages


def top_sellers_for(ws):
    def top_sellers(r, n):
        if n <= 0:
            return []
        top = r.zrevrange(ws.key("sales", "units_by_product"), 0, n - 1, withscores=True)
        names = [r.hget(ws.key("product", m), "name") for m, _ in top]
        return [(i, int(m), name, int(s)) for i, ((m, s), name) in enumerate(zip(top, names), start=1)]
    return top_sellers


def pay_order(r, conn, lock_key, order_id, charge):
    lock = r.lock(lock_key, timeout=10)
    if not lock.acquire(blocking=False):
        return "busy"
    try:
        with conn.transaction():
            status = conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]
            if status == "paid":
                return "already paid"
            charge(order_id)
            conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = %s", (order_id,))
        return "paid"
    finally:
        lock.release()


def process_one(r, queue, processing, handler, timeout):
    job = r.blmove(queue, processing, timeout, "RIGHT", "LEFT")
    if job is None:
        return None
    handler(job)
    r.lrem(processing, 1, job)
    return job


# --------------------------------------------------------------------------- 06.1

def test_product_card(ws):
    good, wished = product_card_for(ws), wished_in_category_for(ws)
    check.product_card(good, connect, wished, ws)
    check.product_card(good, connect, wished, ws, hidden=True)
    with pytest.raises(NotAnswered):
        check.product_card(None, connect, wished, ws)

    def strings(r, product_id):
        fields = r.hgetall(ws.key("product", product_id))
        return {k: fields[k] for k in ("name", "price", "stock", "category")} if fields else None

    rejects(check.product_card, strings, connect, wished, ws,
            pattern=r"\['price'\] is '.*' \(str\); expected a decimal.Decimal")

    def empty_dict(r, product_id):
        card = good(r, product_id)
        return card if card is not None else {}

    rejects(check.product_card, empty_dict, connect, wished, ws,
            pattern=r"returned \{\} for a product that does not exist")
    assert list(ws.redis.scan_iter(match=ws.key("wishlist", "user", "99000*"))) == [], "the check's wish lists stay"


def test_connect_and_sets(ws):
    good, wished = product_card_for(ws), wished_in_category_for(ws)

    def plain_pool(url):  # the default pool: it fails instead of waiting when all connections are busy
        return redis.Redis.from_url(url, decode_responses=True, max_connections=4)

    def bytes_client(url):
        return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, max_connections=4))

    def unbounded(url):
        return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, decode_responses=True))

    def fixed_url(url):  # ignores its argument
        return connect(check._redis_url(ws))

    rejects(check.product_card, good, plain_pool, wished, ws, pattern=r"from a ConnectionPool; expected a Blocking")
    rejects(check.product_card, good, bytes_client, wished, ws, pattern=r"returns bytes, not text")
    rejects(check.product_card, good, unbounded, wished, ws, pattern=r"allows \d+ connections; expected at most 4")
    rejects(check.product_card, good, fixed_url, wished, ws, hidden=True, pattern=r"host, port, db .*expected")

    def strings(r, user_id, category_id):
        return sorted(r.sinter(ws.key("wishlist", "user", user_id), ws.key("category", category_id, "products")))

    def whole_wishlist(r, user_id, category_id):
        return sorted(int(m) for m in r.smembers(ws.key("wishlist", "user", user_id)))

    rejects(check.product_card, good, connect, strings, ws, pattern=r"expected ints, not strings")
    rejects(check.product_card, good, connect, whole_wishlist, ws, pattern=r"r.sinter")


# --------------------------------------------------------------------------- 06.2

def test_ttl_cache(ws):
    check.ttl_cache(remember, recall, ws)
    check.ttl_cache(remember, recall, ws, hidden=True)

    def no_expiry(r, key, value, ttl_seconds):
        r.set(key, json.dumps(value))

    rejects(check.ttl_cache, no_expiry, recall, ws, pattern=r"no expiry at all \(TTL -1\)")

    def truthy_recall(r, key, default=None):
        raw = r.get(key)
        return json.loads(raw) if raw and json.loads(raw) else default

    check.ttl_cache(remember, truthy_recall, ws)  # the visible check passes...
    rejects(check.ttl_cache, remember, truthy_recall, ws, hidden=True,  # ...the hidden one does not
            pattern=r"after remember\(r, key, 0, 60\), recall\(r, key, default='DEFAULT'\) returned 'DEFAULT'")


# --------------------------------------------------------------------------- 06.3

def test_transfer(ws):
    check.transfer(transfer, ws)
    check.transfer(transfer, ws, hidden=True)

    def naive(r, src, dst, amount):
        balance = int(r.get(src) or 0)
        if balance < amount:
            return False
        r.decrby(src, amount)
        r.incrby(dst, amount)
        return True

    rejects(check.transfer, naive, ws, pattern=r"left it at -\d+: money was spent")

    def gives_up(r, src, dst, amount):
        with r.pipeline() as pipe:
            try:
                pipe.watch(src, dst)
                if int(pipe.get(src) or 0) < amount:
                    return False
                time.sleep(0.05)
                pipe.multi()
                pipe.decrby(src, amount)
                pipe.incrby(dst, amount)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    rejects(check.transfer, gives_up, ws, pattern=r"of 10 concurrent transfers of 10 succeeded.*retry")


# --------------------------------------------------------------------------- 06.4

def test_get_or_set(ws):
    check.get_or_set(get_or_set, ws)
    check.get_or_set(get_or_set, ws, hidden=True)

    def never_caches(r, key, loader, ttl_seconds):
        return loader()

    rejects(check.get_or_set, never_caches, ws, pattern="nothing was stored under `key`")

    def no_ttl(r, key, loader, ttl_seconds):
        cached = r.get(key)
        if cached is not None:
            return json.loads(cached)
        value = loader()
        r.set(key, json.dumps(value))
        return value

    rejects(check.get_or_set, no_ttl, ws, pattern=r"expire within ttl_seconds \(60 s\).*TTL -1")

    def truthy(r, key, loader, ttl_seconds):
        cached = r.get(key)
        if cached and json.loads(cached):
            return json.loads(cached)
        value = loader()
        r.set(key, json.dumps(value), ex=ttl_seconds)
        return value

    check.get_or_set(truthy, ws)
    rejects(check.get_or_set, truthy, ws, hidden=True, pattern=r"loader that returns 0, two calls .* ran the loader 2")


# --------------------------------------------------------------------------- 06.5

def test_update_price(ws):
    check.update_price(update_price, ws)
    check.update_price(update_price, ws, hidden=True)

    def delete_inside_transaction(conn, r, key, product_id, new_price):  # the bug of the exercise
        with conn.transaction():
            conn.execute("UPDATE products SET price = %s WHERE product_id = %s", (new_price, product_id))
            r.delete(key)

    rejects(check.update_price, delete_inside_transaction, ws, pattern="cached the old price")

    def forgets_cache(conn, r, key, product_id, new_price):
        with conn.transaction():
            conn.execute("UPDATE products SET price = %s WHERE product_id = %s", (new_price, product_id))

    rejects(check.update_price, forgets_cache, ws, pattern="still shows the old price .* not invalidated")

    def never_commits(conn, r, key, product_id, new_price):
        conn.execute("UPDATE products SET price = %s WHERE product_id = %s", (new_price, product_id))
        r.delete(key)

    rejects(check.update_price, never_commits, ws, pattern="the UPDATE was not committed")
    # the check put every price back
    with ws.connect_postgres() as conn:
        a = conn.execute("SELECT sum(price) FROM products").fetchone()[0]
    check.update_price(update_price, ws)
    with ws.connect_postgres() as conn:
        assert conn.execute("SELECT sum(price) FROM products").fetchone()[0] == a


# --------------------------------------------------------------------------- 06.6

def test_cached_decorator(ws):
    check.cached(cached, ws)
    check.cached(cached, ws, hidden=True)

    def no_wraps(r, prefix, ttl_seconds):
        def decorate(func):
            def wrapper(*args, **kwargs):
                return func(*args, **kwargs)
            return wrapper
        return decorate

    rejects(check.cached, no_wraps, ws, pattern=r"called 'wrapper'.*functools.wraps")

    def one_key(r, prefix, ttl_seconds):
        def decorate(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                key = f"{prefix}:{func.__name__}"
                raw = r.get(key)
                if raw is not None:
                    return json.loads(raw)
                value = func(*args, **kwargs)
                r.set(key, json.dumps(value), ex=ttl_seconds)
                return value
            return wrapper
        return decorate

    rejects(check.cached, one_key, ws, pattern="different arguments need different cache keys")

    def no_function_name(r, prefix, ttl_seconds):
        def decorate(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                key = f"{prefix}:{json.dumps([args, sorted(kwargs.items())])}"
                raw = r.get(key)
                if raw is not None:
                    return json.loads(raw)
                value = func(*args, **kwargs)
                r.set(key, json.dumps(value), ex=ttl_seconds)
                return value
            return wrapper
        return decorate

    check.cached(no_function_name, ws)
    rejects(check.cached, no_function_name, ws, hidden=True, pattern="must not share a key")


# --------------------------------------------------------------------------- 06.7

def test_touch_session(ws):
    check.touch_session(touch_session, ws)
    check.touch_session(touch_session, ws, hidden=True)

    def no_renewal(r, key, ttl_seconds):
        return r.hgetall(key) or None

    rejects(check.touch_session, no_renewal, ws, pattern="should live 600 more seconds")

    def resurrects(r, key, ttl_seconds):
        r.hset(key, "last_seen", "now")
        r.expire(key, ttl_seconds)
        fields = r.hgetall(key)
        fields.pop("last_seen")
        return fields or None

    rejects(check.touch_session, resurrects, ws, pattern="created a session that did not exist")


# --------------------------------------------------------------------------- 06.8

def test_allow_request(ws):
    check.allow_request(allow_request, ws)
    check.allow_request(allow_request, ws, hidden=True)

    def naive(r, key, limit, window_seconds):  # the code of the exercise
        count = r.incr(key)
        if count == 1:
            r.expire(key, window_seconds)
        return count <= limit

    rejects(check.allow_request, naive, ws, pattern=r"left without a TTL \(TTL -1\).*locked out for ever")

    def check_then_act(r, key, limit, window_seconds):
        if int(r.get(key) or 0) >= limit:
            return False
        with r.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds, nx=True)
            pipe.execute()
        return True

    rejects(check.allow_request, check_then_act, ws, pattern=r"limit 5 let (\d\d|[6-9]) through; expected exactly 5")

    def expire_every_time(r, key, limit, window_seconds):  # atomic, but each request pushes the window back
        with r.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds)
            count, _ = pipe.execute()
        return count <= limit

    check.allow_request(expire_every_time, ws)  # the visible check cannot tell...
    rejects(check.allow_request, expire_every_time, ws, hidden=True,  # ...the hidden one can
            pattern=r"requests at 0 s, 0.6 s and 1.1 s gave .*pushed the end of the window back.*nx=True")


# --------------------------------------------------------------------------- 06.9

def test_allow_sliding(ws):
    check.allow_sliding(allow_sliding, ws)
    check.allow_sliding(allow_sliding, ws, hidden=True)

    def counts_denied(r, key, limit, window_ms, now_ms):  # the version shown in the chapter
        with r.pipeline() as pipe:
            pipe.zremrangebyscore(key, "-inf", now_ms - window_ms)
            pipe.zadd(key, {f"{now_ms}-{secrets.token_hex(8)}": now_ms})
            pipe.zcard(key)
            pipe.pexpire(key, window_ms)
            _, _, count, _ = pipe.execute()
        return count <= limit

    rejects(check.allow_sliding, counts_denied, ws, pattern=r"request at now_ms=1050 was denied; expected allowed")

    def same_member(r, key, limit, window_ms, now_ms):
        return r.register_script(SLIDING)(keys=[key], args=[now_ms, window_ms, limit, str(now_ms)]) == 1

    rejects(check.allow_sliding, same_member, ws, pattern=r"request at now_ms=500 was allowed; expected denied")

    def not_atomic(r, key, limit, window_ms, now_ms):
        r.zremrangebyscore(key, "-inf", now_ms - window_ms)
        if r.zcard(key) >= limit:
            return False
        r.zadd(key, {f"{now_ms}-{secrets.token_hex(8)}": now_ms})
        r.pexpire(key, window_ms)
        return True

    rejects(check.allow_sliding, not_atomic, ws, pattern=r"let (\d\d|[6-9]) through; expected exactly 5")


# --------------------------------------------------------------------------- 06.10

def test_collect_messages(ws):
    check.collect_messages(collect_messages, ws)
    check.collect_messages(collect_messages, ws, hidden=True)

    def whole_messages(r, channel, n, timeout):
        out, deadline = [], time.monotonic() + timeout
        with r.pubsub() as p:
            p.subscribe(channel)
            while len(out) < n and time.monotonic() < deadline:
                message = p.get_message(timeout=0.05)
                if message:
                    out.append(message["data"])
        return out

    rejects(check.collect_messages, whole_messages, ws, pattern=r"returned \[1, .*expected the first three")

    def never_closes(r, channel, n, timeout):
        p = r.pubsub(ignore_subscribe_messages=True)
        p.subscribe(channel)
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            message = p.get_message(timeout=0.05)
            if message:
                out.append(message["data"])
        never_closes.leak = p
        return out

    try:
        rejects(check.collect_messages, never_closes, ws, pattern="still subscribed")
    finally:
        never_closes.leak.close()


# --------------------------------------------------------------------------- 06.11

def test_top_sellers(ws):
    good, standing = top_sellers_for(ws), product_standing_for(ws)
    check.top_sellers(good, standing, ws)
    check.top_sellers(good, standing, ws, hidden=True)

    def off_by_one(r, n):
        top = r.zrevrange(ws.key("sales", "units_by_product"), 0, n - 1, withscores=True)
        return [(i, int(m), r.hget(ws.key("product", m), "name"), int(s)) for i, (m, s) in enumerate(top, 1)]

    check.top_sellers(off_by_one, standing, ws)
    rejects(check.top_sellers, off_by_one, standing, ws, hidden=True,
            pattern=r"returned \d+ row\(s\); expected 0.*return \[\]")

    def string_ids(r, n):
        return [(rank, str(pid), name, units) for rank, pid, name, units in good(r, n)]

    rejects(check.top_sellers, string_ids, standing, ws, pattern=r"product_id is '\d+' \(str\); expected an int")

    def zero_based(r, n):
        return [(rank - 1, pid, name, units) for rank, pid, name, units in good(r, n)]

    rejects(check.top_sellers, zero_based, standing, ws, pattern=r"has rank 0; expected 1")


def test_product_standing(ws):
    good, standing = top_sellers_for(ws), product_standing_for(ws)
    board = ws.key("sales", "units_by_product")

    def zero_based(r, product_id):
        rank = r.zrevrank(board, product_id)
        return None if rank is None else (rank, int(r.zscore(board, product_id)))

    def ascending(r, product_id):  # ZRANK counts from the worst seller
        rank = r.zrank(board, product_id)
        return None if rank is None else (rank + 1, int(r.zscore(board, product_id)))

    def float_units(r, product_id):
        rank = r.zrevrank(board, product_id)
        return None if rank is None else (rank + 1, r.zscore(board, product_id))

    def no_none(r, product_id):  # breaks on a product that is not on the board
        return r.zrevrank(board, product_id) + 1, int(r.zscore(board, product_id))

    def zero_for_missing(r, product_id):
        rank = r.zrevrank(board, product_id)
        return (0, 0) if rank is None else (rank + 1, int(r.zscore(board, product_id)))

    rejects(check.top_sellers, good, zero_based, ws, pattern=r"says rank 0; expected 1 \(ranks start at 1\)")
    rejects(check.top_sellers, good, ascending, ws, pattern=r"says rank \d+; expected 1.*ZREVRANK")
    rejects(check.top_sellers, good, float_units, ws, pattern=r"expected two ints")
    check.top_sellers(good, no_none, ws)
    rejects(check.top_sellers, good, no_none, ws, hidden=True, pattern=r"raised TypeError .*not on the board")
    rejects(check.top_sellers, good, zero_for_missing, ws, hidden=True,
            pattern=r"returned \(0, 0\) for a product that is not on the board; expected None")


# --------------------------------------------------------------------------- 06.12

def test_pay_order(ws):
    with ws.connect_postgres() as conn:
        pending = conn.execute("SELECT count(*) FROM orders WHERE status = 'pending'").fetchone()[0]
    check.pay_order(pay_order, ws)
    check.pay_order(pay_order, ws, hidden=True)

    def no_lock(r, conn, lock_key, order_id, charge):
        with conn.transaction():
            status = conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]
            if status == "paid":
                return "already paid"
            charge(order_id)
            conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = %s", (order_id,))
        return "paid"

    rejects(check.pay_order, no_lock, ws, pattern="charged the card 2 times")

    def never_releases(r, conn, lock_key, order_id, charge):
        lock = r.lock(lock_key, timeout=10)
        if not lock.acquire(blocking=False):
            return "busy"
        with conn.transaction():
            status = conn.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()[0]
            if status == "paid":
                return "already paid"
            charge(order_id)
            conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = %s", (order_id,))
        return "paid"

    rejects(check.pay_order, never_releases, ws, pattern="the lock was not released")

    def no_status_check(r, conn, lock_key, order_id, charge):
        lock = r.lock(lock_key, timeout=10)
        if not lock.acquire(blocking=False):
            return "busy"
        try:
            charge(order_id)
            with conn.transaction():
                conn.execute("UPDATE orders SET status = 'paid' WHERE order_id = %s", (order_id,))
            return "paid"
        finally:
            lock.release()

    rejects(check.pay_order, no_status_check, ws, pattern="paying order \\d+ again returned 'paid'")
    with ws.connect_postgres() as conn:  # every order the check touched is pending again
        assert conn.execute("SELECT count(*) FROM orders WHERE status = 'pending'").fetchone()[0] == pending


# --------------------------------------------------------------------------- 06.13

def test_process_one(ws):
    check.process_one(process_one, ws)
    check.process_one(process_one, ws, hidden=True)

    def not_reliable(r, queue, processing, handler, timeout):
        item = r.brpop(queue, timeout=timeout)
        if item is None:
            return None
        handler(item[1])
        return item[1]

    rejects(check.process_one, not_reliable, ws, pattern="expected the job to wait in the processing list")

    def newest_first(r, queue, processing, handler, timeout):
        job = r.blmove(queue, processing, timeout, "LEFT", "LEFT")
        if job is None:
            return None
        handler(job)
        r.lrem(processing, 1, job)
        return job

    rejects(check.process_one, newest_first, ws, pattern="expected the oldest job")

    def removes_all_copies(r, queue, processing, handler, timeout):
        job = r.blmove(queue, processing, timeout, "RIGHT", "LEFT")
        if job is None:
            return None
        handler(job)
        r.lrem(processing, 0, job)
        return job

    check.process_one(removes_all_copies, ws)
    rejects(check.process_one, removes_all_copies, ws, hidden=True, pattern=r"LREM's count")


def test_crashes_in_threads_become_feedback(ws):
    def broken(r, src, dst, amount):
        raise KeyError("oops")

    rejects(check.transfer, broken, ws, pattern="Your answer raised KeyError")
