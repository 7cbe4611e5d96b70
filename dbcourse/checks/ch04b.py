"""Checks for chapter 04b, "ORMs: Django, FastAPI and patterns".

The Django checks find the notebook's models in Django's app registry (app ``shop``) and compare
what the learner's code returns with SQL run on the same connection. Hidden tests change the data
inside ``transaction.atomic()`` blocks that are rolled back; the checks about concurrency and
atomicity need committed rows (another connection must see them), so they create their own
products, customer and orders (marked ``zz-check-04b``) and delete them afterwards.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Iterator

from .compare import Rows, compare_rows, values_equal
from .core import Chapter, expect, fail, not_answered

chapter = Chapter("04b", "ORMs: Django, FastAPI and patterns")
exercise = chapter.exercise
progress = chapter.progress

MARK = "zz-check-04b"
CHECK_EMAIL = f"{MARK}@example.invalid"
MODEL_NAMES = ("Category", "Tag", "Product", "Customer", "Order", "OrderItem", "StockMovement")


# --------------------------------------------------------------------------- helpers

def _models() -> SimpleNamespace:
    """The notebook's Django models, or friendly feedback when Django is not ready."""
    try:
        from django.apps import apps

        apps.check_models_ready()
        return SimpleNamespace(**{name: apps.get_model("shop", name) for name in MODEL_NAMES})
    except Exception:  # ImproperlyConfigured, AppRegistryNotReady, LookupError, ImportError
        fail("Django is not set up in this kernel, or its `shop` app is missing.",
             hint="run the notebook from the top: sections 1 and 2 configure Django and migrate the database.")


def _sql(sql: str, params: Any = ()) -> list[tuple]:
    """Rows of ``sql`` on Django's own connection (so it sees the current transaction)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


@contextlib.contextmanager
def _rolled_back() -> Iterator[None]:
    """A Django transaction that is always rolled back (for hidden tests that change data)."""
    from django.db import transaction

    with transaction.atomic():
        try:
            yield
        finally:
            transaction.set_rollback(True)


def _count_queries(func, *args):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        result = func(*args)
    return result, len(captured)


def _sample_customer_and_products(m, n_products: int = 3):
    customer = m.Customer.objects.order_by("pk").first()
    products = list(m.Product.objects.order_by("pk")[:n_products])
    if customer is None or len(products) < n_products:
        fail("The shop has no customers or products: load the sample data (section 3) first.")
    return customer, products


def _cleanup(conn) -> None:
    scratch_products = ("SELECT p.id FROM shop_product p JOIN shop_category k ON k.id = p.category_id "
                        "WHERE k.name = %(mark)s")
    check_orders = ("SELECT o.id FROM shop_order o JOIN shop_customer c ON c.id = o.customer_id "
                    "WHERE c.email = %(email)s")
    params = {"mark": MARK, "email": CHECK_EMAIL}
    for statement in (
        f"DELETE FROM shop_orderitem WHERE order_id IN ({check_orders}) OR product_id IN ({scratch_products})",
        f"DELETE FROM shop_order WHERE id IN ({check_orders})",
        f"DELETE FROM shop_stockmovement WHERE product_id IN ({scratch_products})",
        f"DELETE FROM shop_product_tags WHERE product_id IN ({scratch_products})",
        f"DELETE FROM shop_product WHERE id IN ({scratch_products})",
        "DELETE FROM shop_category WHERE name = %(mark)s",
        "DELETE FROM shop_customer WHERE email = %(email)s",
    ):
        conn.execute(statement, params)


@contextlib.contextmanager
def _scratch(workspace, stocks: dict[str, int]):
    """Committed test products (and a customer) that other connections can see; removed afterwards."""
    import psycopg

    try:
        conn = workspace.connect_postgres(autocommit=True)
    except Exception as exc:  # noqa: BLE001
        fail(f"The check could not connect to PostgreSQL: {exc}")
    try:
        try:
            _cleanup(conn)
            category = conn.execute("INSERT INTO shop_category (name) VALUES (%s) RETURNING id", [MARK]).fetchone()[0]
            products = {}
            for sku, stock in stocks.items():
                products[sku] = conn.execute(
                    "INSERT INTO shop_product (sku, name, category_id, price, stock, is_active) "
                    "VALUES (%s, %s, %s, 10.00, %s, true) RETURNING id",
                    [sku, f"check product {sku}", category, stock]).fetchone()[0]
            customer = conn.execute(
                "INSERT INTO shop_customer (email, name, country, order_count) VALUES (%s, 'Check', 'ZZ', 0) "
                "RETURNING id", [CHECK_EMAIL]).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            fail("The shop's tables do not exist in this notebook's database.",
                 hint="run the migrations of section 2 (and the sample data of section 3) first.")
        yield SimpleNamespace(conn=conn, products=products, customer=customer)
    finally:
        try:
            _cleanup(conn)
        finally:
            conn.close()


def _stock(conn, sku: str) -> int:
    return conn.execute("SELECT stock FROM shop_product WHERE sku = %s", [sku]).fetchone()[0]


def _is_write(sql: str) -> bool:
    return sql.lstrip().split(None, 1)[0].upper() in ("UPDATE", "INSERT", "DELETE")


@contextlib.contextmanager
def _before_write(action, *, when=_is_write, at: int = 1) -> Iterator[dict]:
    """Run ``action()`` just before the ``at``-th statement of Django's connection that ``when`` accepts."""
    from django.db import connection

    state = {"seen": 0, "fired": False, "result": None}

    def wrapper(execute, sql, params, many, context):
        if not state["fired"] and when(sql):
            state["seen"] += 1
            if state["seen"] == at:
                state["fired"] = True
                state["result"] = action()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield state


def _other_connection(workspace, statements: list[tuple[str, list]]) -> bool:
    """Run ``statements`` in one transaction of a second connection; False if a lock blocked them."""
    import psycopg

    with workspace.connect_postgres() as other:
        other.execute("SET lock_timeout = '500ms'")
        try:
            for sql, params in statements:
                other.execute(sql, params)
            other.commit()
            return True
        except psycopg.errors.LockNotAvailable:
            other.rollback()
            return False


class _SimulatedCrash(RuntimeError):
    """Raised by a check in the middle of the learner's transaction."""


def _skus(result: Any, what: str) -> list[str]:
    items = list(result)
    if items and not all(hasattr(item, "sku") for item in items):
        fail(f"{what} should contain product objects (with a `.sku`), not {type(items[0]).__name__}.",
             hint="return the ORM objects themselves (not values(), dicts or tuples).")
    return [item.sku for item in items]


def _compare_skus(got: list[str], expected: list[str], what: str, order_hint: str) -> None:
    duplicates = sorted({sku for sku in got if got.count(sku) > 1})
    expect(not duplicates, f"{what} lists some products more than once: {duplicates}.",
           hint="a filter across a many-to-many relation returns one row per matching tag: add .distinct().")
    missing = [sku for sku in expected if sku not in got]
    extra = [sku for sku in got if sku not in expected]
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + ([f"not expected {extra}"] if extra else [])
        fail(f"{what} has the wrong products: " + "; ".join(parts) + ".",
             hint="check each condition of the exercise: active, stock, price, category or tag.")
    expect(got == expected, f"{what} has the right products in the wrong order: {got}; expected {expected}.",
           hint=order_hint)


# --------------------------------------------------------------------------- 04b.1

FEATURED_SQL = """
SELECT p.sku FROM shop_product p JOIN shop_category c ON c.id = p.category_id
WHERE p.is_active AND p.stock > 0 AND p.price <= %s
  AND (c.name = 'Books' OR EXISTS (SELECT 1 FROM shop_product_tags pt JOIN shop_tag t ON t.id = pt.tag_id
                                   WHERE pt.product_id = p.id AND t.name = 'gift'))
ORDER BY p.price, p.sku
"""


@exercise("04b.1", "Featured products", answer="featured_products")
def featured_products(func: Any, *, hidden: bool = False) -> None:
    not_answered(func, "featured_products")
    expect(callable(func), "`featured_products` should be a function featured_products(max_price).")
    m = _models()
    from django.db.models import QuerySet

    def compare(price: Decimal) -> None:
        result = func(price)
        expect(isinstance(result, QuerySet),
               f"featured_products({price}) returned a {type(result).__name__}; it should return a QuerySet.",
               hint="return the QuerySet itself (no list()): callers can still filter, slice or count it.")
        got = _skus(result, f"featured_products({price})")
        expected = [row[0] for row in _sql(FEATURED_SQL, [price])]
        _compare_skus(got, expected, f"featured_products({price})", "order by price, then by sku.")

    compare(Decimal("40"))
    if hidden:
        for price in (Decimal("18.50"), Decimal("5"), Decimal("1000")):
            compare(price)
        with _rolled_back():
            books = m.Category.objects.get_or_create(name="Books")[0]
            gift = m.Tag.objects.get_or_create(name="gift")[0]
            sale = m.Tag.objects.get_or_create(name="sale")[0]
            twice = m.Product.objects.create(sku="ZZ-801", name="Gift book", category=books, price=Decimal("3.00"),
                                             stock=1)
            twice.tags.add(gift, sale)
            m.Product.objects.create(sku="ZZ-802", name="Hidden book", category=books, price=Decimal("3.00"),
                                     stock=5, is_active=False)
            m.Product.objects.create(sku="ZZ-800", name="Empty book", category=books, price=Decimal("3.00"), stock=0)
            compare(Decimal("1000"))


# --------------------------------------------------------------------------- 04b.2

def _expected_summaries(status: str) -> list[dict]:
    orders = _sql("SELECT o.id, c.email FROM shop_order o JOIN shop_customer c ON c.id = o.customer_id "
                  "WHERE o.status = %s ORDER BY o.id", [status])
    items = _sql("SELECT i.order_id, p.name, i.quantity * i.unit_price FROM shop_orderitem i "
                 "JOIN shop_product p ON p.id = i.product_id JOIN shop_order o ON o.id = i.order_id "
                 "WHERE o.status = %s", [status])
    rows = []
    for order_id, email in orders:
        mine = [item for item in items if item[0] == order_id]
        rows.append({"order": order_id, "customer": email, "products": sorted(item[1] for item in mine),
                     "total": sum((item[2] for item in mine), Decimal(0))})
    return rows


def _compare_summaries(func, status: str, limit: int = 3) -> None:
    result, queries = _count_queries(func, status)
    expect(isinstance(result, list), f"order_summaries({status!r}) should return a list of dicts, "
                                     f"not {type(result).__name__}.")
    expected = _expected_summaries(status)
    expect(len(result) == len(expected), f"order_summaries({status!r}) returned {len(result)} rows; "
                                         f"there are {len(expected)} {status} orders.")
    for got, want in zip(result, expected):
        expect(isinstance(got, dict) and set(got) == set(want),
               f"each row should be a dict with the keys {sorted(want)}; got {got!r:.120}.")
        for key in ("order", "customer", "products"):
            expect(got[key] == want[key], f"order {want['order']}: {key!r} is {got[key]!r}; expected {want[key]!r}.",
                   hint="keep the rows exactly as the slow version builds them (ordered by order id).")
        expect(values_equal(got["total"], want["total"]),
               f"order {want['order']}: 'total' is {got['total']!r}; expected {want['total']!r}.")
    expect(queries <= limit,
           f"order_summaries({status!r}) sent {queries} queries for {len(expected)} orders; at most {limit} "
           "are needed, however many orders there are.",
           hint="select_related('customer') joins the customer; prefetch_related('items__product') loads all "
                "items and their products in two more queries.")


@exercise("04b.2", "Find and fix: a slow order page", answer="order_summaries")
def order_summaries(func: Any, *, hidden: bool = False) -> None:
    not_answered(func, "order_summaries")
    expect(callable(func), "`order_summaries` should be a function order_summaries(status).")
    m = _models()
    _compare_summaries(func, "paid")
    if hidden:
        _compare_summaries(func, "shipped")
        with _rolled_back():
            customer, products = _sample_customer_and_products(m)
            for n in range(6):
                order = m.Order.objects.create(customer=customer, status="paid")
                for product in products[: 1 + n % 3]:
                    m.OrderItem.objects.bulk_create([m.OrderItem(order=order, product=product, quantity=n + 1,
                                                                 unit_price=product.price)])
            m.Order.objects.create(customer=customer, status="paid")  # an order without items
            _compare_summaries(func, "paid")


# --------------------------------------------------------------------------- 04b.3

def _sell_case(func, workspace, scratch, sku: str, quantity: int, *, other_sells: int = 0) -> tuple[Any, bool]:
    """Call sell(sku, quantity); optionally another connection sells ``other_sells`` just before its first write."""
    if not other_sells:
        return func(sku, quantity), False
    sale = [("UPDATE shop_product SET stock = stock - %s WHERE sku = %s AND stock >= %s", [other_sells, sku, other_sells])]
    with _before_write(lambda: _other_connection(workspace, sale)) as state:
        result = func(sku, quantity)
    return result, bool(state["result"])


@exercise("04b.3", "Find and fix: the lost sale", answer="sell")
def sell(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "sell")
    expect(callable(func), "`sell` should be a function sell(sku, quantity) -> bool.")
    expect(workspace is not None, "pass the workspace: check.sell(sell, course).")
    _models()
    with _scratch(workspace, {"ZZ-901": 10, "ZZ-902": 2, "ZZ-903": 4}) as scratch:
        conn = scratch.conn
        result, _ = _sell_case(func, workspace, scratch, "ZZ-901", 2)
        expect(result is True, f"sell('ZZ-901', 2) with 10 in stock returned {result!r}; expected True.")
        expect(_stock(conn, "ZZ-901") == 8, f"after sell('ZZ-901', 2) the stock is {_stock(conn, 'ZZ-901')}; "
                                            "expected 10 - 2 = 8.")
        result, _ = _sell_case(func, workspace, scratch, "ZZ-902", 5)
        expect(result is False, f"sell('ZZ-902', 5) with 2 in stock returned {result!r}; expected False.",
               hint="a conditional update (filter(..., stock__gte=quantity)) returns how many rows it changed.")
        expect(_stock(conn, "ZZ-902") == 2, f"a refused sale changed the stock to {_stock(conn, 'ZZ-902')}.")

        before = _stock(conn, "ZZ-901")
        result, other_sold = _sell_case(func, workspace, scratch, "ZZ-901", 1, other_sells=3)
        after = _stock(conn, "ZZ-901")
        expected = before - 1 - (3 if other_sold else 0)
        expect(result is True, f"sell('ZZ-901', 1) returned {result!r} with plenty in stock; expected True.")
        expect(after == expected,
               f"another connection sold 3 × ZZ-901 while sell('ZZ-901', 1) was running; the stock went from "
               f"{before} to {after}, not to {expected}: " + ("that sale was lost." if after > expected else
                                                              "something was sold twice."),
               hint="read-modify-write in Python overwrites concurrent changes: let the database do the "
                    "arithmetic with F('stock') - quantity in a single UPDATE.")
        if hidden:
            result, _ = _sell_case(func, workspace, scratch, "ZZ-902", 2)
            expect(result is True and _stock(conn, "ZZ-902") == 0,
                   "selling exactly the last items should succeed and leave 0 in stock.")
            result, other_sold = _sell_case(func, workspace, scratch, "ZZ-903", 3, other_sells=3)
            if other_sold:
                expect(result is False and _stock(conn, "ZZ-903") == 1,
                       "with 4 in stock, another connection sold 3 while sell('ZZ-903', 3) ran: only 1 was "
                       f"left, so it should return False; it returned {result!r} and left "
                       f"{_stock(conn, 'ZZ-903')} in stock.",
                       hint="check the stock in the same statement that changes it: "
                            "filter(sku=sku, stock__gte=quantity).update(...).")
            else:
                expect(result is True and _stock(conn, "ZZ-903") == 1,
                       "sell('ZZ-903', 3) held a lock and had 4 in stock: it should sell and leave 1.")


# --------------------------------------------------------------------------- 04b.4

REPORT_SQL = """
SELECT c.email,
       (SELECT count(*) FROM shop_order o WHERE o.customer_id = c.id AND o.status <> 'cancelled') AS n_orders,
       COALESCE((SELECT sum(i.quantity * i.unit_price) FROM shop_order o JOIN shop_orderitem i ON i.order_id = o.id
                 WHERE o.customer_id = c.id AND o.status <> 'cancelled'), 0) AS spent
FROM shop_customer c
ORDER BY spent DESC, c.email
"""


def _compare_report(func) -> None:
    result = func()
    expect(not isinstance(result, (str, bytes, dict)), "`customer_report()` should return a list of dicts.")
    rows = list(result)
    expect(all(isinstance(r, dict) for r in rows), "each row of `customer_report()` should be a dict "
                                                   "(.values(...) gives dicts).")
    keys = {"email", "n_orders", "spent"}
    for row in rows:
        expect(set(row) == keys, f"a row has the keys {sorted(row)}; expected exactly {sorted(keys)}.",
               hint="name the annotations as asked; values('email', 'n_orders', 'spent') keeps only those.")
    columns = ["email", "n_orders", "spent"]
    expected = Rows(columns, _sql(REPORT_SQL))
    got = Rows(columns, [tuple(row[c] for c in columns) for row in rows])
    by_email = {r[0]: r for r in got.rows}
    for email, orders, spent in expected.rows:
        if email in by_email and not values_equal(by_email[email][1], orders) and values_equal(by_email[email][2], spent):
            fail(f"{email} has n_orders = {by_email[email][1]}; expected {orders}.",
                 hint="counting orders while summing their items joins the items: use Count(..., distinct=True).")
    compare_rows(got, expected, ordered=True, what="customer_report()",
                 order_hint="order by spent (highest first), then by email.")


@exercise("04b.4", "A customer report", answer="customer_report")
def customer_report(func: Any, *, hidden: bool = False) -> None:
    not_answered(func, "customer_report")
    expect(callable(func), "`customer_report` should be a function customer_report() -> list of dicts.")
    m = _models()
    _compare_report(func)
    if hidden:
        with _rolled_back():
            _, products = _sample_customer_and_products(m)
            m.Customer.objects.create(email="aaa-nobody@example.invalid", name="No orders", country="ZZ")
            only_cancelled = m.Customer.objects.create(email="zzz-cancel@example.invalid", name="C", country="ZZ")
            order = m.Order.objects.create(customer=only_cancelled, status="cancelled")
            m.OrderItem.objects.bulk_create([m.OrderItem(order=order, product=products[0], quantity=50,
                                                         unit_price=Decimal("100.00"))])
            big = m.Customer.objects.create(email="mmm-big@example.invalid", name="Big", country="ZZ")
            for status in ("paid", "new", "shipped"):
                order = m.Order.objects.create(customer=big, status=status)
                m.OrderItem.objects.bulk_create([m.OrderItem(order=order, product=p, quantity=3,
                                                             unit_price=Decimal("999.99")) for p in products])
            m.Order.objects.create(customer=big, status="paid")  # an order without items still counts
            _compare_report(func)


# --------------------------------------------------------------------------- 04b.5

def _ids(qs) -> set:
    return {o.pk for o in qs}


CHECK_MANAGER = "check_orders"


@contextlib.contextmanager
def _manager_on(model, name: str, manager):
    """Attach ``manager`` to ``model`` as ``model.<name>``, as ``name = manager`` in the class body would,
    for the duration of the block; then take it off again, so that re-running the check starts clean."""
    model.add_to_class(name, manager)  # Manager.contribute_to_class: sets manager.model and registers it
    try:
        yield getattr(model, name)
    finally:
        model._meta.local_managers = [m for m in model._meta.local_managers if m is not manager]
        with contextlib.suppress(AttributeError):
            delattr(model, name)
        model._meta._expire_cache()


@exercise("04b.5", "A QuerySet for orders", answer="OrderQuerySet")
def order_queryset(cls: Any, *, hidden: bool = False) -> None:
    not_answered(cls, "OrderQuerySet")
    m = _models()
    from django.db.models import QuerySet

    expect(isinstance(cls, type) and issubclass(cls, QuerySet),
           "`OrderQuerySet` should be a class that subclasses django.db.models.QuerySet.")
    for name in ("open", "placed_in", "with_total"):
        expect(callable(getattr(cls, name, None)), f"`OrderQuerySet` has no method `{name}`.")
    try:
        manager = cls.as_manager()
    except Exception as exc:  # noqa: BLE001 - e.g. an __init__ with another signature
        fail(f"OrderQuerySet.as_manager() failed: {type(exc).__name__}: {exc}",
             hint="subclass models.QuerySet and add methods; do not change __init__.")
    with _manager_on(m.Order, CHECK_MANAGER, manager) as orders:
        for name in ("open", "placed_in", "with_total"):
            expect(callable(getattr(orders, name, None)),
                   f"the manager made by OrderQuerySet.as_manager() has no method `{name}`, so "
                   f"Order.objects.{name}() would not work in a project.",
                   hint="a manager copies the QuerySet's public methods: no leading `_` in the name, and no "
                        "`queryset_only = True` on the method.")
        _order_chains(m, cls, orders, hidden)


def _order_chains(m, cls, base, hidden: bool) -> None:
    """Compare chains that start from the manager ``base`` with SQL."""

    def check_type(qs, chain: str):
        expect(isinstance(qs, cls), f"{chain} returned a {type(qs).__name__}, not an OrderQuerySet, so it cannot "
                                    "be chained further.", hint="return self.filter(...) / self.annotate(...).")
        return qs

    open_ids = {r[0] for r in _sql("SELECT id FROM shop_order WHERE status IN ('new', 'paid')")}
    got = _ids(check_type(base.open(), "open()"))
    expect(got == open_ids, f"open() returned {len(got)} orders; there are {len(open_ids)} with status new or paid.")

    totals_sql = ("SELECT o.id, COALESCE(sum(i.quantity * i.unit_price), 0) FROM shop_order o "
                  "JOIN shop_customer c ON c.id = o.customer_id LEFT JOIN shop_orderitem i ON i.order_id = o.id "
                  "WHERE c.country = %s AND o.status IN ('new', 'paid') GROUP BY o.id")

    def compare_chain(country: str) -> None:
        country_ids = {r[0] for r in _sql("SELECT o.id FROM shop_order o JOIN shop_customer c ON c.id = o.customer_id "
                                          "WHERE c.country = %s", [country])}
        got_ids = _ids(check_type(base.placed_in(country), f"placed_in({country!r})"))
        expect(got_ids == country_ids, f"placed_in({country!r}) returned {len(got_ids)} orders; customers from "
                                       f"{country} placed {len(country_ids)}.")
        expected = _sql(totals_sql, [country])
        for chain in (f"open().placed_in({country!r}).with_total()", f"with_total().placed_in({country!r}).open()"):
            qs = base.open().placed_in(country).with_total() if chain.startswith("open") \
                else base.with_total().placed_in(country).open()
            rows = [(o.pk, getattr(o, "total", "missing")) for o in check_type(qs, chain)]
            expect(all(r[1] != "missing" for r in rows), f"{chain}: the orders have no attribute `total`.",
                   hint="with_total() should annotate(total=...).")
            compare_rows(Rows(["id", "total"], rows), Rows(["id", "total"], expected), what=chain)

    compare_chain("US")
    if hidden:
        compare_chain("GB")
        with _rolled_back():
            customer = m.Customer.objects.create(email="qs-check@example.invalid", name="Q", country="ZZ")
            m.Order.objects.create(customer=customer, status="new")  # no items: total 0
            _, products = _sample_customer_and_products(m)
            order = m.Order.objects.create(customer=customer, status="paid")
            m.OrderItem.objects.bulk_create([m.OrderItem(order=order, product=p, quantity=2, unit_price=Decimal("1.25"))
                                             for p in products])
            m.Order.objects.create(customer=customer, status="shipped")
            compare_chain("ZZ")


# --------------------------------------------------------------------------- 04b.6

def _new_movements(m, before: int) -> list:
    return list(m.StockMovement.objects.filter(pk__gt=before).order_by("pk").values_list("product_id", "change", "reason"))


@exercise("04b.6", "An audit log with a signal", answer="record_sale")
def record_sale(func: Any, *, hidden: bool = False) -> None:
    not_answered(func, "record_sale")
    expect(callable(func), "`record_sale` should be a receiver function record_sale(sender, instance, created, ...).")
    m = _models()
    from django.db.models import Max
    from django.db.models.signals import post_save

    expect(post_save.has_listeners(m.OrderItem), "No receiver is connected to post_save for OrderItem.",
           hint="decorate record_sale with @receiver(post_save, sender=OrderItem, dispatch_uid='record_sale'), "
                "and keep the post_save.disconnect(...) line above it so that re-running the cell reconnects it.")
    with _rolled_back():
        customer, products = _sample_customer_and_products(m, 2)
        order = m.Order.objects.create(customer=customer)
        start = m.StockMovement.objects.aggregate(top=Max("pk"))["top"] or 0
        item = m.OrderItem.objects.create(order=order, product=products[0], quantity=2, unit_price=products[0].price)
        new = _new_movements(m, start)
        expect(len(new) == 1, f"creating one order item wrote {len(new)} stock movement(s); expected exactly 1.",
               hint="is record_sale connected (with sender=OrderItem), and only once? Use dispatch_uid so that "
                    "re-running the cell does not connect a second copy." if new else
               "is record_sale connected with @receiver(post_save, sender=OrderItem, ...)? Does it create a "
               "StockMovement when `created` is True?")
        expect(new[0] == (products[0].pk, -2, "sale"),
               f"the movement written is (product_id, change, reason) = {new[0]}; expected "
               f"{(products[0].pk, -2, 'sale')}.", hint="change = -instance.quantity, reason = 'sale'.")
        start = m.StockMovement.objects.aggregate(top=Max("pk"))["top"] or 0
        item.quantity = 5
        item.save()
        again = _new_movements(m, start)
        expect(not again, f"saving an existing order item again wrote {len(again)} movement(s); only a new item "
                          "is a sale.", hint="check the `created` argument.")
        if hidden:
            other = m.OrderItem.objects.create(order=order, product=products[1], quantity=7,
                                               unit_price=products[1].price)
            new = _new_movements(m, start)
            expect(new == [(products[1].pk, -7, "sale")],
                   f"creating an item of 7 × product {products[1].pk} wrote {new}; expected "
                   f"{[(products[1].pk, -7, 'sale')]}.")
            start = m.StockMovement.objects.aggregate(top=Max("pk"))["top"] or 0
            post_save.send(sender=m.OrderItem, instance=other, created=True, raw=True, using="default",
                           update_fields=None)
            expect(not _new_movements(m, start), "while loading fixtures (raw=True) the receiver should do nothing.",
                   hint="return early when `raw` is True.")


# --------------------------------------------------------------------------- 04b.7

def _status(conn, order_id: int) -> str:
    return conn.execute("SELECT status FROM shop_order WHERE id = %s", [order_id]).fetchone()[0]


def _make_order(conn, customer: int, status: str, items: dict[int, int]) -> int:
    order_id = conn.execute("INSERT INTO shop_order (customer_id, status, created_at) VALUES (%s, %s, now()) "
                            "RETURNING id", [customer, status]).fetchone()[0]
    for product_id, quantity in items.items():
        conn.execute("INSERT INTO shop_orderitem (order_id, product_id, quantity, unit_price) VALUES (%s, %s, %s, 10)",
                     [order_id, product_id, quantity])
    return order_id


def _stocks(conn) -> dict[str, int]:
    rows = conn.execute("SELECT p.sku, p.stock FROM shop_product p JOIN shop_category k ON k.id = p.category_id "
                        "WHERE k.name = %s ORDER BY p.sku", [MARK]).fetchall()
    return dict(rows)


def _expect_refused(func, conn, order_id: int, status: str) -> None:
    before = _stocks(conn)
    try:
        func(order_id)
    except ValueError:
        pass
    else:
        fail(f"cancel_order() accepted an order whose status is {status!r}; it should raise ValueError.",
             hint="only 'new' and 'paid' orders can be cancelled.")
    expect(_status(conn, order_id) == status and _stocks(conn) == before,
           f"cancel_order() raised ValueError for a {status} order but still changed the order or the stock.",
           hint="check the status before you change anything.")


@exercise("04b.7", "Cancel an order, all or nothing", answer="cancel_order")
def cancel_order(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "cancel_order")
    expect(callable(func), "`cancel_order` should be a function cancel_order(order_id).")
    expect(workspace is not None, "pass the workspace: check.cancel_order(cancel_order, course).")
    _models()
    with _scratch(workspace, {"ZZ-911": 10, "ZZ-912": 5}) as scratch:
        conn, p, customer = scratch.conn, scratch.products, scratch.customer
        a, b = p["ZZ-911"], p["ZZ-912"]

        # 1. a normal cancellation, counting the writes it makes
        order = _make_order(conn, customer, "paid", {a: 2, b: 1})
        writes = {"n": 0}

        def count(sql: str) -> bool:
            if _is_write(sql):
                writes["n"] += 1
            return False

        with _before_write(lambda: None, when=count):
            func(order)
        expect(_status(conn, order) == "cancelled", f"after cancel_order() the order's status is "
                                                    f"{_status(conn, order)!r}; expected 'cancelled'.")
        expect(_stocks(conn) == {"ZZ-911": 12, "ZZ-912": 6},
               f"after cancelling an order of 2 × ZZ-911 and 1 × ZZ-912 (stock 10 and 5) the stock is {_stocks(conn)}; "
               "expected {'ZZ-911': 12, 'ZZ-912': 6}.", hint="add each item's quantity back to its product.")

        # 2. refused statuses
        _expect_refused(func, conn, _make_order(conn, customer, "shipped", {a: 1}), "shipped")

        # 3. a crash at the last write must leave nothing behind
        if writes["n"] >= 2:
            order = _make_order(conn, customer, "new", {a: 3, b: 2})
            before = _stocks(conn)

            def crash():
                raise _SimulatedCrash("simulated crash before the last write")

            with _before_write(crash, at=writes["n"]):
                try:
                    func(order)
                except _SimulatedCrash:
                    pass
            expect(_status(conn, order) == "new" and _stocks(conn) == before,
                   f"the check made the last write of cancel_order() fail; afterwards the order is "
                   f"{_status(conn, order)!r} and the stock {_stocks(conn)} (before: 'new', {before}): the writes "
                   "before the failure were kept.",
                   hint="wrap the whole function in `with transaction.atomic():` (or decorate it with @transaction.atomic).")

        # 4. another connection cancels the same order just before our first write
        order = _make_order(conn, customer, "paid", {a: 4, b: 1})
        before = _stocks(conn)
        rival = [("UPDATE shop_order SET status = 'cancelled' WHERE id = %s AND status IN ('new', 'paid')", [order]),
                 ("UPDATE shop_product p SET stock = p.stock + i.quantity FROM shop_orderitem i "
                  "WHERE i.order_id = %s AND i.product_id = p.id AND "
                  "EXISTS (SELECT 1 FROM shop_order WHERE id = %s AND status = 'cancelled')", [order, order])]
        refused = False
        with _before_write(lambda: _other_connection(workspace, rival)) as state:
            try:
                func(order)
            except ValueError:
                refused = True
        rival_won = bool(state["result"])
        expected = {"ZZ-911": before["ZZ-911"] + 4, "ZZ-912": before["ZZ-912"] + 1}
        if refused and not rival_won:
            fail("cancel_order() raised ValueError for a paid order that nobody else had cancelled.")
        expect(_status(conn, order) == "cancelled", "after two concurrent cancellations the order is not cancelled.")
        expect(_stocks(conn) == expected,
               f"two requests cancelled the same order at the same time and the stock went from {before} to "
               f"{_stocks(conn)}; it should be restored once: {expected}.",
               hint="lock the order first: Order.objects.select_for_update().get(pk=order_id) inside atomic(), "
                    "then check its status.")

        # 5. a sale of the same product during the cancellation must not be lost
        order = _make_order(conn, customer, "paid", {a: 2})
        before = _stocks(conn)
        sale = [("UPDATE shop_product SET stock = stock - 1 WHERE sku = 'ZZ-911'", [])]
        with _before_write(lambda: _other_connection(workspace, sale),
                           when=lambda sql: _is_write(sql) and "shop_product" in sql) as state:
            func(order)
        expected = before["ZZ-911"] + 2 - (1 if state["result"] else 0)
        expect(_stocks(conn)["ZZ-911"] == expected,
               f"another connection sold 1 × ZZ-911 while cancel_order() restocked 2: the stock went from "
               f"{before['ZZ-911']} to {_stocks(conn)['ZZ-911']}, not {expected}.",
               hint="restock with F(): Product.objects.filter(pk=...).update(stock=F('stock') + quantity).")

        if hidden:
            _expect_refused(func, conn, _make_order(conn, customer, "cancelled", {b: 1}), "cancelled")
            before = _stocks(conn)
            empty = _make_order(conn, customer, "new", {})
            func(empty)
            expect(_status(conn, empty) == "cancelled" and _stocks(conn) == before,
                   "an order without items should simply become cancelled.")


# --------------------------------------------------------------------------- FastAPI helpers

def _fastapi():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        import fastapi
        from fastapi.testclient import TestClient
    return fastapi, TestClient


# --------------------------------------------------------------------------- 04b.8

PROBE = "check04b_probe"


@exercise("04b.8", "One transaction per request", answer="get_db_tx")
def get_db_tx(dep: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(dep, "get_db_tx")
    expect(callable(dep), "`get_db_tx` should be a generator function that yields a Session.")
    expect(inspect.isgeneratorfunction(dep), "`get_db_tx` should be a generator function: it must `yield` the "
                                             "session (not return it).",
           hint="def get_db_tx():\n    session = NotebookSession()\n    try:\n        yield session\n        ...")
    expect(workspace is not None, "pass the workspace: check.get_db_tx(get_db_tx, course).")
    fastapi, TestClient = _fastapi()
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    sessions: list = []  # the sessions of the current request
    opened: list = []    # every session the dependency gave out, closed before the probe table is dropped
    # A default value, not Annotated[...]: this module's annotations are strings (PEP 563) that FastAPI
    # could not resolve for a local name.
    session_dep = fastapi.Depends(dep, scope="function")
    app = fastapi.FastAPI()

    def insert(db, label):
        sessions.append(db)
        opened.append(db)
        db.execute(text(f"INSERT INTO {PROBE} (label) VALUES (:label)"), {"label": label})

    @app.post("/ok/{label}")
    def ok(label: str, db=session_dep):
        insert(db, label)
        return {"ok": True}

    @app.post("/conflict/{label}")
    def conflict(label: str, db=session_dep):
        insert(db, label)
        raise fastapi.HTTPException(409, "conflict")

    @app.post("/crash/{label}")
    def crash(label: str, db=session_dep):
        insert(db, label)
        raise _SimulatedCrash("simulated crash")

    @app.post("/twice/{label}")
    def twice(label: str, db=session_dep):
        insert(db, label)
        insert(db, label)  # a duplicate key; the constraint is deferred, so the *commit* fails
        return {"ok": True}

    client = TestClient(app, raise_server_exceptions=False)
    pool = _pool_of(dep)
    with workspace.connect_postgres(autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {PROBE}")
        conn.execute(f"CREATE TABLE {PROBE} (label text PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)")
        try:
            def stored(label):
                return conn.execute(f"SELECT count(*) FROM {PROBE} WHERE label = %s", [label]).fetchone()[0] == 1

            def call(path, expected_status, label, *, persisted):
                sessions.clear()
                in_use = pool.checkedout() if pool is not None else 0
                response = client.post(f"/{path}/{label}")
                for session in sessions:
                    expect(isinstance(session, Session),
                           f"get_db_tx yielded a {type(session).__name__}, not a SQLAlchemy Session.",
                           hint="yield a session made by NotebookSession().")
                expect(response.status_code == expected_status,
                       f"POST /{path} answered {response.status_code}; expected {expected_status}.",
                       hint="after rolling back, re-raise the exception (`raise`) so FastAPI can answer with it."
                       if expected_status != 200 else "the dependency itself should not fail on success.")
                if persisted:
                    expect(stored(label), "the endpoint inserted a row and returned normally, but the row is not in "
                                          "the database.", hint="commit after the `yield` when no exception came.")
                else:
                    expect(not stored(label), f"the endpoint inserted a row and then failed ({expected_status}), but "
                                              "the row was committed.",
                           hint="catch the exception around `yield`, roll back, and re-raise it.")
                if sessions:
                    expect(not sessions[-1].in_transaction(), "after the request the session is still in a "
                                                              "transaction.",
                           hint="roll back on errors and close the session in `finally`.")
                if pool is not None:
                    expect(pool.checkedout() <= in_use, "after the request the session still holds a database "
                                                        "connection.",
                           hint="close the session in a `finally:` block (or use `with NotebookSession() as session`).")

            call("ok", 200, "first", persisted=True)
            call("conflict", 409, "second", persisted=False)
            call("crash", 500, "third", persisted=False)
            if hidden:
                call("ok", 200, "fourth", persisted=True)
                call("twice", 500, "fifth", persisted=False)
                call("conflict", 409, "first-again", persisted=False)
        finally:
            for session in opened:  # a session your dependency left open would block the DROP
                with contextlib.suppress(Exception):
                    session.close()
            conn.execute(f"DROP TABLE IF EXISTS {PROBE}")


def _pool_of(dep):
    """The connection pool behind the sessions that ``dep`` yields (None if that cannot be found)."""
    try:
        generator = dep()
        session = next(generator)
        pool = session.get_bind().pool
        generator.close()  # GeneratorExit at the yield: the dependency's finally/with closes the session
        session.close()
        return pool
    except Exception:  # noqa: BLE001 - the requests below give the feedback
        return None


# --------------------------------------------------------------------------- 04b.9

@contextlib.contextmanager
def _before_sa_update(target, table: str, action) -> Iterator[dict]:
    """Run ``action()`` just before the first ``UPDATE`` of ``table`` that SQLAlchemy sends through
    ``target`` (a Connection, or the Engine class for every engine)."""
    from sqlalchemy import event

    state = {"fired": False, "result": None}

    def before(conn, cursor, statement, parameters, context, executemany):
        words = statement.split(None, 2)
        if not state["fired"] and len(words) > 1 and words[0].upper() == "UPDATE" and words[1].strip('"') == table:
            state["fired"] = True
            state["result"] = action()

    event.listen(target, "before_cursor_execute", before)
    try:
        yield state
    finally:
        event.remove(target, "before_cursor_execute", before)


LOST_UPDATE_HINT = ("`product.stock += quantity` on an object loaded without a lock writes back a number computed "
                    "in Python: let the database add, update(ProductRow).where(ProductRow.sku == sku)"
                    ".values(stock=ProductRow.stock + quantity), or load the product with .with_for_update() first.")


@exercise("04b.9", "A restock endpoint", answer="restock_router")
def restock_endpoint(router: Any, get_db: Any = None, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(router, "restock_router")
    fastapi, TestClient = _fastapi()
    expect(isinstance(router, fastapi.APIRouter), "`restock_router` should be an APIRouter: "
                                                  "restock_router = APIRouter().")
    expect(callable(get_db) and workspace is not None,
           "call the check as check.restock_endpoint(restock_router, get_db, course).")
    # Committed products of the check's own, for the concurrent sale (another connection must see them).
    with _scratch(workspace, {"ZZ-931": 10, "ZZ-932": 4}):
        engine = workspace.engine("postgres")
        connection = engine.connect()
        outer = connection.begin()
        try:
            _restock_cases(router, get_db, workspace, engine, connection, hidden)
        finally:
            outer.rollback()  # before _scratch removes its products: our transaction may lock their rows
            connection.close()
            engine.dispose()


def _restock_cases(router, get_db, workspace, engine, connection, hidden: bool) -> None:
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    fastapi, TestClient = _fastapi()

    def override():
        with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as session:
            yield session

    app = fastapi.FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_db] = override
    client = TestClient(app, raise_server_exceptions=False)
    query = text("SELECT p.sku, p.name, c.name AS category, p.price, p.stock FROM shop_product p "
                 "JOIN shop_category c ON c.id = p.category_id WHERE p.sku = :sku")
    skus = [r[0] for r in connection.execute(text("SELECT p.sku FROM shop_product p JOIN shop_category c "
                                                  "ON c.id = p.category_id WHERE p.is_active AND c.name <> :mark "
                                                  "ORDER BY p.sku"), {"mark": MARK})]
    expect(len(skus) >= 2, "The shop has no products: run the notebook from the top first.")

    def committed_stock(sku):
        with engine.connect() as fresh:  # outside the test transaction
            return fresh.execute(text("SELECT stock FROM shop_product WHERE sku = :sku"), {"sku": sku}).scalar()

    def restock(sku, quantity, *, rival=0):
        """POST a restock; with ``rival``, another connection sells that many just before the endpoint's UPDATE."""
        before = connection.execute(query, {"sku": sku}).mappings().one()
        outside = committed_stock(sku)
        if rival:
            sale = [("UPDATE shop_product SET stock = stock - %s WHERE sku = %s", [rival, sku])]
            with _before_sa_update(connection, "shop_product", lambda: _other_connection(workspace, sale)) as state:
                response = client.post(f"/products/{sku}/restock", json={"quantity": quantity})
            sold = rival if state["result"] else 0  # False: our transaction's lock made the sale give up
        else:
            response = client.post(f"/products/{sku}/restock", json={"quantity": quantity})
            sold = 0
        expect(response.status_code == 200,
               f"POST /products/{sku}/restock with quantity {quantity} answered {response.status_code} "
               f"({response.text[:150]}); expected 200.",
               hint="the path is \"/products/{sku}/restock\" and the body {\"quantity\": ...}." if
               response.status_code in (404, 405) else None)
        if committed_stock(sku) != outside - sold:
            with engine.begin() as fix:  # undo a change that escaped the test transaction
                fix.execute(text("UPDATE shop_product SET stock = :s WHERE sku = :sku"), {"s": outside - sold, "sku": sku})
            fail("your endpoint changed the stock through a session of its own, not the one from `get_db`, so "
                 "the test override could not roll it back.", hint="take the session as a parameter: "
                                                                   "`db: DbSession` (Depends(get_db)).")
        after = connection.execute(query, {"sku": sku}).mappings().one()
        expected = before["stock"] - sold + quantity
        if sold:
            expect(after["stock"] == expected,
                   f"another connection sold {sold} × {sku} while your endpoint restocked {quantity}: the stock went "
                   f"from {before['stock']} to {after['stock']}, not to {before['stock']} - {sold} + {quantity} = "
                   f"{expected}: " + ("that sale was lost." if after["stock"] > expected else "it was counted twice."),
                   hint=LOST_UPDATE_HINT)
        expect(after["stock"] == expected,
               f"after restocking {quantity} × {sku} the stock in the database is {after['stock']}; expected "
               f"{before['stock']} + {quantity} = {expected}.")
        body = response.json()
        want = {"sku": sku, "name": after["name"], "category": after["category"], "price": str(after["price"]),
                "stock": after["stock"]}
        expect(isinstance(body, dict) and set(body) == set(want),
               f"the response JSON has the keys {sorted(body) if isinstance(body, dict) else body!r}; expected "
               f"{sorted(want)}.", hint="use response_model=ProductOut.")
        for key, value in want.items():
            expect(values_equal(Decimal(str(body[key])), after[key]) if key == "price" else body[key] == value,
                   f"the response says {key} = {body[key]!r}; the database says {value!r}.",
                   hint="return the product after the change (refresh it, or re-select it)." if key == "stock"
                   else None)

    def status_of(sku, payload):
        return client.post(f"/products/{sku}/restock", json=payload).status_code

    restock(skus[0], 5)
    code = status_of("ZZ-000", {"quantity": 1})
    expect(code == 404, f"restocking an unknown sku answered {code}; expected 404.",
           hint="raise HTTPException(404, ...) when no product has that sku.")
    for payload in ({"quantity": 0}, {"quantity": "five"}, {}):
        code = status_of(skus[0], payload)
        expect(code == 422, f"the body {payload} answered {code}; expected 422.",
               hint="declare the body as a Pydantic model with quantity: int = Field(ge=1, le=1000).")
    restock("ZZ-931", 5, rival=3)
    if hidden:
        restock(skus[1], 1000)
        restock(skus[1], 1)
        restock("ZZ-932", 2, rival=4)  # the other request sells everything there is
        for payload in ({"quantity": -3}, {"quantity": 1001}, {"quantity": 2.5}):
            code = status_of(skus[1], payload)
            expect(code == 422, f"the body {payload} answered {code}; expected 422.")


# --------------------------------------------------------------------------- 04b.10

LOW_STOCK_SQL = "SELECT sku FROM shop_product WHERE is_active AND stock < :t ORDER BY stock, sku"


@exercise("04b.10", "A repository query", answer="SqlLowStockRepository")
def low_stock(sql_cls: Any, memory_cls: Any = None, session_factory: Any = None, *, hidden: bool = False) -> None:
    not_answered(sql_cls, "SqlLowStockRepository")
    not_answered(memory_cls, "MemoryLowStockRepository")
    expect(session_factory is not None, "call the check as check.low_stock(SqlLowStockRepository, "
                                        "MemoryLowStockRepository, NotebookSession).")
    for cls, name in ((sql_cls, "SqlLowStockRepository"), (memory_cls, "MemoryLowStockRepository")):
        expect(isinstance(cls, type) and callable(getattr(cls, "low_stock", None)),
               f"`{name}` should be a class with a method low_stock(threshold).")
    from sqlalchemy import text

    with session_factory() as session:
        def compare(threshold):
            expected = [r[0] for r in session.execute(text(LOW_STOCK_SQL), {"t": threshold})]
            repo = sql_cls(session)
            got = _skus(repo.low_stock(threshold), f"SqlLowStockRepository.low_stock({threshold})")
            _compare_skus(got, expected, f"SqlLowStockRepository.low_stock({threshold})",
                          "order by stock, then by sku.")
            everything = repo.list_all()
            got = _skus(memory_cls(everything).low_stock(threshold), f"MemoryLowStockRepository.low_stock({threshold})")
            _compare_skus(got, expected, f"MemoryLowStockRepository.low_stock({threshold})",
                          "sort by (stock, sku).")

        try:
            compare(5)
            if hidden:
                for threshold in (0, 1, 13, 10_000):
                    compare(threshold)
                session.execute(text("UPDATE shop_product SET stock = 1 WHERE sku = (SELECT max(sku) FROM shop_product)"))
                session.execute(text("UPDATE shop_product SET is_active = false WHERE sku = (SELECT min(sku) FROM "
                                     "shop_product)"))
                session.expire_all()
                compare(2)
                compare(50)
        finally:
            session.rollback()


# --------------------------------------------------------------------------- 04b.11

@exercise("04b.11", "A delivery, as one unit of work", answer="receive_delivery")
def receive_delivery(func: Any, sql_uow: Any = None, fake_uow: Any = None, product_cls: Any = None,
                     movement_cls: Any = None, workspace: Any = None, *, hidden: bool = False) -> None:
    not_answered(func, "receive_delivery")
    expect(callable(func), "`receive_delivery` should be a function receive_delivery(uow, deliveries).")
    expect(None not in (sql_uow, fake_uow, product_cls, workspace),
           "call the check as check.receive_delivery(receive_delivery, SqlAlchemyUnitOfWork, FakeUnitOfWork, "
           "ProductRow, MovementRow, course).")

    # With the fake: no database at all.
    def fake_products():
        return [product_cls(sku="AA-001", name="A", price=Decimal("1.00"), stock=1, is_active=True),
                product_cls(sku="AA-002", name="B", price=Decimal("2.00"), stock=0, is_active=True)]

    uow = fake_uow(fake_products())
    func(uow, {"AA-001": 4, "AA-002": 2})
    stocks = {p.sku: p.stock for p in uow.products.list_all()}
    expect(stocks == {"AA-001": 5, "AA-002": 2}, f"with FakeUnitOfWork, a delivery of 4 × AA-001 and 2 × AA-002 "
                                                 f"(stock 1 and 0) left the stock at {stocks}.")
    expect(uow.commits == 1, f"receive_delivery() committed {uow.commits} times; it should commit once, at the end.",
           hint="call uow.commit() after the loop, not inside it.")
    movements = sorted((m.product.sku, m.change, m.reason) for m in uow.movements.added)
    expect(movements == [("AA-001", 4, "delivery"), ("AA-002", 2, "delivery")],
           f"the movements recorded are {movements}; expected one per sku with the quantity and reason 'delivery'.",
           hint="uow.movements.add(MovementRow(product=product, change=quantity, reason='delivery')).")
    cases = [{"AA-001": 1, "NO-SUCH": 1}] + ([{"NO-SUCH": 1, "AA-002": 1}] if hidden else [])
    for deliveries in cases:
        uow = fake_uow(fake_products())
        try:
            func(uow, deliveries)
        except KeyError:
            pass
        else:
            fail(f"receive_delivery(uow, {deliveries}) did not raise KeyError for the unknown sku.")
        expect(uow.commits == 0, f"receive_delivery(uow, {deliveries}) raised KeyError but committed first.",
               hint="check every sku before you commit; commit once at the end.")

    # With PostgreSQL: committed data, read back from another connection.
    with _scratch(workspace, {"ZZ-921": 3, "ZZ-922": 0}) as scratch:
        conn = scratch.conn

        def movements_in_db():
            return conn.execute("SELECT p.sku, m.change, m.reason FROM shop_stockmovement m JOIN shop_product p "
                                "ON p.id = m.product_id WHERE p.sku LIKE %s ORDER BY p.sku, m.id", ["ZZ-92%"]).fetchall()

        func(sql_uow(), {"ZZ-921": 5, "ZZ-922": 1})
        expect(_stocks(conn) == {"ZZ-921": 8, "ZZ-922": 1},
               f"with SqlAlchemyUnitOfWork the stock after the delivery is {_stocks(conn)}; expected "
               "{'ZZ-921': 8, 'ZZ-922': 1}.", hint="did you commit (uow.commit()) inside the `with uow:` block?")
        expect(movements_in_db() == [("ZZ-921", 5, "delivery"), ("ZZ-922", 1, "delivery")],
               f"the stock movements in the database are {movements_in_db()}.")
        failing = [{"ZZ-921": 2, "ZZ-999": 1}] + ([{"ZZ-922": 7, "ZZ-921": 1, "ZZ-998": 1}] if hidden else [])
        for deliveries in failing:
            try:
                func(sql_uow(), deliveries)
            except KeyError:
                pass
            else:
                fail(f"receive_delivery(uow, {deliveries}) did not raise KeyError for the unknown sku.")
            expect(_stocks(conn) == {"ZZ-921": 8, "ZZ-922": 1} and len(movements_in_db()) == 2,
                   f"receive_delivery(uow, {deliveries}) failed on an unknown sku, but the database changed: "
                   f"stock {_stocks(conn)}.", hint="commit nothing when a sku is unknown.")
        if hidden:  # another connection sells 1 × ZZ-921 just before the delivery's first UPDATE
            from sqlalchemy.engine import Engine

            before = _stocks(conn)
            sale = [("UPDATE shop_product SET stock = stock - 1 WHERE sku = 'ZZ-921'", [])]
            with _before_sa_update(Engine, "shop_product", lambda: _other_connection(workspace, sale)) as state:
                func(sql_uow(), {"ZZ-921": 2, "ZZ-922": 3})
            sold = 1 if state["result"] else 0  # False: the delivery's row lock made the sale give up
            expected = {"ZZ-921": before["ZZ-921"] - sold + 2, "ZZ-922": before["ZZ-922"] + 3}
            expect(_stocks(conn) == expected,
                   f"another connection sold 1 × ZZ-921 while receive_delivery() added 2: the stock went from "
                   f"{before} to {_stocks(conn)}, not to {expected}" + (": that sale was lost." if sold else "."),
                   hint="take each product from uow.products.get(sku): it locks the row (SELECT ... FOR UPDATE) until "
                        "the commit, so nobody else can change the stock between your read and your write.")


# --------------------------------------------------------------------------- 04b.12

PATTERNS = {  # the statements the visible check grades
    "the object has a save() method": {"active record"},
    "a session keeps one object per database row": {"data mapper"},
    "each row you load becomes a Python object": {"both"},
    "plain domain objects can be tested without any database": {"data mapper"},
    "Django's Model": {"active record"},
    "SQLAlchemy's Session": {"data mapper"},
}
PATTERNS_HIDDEN = {  # listed in the exercise too, graded by the hidden tests only
    "the model class itself offers the queries, as in Product.objects.filter(...)": {"active record"},
    "changes reach the database when a separate object is told to flush or commit": {"data mapper"},
}
CHOICES = ("active record", "data mapper", "both")


@exercise("04b.12", "Which pattern?", answer="patterns")
def patterns(answer: Any, *, hidden: bool = False) -> None:
    not_answered(answer, "patterns")
    expect(isinstance(answer, dict), "`patterns` should be a dict: statement -> 'active record' | 'data mapper' | "
                                     "'both'.")
    statements = {**PATTERNS, **PATTERNS_HIDDEN}
    missing = [s for s in statements if s not in answer]
    expect(not missing, f"`patterns` has no entry for {missing[:2]}.", hint="copy the statements exactly.")
    for statement, choice in answer.items():
        expect(statement in statements, f"{statement!r} is not one of the statements.")
        expect(isinstance(choice, str) and choice.strip().lower() in CHOICES,
               f"{choice!r} (for {statement!r}) is not one of {list(CHOICES)}.")
    graded = statements if hidden else PATTERNS
    wrong = [s for s, ok in graded.items() if answer[s].strip().lower() not in ok]
    if wrong:
        fail(f"{len(wrong)} of {len(graded)} answers are not right, for example {wrong[0]!r}.",
             hint="Active Record: objects save themselves. Data Mapper: a separate layer (the session) does.")
