"""Chapter 04b's checks: each accepts the notebook's solution and rejects wrong answers with a
message that says what is wrong.

The Django app, the sample data, the SQLAlchemy models, the repositories and the solutions are
taken from ``solutions/04b_django_fastapi.py`` itself (cells and top-level definitions run here),
so these tests exercise the same code as the notebook, in this process, against PostgreSQL.
"""

import ast
import shutil
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from .conftest import feedback

pytestmark = [pytest.mark.services,
              pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")]

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "04b_django_fastapi.py"
NAMESPACE = "test_ch04b"

#: top-level definitions of the solution notebook that the tests need, in notebook order
DEFINITIONS = {
    # section 3 onwards: Django answers
    "featured_products", "order_summaries_slow", "order_summaries", "sell", "customer_report", "OrderQuerySet",
    "record_sale", "cancel_order",
    # section 10: SQLAlchemy mapping, API models, dependencies
    "Base", "CategoryRow", "ProductRow", "MovementRow", "notebook_engine", "NotebookSession", "ProductIn",
    "ProductOut", "production_engine", "SessionLocal", "get_db", "DbSession", "get_db_tx", "Restock",
    "restock_router", "restock",
    # section 11: patterns
    "ProductRepository", "SqlAlchemyProductRepository", "InMemoryProductRepository", "SqlAlchemyMovementRepository",
    "InMemoryMovementRepository", "SqlAlchemyUnitOfWork", "FakeUnitOfWork", "SqlLowStockRepository",
    "MemoryLowStockRepository", "receive_delivery", "patterns",
}


def _source() -> str:
    return SOLUTION.read_text()


def _cell(marker: str) -> str:
    """The code cell of the solution that contains ``marker``."""
    cells = [c for c in _source().split("\n# %%") if marker in c and not c.startswith(" [markdown]")]
    assert len(cells) == 1, marker
    return cells[0].split("\n", 1)[1]


def _names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    return set()


@pytest.fixture(scope="module")
def nb():
    """A namespace like the notebook's after a full run: Django set up, data loaded, definitions made."""
    import dbcourse

    course = dbcourse.setup("04b-django-fastapi", namespace=NAMESPACE, quiet=True)
    ns: dict = {"__name__": "ch04b_notebook", "course": course}
    exec(_cell("APP_FILES = {"), ns)           # writes the shop app into the scratch folder, puts it on sys.path
    from django.conf import settings

    if settings.configured and settings.DATABASES["default"]["NAME"] != course.namespace:
        pytest.skip("Django is already configured for another database in this test process")
    exec(_cell("settings.configure("), ns)     # settings.configure + django.setup
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    call_command("makemigrations", "shop", verbosity=0)
    migration = Path(ns["APP_ROOT"]) / "shop" / "migrations" / "0002_seed_reference_data.py"
    tree = ast.parse(_source())
    data_migration = next(ast.literal_eval(n.value) for n in tree.body if "DATA_MIGRATION" in _names(n))
    migration.write_text(data_migration)
    call_command("migrate", verbosity=0)

    for node in tree.body:  # every import of the notebook (Django's models included), then the definitions
        if isinstance(node, (ast.Import, ast.ImportFrom)) and "matplotlib" not in ast.unparse(node):
            exec(compile(ast.Module(body=[node], type_ignores=[]), str(SOLUTION), "exec"), ns)
    exec(_cell("PRODUCTS = ["), ns)            # the sample data
    for node in tree.body:
        if _names(node) & DEFINITIONS:
            exec(compile(ast.Module(body=[node], type_ignores=[]), str(SOLUTION), "exec"), ns)
    yield ns

    ns["notebook_engine"].dispose()
    connections.close_all()
    from dbcourse import namespaces

    namespaces.drop_postgres(course.namespace)
    sys.path[:] = [p for p in sys.path if p != str(ns["APP_ROOT"])]
    shutil.rmtree(course.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def check(nb):
    from dbcourse.checks import ch04b

    return ch04b


def rejects(call, *args, match: str, **kwargs) -> str:
    """Run a check that must fail; return its message (asserting it contains ``match``)."""
    text = feedback(call, *args, **kwargs)
    assert match in text, text
    return text


# --------------------------------------------------------------------------- 04b.1

def test_featured_products(nb, check):
    check.featured_products(nb["featured_products"], hidden=True)
    Product, Q = nb["Product"], nb["Q"]

    def no_distinct(max_price):
        return (Product.objects.filter(Q(category__name="Books") | Q(tags__name="gift"), is_active=True, stock__gt=0,
                                       price__lte=max_price).order_by("price", "sku"))

    rejects(check.featured_products, no_distinct, match="more than once")
    rejects(check.featured_products, lambda p: list(nb["featured_products"](p)), match="should return a QuerySet")
    rejects(check.featured_products,
            lambda p: Product.objects.filter(Q(category__name="Books") | Q(tags__name="gift"), price__lte=p)
            .distinct().order_by("price", "sku"), match="has the wrong products")
    rejects(check.featured_products, lambda p: nb["featured_products"](p).order_by("sku"), match="wrong order")
    rejects(check.featured_products, None, match="no answer yet")


# --------------------------------------------------------------------------- 04b.2

def test_order_summaries(nb, check):
    check.order_summaries(nb["order_summaries"], hidden=True)
    text = rejects(check.order_summaries, nb["order_summaries_slow"], match="queries for")
    assert "select_related" in text
    half_fixed = lambda status: [  # noqa: E731 - joins the customer but still loads items per order
        {"order": o.id, "customer": o.customer.email, "products": sorted(i.product.name for i in o.items.all()),
         "total": sum(i.quantity * i.unit_price for i in o.items.all())}
        for o in nb["Order"].objects.filter(status=status).order_by("id").select_related("customer")]
    rejects(check.order_summaries, half_fixed, match="queries for")
    wrong_total = lambda status: [dict(r, total=r["total"] + 1) for r in nb["order_summaries"](status)]  # noqa: E731
    rejects(check.order_summaries, wrong_total, match="'total' is")


# --------------------------------------------------------------------------- 04b.3

def test_sell(nb, check):
    course, Product, F = nb["course"], nb["Product"], nb["F"]
    check.sell(nb["sell"], course, hidden=True)

    def read_modify_write(sku, quantity):
        product = Product.objects.get(sku=sku)
        if product.stock < quantity:
            return False
        product.stock -= quantity
        product.save()
        return True

    rejects(check.sell, read_modify_write, course, match="that sale was lost")

    def no_stock_check(sku, quantity):
        Product.objects.filter(sku=sku).update(stock=F("stock") - quantity)
        return True

    rejects(check.sell, no_stock_check, course, match="IntegrityError")

    def locked(sku, quantity):  # pessimistic locking is right too
        with nb["transaction"].atomic():
            product = Product.objects.select_for_update().get(sku=sku)
            if product.stock < quantity:
                return False
            product.stock -= quantity
            product.save(update_fields=["stock"])
            return True

    check.sell(locked, course, hidden=True)


# --------------------------------------------------------------------------- 04b.4

def test_customer_report(nb, check):
    check.customer_report(nb["customer_report"], hidden=True)
    Customer, Count, Sum, F, Q, Coalesce, Value, DecimalField = (
        nb[n] for n in ("Customer", "Count", "Sum", "F", "Q", "Coalesce", "Value", "DecimalField"))
    keep = ~Q(orders__status="cancelled")

    def multiplied():
        return list(Customer.objects.annotate(
            n_orders=Count("orders", filter=keep),
            spent=Coalesce(Sum(F("orders__items__quantity") * F("orders__items__unit_price"), filter=keep),
                           Value(0), output_field=DecimalField()))
            .order_by("-spent", "email").values("email", "n_orders", "spent"))

    rejects(check.customer_report, multiplied, match="Count(..., distinct=True)")
    rejects(check.customer_report, lambda: sorted(nb["customer_report"](), key=lambda r: r["email"]),
            match="not in the order asked")
    rejects(check.customer_report, lambda: [{"email": r["email"], "orders": r["n_orders"], "spent": r["spent"]}
                                            for r in nb["customer_report"]()], match="expected exactly")


# --------------------------------------------------------------------------- 04b.5

def test_order_queryset(nb, check):
    check.order_queryset(nb["OrderQuerySet"], hidden=True)
    Base = nb["OrderQuerySet"]

    class OnlyNew(Base):
        def open(self):
            return self.filter(status="new")

    rejects(check.order_queryset, OnlyNew, match="with status new or paid")

    class ReturnsList(Base):
        def placed_in(self, country):
            return list(self.filter(customer__country=country))

    rejects(check.order_queryset, ReturnsList, match="not an OrderQuerySet")

    class NoZero(Base):
        def with_total(self):
            return self.annotate(total=nb["Sum"](nb["F"]("items__quantity") * nb["F"]("items__unit_price")))

    rejects(check.order_queryset, NoZero, hidden=True, match="some values differ")
    rejects(check.order_queryset, object, match="subclasses django.db.models.QuerySet")

    class QuerySetOnly(Base):  # works as OrderQuerySet(Order).open(), but a manager does not get the method
        def open(self):
            return self.filter(status__in=["new", "paid"])

        open.queryset_only = True

    assert QuerySetOnly(nb["Order"]).open().exists()
    rejects(check.order_queryset, QuerySetOnly, match="the manager made by OrderQuerySet.as_manager() has no method `open`")

    # the check's manager is attached only while it runs
    Order = nb["Order"]
    assert not hasattr(Order, check.CHECK_MANAGER)
    assert [m.name for m in Order._meta.managers] == ["objects"]
    check.order_queryset(nb["OrderQuerySet"])  # and a second run uses the class it is given
    rejects(check.order_queryset, OnlyNew, match="with status new or paid")


# --------------------------------------------------------------------------- 04b.6

def test_record_sale(nb, check):
    from django.db.models.signals import post_save

    OrderItem, StockMovement = nb["OrderItem"], nb["StockMovement"]
    right = nb["record_sale"]
    post_save.disconnect(sender=OrderItem, dispatch_uid="record_sale")
    try:
        rejects(check.record_sale, right, match="No receiver is connected")

        def every_save(sender, instance, created, **kwargs):
            StockMovement.objects.create(product_id=instance.product_id, change=-instance.quantity, reason="sale")

        post_save.connect(every_save, sender=OrderItem, dispatch_uid="record_sale")
        rejects(check.record_sale, every_save, match="saving an existing order item again")
        post_save.disconnect(sender=OrderItem, dispatch_uid="record_sale")

        def positive(sender, instance, created, raw=False, **kwargs):
            if created and not raw:
                StockMovement.objects.create(product_id=instance.product_id, change=instance.quantity, reason="sale")

        post_save.connect(positive, sender=OrderItem, dispatch_uid="record_sale")
        rejects(check.record_sale, positive, match="change = -instance.quantity")
        post_save.disconnect(sender=OrderItem, dispatch_uid="record_sale")

        post_save.connect(right, sender=OrderItem, dispatch_uid="record_sale")
        post_save.connect(right, sender=OrderItem, dispatch_uid="record_sale-copy")  # connected twice
        rejects(check.record_sale, right, match="wrote 2 stock movement")
        post_save.disconnect(sender=OrderItem, dispatch_uid="record_sale-copy")
        post_save.disconnect(sender=OrderItem, dispatch_uid="record_sale")

        post_save.connect(right, sender=OrderItem, dispatch_uid="record_sale")
        check.record_sale(right, hidden=True)
    finally:
        post_save.disconnect(sender=OrderItem, dispatch_uid="record_sale")


# --------------------------------------------------------------------------- 04b.7

def test_cancel_order(nb, check):
    course, Order, Product, F, transaction = (nb[n] for n in ("course", "Order", "Product", "F", "transaction"))
    check.cancel_order(nb["cancel_order"], course, hidden=True)

    def body(order_id, *, lock=True, restock_with_f=True):
        orders = Order.objects.select_for_update() if lock else Order.objects
        order = orders.get(pk=order_id)
        if order.status not in ("new", "paid"):
            raise ValueError(order.status)
        for item in order.items.order_by("product_id"):
            if restock_with_f:
                Product.objects.filter(pk=item.product_id).update(stock=F("stock") + item.quantity)
            else:
                product = Product.objects.get(pk=item.product_id)
                product.stock += item.quantity
                product.save(update_fields=["stock"])
        order.status = "cancelled"
        order.save(update_fields=["status"])

    rejects(check.cancel_order, lambda oid: _no_atomic(body, oid), course, match="the writes before the failure were kept")
    rejects(check.cancel_order, lambda oid: _atomic(transaction, body, oid, lock=False), course,
            match="it should be restored once")
    rejects(check.cancel_order, lambda oid: _atomic(transaction, body, oid, restock_with_f=False), course,
            match="restock with F()")

    def no_status_check(order_id):
        with transaction.atomic():
            Order.objects.filter(pk=order_id).update(status="cancelled")

    rejects(check.cancel_order, no_status_check, course, match="expected {'ZZ-911': 12, 'ZZ-912': 6}")

    def conditional(order_id):  # compare-and-set instead of a lock: right too
        with transaction.atomic():
            if not Order.objects.filter(pk=order_id, status__in=["new", "paid"]).update(status="cancelled"):
                raise ValueError("cannot be cancelled")
            for item in nb["OrderItem"].objects.filter(order_id=order_id):
                Product.objects.filter(pk=item.product_id).update(stock=F("stock") + item.quantity)

    check.cancel_order(conditional, course, hidden=True)


def _no_atomic(body, order_id):
    body(order_id, lock=False)


def _atomic(transaction, body, order_id, **options):
    with transaction.atomic():
        body(order_id, **options)


def test_cancel_order_refuses_shipped(nb, check):
    def cancels_anything(order_id):
        with nb["transaction"].atomic():
            order = nb["Order"].objects.select_for_update().get(pk=order_id)
            for item in order.items.all():
                nb["Product"].objects.filter(pk=item.product_id).update(stock=nb["F"]("stock") + item.quantity)
            order.status = "cancelled"
            order.save(update_fields=["status"])

    rejects(check.cancel_order, cancels_anything, nb["course"], match="should raise ValueError")


# --------------------------------------------------------------------------- 04b.8

def test_get_db_tx(nb, check):
    course, NotebookSession = nb["course"], nb["NotebookSession"]
    check.get_db_tx(nb["get_db_tx"], course, hidden=True)

    def close_only():
        with NotebookSession() as session:
            yield session

    rejects(check.get_db_tx, close_only, course, match="the row is not in the database")

    def commit_always():
        session = NotebookSession()
        try:
            yield session
        finally:
            session.commit()
            session.close()

    rejects(check.get_db_tx, commit_always, course, match="but the row was committed")

    def leaks():
        session = NotebookSession()
        yield session
        session.commit()
        session.close()

    rejects(check.get_db_tx, leaks, course, match="still")

    def with_begin():  # sessionmaker.begin(): commit, rollback and close in one line; right too
        with NotebookSession.begin() as session:
            yield session

    check.get_db_tx(with_begin, course, hidden=True)
    rejects(check.get_db_tx, lambda: NotebookSession(), course, match="generator function")


# --------------------------------------------------------------------------- 04b.9

def test_restock_endpoint(nb, check):
    from fastapi import APIRouter, HTTPException
    from sqlalchemy import select

    course, get_db = nb["course"], nb["get_db"]
    ProductRow, ProductOut, DbSession = nb["ProductRow"], nb["ProductOut"], nb["DbSession"]
    check.restock_endpoint(nb["restock_router"], get_db, course, hidden=True)

    wrong_path = APIRouter()

    @wrong_path.post("/restock/{sku}", response_model=ProductOut)
    def restock_a(sku: str, body: nb["Restock"], db: DbSession):  # noqa: F821
        raise HTTPException(404)

    rejects(check.restock_endpoint, wrong_path, get_db, course, match="the path is")

    unvalidated = APIRouter()

    @unvalidated.post("/products/{sku}/restock", response_model=ProductOut)
    def restock_b(sku: str, body: dict, db: DbSession):
        product = db.scalar(select(ProductRow).where(ProductRow.sku == sku))
        if product is None:
            raise HTTPException(404)
        product.stock += int(body.get("quantity", 0))
        db.commit()
        return product

    rejects(check.restock_endpoint, unvalidated, get_db, course, match="expected 422")

    stale = APIRouter()

    @stale.post("/products/{sku}/restock", response_model=ProductOut)
    def restock_c(sku: str, body: nb["Restock"], db: DbSession):  # noqa: F821
        product = db.scalar(select(ProductRow).where(ProductRow.sku == sku))
        if product is None:
            raise HTTPException(404)
        before = ProductOut.model_validate(product)
        product.stock += body.quantity
        db.commit()
        return before

    rejects(check.restock_endpoint, stale, get_db, course, match="the response says stock")

    own_session = APIRouter()

    @own_session.post("/products/{sku}/restock", response_model=ProductOut)
    def restock_d(sku: str, body: nb["Restock"]):  # noqa: F821
        with nb["NotebookSession"]() as db:
            product = db.scalar(select(ProductRow).where(ProductRow.sku == sku))
            if product is None:
                raise HTTPException(404)
            product.stock += body.quantity
            db.commit()
            return ProductOut.model_validate(product)

    rejects(check.restock_endpoint, own_session, get_db, course, match="session of its own")
    rejects(check.restock_endpoint, None, get_db, course, match="no answer yet")

    read_modify_write = APIRouter()  # right in every way but one: it writes back a number computed in Python

    @read_modify_write.post("/products/{sku}/restock", response_model=ProductOut)
    def restock_e(sku: str, body: nb["Restock"], db: DbSession):  # noqa: F821
        product = db.scalar(select(ProductRow).where(ProductRow.sku == sku))
        if product is None:
            raise HTTPException(404)
        product.stock += body.quantity
        db.commit()
        db.refresh(product)
        return product

    text = rejects(check.restock_endpoint, read_modify_write, get_db, course, match="that sale was lost")
    assert "with_for_update" in text and "ZZ-931" in text

    locked = APIRouter()  # the same with a row lock: right

    @locked.post("/products/{sku}/restock", response_model=ProductOut)
    def restock_f(sku: str, body: nb["Restock"], db: DbSession):  # noqa: F821
        product = db.scalar(select(ProductRow).where(ProductRow.sku == sku).with_for_update())
        if product is None:
            raise HTTPException(404)
        product.stock += body.quantity
        db.commit()
        db.refresh(product)
        return product

    check.restock_endpoint(locked, get_db, course, hidden=True)
    with nb["notebook_engine"].connect() as conn:  # the check's own products are gone again
        assert conn.exec_driver_sql("SELECT count(*) FROM shop_product WHERE sku LIKE 'ZZ-%%'").scalar() == 0


# --------------------------------------------------------------------------- 04b.10

def test_low_stock(nb, check):
    from sqlalchemy import select

    ProductRow, NotebookSession = nb["ProductRow"], nb["NotebookSession"]
    Sql, Memory = nb["SqlLowStockRepository"], nb["MemoryLowStockRepository"]
    check.low_stock(Sql, Memory, NotebookSession, hidden=True)

    class SqlBySku(nb["SqlAlchemyProductRepository"]):
        def low_stock(self, threshold):
            return list(self.session.scalars(select(ProductRow).where(ProductRow.is_active, ProductRow.stock < threshold)
                                             .order_by(ProductRow.sku)))

    rejects(check.low_stock, SqlBySku, Memory, NotebookSession, match="wrong order")

    class MemoryWithInactive(nb["InMemoryProductRepository"]):
        def low_stock(self, threshold):
            return sorted((p for p in self._by_sku.values() if p.stock < threshold), key=lambda p: (p.stock, p.sku))

    rejects(check.low_stock, Sql, MemoryWithInactive, NotebookSession, match="not expected")
    rejects(check.low_stock, Sql, None, NotebookSession, match="MemoryLowStockRepository` has no answer yet")


# --------------------------------------------------------------------------- 04b.11

def test_receive_delivery(nb, check):
    args = (nb["SqlAlchemyUnitOfWork"], nb["FakeUnitOfWork"], nb["ProductRow"], nb["MovementRow"], nb["course"])
    MovementRow = nb["MovementRow"]
    check.receive_delivery(nb["receive_delivery"], *args, hidden=True)

    def commit_each(uow, deliveries):
        with uow:
            for sku, quantity in deliveries.items():
                product = uow.products.get(sku)
                if product is None:
                    raise KeyError(sku)
                product.stock += quantity
                uow.movements.add(MovementRow(product=product, change=quantity, reason="delivery"))
                uow.commit()

    rejects(check.receive_delivery, commit_each, *args, match="it should commit once")

    def skip_unknown(uow, deliveries):
        with uow:
            for sku, quantity in deliveries.items():
                product = uow.products.get(sku)
                if product is not None:
                    product.stock += quantity
                    uow.movements.add(MovementRow(product=product, change=quantity, reason="delivery"))
            uow.commit()

    rejects(check.receive_delivery, skip_unknown, *args, match="did not raise KeyError")

    def no_movements(uow, deliveries):
        with uow:
            for sku, quantity in deliveries.items():
                product = uow.products.get(sku)
                if product is None:
                    raise KeyError(sku)
                product.stock += quantity
            uow.commit()

    rejects(check.receive_delivery, no_movements, *args, match="reason 'delivery'")

    def unlocked(uow, deliveries):  # list_all() loads without a lock: a concurrent sale is overwritten
        with uow:
            by_sku = {p.sku: p for p in uow.products.list_all()}
            for sku, quantity in deliveries.items():
                if sku not in by_sku:
                    raise KeyError(sku)
                by_sku[sku].stock += quantity
                uow.movements.add(MovementRow(product=by_sku[sku], change=quantity, reason="delivery"))
            uow.commit()

    check.receive_delivery(unlocked, *args)  # the visible check has no concurrent sale...
    rejects(check.receive_delivery, unlocked, *args, hidden=True, match="that sale was lost")  # ...the hidden one has


# --------------------------------------------------------------------------- 04b.12

def test_patterns(nb, check):
    check.patterns(nb["patterns"], hidden=True)
    wrong = dict(nb["patterns"], **{"each row you load becomes a Python object": "active record"})
    rejects(check.patterns, wrong, match="1 of 6 answers are not right")
    hidden_wrong = dict(nb["patterns"], **{
        "changes reach the database when a separate object is told to flush or commit": "active record"})
    check.patterns(hidden_wrong)  # the visible check grades six statements...
    rejects(check.patterns, hidden_wrong, hidden=True, match="1 of 8 answers are not right")  # ...the hidden all 8
    old = {k: v for k, v in nb["patterns"].items() if k != "each row you load becomes a Python object"}
    rejects(check.patterns, dict(old, **{"the ORM class corresponds to a table": "both"}), match="has no entry")
    rejects(check.patterns, {"Django's Model": "active record"}, match="has no entry")
    rejects(check.patterns, dict(nb["patterns"], **{"SQLAlchemy's Session": "mapper"}), match="is not one of")


def test_checks_without_django_give_friendly_feedback(check, monkeypatch):
    from django.apps import apps

    def not_ready():
        raise LookupError("no app")

    monkeypatch.setattr(apps, "check_models_ready", not_ready)
    rejects(check.featured_products, lambda p: None, match="Django is not set up")


def test_money_is_compared_as_numbers(nb, check):
    rows = nb["customer_report"]()
    assert all(isinstance(r["spent"], Decimal) for r in rows)
