"""Load the shop into MongoDB (as documents modelled for MongoDB) and seed Redis.

MongoDB documents (see datasets/README.md for the shapes):

* ``orders`` embed their items (always read with the order) and keep a snapshot of the customer
  (an *extended reference*: name and country, so that listing orders needs no lookup);
* ``posts`` embed their comments and tag names; articles and videos share the collection with
  different fields (``word_count`` or ``duration_seconds``);
* ``reviews`` and ``events`` reference users and products by id: they grow without bound, so
  embedding them would make documents grow without bound too;
* ``products`` carry their category as ``{_id, name}``; money is ``Decimal128``, times are UTC.

All-or-nothing: documents go into staging collections, which are renamed over the real ones only
when every collection has loaded. Redis: one MULTI/EXEC transaction replaces the seeded keys.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

from ..errors import DatasetError

Progress = Callable[[int], None]
UTC = dt.timezone.utc
STAGING = "_load_"
BATCH = 5_000


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def _time(value: str) -> dt.datetime | None:
    return dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) if value else None


def _int(value: str) -> int | None:
    return int(value) if value != "" else None


def _money(value: str):
    from bson import Decimal128

    return Decimal128(Decimal(value))


def _without_none(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if v is not None}


def shop_documents(directory: Path) -> dict[str, Iterator[dict]]:
    """Collection name -> documents, built from the shop's CSV files."""
    users = {int(r["user_id"]): r for r in _rows(directory / "users.csv")}
    categories = {int(r["category_id"]): r for r in _rows(directory / "categories.csv")}
    products = {int(r["product_id"]): r for r in _rows(directory / "products.csv")}
    tags = {int(r["tag_id"]): r["name"] for r in _rows(directory / "tags.csv")}

    def user_docs():
        for uid, r in users.items():
            yield _without_none({
                "_id": uid, "email": r["email"], "name": r["full_name"], "country": r["country"],
                "city": r["city"] or None, "birth_year": _int(r["birth_year"]), "signup_at": _time(r["signup_at"]),
                "is_active": r["is_active"] == "1", "marketing_opt_in": r["marketing_opt_in"] == "1"})

    def category_docs():
        for cid, r in categories.items():
            yield {"_id": cid, "name": r["name"], "parent_id": _int(r["parent_id"])}

    def product_docs():
        for pid, r in products.items():
            category = categories[int(r["category_id"])]
            yield _without_none({
                "_id": pid, "sku": r["sku"], "name": r["name"],
                "category": {"_id": int(r["category_id"]), "name": category["name"]},
                "price": _money(r["price"]), "stock": int(r["stock"]), "created_at": _time(r["created_at"]),
                "attributes": json.loads(r["attributes"]) if r["attributes"] else None,
                "is_discontinued": r["is_discontinued"] == "1"})

    def order_docs():
        items_by_order: dict[int, list] = defaultdict(list)
        for r in _rows(directory / "order_items.csv"):
            pid = int(r["product_id"])
            items_by_order[int(r["order_id"])].append({
                "product_id": pid, "name": products[pid]["name"], "quantity": int(r["quantity"]),
                "unit_price": Decimal(r["unit_price"])})
        from bson import Decimal128

        for r in _rows(directory / "orders.csv"):
            oid, uid = int(r["order_id"]), int(r["user_id"])
            items = items_by_order.pop(oid, [])
            total = sum((i["quantity"] * i["unit_price"] for i in items), Decimal("0.00"))
            for item in items:
                item["unit_price"] = Decimal128(item["unit_price"])
            yield {"_id": oid, "user_id": uid,
                   "customer": {"name": users[uid]["full_name"], "country": users[uid]["country"]},
                   "ordered_at": _time(r["ordered_at"]), "status": r["status"],
                   "shipping_country": r["shipping_country"], "items": items, "total": Decimal128(total)}

    def review_docs():
        for r in _rows(directory / "reviews.csv"):
            yield _without_none({"_id": int(r["review_id"]), "product_id": int(r["product_id"]),
                                 "user_id": int(r["user_id"]), "rating": int(r["rating"]), "title": r["title"],
                                 "body": r["body"] or None, "created_at": _time(r["created_at"])})

    def post_docs():
        comments: dict[int, list] = defaultdict(list)
        for r in _rows(directory / "comments.csv"):
            comments[int(r["post_id"])].append({"_id": int(r["comment_id"]), "user_id": int(r["user_id"]),
                                                "body": r["body"], "created_at": _time(r["created_at"])})
        post_tags: dict[int, list] = defaultdict(list)
        for r in _rows(directory / "post_tags.csv"):
            post_tags[int(r["post_id"])].append(tags[int(r["tag_id"])])
        for r in _rows(directory / "posts.csv"):
            pid, author = int(r["post_id"]), int(r["author_id"])
            yield _without_none({
                "_id": pid, "kind": r["kind"], "title": r["title"], "body": r["body"],
                "author": {"_id": author, "name": users[author]["full_name"]},
                "published_at": _time(r["published_at"]), "word_count": _int(r["word_count"]),
                "duration_seconds": _int(r["duration_seconds"]), "views": int(r["views"]),
                "tags": post_tags.get(pid, []),
                "comments": sorted(comments.get(pid, []), key=lambda c: (c["created_at"], c["_id"]))})

    def event_docs():
        for r in _rows(directory / "events.csv"):
            yield _without_none({"_id": int(r["event_id"]), "user_id": _int(r["user_id"]),
                                 "session_id": r["session_id"], "type": r["event_type"],
                                 "at": _time(r["occurred_at"]), "product_id": _int(r["product_id"])})

    return {"users": user_docs(), "categories": category_docs(), "products": product_docs(),
            "orders": order_docs(), "reviews": review_docs(), "posts": post_docs(), "events": event_docs()}


def load_mongodb(directory: Path, db, progress: Progress | None = None,
                 collections: list[str] | None = None) -> dict[str, int]:
    """Load the shop into the MongoDB database ``db`` (a pymongo Database)."""
    from pymongo.errors import PyMongoError

    names = collections or ["users", "categories", "products", "orders", "reviews", "posts", "events"]
    counts: dict[str, int] = {}
    current = "(reading the CSV files)"
    try:
        documents = shop_documents(directory)
        for name in db.list_collection_names():
            if name.startswith(STAGING):
                db.drop_collection(name)
        for name in names:
            current = name
            staging = db[STAGING + name]
            batch, total = [], 0
            for doc in documents[name]:
                batch.append(doc)
                if len(batch) == BATCH:
                    staging.insert_many(batch, ordered=False)
                    total += len(batch)
                    if progress:
                        progress(len(batch))
                    batch = []
            if batch:
                staging.insert_many(batch, ordered=False)
                total += len(batch)
                if progress:
                    progress(len(batch))
            counts[name] = total
        for name in names:  # every collection loaded: swap them in
            current = name
            db[STAGING + name].rename(name, dropTarget=True)
    except (PyMongoError, ValueError, KeyError) as exc:
        for name in names:
            db.drop_collection(STAGING + name)
        raise DatasetError(f"loading {current} into MongoDB failed, nothing was changed: "
                           f"{type(exc).__name__}: {str(exc)[:300]}") from None
    return counts


# --------------------------------------------------------------------------- Redis

#: Key families the shop seeds (under the namespace prefix); reloading replaces exactly these.
REDIS_FAMILIES = ("product:", "user:", "category:", "sales:")


def redis_commands(directory: Path, prefix: str) -> Iterator[tuple]:
    """The commands that seed the shop into Redis, as tuples (command, key, *args)."""
    categories = {r["category_id"]: r["name"] for r in _rows(directory / "categories.csv")}
    for r in _rows(directory / "products.csv"):
        yield ("HSET", f"{prefix}product:{int(r['product_id'])}", "name", r["name"], "price", r["price"],
               "stock", r["stock"], "category", categories[r["category_id"]], "sku", r["sku"])
        yield ("SADD", f"{prefix}category:{r['category_id']}:products", r["product_id"])
    for r in _rows(directory / "users.csv"):
        yield ("HSET", f"{prefix}user:{int(r['user_id'])}", "name", r["full_name"], "email", r["email"].strip().lower(),
               "country", r["country"].upper())
    sold: dict[str, int] = defaultdict(int)
    for r in _rows(directory / "order_items.csv"):
        quantity = int(r["quantity"])
        if quantity <= 0:
            raise ValueError(f"order_items.csv: order item {r['order_item_id']} has quantity {quantity}")
        sold[r["product_id"]] += quantity
    for product_id, units in sold.items():
        yield ("ZADD", f"{prefix}sales:units_by_product", units, product_id)


def resp(*parts) -> bytes:
    """One command in Redis's wire protocol (RESP)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def load_redis(directory: Path, client, prefix: str, progress: Progress | None = None) -> dict[str, int]:
    """Seed the shop's keys under ``prefix``, all or nothing, at mass-insertion speed.

    Like ``redis-cli --pipe``, the commands are streamed in Redis's wire protocol without waiting
    for each reply, then an ECHO of a random marker tells when all replies are in. They are wrapped
    in MULTI/EXEC, so the old keys disappear and the new ones appear in one step. Every value is
    read and checked before anything is sent: a bad CSV raises before Redis is touched.
    """
    import redis

    try:
        commands = list(redis_commands(directory, prefix))  # parses and validates every row first
    except (KeyError, ValueError, csv.Error) as exc:
        raise DatasetError(f"seeding Redis failed, nothing was changed: {type(exc).__name__}: {exc}") from None
    marker = os.urandom(16).hex().encode()
    try:
        old = [k for k in client.scan_iter(match=prefix + "*", count=10_000)
               if k[len(prefix):].startswith(REDIS_FAMILIES)]
        chunks = [resp("MULTI")]
        chunks += [resp("UNLINK", *old[i:i + 1000]) for i in range(0, len(old), 1000)]
        chunks += [resp(*command) for command in commands]
        chunks += [resp("EXEC"), resp("ECHO", marker)]
        _pipe(client, b"".join(chunks), marker)
    except (redis.RedisError, OSError) as exc:
        raise DatasetError(f"seeding Redis failed, nothing was changed: {type(exc).__name__}: {exc}") from None
    if progress:
        progress(len(commands))
    return {"keys": len({c[1] for c in commands}), "commands": len(commands)}


def _pipe(client, payload: bytes, marker: bytes) -> None:
    """Send ``payload`` on a connection of ``client``'s pool and read replies up to the marker."""
    import redis

    connection = client.connection_pool.get_connection()
    try:
        connection.send_packed_command([payload], check_health=False)
        sock = connection._sock
        tail = b"$%d\r\n%b\r\n" % (len(marker), marker)
        received = bytearray()
        while not received.endswith(tail):
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise redis.ConnectionError("Redis closed the connection while loading")
            received += chunk
        # Replies are +OK, +QUEUED, integers and one array: any '-' reply is an error
        # (-EXECABORT when a command was refused, so nothing was applied).
        if received.startswith(b"-") or b"\r\n-" in received:
            start = received.find(b"-") if received.startswith(b"-") else received.find(b"\r\n-") + 2
            raise redis.ResponseError(received[start:received.find(b"\r\n", start)].decode(errors="replace"))
    except BaseException:
        connection.disconnect()  # the connection's state is unknown: never reuse it
        raise
    finally:
        client.connection_pool.release(connection)
