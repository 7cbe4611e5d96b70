"""Checks for chapter 05, "MongoDB from Python (PyMongo)".

Every check runs the learner's answer against the notebook's own MongoDB database and compares
what it returns or writes with a result recomputed from the data (never hard-coded). Checks that
write use scratch collections (``_check05_*``) or undo their changes in a ``finally`` block, so
the shop stays as the setup cell loaded it.
"""

from __future__ import annotations

import datetime as dt
import random
import struct
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any, Callable, Iterable

from .compare import compare_rows, fetch_rows
from .core import Chapter, expect, fail, not_answered

chapter = Chapter("05", "MongoDB")
exercise = chapter.exercise
progress = chapter.progress

UTC = dt.timezone.utc
CHECK_IDS = 990_000  # documents a check inserts into the shop get ids from here up, and are removed again


# --------------------------------------------------------------------------- helpers

def _db(workspace: Any):
    expect(workspace is not None and hasattr(workspace, "mongo_db"),
           "pass the workspace as well, for example check.find_products(in_stock_under, course).")
    return workspace.mongo_db


_CLIENTS: dict[str, Any] = {}


def _scratch(workspace: Any, name: str):
    """An empty scratch collection of the check, in the notebook's database.

    It comes from a client of the check's own with retryable writes off: the checks replay
    hundreds of single-document writes, and the course's stand-in server answers those several
    times faster without the retryable-write bookkeeping (a failed write then fails the check
    instead of being silently retried).
    """
    from ..connect import mongo_client

    db = _db(workspace)
    url = (getattr(workspace, "urls", None) or {}).get("mongodb")
    key = url or ""
    if key not in _CLIENTS:
        _CLIENTS[key] = mongo_client(url=url, retryWrites=False)
    coll = _CLIENTS[key][db.name][f"_check05_{name}"]
    coll.drop()
    return coll


def plain(value: Any) -> Any:
    """Decimal128 -> Decimal, recursively, so results compare with ordinary Python values."""
    from bson import Decimal128

    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _as_list(result: Any, name: str) -> list:
    expect(result is not None, f"`{name}` returned None: return the documents (for example list(cursor)).")
    expect(not isinstance(result, (str, bytes, dict)),
           f"`{name}` should return a list of documents, not a {type(result).__name__}.")
    try:
        return list(result)
    except TypeError:
        fail(f"`{name}` should return a list of documents, not a {type(result).__name__}.")


def _short(value: Any, limit: int = 160) -> str:
    text = repr(plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plan_summary(explain: dict) -> dict:
    """The facts of an explain() answer that matter: stages, index names, keys and docs examined.

    Works for real MongoDB (classic and slot-based engine, whose winning plan sits under
    ``queryPlan``) and for the course's stand-in.
    """
    planner = explain.get("queryPlanner", {})
    winning = planner.get("winningPlan", {})
    winning = winning.get("queryPlan", winning)
    stages, indexes, keys = [], [], []

    def walk(node: dict) -> None:
        if not isinstance(node, dict) or "stage" not in node:
            return
        stages.append(node["stage"])
        if "indexName" in node:
            indexes.append(node["indexName"])
            keys.append(dict(node.get("keyPattern", {})))
        walk(node.get("inputStage"))
        for child in node.get("inputStages", []):
            walk(child)

    walk(winning)
    stats = explain.get("executionStats", {})
    return {"stages": stages, "indexes": indexes, "key_patterns": keys,
            "returned": stats.get("nReturned"), "keys_examined": stats.get("totalKeysExamined"),
            "docs_examined": stats.get("totalDocsExamined")}


def is_stand_in(client: Any) -> bool:
    """True for the course's MongoDB stand-in (SecantusDB), which answers ``hello`` as replica set ``secantus``."""
    return client.admin.command("hello").get("setName") == "secantus"


def _object_id_at(when: dt.datetime, serial: int):
    from bson import ObjectId

    rng = random.Random(serial)
    return ObjectId(struct.pack(">I", int(when.timestamp())) + bytes(rng.randrange(256) for _ in range(5))
                    + serial.to_bytes(3, "big"))


class RacingCollection:
    """A collection that simulates another client writing between the answer's read and its write.

    Every document the answer reads with ``find_one`` or ``find`` triggers ``race(doc)`` right
    after the read: an atomic update by "another client". An answer that reads, computes and
    writes back overwrites that update (a lost update); an answer that only uses update
    operators never reads, so nothing races it. Deterministic: no threads.
    """

    def __init__(self, collection, race: Callable[[dict], None]):
        self._collection, self._race = collection, race

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def __getitem__(self, name: str) -> Any:
        return self._collection[name]

    def find_one(self, *args: Any, **kwargs: Any):
        doc = self._collection.find_one(*args, **kwargs)
        if doc is not None:
            self._race(doc)
        return doc

    def find(self, *args: Any, **kwargs: Any):
        docs = list(self._collection.find(*args, **kwargs))
        for doc in docs:
            self._race(doc)
        return iter(docs)


# --------------------------------------------------------------------------- 05.1

@exercise("05.1", "What's inside an ObjectId", answer="created_between")
def created_between(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "created_between")
    expect(callable(func), "`created_between` should be a function created_between(collection, start, end).")
    coll = _scratch(workspace, "objectids")
    base = dt.datetime(2024, 3, 1, tzinfo=UTC)
    offsets = [-3 * 86400, -1, 0, 1, 59, 60, 3600, 86399, 86400, 10 * 86400, 31 * 86400 + 5]
    docs = [{"_id": _object_id_at(base + dt.timedelta(seconds=s), i), "n": i} for i, s in enumerate(offsets)]
    random.Random(5).shuffle(docs)
    coll.insert_many(docs)
    windows = [(base, base + dt.timedelta(days=1))]
    if hidden:
        windows += [(base - dt.timedelta(seconds=1), base + dt.timedelta(seconds=59)),  # exact edges
                    (base + dt.timedelta(days=40), base + dt.timedelta(days=41)),        # nothing there
                    (base - dt.timedelta(days=365), base + dt.timedelta(days=365))]      # everything
    try:
        for start, end in windows:
            got = _as_list(func(coll, start, end), "created_between")
            expected = sorted(d["_id"] for d in docs if start <= d["_id"].generation_time < end)
            from bson import ObjectId

            bad = [g for g in got if not isinstance(g, ObjectId)]
            expect(not bad, f"created_between should return the _id values (ObjectIds); it returned {_short(bad[:2])}.",
                   hint="collect doc['_id'] for each document found.")
            if sorted(got) != expected:
                missing = [e for e in expected if e not in got]
                extra = [g for g in got if g not in expected]
                parts = []
                if missing:
                    parts.append(f"missing an id generated at {missing[0].generation_time:%Y-%m-%d %H:%M:%S}")
                if extra:
                    parts.append(f"an id generated at {extra[0].generation_time:%Y-%m-%d %H:%M:%S} is outside")
                fail(f"For start={start:%Y-%m-%d %H:%M:%S} and end={end:%Y-%m-%d %H:%M:%S} (UTC) you returned "
                     f"{len(got)} id(s); expected {len(expected)} ({'; '.join(parts)}).",
                     hint="query {'_id': {'$gte': ObjectId.from_datetime(start), '$lt': ObjectId.from_datetime(end)}}: "
                          "start is included, end is not.")
            expect(list(got) == expected, "created_between returned the right ids, but not in ascending order.",
                   hint="sort by _id (ObjectIds sort by their timestamp first).")
    finally:
        coll.drop()


# --------------------------------------------------------------------------- 05.2

def _reference_in_stock(products, category: str, max_price: Decimal) -> list[dict]:
    from bson import Decimal128

    cursor = products.find({"category.name": category, "is_discontinued": False, "stock": {"$gt": 0},
                            "price": {"$lte": Decimal128(str(max_price))}},
                           {"_id": 0, "name": 1, "price": 1}).sort([("price", 1), ("name", 1)])
    return list(cursor)


@exercise("05.2", "Filter, project, sort", answer="in_stock_under")
def in_stock_under(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "in_stock_under")
    expect(callable(func), "`in_stock_under` should be a function in_stock_under(products, category, max_price).")
    products = _db(workspace).products
    cases = [("Hats", Decimal("100.00"))]
    temporary = []
    if hidden:
        from bson import Decimal128

        temporary = [
            {"_id": CHECK_IDS + 1, "sku": "CHK-1", "name": "Check Beanie", "category": {"_id": 0, "name": "Hats"},
             "price": Decimal128("9.99"), "stock": 0, "is_discontinued": False},
            {"_id": CHECK_IDS + 2, "sku": "CHK-2", "name": "Check Bowler", "category": {"_id": 0, "name": "Hats"},
             "price": Decimal128("9.99"), "stock": 5, "is_discontinued": True},
            {"_id": CHECK_IDS + 3, "sku": "CHK-3", "name": "Aardvark Cap", "category": {"_id": 0, "name": "Hats"},
             "price": Decimal128("24.99"), "stock": 1, "is_discontinued": False},
        ]
        products.insert_many(temporary)
        cases += [("Hats", Decimal("198.99")), ("Cameras", Decimal("400")), ("Hats", Decimal("100.00")),
                  ("No such category", Decimal("1000"))]
    try:
        for category, max_price in cases:
            got = _as_list(func(products, category, max_price), "in_stock_under")
            for doc in got:
                expect(isinstance(doc, dict), f"in_stock_under should return documents (dicts), not {_short(doc)}.")
                keys = set(doc)
                expect(keys == {"name", "price"},
                       f"each document should have exactly the fields name and price; one has {sorted(keys)}.",
                       hint="project {'_id': 0, 'name': 1, 'price': 1}: _id is included unless you exclude it.")
            expected = _reference_in_stock(products, category, max_price)
            compare_rows(fetch_rows(plain(got), ["name", "price"]), fetch_rows(plain(expected), ["name", "price"]),
                         ordered=True, what=f"in_stock_under(products, {category!r}, Decimal({str(max_price)!r}))",
                         order_hint="sort by price ascending, then by name ascending.")
    finally:
        if temporary:
            products.delete_many({"_id": {"$in": [d["_id"] for d in temporary]}})


# --------------------------------------------------------------------------- 05.3

MAX_COMMENTS = 50


@exercise("05.3", "Nested update: $push and $set", answer="add_comment")
def add_comment(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "add_comment")
    expect(callable(func), "`add_comment` should be a function add_comment(posts, post_id, comment).")
    db = _db(workspace)
    coll = _scratch(workspace, "posts")
    counts = {p["_id"]: len(p.get("comments", [])) for p in db.posts.find({}, {"comments._id": 1})}
    small = min(pid for pid, n in counts.items() if 0 < n < MAX_COMMENTS - 5)
    large = min(pid for pid, n in counts.items() if n > MAX_COMMENTS)
    originals = {p["_id"]: p for p in db.posts.find({"_id": {"$in": [small, large]}})}
    originals[small]["activity"] = {"views_today": 7}
    coll.insert_many(originals.values())
    state = {pid: {"comments": list(doc["comments"]), "activity": dict(doc.get("activity", {}))}
             for pid, doc in originals.items()}

    def apply(pid: int, comment: dict) -> bool:
        if pid not in state:
            return False
        s = state[pid]
        s["comments"] = sorted(s["comments"] + [comment], key=lambda c: c["created_at"])[-MAX_COMMENTS:]
        act = s["activity"]
        act["comment_count"] = act.get("comment_count", 0) + 1
        act["last_comment_at"] = max(act.get("last_comment_at", comment["created_at"]), comment["created_at"])
        return True

    def comment(n: int, when: dt.datetime) -> dict:
        return {"_id": CHECK_IDS + n, "user_id": 7, "body": f"Check comment {n} 👍", "created_at": when}

    newest = dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    calls = [(small, comment(1, newest)), (large, comment(2, newest))]
    if hidden:
        oldest_small = min(c["created_at"] for c in state[small]["comments"])
        calls += [(small, comment(3, oldest_small + dt.timedelta(seconds=1))),  # lands second, last time unchanged
                  (large, comment(4, dt.datetime(2000, 1, 1, tzinfo=UTC))),     # older than all 50: dropped at once
                  (123_456_789, comment(5, newest))]                           # no such post
    try:
        for pid, new in calls:
            result = func(coll, pid, dict(new))
            expected_result = apply(pid, new)
            expect(result is expected_result,
                   f"add_comment(posts, {pid}, ...) returned {result!r}; expected {expected_result}.",
                   hint="return result.modified_count == 1 (True when a post was changed, False when none has that id).")
        expect(coll.count_documents({}) == 2,
               f"the collection now holds {coll.count_documents({})} posts instead of 2: add_comment created a post.",
               hint="do not upsert here: a comment on a post that does not exist is refused (return False).")
        for pid, s in state.items():
            doc = coll.find_one({"_id": pid})
            got_ids = [c.get("_id") for c in doc.get("comments", [])]
            want_ids = [c["_id"] for c in s["comments"]]
            if got_ids != want_ids:
                if len(got_ids) != len(want_ids):
                    fail(f"post {pid} has {len(got_ids)} embedded comments; expected {len(want_ids)} (at most "
                         f"{MAX_COMMENTS}, the newest ones).",
                         hint="$push with {'$each': [comment], '$sort': {'created_at': 1}, '$slice': -50}.")
                fail(f"post {pid}'s comments are not the {MAX_COMMENTS} newest in created_at order.",
                     hint="$push with $each, $sort on created_at and $slice: -50 keeps them sorted and trimmed.")
            activity = doc.get("activity")
            expect(isinstance(activity, dict), f"post {pid} has no `activity` sub-document.",
                   hint="set nested fields with dot notation: {'$inc': {'activity.comment_count': 1}}.")
            for key, value in s["activity"].items():
                expect(key in activity, f"post {pid}: activity has no field {key!r} any more (it has {sorted(activity)}).",
                       hint="use dot notation ('activity.comment_count') so the other fields of activity stay; "
                            "{'$set': {'activity': {...}}} replaces the whole sub-document.")
                expect(activity[key] == value,
                       f"post {pid}: activity.{key} is {_short(activity[key])}; expected {_short(value)}.",
                       hint="$inc counts comments; $max keeps the newest created_at even if an older comment "
                            "arrives later.")
    finally:
        coll.drop()


# --------------------------------------------------------------------------- 05.4

@exercise("05.4", "Find and fix: the counter that never counts", answer="record_login")
def record_login(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "record_login")
    expect(callable(func), "`record_login` should be a function record_login(stats, user_id, at).")
    coll = _scratch(workspace, "login_stats")
    t0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    logins = [(1, t0), (2, t0 + dt.timedelta(minutes=5)), (1, t0 + dt.timedelta(hours=1)),
              (1, t0 + dt.timedelta(hours=2))]
    if hidden:
        coll.insert_one({"user_id": 3, "email": "kept@example.org", "login_count": 5, "last_login": t0})
        logins += [(3, t0 + dt.timedelta(days=1)),
                   (1, t0 - dt.timedelta(days=3))]  # arrives late: last_login must not go back
    try:
        for user_id, at in logins:
            func(coll, user_id, at)
        raced = 0
        if hidden:  # another client records a login between a read and a write of the answer
            def race(doc: dict) -> None:
                nonlocal raced
                if "_id" in doc:
                    raced += coll.update_one({"_id": doc["_id"]}, {"$inc": {"login_count": 1}}).modified_count

            racing = RacingCollection(coll, race)
            for i in range(3):
                func(racing, 2, t0 + dt.timedelta(minutes=10, seconds=i))
        expected: dict[int, dict] = {}
        if hidden:
            expected[3] = {"login_count": 5, "last_login": t0}
        for user_id, at in logins:
            e = expected.setdefault(user_id, {"login_count": 0, "last_login": at})
            e["login_count"] += 1
            e["last_login"] = max(e["last_login"], at)
        if hidden:
            expected[2]["login_count"] += 3 + raced
            expected[2]["last_login"] = max(expected[2]["last_login"], t0 + dt.timedelta(minutes=10, seconds=2))
        for user_id, want in expected.items():
            docs = list(coll.find({"user_id": user_id}))
            expect(docs, f"after {want['login_count']} login(s) of user {user_id} there is no stats document for "
                         "that user.",
                   hint="update_many/update_one without upsert=True changes nothing when no document matches yet.")
            expect(len(docs) == 1, f"user {user_id} has {len(docs)} stats documents; expected exactly one.",
                   hint="update the user's document (update_one with upsert=True), do not insert a new one per login.")
            doc = docs[0]
            count = doc.get("login_count")
            if isinstance(count, dict):
                fail(f"login_count of user {user_id} is {count!r}: the $inc sits inside $set, so MongoDB stored it "
                     "as a literal sub-document instead of incrementing.",
                     hint="put $inc next to $set at the top level: {'$set': {...}, '$inc': {'login_count': 1}}.")
            expect(count == want["login_count"],
                   f"user {user_id}: login_count is {count!r}; expected {want['login_count']}.",
                   hint="$inc is atomic on the server; reading the count and writing count + 1 loses the logins "
                        "other requests record in between (the hidden test simulates one).")
            expect(doc.get("last_login") == want["last_login"],
                   f"user {user_id}: last_login is {doc.get('last_login')}; expected {want['last_login']}.",
                   hint="last_login is the latest login seen: $max keeps it from going back in time when an older "
                        "login is recorded late.")
            if hidden and user_id == 3:
                expect(doc.get("email") == "kept@example.org",
                       "the other fields of an existing stats document were lost (user 3's email is gone).",
                       hint="use update operators, not replace_one: they change only the fields they name.")
    finally:
        coll.drop()


# --------------------------------------------------------------------------- 05.5

JUNE_2026 = {"$gte": dt.datetime(2026, 6, 1, tzinfo=UTC), "$lt": dt.datetime(2026, 7, 1, tzinfo=UTC)}
REVENUE_REFERENCE = [
    {"$match": {"ordered_at": JUNE_2026, "status": {"$nin": ["cancelled", "refunded"]}}},
    {"$unwind": "$items"},
    {"$group": {"_id": "$items.product_id",
                "revenue": {"$sum": {"$multiply": ["$items.quantity", "$items.unit_price"]}},
                "units": {"$sum": "$items.quantity"}}},
    {"$lookup": {"from": "products", "localField": "_id", "foreignField": "_id", "as": "product"}},
    {"$unwind": "$product"},
    {"$group": {"_id": "$product.category.name", "revenue": {"$sum": "$revenue"}, "units": {"$sum": "$units"}}},
    {"$sort": {"revenue": -1, "_id": 1}},
    {"$limit": 5},
    {"$project": {"_id": 0, "category": "$_id", "revenue": 1, "units": 1}},
]


def _run_pipeline(coll, pipeline: Any, name: str) -> list[dict]:
    from pymongo.errors import PyMongoError

    expect(isinstance(pipeline, list) and all(isinstance(s, dict) for s in pipeline),
           f"`{name}` should be a list of stages (dicts), such as [{{'$match': ...}}, {{'$group': ...}}].")
    try:
        return list(coll.aggregate(pipeline))
    except PyMongoError as exc:
        fail(f"MongoDB refused your pipeline: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
             hint="run it on its own (list(db.orders.aggregate(pipeline))) and look at the stage it names.")


@exercise("05.5", "Aggregation: revenue by category", answer="revenue_pipeline")
def revenue_by_category(pipeline: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(pipeline, "revenue_pipeline")
    db = _db(workspace)
    orders = db.orders

    def compare() -> None:
        got = _run_pipeline(orders, pipeline, "revenue_pipeline")
        for doc in got:
            expect(set(doc) == {"category", "revenue", "units"},
                   f"each result should have exactly the fields category, revenue and units; one has {sorted(doc)}.",
                   hint="finish with a $project that renames _id to category and drops _id.")
            from bson import Decimal128

            expect(isinstance(doc["revenue"], Decimal128),
                   f"revenue should stay a Decimal128 (money); yours is a {type(doc['revenue']).__name__}.",
                   hint="multiply and $sum the Decimal128 unit prices as they are: no $toDouble.")
        expected = list(orders.aggregate(REVENUE_REFERENCE))
        cols = ["category", "revenue", "units"]
        compare_rows(fetch_rows(plain(got), cols), fetch_rows(plain(expected), cols), ordered=True,
                     what="Your pipeline's result", order_hint="sort by revenue descending (then category) and keep 5.")
        if not got:
            fail("your pipeline returned nothing.", hint="run it stage by stage to see where the documents go.")

    compare()
    if not hidden:
        return
    from bson import Decimal128

    small = list(orders.aggregate(REVENUE_REFERENCE[:-3] + [{"$sort": {"revenue": 1, "_id": 1}}, {"$limit": 1}]))[0]
    product = db.products.find_one({"category.name": small["_id"]}, sort=[("_id", 1)])
    item = {"product_id": product["_id"], "name": product["name"], "quantity": 5000, "unit_price": product["price"]}
    extra = [
        {"_id": CHECK_IDS + 1, "user_id": 1, "customer": {"name": "Check", "country": "US"}, "status": "paid",
         "ordered_at": dt.datetime(2026, 6, 30, tzinfo=UTC), "shipping_country": "US", "items": [item],
         "total": Decimal128(str(product["price"].to_decimal() * 5000))},
        {"_id": CHECK_IDS + 2, "user_id": 1, "customer": {"name": "Check", "country": "US"}, "status": "cancelled",
         "ordered_at": dt.datetime(2026, 6, 30, tzinfo=UTC), "shipping_country": "US",
         "items": [dict(item, quantity=900000)], "total": Decimal128("1")},
        {"_id": CHECK_IDS + 3, "user_id": 1, "customer": {"name": "Check", "country": "US"}, "status": "paid",
         "ordered_at": dt.datetime(2026, 6, 30, tzinfo=UTC), "shipping_country": "US", "items": [],
         "total": Decimal128("0.00")},
        {"_id": CHECK_IDS + 4, "user_id": 1, "customer": {"name": "Check", "country": "US"}, "status": "paid",
         "ordered_at": dt.datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC), "shipping_country": "US",
         "items": [dict(item, quantity=800000)], "total": Decimal128("1")},
        {"_id": CHECK_IDS + 5, "user_id": 1, "customer": {"name": "Check", "country": "US"}, "status": "paid",
         "ordered_at": dt.datetime(2026, 7, 1, tzinfo=UTC), "shipping_country": "US",
         "items": [dict(item, quantity=700000)], "total": Decimal128("1")},
    ]
    orders.insert_many(extra)
    try:
        compare()
    finally:
        orders.delete_many({"_id": {"$in": [d["_id"] for d in extra]}})


# --------------------------------------------------------------------------- 05.6

class _SubscribesMeanwhile:
    """A collection where "another request" subscribes ``email`` right after the answer's first read."""

    def __init__(self, collection, email: str):
        self._collection, self._email, self.fired = collection, email, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def _meanwhile(self) -> None:
        if not self.fired:
            self.fired = True
            self._collection.insert_one({"email": self._email, "since": dt.datetime.now(UTC)})

    def find_one(self, *args: Any, **kwargs: Any):
        doc = self._collection.find_one(*args, **kwargs)
        self._meanwhile()
        return doc

    def find(self, *args: Any, **kwargs: Any):
        docs = list(self._collection.find(*args, **kwargs))
        self._meanwhile()
        return iter(docs)

    def count_documents(self, *args: Any, **kwargs: Any) -> int:
        n = self._collection.count_documents(*args, **kwargs)
        self._meanwhile()
        return n


@exercise("05.6", "One subscription per address", answer="prepare_subscriptions")
def subscriptions(prepare: Any, subscribe: Any, unsubscribe: Any, workspace: Any = None, *,
                  hidden: bool = False) -> None:
    not_answered(prepare, "prepare_subscriptions")
    not_answered(subscribe, "subscribe")
    not_answered(unsubscribe, "unsubscribe")
    from pymongo.errors import DuplicateKeyError

    expect(callable(prepare) and callable(subscribe) and callable(unsubscribe),
           "`prepare_subscriptions`, `subscribe` and `unsubscribe` should be functions of the collection.")
    coll = _scratch(workspace, "subscriptions")
    try:
        name = prepare(coll)
        indexes = coll.index_information()
        expect(isinstance(name, str) and name in indexes,
               f"prepare_subscriptions returned {name!r}, which is not the name of an index of the collection.",
               hint="return what subscriptions.create_index(...) returns: the index's name.")
        info = indexes[name]
        expect([field for field, _ in info["key"]] == ["email"],
               f"the index {name} is on {[field for field, _ in info['key']]}; expected the field email alone.")
        expect(info.get("unique") is True, f"the index {name} on email is not unique: a second subscription of the "
                                           "same address would be stored.",
               hint="create_index('email', unique=True).")

        def call(func: Any, label: str, email: str, want: bool) -> None:
            try:
                got = func(coll, email)
            except DuplicateKeyError:
                fail(f"{label}(subscriptions, {email!r}) raised DuplicateKeyError.",
                     hint="catch pymongo.errors.DuplicateKeyError around insert_one and return False: the unique "
                          "index is telling you the address is already subscribed.")
            expect(got is want, f"{label}(subscriptions, {email!r}) returned {got!r}; expected {want}.",
                   hint={"subscribe": "True when a new subscription was stored, False when the address already "
                                      "had one (after cleaning it with strip().lower()).",
                         "unsubscribe": "return delete_one(...).deleted_count == 1, with the address cleaned "
                                        "as subscribe stores it."}[label])

        started = dt.datetime.now(UTC)
        call(subscribe, "subscribe", "ann@example.org", True)
        doc = coll.find_one({}, {"_id": 0})
        expect(doc is not None and doc.get("email") == "ann@example.org",
               f"after subscribe(subscriptions, 'ann@example.org') the collection holds {_short(doc)}; expected "
               "a document with email 'ann@example.org'.")
        since = doc.get("since")
        expect(isinstance(since, dt.datetime) and abs(since - started) < dt.timedelta(minutes=5),
               f"the subscription's since is {_short(since)}; expected the time of the subscription (UTC).",
               hint="'since': datetime.now(timezone.utc) (a timezone-aware datetime).")
        call(subscribe, "subscribe", "  Ann@Example.ORG ", False)
        call(subscribe, "subscribe", "bob@example.org", True)
        count = coll.count_documents({})
        expect(count == 2, f"after subscribing ann, Ann again (spaces, capitals) and bob, the collection holds "
                           f"{count} subscriptions; expected 2.", hint="store email.strip().lower().")
        call(unsubscribe, "unsubscribe", " BOB@example.org", True)
        call(unsubscribe, "unsubscribe", "bob@example.org", False)
        left = sorted(d["email"] for d in coll.find({}, {"email": 1}))
        expect(left == ["ann@example.org"], f"after unsubscribing bob the subscriptions are {left}; expected "
                                            "['ann@example.org'].")
        call(subscribe, "subscribe", "bob@example.org", True)  # subscribing again after leaving
        if hidden:
            call(unsubscribe, "unsubscribe", "nobody@example.org", False)
            racing = _SubscribesMeanwhile(coll, "carl@example.org")
            try:
                got = subscribe(racing, "Carl@example.org")
            except DuplicateKeyError:
                fail("subscribe raised DuplicateKeyError when another request subscribed the same address between "
                     "your check and your insert.",
                     hint="do not look first: insert, and catch DuplicateKeyError (return False). The unique index "
                          "decides, whatever other requests do at the same moment.")
            count = coll.count_documents({"email": "carl@example.org"})
            expect(count == 1, f"carl@example.org has {count} subscriptions after two requests subscribed it at "
                               "the same moment; expected 1.")
            expect(got is (not racing.fired),
                   f"subscribe returned {got!r} although another request had just subscribed the address; "
                   f"expected {not racing.fired}.")
            call(unsubscribe, "unsubscribe", "CARL@example.org", True)
            expect(coll.count_documents({}) == 2, "unsubscribe removed more than the one subscription it was asked to.")
    finally:
        coll.drop()


# --------------------------------------------------------------------------- 05.7

def purchases_query(user_id: int, since: dt.datetime) -> dict:
    return {"user_id": user_id, "type": "purchase", "at": {"$gte": since}}


@exercise("05.7", "Find and fix: the slow query", answer="create_purchase_index")
def purchase_index(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "create_purchase_index")
    expect(callable(func), "`create_purchase_index` should be a function create_purchase_index(events).")
    events = _db(workspace).events
    stand_in = is_stand_in(events.database.client)
    name = func(events)
    expect(isinstance(name, str) and name in events.index_information(),
           f"create_purchase_index returned {name!r}, which is not the name of an index on events.",
           hint="return what events.create_index([...]) returns: the index's name.")
    buyers = list(events.aggregate([{"$match": {"type": "purchase", "user_id": {"$exists": True}}},
                                    {"$group": {"_id": "$user_id", "n": {"$sum": 1}}},
                                    {"$sort": {"n": -1, "_id": 1}}, {"$limit": 3}]))
    cases = [(buyers[0]["_id"], dt.datetime(2024, 1, 1, tzinfo=UTC))]
    if hidden:
        never = events.find_one({"type": {"$ne": "purchase"}, "user_id": {"$nin": [b["_id"] for b in buyers]}},
                                sort=[("_id", 1)])
        cases += [(buyers[1]["_id"], dt.datetime(2021, 1, 1, tzinfo=UTC)),
                  (buyers[2]["_id"], dt.datetime(2026, 1, 1, tzinfo=UTC)),
                  (never["user_id"] if never else 1, dt.datetime(2022, 1, 1, tzinfo=UTC))]
    for user_id, since in cases:
        query = purchases_query(user_id, since)
        summary = plan_summary(events.find(query).sort("at", -1).explain())
        returned, docs, keys = summary["returned"], summary["docs_examined"], summary["keys_examined"]
        where = f"for user {user_id} since {since:%Y-%m-%d}"
        expect(any(s.endswith("IXSCAN") for s in summary["stages"]),
               f"{where} the query still reads the whole collection ({' <- '.join(summary['stages'])}, "
               f"{docs} documents examined to return {returned}).",
               hint="an index helps this query only if it starts with the fields the query tests for equality "
                    "(user_id and type), followed by the range field (at).")
        expect(docs == returned,
               f"{where} MongoDB used index {summary['indexes']} but examined {docs} documents to return {returned}.",
               hint="the index must contain every field the query filters on: user_id, type and at.")
        expect(keys is None or keys <= returned + 2,
               f"{where} MongoDB examined {keys} index keys to return {returned} documents.",
               hint="order the index fields by the ESR rule: Equality fields first (user_id, type), then the "
                    "Range field (at).")
        if "SORT" in summary["stages"] and not stand_in:  # the stand-in lists a SORT above every index scan
            fail(f"{where} MongoDB uses index {summary['indexes']} but still sorts the purchases in memory "
                 f"({' <- '.join(summary['stages'])}).",
                 hint="put the sort field `at` in the index right after the equality fields (user_id, type): "
                      "the index then returns the purchases already in `at` order.")


# --------------------------------------------------------------------------- 05.8

def _review_cases(db) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    real = list(db.reviews.find({}, sort=[("_id", 1)]).limit(40))
    with_body = next(r for r in real if "body" in r)
    without_body = next(r for r in real if "body" not in r)
    base = {k: v for k, v in with_body.items() if k != "_id"}
    good = [("a real review", with_body), ("a real review without a body", without_body),
            ("rating 1", dict(base, rating=1)), ("rating 5", dict(base, rating=5)),
            ("a title of 100 characters", dict(base, title="x" * 100)),
            ("a title and body with emoji", dict(base, title="Love it 😍", body="👍👍"))]
    bad = [("rating 0", dict(base, rating=0)), ("rating 6", dict(base, rating=6)),
           ("no title", {k: v for k, v in base.items() if k != "title"}),
           ("an extra field `spam`", dict(base, spam=True)),
           ("rating 4.5", dict(base, rating=4.5)), ("rating '5' (a string)", dict(base, rating="5")),
           ("an empty title", dict(base, title="")), ("a title of 101 characters", dict(base, title="x" * 101)),
           ("created_at as a string", dict(base, created_at="2026-06-30")),
           ("no user_id", {k: v for k, v in base.items() if k != "user_id"}),
           ("body as a number", dict(base, body=42)), ("product_id as a string", dict(base, product_id="245"))]
    return good, bad


@exercise("05.8", "A $jsonSchema validator", answer="review_validator")
def review_validator(validator: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(validator, "review_validator")
    from pymongo.errors import OperationFailure, WriteError

    expect(isinstance(validator, dict) and "$jsonSchema" in validator,
           "`review_validator` should be a dict of the form {'$jsonSchema': {...}}.")
    db = _db(workspace)
    coll = _scratch(workspace, "reviews")
    try:
        db.create_collection(coll.name, validator=validator, validationLevel="strict", validationAction="error")
    except OperationFailure as exc:
        fail(f"MongoDB refused the validator: {exc.details.get('errmsg', exc) if exc.details else exc}",
             hint="check the keywords: bsonType, required, properties, minimum, maximum, minLength, maxLength, "
                  "additionalProperties.")
    good, bad = _review_cases(db)
    if not hidden:
        good, bad = good[:3], bad[:4]
    try:
        for label, doc in good:
            try:
                coll.insert_one(dict(doc))
            except WriteError as exc:
                info = (exc.details or {}).get("errInfo", {})
                fail(f"your validator rejected a valid review ({label}): {_short(info, 300)}",
                     hint="body is optional; _id is a field too (list it in properties when "
                          "additionalProperties is false).")
        for label, doc in bad:
            try:
                coll.insert_one(dict(doc))
            except WriteError as exc:
                expect(exc.code == 121, f"the insert of a review with {label} failed with code {exc.code}, "
                                        "not 121 (document failed validation).")
                continue
            fail(f"your validator accepted an invalid review: one with {label}.",
                 hint="ratings are whole numbers (bsonType 'int') from 1 to 5; title is a string of 1 to 100 "
                      "characters; created_at a date; no fields beyond _id, product_id, user_id, rating, title, "
                      "body, created_at.")
    finally:
        coll.drop()


# --------------------------------------------------------------------------- 05.9

def _expected_buckets(events: Iterable[dict], max_events: int) -> list[dict]:
    open_buckets: dict[tuple, dict] = {}
    result: list[dict] = []
    for e in events:
        key = (e["user_id"], e["at"].astimezone(UTC).strftime("%Y-%m-%d"))
        bucket = open_buckets.get(key)
        if bucket is None or bucket["count"] >= max_events:
            bucket = {"user_id": key[0], "day": key[1], "count": 0, "by_type": Counter(), "events": []}
            open_buckets[key] = bucket
            result.append(bucket)
        bucket["count"] += 1
        bucket["by_type"][e["type"]] += 1
        bucket["events"].append({"type": e["type"], "at": e["at"]})
    for b in result:
        b["by_type"] = dict(b["by_type"])
    return result


@exercise("05.9", "The bucket pattern", answer="add_to_bucket")
def add_to_bucket(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "add_to_bucket")
    expect(callable(func), "`add_to_bucket` should be a function add_to_bucket(buckets, event, max_events=100).")
    db = _db(workspace)
    top = [r["_id"] for r in db.events.aggregate([
        {"$match": {"user_id": {"$exists": True}}}, {"$group": {"_id": "$user_id", "n": {"$sum": 1}}},
        {"$sort": {"n": -1, "_id": 1}}, {"$limit": 2}])]
    runs: list[tuple[list[dict], int]] = []
    real = list(db.events.find({"user_id": {"$in": top}}).sort([("at", 1), ("_id", 1)]))
    runs.append((real, 100))
    if hidden:
        day = dt.datetime(2026, 6, 15, 9, 0, tzinfo=UTC)
        burst = [{"_id": CHECK_IDS + i, "user_id": 77, "session_id": "chk", "type": ("page_view", "search")[i % 2],
                  "at": day + dt.timedelta(seconds=i)} for i in range(23)]
        shuffled = list(real)
        random.Random(3).shuffle(shuffled)
        runs += [(burst, 5), (shuffled, 100)]
    for events, max_events in runs:
        coll = _scratch(workspace, "buckets")
        try:
            for event in events:
                func(coll, dict(event), max_events) if max_events != 100 else func(coll, dict(event))
            expected = _expected_buckets(events, max_events)
            got = list(coll.find({}, {"_id": 0}))

            def key(b: dict):
                first = min((e.get("at") for e in b.get("events", []) if isinstance(e, dict) and e.get("at")),
                            default=dt.datetime.min.replace(tzinfo=UTC))
                return (str(b.get("user_id")), str(b.get("day")), first)

            got.sort(key=key)
            expected.sort(key=key)
            expect(len(got) == len(expected),
                   f"{len(events)} events (max {max_events} per bucket) made {len(got)} bucket documents; "
                   f"expected {len(expected)}.",
                   hint="filter on {'user_id': ..., 'day': ..., 'count': {'$lt': max_events}} with upsert=True: "
                        "a full bucket no longer matches, so the upsert starts a new one.")
            for g, e in zip(got, expected):
                where = f"the bucket of user {e['user_id']} on {e['day']}"
                for field in ("user_id", "day", "count"):
                    expect(g.get(field) == e[field], f"{where}: {field} is {_short(g.get(field))}; expected {e[field]!r}.",
                           hint="day is the event's UTC date as 'YYYY-MM-DD'; count is $inc'ed by 1 per event.")
                expect(g.get("by_type") == e["by_type"],
                       f"{where}: by_type is {_short(g.get('by_type'))}; expected {e['by_type']}.",
                       hint="$inc a counter per type with dot notation: {'$inc': {f'by_type.{event[\"type\"]}': 1}}.")
                got_events = [{k: ev.get(k) for k in ("type", "at")} for ev in g.get("events", [])]
                if got_events != e["events"]:
                    fail(f"{where}: the embedded events differ (got {len(got_events)}, expected {len(e['events'])}).",
                         hint="$push {'type': ..., 'at': ...} for each event, in the order the events arrive.")
        finally:
            coll.drop()


# --------------------------------------------------------------------------- 05.10

def _has_text_indexes(workspace: Any) -> bool:
    """Try to create a text index on an empty scratch collection: the stand-in refuses (code 67)."""
    from pymongo.errors import OperationFailure

    probe = _scratch(workspace, "text_probe")
    try:
        probe.create_index([("t", "text")])
        return True
    except OperationFailure as exc:
        if exc.code != 67:
            raise
        return False
    finally:
        probe.drop()


@exercise("05.10", "Search one kind of post", answer="kind_search")
def kind_search(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "kind_search")
    from pymongo.errors import PyMongoError

    expect(callable(func), "`kind_search` should be a function kind_search(words, kind) that returns a filter.")
    db = _db(workspace)
    cases = [("sharding replicas", "video")]
    if hidden:
        cases += [("redis caching", "article"), ("pagination", "video"), ("indexes", "article"),
                  ("zebra xylophone", "article")]
    text = _has_text_indexes(workspace)
    copy = None
    if text:  # real MongoDB: search a copy of the posts with the text index of section 5
        copy = _scratch(workspace, "posts_text")
        copy.insert_many(db.posts.find({}, {"title": 1, "body": 1, "kind": 1, "published_at": 1}))
        copy.create_index([("title", "text"), ("body", "text")], weights={"title": 3})
    try:
        for words, kind in cases:
            call = f"kind_search({words!r}, {kind!r})"
            got = func(words, kind)
            expect(isinstance(got, dict), f"{call} returned {type(got).__name__}; expected a filter (a dict).")
            expect("$text" in got, f"{call} returned {_short(got)}, which does not use the text index.",
                   hint="a text search is a top-level {'$text': {'$search': words}} in the filter "
                        "($regex cannot use the text index).")
            search = got["$text"]
            expect(isinstance(search, dict) and search.get("$search") == words,
                   f"in {call} the $text part is {_short(search)}; expected {{'$search': {words!r}}}.",
                   hint="pass the words through as they are: MongoDB splits them, drops stop words and stems them.")
            rest = {k: v for k, v in got.items() if k != "$text"}
            reference = {"kind": kind, "published_at": {"$exists": True}}
            try:
                got_ids = sorted(d["_id"] for d in db.posts.find(rest, {"_id": 1}))
            except PyMongoError as exc:
                fail(f"MongoDB refused the rest of your filter ({_short(rest)}): {str(exc).splitlines()[0][:200]}")
            want_ids = sorted(d["_id"] for d in db.posts.find(reference, {"_id": 1}))
            expect(got_ids == want_ids,
                   f"without its $text part, the filter of {call} matches {len(got_ids)} posts; the published "
                   f"posts of kind {kind!r} are {len(want_ids)}.",
                   hint="next to $text, require the kind ({'kind': kind}) and a publication date "
                        "({'published_at': {'$exists': True}}): drafts have none.")
            if copy is not None:
                try:
                    found = sorted(d["_id"] for d in copy.find(got, {"_id": 1}))
                except PyMongoError as exc:
                    fail(f"MongoDB refused the filter of {call}: {str(exc).splitlines()[0][:200]}")
                expected = sorted(d["_id"] for d in copy.find({"$text": {"$search": words}, **reference}, {"_id": 1}))
                expect(found == expected, f"{call} finds {len(found)} posts; the text search finds {len(expected)}.")
        if not text and not hidden:
            print("(This server has no text indexes: the check ran the kind and publication parts of your filter and "
                  "checked its $text part by its shape.)")
    finally:
        if copy is not None:
            copy.drop()


# --------------------------------------------------------------------------- 05.11

@exercise("05.11", "A multi-document transaction", answer="place_order")
def place_order(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "place_order")
    expect(callable(func), "`place_order` should be a function place_order(client, db, order_id, user_id, items).")
    db, client = _db(workspace), workspace.mongo_client
    products = list(db.products.find({"stock": {"$gte": 10}}, sort=[("_id", 1)]).limit(3))
    ids = [p["_id"] for p in products]
    stock = {p["_id"]: p["stock"] for p in products}
    user = db.users.find_one({"_id": 2})
    first_id = CHECK_IDS + 11

    def stocks() -> dict:
        return {p["_id"]: p["stock"] for p in db.products.find({"_id": {"$in": ids}}, {"stock": 1})}

    def must_fail(order_id: int, items: list, why: str) -> None:
        before = stocks()
        try:
            func(client, db, order_id, user["_id"], items)
        except Exception:  # noqa: BLE001 - any refusal is fine; what matters is that nothing changed
            pass
        else:
            fail(f"place_order accepted an order that must be refused ({why}).",
                 hint="raise ValueError when a product does not exist or has too little stock.")
        after = stocks()
        changed = [pid for pid in ids if before[pid] != after[pid]]
        expect(not changed, f"the order failed ({why}) but the stock of product {changed[:1]} changed from "
                            f"{before[changed[0]] if changed else ''} to {after[changed[0]] if changed else ''}.",
               hint="run every read and write with session=session inside one transaction "
                    "(session.with_transaction): then a failure rolls them all back.")
        if why != "the order id is taken":
            expect(db.orders.count_documents({"_id": order_id}) == 0,
                   f"the order failed ({why}) but an order document {order_id} was written.")

    try:
        items = [(ids[0], 2), (ids[1], 1)]
        before_call = dt.datetime.now(UTC)
        func(client, db, first_id, user["_id"], items)
        after_call = dt.datetime.now(UTC)
        order = db.orders.find_one({"_id": first_id})
        expect(order is not None, f"after place_order(client, db, {first_id}, ...) there is no order {first_id}.")
        ordered_at = order.get("ordered_at")
        expect(isinstance(ordered_at, dt.datetime),
               f"order.ordered_at is {_short(ordered_at)}; expected the time of the order, a datetime.",
               hint="'ordered_at': datetime.now(timezone.utc): the shop's date queries filter on it.")
        expect(before_call - dt.timedelta(seconds=5) <= ordered_at <= after_call + dt.timedelta(seconds=5),
               f"order.ordered_at is {ordered_at:%Y-%m-%d %H:%M:%S} UTC; expected the time place_order ran "
               f"({before_call:%Y-%m-%d %H:%M:%S} UTC).",
               hint="use datetime.now(timezone.utc); datetime.now() without a timezone is local time, which "
                    "PyMongo stores as if it were UTC.")
        expect(order.get("user_id") == user["_id"] and order.get("status") == "pending",
               f"the order should have user_id {user['_id']} and status 'pending'; it has "
               f"{_short({k: order.get(k) for k in ('user_id', 'status')})}.")
        expect(order.get("customer") == {"name": user["name"], "country": user["country"]},
               f"order.customer is {_short(order.get('customer'))}; expected the extended reference "
               f"{{'name': {user['name']!r}, 'country': {user['country']!r}}}.")
        want_items = [{"product_id": pid, "name": next(p["name"] for p in products if p["_id"] == pid),
                       "quantity": q, "unit_price": next(p["price"] for p in products if p["_id"] == pid).to_decimal()}
                      for pid, q in items]
        got_items = [{k: plain(i.get(k)) for k in ("product_id", "name", "quantity", "unit_price")}
                     for i in order.get("items", [])]
        expect(got_items == want_items, f"order.items is {_short(got_items, 300)}; expected {_short(want_items, 300)}.",
               hint="one item per (product_id, quantity), with the product's name and its current price as "
                    "unit_price (a Decimal128).")
        total = sum((i["quantity"] * i["unit_price"] for i in want_items), Decimal("0"))
        expect(plain(order.get("total")) == total, f"order.total is {_short(order.get('total'))}; expected {total}.",
               hint="add up quantity × unit_price with Decimal and store Decimal128(total).")
        now = stocks()
        for pid, q in items:
            expect(now[pid] == stock[pid] - q,
                   f"product {pid}'s stock is {now[pid]} after ordering {q}; expected {stock[pid] - q}.")
        must_fail(first_id + 1, [(ids[0], 1), (ids[2], now[ids[2]] + 1)], "too little stock for the second item")
        if hidden:
            must_fail(first_id + 2, [(ids[2], now[ids[2]] + 5), (ids[0], 1)], "too little stock for the first item")
            must_fail(first_id + 3, [(ids[0], 1), (CHECK_IDS + 999, 1)], "a product that does not exist")
            must_fail(first_id, [(ids[0], 1), (ids[1], 1)], "the order id is taken")
    finally:
        db.orders.delete_many({"_id": {"$gte": CHECK_IDS, "$lt": CHECK_IDS + 1000}})
        for pid, n in stock.items():
            db.products.update_one({"_id": pid}, {"$set": {"stock": n}})


# --------------------------------------------------------------------------- 05.12

@exercise("05.12", "Write and read concerns", answer="payments_orders")
def concerns(payments: Any, dashboard: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(payments, "payments_orders")
    not_answered(dashboard, "dashboard_events")
    from pymongo.collection import Collection

    expect(callable(payments) and callable(dashboard),
           "`payments_orders` and `dashboard_events` should be functions of a database.")
    main = _db(workspace)
    dbs = [main]
    if hidden:  # another database: the answer must configure the database it is given, not a global one
        dbs.append(workspace.mongo_client[f"{workspace.namespace}_other"])
    for db in dbs:
        p, d = payments(db), dashboard(db)
        for coll, name, fn in ((p, "orders", "payments_orders"), (d, "events", "dashboard_events")):
            expect(isinstance(coll, Collection), f"{fn}(db) should return a pymongo Collection, not {type(coll).__name__}.",
                   hint="db.get_collection(name, write_concern=..., read_concern=..., read_preference=...).")
            expect(coll.name == name and coll.database.name == db.name,
                   f"{fn}(db) returned the collection {coll.full_name}; expected {db.name}.{name}.")
        wc = p.write_concern.document
        expect(wc.get("w") == "majority" and wc.get("j") is True,
               f"payments: the write concern is {wc or 'the default'}; expected w='majority' with j=True.",
               hint="WriteConcern('majority', j=True): acknowledged once most members have it in their journal.")
        expect(p.read_concern.level == "majority",
               f"payments: the read concern is {p.read_concern.level!r}; expected 'majority'.",
               hint="ReadConcern('majority') never returns data that a failover could roll back.")
        expect(p.read_preference.mongos_mode == "primary",
               f"payments: the read preference is {p.read_preference.mongos_mode!r}; expected 'primary'.")
        expect(d.read_preference.mongos_mode == "secondaryPreferred",
               f"dashboard: the read preference is {d.read_preference.mongos_mode!r}; expected 'secondaryPreferred'.",
               hint="ReadPreference.SECONDARY_PREFERRED: read from a secondary when there is one, else the primary.")
        expect(d.read_concern.level == "local",
               f"dashboard: the read concern is {d.read_concern.level!r}; expected 'local'.")
        expect(d.write_concern.document.get("w") == 1,
               f"dashboard: the write concern is {d.write_concern.document or 'the default'}; expected w=1.")
        if db is main:
            expect(p.count_documents({}) == db.orders.count_documents({}) and d.estimated_document_count() > 0,
                   "the configured collections should still read the same data.")


# --------------------------------------------------------------------------- 05.13

def _expected_stats(events: Iterable[dict]) -> dict[int, dict]:
    stats: dict[int, dict] = {}
    for e in events:
        if e.get("user_id") is None:
            continue
        s = stats.setdefault(e["user_id"], {"events": 0, "by_type": Counter(), "first_at": e["at"],
                                            "last_at": e["at"], "sessions": set()})
        s["events"] += 1
        s["by_type"][e["type"]] += 1
        s["first_at"] = min(s["first_at"], e["at"])
        s["last_at"] = max(s["last_at"], e["at"])
        s["sessions"].add(e["session_id"])
    return stats


@exercise("05.13", "User-activity analytics", answer="track_event")
def track_event(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "track_event")
    expect(callable(func), "`track_event` should be a function track_event(stats, event) -> bool.")
    db = _db(workspace)
    users = [r["_id"] for r in db.events.aggregate([
        {"$match": {"user_id": {"$exists": True}, "at": {"$gte": dt.datetime(2026, 1, 1, tzinfo=UTC)}}},
        {"$group": {"_id": "$user_id", "n": {"$sum": 1}}}, {"$sort": {"n": -1, "_id": 1}}, {"$limit": 3}])]
    events = list(db.events.find({"user_id": {"$in": users}}).sort([("at", 1), ("_id", 1)]))
    anonymous = list(db.events.find({"user_id": {"$exists": False}}).sort("_id", 1).limit(20))
    coll = _scratch(workspace, "user_stats")
    feed = events + anonymous
    if hidden:
        random.Random(11).shuffle(feed)
        coll.insert_one({"_id": users[0], "segment": "vip"})
    try:
        target: Any = coll
        if hidden:  # "another client" tracks an extra event of the same user whenever the answer reads
            extra: list[dict] = []

            def race(doc: dict) -> None:
                if doc.get("_id") not in users:
                    return
                event = {"_id": CHECK_IDS + len(extra), "user_id": doc["_id"], "session_id": "racing-client",
                         "type": "search", "at": dt.datetime(2026, 6, 30, 12, 0, tzinfo=UTC)}
                extra.append(event)
                coll.update_one({"_id": event["user_id"]},
                                {"$inc": {"events": 1, "by_type.search": 1}, "$min": {"first_at": event["at"]},
                                 "$max": {"last_at": event["at"]}, "$addToSet": {"sessions": event["session_id"]}},
                                upsert=True)

            target = RacingCollection(coll, race)
        for event in feed:
            result = func(target, dict(event))
            want = event.get("user_id") is not None
            expect(result is want, f"track_event returned {result!r} for an event "
                                   f"{'of user ' + str(event['user_id']) if want else 'without a user_id'}; "
                                   f"expected {want}.", hint="return False (and write nothing) for anonymous events.")
        if hidden:
            feed = feed + extra
        expected = _expected_stats(feed)
        got_ids = sorted(d["_id"] for d in coll.find({}, {"_id": 1}))
        expect(got_ids == sorted(expected),
               f"the stats collection has documents for users {got_ids[:8]}; expected {sorted(expected)[:8]}.",
               hint="one document per user with _id = the user's id (update_one({'_id': user_id}, ..., upsert=True)); "
                    "nothing for events without a user_id.")
        for user_id, want in expected.items():
            doc = coll.find_one({"_id": user_id})
            where = f"user {user_id}"
            for field in ("events", "first_at", "last_at"):
                value = doc.get(field)
                if isinstance(value, dict):
                    fail(f"{where}: {field} is {value!r}, a literal sub-document: an operator ended up inside $set.",
                         hint="each operator ($inc, $min, $max, $addToSet) is a top-level key of the update.")
                expect(value == want[field], f"{where}: {field} is {_short(value)}; expected {_short(want[field])}.",
                       hint={"events": "$inc 'events' by 1 per event.",
                             "first_at": "$min keeps the earliest time even when events arrive out of order.",
                             "last_at": "$max keeps the latest time even when events arrive out of order."}[field])
            expect(doc.get("by_type") == dict(want["by_type"]),
                   f"{where}: by_type is {_short(doc.get('by_type'))}; expected {dict(want['by_type'])}.",
                   hint="$inc with dot notation: {'$inc': {'by_type.page_view': 1}}.")
            sessions = doc.get("sessions")
            expect(isinstance(sessions, list) and len(sessions) == len(set(sessions)) and set(sessions) == want["sessions"],
                   f"{where}: sessions holds {len(sessions) if isinstance(sessions, list) else sessions!r} "
                   f"value(s); expected the {len(want['sessions'])} distinct session ids.",
                   hint="$addToSet adds a session id only if it is not in the array yet.")
            if hidden and user_id == users[0]:
                expect(doc.get("segment") == "vip", "the existing field `segment` of a stats document was lost.",
                       hint="update operators change only the fields they name; never replace the document.")
    finally:
        coll.drop()
