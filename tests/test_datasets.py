"""Data sets: determinism (checksums), idempotent and atomic loads, document shapes, bad input."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from dbcourse import connect, datasets, namespaces
from dbcourse.datasets import files, load_nosql, shop
from dbcourse.errors import BadParameter, DatasetError, ServiceUnavailable

from .conftest import free_port

NS = "dbc_test_datasets"
SHOP_TABLES = [t.name for t in datasets.schema.SHOP_TABLES]


# --------------------------------------------------------------------------- determinism

def test_small_shop_is_byte_for_byte_what_is_recorded(tmp_path):
    shop.generate(tmp_path, "small")
    assert files.compare(files.manifest(tmp_path), files.recorded()["shop/small"]) == []


def test_large_shop_is_byte_for_byte_what_is_recorded(tmp_path):
    counts = shop.generate(tmp_path, "large")
    assert counts["order_items"] >= 1_000_000 and counts["users"] >= 100_000
    assert files.compare(files.manifest(tmp_path), files.recorded()["shop/large"]) == []


def test_flights_export_is_what_is_recorded(tmp_path):
    files.export_flights(tmp_path)
    assert files.compare(files.manifest(tmp_path), files.recorded()["flights"]) == []
    assert files.recorded()["flights"]["flights.csv"]["rows"] == 336_776


def test_the_shop_has_its_traps():
    directory = files.verified_folder("shop", "small")
    users = list(shop.read_rows(directory / "users.csv"))
    assert any(u[1] != u[1].strip() for u in users), "e-mails with stray spaces"
    assert any(u[3].islower() for u in users), "lower-case country codes"
    assert any("'" in u[2] for u in users), "names with apostrophes"
    assert any(u[5] == "" for u in users), "missing birth years"
    orders = {r[0] for r in shop.read_rows(directory / "orders.csv")}
    with_items = {r[1] for r in shop.read_rows(directory / "order_items.csv")}
    assert orders - with_items, "orders without items"
    assert {"cancelled", "refunded"} <= {r[3] for r in shop.read_rows(directory / "orders.csv")}
    assert any("😍" in (r[5] or "") for r in shop.read_rows(directory / "reviews.csv")), "emoji"


# --------------------------------------------------------------------------- helpers

def fingerprint(store: str) -> dict[str, str]:
    """A checksum of every table's (collection's, key family's) content, independent of load order."""
    result = {}
    if store == "sqlite":
        conn = sqlite3.connect(namespaces.sqlite_dir(NS) / "shop.db")
        for table in SHOP_TABLES:
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            result[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
        conn.close()
    elif store == "postgres":
        with connect.connect_postgres(NS) as conn:
            for table in SHOP_TABLES:
                result[table] = conn.execute(
                    f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t").fetchone()[0]
            result["constraints"] = repr(conn.execute(
                "SELECT conrelid::regclass::text, contype, count(*) FROM pg_constraint "
                "WHERE connamespace = 'public'::regnamespace GROUP BY 1, 2 ORDER BY 1, 2").fetchall())
    elif store == "mysql":
        conn = connect.connect_mysql(NS)
        with conn.cursor() as cur:
            for table in SHOP_TABLES:
                cur.execute(f"SELECT * FROM `{table}` ORDER BY 1")
                result[table] = hashlib.sha256(repr(cur.fetchall()).encode()).hexdigest()
            cur.execute("SELECT table_name, constraint_type, count(*) FROM information_schema.table_constraints "
                        "WHERE table_schema = %s GROUP BY 1, 2 ORDER BY 1, 2", [NS])
            result["constraints"] = repr(cur.fetchall())
        conn.close()
    elif store == "mongodb":
        client = connect.mongo_client()
        db = client[NS]
        for name in sorted(db.list_collection_names()):
            docs = list(db[name].find().sort("_id", 1))
            result[name] = hashlib.sha256(repr(docs).encode()).hexdigest()
        client.close()
    else:
        client = connect.redis_client()
        keys = sorted(client.scan_iter(match=f"{NS}:*", count=5000))
        digest = hashlib.sha256()
        for key in keys:
            kind = client.type(key)
            value = {"hash": client.hgetall, "set": lambda k: sorted(client.smembers(k)),
                     "zset": lambda k: client.zrange(k, 0, -1, withscores=True)}[kind](key)
            digest.update(repr((key, sorted(value.items()) if isinstance(value, dict) else value)).encode())
        result["keys"] = digest.hexdigest()
        result["count"] = str(len(keys))
        client.close()
    return result


def create(store: str) -> None:
    namespaces.CREATE[store](NS)


STORES = ["sqlite", "postgres", "mysql", "mongodb", "redis"]


@pytest.fixture(scope="module")
def corrupt_copy(tmp_path_factory) -> Path:
    """The small shop with one bad row near the end of order_items.csv (a negative quantity)."""
    folder = tmp_path_factory.mktemp("corrupt")
    source = files.verified_folder("shop", "small")
    for path in source.glob("*.csv"):
        shutil.copy(path, folder / path.name)
    lines = (folder / "order_items.csv").read_text().splitlines()
    parts = lines[-2].split(",")
    parts[3] = "-1"
    lines[-2] = ",".join(parts)
    (folder / "order_items.csv").write_text("\n".join(lines) + "\n")
    # For MongoDB and Redis the CSV is read in Python: make a value that cannot be parsed.
    users = (folder / "users.csv").read_text().splitlines()
    users[-1] = users[-1].replace(users[-1].split(",")[0], "not-a-number", 1)
    (folder / "users.csv").write_text("\n".join(users) + "\n")
    return folder


# --------------------------------------------------------------------------- idempotence, atomicity

@pytest.mark.parametrize("store", STORES)
def test_load_is_idempotent_and_atomic(store, corrupt_copy):
    create(store)
    first = datasets.load("shop", store, namespace=NS, scale="small")
    expected = files.recorded()["shop/small"]
    if store in ("sqlite", "postgres", "mysql"):
        assert first.counts == {name[:-4]: info["rows"] for name, info in expected.items()}
    before = fingerprint(store)

    again = datasets.load("shop", store, namespace=NS, scale="small")
    assert again.counts == first.counts
    assert fingerprint(store) == before

    with pytest.raises(DatasetError, match="nothing was changed"):
        datasets.load("shop", store, namespace=NS, scale="small", directory=corrupt_copy, verify=False)
    assert fingerprint(store) == before, "a failed load changed the previous data"
    if store == "mongodb":
        client = connect.mongo_client()
        assert not [c for c in client[NS].list_collection_names() if c.startswith("_load_")]
        client.close()


# --------------------------------------------------------------------------- document shapes

def test_mongodb_documents_are_modelled_for_mongodb():
    from bson import Decimal128

    create("mongodb")
    report = datasets.load("shop", "mongodb", namespace=NS, scale="small")
    assert set(report.counts) == {"users", "categories", "products", "orders", "reviews", "posts", "events"}
    client = connect.mongo_client()
    db = client[NS]
    order = db.orders.find_one({"items.1": {"$exists": True}})
    assert set(order) == {"_id", "user_id", "customer", "ordered_at", "status", "shipping_country", "items", "total"}
    assert set(order["customer"]) == {"name", "country"}
    item = order["items"][0]
    assert set(item) == {"product_id", "name", "quantity", "unit_price"} and isinstance(item["unit_price"], Decimal128)
    total = sum(i["quantity"] * i["unit_price"].to_decimal() for i in order["items"])
    assert order["total"].to_decimal() == total
    assert db.orders.count_documents({"items": {"$size": 0}}) > 0  # the empty orders are there too
    product = db.products.find_one({"_id": 1})
    assert set(product["category"]) == {"_id", "name"} and isinstance(product["price"], Decimal128)
    article = db.posts.find_one({"kind": "article"})
    video = db.posts.find_one({"kind": "video"})
    assert "word_count" in article and "duration_seconds" not in article
    assert "duration_seconds" in video and "word_count" not in video
    commented = db.posts.find_one({"comments.0": {"$exists": True}})
    assert set(commented["comments"][0]) == {"_id", "user_id", "body", "created_at"}
    assert all(isinstance(t, str) for t in commented["tags"])
    review = db.reviews.find_one()
    assert {"product_id", "user_id", "rating"} <= set(review) and "product" not in review
    assert db.events.count_documents({"user_id": {"$exists": False}}) > 0  # anonymous events
    client.close()


def test_redis_seeded_keys():
    create("redis")
    report = datasets.load("shop", "redis", namespace=NS, scale="small")
    client = connect.redis_client()
    product = client.hgetall(f"{NS}:product:1")
    assert set(product) == {"name", "price", "stock", "category", "sku"}
    top = client.zrevrange(f"{NS}:sales:units_by_product", 0, 0, withscores=True)
    assert top and top[0][1] > 100
    assert report.counts["keys"] == len(list(client.scan_iter(match=f"{NS}:*", count=5000)))
    client.close()


# --------------------------------------------------------------------------- bad input

def test_corrupt_or_truncated_files_are_named(tmp_path):
    source = files.verified_folder("shop", "small")
    for path in source.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    expected = files.recorded()["shop/small"]
    files.verify_directory(tmp_path, expected, "fix")
    data = (tmp_path / "orders.csv").read_bytes()
    (tmp_path / "orders.csv").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"orders.csv has \d+ bytes, expected \d+ \(truncated or changed\): fix"):
        files.verify_directory(tmp_path, expected, "fix")
    (tmp_path / "orders.csv").write_bytes(data.replace(b"delivered", b"delivereD", 1))
    with pytest.raises(DatasetError, match="orders.csv is corrupt"):
        files.verify_directory(tmp_path, expected, "fix")
    (tmp_path / "orders.csv").unlink()
    with pytest.raises(DatasetError, match="orders.csv is missing"):
        files.verify_directory(tmp_path, expected, "fix")


@pytest.mark.parametrize("use_shell", [True, False], ids=["sqlite3 shell", "executemany"])
def test_both_sqlite_paths_build_the_same_database(tmp_path, use_shell, corrupt_copy):
    from dbcourse.datasets import load_sql

    directory = files.verified_folder("shop", "small")
    target = tmp_path / "shop.db"
    counts = load_sql.load_sqlite(directory, datasets.schema.SHOP_TABLES, target, use_shell=use_shell)
    assert counts == {name[:-4]: info["rows"] for name, info in files.recorded()["shop/small"].items()}
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT count(*), typeof(birth_year) FROM users WHERE birth_year IS NULL").fetchone()[0] > 0
    assert conn.execute("SELECT typeof(price), typeof(stock) FROM products LIMIT 1").fetchone() == ("real", "integer")
    assert conn.execute("SELECT count(*) FROM users WHERE city = ''").fetchone()[0] == 0
    revenue = conn.execute("SELECT round(sum(quantity * unit_price), 2) FROM order_items").fetchone()[0]
    conn.close()
    assert revenue == pytest.approx(5989151.17)
    before = target.read_bytes()
    with pytest.raises(DatasetError, match="nothing was changed"):
        load_sql.load_sqlite(corrupt_copy, datasets.schema.SHOP_TABLES, target, use_shell=use_shell)
    assert target.read_bytes() == before


def test_bad_names_and_a_down_store_give_one_clear_error():
    with pytest.raises(DatasetError, match="unknown scale 'medium' for shop"):
        datasets.load("shop", "sqlite", namespace=NS, scale="medium")
    with pytest.raises(DatasetError, match="unknown data set 'cars'"):
        datasets.load("cars", "sqlite", namespace=NS)
    with pytest.raises(BadParameter, match="unknown store 'oracle'"):
        datasets.load("shop", "oracle", namespace=NS)
    with pytest.raises(ServiceUnavailable, match="dbcourse services up"):
        datasets.load("shop", "postgres", namespace=NS, url=f"postgresql://course:course@127.0.0.1:{free_port()}/x")


def test_flights_load_into_postgres():
    create("postgres")
    report = datasets.load("flights", "postgres", namespace=NS)
    assert report.counts["flights"] == 336_776
    with connect.connect_postgres(NS) as conn:
        assert conn.execute("SELECT count(*) FROM flights WHERE tailnum NOT IN (SELECT tailnum FROM planes)"
                            ).fetchone()[0] > 0  # the real data's own trap: planes missing from `planes`


def teardown_module():
    namespaces.reset_all(match=NS)
