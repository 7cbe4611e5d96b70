"""Chapter 05 checks: each accepts a correct answer and rejects typical wrong ones with the right feedback.

Runs against the course's MongoDB server (real or stand-in), in a namespace of its own.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import pytest
from bson import Decimal128, ObjectId
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import DuplicateKeyError
from pymongo.read_concern import ReadConcern

import dbcourse
from dbcourse import namespaces
from dbcourse.checks import NotAnswered
from dbcourse.checks import ch05 as check

from .conftest import rejects

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def ws():
    workspace = dbcourse.setup("05-mongodb", namespace="test_ch05_checks", quiet=True)
    yield workspace
    leftovers = [n for n in workspace.mongo_db.list_collection_names() if n.startswith("_check05_")]
    extra_orders = workspace.mongo_db.orders.count_documents({"_id": {"$gte": check.CHECK_IDS}})
    extra_products = workspace.mongo_db.products.count_documents({"_id": {"$gte": check.CHECK_IDS}})
    workspace.close()
    namespaces.drop_mongodb(workspace.namespace)
    namespaces.drop_mongodb(f"{workspace.namespace}_other")
    shutil.rmtree(namespaces.sqlite_dir(workspace.namespace), ignore_errors=True)
    assert leftovers == [], "checks must drop their scratch collections"
    assert extra_orders == extra_products == 0, "checks must remove the documents they add to the shop"


# --------------------------------------------------------------------------- answers that pass

def created_between(collection, start, end):
    query = {"_id": {"$gte": ObjectId.from_datetime(start), "$lt": ObjectId.from_datetime(end)}}
    return [d["_id"] for d in collection.find(query, {"_id": 1}).sort("_id", 1)]


def in_stock_under(products, category, max_price):
    query = {"category.name": category, "is_discontinued": False, "stock": {"$gt": 0},
             "price": {"$lte": Decimal128(max_price)}}
    return list(products.find(query, {"_id": 0, "name": 1, "price": 1}).sort([("price", 1), ("name", 1)]))


def add_comment(posts, post_id, comment):
    result = posts.update_one({"_id": post_id},
                              {"$push": {"comments": {"$each": [comment], "$sort": {"created_at": 1}, "$slice": -50}},
                               "$inc": {"activity.comment_count": 1},
                               "$max": {"activity.last_comment_at": comment["created_at"]}})
    return result.modified_count == 1


def record_login(stats, user_id, at):
    stats.update_one({"user_id": user_id}, {"$inc": {"login_count": 1}, "$max": {"last_login": at}}, upsert=True)


def create_purchase_index(events):
    return events.create_index([("user_id", 1), ("type", 1), ("at", -1)])


REVIEW_VALIDATOR = {"$jsonSchema": {
    "bsonType": "object",
    "required": ["product_id", "user_id", "rating", "title", "created_at"],
    "additionalProperties": False,
    "properties": {"_id": {}, "product_id": {"bsonType": "int"}, "user_id": {"bsonType": "int"},
                   "rating": {"bsonType": "int", "minimum": 1, "maximum": 5},
                   "title": {"bsonType": "string", "minLength": 1, "maxLength": 100},
                   "body": {"bsonType": "string"}, "created_at": {"bsonType": "date"}},
}}


def add_to_bucket(buckets, event, max_events=100):
    day = event["at"].astimezone(UTC).strftime("%Y-%m-%d")
    buckets.update_one({"user_id": event["user_id"], "day": day, "count": {"$lt": max_events}},
                       {"$push": {"events": {"type": event["type"], "at": event["at"]}},
                        "$inc": {"count": 1, f"by_type.{event['type']}": 1}}, upsert=True)


def place_order(client, db, order_id, user_id, items):
    def callback(session):
        user = db.users.find_one({"_id": user_id}, session=session)
        lines, total = [], Decimal("0")
        for product_id, quantity in items:
            product = db.products.find_one_and_update({"_id": product_id, "stock": {"$gte": quantity}},
                                                      {"$inc": {"stock": -quantity}}, session=session)
            if product is None:
                raise ValueError(product_id)
            price = product["price"].to_decimal()
            lines.append({"product_id": product_id, "name": product["name"], "quantity": quantity,
                          "unit_price": Decimal128(price)})
            total += quantity * price
        order = {"_id": order_id, "user_id": user_id, "status": "pending",
                 "customer": {"name": user["name"], "country": user["country"]},
                 "ordered_at": dt.datetime.now(UTC), "items": lines, "total": Decimal128(total)}
        db.orders.insert_one(order, session=session)
        return order

    with client.start_session() as session:
        return session.with_transaction(callback)


def prepare_subscriptions(subscriptions):
    return subscriptions.create_index("email", unique=True)


def subscribe(subscriptions, email):
    try:
        subscriptions.insert_one({"email": email.strip().lower(), "since": dt.datetime.now(UTC)})
    except DuplicateKeyError:
        return False
    return True


def unsubscribe(subscriptions, email):
    return subscriptions.delete_one({"email": email.strip().lower()}).deleted_count == 1


def kind_search(words, kind):
    return {"$text": {"$search": words}, "kind": kind, "published_at": {"$exists": True}}


def payments_orders(db):
    return db.get_collection("orders", write_concern=WriteConcern("majority", j=True),
                             read_concern=ReadConcern("majority"), read_preference=ReadPreference.PRIMARY)


def dashboard_events(db):
    return db.get_collection("events", write_concern=WriteConcern(w=1), read_concern=ReadConcern("local"),
                             read_preference=ReadPreference.SECONDARY_PREFERRED)


def track_event(stats, event):
    if event.get("user_id") is None:
        return False
    stats.update_one({"_id": event["user_id"]},
                     {"$inc": {"events": 1, f"by_type.{event['type']}": 1}, "$min": {"first_at": event["at"]},
                      "$max": {"last_at": event["at"]}, "$addToSet": {"sessions": event["session_id"]}},
                     upsert=True)
    return True


def test_right_answers_pass(ws):
    check.created_between(created_between, ws, hidden=True)
    check.in_stock_under(in_stock_under, ws, hidden=True)
    check.add_comment(add_comment, ws, hidden=True)
    check.record_login(record_login, ws, hidden=True)
    check.revenue_by_category(revenue_pipeline(), ws, hidden=True)
    check.review_validator(REVIEW_VALIDATOR, ws, hidden=True)
    check.add_to_bucket(add_to_bucket, ws, hidden=True)
    check.place_order(place_order, ws, hidden=True)
    check.concerns(payments_orders, dashboard_events, ws, hidden=True)
    check.track_event(track_event, ws, hidden=True)
    check.subscriptions(prepare_subscriptions, subscribe, unsubscribe, ws, hidden=True)
    check.kind_search(kind_search, ws, hidden=True)
    check.purchase_index(create_purchase_index, ws, hidden=True)  # last: it adds an index to events


def revenue_pipeline():
    return [
        {"$match": {"ordered_at": {"$gte": dt.datetime(2026, 6, 1, tzinfo=UTC),
                                   "$lt": dt.datetime(2026, 7, 1, tzinfo=UTC)},
                    "status": {"$nin": ["cancelled", "refunded"]}}},
        {"$unwind": "$items"},
        {"$lookup": {"from": "products", "localField": "items.product_id", "foreignField": "_id", "as": "p"}},
        {"$unwind": "$p"},  # the other order: look up first, group once (slower, same result)
        {"$group": {"_id": "$p.category.name",
                    "revenue": {"$sum": {"$multiply": ["$items.quantity", "$items.unit_price"]}},
                    "units": {"$sum": "$items.quantity"}}},
        {"$sort": {"revenue": -1, "_id": 1}}, {"$limit": 5},
        {"$project": {"_id": 0, "category": "$_id", "revenue": 1, "units": 1}},
    ]


# --------------------------------------------------------------------------- wrong answers

def test_placeholders_say_not_answered(ws):
    with pytest.raises(NotAnswered):
        check.created_between(None, ws)
    with pytest.raises(NotAnswered):
        check.revenue_by_category(None, ws)

    def placeholder(*args):
        raise NotImplementedError

    with pytest.raises(NotAnswered, match="not answered yet"):
        check.track_event(placeholder, ws)


def test_created_between_rejects_an_inclusive_end(ws):
    def inclusive(collection, start, end):  # end included, by comparing the times in Python
        return sorted(d["_id"] for d in collection.find({}, {"_id": 1}) if start <= d["_id"].generation_time <= end)

    def unsorted(collection, start, end):
        return list(reversed(created_between(collection, start, end)))

    rejects(check.created_between, inclusive, ws, pattern=r"expected 6 .*outside.*end is not")
    rejects(check.created_between, unsorted, ws, pattern="not in ascending order")


def test_in_stock_under_rejects_missing_filters_and_projection(ws):
    def with_id(products, category, max_price):
        return list(products.find({"category.name": category, "is_discontinued": False, "stock": {"$gt": 0},
                                   "price": {"$lte": Decimal128(max_price)}}, {"name": 1, "price": 1}))

    def no_stock_filter(products, category, max_price):
        return list(products.find({"category.name": category, "is_discontinued": False,
                                   "price": {"$lte": Decimal128(max_price)}},
                                  {"_id": 0, "name": 1, "price": 1}).sort([("price", 1), ("name", 1)]))

    def by_name(products, category, max_price):
        return sorted(in_stock_under(products, category, max_price), key=lambda d: d["name"])

    rejects(check.in_stock_under, with_id, ws, pattern=r"exactly the fields name and price.*'_id': 0")
    rejects(check.in_stock_under, no_stock_filter, ws, pattern=r"row\(s\); expected")
    rejects(check.in_stock_under, by_name, ws, pattern="not in the order asked")


def test_add_comment_rejects_set_of_the_whole_subdocument_and_unbounded_push(ws):
    def replaces_activity(posts, post_id, comment):
        r = posts.update_one({"_id": post_id}, {"$push": {"comments": {"$each": [comment], "$sort": {"created_at": 1},
                                                                       "$slice": -50}},
                                                "$set": {"activity": {"comment_count": 1,
                                                                      "last_comment_at": comment["created_at"]}}})
        return r.modified_count == 1

    def unbounded(posts, post_id, comment):
        r = posts.update_one({"_id": post_id}, {"$push": {"comments": comment},
                                                "$inc": {"activity.comment_count": 1},
                                                "$max": {"activity.last_comment_at": comment["created_at"]}})
        return r.modified_count == 1

    def upserting(posts, post_id, comment):
        posts.update_one({"_id": post_id}, {"$push": {"comments": {"$each": [comment], "$sort": {"created_at": 1},
                                                                   "$slice": -50}},
                                            "$inc": {"activity.comment_count": 1},
                                            "$max": {"activity.last_comment_at": comment["created_at"]}},
                         upsert=True)
        return True

    rejects(check.add_comment, replaces_activity, ws, pattern=r"activity has no field 'views_today'.*dot notation")
    rejects(check.add_comment, unbounded, ws, pattern=r"embedded comments; expected 50")
    rejects(check.add_comment, upserting, ws, pattern=r"returned True; expected False", hidden=True)


def test_record_login_rejects_the_seed_bug_and_set_for_last_login(ws):
    def seed(stats, user_id, at):
        stats.update_many({"user_id": user_id}, {"$set": {"last_login": at, "login_count": {"$inc": 1}}})

    def seed_with_upsert(stats, user_id, at):
        stats.update_one({"user_id": user_id}, {"$set": {"last_login": at, "login_count": {"$inc": 1}}}, upsert=True)

    def set_last(stats, user_id, at):
        stats.update_one({"user_id": user_id}, {"$inc": {"login_count": 1}, "$set": {"last_login": at}}, upsert=True)

    rejects(check.record_login, seed, ws, pattern="no stats document.*upsert=True")
    rejects(check.record_login, seed_with_upsert, ws, pattern=r"literal sub-document.*top level")
    rejects(check.record_login, set_last, ws, pattern=r"last_login is .*\$max", hidden=True)

    def replaces(stats, user_id, at):
        old = stats.find_one({"user_id": user_id}) or {}
        stats.replace_one({"user_id": user_id}, {"user_id": user_id, "login_count": old.get("login_count", 0) + 1,
                                                 "last_login": max(old.get("last_login", at), at)}, upsert=True)

    def read_then_set(stats, user_id, at):
        doc = stats.find_one({"user_id": user_id})
        if doc is None:
            stats.insert_one({"user_id": user_id, "login_count": 1, "last_login": at})
        else:
            stats.update_one({"_id": doc["_id"]}, {"$set": {"login_count": doc["login_count"] + 1,
                                                            "last_login": max(doc["last_login"], at)}})

    rejects(check.record_login, replaces, ws, pattern=r"email is gone|login_count is \d+; expected", hidden=True)
    check.record_login(read_then_set, ws)  # correct when nothing else writes at the same time...
    rejects(check.record_login, read_then_set, ws, pattern=r"user 2: login_count is 4; expected 7", hidden=True)


def test_revenue_rejects_doubles_and_cancelled_orders(ws):
    as_double = revenue_pipeline()
    as_double[-1] = {"$project": {"_id": 0, "category": "$_id", "revenue": {"$toDouble": "$revenue"}, "units": 1}}
    all_orders = revenue_pipeline()
    all_orders[0] = {"$match": {"ordered_at": all_orders[0]["$match"]["ordered_at"]}}
    rejects(check.revenue_by_category, as_double, ws, pattern="Decimal128.*no \\$toDouble")
    rejects(check.revenue_by_category, all_orders, ws, pattern="some values differ")
    rejects(check.revenue_by_category, [{"$bogus": 1}], ws, pattern="MongoDB refused your pipeline")
    rejects(check.revenue_by_category, "db.orders.aggregate(...)", ws, pattern="list of stages")


def test_purchase_index_rejects_the_wrong_index(ws):
    ws.mongo_db.events.drop_indexes()  # test_right_answers_pass created the right one
    def sort_field_only(events):
        return events.create_index([("at", -1)])

    def not_a_name(events):
        events.create_index([("at", -1)])

    rejects(check.purchase_index, sort_field_only, ws, pattern=r"examined|reads the whole collection")
    rejects(check.purchase_index, not_a_name, ws, pattern="not the name of an index")
    ws.mongo_db.events.drop_indexes()


def test_purchase_index_wants_no_sort_on_real_mongodb(ws, monkeypatch):
    """The stand-in lists a SORT above every index scan; real MongoDB needs none with the ESR index."""
    ws.mongo_db.events.drop_indexes()

    def equality_only(events):  # no `at`: real MongoDB must sort the purchases in memory
        return events.create_index([("user_id", 1), ("type", 1)])

    summary = {"stages": ["SORT", "FETCH", "IXSCAN"], "indexes": ["user_id_1_type_1"],
               "key_patterns": [{"user_id": 1, "type": 1}], "returned": 4, "keys_examined": 4, "docs_examined": 4}
    monkeypatch.setattr(check, "plan_summary", lambda explain: dict(summary))
    monkeypatch.setattr(check, "is_stand_in", lambda client: False)
    rejects(check.purchase_index, equality_only, ws, pattern=r"still sorts the purchases in memory.*right after")
    monkeypatch.setattr(check, "is_stand_in", lambda client: True)  # on the stand-in the same plan is fine
    check.purchase_index(equality_only, ws)
    ws.mongo_db.events.drop_indexes()


def test_subscriptions_reject_look_first_and_uncleaned_addresses(ws):
    def not_unique(subscriptions):
        return subscriptions.create_index("email")

    def raw_address(subscriptions, email):
        try:
            subscriptions.insert_one({"email": email, "since": dt.datetime.now(UTC)})
        except DuplicateKeyError:
            return False
        return True

    def uncaught(subscriptions, email):
        subscriptions.insert_one({"email": email.strip().lower(), "since": dt.datetime.now(UTC)})
        return True

    def look_first(subscriptions, email):
        email = email.strip().lower()
        if subscriptions.find_one({"email": email}):
            return False
        subscriptions.insert_one({"email": email, "since": dt.datetime.now(UTC)})
        return True

    def always_true(subscriptions, email):
        subscriptions.delete_many({"email": email.strip().lower()})
        return True

    rejects(check.subscriptions, not_unique, subscribe, unsubscribe, ws, pattern=r"is not unique.*unique=True")
    rejects(check.subscriptions, prepare_subscriptions, raw_address, unsubscribe, ws,
            pattern=r"returned True; expected False.*strip\(\).lower\(\)")
    rejects(check.subscriptions, prepare_subscriptions, uncaught, unsubscribe, ws,
            pattern=r"raised DuplicateKeyError.*catch")
    rejects(check.subscriptions, prepare_subscriptions, subscribe, always_true, ws,
            pattern=r"unsubscribe\(subscriptions, 'bob@example.org'\) returned True; expected False")
    check.subscriptions(prepare_subscriptions, look_first, unsubscribe, ws)  # fine while it runs alone...
    rejects(check.subscriptions, prepare_subscriptions, look_first, unsubscribe, ws, hidden=True,  # ...not in a race
            pattern=r"another request subscribed the same address.*do not look first")


def test_kind_search_rejects_regex_and_missing_filters(ws):
    def regex(words, kind):
        return {"title": {"$regex": words.replace(" ", "|"), "$options": "i"}, "kind": kind,
                "published_at": {"$exists": True}}

    def drafts_too(words, kind):
        return {"$text": {"$search": words}, "kind": kind}

    def any_kind(words, kind):
        return {"$text": {"$search": words}, "published_at": {"$exists": True}}

    def fixed_words(words, kind):
        return {"$text": {"$search": "sharding replicas"}, "kind": kind, "published_at": {"$exists": True}}

    rejects(check.kind_search, regex, ws, pattern=r"does not use the text index.*\$regex cannot")
    rejects(check.kind_search, drafts_too, ws, pattern=r"matches \d+ posts; the published posts of kind 'video'")
    rejects(check.kind_search, any_kind, ws, pattern=r"matches \d+ posts.*\{'kind': kind\}")
    check.kind_search(fixed_words, ws)
    rejects(check.kind_search, fixed_words, ws, hidden=True, pattern=r"the \$text part is .*'redis caching'")
    rejects(check.kind_search, "{'$text': ...}", ws, pattern=r"should be a function")


def test_review_validator_rejects_loose_schemas(ws):
    loose = {"$jsonSchema": {"bsonType": "object", "required": ["product_id", "user_id", "rating", "title"],
                             "properties": {"rating": {"bsonType": "number", "minimum": 1, "maximum": 5}}}}
    too_strict = {"$jsonSchema": dict(REVIEW_VALIDATOR["$jsonSchema"],
                                      required=["product_id", "user_id", "rating", "title", "created_at", "body"])}
    no_id = {"$jsonSchema": dict(REVIEW_VALIDATOR["$jsonSchema"],
                                 properties={k: v for k, v in REVIEW_VALIDATOR["$jsonSchema"]["properties"].items()
                                             if k != "_id"})}
    rejects(check.review_validator, loose, ws, pattern="accepted an invalid review: one with an extra field",
            hidden=False)
    rejects(check.review_validator, loose, ws, pattern="accepted an invalid review", hidden=True)
    rejects(check.review_validator, too_strict, ws, pattern="rejected a valid review .a real review without a body")
    rejects(check.review_validator, no_id, ws, pattern=r"rejected a valid review.*_id is a field too")
    rejects(check.review_validator, {"bsonType": "object"}, ws, pattern=r"\{'\$jsonSchema'")


def test_add_to_bucket_rejects_one_bucket_per_day_and_set_counters(ws):
    def no_cap(buckets, event, max_events=100):
        day = event["at"].strftime("%Y-%m-%d")
        buckets.update_one({"user_id": event["user_id"], "day": day},
                           {"$push": {"events": {"type": event["type"], "at": event["at"]}},
                            "$inc": {"count": 1, f"by_type.{event['type']}": 1}}, upsert=True)

    def no_by_type(buckets, event, max_events=100):
        day = event["at"].strftime("%Y-%m-%d")
        buckets.update_one({"user_id": event["user_id"], "day": day, "count": {"$lt": max_events}},
                           {"$push": {"events": {"type": event["type"], "at": event["at"]}}, "$inc": {"count": 1}},
                           upsert=True)

    rejects(check.add_to_bucket, no_by_type, ws, pattern=r"by_type is None")
    rejects(check.add_to_bucket, no_cap, ws, pattern=r"made \d+ bucket documents; expected \d+", hidden=True)


def test_place_order_rejects_writes_outside_the_transaction(ws):
    def no_session(client, db, order_id, user_id, items):
        def callback(session):
            user = db.users.find_one({"_id": user_id})
            lines, total = [], Decimal("0")
            for product_id, quantity in items:
                product = db.products.find_one_and_update({"_id": product_id, "stock": {"$gte": quantity}},
                                                          {"$inc": {"stock": -quantity}})  # no session!
                if product is None:
                    raise ValueError(product_id)
                lines.append({"product_id": product_id, "name": product["name"], "quantity": quantity,
                              "unit_price": product["price"]})
                total += quantity * product["price"].to_decimal()
            db.orders.insert_one({"_id": order_id, "user_id": user_id, "status": "pending",
                                  "customer": {"name": user["name"], "country": user["country"]},
                                  "ordered_at": dt.datetime.now(UTC), "items": lines, "total": Decimal128(total)},
                                 session=session)

        with client.start_session() as session:
            session.with_transaction(callback)

    def float_total(client, db, order_id, user_id, items):
        order = place_order(client, db, order_id, user_id, items)
        db.orders.update_one({"_id": order_id}, {"$set": {"total": float(order["total"].to_decimal()) + 0.01}})

    rejects(check.place_order, no_session, ws, pattern=r"stock of product \[\d+\] changed.*session=session")
    rejects(check.place_order, float_total, ws, pattern=r"order.total is .*Decimal")

    def undated(client, db, order_id, user_id, items):
        place_order(client, db, order_id, user_id, items)
        db.orders.update_one({"_id": order_id}, {"$unset": {"ordered_at": ""}})

    def long_ago(client, db, order_id, user_id, items):
        place_order(client, db, order_id, user_id, items)
        db.orders.update_one({"_id": order_id}, {"$set": {"ordered_at": dt.datetime(2020, 1, 1, tzinfo=UTC)}})

    rejects(check.place_order, undated, ws, pattern=r"order.ordered_at is None; expected the time of the order")
    rejects(check.place_order, long_ago, ws, pattern=r"ordered_at is 2020-01-01.*expected the time place_order ran")
    stock = {p["_id"]: p["stock"] for p in ws.mongo_db.products.find({}, {"stock": 1})}
    check.place_order(place_order, ws)
    assert stock == {p["_id"]: p["stock"] for p in ws.mongo_db.products.find({}, {"stock": 1})}, \
        "the check must restore the stock it used"


def test_concerns_reject_defaults(ws):
    def defaults(db):
        return db.orders

    def events_defaults(db):
        return db.events

    def always_main(db):
        return payments_orders(ws.mongo_db)

    rejects(check.concerns, defaults, dashboard_events, ws, pattern=r"payments: the write concern is .*majority")
    rejects(check.concerns, payments_orders, events_defaults, ws, pattern=r"dashboard: the read preference")
    rejects(check.concerns, always_main, dashboard_events, ws, pattern=r"returned the collection .*expected",
            hidden=True)


def test_track_event_rejects_set_for_times_and_push_for_sessions(ws):
    def set_times(stats, event):
        if event.get("user_id") is None:
            return False
        stats.update_one({"_id": event["user_id"]},
                         {"$inc": {"events": 1, f"by_type.{event['type']}": 1},
                          "$set": {"last_at": event["at"]}, "$min": {"first_at": event["at"]},
                          "$addToSet": {"sessions": event["session_id"]}}, upsert=True)
        return True

    def push_sessions(stats, event):
        if event.get("user_id") is None:
            return False
        stats.update_one({"_id": event["user_id"]},
                         {"$inc": {"events": 1, f"by_type.{event['type']}": 1}, "$min": {"first_at": event["at"]},
                          "$max": {"last_at": event["at"]}, "$push": {"sessions": event["session_id"]}}, upsert=True)
        return True

    def counts_anonymous(stats, event):
        track_event(stats, event)
        return True

    rejects(check.track_event, counts_anonymous, ws, pattern=r"returned True for an event without a user_id")
    rejects(check.track_event, push_sessions, ws, pattern=r"sessions holds .*\$addToSet")
    def read_modify_write(stats, event):
        if event.get("user_id") is None:
            return False
        doc = stats.find_one({"_id": event["user_id"]}) or {"_id": event["user_id"], "events": 0, "by_type": {},
                                                              "first_at": event["at"], "last_at": event["at"],
                                                              "sessions": []}
        doc["events"] = doc.get("events", 0) + 1
        doc.setdefault("by_type", {})
        doc["by_type"][event["type"]] = doc["by_type"].get(event["type"], 0) + 1
        doc["first_at"], doc["last_at"] = min(doc.get("first_at", event["at"]), event["at"]), \
            max(doc.get("last_at", event["at"]), event["at"])
        doc["sessions"] = sorted(set(doc.get("sessions", [])) | {event["session_id"]})
        stats.replace_one({"_id": event["user_id"]}, doc, upsert=True)
        return True

    rejects(check.track_event, set_times, ws, pattern=r"last_at is .*\$max", hidden=True)
    check.track_event(read_modify_write, ws)  # passes while nobody else writes...
    rejects(check.track_event, read_modify_write, ws, pattern=r"events is \d+; expected \d+", hidden=True)
