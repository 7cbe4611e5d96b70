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
# # 05 · MongoDB from Python (PyMongo)
#
# **After this chapter you will be able to**
#
# * store and read documents with PyMongo: collections, `ObjectId`s, `insert_one` /
#   `insert_many`, `find` with query operators, projection, sort, limit and skip, nested fields
#   and arrays;
# * change documents in place with update operators (`$set`, `$push`, `$addToSet`, `$inc`,
#   `$unset`, `$min`/`$max`), upserts, `find_one_and_update` and deletes, and spot the classic
#   mistake of nesting `$inc` inside `$set`;
# * answer questions with aggregation pipelines (`$match`, `$unwind`, `$lookup`, `$group`,
#   `$sort`, `$limit`, `$project`), keeping money exact with `Decimal128`;
# * make queries fast with single, unique, compound and text indexes, and prove it with
#   `explain()`;
# * guard a collection with `$jsonSchema` validation and read a rejected write;
# * choose between embedding and references; apply the bucket and extended-reference patterns;
#   keep several content types in one collection;
# * make several writes all-or-nothing with a transaction, and say what the CAP theorem, write
#   and read concerns and sharding mean for your code.
#
# **Time**: about 2 hours of reading and exercises. Run top to bottom, the notebook takes about a
# minute on an idle machine, a third of it loading the shop into MongoDB; the course's stand-in
# server is slower when other notebooks use it at the same time.
#
# **What must be running**: MongoDB. The setup cell checks it and, if it is down, stops with one
# message naming the command to run (`dbcourse services up`). Where Docker is not available the
# course runs **SecantusDB**, a stand-in that speaks MongoDB's wire protocol and gives the same
# results as MongoDB 8 for the queries, updates, pipelines, validators and transactions of this
# chapter. It differs in three places, and the notebook detects each, says so and shows what
# real MongoDB does: it has no text indexes, its query planner sometimes scans the collection
# where MongoDB would use an index, and its plans list an in-memory `SORT` that MongoDB would not
# need (section 5). Neither it nor the course's Docker MongoDB is a sharded cluster (section 9).
# With real MongoDB (Docker, Binder) the same cells run for real.
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
import datetime as dt
from decimal import Decimal
from pprint import pprint

from bson import Decimal128, ObjectId
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, WriteError

import dbcourse
from dbcourse.checks import ch05 as check

course = dbcourse.setup("05-mongodb", namespace=namespace, scale=scale,
                        urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url))
client = course.mongo_client  # a pymongo.MongoClient (one per program: it holds a connection pool)
db = course.mongo_db          # this notebook's database, with the shop loaded as documents
UTC = dt.timezone.utc

# %% [markdown]
# `course.mongo_client` is an ordinary `pymongo.MongoClient`, created once for the whole notebook:
# a client keeps a pool of connections and is safe to share between threads, so a program
# creates one at start-up and reuses it (never one per request). `db` is this notebook's own
# database; running the setup cell again reloads it from scratch.
#
# Which server is this? The stand-in answers the `hello` command as a one-node replica set named
# `secantus`; that is the only thing this notebook looks at to tell them apart.

# %%
hello = client.admin.command("hello")
STAND_IN = hello.get("setName") == "secantus"
print("server:", "the course's MongoDB stand-in (SecantusDB)" if STAND_IN else "MongoDB")
print("replica set:", hello.get("setName") is not None, "| largest document:", hello["maxBsonObjectSize"] // 2**20, "MB")
print("collections:", sorted(db.list_collection_names()))

# %% [markdown]
# ## 1. Documents, collections and ObjectIds
#
# MongoDB stores **documents**: nested key-value structures, much like Python dicts, kept on
# disk in a binary form of JSON called **BSON** (which adds types JSON lacks: dates, 64-bit
# integers, `Decimal128`, `ObjectId`, binary data). Documents live in **collections**, which live
# in a **database**. A collection does not fix the fields of its documents, though you can ask it
# to check them (section 6).
#
# | Relational | MongoDB | Note |
# |---|---|---|
# | database | database | `client["name"]` |
# | table | collection | `db["orders"]` or `db.orders`; created on first insert |
# | row | document | a dict in Python; at most 16 MB |
# | column | field | may hold a sub-document or an array |
# | primary key | `_id` | every document has one, unique in its collection |
# | join | embedding, or `$lookup` | section 7 says when to use which |
#
# Here is one order of the shop. Its items are **embedded** (an array of sub-documents) and the
# customer's name and country are copied in; PyMongo returns it as a plain dict.

# %%
order = db.orders.find_one({"_id": 1})
pprint(order, sort_dicts=False, width=110)

# %% [markdown]
# Notice the types PyMongo gives back: `datetime` for dates (timezone-aware, because the course
# creates its client with `tz_aware=True`; MongoDB stores every date as UTC milliseconds), `int`,
# `str`, lists and dicts, and `Decimal128` for money (section 4 explains why not `float`).
#
# ### Inserting, and the `_id` you did not write
#
# `insert_one` sends one document. If it has no `_id`, **PyMongo** (the driver, not the server)
# generates an `ObjectId` and adds it to your dict, so you know the id before the server answers.

# %%
notes = db.notes
notes.drop()  # start empty, so that the cells of this section can run again
note = {"text": "MongoDB stores documents", "tags": ["intro"]}
result = notes.insert_one(note)
print(repr(result.inserted_id))            # the sanitizer of the course's tests masks the hex digits
print("added to my dict:", note["_id"] == result.inserted_id)
print(type(result.inserted_id).__name__, "with", len(str(result.inserted_id)), "hex digits")

# %% [markdown]
# An `ObjectId` is 12 bytes, written as 24 hex digits:
#
# | Bytes | What | Why |
# |---|---|---|
# | 4 | seconds since 1970 when it was made | ids sort roughly by creation time |
# | 5 | a random value, fixed per process | two machines practically never collide |
# | 3 | a counter, starting at a random value | many ids per second in one process |
#
# So an `ObjectId` is unique without asking the server, carries its creation time, and sorts by
# it. Let us take one apart:

# %%
oid = ObjectId("665a1b2c" "8f3e4d5c6b" "00002a")
print("timestamp bytes:", oid.binary[:4].hex(), "->", int.from_bytes(oid.binary[:4], "big"), "seconds")
print("generation_time:", oid.generation_time)
print("random bytes:   ", oid.binary[4:9].hex())
print("counter:        ", int.from_bytes(oid.binary[9:], "big"))
fresh = notes.find_one({"_id": result.inserted_id})["_id"]
print("the id made above is less than a minute old:",
      abs(dt.datetime.now(UTC) - fresh.generation_time) < dt.timedelta(minutes=1))

# %% [markdown]
# `ObjectId.from_datetime(t)` builds the smallest id of second `t`: with it, a range query on
# `_id` finds documents by creation time through the `_id` index, without a date field (exercise
# 05.1). Its other bytes are zeros, so use it only in queries, never as an id.
#
# **Your own `_id`.** When the data has a natural key (an SKU, an e-mail, a date), use it as
# `_id`: it is unique, indexed, and saves an index. A second document with the same `_id` is
# refused with `DuplicateKeyError` (code 11000).

# %%
notes.delete_one({"_id": "welcome"})  # (so that this cell can run again)
notes.insert_one({"_id": "welcome", "text": "a hand-picked id"})
try:
    notes.insert_one({"_id": "welcome", "text": "the same id again"})
except DuplicateKeyError as exc:
    print("refused:", exc.code, exc.details["keyValue"])

# %% [markdown]
# `insert_many` sends a list in batches and returns every id. By default it is **ordered**: it
# stops at the first error (the documents before it stay inserted: there is no rollback without a
# transaction). With `ordered=False` it tries them all and reports every failure at the end, in a
# `BulkWriteError`.

# %%
notes.delete_many({"_id": {"$regex": "^note-"}})  # (so that this cell can run again)
batch = [{"_id": f"note-{i}", "text": f"note {i}"} for i in range(5)]
print("inserted:", notes.insert_many(batch).inserted_ids)

again = [{"_id": "note-5", "text": "new"}, {"_id": "note-1", "text": "duplicate"}, {"_id": "note-6", "text": "new"}]
try:
    notes.insert_many(again, ordered=False)
except BulkWriteError as exc:
    print("inserted anyway:", exc.details["nInserted"],
          "| failed:", [(e["index"], e["code"]) for e in exc.details["writeErrors"]])
print("notes now:", notes.count_documents({}))

# %% [markdown]
# ### Exercise 05.1 · What's inside an ObjectId (warm-up)
#
# Documents in a collection have `ObjectId`s as `_id` and no date field. Write
# `created_between(collection, start, end)` that returns the **list of `_id`s** of the documents
# whose id was generated at or after `start` and **before** `end` (timezone-aware datetimes),
# sorted ascending. Query the server with a range on `_id` built with `ObjectId.from_datetime`,
# so the `_id` index does the work.
#
# The check builds a collection of documents with ids from known times and compares your list
# with the ids whose `generation_time` falls in the window (edges included, hidden tests too).

# %% nbgrader={"grade": false, "grade_id": "ex05-1-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def created_between(collection, start, end):
    query = {"_id": {"$gte": ObjectId.from_datetime(start), "$lt": ObjectId.from_datetime(end)}}
    return [doc["_id"] for doc in collection.find(query, {"_id": 1}).sort("_id", 1)]
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-1-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.created_between(created_between, course)
### BEGIN HIDDEN TESTS
check.created_between(created_between, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Finding documents
#
# `find(filter, projection)` returns a **cursor**: nothing is fetched until you iterate it (or
# call `list()`), and then documents arrive in batches. `find_one` returns the first match or
# `None`. A filter is a document: `{"field": value}` means *equals*; operators start with `$`.
#
# | Operator | Meaning | Example |
# |---|---|---|
# | `$eq`, `$ne` | equal, not equal | `{"status": {"$ne": "cancelled"}}` |
# | `$gt`, `$gte`, `$lt`, `$lte` | comparisons (numbers, dates, strings) | `{"stock": {"$lt": 10}}` |
# | `$in`, `$nin` | one of / none of a list | `{"status": {"$in": ["paid", "shipped"]}}` |
# | `$exists` | the field is there (or not) | `{"birth_year": {"$exists": False}}` |
# | `$regex` | matches a regular expression | `{"name": {"$regex": "^Smart"}}` |
# | `$and`, `$or`, `$nor` | combine filters | `{"$or": [{...}, {...}]}` |
# | `$elemMatch` | one array element meets all conditions | see below |
# | `$size`, `$all` | array length; contains all of | `{"tags": {"$all": ["sql", "python"]}}` |
#
# Several fields in one filter are combined with AND. **Dot notation** reaches into
# sub-documents (`"category.name"`) and into the elements of arrays (`"items.product_id"`).

# %%
products = db.products
print("one product by _id:    ", products.find_one({"_id": 42}, {"_id": 0, "name": 1, "stock": 1}))
print("low stock (< 5):       ", products.count_documents({"stock": {"$lt": 5}}))
print("in category Laptops:   ", products.count_documents({"category.name": "Laptops"}))  # a nested field
print("cheaper than 20:       ", products.count_documents({"price": {"$lt": Decimal128("20")}}))
print("orders to ship:        ", db.orders.count_documents({"status": {"$in": ["paid", "pending"]}}))
print("users with no birth year:", db.users.count_documents({"birth_year": {"$exists": False}}))
print("posts tagged mongodb:  ", db.posts.count_documents({"tags": "mongodb"}))  # equality on an array: contains
print("drafts (never published):", db.posts.count_documents({"published_at": {"$exists": False}}))

# %% [markdown]
# Two rules about arrays are worth learning by heart:
#
# * `{"tags": "mongodb"}` matches when **any** element equals `"mongodb"`.
# * Conditions on fields of array elements are checked **independently**: `{"items.quantity":
#   {"$gte": 5}, "items.unit_price": {"$gt": 500}}` matches an order with one item of 5 cheap
#   things and another of 1 expensive thing. To require **one element** meeting both, use
#   `$elemMatch`.

# %%
loose = {"items.quantity": {"$gte": 5}, "items.unit_price": {"$gt": Decimal128("500")}}
strict = {"items": {"$elemMatch": {"quantity": {"$gte": 5}, "unit_price": {"$gt": Decimal128("500")}}}}
print("conditions on any elements:", db.orders.count_documents(loose))
print("both on the same element:  ", db.orders.count_documents(strict))

# %% [markdown]
# **Projection** chooses the fields to return: `{"name": 1, "price": 1}` includes (and `_id`
# comes along unless you say `"_id": 0`), `{"attributes": 0}` excludes. Dot notation works here
# too, and `{"comments": {"$slice": -2}}` returns only the last two elements of an array.
# **Sort** with a list of `(field, direction)` pairs and always add a unique tie-breaker (`_id`)
# when the order matters: equal values otherwise come back in no defined order. **Limit** and
# **skip** page through results.

# %%
cursor = (products.find({"category.name": "Laptops", "stock": {"$gt": 0}},
                        {"_id": 0, "name": 1, "price": 1, "category.name": 1})
          .sort([("price", -1), ("_id", 1)])
          .limit(3))
for doc in cursor:
    print(doc)

# %%
page_size = 5
for page in range(2):  # pages 1 and 2 of the cheapest products
    docs = products.find({}, {"_id": 1, "price": 1}).sort([("price", 1), ("_id", 1)]).skip(page * page_size).limit(page_size)
    print(f"page {page + 1}:", [(d["_id"], str(d["price"])) for d in docs])

# %% [markdown]
# `skip(n)` still walks past `n` documents, so deep pages get slower; chapter 07 measures that
# and replaces it with *keyset* pagination (`{"_id": {"$gt": last_seen}}`).
#
# `$regex` finds text by pattern. The shop's e-mails contain a trap for exactly this: a few have
# stray spaces or capitals. `$or` combines alternatives, and `distinct` lists the values a field
# takes.

# %%
messy = {"$or": [{"email": {"$regex": r"^\s|\s$"}}, {"email": {"$regex": "[A-Z]"}}]}
print("messy e-mails:", db.users.count_documents(messy))
for user in db.users.find(messy, {"_id": 1, "email": 1}).sort("_id", 1).limit(3):
    print(user)
print("order statuses:", sorted(db.orders.distinct("status")))

# %% [markdown]
# ### Exercise 05.2 · Filter, project, sort (warm-up)
#
# Write `in_stock_under(products, category, max_price)` that returns a **list** of the products
# of the category named `category` (the field `category.name`) that are not discontinued
# (`is_discontinued` is `False`), have stock (`stock > 0`), and cost at most `max_price`.
#
# * `max_price` is a `decimal.Decimal`. PyMongo cannot send a `Decimal` as it is: wrap it,
#   `Decimal128(max_price)`.
# * Each document has exactly the fields `name` and `price` (no `_id`).
# * Sort by `price` ascending, then by `name` ascending.
#
# The check compares your list, in order, with the answer computed from the data; hidden tests
# add products and try other categories.

# %% nbgrader={"grade": false, "grade_id": "ex05-2-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def in_stock_under(products, category, max_price):
    query = {"category.name": category, "is_discontinued": False, "stock": {"$gt": 0},
             "price": {"$lte": Decimal128(max_price)}}
    return list(products.find(query, {"_id": 0, "name": 1, "price": 1}).sort([("price", 1), ("name", 1)]))
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-2-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.in_stock_under(in_stock_under, course)
### BEGIN HIDDEN TESTS
check.in_stock_under(in_stock_under, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Changing documents: updates, upserts, deletes
#
# An update has two parts: a **filter** (which documents) and an **update document** made of
# **operators** (what to change). The server applies it in place, **atomically for each
# document**: no other client ever sees half of an update, and two `$inc` from two clients never
# lose one another.
#
# | Operator | Does | Example |
# |---|---|---|
# | `$set`, `$unset` | set or remove fields (dot notation for nested ones) | `{"$set": {"attributes.color": "red"}}` |
# | `$inc` | add to a number (negative to subtract) | `{"$inc": {"stock": -1}}` |
# | `$min`, `$max` | keep the smaller / larger of old and new | `{"$max": {"last_seen": now}}` |
# | `$push` | append to an array (`$each`, `$sort`, `$slice` for many, ordered, capped) | `{"$push": {"comments": c}}` |
# | `$addToSet` | append if not already there | `{"$addToSet": {"tags": "sale"}}` |
# | `$pull` | remove matching elements | `{"$pull": {"tags": "draft"}}` |
# | `$setOnInsert` | set only when an upsert inserts | `{"$setOnInsert": {"created_at": now}}` |
#
# `update_one` changes the first match, `update_many` all of them; both return `matched_count`
# and `modified_count` (0 when the new values equal the old ones). Let us work on a copy of three
# posts, so the shop's own posts stay as they are.

# %%
demo_posts = db.demo_posts
demo_posts.drop()
demo_posts.insert_many(db.posts.find({"_id": {"$in": [4, 7, 9]}}, {"comments": {"$slice": -3}}))

r = demo_posts.update_one({"_id": 7}, {"$set": {"seo.slug": "keyset-pagination", "seo.noindex": False}})
print("matched", r.matched_count, "modified", r.modified_count)
r = demo_posts.update_one({"_id": 7}, {"$set": {"seo.slug": "keyset-pagination"}})
print("same value again: matched", r.matched_count, "modified", r.modified_count)

demo_posts.update_one({"_id": 7}, {"$inc": {"views": 1}, "$addToSet": {"tags": {"$each": ["python", "sql"]}},
                                   "$unset": {"seo.noindex": ""}})
pprint(demo_posts.find_one({"_id": 7}, {"_id": 0, "views": 1, "tags": 1, "seo": 1}))

# %% [markdown]
# Updating a nested field with dot notation (`"seo.slug"`) touches that field only. Writing
# `{"$set": {"seo": {"slug": ...}}}` instead replaces the whole `seo` sub-document, dropping its
# other fields: a common way to lose data.
#
# `$push` with `$each`, `$sort` and `$slice` appends, keeps the array ordered and caps its length
# in one atomic step; here we keep only the 4 newest comments:

# %%
now = dt.datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
new_comments = [{"_id": 90001 + i, "user_id": 12, "body": text, "created_at": now + dt.timedelta(minutes=i)}
                for i, text in enumerate(["First!", "Thanks, very clear.", "What about sharding?"])]
demo_posts.update_one({"_id": 4}, {"$push": {"comments": {"$each": new_comments,
                                                          "$sort": {"created_at": 1}, "$slice": -4}}})
for c in demo_posts.find_one({"_id": 4})["comments"]:
    print(c["_id"], c["created_at"].isoformat(), c["body"])

# %% [markdown]
# ### Upserts
#
# `upsert=True` means: update the matching document, or **insert** one if none matches. The new
# document takes the equality fields of the filter, then the update is applied to it;
# `$setOnInsert` fields are written only in that case. This is how you keep counters without
# first checking whether the counter exists (which would race with other clients).

# %%
daily = db.daily_visits
daily.drop()
for _ in range(3):
    r = daily.update_one({"_id": "2026-06-30"},
                         {"$inc": {"visits": 1}, "$setOnInsert": {"first_visit_at": now}},
                         upsert=True)
    print("upserted_id:", r.upserted_id, "| matched:", r.matched_count)
print(daily.find_one({"_id": "2026-06-30"}))

# %% [markdown]
# `find_one_and_update` updates **and returns** the document in one atomic step, before or after
# the change (`ReturnDocument.AFTER`). A guard in the filter turns it into a safe reservation:
# the stock is decremented only if enough is left, and `None` tells you it was not.

# %%
def reserve(product_id, quantity):
    return products.find_one_and_update(
        {"_id": product_id, "stock": {"$gte": quantity}},
        {"$inc": {"stock": -quantity}},
        projection={"_id": 1, "stock": 1},
        return_document=ReturnDocument.AFTER,
    )

print("stock before:", products.find_one({"_id": 63}, {"stock": 1}))
print("reserve 2:   ", reserve(63, 2))
print("reserve 999: ", reserve(63, 999))
products.update_one({"_id": 63}, {"$inc": {"stock": 2}})  # give the 2 back: the exercises use the stock
print("after giving them back:", products.find_one({"_id": 63}, {"stock": 1}))

# %% [markdown]
# `delete_one` and `delete_many` take a filter and return `deleted_count`; `replace_one` swaps a
# whole document for a new one (keeping its `_id`). `update_many({}, ...)` and
# `delete_many({})` act on **every** document: an empty filter matches all.

# %%
print("deleted one:", notes.delete_one({"_id": "welcome"}).deleted_count)
print("deleted many:", notes.delete_many({"_id": {"$regex": "^note-"}}).deleted_count)
print("left:", notes.count_documents({}))

# %% [markdown]
# ### A classic mistake: `$inc` inside `$set`
#
# A widely copied tutorial records user activity like this:
#
# ```python
# def update_document(self, collection, query, update):
#     result = self.db[collection].update_many(query, {"$set": update})
#     return result.modified_count
#
# stats_update = {"last_activity": datetime.utcnow(), "activity_count": {"$inc": 1}}
# mongo.update_document("user_stats", {"user_id": user_id}, stats_update)
# ```
#
# Three things are wrong. The `$inc` sits **inside** `$set`, so it is not an operator but a
# value: `$set` stores the literal sub-document `{"$inc": 1}`. Without `upsert=True`, a user
# without a stats document yet is never counted (zero documents match). And `datetime.utcnow()` is
# deprecated since Python 3.12 and returns a naive datetime; use `datetime.now(timezone.utc)`.
# Let us watch the first two happen:

# %%
stats = db.demo_user_stats
stats.drop()
stats.insert_one({"user_id": 1, "activity_count": 0})

wrong = {"$set": {"last_activity": now, "activity_count": {"$inc": 1}}}
print("existing user: modified", stats.update_many({"user_id": 1}, wrong).modified_count)
print("new user:      matched ", stats.update_many({"user_id": 2}, wrong).matched_count)
print("stored:", stats.find_one({"user_id": 1}, {"_id": 0}))
try:
    stats.update_one({"user_id": 1}, {"$inc": {"activity_count": 1}})
except WriteError as exc:
    print(f"the next correct $inc fails, code {exc.code}:", exc.details["errmsg"].split(" :: caused by :: ")[-1].split(". ")[0])

# %% [markdown]
# MongoDB 5.0 and later accept field names that start with `$` in stored values, so the bad
# update **succeeds silently** and leaves junk behind; the error only comes later, when a correct
# `$inc` meets a sub-document (code 14, `TypeMismatch`). Older servers refused it at once (code
# 52, "The dollar ($) prefixed field '$inc' ... is not valid for storage"). The right form puts
# each operator at the top level, and upserts:

# %%
stats.drop()
for user_id in (1, 1, 2):
    stats.update_one({"user_id": user_id},
                     {"$set": {"last_activity": now}, "$inc": {"activity_count": 1}},
                     upsert=True)
for doc in stats.find({}, {"_id": 0}).sort("user_id", 1):
    print(doc)

# %% [markdown]
# ### Exercise 05.3 · Nested update: `$push` and `$set` (practice)
#
# Write `add_comment(posts, post_id, comment)` that adds the dict `comment` (with `_id`,
# `user_id`, `body`, `created_at`) to the post `post_id`, in **one** `update_one`:
#
# * push it onto `comments`, keeping the array sorted by `created_at` and at most **50** long
#   (the oldest drop off);
# * increase the nested counter `activity.comment_count` by 1;
# * set `activity.last_comment_at` to the **newest** comment time seen (a late-arriving older
#   comment must not move it back: think `$max`);
# * leave every other field (including other fields of `activity`) as it is;
# * return `True` if a post was modified, `False` if no post has that id (do not create one).
#
# The check runs it on copies of posts (one with more than 50 comments) and compares the stored
# documents with what these rules give.

# %% nbgrader={"grade": false, "grade_id": "ex05-3-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def add_comment(posts, post_id, comment):
    result = posts.update_one(
        {"_id": post_id},
        {"$push": {"comments": {"$each": [comment], "$sort": {"created_at": 1}, "$slice": -50}},
         "$inc": {"activity.comment_count": 1},
         "$max": {"activity.last_comment_at": comment["created_at"]}},
    )
    return result.modified_count == 1
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-3-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.add_comment(add_comment, course)
### BEGIN HIDDEN TESTS
check.add_comment(add_comment, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 05.4 · Find and fix: the counter that never counts
#
# This function, adapted from the tutorial above, should keep one document per user in `stats`
# with `user_id`, `login_count` and `last_login`:
#
# ```python
# def record_login(stats, user_id, at):
#     stats.update_many({"user_id": user_id},
#                       {"$set": {"last_login": at, "login_count": {"$inc": 1}}})
# ```
#
# Write a correct `record_login(stats, user_id, at)`:
#
# * the first login of a user creates the document (`login_count` 1); each later login adds 1,
#   and the count must stay exact when several requests record logins at the same time;
# * `last_login` is the latest login time recorded, even when an older login arrives late;
# * an existing document keeps its other fields.
#
# The check records logins (hidden tests: out of order, with another client recording a login
# between your function's reads and writes, on a document that has other fields) and reads the
# documents back.

# %% nbgrader={"grade": false, "grade_id": "ex05-4-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def record_login(stats, user_id, at):
    stats.update_one({"user_id": user_id},
                     {"$inc": {"login_count": 1}, "$max": {"last_login": at}},
                     upsert=True)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-4-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.record_login(record_login, course)
### BEGIN HIDDEN TESTS
check.record_login(record_login, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Aggregation pipelines
#
# `find` filters and shapes documents one at a time. To group, join, compute and reshape, MongoDB
# has the **aggregation pipeline**: a list of stages, each taking the stream of documents from the
# previous one.
#
# ```mermaid
# flowchart LR
#     A[(orders)] --> M["$match<br/>keep paid orders"] --> U["$unwind<br/>one doc per item"]
#     U --> G["$group<br/>sum per product"] --> L["$lookup<br/>join products"]
#     L --> S["$sort"] --> Li["$limit"] --> P["$project<br/>rename, round"] --> R([results])
# ```
#
# | Stage | SQL cousin | Does |
# |---|---|---|
# | `$match` | `WHERE` / `HAVING` | keeps documents that match a filter (put it first: it can use indexes) |
# | `$project`, `$set` | `SELECT` list | keeps, drops, renames and computes fields |
# | `$unwind` | (unnesting) | one output document per element of an array |
# | `$group` | `GROUP BY` | one document per distinct `_id`, with accumulators `$sum`, `$avg`, `$min`, `$max`, `$push`, `$addToSet`, `$first` |
# | `$lookup` | `LEFT OUTER JOIN` | adds an array of matching documents from another collection |
# | `$sort`, `$skip`, `$limit` | `ORDER BY`, `OFFSET`, `LIMIT` | order and page |
# | `$count`, `$facet`, `$bucket` | | count; several pipelines at once; histograms |
#
# Field paths are written `"$field"` inside stages. A first pipeline: orders per status.

# %%
pipeline = [
    {"$group": {"_id": "$status", "orders": {"$sum": 1}}},
    {"$sort": {"orders": -1, "_id": 1}},
]
for row in db.orders.aggregate(pipeline):
    print(row)

# %% [markdown]
# `$unwind` turns one order with three items into three documents, each with a single item in
# `items`; that is how you get at array elements for grouping.

# %%
for doc in db.orders.aggregate([{"$match": {"_id": 1}}, {"$unwind": "$items"},
                                {"$project": {"items.name": 1, "items.quantity": 1}}]):
    print(doc)

# %% [markdown]
# **Top customers**: sum the totals of orders that count as revenue (not cancelled or refunded)
# per user, keep the five largest, then `$lookup` their e-mail in `users`. `$lookup` adds an
# **array** (`as`) of the matching documents; `$unwind` turns it into a sub-document. Group
# before you look up: five lookups instead of six thousand.

# %%
top_customers = [
    {"$match": {"status": {"$nin": ["cancelled", "refunded"]}}},
    {"$group": {"_id": "$user_id", "spent": {"$sum": "$total"}, "orders": {"$sum": 1}}},
    {"$sort": {"spent": -1, "_id": 1}},
    {"$limit": 5},
    {"$lookup": {"from": "users", "localField": "_id", "foreignField": "_id", "as": "user"}},
    {"$unwind": "$user"},
    {"$project": {"_id": 0, "user_id": "$_id", "name": "$user.name", "email": "$user.email",
                  "orders": 1, "spent": 1}},
]
for row in db.orders.aggregate(top_customers):
    print(row)

# %% [markdown]
# **Rating averages**: `$avg` per product over the reviews, only for products with at least 10
# reviews (a `$match` *after* `$group` works like `HAVING`), rounded with `$round` in the
# projection.

# %%
best_rated = [
    {"$group": {"_id": "$product_id", "reviews": {"$sum": 1}, "avg_rating": {"$avg": "$rating"}}},
    {"$match": {"reviews": {"$gte": 10}}},
    {"$sort": {"avg_rating": -1, "_id": 1}},
    {"$limit": 5},
    {"$lookup": {"from": "products", "localField": "_id", "foreignField": "_id", "as": "product"}},
    {"$unwind": "$product"},
    {"$project": {"_id": 0, "product": "$product.name", "reviews": 1, "avg_rating": {"$round": ["$avg_rating", 2]}}},
]
for row in db.reviews.aggregate(best_rated):
    print(row)

# %% [markdown]
# ### Money: `Decimal128`, never `float`
#
# A binary `float` cannot hold most decimal fractions exactly, and the errors add up. The shop
# stores money as **`Decimal128`**, BSON's decimal type: `$sum` and `$multiply` on `Decimal128`
# values stay exact on the server.

# %%
print("0.1 + 0.2 =", 0.1 + 0.2)
totals = [o["total"] for o in db.orders.find({}, {"total": 1})]
as_float = sum(float(str(t)) for t in totals)
as_decimal = sum((t.to_decimal() for t in totals), Decimal("0"))
print("sum as float:  ", repr(as_float))
print("sum as Decimal:", as_decimal)
server_sum = next(db.orders.aggregate([{"$group": {"_id": None, "sum": {"$sum": "$total"}}}]))["sum"]
print("sum on server: ", repr(server_sum), "| equals the Decimal sum:", server_sum.to_decimal() == as_decimal)

# %% [markdown]
# In Python, `Decimal128` is only a container: convert it with `.to_decimal()` to compute, and
# wrap a `Decimal` with `Decimal128(...)` to store it. PyMongo refuses a bare `Decimal` rather
# than guess:

# %%
price = db.products.find_one({"_id": 1})["price"]
print(repr(price), "->", repr(price.to_decimal() * 3))
try:
    price + 1
except TypeError as exc:
    print("TypeError:", exc)
try:
    db.scratch.insert_one({"price": Decimal("19.99")})
except Exception as exc:  # bson.errors.InvalidDocument
    print(type(exc).__name__ + ":", str(exc).split(",")[0])
db.scratch.insert_one({"price": Decimal128(Decimal("19.99"))})
print("stored:", db.scratch.find_one({}, {"_id": 0}))

# %% [markdown]
# (A `bson.codec_options.TypeRegistry` with a `TypeCodec` can convert `Decimal` both ways
# automatically; explicit conversion, as here, is easier to read.)
#
# ### Exercise 05.5 · Aggregation: revenue by category (practice)
#
# Write `revenue_pipeline`, a pipeline to run on `orders`, that returns the **five categories with
# the most revenue in June 2026**:
#
# * count only orders placed in June 2026 (`ordered_at` from 2026-06-01 up to, not including,
#   2026-07-01, UTC) whose `status` is not `"cancelled"` or `"refunded"`;
# * the revenue of an item is `quantity × unit_price`; the category of an item is the
#   `category.name` of its product (`items.product_id` → `products._id`: a `$lookup`);
# * each result has exactly the fields `category`, `revenue` (a `Decimal128`: no conversion to
#   double) and `units` (total quantity), sorted by `revenue` descending, then `category`.
#
# The check runs your pipeline (`db.orders.aggregate(revenue_pipeline)`) and compares its result
# with one computed from the data; hidden tests add orders first.

# %% nbgrader={"grade": false, "grade_id": "ex05-5-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
revenue_pipeline = [
    {"$match": {"ordered_at": {"$gte": dt.datetime(2026, 6, 1, tzinfo=UTC), "$lt": dt.datetime(2026, 7, 1, tzinfo=UTC)},
                "status": {"$nin": ["cancelled", "refunded"]}}},
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
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-5-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.revenue_by_category(revenue_pipeline, course)
### BEGIN HIDDEN TESTS
check.revenue_by_category(revenue_pipeline, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Indexes and `explain()`
#
# Without an index, a query reads every document of the collection (a **COLLSCAN**). An index is
# a sorted structure of field values pointing to documents (a B-tree): the query walks a small
# range of it (**IXSCAN**) and fetches only the documents it needs (**FETCH**). `explain()` shows
# the plan the server chose and what it cost. The helper below keeps the parts that matter:
# the stages, documents returned, index keys examined and documents examined.

# %%
def plan(cursor):
    """The winning plan of a find() cursor: stages (outermost first) and what it examined."""
    explained = cursor.explain()
    node = explained["queryPlanner"]["winningPlan"]
    node = node.get("queryPlan", node)  # MongoDB's slot-based engine nests the plan one level down
    stages = []
    while node:
        stages.append(node["stage"] + (f"({node['indexName']})" if "indexName" in node else ""))
        node = node.get("inputStage")
    stats = explained["executionStats"]
    return {"plan": " <- ".join(stages), "returned": stats["nReturned"],
            "keys examined": stats["totalKeysExamined"], "docs examined": stats["totalDocsExamined"]}

users = db.users
print(sorted(users.index_information()))  # every collection has the unique index on _id
email = users.find_one({"_id": 1234})["email"]
print("before:", plan(users.find({"email": email})))

# %% [markdown]
# ### Single-field and unique indexes
#
# `create_index` builds an index (and does nothing if the same one exists); it returns its name.
# `unique=True` also makes the index a **rule**: a second document with the same value is
# refused. Beware of data that differs only by case or spaces: the shop's messy e-mails would
# slip past this index as "different" addresses. Clean values before you store them, or build
# the index with a case-insensitive collation (`collation=Collation("en", strength=2)`).

# %%
print(users.create_index("email", unique=True))
print("after: ", plan(users.find({"email": email})))
try:
    users.insert_one({"_id": 5001, "email": email, "name": "Someone Else"})
except DuplicateKeyError as exc:
    print("refused:", exc.code, exc.details["keyValue"])

# %% [markdown]
# The unique index turns "one account per e-mail" into a rule the server enforces for every
# client at once. Checking first (`find_one`, then `insert_one` if nothing was found) does not:
# two requests can both find nothing and both insert. Insert, and treat `DuplicateKeyError` as
# the answer "already there".
#
# ### Exercise 05.6 · One subscription per address (practice)
#
# The shop's newsletter keeps one document per subscriber in a collection of its own. Write three
# functions of that collection:
#
# * `prepare_subscriptions(subscriptions)` creates a **unique** index on `email` and returns its
#   name;
# * `subscribe(subscriptions, email)` stores `{"email": ..., "since": <now, UTC>}` and returns
#   `True`, or returns `False` when the address is already subscribed. Store the address
#   cleaned (`email.strip().lower()`), so that `" Ann@Example.org"` and `"ann@example.org"` are one
#   subscriber. Many requests run at once: let the unique index refuse the second insert
#   (`DuplicateKeyError`) rather than looking first;
# * `unsubscribe(subscriptions, email)` deletes the subscription of that (cleaned) address and
#   returns `True`, or `False` when there was none (`deleted_count`).
#
# The check runs them on an empty collection of its own; hidden tests add another request that
# subscribes the same address between your function's reads and its writes.

# %% nbgrader={"grade": false, "grade_id": "ex05-6-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def prepare_subscriptions(subscriptions):
    return subscriptions.create_index("email", unique=True)


def subscribe(subscriptions, email):
    try:
        subscriptions.insert_one({"email": email.strip().lower(), "since": dt.datetime.now(UTC)})
    except DuplicateKeyError:  # the unique index says: already subscribed
        return False
    return True


def unsubscribe(subscriptions, email):
    return subscriptions.delete_one({"email": email.strip().lower()}).deleted_count == 1
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-6-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.subscriptions(prepare_subscriptions, subscribe, unsubscribe, course)
### BEGIN HIDDEN TESTS
check.subscriptions(prepare_subscriptions, subscribe, unsubscribe, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Compound indexes and the ESR rule
#
# A **compound index** sorts by its first field, then by the second within equal firsts, and so
# on, like a phone book sorted by surname then first name. A query can use it when it constrains
# a **prefix** of its fields. For a query with equality tests, a sort and a range, order the
# fields by the **ESR rule**:
#
# 1. **E**quality fields first (`shipping_country = "DE"`, `status = "delivered"`): they narrow
#    the index to one contiguous stretch;
# 2. then the **S**ort field: inside that stretch the index is already in sort order, so no
#    in-memory sort is needed;
# 3. then **R**ange fields (`ordered_at >= 2026-01-01`).
#
# Our query sorts on the field it filters by range, so its index is simply
# `(shipping_country, status, ordered_at)`.

# %%
orders = db.orders
recent_de = {"shipping_country": "DE", "status": "delivered",
             "ordered_at": {"$gte": dt.datetime(2026, 1, 1, tzinfo=UTC)}}
before = plan(orders.find(recent_de).sort("ordered_at", -1))
print("before:", before)
print(orders.create_index([("shipping_country", 1), ("status", 1), ("ordered_at", -1)]))
after = plan(orders.find(recent_de).sort("ordered_at", -1))
print("after: ", after)

# %% [markdown]
# The collection scan examined every order to return 242; with the index the server examined
# exactly the 242 index keys and documents it returned. Real MongoDB also reads this index in
# `ordered_at` order, so it needs no in-memory sort: its plan is `FETCH <- IXSCAN(...)`. The
# course's stand-in still puts a `SORT` on top (it sorts the 242 documents it fetched); the
# cell after the plot says which of the two you are looking at.
#
# Indexes are not free: every insert and update must change every index of the collection, and
# indexes take memory. Index what your frequent queries filter and sort on, and drop what they
# do not use (`drop_index(name)`). Chapter 07 measures both sides.

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 2.2))
ax.barh(["no index (COLLSCAN)", "compound index (IXSCAN)"], [before["docs examined"], after["docs examined"]],
        color=["#c44e52", "#55a868"])
ax.set_xlabel(f"documents examined to return {after['returned']} orders")
for y, value in enumerate([before["docs examined"], after["docs examined"]]):
    ax.text(value, y, f" {value:,}", va="center")
ax.set_xlim(0, before["docs examined"] * 1.2)
plt.tight_layout()
plt.show()

# %%
print("documents examined, no index vs index:", before["docs examined"], "vs", after["docs examined"])
print("index used:", "IXSCAN" in after["plan"], "| examined only what it returned:",
      after["docs examined"] == after["returned"])
if "SORT" in after["plan"].split(" <- "):
    print("in-memory SORT above the index scan: yes. This server sorts the orders it fetched; real MongoDB 8")
    print("reads the index in ordered_at order instead, and its plan is", after["plan"].replace("SORT <- ", ""))
else:
    print("in-memory SORT: none, the index hands the orders over in ordered_at order")

# %% [markdown]
# ### Exercise 05.7 · Find and fix: the slow query
#
# The shop's account page lists a user's recent purchases with this query, and someone already
# "indexed the sort field":

# %%
events = db.events
events.create_index([("at", -1)])

def recent_purchases(events, user_id, since):
    return list(events.find({"user_id": user_id, "type": "purchase", "at": {"$gte": since}}).sort("at", -1))

buyer = next(events.aggregate([{"$match": {"type": "purchase", "user_id": {"$exists": True}}},
                                {"$group": {"_id": "$user_id", "n": {"$sum": 1}}}, {"$sort": {"n": -1, "_id": 1}}]))["_id"]
since = dt.datetime(2024, 1, 1, tzinfo=UTC)
slow = plan(events.find({"user_id": buyer, "type": "purchase", "at": {"$gte": since}}).sort("at", -1))
print("user", buyer, slow)
print("documents examined per document returned:", slow["docs examined"] // max(slow["returned"], 1))
if slow["plan"].endswith("COLLSCAN"):  # the stand-in's planner: it ignores at_-1 for this query
    in_range = events.count_documents({"at": {"$gte": since}})
    print("This server scanned the whole collection and left the at_-1 index unused. Real MongoDB 8 uses")
    print(f"the index for the range on at (plan FETCH <- IXSCAN(at_-1), no SORT): it walks all {in_range:,} events")
    print(f"since {since:%Y-%m-%d}, newest first, fetching each to test user_id and type: about {in_range:,} keys")
    print(f"and documents examined for {slow['returned']} purchases. Either way, the index does not fit the query.")

# %% [markdown]
# Thousands of documents examined for a handful of purchases. Write
# `create_purchase_index(events)` that creates the index this query needs (think ESR) and
# returns its name. Do not change the query.
#
# The check calls your function, then asks `explain()` about the query for several users and
# dates: the plan must use an index scan, examine exactly the documents it returns, and examine
# no more index keys than that (plus at most 2 at the edges). With real MongoDB it must also need
# no in-memory `SORT` (the stand-in always lists one, so there the check does not ask).

# %% nbgrader={"grade": false, "grade_id": "ex05-7-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def create_purchase_index(events):
    # Equality fields first (user_id, type), then the sort/range field (at)
    return events.create_index([("user_id", 1), ("type", 1), ("at", -1)])
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-7-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.purchase_index(create_purchase_index, course)
### BEGIN HIDDEN TESTS
check.purchase_index(create_purchase_index, course, hidden=True)
### END HIDDEN TESTS

# %%
fast = plan(events.find({"user_id": buyer, "type": "purchase", "at": {"$gte": since}}).sort("at", -1))
print("user", buyer, fast)
print("same purchases as before:", len(recent_purchases(events, buyer, since)) == slow["returned"])

# %% [markdown]
# ### Text indexes and `$text` search
#
# A **text index** splits string fields into words, drops stop words ("the", "by"), reduces each
# word to its stem ("sharding" → "shard", "replicas" → "replica") and indexes the stems. A
# `$text` query then finds documents containing any of the search words, and
# `{"$meta": "textScore"}` gives each a relevance score (more matches, in shorter fields, in
# fields with a higher `weight`, score higher). A collection has at most one text index, which
# can cover several fields.
#
# The next cell tries to create one. The course's stand-in has no text indexes and refuses with
# error code 67; the cell says so and the notebook goes on. With real MongoDB the index is
# created and the following cell runs the real search.

# %%
try:
    db.posts.create_index([("title", "text"), ("body", "text")], weights={"title": 3}, name="posts_text")
    HAS_TEXT_INDEX = True
    print("text index created: the next cell runs a real $text search")
except OperationFailure as exc:
    if exc.code != 67:  # 67 = CannotCreateIndex; anything else is a real problem
        raise
    HAS_TEXT_INDEX = False
    print("This server (the course's MongoDB stand-in) has no text indexes (error 67, CannotCreateIndex).")
    print("With real MongoDB the next cell returns the posts ranked by text score; here it prints")
    print("what real MongoDB returns, then section 'Without a text index' searches with $regex instead.")

# %%
search = "sharding replicas"
text_query = {"$text": {"$search": search}}

# Recorded with MongoDB 8.0 and scale="small" (the course's generated shop, the same at every run).
REAL_MONGODB_OUTPUT = """\
matching posts: 43
  10  Read replicas: in practice                score 2.58
 118  Read replicas: the basics                 score 2.57
   6  Sharding by key: the basics               score 2.56
 178  Read replicas: in practice                score 2.56
  44  Sharding by key: in practice              score 2.56"""

if HAS_TEXT_INDEX:
    print("matching posts:", db.posts.count_documents(text_query))
    ranked = (db.posts.find(text_query, {"title": 1, "score": {"$meta": "textScore"}})
              .sort([("score", {"$meta": "textScore"}), ("_id", 1)])
              .limit(5))
    for post in ranked:
        print(f"{post['_id']:>4}  {post['title']:<40} score {post['score']:.2f}")
elif course.scale == "small":
    print("What this cell prints with real MongoDB 8.0 (the course's Docker image) on the small data set:")
    print(REAL_MONGODB_OUTPUT)
else:
    print(f"No reference output is stored for scale={course.scale!r} (only for 'small'): run this notebook")
    print("against real MongoDB (Docker, Binder) to see the ranked posts.")

# %% [markdown]
# **Without a text index**, the honest fallback is a case-insensitive `$regex` on the fields. It
# finds the same posts here (this data has no other forms of the two words), but it cannot use an
# index (an unanchored pattern must be tried on every document: a collection scan), knows
# nothing of stems, stop words or languages, and gives no relevance score, so we can only order
# by something else, such as views. For real search on large collections, use a text index, or a
# search engine (MongoDB Atlas Search, OpenSearch, PostgreSQL's full-text search).

# %%
pattern = "shard|replica"
regex_query = {"$or": [{"title": {"$regex": pattern, "$options": "i"}}, {"body": {"$regex": pattern, "$options": "i"}}]}
print("matching posts (regex):", db.posts.count_documents(regex_query))
for post in db.posts.find(regex_query, {"title": 1, "views": 1}).sort([("views", -1), ("_id", 1)]).limit(5):
    print(f"{post['_id']:>4}  {post['title']:<40} views {post['views']}")
print(plan(db.posts.find(regex_query))["plan"])

# %% [markdown]
# ## 6. Schema validation with `$jsonSchema`
#
# A collection accepts documents of any shape unless you give it a **validator**. The validator
# is a query document, usually a `$jsonSchema` (JSON Schema with BSON types): required fields,
# `bsonType`s, ranges, lengths, patterns, `enum`s. Two options say how strict to be:
#
# * `validationLevel`: `"strict"` (default) checks every insert and update; `"moderate"` lets
#   updates to documents that were already invalid through (useful when adding rules to old data);
# * `validationAction`: `"error"` (default) rejects the write; `"warn"` accepts it and writes a
#   warning to the server's log.
#
# Give the validator when you create the collection, or add one later with the `collMod` command.

# %%
signup_schema = {"$jsonSchema": {
    "bsonType": "object",
    "required": ["email", "country", "signup_at"],
    "properties": {
        "email": {"bsonType": "string", "pattern": r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"},
        "country": {"bsonType": "string", "pattern": "^[A-Z]{2}$", "description": "ISO code, upper case"},
        "signup_at": {"bsonType": "date"},
        "newsletter": {"bsonType": "bool"},
    },
}}
db.drop_collection("signups")
signups = db.create_collection("signups", validator=signup_schema)
signups.insert_one({"email": "ann@example.org", "country": "DE", "signup_at": now, "newsletter": True})
print("valid signup stored:", signups.count_documents({}))

# %% [markdown]
# A rejected write raises `WriteError` with code **121** ("Document failed validation"). Its
# `details["errInfo"]` says exactly which rule failed, as a nested structure; a short function
# turns it into one line per problem:

# %%
def why_rejected(error):
    """One line per unsatisfied rule in the errInfo of a failed validation."""
    lines = []

    def walk(rules, where):
        for rule in rules:
            op = rule.get("operatorName")
            if op == "properties":
                for prop in rule["propertiesNotSatisfied"]:
                    walk(prop["details"], f"{where}{prop['propertyName']}.")
            elif op == "required":
                lines.append(f"{where or 'document: '}missing {rule['missingProperties']}")
            elif op == "additionalProperties":
                lines.append(f"{where or 'document: '}fields not allowed {rule['additionalProperties']}")
            elif op in ("oneOf", "anyOf", "allOf"):
                lines.append(f"{where or 'document: '}does not fit {op} of the alternatives")
            else:
                got = f" (got {rule['consideredValue']!r})" if "consideredValue" in rule else ""
                lines.append(f"{where.rstrip('.')}: {op} {rule.get('specifiedAs', {}).get(op)!r}: "
                             f"{rule.get('reason', 'not satisfied')}{got}")

    walk(error.details["errInfo"]["details"]["schemaRulesNotSatisfied"], "")
    return lines

try:
    signups.insert_one({"email": "bob@example", "country": "de", "signup_at": "yesterday"})
except WriteError as exc:
    print("rejected, code", exc.code, "-", exc.details["errmsg"])
    for line in why_rejected(exc):
        print("  ", line)

# %% [markdown]
# `collMod` changes the rules of an existing collection. Here we add a validator to a copy of the
# users, where some old documents break it (lower-case country codes), with
# `validationLevel="moderate"` so those old documents can still be updated, and
# `validationAction="warn"` while we clean up:

# %%
db.drop_collection("users_checked")
db.users_checked.insert_many(db.users.find({}, {"email": 1, "country": 1, "signup_at": 1}))
country_rule = {"$jsonSchema": {"required": ["country"], "properties": {"country": {"pattern": "^[A-Z]{2}$"}}}}
db.command("collMod", "users_checked", validator=country_rule, validationLevel="moderate", validationAction="warn")
bad_old = db.users_checked.find_one({"country": {"$regex": "^[a-z]"}}, sort=[("_id", 1)])
print("documents that break the rule:", db.users_checked.count_documents({"$nor": [country_rule]}))
db.users_checked.update_one({"_id": bad_old["_id"]}, {"$set": {"note": "touched"}})
print("update of an old invalid document: accepted (moderate)")
db.users_checked.insert_one({"_id": 9001, "country": "xx"})
print("new invalid document: accepted with a warning in the server log (warn)")
db.command("collMod", "users_checked", validationAction="error")
try:
    db.users_checked.insert_one({"_id": 9002, "country": "yy"})
except WriteError as exc:
    print("after switching to 'error': rejected, code", exc.code)

# %% [markdown]
# `{"$nor": [validator]}` is a handy query: the documents that break the rules. Validation
# is checked by the server on every write, whichever program writes; checks in your Python code
# (pydantic, forms) are still useful for friendly messages, but only the server's rule holds for
# everyone.
#
# ### Exercise 05.8 · A `$jsonSchema` validator (practice)
#
# Write `review_validator`, a dict `{"$jsonSchema": {...}}` for a reviews collection, that accepts
# documents like the shop's reviews (`db.reviews.find_one()`) and nothing else:
#
# * required: `product_id` and `user_id` (`int`), `rating` (`int`, from 1 to 5), `title` (a
#   string of 1 to 100 characters), `created_at` (a date);
# * optional: `body` (a string);
# * no other fields than these and `_id` (`additionalProperties: False`, which then needs `_id`
#   listed in `properties` too).
#
# The check creates a collection with your validator and inserts valid reviews (which must be
# accepted) and invalid ones (which must be rejected with code 121), more of each in hidden tests.

# %% nbgrader={"grade": false, "grade_id": "ex05-8-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
review_validator = {"$jsonSchema": {
    "bsonType": "object",
    "required": ["product_id", "user_id", "rating", "title", "created_at"],
    "additionalProperties": False,
    "properties": {
        "_id": {},
        "product_id": {"bsonType": "int"},
        "user_id": {"bsonType": "int"},
        "rating": {"bsonType": "int", "minimum": 1, "maximum": 5},
        "title": {"bsonType": "string", "minLength": 1, "maxLength": 100},
        "body": {"bsonType": "string"},
        "created_at": {"bsonType": "date"},
    },
}}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-8-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.review_validator(review_validator, course)
### BEGIN HIDDEN TESTS
check.review_validator(review_validator, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Modelling documents
#
# In a relational schema you normalise first and join at query time. In MongoDB you design for
# the **queries**: data that is read together is stored together. The central choice, for every
# relationship, is **embed or reference**.
#
# | Embed (a sub-document or array inside the parent) | Reference (store the other document's `_id`) |
# |---|---|
# | read together with the parent, almost always | often read on its own |
# | belongs to one parent ("contains") | shared by many parents |
# | bounded: a few, or a few hundred | grows without bound |
# | changes with the parent (one atomic write) | changes on its own schedule |
#
# The shop's documents apply this:
#
# ```mermaid
# erDiagram
#     users ||--o{ orders : "user_id + customer copy"
#     orders ||--|{ items : "embedded"
#     products ||--o{ items : "product_id + name copy"
#     products ||--o{ reviews : "product_id"
#     users ||--o{ reviews : "user_id"
#     posts ||--o{ comments : "embedded"
#     users ||--o{ events : "user_id"
#     orders { int _id PK
#         int user_id FK
#         doc customer "extended reference"
#         array items "embedded"
#         Decimal128 total }
#     reviews { int _id PK
#         int product_id FK
#         int user_id FK }
#     posts { int _id PK
#         string kind "article or video"
#         array comments "embedded"
#         array tags "embedded" }
# ```
#
# * **Order items are embedded**: an order is always shown with its items, an order has a few, and
#   they are written once, with the order.
# * **Reviews are referenced** (`product_id`, `user_id`): a popular product collects reviews
#   without limit, and embedding them would make the product document grow forever.
# * **Comments are embedded in posts**, which is fine for a blog where a post has dozens; a post
#   with 10,000 comments would need the *subset* pattern: the newest 50 embedded (as in exercise
#   05.3), all of them in a `comments` collection.
#
# Two hard limits make "grows without bound" serious. A document is at most **16 MB**, and every
# update rewrites the whole document, so a huge array makes every write slow long before it hits
# the limit. PyMongo checks the size before it sends anything:

# %%
from bson.errors import InvalidDocument
from pymongo.errors import DocumentTooLarge

try:
    db.scratch.insert_one({"_id": "huge", "payload": "x" * (17 * 1024 * 1024)})
except (DocumentTooLarge, InvalidDocument) as exc:
    print(type(exc).__name__ + ":", str(exc).split(" - ")[0].split("(")[0].strip())
print("the largest post has", max(len(p["comments"]) for p in db.posts.find({}, {"comments._id": 1})),
      "embedded comments")

# %% [markdown]
# ### The extended reference pattern
#
# An order keeps `user_id` (the reference) **and** a copy of what order lists show: the
# customer's name and country. Listing a user's orders then needs no `$lookup`. The cost is
# duplication: the copy does not follow later changes. For an order that is what you want (the
# name at the time of the order, like the `unit_price` of an item); where the copy must stay
# current, update it where it lives when the source changes.

# %%
loaded_name = db.users.find_one({"_id": 1226})["name"]  # the copies as loaded, so that this cell can run again
db.orders.update_many({"user_id": 1226}, {"$set": {"customer.name": loaded_name}})
for o in db.orders.find({"user_id": 1226}, {"customer": 1, "ordered_at": 1, "total": 1}).sort("_id", 1).limit(3):
    print(o["_id"], o["customer"], o["ordered_at"].date(), o["total"])
renamed = db.orders.update_many({"user_id": 1226}, {"$set": {"customer.name": "Barbara Andersson-Lind"}})
print("order copies refreshed after a name change:", renamed.modified_count)

# %% [markdown]
# ### The bucket pattern
#
# One document per event means millions of tiny documents, each with its own `_id` and index
# entries. The **bucket pattern** groups events into one document per *user per day* (or per
# sensor per hour): an array of events plus running counters, capped at a maximum size so a busy
# day starts a second bucket. Reads of "a user's day" become one document; summaries read the
# counters without touching the events. This aggregation shows what the shop's events would
# look like bucketed:

# %%
last_week = {"at": {"$gte": dt.datetime(2026, 6, 24, tzinfo=UTC)}, "user_id": {"$exists": True}}
bucketed = list(db.events.aggregate([
    {"$match": last_week},
    {"$sort": {"at": 1, "_id": 1}},  # $push collects in the order documents arrive: sort them first
    {"$group": {"_id": {"user_id": "$user_id", "day": {"$dateToString": {"date": "$at", "format": "%Y-%m-%d"}}},
                "count": {"$sum": 1}, "events": {"$push": {"type": "$type", "at": "$at"}}}},
    {"$sort": {"count": -1, "_id.user_id": 1, "_id.day": 1}},
]))
print("last week's events with a user:", db.events.count_documents(last_week), "->", len(bucketed), "user-day buckets")
busiest = bucketed[0]
print("busiest bucket:", busiest["_id"], busiest["count"], "events, first:",
      busiest["events"][0]["type"], busiest["events"][0]["at"].time())

# %% [markdown]
# ### Exercise 05.9 · The bucket pattern (practice)
#
# Write `add_to_bucket(buckets, event, max_events=100)` that stores one event (a document of the
# `events` collection, always with a `user_id`) in the collection `buckets`, with **one**
# `update_one`:
#
# * a bucket has `user_id`, `day` (the UTC date of `event["at"]` as `"YYYY-MM-DD"`), `count`,
#   `by_type` (a counter per event type, e.g. `{"page_view": 3, "search": 1}`) and `events`
#   (a list of `{"type": ..., "at": ...}` in arrival order);
# * an event goes into the user's bucket for that day that has fewer than `max_events` events; if
#   there is none, a new bucket starts (hint: put `"count": {"$lt": max_events}` in the filter and
#   upsert).
#
# The check feeds the events of the busiest users to your function, then compares the buckets
# with the expected ones; hidden tests use a small `max_events` and events out of order.

# %% nbgrader={"grade": false, "grade_id": "ex05-9-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def add_to_bucket(buckets, event, max_events=100):
    day = event["at"].astimezone(UTC).strftime("%Y-%m-%d")
    buckets.update_one(
        {"user_id": event["user_id"], "day": day, "count": {"$lt": max_events}},
        {"$push": {"events": {"type": event["type"], "at": event["at"]}},
         "$inc": {"count": 1, f"by_type.{event['type']}": 1}},
        upsert=True,
    )
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-9-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.add_to_bucket(add_to_bucket, course)
### BEGIN HIDDEN TESTS
check.add_to_bucket(add_to_bucket, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Mixed content types in one collection
#
# The shop's `posts` hold **articles** (with `word_count`) and **videos** (with
# `duration_seconds`) side by side, told apart by `kind`. This *polymorphic* collection works
# because both are shown together (a feed, a tag page) and share most fields; each kind adds
# its own. Queries filter by `kind`; fields a document lacks are simply absent (not `null`);
# expressions such as `$ifNull` bridge the differences.

# %%
for row in db.posts.aggregate([
    {"$match": {"published_at": {"$exists": True}}},
    {"$group": {"_id": "$kind", "posts": {"$sum": 1}, "avg_views": {"$avg": "$views"},
                "avg_words": {"$avg": "$word_count"}, "avg_minutes": {"$avg": {"$divide": ["$duration_seconds", 60]}}}},
    {"$project": {"posts": 1, "avg_views": {"$round": ["$avg_views", 0]}, "avg_words": {"$round": ["$avg_words", 0]},
                  "avg_minutes": {"$round": ["$avg_minutes", 1]}}},
    {"$sort": {"_id": 1}},
]):
    print(row)
print("videos with a word_count:", db.posts.count_documents({"kind": "video", "word_count": {"$exists": True}}))
feed = db.posts.find({"tags": "mongodb", "published_at": {"$exists": True}},
                     {"kind": 1, "title": 1, "size": {"$ifNull": ["$word_count", "$duration_seconds"]}})
for post in feed.sort([("published_at", -1), ("_id", 1)]).limit(4):
    print(f"{post['kind']:<8} {post['title']:<40} {post['size']:>5} {'words' if post['kind'] == 'article' else 'seconds'}")

# %% [markdown]
# A validator can enforce the rules per kind with `oneOf`: a document must match exactly one of
# the alternatives.

# %%
typed_schema = {"$jsonSchema": {
    "bsonType": "object",
    "required": ["kind", "title"],
    "properties": {"kind": {"enum": ["article", "video"]}, "title": {"bsonType": "string"}},
    "oneOf": [
        {"properties": {"kind": {"enum": ["article"]}, "word_count": {"bsonType": "int"}}, "required": ["word_count"]},
        {"properties": {"kind": {"enum": ["video"]}, "duration_seconds": {"bsonType": "int"}},
         "required": ["duration_seconds"]},
    ],
}}
db.drop_collection("typed_posts")
typed = db.create_collection("typed_posts", validator=typed_schema)
typed.insert_many([{"kind": "article", "title": "Embedding vs referencing", "word_count": 900},
                   {"kind": "video", "title": "Buckets in 5 minutes", "duration_seconds": 300}])
try:
    typed.insert_one({"kind": "video", "title": "A video without a duration", "word_count": 10})
except WriteError as exc:
    print("rejected:", why_rejected(exc))
print("typed posts stored:", typed.count_documents({}))

# %% [markdown]
# ### Exercise 05.10 · Search one kind of post (practice)
#
# The blog's search page has two tabs, *Articles* and *Videos*. Write `kind_search(words, kind)`
# that returns the **filter** (a dict) for `db.posts.find(...)` that finds the **published**
# posts (those with a `published_at`) of the given `kind` (`"article"` or `"video"`) that match
# any of the words of the string `words`, through the text index of section 5 (`$text` with
# `$search`).
#
# With real MongoDB the check creates that text index on a copy of the posts, runs your filter
# and compares the posts found with its own search. The course's stand-in has no text index: there
# the check says so, checks the `$text` part of your filter by its shape, and runs the rest of it
# (kind, published) for real.

# %% nbgrader={"grade": false, "grade_id": "ex05-10-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def kind_search(words, kind):
    return {"$text": {"$search": words}, "kind": kind, "published_at": {"$exists": True}}


kind_search("sharding replicas", "video")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-10-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.kind_search(kind_search, course)
### BEGIN HIDDEN TESTS
check.kind_search(kind_search, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 8. Multi-document transactions
#
# A single update is atomic for its document, which is why embedding related data often makes
# transactions unnecessary. When one business operation must change **several documents** (move
# money between two wallets; create an order and take its items out of stock), use a
# **transaction**: all of its writes become visible together at commit, or none of them.
# MongoDB supports them on replica sets and sharded clusters (the course's servers are one-node
# replica sets).
#
# PyMongo's `session.with_transaction(callback)` starts a transaction, runs your callback,
# commits, and retries the whole callback on transient errors (a failover, a write conflict);
# an exception from the callback aborts it. Every operation inside must pass `session=session`,
# or it runs *outside* the transaction. Keep the callback short, and free of side effects other
# than database writes, since it may run more than once.
#
# ```mermaid
# sequenceDiagram
#     participant App
#     participant DB as MongoDB (primary)
#     App->>DB: start transaction (session)
#     App->>DB: wallets: alice -80 (session)
#     App->>DB: wallets: bob +80 (session)
#     alt all went well
#         App->>DB: commit: both changes visible at once
#     else an exception in the callback
#         App->>DB: abort: neither change ever visible
#     end
# ```

# %%
from pymongo import WriteConcern
from pymongo.read_concern import ReadConcern

wallets = db.wallets
wallets.drop()
wallets.insert_many([{"_id": "alice", "balance": 50}, {"_id": "bob", "balance": 10}])


def transfer(source, target, amount):
    def callback(session):
        wallets.update_one({"_id": target}, {"$inc": {"balance": amount}}, session=session)
        taken = wallets.update_one({"_id": source, "balance": {"$gte": amount}},
                                   {"$inc": {"balance": -amount}}, session=session)
        if taken.matched_count != 1:
            raise ValueError(f"{source} cannot pay {amount}")  # aborts: bob's +amount is undone too

    with client.start_session() as session:
        session.with_transaction(callback, read_concern=ReadConcern("snapshot"),
                                 write_concern=WriteConcern("majority"))


transfer("alice", "bob", 30)
print("after paying 30: ", sorted((w["_id"], w["balance"]) for w in wallets.find()))
try:
    transfer("alice", "bob", 80)
except ValueError as exc:
    print("refused:", exc)
print("after refusing 80:", sorted((w["_id"], w["balance"]) for w in wallets.find()))

# %% [markdown]
# Bob's `+80` ran first, yet his balance did not change: the abort undid it. Until the commit,
# other clients do not see a transaction's writes at all:

# %%
with client.start_session() as session:
    with session.start_transaction():
        wallets.update_one({"_id": "bob"}, {"$inc": {"balance": 5}}, session=session)
        inside = wallets.find_one({"_id": "bob"}, session=session)["balance"]
        outside = wallets.find_one({"_id": "bob"})["balance"]
        print("inside the transaction:", inside, "| another reader:", outside)
print("after commit:", wallets.find_one({"_id": "bob"})["balance"])

# %% [markdown]
# ### Exercise 05.11 · A multi-document transaction (challenge)
#
# Write `place_order(client, db, order_id, user_id, items)`, where `items` is a list of
# `(product_id, quantity)` pairs. In **one transaction**:
#
# * for each item, take `quantity` out of the product's `stock`, but only if the product exists
#   and has at least that much; otherwise raise `ValueError` (which must undo everything);
# * insert into `orders` the document `{"_id": order_id, "user_id": user_id, "status":
#   "pending", "customer": {"name": ..., "country": ...}, "ordered_at": ..., "items": [...],
#   "total": ...}`: the customer is an extended reference copied from `users`; `ordered_at` is
#   the time of the order (a timezone-aware UTC `datetime`: the date queries of sections 4 and 5
#   need it); each item is `{"product_id", "name", "quantity", "unit_price"}` with the product's
#   name and current `price`; `total` is the `Decimal128` sum of quantity × unit price;
# * return the order document.
#
# The check places an order and compares the order and the stock; then it tries orders that
# must fail (too little stock for an item; hidden: an unknown product, an order id that is
# taken) and checks that no stock changed and no order was written.

# %% nbgrader={"grade": false, "grade_id": "ex05-11-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def place_order(client, db, order_id, user_id, items):
    def callback(session):
        user = db.users.find_one({"_id": user_id}, {"name": 1, "country": 1}, session=session)
        if user is None:
            raise ValueError(f"no user {user_id}")
        lines, total = [], Decimal("0")
        for product_id, quantity in items:
            product = db.products.find_one_and_update(
                {"_id": product_id, "stock": {"$gte": quantity}},
                {"$inc": {"stock": -quantity}},
                projection={"name": 1, "price": 1},
                session=session,
            )
            if product is None:
                raise ValueError(f"product {product_id} does not exist or has less than {quantity} in stock")
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
        return session.with_transaction(callback, write_concern=WriteConcern("majority"))
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-11-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.place_order(place_order, course)
### BEGIN HIDDEN TESTS
check.place_order(place_order, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 9. CAP, consistency and scaling: what they mean for your code
#
# Production MongoDB runs as a **replica set**: one **primary** takes all writes and copies them
# to **secondaries**; if the primary fails, the others elect a new one within seconds. To grow
# beyond one machine, a **sharded cluster** splits each big collection by a **shard key** into
# ranges (or hashes) spread over several replica sets, with `mongos` routers in front.
#
# ```mermaid
# flowchart LR
#     app([your program<br/>MongoClient]) --> r1[mongos] & r2[mongos]
#     r1 & r2 --> s1 & s2
#     subgraph s1 [shard 1: user_id hash range A]
#         p1[(primary)] --> a1[(secondary)] & b1[(secondary)]
#     end
#     subgraph s2 [shard 2: user_id hash range B]
#         p2[(primary)] --> a2[(secondary)] & b2[(secondary)]
#     end
# ```
#
# **The CAP theorem** says that when the network splits the machines of a distributed database
# (a *partition*, which will happen), each side must choose between **consistency** (refuse to
# answer rather than answer with possibly stale data) and **availability** (answer anyway). You
# cannot have both during a partition. MongoDB leans to consistency: only a primary that reaches a
# majority of members accepts writes, and the minority side becomes read-only. But the code you
# write chooses, per operation, how much consistency you pay for:
#
# | Setting | Options | Means |
# |---|---|---|
# | write concern `w` | `1`, `"majority"` | acknowledged when the primary has it, or when most members have it (survives a failover) |
# | write concern `j` | `True` | acknowledged only once in the on-disk journal |
# | read concern | `"local"`, `"majority"`, `"snapshot"`, `"linearizable"` | may return data a failover could roll back, or only majority-committed data, or a consistent snapshot |
# | read preference | `primary`, `primaryPreferred`, `secondary`, `secondaryPreferred`, `nearest` | where reads go; secondaries may be behind |
#
# Reading from secondaries is **eventual consistency**: a secondary applies the primary's writes a
# little later, so a user may not see what they just wrote. Use it for dashboards and reports that
# tolerate seconds of delay; read money, stock and "my own changes" from the primary.
#
# A **causally consistent session** keeps "read your own writes" even when its reads go to a
# secondary, provided its writes use write concern `"majority"` and its reads read concern
# `"majority"`: each read then waits until the member it asks has caught up with the session's
# earlier operations (with weaker concerns the guarantee can break during a failover). Sessions
# you start with `client.start_session()` are causally consistent by default. PyMongo sets
# these per client, database, collection or transaction:

# %%
from pymongo import ReadPreference

payments = db.get_collection("orders", write_concern=WriteConcern("majority", j=True),
                             read_concern=ReadConcern("majority"), read_preference=ReadPreference.PRIMARY)
reports = db.get_collection("orders", read_preference=ReadPreference.SECONDARY_PREFERRED)
print("payments:", payments.write_concern.document, payments.read_concern.level, payments.read_preference.mongos_mode)
print("reports: ", reports.read_preference.mongos_mode, "| retryable writes:", client.options.retry_writes)
print("same data either way:", payments.count_documents({}) == reports.count_documents({}))

profile = db.get_collection("demo_profiles", write_concern=WriteConcern("majority"),
                            read_concern=ReadConcern("majority"), read_preference=ReadPreference.SECONDARY_PREFERRED)
profile.drop()
with client.start_session() as session:  # causally consistent: the default
    profile.insert_one({"_id": 7, "nickname": "ann"}, session=session)
    print("causally consistent session:", session.options.causal_consistency,
          "| reads its own write from any member:", profile.find_one({"_id": 7}, session=session)["nickname"])

# %% [markdown]
# On the course's one-node replica set every setting behaves the same; on a real cluster they
# trade latency for safety.
#
# **Timeouts.** How long may an operation take before your code gives up? Older code writes
# `WriteConcern("majority", wtimeout=5000)`, which only bounds the wait for the other members'
# acknowledgements. PyMongo 4.7 deprecated `wtimeout` in favour of one client-side budget for the
# whole operation, server selection, retries and waiting included: `timeoutMS` for a client
# (`MongoClient(url, timeoutMS=5000)`, or `?timeoutMS=5000` in the URL) or `pymongo.timeout()`
# around a block of code. An operation that runs out of time raises an error whose `timeout`
# attribute is `True`:

# %%
import pymongo
from pymongo.errors import PyMongoError

with pymongo.timeout(5):  # each operation in the block, with its retries, must finish within 5 s
    pending = payments.count_documents({"status": "pending"})
print("pending orders, counted within 5 s:", pending == db.orders.count_documents({"status": "pending"}))
try:
    with pymongo.timeout(0.000001):  # one microsecond: no server can answer that fast
        payments.find_one({"_id": 1})
except PyMongoError as exc:
    print("with a budget of one microsecond: a timeout error:", exc.timeout)
#
# **Retries and idempotency.** PyMongo retries a failed write once by itself (*retryable
# writes*, on by default) in a way the server recognises, so it is never applied twice. Retries
# by *your* code are another matter: if a request times out after the server applied an `$inc`,
# sending it again counts twice. Make such writes **idempotent**: write an event with its own id
# as `_id` (a repeat is a `DuplicateKeyError`, not a second copy), or record which event ids a
# counter has already counted, as here:

# %%
counters = db.demo_counters
counters.drop()

def count_once(user_id, event_id):
    """Count event_id for user_id, once, however many times it is retried."""
    try:
        counters.update_one({"_id": user_id, "seen": {"$ne": event_id}},
                            {"$inc": {"count": 1}, "$push": {"seen": {"$each": [event_id], "$slice": -1000}}},
                            upsert=True)
    except DuplicateKeyError:
        pass  # the document exists and has seen event_id already: the upsert's insert collided

for event_id in [101, 102, 102, 103, 101]:  # 102 and 101 are retried
    count_once(7, event_id)
print(counters.find_one({"_id": 7}, {"count": 1}))

# %% [markdown]
# **Sharding keys.** The shard key decides which shard a document lives on, and is hard to change
# later. A good key has many distinct values (high *cardinality*), spreads writes evenly (a key
# that only grows, such as a timestamp or an ObjectId, sends every insert to the last shard: use
# a *hashed* key for those), and appears in your frequent queries, so that they go to one shard
# instead of all of them. For the shop's events, `{"user_id": "hashed"}` spreads the load and
# keeps "one user's activity" on one shard. Every query that does not include the shard key is a
# *scatter-gather* over all shards.
#
# Sharding is switched on per collection, through a `mongos` router: `shardCollection` with the
# key. The course's servers (the stand-in, and Docker's one-node replica set) are not sharded
# clusters, so the next cell asks, shows the refusal and prints what a `mongos` answers instead.
# A `mongos` says who it is in its `hello` reply (`"msg": "isdbgrid"`).

# %%
shard_key = {"user_id": "hashed"}
MONGOS_OUTPUT = f"""\
shardCollection {db.name}.events -> {{'collectionsharded': '{db.name}.events', 'ok': 1.0}}
find({{'user_id': {buyer}}}).explain():    winningPlan.stage SINGLE_SHARD, 1 of 2 shards (routed by the key)
find({{'type': 'purchase'}}).explain(): winningPlan.stage SHARD_MERGE, 2 of 2 shards (scatter-gather)"""

if hello.get("msg") == "isdbgrid":  # a mongos: this is a sharded cluster, so shard for real
    db.events.create_index([("user_id", "hashed")])  # a collection with data needs the key's index first
    print(client.admin.command("shardCollection", f"{db.name}.events", key=shard_key))
    for query in ({"user_id": buyer}, {"type": "purchase"}):
        winning = db.events.find(query).explain()["queryPlanner"]["winningPlan"]
        print(query, "->", winning["stage"], "on", len(winning.get("shards", [])), "shard(s)")
else:
    try:
        reply = client.admin.command("shardCollection", f"{db.name}.events", key=shard_key)
    except OperationFailure as exc:
        print(f"shardCollection refused: code {exc.code} ({exc.details.get('codeName')}). This server is not a")
        print("sharded cluster: only a mongos router runs shardCollection. What a mongos in front of two shards")
        print("answers here (the forms MongoDB 8 documents; the course has no cluster to measure):")
        print(MONGOS_OUTPUT)
    else:
        print(reply)

# %% [markdown]
# The shard key is in the first query, so the router sends it to the one shard that holds that
# user's events; the second query has no shard key, so every shard runs it and the router merges
# the answers. Design the key so that your frequent queries look like the first.
#
# ### Exercise 05.12 · Write and read concerns (practice)
#
# Write two functions of a `Database`:
#
# * `payments_orders(db)` returns the `orders` collection configured for payments: write concern
#   `"majority"` with `j=True`, read concern `"majority"`, read preference primary;
# * `dashboard_events(db)` returns the `events` collection configured for a dashboard that
#   tolerates slightly stale data: read preference `SECONDARY_PREFERRED`, read concern
#   `"local"`, write concern `w=1`.
#
# The check inspects the collections you return (and that they read the same data).

# %% nbgrader={"grade": false, "grade_id": "ex05-12-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def payments_orders(db):
    return db.get_collection("orders", write_concern=WriteConcern("majority", j=True),
                             read_concern=ReadConcern("majority"), read_preference=ReadPreference.PRIMARY)


def dashboard_events(db):
    return db.get_collection("events", write_concern=WriteConcern(w=1), read_concern=ReadConcern("local"),
                             read_preference=ReadPreference.SECONDARY_PREFERRED)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-12-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.concerns(payments_orders, dashboard_events, course)
### BEGIN HIDDEN TESTS
check.concerns(payments_orders, dashboard_events, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 10. Putting it together: user-activity analytics
#
# The shop's `events` collection records what visitors do: `page_view`, `search`,
# `add_to_cart`, `purchase`, `login`, with `user_id` (absent for anonymous visitors),
# `session_id`, `type`, `at` and sometimes `product_id`. The product team wants a live document
# per user with their activity so far, updated as each event arrives (no nightly batch), which
# is exactly what the tutorial of section 3 tried to do.
#
# ### Exercise 05.13 · User-activity analytics (challenge)
#
# Write `track_event(stats, event)` that updates the per-user statistics in `stats` for one event,
# with one `update_one`, and returns `True`; for an event without `user_id` it writes nothing and
# returns `False`. The document of a user has:
#
# * `_id`: the user's id;
# * `events`: the number of events; `by_type`: a count per event type;
# * `first_at`, `last_at`: the earliest and latest `at` seen (events can arrive out of order);
# * `sessions`: the distinct `session_id`s, as a list without duplicates.
#
# Existing fields of the document stay. The check feeds events of the most active users (and
# anonymous ones) to your function and compares the documents with statistics computed from the
# events; hidden tests shuffle the events and let another client track events of the same user
# between your function's reads and writes.

# %% nbgrader={"grade": false, "grade_id": "ex05-13-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def track_event(stats, event):
    user_id = event.get("user_id")
    if user_id is None:
        return False
    stats.update_one(
        {"_id": user_id},
        {"$inc": {"events": 1, f"by_type.{event['type']}": 1},
         "$min": {"first_at": event["at"]},
         "$max": {"last_at": event["at"]},
         "$addToSet": {"sessions": event["session_id"]}},
        upsert=True,
    )
    return True
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex05-13-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.track_event(track_event, course)
### BEGIN HIDDEN TESTS
check.track_event(track_event, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# Now run your `track_event` on the shop's last 150 events, oldest first, and ask the stats
# collection questions: the most active users, with their conversion (purchases per page view).

# %%
user_stats = db.user_stats
user_stats.drop()
latest = list(db.events.find().sort([("at", -1), ("_id", -1)]).limit(150))
try:
    tracked = [track_event(user_stats, event) for event in reversed(latest)]
except (NameError, NotImplementedError):
    tracked = []
    print("Answer exercise 05.13 first: this cell runs your track_event.")
print("events:", len(tracked), "| from users:", sum(tracked), "| anonymous:", tracked.count(False),
      "| users:", user_stats.count_documents({}))

report = user_stats.aggregate([
    {"$sort": {"events": -1, "_id": 1}},
    {"$limit": 5},
    {"$lookup": {"from": "users", "localField": "_id", "foreignField": "_id", "as": "user"}},
    {"$unwind": "$user"},
    {"$project": {"_id": 1, "name": "$user.name", "events": 1, "sessions": {"$size": "$sessions"},
                  "purchases": {"$ifNull": ["$by_type.purchase", 0]},
                  "views": {"$ifNull": ["$by_type.page_view", 0]}}},
])
for row in report:
    conversion = row["purchases"] / row["views"] if row["views"] else 0
    print(f"{row['_id']:>5} {row['name']:<22} {row['events']:>3} events in {row['sessions']} sessions, "
          f"{row['purchases']} purchase(s), conversion {conversion:.0%}")

# %% [markdown]
# ## Key points
#
# * A MongoDB document is a nested dict (BSON) with a unique `_id`; PyMongo generates an
#   `ObjectId` (creation time, random, counter) when you give none. Use a natural key as `_id`
#   when there is one.
# * `find(filter, projection)` returns a lazy cursor; operators start with `$`; dot notation
#   reaches nested fields and array elements; `$elemMatch` ties conditions to one element; sort
#   with a unique tie-breaker.
# * Update with operators, never by reading and writing back: each update is atomic per
#   document. Each operator is a **top-level** key (`{"$set": ..., "$inc": ...}`); `$inc` inside
#   `$set` silently stores junk. Upserts create what is missing; `$setOnInsert`, `$min`, `$max`,
#   `$addToSet` and `$push` with `$each`/`$sort`/`$slice` cover most counters and lists.
# * Aggregation pipelines `$match` early, `$unwind` arrays, `$group` with accumulators, `$lookup`
#   after reducing, then `$sort`, `$limit`, `$project`. Keep money in `Decimal128`.
# * Indexes turn COLLSCANs into IXSCANs; order compound index fields by ESR; prove it with
#   `explain()` (documents examined ≈ returned). Text indexes give stemmed, scored search (not on
#   the course's stand-in: detect and fall back honestly).
# * `$jsonSchema` validators make the server refuse bad documents (code 121, reasons in
#   `errInfo`); `validationLevel` and `validationAction` ease rules onto old data.
# * Model for your queries: embed what is read together and bounded, reference what grows or is
#   shared; extended references copy what lists show; buckets group time series; one collection
#   can hold several kinds told apart by a field.
# * Transactions (`with_transaction`, `session=` on every call) make multi-document changes
#   all-or-nothing; write concern, read concern and read preference choose your point between
#   consistency and speed; make retried writes idempotent; pick shard keys that spread writes and
#   match queries.
#
# Your progress in this chapter:

# %%
check.progress()

# %% [markdown]
# **Where next**: chapter 06 puts Redis in front of a database (caching, sessions, rate limits,
# leaderboards, locks and queues): open `06_redis.ipynb`. Chapter 07 comes back to MongoDB's
# `explain()` next to the SQL databases' plans, on data large enough to measure.
