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
# # 04b · ORMs, part 2: the Django ORM, serving models with FastAPI, and design patterns
#
# **After this chapter you will be able to**
#
# * run the Django ORM outside a Django project, with real migrations (`makemigrations`,
#   `migrate`, a reversible data migration) against PostgreSQL;
# * query with QuerySets (lazy, chainable, `filter` / `exclude` / `Q`, `values`), and prove by
#   counting queries that `select_related` / `prefetch_related` remove an N+1 problem;
# * write race-free updates with `F()`, reports with `annotate` / `aggregate`, reusable filters with
#   a custom QuerySet and manager, an audit log with a signal (knowing where signals bite), and
#   all-or-nothing changes with `transaction.atomic` and `select_for_update`;
# * serve models over HTTP with FastAPI: a `get_db` dependency, Pydantic request and response
#   models, 201 / 404 / 409 / 422, tested in-process with `TestClient` and `dependency_overrides`;
# * keep business code away from the database with the **Repository** and **Unit of Work**
#   patterns, test it with in-memory fakes, and tell **Active Record** from **Data Mapper**.
#
# **Before this chapter**: chapter 04a (SQLAlchemy 2.0: engines, sessions, `Mapped` models,
# `select()`, `joinedload`, Alembic, Pydantic). Sections 10 and 11 use SQLAlchemy the way 04a taught
# it and do not explain it again.
#
# **Time**: about 2 hours. The notebook itself runs top to bottom in about half a minute.
#
# **What must be running**: PostgreSQL. The setup cell checks it and gives this notebook a fresh
# database of its own; if the server is down it stops with one message naming the fix (usually
# `dbcourse services up`).

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
from dbcourse.checks import ch04b as check

course = dbcourse.setup("04b-django-fastapi", namespace=namespace, scale=scale,
                        urls=dict(postgres=postgres_url, mysql=mysql_url, mongodb=mongodb_url, redis=redis_url))

# %% [markdown]
# ## 1. Django's ORM without a Django project
#
# Django is a web framework, and its ORM normally lives inside a *project*: a `settings.py`, a
# `manage.py`, and *apps* (Python packages with a `models.py`). Nothing in the ORM needs a web
# server, though. Three calls run it in any Python process, a notebook included:
#
# 1. `settings.configure(...)` instead of a settings module: which database (`DATABASES`) and which
#    apps (`INSTALLED_APPS`);
# 2. `django.setup()`: imports every installed app and registers its models in the **app
#    registry**;
# 3. `call_command("makemigrations")` / `call_command("migrate")`: what `python manage.py ...`
#    does on the command line.
#
# ```mermaid
# flowchart LR
#     conf["settings.configure()<br/>DATABASES, INSTALLED_APPS"] --> setup["django.setup()<br/>imports the apps"]
#     setup --> reg["app registry<br/>shop.models"]
#     reg --> mk["makemigrations<br/>models → migration files"]
#     mk --> files["shop/migrations/<br/>0001_initial.py ..."]
#     files --> mig["migrate<br/>migration files → SQL"]
#     mig --> db[("PostgreSQL<br/>tables + django_migrations")]
# ```
#
# Three facts about doing this in a notebook:
#
# * **Migrations need an app on disk.** `makemigrations` writes Python files into the app's
#   `migrations/` package, so the app must be a real package on `sys.path`. The next cell writes a
#   small app called `shop` into this notebook's scratch folder (`course.path(...)`); the setup
#   cell empties that folder, so every run starts from no migrations at all.
# * **Settings are set once per process.** `settings.configure()` raises if called twice, and
#   `django.setup()` loads the models once. The cells below guard with `settings.configured`, so
#   re-running them is harmless; to *change* settings or models, restart the kernel
#   (Kernel → Restart) and run from the top.
# * **Jupyter runs an event loop.** The kernel executes your cells inside an `asyncio` loop, and
#   Django's ORM refuses to run in a thread that has a running loop (it raises
#   `SynchronousOnlyOperation`), because a blocking query there would freeze every other coroutine
#   of a real async server. In a notebook nothing else shares the loop while a cell runs, so we set
#   `DJANGO_ALLOW_ASYNC_UNSAFE=true`. Never set it in an async web server: there, use Django's async
#   query methods (`await Product.objects.aget(...)`, `acount()`, `async for`) or `sync_to_async`.
#
# The models: a small shop. Categories and tags are reference data; products belong to a category
# (`ForeignKey`) and have tags (`ManyToManyField`); customers place orders made of order items;
# `StockMovement` is an audit log of stock changes.
#
# ```mermaid
# erDiagram
#     Category ||--o{ Product : "category"
#     Product }o--o{ Tag : "tags (shop_product_tags)"
#     Customer ||--o{ Order : "customer"
#     Order ||--o{ OrderItem : "items"
#     Product ||--o{ OrderItem : "order_items"
#     Product ||--o{ StockMovement : "movements"
# ```

# %%
import importlib
import sys
import textwrap

APP_ROOT = course.path("django_app")  # a folder in this notebook's scratch space, emptied by the setup cell

APPS_PY = '''
from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"  # 64-bit identity primary keys
'''

MODELS_PY = '''
from django.db import models
from django.db.models import Q


class Category(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=30, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ProductQuerySet(models.QuerySet):
    """Reusable, chainable filters: Product.objects.available().in_category("Books")."""

    def available(self):
        return self.filter(is_active=True, stock__gt=0)

    def in_category(self, name):
        return self.filter(category__name=name)


class ActiveProductManager(models.Manager.from_queryset(ProductQuerySet)):
    """An extra manager whose get_queryset() hides inactive products from everything it returns."""

    def get_queryset(self):
        return super().get_queryset().filter(is_active=True)


class Product(models.Model):
    sku = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=100)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    price = models.DecimalField(max_digits=8, decimal_places=2)
    stock = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)
    tags = models.ManyToManyField(Tag, related_name="products", blank=True)

    objects = ProductQuerySet.as_manager()  # the manager: Product.objects.<queryset methods>
    active = ActiveProductManager()          # a second manager (section 7): active products only

    class Meta:
        ordering = ["sku"]
        constraints = [models.CheckConstraint(condition=Q(stock__gte=0), name="product_stock_not_negative")]

    def __str__(self):
        return self.sku


class Customer(models.Model):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2)
    order_count = models.IntegerField(default=0)  # a denormalized counter (section 8)

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new"
        PAID = "paid"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    status = models.CharField(max_length=10, choices=Status, default=Status.NEW)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_items")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=8, decimal_places=2)  # the price paid

    class Meta:
        ordering = ["id"]


class StockMovement(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="movements")
    change = models.IntegerField()
    reason = models.CharField(max_length=20)

    class Meta:
        ordering = ["id"]
'''

APP_FILES = {
    "shop/__init__.py": "",
    "shop/apps.py": APPS_PY,
    "shop/models.py": MODELS_PY,
    "shop/migrations/__init__.py": "",
}
for relative, source in APP_FILES.items():
    target = APP_ROOT / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(source).lstrip())

# Forget migration modules an earlier run of this kernel imported: the folder is new.
for module in [m for m in sys.modules if m.startswith("shop.migrations.")]:
    del sys.modules[module]
importlib.invalidate_caches()
if str(APP_ROOT) not in sys.path:
    sys.path.insert(0, str(APP_ROOT))

for path in sorted(APP_ROOT.rglob("*.py")):
    print(path.relative_to(APP_ROOT))

# %% [markdown]
# Now configure Django. The database is this notebook's PostgreSQL database; `course.postgres_url`
# holds its address, which we split into Django's `NAME` / `USER` / `PASSWORD` / `HOST` / `PORT`.
# The engine `django.db.backends.postgresql` uses **psycopg 3** when it is installed (Django 4.2+),
# so no `psycopg2` is needed.

# %%
import os
from urllib.parse import unquote, urlsplit

import django
from django.conf import settings

pg = urlsplit(course.postgres_url)
DATABASE = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": pg.path.lstrip("/"),
    "USER": unquote(pg.username or ""),
    "PASSWORD": unquote(pg.password or ""),
    "HOST": pg.hostname,
    "PORT": pg.port,
}

if not settings.configured:  # once per kernel: settings cannot be changed afterwards
    settings.configure(
        DATABASES={"default": DATABASE},
        INSTALLED_APPS=["shop"],
        USE_TZ=True,  # store aware datetimes (UTC in the database)
        TIME_ZONE="UTC",
    )
    django.setup()

if settings.DATABASES["default"]["NAME"] != DATABASE["NAME"]:
    raise RuntimeError("Django in this kernel is set up for another database: restart the kernel and run from the top.")
print("installed apps:", settings.INSTALLED_APPS)
print("database engine:", settings.DATABASES["default"]["ENGINE"])

# %% [markdown]
# The first query shows the event-loop problem, then the flag that lifts it. (`connections.close_all()`
# then drops any connection left from an earlier run of this kernel: the setup cell has just
# recreated the database, so such a connection would point at one that no longer exists.)

# %%
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection, connections

os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
try:
    connection.ensure_connection()
except SynchronousOnlyOperation as exc:
    print("without the flag:", exc)

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # safe here: one thread, nothing else shares the loop
connections.close_all()  # forget a connection an earlier run of this kernel opened (its database was recreated)
with connection.cursor() as cursor:
    cursor.execute("SELECT current_database() = %s", [DATABASE["NAME"]])
    print("with the flag, connected to this notebook's database:", cursor.fetchone()[0])

# %% [markdown]
# ## 2. Models and migrations
#
# A **model** is a class whose attributes are fields; Django maps it to one table
# (`<app>_<model>`, so `shop_product`) with an `id` primary key unless you declare one. A
# `ForeignKey` becomes a column (`category_id`) with a foreign-key constraint and an index;
# `on_delete` says what happens to products when their category is deleted (`PROTECT` refuses,
# `CASCADE` deletes them too). A `ManyToManyField` becomes a hidden join table
# (`shop_product_tags`). `related_name` names the reverse side: `category.products`,
# `tag.products`, `customer.orders`, `order.items`. `Meta` holds table-level options: default
# ordering, constraints, indexes. (`CheckConstraint(condition=...)` is the Django 5.1+ spelling;
# older code writes `check=`, which is deprecated.)
#
# **Migrations** turn model changes into versioned, reviewable schema changes:
#
# * `makemigrations` compares the models with the state that the existing migration files describe,
#   and writes a new file with the difference (here: everything, since there are none yet);
# * `migrate` runs the files that the database has not seen yet and records each one in the
#   table `django_migrations`;
# * `showmigrations` lists them with `[X]` for applied; `sqlmigrate` prints the SQL of one.
#
# `manage()` below runs a management command in this kernel and prints its output, with the
# scratch folder's path shortened to `<app>`.

# %%
from io import StringIO

from django.core.management import call_command


def manage(*args, **options):
    """Run `python manage.py <args>` in this kernel; print its output with the scratch path shortened."""
    out = StringIO()
    call_command(*args, stdout=out, no_color=True, **options)
    text = out.getvalue().replace(str(APP_ROOT), "<app>").replace(os.path.relpath(APP_ROOT), "<app>")
    print(text.rstrip())


manage("makemigrations", "shop")

# %% [markdown]
# The generated file is ordinary Python: a list of operations. It goes into version control with
# the models. (We skip its first line, which records the Django version and the time.)

# %%
initial = APP_ROOT / "shop" / "migrations" / "0001_initial.py"
lines = initial.read_text().splitlines()[1:]
print("\n".join(lines[:60]))
print(f"... ({len(lines)} lines in all)")

# %%
manage("migrate")
manage("showmigrations", "shop")

# %% [markdown]
# `sqlmigrate` shows what `migrate` sent to PostgreSQL. Here is the part for `Product`: an
# identity primary key, `numeric(8, 2)` for the `DecimalField`, the `CHECK` constraint from
# `Meta.constraints`, the foreign key (created `DEFERRABLE INITIALLY DEFERRED`, checked at commit)
# and the indexes Django adds for foreign keys and unique text columns.

# %%
out = StringIO()
call_command("sqlmigrate", "shop", "0001", stdout=out, no_color=True)
statements = [s.strip() for s in out.getvalue().split(";") if "shop_product\"" in s or "shop_product " in s]
for statement in statements:
    print(statement.replace("--\n", "").strip() + ";")

# %% [markdown]
# ### A data migration
#
# Migrations can also change *data*. Reference data that every installation needs (here: the
# categories and tags) belongs in a migration, so that a new database gets it from `migrate`.
# `makemigrations --empty` writes a skeleton; we fill in a `RunPython` operation with a forward
# function and a **reverse** function, so that the migration can be undone.
#
# Two rules for `RunPython` functions:
#
# * use `apps.get_model("shop", "Category")`, the **historical** model as it was at this point of
#   the history, never `from shop.models import Category`: the current model may have fields that
#   do not exist yet at this step (or have lost some);
# * on PostgreSQL each migration runs in a transaction, so a failing data migration leaves nothing
#   half-done.

# %%
manage("makemigrations", "shop", "--empty", "--name", "seed_reference_data")
skeleton = APP_ROOT / "shop" / "migrations" / "0002_seed_reference_data.py"
print("\n".join(skeleton.read_text().splitlines()[1:]))

# %%
DATA_MIGRATION = '''
from django.db import migrations

CATEGORIES = ["Books", "Electronics", "Garden", "Toys"]
TAGS = ["eco", "gift", "new", "sale"]


def add_reference_data(apps, schema_editor):
    Category = apps.get_model("shop", "Category")  # the historical model, not shop.models.Category
    Tag = apps.get_model("shop", "Tag")
    Category.objects.bulk_create([Category(name=name) for name in CATEGORIES])
    Tag.objects.bulk_create([Tag(name=name) for name in TAGS])


def remove_reference_data(apps, schema_editor):
    apps.get_model("shop", "Tag").objects.filter(name__in=TAGS).delete()
    apps.get_model("shop", "Category").objects.filter(name__in=CATEGORIES).delete()


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RunPython(add_reference_data, remove_reference_data)]
'''
skeleton.write_text(textwrap.dedent(DATA_MIGRATION).lstrip())
importlib.invalidate_caches()

from shop.models import Category, Customer, Order, OrderItem, Product, StockMovement, Tag

manage("migrate", "shop")
print("categories:", list(Category.objects.values_list("name", flat=True)))

manage("migrate", "shop", "0001")  # migrate *back* to 0001: runs remove_reference_data
print("categories after migrating back:", Category.objects.count())

manage("migrate", "shop")  # and forward again
manage("showmigrations", "shop")
print("tags:", list(Tag.objects.values_list("name", flat=True)))

# %% [markdown]
# Django keeps its own record of what ran, in the database itself:

# %%
with connection.cursor() as cursor:
    cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
    for row in cursor.fetchall():
        print(row)

# %% [markdown]
# ## 3. Sample data and QuerySets
#
# The next cell loads a small, fixed data set: 16 products, 8 customers and 40 orders. It uses
# `bulk_create`, one `INSERT` for many rows (section 8 shows what it skips). Products tagged
# `sale` were sold at 10 % off, so their `unit_price` is below today's price.

# %%
import random
from decimal import Decimal

PRODUCTS = [  # sku, name, category, price, stock, active, tags
    ("BK-001", "Databases in Depth", "Books", "39.00", 12, True, ["new"]),
    ("BK-002", "SQL Pocket Guide", "Books", "18.50", 40, True, ["gift", "sale"]),
    ("BK-003", "Python Crash Course", "Books", "29.90", 0, True, ["sale"]),
    ("BK-004", "Designing Data Systems", "Books", "45.00", 7, True, []),
    ("EL-001", "USB-C Cable", "Electronics", "9.99", 150, True, ["sale"]),
    ("EL-002", "Mechanical Keyboard", "Electronics", "89.00", 15, True, ["gift", "new"]),
    ("EL-003", "Noise-Cancelling Headphones", "Electronics", "199.00", 4, True, ["gift"]),
    ("EL-004", "MP3 Player", "Electronics", "25.00", 3, False, []),
    ("GA-001", "Watering Can", "Garden", "14.50", 25, True, ["eco"]),
    ("GA-002", "Compost Bin", "Garden", "49.00", 6, True, ["eco", "sale"]),
    ("GA-003", "Pruning Shears", "Garden", "22.00", 0, True, []),
    ("GA-004", "Seed Collection", "Garden", "12.00", 60, True, ["eco", "gift"]),
    ("TO-001", "Wooden Blocks", "Toys", "24.00", 30, True, ["eco", "gift"]),
    ("TO-002", "Puzzle 1000", "Toys", "16.00", 18, True, ["gift", "sale"]),
    ("TO-003", "Robot Kit", "Toys", "59.00", 9, True, ["new"]),
    ("TO-004", "Kite", "Toys", "19.00", 2, False, ["sale"]),
]
CUSTOMERS = [  # email, name, country
    ("ada@example.org", "Ada Lovelace", "GB"), ("alan@example.org", "Alan Turing", "GB"),
    ("grace@example.org", "Grace Hopper", "US"), ("edsger@example.org", "Edsger Dijkstra", "NL"),
    ("barbara@example.org", "Barbara Liskov", "US"), ("donald@example.org", "Donald Knuth", "US"),
    ("marie@example.org", "Marie Curie", "FR"), ("emmy@example.org", "Emmy Noether", "DE"),
]

# Safe to re-run: empty the tables this cell fills (ids start from 1 again), keep the reference data.
with connection.cursor() as cursor:
    cursor.execute("TRUNCATE shop_orderitem, shop_order, shop_customer, shop_stockmovement, shop_product_tags, "
                   "shop_product RESTART IDENTITY")

categories = {c.name: c for c in Category.objects.all()}
tags = {t.name: t for t in Tag.objects.all()}
products = Product.objects.bulk_create([
    Product(sku=sku, name=name, category=categories[cat], price=Decimal(price), stock=stock, is_active=active)
    for sku, name, cat, price, stock, active, _ in PRODUCTS
])
Product.tags.through.objects.bulk_create([  # the hidden join table of the ManyToManyField
    Product.tags.through(product=product, tag=tags[tag])
    for product, row in zip(products, PRODUCTS) for tag in row[6]
])

rng = random.Random(4)
plan = [(rng.choice(CUSTOMERS)[0], rng.choice(["new", "paid", "paid", "shipped", "shipped", "cancelled"]),
         rng.sample(range(len(PRODUCTS)), rng.randint(1, 4))) for _ in range(40)]
customers = Customer.objects.bulk_create([
    Customer(email=email, name=name, country=country, order_count=sum(1 for p in plan if p[0] == email))
    for email, name, country in CUSTOMERS
])
by_email = {c.email: c for c in customers}
orders = Order.objects.bulk_create([Order(customer=by_email[email], status=status) for email, status, _ in plan])
OrderItem.objects.bulk_create([
    OrderItem(order=order, product=products[i], quantity=rng.randint(1, 3),
              unit_price=(products[i].price * Decimal("0.9")).quantize(Decimal("0.01"))
              if "sale" in PRODUCTS[i][6] else products[i].price)
    for order, (_, _, picks) in zip(orders, plan) for i in picks
])
for model in (Category, Tag, Product, Customer, Order, OrderItem):
    print(f"{model.__name__:<10} {model.objects.count():>4} rows")

# %% [markdown]
# ### QuerySets are lazy
#
# `Product.objects` is the model's **manager**, the entry point to queries. Its methods return a
# **QuerySet**: a description of a query that runs only when you need the rows (iterating,
# `list()`, `len()`, `bool()`, indexing). Each `filter()` / `exclude()` / `order_by()` returns a
# *new* QuerySet, so you can build a query step by step and reuse the pieces; once evaluated, a
# QuerySet caches its rows. `CaptureQueriesContext` records the SQL that Django sends, so we can
# count it:

# %%
from django.test.utils import CaptureQueriesContext

with CaptureQueriesContext(connection) as queries:
    affordable = Product.objects.filter(price__lt=30)            # nothing runs yet
    affordable_books = affordable.filter(category__name="Books").exclude(stock=0)
    print("queries after building:", len(queries))
    print("skus:", [p.sku for p in affordable_books])            # runs now
    print("queries after iterating:", len(queries))
    print("again:", [p.sku for p in affordable_books])           # served from the QuerySet's cache
    print("queries after iterating again:", len(queries))

print(affordable_books.query)

# %% [markdown]
# `str(qs.query)` shows the SQL with the parameters pasted in, for reading only: Django sends the
# values separately (`%s` placeholders), so they can never break the query. Lookups are written
# `field__lookup=value`: `price__lt`, `name__icontains`, `sku__in`, `stock__gte`; a double
# underscore also **follows a relation** (`category__name` joins `shop_category`).
#
# `Q` objects combine conditions with `|` (or), `&` (and) and `~` (not). `values()` /
# `values_list()` return dicts / tuples instead of model instances (less memory, only the
# columns you name). `get()` returns exactly one object or raises; `exists()` and `count()` ask the
# database instead of fetching rows.

# %%
from django.db.models import Q

cheap_or_gift = (Product.objects
                 .filter(Q(price__lt=15) | Q(tags__name="gift"), is_active=True)
                 .exclude(category__name="Electronics")
                 .distinct()                                   # a product with two matching tags appears once
                 .values_list("sku", "price"))
print(list(cheap_or_gift))

print(list(Order.objects.filter(status="paid", customer__country="US").values("id", "customer__email")[:3]))
print("get():", Product.objects.get(sku="EL-002").name,
      "| any sold out:", Product.objects.filter(stock=0).exists(),
      "| customers in GB:", Customer.objects.filter(country="GB").count())
try:
    Product.objects.get(sku="XX-000")
except Product.DoesNotExist as exc:
    print("DoesNotExist:", exc)

# %% [markdown]
# ### Exercise 04b.1 · Featured products (warm-up)
#
# Write `featured_products(max_price)` that returns a **QuerySet** (not a list) of `Product`s that
#
# * are active and in stock (`stock > 0`),
# * cost at most `max_price`,
# * and are in the category `"Books"` **or** carry the tag `"gift"`,
#
# each product once, ordered by price, then by sku. The check compares the skus with a SQL query
# over the current data, for several prices.

# %% nbgrader={"grade": false, "grade_id": "ex04b-1-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def featured_products(max_price):
    return (Product.objects
            .filter(Q(category__name="Books") | Q(tags__name="gift"),
                    is_active=True, stock__gt=0, price__lte=max_price)
            .distinct()
            .order_by("price", "sku"))
### END SOLUTION

print([p.sku for p in featured_products(40)])

# %% nbgrader={"grade": true, "grade_id": "ex04b-1-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.featured_products(featured_products)
### BEGIN HIDDEN TESTS
check.featured_products(featured_products, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The N+1 problem: `select_related` and `prefetch_related`
#
# Following a relation on an instance (`order.customer`, `order.items.all()`) runs a query the
# first time, for that one instance. In a loop over N orders that is 1 query for the orders plus
# N (or 2N, 3N...) more: the **N+1 problem**. It hides well, because each query is fast; the cost
# is the round trips. Django has two fixes:
#
# | | `select_related("customer")` | `prefetch_related("items")` |
# |---|---|---|
# | for | forward `ForeignKey` / `OneToOneField` (one related row) | reverse FK, `ManyToManyField` (many rows) |
# | SQL | one query with a `JOIN` | one extra query per relation: `WHERE order_id IN (...)` |
# | joins in | the database | Python |
#
# Both take paths through relations: `select_related("order__customer")`,
# `prefetch_related("items__product")`; `Prefetch("items", queryset=...)` filters or orders the
# prefetched rows.

# %%
def order_lines_naive(limit):
    lines = []
    for order in Order.objects.order_by("id")[:limit]:
        for item in order.items.all():                                         # 1 query per order
            lines.append((order.customer.email, item.product.sku, item.quantity))  # 1 + 1 per item
    return lines


def order_lines_fast(limit):
    lines = []
    orders = (Order.objects.order_by("id")
              .select_related("customer")                  # JOIN shop_customer
              .prefetch_related("items__product"))         # + 1 query for items, + 1 for their products
    for order in orders[:limit]:
        for item in order.items.all():
            lines.append((order.customer.email, item.product.sku, item.quantity))
    return lines


for limit in (5, 10, 20, 40):
    with CaptureQueriesContext(connection) as naive:
        slow_rows = order_lines_naive(limit)
    with CaptureQueriesContext(connection) as fast:
        fast_rows = order_lines_fast(limit)
    assert slow_rows == fast_rows
    print(f"{limit:>2} orders, {len(fast_rows):>3} lines: naive {len(naive):>3} queries, fixed {len(fast)} queries")

# %%
import matplotlib.pyplot as plt

sizes = [1, 5, 10, 20, 30, 40]
counts = {"naive": [], "select_related + prefetch_related": []}
for limit in sizes:
    for label, function in (("naive", order_lines_naive), ("select_related + prefetch_related", order_lines_fast)):
        with CaptureQueriesContext(connection) as captured:
            function(limit)
        counts[label].append(len(captured))

fig, ax = plt.subplots(figsize=(6, 3.2))
for label, values in counts.items():
    ax.plot(sizes, values, marker="o", label=label)
ax.set_xlabel("orders listed")
ax.set_ylabel("SQL queries")
ax.set_title("Queries per page: N+1 grows, prefetching stays flat")
ax.legend()
plt.show()

# %% [markdown]
# The fixed version sends three queries whatever the number of orders. Here they are:

# %%
with CaptureQueriesContext(connection) as captured:
    order_lines_fast(3)
for query in captured.captured_queries:
    print(query["sql"], end="\n\n")

# %% [markdown]
# ### Exercise 04b.2 · Find and fix: a slow order page (find and fix)
#
# This function builds the "paid orders" page of the shop. It gives the right answer, but it sends
# one query for the orders, one per order for its customer, one per order for its items and one
# per item for its product:
#
# ```python
# def order_summaries(status):
#     rows = []
#     for order in Order.objects.filter(status=status).order_by("id"):
#         items = list(order.items.all())
#         rows.append({
#             "order": order.id,
#             "customer": order.customer.email,
#             "products": sorted(item.product.name for item in items),
#             "total": sum(item.quantity * item.unit_price for item in items),
#         })
#     return rows
# ```
#
# Write a fixed `order_summaries(status)` that returns the same list of dicts with **at most 3
# queries, however many orders there are**. The check compares the result with SQL and counts the
# queries with `CaptureQueriesContext` (the hidden test adds orders and counts again).

# %%
def order_summaries_slow(status):
    rows = []
    for order in Order.objects.filter(status=status).order_by("id"):
        items = list(order.items.all())
        rows.append({
            "order": order.id,
            "customer": order.customer.email,
            "products": sorted(item.product.name for item in items),
            "total": sum(item.quantity * item.unit_price for item in items),
        })
    return rows


with CaptureQueriesContext(connection) as captured:
    slow = order_summaries_slow("paid")
print(f"{len(slow)} paid orders, {len(captured)} queries")
print(slow[0])

# %% nbgrader={"grade": false, "grade_id": "ex04b-2-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def order_summaries(status):
    rows = []
    orders = (Order.objects.filter(status=status).order_by("id")
              .select_related("customer")
              .prefetch_related("items__product"))
    for order in orders:
        items = list(order.items.all())
        rows.append({
            "order": order.id,
            "customer": order.customer.email,
            "products": sorted(item.product.name for item in items),
            "total": sum(item.quantity * item.unit_price for item in items),
        })
    return rows
### END SOLUTION

with CaptureQueriesContext(connection) as captured:
    fixed = order_summaries("paid")
print(f"{len(fixed)} paid orders, {len(captured)} queries, same result: {fixed == slow}")

# %% nbgrader={"grade": true, "grade_id": "ex04b-2-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.order_summaries(order_summaries)
### BEGIN HIDDEN TESTS
check.order_summaries(order_summaries, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. `F()` expressions: let the database do the arithmetic
#
# `F("stock")` means "the value of the column `stock` in the database, at the moment the statement
# runs". Compare two ways to sell one item:
#
# * **read, modify, write** in Python: `p = Product.objects.get(...)`, `p.stock -= 1`, `p.save()`.
#   Between the read and the write another request may sell the same product; whoever saves last
#   overwrites the other's change: a **lost update**;
# * **`F()`**: `Product.objects.filter(pk=...).update(stock=F("stock") - 1)` sends
#   `UPDATE ... SET stock = stock - 1`, and the database applies each decrement to the current
#   value, under a row lock. No update is lost.
#
# The next cell plays two requests that read the same row before either writes:

# %%
from django.db.models import F

Product.objects.filter(sku="TO-003").update(stock=9)
first = Product.objects.get(sku="TO-003")    # request 1 reads stock = 9
second = Product.objects.get(sku="TO-003")   # request 2 reads stock = 9
first.stock -= 1
first.save()
second.stock -= 1
second.save()
print("read-modify-write, two sales:", Product.objects.get(sku="TO-003").stock, "(one sale lost)")

Product.objects.filter(sku="TO-003").update(stock=9)
for request in range(2):
    Product.objects.filter(sku="TO-003").update(stock=F("stock") - 1)
print("F() update, two sales:       ", Product.objects.get(sku="TO-003").stock)

# %% [markdown]
# More of `F()`:
#
# * on an instance: `p.stock = F("stock") - 1; p.save(update_fields=["stock"])` sends the same
#   `UPDATE`; the attribute then holds an expression, not a number, so call `p.refresh_from_db()`
#   before reading it;
# * a **conditional update** prevents overselling without a separate read:
#   `filter(sku=..., stock__gte=n).update(stock=F("stock") - n)` returns the number of rows it
#   changed, 0 when there was not enough stock;
# * in filters, `F()` compares two columns: below, order lines sold for less than the product's
#   current price (the `sale` discounts).

# %%
def stock_of(sku):
    return Product.objects.values_list("stock", flat=True).get(sku=sku)


robot = Product.objects.get(sku="TO-003")
robot.stock = F("stock") + 5
robot.save(update_fields=["stock"])
print("after save, the attribute is an expression:", robot.stock)
robot.refresh_from_db()
print("after refresh_from_db:", robot.stock)

Product.objects.filter(sku="TO-003").update(stock=7)
for attempt in (1, 2):
    changed = Product.objects.filter(sku="TO-003", stock__gte=5).update(stock=F("stock") - 5)
    print(f"sale {attempt} of 5 units: {changed} row(s) updated, stock now {stock_of('TO-003')}")
Product.objects.filter(sku="TO-003").update(stock=9)

discounted = (OrderItem.objects.filter(unit_price__lt=F("product__price"))
              .values_list("product__sku", flat=True).distinct().order_by("product__sku"))
print("sold below today's price:", list(discounted))

# %% [markdown]
# ### Exercise 04b.3 · Find and fix: the lost sale (find and fix)
#
# The shop sells with this function. Under load, stock counts drift upwards: sales get lost, as
# in the demonstration above, and it can sell more than it has.
#
# ```python
# def sell(sku, quantity):
#     product = Product.objects.get(sku=sku)
#     if product.stock < quantity:
#         return False
#     product.stock -= quantity
#     product.save()
#     return True
# ```
#
# Write a fixed `sell(sku, quantity)`: it removes `quantity` from the product's stock and returns
# `True`, or returns `False` and changes nothing when the stock is too low. It must not lose a sale
# that another connection makes while it runs. The check sells from its own test products, and
# makes another connection sell 3 of the same product **in the middle** of your function (just
# before your first `UPDATE`); the final stock must account for both sales.

# %% nbgrader={"grade": false, "grade_id": "ex04b-3-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def sell(sku, quantity):
    updated = Product.objects.filter(sku=sku, stock__gte=quantity).update(stock=F("stock") - quantity)
    return updated == 1
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex04b-3-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.sell(sell, course)
### BEGIN HIDDEN TESTS
check.sell(sell, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. `aggregate` and `annotate`
#
# * `aggregate(...)` summarizes a whole QuerySet into **one dict**: `SELECT SUM(...), AVG(...)`.
# * `annotate(...)` adds a computed value **to every row**: `GROUP BY` the model's primary key, so
#   each product gets its own `Sum`, each customer its own `Count`.
# * `values("status").annotate(...)` groups by the named columns instead: one row per status.
#
# Aggregates: `Count`, `Sum`, `Avg`, `Min`, `Max`. `filter=Q(...)` restricts what one aggregate
# counts (`COUNT(...) FILTER (WHERE ...)` in PostgreSQL); `Coalesce(..., 0)` turns the `NULL` of
# an empty sum into 0; `F("quantity") * F("unit_price")` multiplies inside the query.

# %%
from django.db.models import Avg, Count, DecimalField, Max, Sum, Value
from django.db.models.functions import Coalesce

line_total = F("quantity") * F("unit_price")
print(OrderItem.objects.exclude(order__status="cancelled").aggregate(
    revenue=Sum(line_total), lines=Count("id"), avg_quantity=Avg("quantity"), biggest=Max("quantity")))

print(list(Order.objects.values("status").annotate(orders=Count("id")).order_by("status")))

# An aggregate over an annotation: annotate each customer with a count, then average the counts.
# (Some tutorials write aggregate(Avg("orders__count")): there is no such field; this is the way.)
print(Customer.objects.annotate(n=Count("orders")).aggregate(avg_orders_per_customer=Avg("n")))

by_category = (Category.objects
               .annotate(n_products=Count("products", distinct=True),
                         revenue=Coalesce(Sum(F("products__order_items__quantity") * F("products__order_items__unit_price"),
                                              filter=~Q(products__order_items__order__status="cancelled")),
                                          Value(0), output_field=DecimalField()))
               .order_by("-revenue"))
for category in by_category:
    print(f"{category.name:<12} {category.n_products:>2} products  revenue {category.revenue:>8}")

# %% [markdown]
# **The join trap.** Two aggregates over *two different* relations in one `annotate` multiply
# each other: the query joins tags *and* order items, so every tag row is repeated once per order
# item. `Count(..., distinct=True)` fixes a count; a sum needs a **subquery** (`Subquery` +
# `OuterRef`), which computes it per product before any join:

# %%
from django.db.models import OuterRef, Subquery

wrong = Product.objects.filter(sku="BK-002").annotate(n_tags=Count("tags"), sold=Sum("order_items__quantity"))
sold_per_product = (OrderItem.objects.filter(product=OuterRef("pk")).values("product")
                    .annotate(total=Sum("quantity")).values("total"))
right = Product.objects.filter(sku="BK-002").annotate(n_tags=Count("tags", distinct=True),
                                                      sold=Subquery(sold_per_product))
print("two joins:         ", wrong.values("sku", "n_tags", "sold").get())
print("distinct + subquery:", right.values("sku", "n_tags", "sold").get())
print("check:               tags", Product.objects.get(sku="BK-002").tags.count(),
      "sold", OrderItem.objects.filter(product__sku="BK-002").aggregate(s=Sum("quantity"))["s"])

# %% [markdown]
# ### Exercise 04b.4 · A customer report (practice)
#
# Write `customer_report()` returning a **list of dicts**, one per customer (all customers, even
# those without orders), with the keys
#
# * `"email"`,
# * `"n_orders"`: how many of their orders are **not cancelled**,
# * `"spent"`: the sum of `quantity * unit_price` over the items of those orders, as a `Decimal`,
#   `0` when there are none,
#
# ordered by `spent` descending, then `email`. Use `annotate` (one query, no Python loop over
# orders). Mind the join trap: counting orders while summing their items multiplies the count.
# (An annotation cannot be called `orders`: that name is taken by the reverse relation
# `customer.orders`, hence `n_orders`.)

# %% nbgrader={"grade": false, "grade_id": "ex04b-4-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def customer_report():
    not_cancelled = ~Q(orders__status="cancelled")
    return list(
        Customer.objects
        .annotate(n_orders=Count("orders", filter=not_cancelled, distinct=True),
                  spent=Coalesce(Sum(F("orders__items__quantity") * F("orders__items__unit_price"),
                                     filter=not_cancelled),
                                 Value(0), output_field=DecimalField()))
        .order_by("-spent", "email")
        .values("email", "n_orders", "spent")
    )
### END SOLUTION

for row in customer_report()[:3]:
    print(row)

# %% nbgrader={"grade": true, "grade_id": "ex04b-4-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.customer_report(customer_report)
### BEGIN HIDDEN TESTS
check.customer_report(customer_report, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Custom managers and QuerySets
#
# A filter that appears all over an application ("available products", "open orders") belongs on
# the model, once. Write it as a method of a `QuerySet` subclass, so that it **chains** with
# everything else, and build the manager from it:
#
# ```python
# class ProductQuerySet(models.QuerySet):
#     def available(self):
#         return self.filter(is_active=True, stock__gt=0)
#
# class Product(models.Model):
#     ...
#     objects = ProductQuerySet.as_manager()      # or models.Manager.from_queryset(ProductQuerySet)()
# ```
#
# A manager can also override `get_queryset()` to filter *everything* it returns. Our models
# have one: `Product.active`, an `ActiveProductManager` whose `get_queryset()` keeps only active
# products. It is built with `models.Manager.from_queryset(ProductQuerySet)`, so it has the
# QuerySet's methods too (`as_manager()` is the short form of the same thing, for a manager that
# adds nothing else). Put such a filtering manager *next to* `objects`, never in its place: the
# first manager declared is the model's **default manager**, which Django uses where it needs
# "all the rows" (related lookups such as `category.products`, `dumpdata`, the admin), and rows it
# hides seem to vanish.

# %%
print([p.sku for p in Product.objects.available().in_category("Garden")])
print([p.sku for p in Product.objects.in_category("Toys").available().filter(price__lt=30)])
print(Product.objects.available().aggregate(units=Sum("stock")))

print("Product.objects:", Product.objects.count(), "products | Product.active:", Product.active.count())
print("active toys:", [p.sku for p in Product.active.in_category("Toys")])  # a QuerySet method, via from_queryset
print("default manager:", Product._meta.default_manager.name)
toys = Category.objects.get(name="Toys")
print("toys.products uses the default manager:", toys.products.count(), "products |",
      'toys.products(manager="active"):', toys.products(manager="active").count())

# %% [markdown]
# ### Exercise 04b.5 · A QuerySet for orders (practice)
#
# Write `OrderQuerySet`, a subclass of `django.db.models.QuerySet` with three chainable methods:
#
# * `open()`: orders whose status is `"new"` or `"paid"`;
# * `placed_in(country)`: orders of customers from that country (a two-letter code);
# * `with_total()`: annotates every order with `total`, the sum of `quantity * unit_price` of its
#   items (`0` for an order without items).
#
# Each method returns a QuerySet of the same class, so that they chain in any order. In a project
# you would attach it in the model, `objects = OrderQuerySet.as_manager()`, and call
# `Order.objects.open()`. Our models are already loaded, so try your methods on
# `OrderQuerySet(Order)`, the QuerySet that such a manager's `get_queryset()` starts from. The check
# attaches your class to `Order` as a manager built with `OrderQuerySet.as_manager()` (and removes
# it afterwards), then compares chains that start from that manager with SQL. (A manager copies
# the QuerySet's public methods; a method whose name starts with `_` stays on the QuerySet.)

# %% nbgrader={"grade": false, "grade_id": "ex04b-5-answer", "locked": false, "schema_version": 3, "solution": true}
from django.db import models

### BEGIN SOLUTION
class OrderQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=["new", "paid"])

    def placed_in(self, country):
        return self.filter(customer__country=country)

    def with_total(self):
        return self.annotate(total=Coalesce(Sum(F("items__quantity") * F("items__unit_price")),
                                            Value(0), output_field=DecimalField()))
### END SOLUTION

print([(o.id, o.total) for o in OrderQuerySet(Order).open().placed_in("US").with_total()[:3]])

# %% nbgrader={"grade": true, "grade_id": "ex04b-5-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.order_queryset(OrderQuerySet)
### BEGIN HIDDEN TESTS
check.order_queryset(OrderQuerySet, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 8. Signals, and where they bite
#
# A **signal** lets code run when something happens to a model, without the code that caused it
# knowing: `pre_save` / `post_save`, `pre_delete` / `post_delete`, `m2m_changed`. A **receiver**
# is a function connected with `@receiver(post_save, sender=Order, dispatch_uid="...")`; for
# `post_save` it gets the `instance`, `created` (True for an `INSERT`), `raw` (True while loading
# fixtures), `update_fields` and more in `**kwargs`.
#
# Know their limits before you rely on them:
#
# * **They fire only for `Model.save()` and `Model.delete()`** (and `QuerySet.delete()`, which
#   sends `pre_delete` / `post_delete` for every object it deletes). `QuerySet.update()`,
#   `bulk_create()`, `bulk_update()` and raw SQL send **no** `post_save`: a counter kept up by a
#   signal drifts.
# * **They run synchronously, in the same transaction.** An exception in a receiver breaks the
#   `save()` that triggered it, and the receiver's writes roll back with the caller's. Side effects
#   outside the database (an e-mail, a message to a queue) belong in `transaction.on_commit(...)`,
#   which runs only if the transaction commits.
# * **They hide control flow.** Reading `Order.objects.create(...)` you cannot see that it also
#   updates a customer. Prefer an explicit service function when you own both sides; keep signals
#   for decoupled concerns such as audit logs and cache invalidation.
# * **Receivers are global and weakly referenced.** `dispatch_uid` makes connecting idempotent, so
#   importing a module twice does not connect a second copy. A receiver defined inside a function is
#   garbage-collected (and silently stops) unless you connect it with `weak=False`. In a notebook
#   the two combine badly: re-running a cell defines a *new* function, `connect` keeps the old one
#   (same `dispatch_uid`), and the old one is then garbage-collected: no receiver at all. Hence the
#   `disconnect(...)` line at the top of the cells below.

# %%
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver


post_save.disconnect(sender=Order, dispatch_uid="count_orders")  # drop a copy an earlier run connected


@receiver(post_save, sender=Order, dispatch_uid="count_orders")
def count_orders(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        Customer.objects.filter(pk=instance.customer_id).update(order_count=F("order_count") + 1)
        email = instance.customer.email
        transaction.on_commit(lambda: print(f"   on commit: confirmation e-mail to {email}"))


ada = Customer.objects.get(email="ada@example.org")
print("counter:", ada.order_count, "| real number of orders:", ada.orders.count())

with transaction.atomic():
    Order.objects.create(customer=ada)
    print("1. create() inside atomic(): counter", Customer.objects.get(pk=ada.pk).order_count, "(e-mail waits for the commit)")
print("   committed")

Order.objects.bulk_create([Order(customer=ada), Order(customer=ada)])
print("2. bulk_create() of two orders: counter", Customer.objects.get(pk=ada.pk).order_count,
      "| real:", ada.orders.count(), "(no signal: the counter drifted)")

with transaction.atomic():
    Order.objects.create(customer=ada)
    transaction.set_rollback(True)  # as if the request failed later on
print("3. create() in a rolled-back transaction: counter", Customer.objects.get(pk=ada.pk).order_count,
      "(the receiver's update rolled back too, and no e-mail went out)")

# %% [markdown]
# The counter is now wrong, and a query (`annotate(Count("orders"))`) would always have been
# right. Clean up: delete the demonstration orders, recompute the counter, and disconnect the
# receiver (receivers stay connected for the life of the process).

# %%
ada.orders.filter(items__isnull=True).delete()
Customer.objects.filter(pk=ada.pk).update(order_count=Subquery(
    Order.objects.filter(customer=OuterRef("pk")).values("customer").annotate(n=Count("id")).values("n")))
print("counter:", Customer.objects.get(pk=ada.pk).order_count, "| real:", ada.orders.count())
print("disconnected:", post_save.disconnect(sender=Order, dispatch_uid="count_orders"))

# %% [markdown]
# ### Exercise 04b.6 · An audit log with a signal (practice)
#
# Write a receiver `record_sale` for `post_save` of `OrderItem`, connected with
# `dispatch_uid="record_sale"`. When an order item is **created** (not when it is saved again, and
# not while loading fixtures: `raw`), it writes one `StockMovement` with the item's `product`,
# `change = -quantity` and `reason = "sale"`. (It only logs; it does not change the stock.)
#
# The check creates order items with `create()`, saves one again, and counts the movements, inside
# a transaction that it rolls back. Keep the `disconnect` line at the top of the cell, so that
# running the cell again replaces your receiver.

# %% nbgrader={"grade": false, "grade_id": "ex04b-6-answer", "locked": false, "schema_version": 3, "solution": true}
post_save.disconnect(sender=OrderItem, dispatch_uid="record_sale")

### BEGIN SOLUTION
@receiver(post_save, sender=OrderItem, dispatch_uid="record_sale")
def record_sale(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        StockMovement.objects.create(product_id=instance.product_id, change=-instance.quantity, reason="sale")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex04b-6-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.record_sale(record_sale)
### BEGIN HIDDEN TESTS
check.record_sale(record_sale, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 9. Transactions: `atomic` and `select_for_update`
#
# Django runs in **autocommit** mode: each query commits on its own. `transaction.atomic()`, as a
# `with` block or a decorator, groups queries into one transaction: it commits when the block ends
# normally and rolls back when an exception leaves it. Nested `atomic()` blocks become
# **savepoints**: an inner block can fail and roll back alone while the outer one goes on.
#
# ```mermaid
# sequenceDiagram
#     participant A as request A (atomic)
#     participant DB as PostgreSQL
#     participant B as request B
#     A->>DB: BEGIN; SELECT ... FOR UPDATE (row locked)
#     B->>DB: UPDATE the same row
#     Note over B,DB: B waits for A's lock
#     A->>DB: UPDATE stock, INSERT order ... COMMIT
#     DB-->>B: lock released, B's UPDATE runs on A's result
# ```
#
# `select_for_update()` adds `FOR UPDATE` to the `SELECT`: the rows it reads stay locked until the
# transaction ends, so nobody changes them between your check and your write. It only makes sense
# inside `atomic()` (Django raises `TransactionManagementError` otherwise); `nowait=True` fails at
# once instead of waiting, `skip_locked=True` skips locked rows (job queues). Lock rows in a fixed
# order (by primary key) so that two transactions never wait for each other in a circle
# (a deadlock).

# %%
from django.db import IntegrityError

# Exercise 04b.6's receiver has done its job. Receivers stay connected for the life of the process,
# and the orders below create order items: disconnect it, so that an unfinished receiver cannot
# break them.
post_save.disconnect(sender=OrderItem, dispatch_uid="record_sale")


class OutOfStock(Exception):
    pass


@transaction.atomic
def place_order(email, lines):
    """Create a paid order for {sku: quantity}; all or nothing."""
    customer = Customer.objects.get(email=email)
    locked = {p.sku: p for p in Product.objects.select_for_update().filter(sku__in=lines).order_by("pk")}
    order = Order.objects.create(customer=customer, status=Order.Status.PAID)
    for sku, quantity in lines.items():
        product = locked[sku]
        if product.stock < quantity:
            raise OutOfStock(f"only {product.stock} × {sku} left")  # rolls back the order and its items
        OrderItem.objects.create(order=order, product=product, quantity=quantity, unit_price=product.price)
        Product.objects.filter(pk=product.pk).update(stock=F("stock") - quantity)
    return order


def stock(*skus):
    return dict(Product.objects.filter(sku__in=skus).values_list("sku", "stock"))


# Safe to re-run: first undo what an earlier run of this cell did (its order, and the stock it took).
Order.objects.filter(pk__in=globals().get("demo_orders", [])).delete()
for sku, _, _, _, initial, _, _ in PRODUCTS:
    if sku in ("BK-001", "EL-003"):
        Product.objects.filter(sku=sku).update(stock=initial)

print("before:", stock("BK-001", "EL-003"), "| orders:", Order.objects.count())
order = place_order("grace@example.org", {"BK-001": 2, "EL-003": 1})
demo_orders = [order.pk]
print("placed an order with", order.items.count(), "items")
print("after: ", stock("BK-001", "EL-003"), "| orders:", Order.objects.count())
try:
    place_order("grace@example.org", {"BK-001": 1, "EL-003": 50})
except OutOfStock as exc:
    print("refused:", exc)
print("after the refused order:", stock("BK-001", "EL-003"), "| orders:", Order.objects.count())

# %% [markdown]
# The refused order had already inserted an order, an item and a stock update for `BK-001` before
# it failed; `atomic` rolled all of it back. Now the lock, seen from a second connection (as another
# web request would be), with a short `lock_timeout` so that it gives up instead of waiting:

# %%
import psycopg

with transaction.atomic():
    Product.objects.select_for_update().get(sku="EL-003")          # this transaction holds the row lock
    with course.connect_postgres() as other:
        other.execute("SET lock_timeout = '200ms'")
        try:
            other.execute("UPDATE shop_product SET stock = stock - 1 WHERE sku = %s", ["EL-003"])
        except psycopg.errors.LockNotAvailable as exc:
            print("other connection:", exc.diag.message_primary)
        other.rollback()
print("after our commit the row is free again:", stock("EL-003"))

from django.db.transaction import TransactionManagementError

try:
    list(Product.objects.select_for_update().filter(sku="EL-003"))   # no atomic() around it
except TransactionManagementError as exc:
    print("outside atomic():", exc)

# %% [markdown]
# **Savepoints.** Catching a database error *inside* an `atomic` block leaves the transaction
# broken (PostgreSQL refuses every further statement until a rollback). Wrap the statement that may
# fail in its own inner `atomic()`, and catch the error outside that inner block:

# %%
with transaction.atomic():
    Tag.objects.create(name="limited")
    try:
        with transaction.atomic():              # SAVEPOINT
            Tag.objects.create(name="limited")  # unique violation
    except IntegrityError:
        print("inner block rolled back to its savepoint")
    print("outer block goes on:", Tag.objects.filter(name="limited").count(), "tag 'limited'")
    transaction.set_rollback(True)              # discard the demonstration
print("after the rollback:", Tag.objects.filter(name="limited").count())

# %% [markdown]
# ### Exercise 04b.7 · Cancel an order, all or nothing (challenge)
#
# Write `cancel_order(order_id)`:
#
# * if the order's status is `"new"` or `"paid"`: set it to `"cancelled"` and put the quantity of
#   each of its items back into the product's stock;
# * otherwise (`"shipped"` or already `"cancelled"`): raise `ValueError` and change nothing.
#
# Requirements the check tests, on orders and products of its own:
#
# 1. **All or nothing**: if anything fails half-way (the check makes your last write fail), no
#    change may remain: use `transaction.atomic`.
# 2. **Safe when two requests cancel the same order at once**: the check makes another connection
#    cancel the same order just before your first write. The stock must be restored exactly once.
#    Lock the order row with `select_for_update()` before you check its status (or make the status
#    change itself conditional and look at how many rows it changed).
# 3. **No lost sale**: the check makes another connection sell one of the products while your
#    function restocks it. Restock with `F()`, not by writing a number you computed in Python.

# %% nbgrader={"grade": false, "grade_id": "ex04b-7-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def cancel_order(order_id):
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status not in (Order.Status.NEW, Order.Status.PAID):
            raise ValueError(f"order {order_id} is {order.status}: it cannot be cancelled")
        for item in order.items.order_by("product_id"):
            Product.objects.filter(pk=item.product_id).update(stock=F("stock") + item.quantity)
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status"])
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex04b-7-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.cancel_order(cancel_order, course)
### BEGIN HIDDEN TESTS
check.cancel_order(cancel_order, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 10. Serving the models: FastAPI
#
# A web API is where an ORM meets concurrent requests. This section serves the shop's products with
# **FastAPI**, using **SQLAlchemy 2.0** (chapter 04a) on the *same tables*: Django's migrations own
# the schema, SQLAlchemy only maps it (no `create_all`). Two ORMs on one database is common when a
# new service reads a database that an older application manages.
#
# ```mermaid
# sequenceDiagram
#     participant C as client (TestClient)
#     participant F as FastAPI
#     participant D as get_db
#     participant E as endpoint
#     C->>F: POST /products {"sku": ...}
#     F->>F: validate the JSON with ProductIn (422 if invalid)
#     F->>D: call the dependency
#     D-->>E: yield a Session
#     E->>E: query, add, commit (or raise HTTPException 404 / 409)
#     E-->>F: ORM object
#     F->>F: serialize with response_model=ProductOut
#     F-->>C: 201 + JSON
#     F->>D: resume after yield: close the session
# ```
#
# First the SQLAlchemy mapping of Django's tables. To keep the two ORMs apart in one notebook, the
# SQLAlchemy classes are called `...Row`.

# %%
from sqlalchemy import ForeignKey, Numeric, String, create_engine, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, joinedload, mapped_column, relationship, sessionmaker


class Base(DeclarativeBase):
    pass


class CategoryRow(Base):
    __tablename__ = "shop_category"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class ProductRow(Base):
    __tablename__ = "shop_product"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    category_id: Mapped[int] = mapped_column(ForeignKey("shop_category.id"))
    price: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    stock: Mapped[int] = mapped_column(default=0)          # Django sets defaults in Python, not in the
    is_active: Mapped[bool] = mapped_column(default=True)  # table, so SQLAlchemy must send them too
    category: Mapped[CategoryRow] = relationship()

    def __repr__(self):
        return f"ProductRow(sku={self.sku!r}, stock={self.stock})"


class MovementRow(Base):
    __tablename__ = "shop_stockmovement"
    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("shop_product.id"))
    change: Mapped[int]
    reason: Mapped[str] = mapped_column(String(20))
    product: Mapped[ProductRow] = relationship()


notebook_engine = course.engine("postgres")  # this notebook's database (psycopg 3)
NotebookSession = sessionmaker(notebook_engine, expire_on_commit=False)
with NotebookSession() as session:
    print(session.scalars(select(ProductRow).where(ProductRow.stock == 0).order_by(ProductRow.sku)).all())

# %% [markdown]
# Then the **Pydantic** models. They are the API's contract, separate from the ORM models: the
# input model validates what clients send (FastAPI answers **422** with the list of errors when it
# does not fit); the output model chooses what clients see. `from_attributes=True` lets
# `ProductOut` read an ORM object, and `AliasPath("category", "name")` takes `category` from
# `product.category.name`. (Pydantic v2 style: `model_config = ConfigDict(...)`, not the v1
# `class Config` that older tutorials show.) Decimals travel as strings in JSON, so `"12.50"`
# does not turn into `12.499999`.

# %%
import warnings
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, status
from pydantic import AliasPath, BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError as SAIntegrityError

# Starlette 1.0 moved its test client to the `httpx2` package; with `httpx` (installed here) it
# still works but warns once. We silence exactly that warning.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
from fastapi.testclient import TestClient


class ProductIn(BaseModel):
    sku: str = Field(pattern=r"^[A-Z]{2}-\d{3}$", examples=["BK-005"])
    name: str = Field(min_length=1, max_length=100)
    category: str
    price: Decimal = Field(gt=0, max_digits=8, decimal_places=2)
    stock: int = Field(default=0, ge=0)


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    sku: str
    name: str
    category: str = Field(validation_alias=AliasPath("category", "name"))
    price: Decimal
    stock: int


# %% [markdown]
# Now the app. The session comes from a **dependency**: `get_db` is a generator; FastAPI runs it
# up to `yield` before the endpoint, injects the session, and resumes it after the request, so
# the `with` block closes the session whatever happened. Closing a session also **rolls back**
# anything not committed, so an endpoint that fails half-way leaves nothing behind; endpoints that
# write call `db.commit()` themselves.
#
# `get_db` connects to the database named by `SHOP_DATABASE_URL`, as a deployed app would read it
# from its environment. In this notebook that server does not exist; below we **override** the
# dependency instead of changing the app. (Creating an engine does not connect: nothing fails until
# a query runs.)

# %%
production_engine = create_engine(os.environ.get("SHOP_DATABASE_URL", "postgresql+psycopg://shop@db.invalid/shop"))
SessionLocal = sessionmaker(production_engine, expire_on_commit=False)


def get_db():
    with SessionLocal() as session:  # closed (and anything uncommitted rolled back) after the request
        yield session


DbSession = Annotated[Session, Depends(get_db)]
router = APIRouter()


@router.post("/products", response_model=ProductOut, status_code=status.HTTP_201_CREATED)
def create_product(data: ProductIn, db: DbSession):
    category = db.scalar(select(CategoryRow).where(CategoryRow.name == data.category))
    if category is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown category {data.category!r}")
    product = ProductRow(sku=data.sku, name=data.name, category=category, price=data.price, stock=data.stock)
    db.add(product)
    try:
        db.commit()
    except SAIntegrityError:  # the unique constraint on sku: someone was faster
        db.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, f"sku {data.sku} exists already") from None
    return product


@router.get("/products/{sku}", response_model=ProductOut)
def read_product(sku: str, db: DbSession):
    product = db.scalar(select(ProductRow).options(joinedload(ProductRow.category)).where(ProductRow.sku == sku))
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no product {sku!r}")
    return product


@router.get("/products", response_model=list[ProductOut])
def list_products(db: DbSession, category: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=50)] = 10, offset: Annotated[int, Query(ge=0)] = 0):
    query = select(ProductRow).options(joinedload(ProductRow.category)).order_by(ProductRow.sku)
    if category is not None:
        query = query.join(ProductRow.category).where(CategoryRow.name == category)
    return db.scalars(query.limit(limit).offset(offset)).all()


app = FastAPI(title="Shop API")
app.include_router(router)
for route in router.routes:
    print(*sorted(route.methods), route.path, "->", route.name)

# %% [markdown]
# `app.dependency_overrides` maps a dependency to a replacement; every endpoint that asked for
# `get_db` gets the replacement's session. Here it points the app at this notebook's database.
# `TestClient` sends requests straight into the app, in this process: no server, no port.

# %%
def get_notebook_db():
    with NotebookSession() as session:
        yield session


app.dependency_overrides[get_db] = get_notebook_db
client = TestClient(app)

new = {"sku": "BK-005", "name": "Refactoring Databases", "category": "Books", "price": "42.00", "stock": 5}
with NotebookSession.begin() as session:  # safe to re-run: remove the product an earlier run created
    session.execute(delete(ProductRow).where(ProductRow.sku == new["sku"]))
response = client.post("/products", json=new)
print("create:   ", response.status_code, response.json())
again = client.post("/products", json=new)
print("again:    ", again.status_code, again.json())
print("read:     ", client.get("/products/BK-005").status_code)
print("missing:  ", client.get("/products/XX-999").status_code, client.get("/products/XX-999").json())
print("page 2:   ", [p["sku"] for p in client.get("/products", params={"limit": 4, "offset": 4}).json()])
print("Garden:   ", [p["sku"] for p in client.get("/products", params={"category": "Garden"}).json()])

bad = client.post("/products", json={"sku": "book-6", "name": "", "category": "Books", "price": "-3"})
print("invalid:  ", bad.status_code)
for error in bad.json()["detail"]:
    print("   ", error["loc"], error["msg"])
print("limit=0:  ", client.get("/products", params={"limit": 0}).status_code)
print("category: ", client.post("/products", json={**new, "sku": "XX-001", "category": "Food"}).json())

# %% [markdown]
# ### How tests use `dependency_overrides`
#
# Tests want a database they can write to without leaving traces. The usual recipe: open one
# connection, begin a transaction, bind every request's session to that connection with
# `join_transaction_mode="create_savepoint"` (an endpoint's `commit()` then only releases a
# savepoint), and roll the outer transaction back when the test ends. As a pytest fixture:
#
# ```python
# @pytest.fixture
# def client():
#     with rolled_back_client(app) as client:
#         yield client
#
# def test_create_then_read(client):
#     assert client.post("/products", json={...}).status_code == 201
#     assert client.get("/products/TE-001").status_code == 200
# ```
#
# Here is the context manager behind it, used directly:

# %%
from contextlib import contextmanager


@contextmanager
def rolled_back_client(app):
    connection = notebook_engine.connect()
    outer = connection.begin()

    def get_test_db():
        with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as session:
            yield session

    previous = app.dependency_overrides.get(get_db)
    app.dependency_overrides[get_db] = get_test_db
    try:
        yield TestClient(app)
    finally:
        app.dependency_overrides[get_db] = previous
        outer.rollback()
        connection.close()


test_product = {"sku": "TE-001", "name": "Test product", "category": "Toys", "price": "1.00"}
with rolled_back_client(app) as test_client:
    print("inside the test: create", test_client.post("/products", json=test_product).status_code,
          "| read", test_client.get("/products/TE-001").status_code)
print("after the test:            read", client.get("/products/TE-001").status_code, "(rolled back)")

# %% [markdown]
# ### Exercise 04b.8 · One transaction per request (practice)
#
# `get_db` above leaves committing to each endpoint. Another common design makes the dependency
# own the transaction: **commit** when the endpoint finished without an exception, **roll back**
# when it raised (an `HTTPException` included), and **always close** the session.
#
# Write the generator function `get_db_tx()` (no parameters) that yields a session made by
# `NotebookSession()` and does exactly that (re-raise the exception after rolling back, so FastAPI
# still answers with its status).
#
# The check mounts test endpoints that insert a row with your dependency and then return, raise
# `HTTPException(409)`, or crash; it looks for the row from another connection afterwards.
#
# *A detail worth knowing*: FastAPI resumes a `yield` dependency **after the response has been
# sent** by default, so a failing commit there cannot change the status the client already got.
# Declare it with `Depends(get_db_tx, scope="function")` and the code after `yield` runs before the
# response is sent: a failed commit then becomes a 500 instead of a false 200. The check uses that
# scope.

# %% nbgrader={"grade": false, "grade_id": "ex04b-8-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def get_db_tx():
    session = NotebookSession()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex04b-8-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.get_db_tx(get_db_tx, course)
### BEGIN HIDDEN TESTS
check.get_db_tx(get_db_tx, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 04b.9 · A restock endpoint (practice)
#
# Create `restock_router = APIRouter()` and add to it `POST /products/{sku}/restock`, whose JSON
# body is `{"quantity": <int>}`:
#
# * `quantity` must be an integer from 1 to 1000: anything else is a **422** (let a Pydantic model
#   with `Field(ge=1, le=1000)` do it);
# * an unknown sku is a **404**;
# * otherwise add `quantity` to the product's stock, commit, and answer **200** with the product
#   as a `ProductOut`.
#
# Requests run concurrently, so the restock must not lose a sale that another request makes
# meanwhile (section 5's lost update). Either let the database do the arithmetic, as with `F()`:
# `update(ProductRow).where(...).values(stock=ProductRow.stock + quantity)`; or load the product
# with `.with_for_update()` before changing `product.stock` in Python. A plain
# `product.stock += quantity` on an unlocked object is the read-modify-write that loses updates.
#
# Take the session from `get_db` (`db: DbSession`), and answer with the stock *after* the change
# (an `update()` statement does not refresh objects already loaded: select the product afterwards
# with `.execution_options(populate_existing=True)`, or call `db.refresh(product)`). You may need
# `from sqlalchemy import update`. The check mounts your router in a fresh app, overrides `get_db`
# with a session whose changes it rolls back, and compares status codes and JSON with the database.
# On one product of its own it makes another connection sell 3 **in the middle** of your endpoint
# (just before its first `UPDATE`): the final stock must account for both.

# %% nbgrader={"grade": false, "grade_id": "ex04b-9-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
from sqlalchemy import update


class Restock(BaseModel):
    quantity: int = Field(ge=1, le=1000)


restock_router = APIRouter()


@restock_router.post("/products/{sku}/restock", response_model=ProductOut)
def restock(sku: str, body: Restock, db: DbSession):
    changed = db.execute(update(ProductRow).where(ProductRow.sku == sku)
                         .values(stock=ProductRow.stock + body.quantity)).rowcount
    if changed == 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no product {sku!r}")
    db.commit()
    return db.scalar(select(ProductRow).options(joinedload(ProductRow.category))
                     .where(ProductRow.sku == sku).execution_options(populate_existing=True))
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex04b-9-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.restock_endpoint(restock_router, get_db, course)
### BEGIN HIDDEN TESTS
check.restock_endpoint(restock_router, get_db, course, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 11. Repository and Unit of Work
#
# The endpoints above mix three jobs: HTTP, business rules, and SQL. Two patterns pull the database
# out of the business code, so that the rules can be read (and unit-tested) on their own:
#
# * a **Repository** looks like a collection of domain objects (`get(sku)`, `add(product)`,
#   `list_all()`) and hides how they are stored. The business code talks to an *interface*; one
#   implementation uses a SQLAlchemy session, another a dict, for tests that need no database;
# * a **Unit of Work** is the transaction boundary: it opens a session, hands out the repositories
#   that share it, and has `commit()`; leaving it without committing rolls back. A business
#   operation that touches products *and* stock movements commits them together or not at all.
#
# ```mermaid
# classDiagram
#     class ProductRepository {
#         <<interface>>
#         get(sku) ProductRow
#         add(product)
#         list_all() list
#     }
#     ProductRepository <|.. SqlAlchemyProductRepository
#     ProductRepository <|.. InMemoryProductRepository
#     class UnitOfWork {
#         <<interface>>
#         products
#         movements
#         commit()
#         rollback()
#     }
#     UnitOfWork <|.. SqlAlchemyUnitOfWork
#     UnitOfWork <|.. FakeUnitOfWork
#     adjust_stock ..> UnitOfWork : uses
# ```
#
# (SQLAlchemy's `Session` is itself a unit of work and an identity map; the pattern's class wraps
# it so that the business code depends on *your* small interface, not on SQLAlchemy's.)

# %%
from collections.abc import Callable, Iterable
from typing import Protocol


class ProductRepository(Protocol):
    def get(self, sku: str) -> ProductRow | None: ...  # for changing it: locked until the unit of work ends
    def add(self, product: ProductRow) -> None: ...
    def list_all(self) -> list[ProductRow]: ...


class SqlAlchemyProductRepository:
    def __init__(self, session: Session):
        self.session = session

    def get(self, sku):
        # SELECT ... FOR UPDATE: the caller is about to change the product, so no other transaction
        # may change the row until this one ends (see below).
        return self.session.scalar(select(ProductRow).where(ProductRow.sku == sku).with_for_update())

    def add(self, product):
        self.session.add(product)

    def list_all(self):
        return list(self.session.scalars(select(ProductRow).order_by(ProductRow.sku)))


class InMemoryProductRepository:
    def __init__(self, products: Iterable[ProductRow] = ()):
        self._by_sku = {p.sku: p for p in products}

    def get(self, sku):
        return self._by_sku.get(sku)

    def add(self, product):
        self._by_sku[product.sku] = product

    def list_all(self):
        return sorted(self._by_sku.values(), key=lambda p: p.sku)


class SqlAlchemyMovementRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, movement: MovementRow):
        self.session.add(movement)

    def for_product(self, sku):
        return list(self.session.scalars(select(MovementRow).join(MovementRow.product)
                                         .where(ProductRow.sku == sku).order_by(MovementRow.id)))


class InMemoryMovementRepository:
    def __init__(self):
        self.added: list[MovementRow] = []

    def add(self, movement):
        self.added.append(movement)

    def for_product(self, sku):
        return [m for m in self.added if m.product.sku == sku]


class SqlAlchemyUnitOfWork:
    def __init__(self, session_factory: Callable[[], Session] = NotebookSession):
        self.session_factory = session_factory

    def __enter__(self):
        self.session = self.session_factory()
        self.products = SqlAlchemyProductRepository(self.session)
        self.movements = SqlAlchemyMovementRepository(self.session)
        return self

    def __exit__(self, *exc_info):
        self.session.rollback()  # whatever was not committed explicitly is discarded
        self.session.close()

    def commit(self):
        self.session.commit()

    def rollback(self):
        self.session.rollback()


class FakeUnitOfWork:
    """For unit tests: in-memory repositories, and a record of commits instead of a database."""

    def __init__(self, products: Iterable[ProductRow] = ()):
        self.products = InMemoryProductRepository(products)
        self.movements = InMemoryMovementRepository()
        self.commits = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def commit(self):
        self.commits += 1

    def rollback(self):
        pass


# %% [markdown]
# A business operation written against the interface. It never imports SQLAlchemy, never sees a
# session, and says in one place where the transaction ends.
#
# It also does what section 5 warned against: it reads the stock, checks a rule in Python and
# writes back a number computed in Python (`product.stock += change`). On its own that loses
# updates: a sale that another request commits between our read and our commit is overwritten.
# Here it is safe because of the repository: `get()` loads the row `FOR UPDATE`, so the other
# request's `UPDATE` waits until our unit of work commits (or rolls back) and then applies to our
# result, as in section 9. The alternative is SQL arithmetic, `update(ProductRow).where(...)
# .values(stock=ProductRow.stock + change)`, which needs no lock but moves the rule ("never below
# zero") into the `WHERE` clause. The fake repository needs neither: nothing else touches its
# dict.

# %%
def adjust_stock(uow, sku, change, reason):
    with uow:
        product = uow.products.get(sku)
        if product is None:
            raise KeyError(sku)
        if product.stock + change < 0:
            raise ValueError(f"{sku}: only {product.stock} in stock")
        product.stock += change
        uow.movements.add(MovementRow(product=product, change=change, reason=reason))
        uow.commit()


# A unit test: no database, runs in microseconds.
fake = FakeUnitOfWork([ProductRow(sku="AB-001", name="Test", price=Decimal("1.00"), stock=3)])
adjust_stock(fake, "AB-001", -2, "sale")
assert fake.products.get("AB-001").stock == 1 and fake.commits == 1
try:
    adjust_stock(fake, "AB-001", -5, "sale")
except ValueError as exc:
    print("fake UoW refused:", exc, "| commits:", fake.commits)

# The same function against PostgreSQL.
adjust_stock(SqlAlchemyUnitOfWork(), "GA-002", 10, "delivery")
with SqlAlchemyUnitOfWork() as uow:
    print("GA-002 stock:", uow.products.get("GA-002").stock,
          "| movements:", [(m.change, m.reason) for m in uow.movements.for_product("GA-002")])

    # The unit of work holds GA-002's row lock now: another connection's sale has to wait for it.
    with course.connect_postgres() as other:
        other.execute("SET lock_timeout = '200ms'")
        try:
            other.execute("UPDATE shop_product SET stock = stock - 1 WHERE sku = %s", ["GA-002"])
        except psycopg.errors.LockNotAvailable:
            print("a sale from another connection waits for the unit of work (here: gives up after 200 ms)")
        other.rollback()

# %% [markdown]
# ### Exercise 04b.10 · A repository query (practice)
#
# The warehouse wants the products to reorder. Add a method `low_stock(threshold)` to **both**
# repositories by writing two subclasses:
#
# * `SqlLowStockRepository(SqlAlchemyProductRepository)`: one `select()` that runs in the database;
# * `MemoryLowStockRepository(InMemoryProductRepository)`: the same answer from the dict.
#
# `low_stock(threshold)` returns the **active** products whose stock is **below** `threshold`, as a
# list of product objects ordered by stock, then sku. The check runs both against the same data and
# compares the skus with SQL.

# %% nbgrader={"grade": false, "grade_id": "ex04b-10-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
class SqlLowStockRepository(SqlAlchemyProductRepository):
    def low_stock(self, threshold):
        return list(self.session.scalars(
            select(ProductRow).where(ProductRow.is_active, ProductRow.stock < threshold)
            .order_by(ProductRow.stock, ProductRow.sku)))


class MemoryLowStockRepository(InMemoryProductRepository):
    def low_stock(self, threshold):
        return sorted((p for p in self._by_sku.values() if p.is_active and p.stock < threshold),
                      key=lambda p: (p.stock, p.sku))
### END SOLUTION

with NotebookSession() as session:
    print(SqlLowStockRepository(session).low_stock(5))

# %% nbgrader={"grade": true, "grade_id": "ex04b-10-check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check.low_stock(SqlLowStockRepository, MemoryLowStockRepository, NotebookSession)
### BEGIN HIDDEN TESTS
check.low_stock(SqlLowStockRepository, MemoryLowStockRepository, NotebookSession, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 04b.11 · A delivery, as one unit of work (challenge)
#
# Write `receive_delivery(uow, deliveries)` where `deliveries` is a dict `{sku: quantity}`. Inside
# `with uow:`, for each sku: add the quantity to the product's stock and record a
# `MovementRow(product=..., change=quantity, reason="delivery")` through `uow.movements`. Then
# commit **once**.
#
# If a sku is unknown, raise `KeyError(sku)` and commit **nothing**, not even the skus processed
# before it. Take the products from `uow.products.get(sku)`: it locks each row until the commit,
# so changing `product.stock` in Python loses no sale made meanwhile by another request. The check
# runs your function with `FakeUnitOfWork` (counting commits) and with `SqlAlchemyUnitOfWork` on
# PostgreSQL (reading the result from another connection, which also tries to sell during the
# delivery).

# %% nbgrader={"grade": false, "grade_id": "ex04b-11-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
def receive_delivery(uow, deliveries):
    with uow:
        for sku, quantity in deliveries.items():
            product = uow.products.get(sku)
            if product is None:
                raise KeyError(sku)
            product.stock += quantity
            uow.movements.add(MovementRow(product=product, change=quantity, reason="delivery"))
        uow.commit()
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex04b-11-check", "locked": true, "points": 3, "schema_version": 3, "solution": false}
check.receive_delivery(receive_delivery, SqlAlchemyUnitOfWork, FakeUnitOfWork, ProductRow, MovementRow, course)
### BEGIN HIDDEN TESTS
check.receive_delivery(receive_delivery, SqlAlchemyUnitOfWork, FakeUnitOfWork, ProductRow, MovementRow, course,
                       hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 12. Active Record or Data Mapper?
#
# The two ORMs of this chapter embody the two classic designs (Martin Fowler's names):
#
# * **Active Record** (Django): an object wraps one row *and* knows how to load and save itself:
#   `product.save()`, `product.delete()`, `Product.objects.filter(...)`. The class is the table.
# * **Data Mapper** (SQLAlchemy ORM): objects are plain; a separate layer, the mapper and the
#   `Session`, moves data between them and the tables. Objects have no `save()`; the session
#   tracks what changed (**unit of work**) and keeps one object per row (**identity map**).
#
# The same row, both ways (a read-modify-write on one connection, to show who saves what; with
# concurrent requests use `F()`, SQL arithmetic or a row lock, as in sections 5, 9 and 11):

# %%
django_product = Product.objects.get(sku="GA-001")
django_product.stock += 1
django_product.save(update_fields=["stock"])              # the object saves itself
print("Django:     has save():", hasattr(django_product, "save"),
      "| same row fetched twice is the same object:",
      Product.objects.get(sku="GA-001") is Product.objects.get(sku="GA-001"))

with NotebookSession() as session:
    sa_product = session.scalar(select(ProductRow).where(ProductRow.sku == "GA-001"))
    sa_product.stock += 1                                  # the session notices the change ...
    print("SQLAlchemy: has save():", hasattr(sa_product, "save"),
          "| same row fetched twice is the same object:",
          session.get(ProductRow, sa_product.id) is sa_product,
          "| pending changes:", sa_product in session.dirty)
    session.commit()                                       # ... and writes it (unit of work)
print("stock now:", Product.objects.get(sku="GA-001").stock)

# %% [markdown]
# | | Active Record (Django ORM) | Data Mapper (SQLAlchemy ORM) |
# |---|---|---|
# | who saves | the object: `obj.save()` | the session: `session.add(obj)`, `session.commit()` |
# | objects | subclasses of `models.Model`, tied to a table | plain classes, mapped to tables |
# | tracking changes | none: `save()` writes all fields (or `update_fields`) | the session's unit of work writes only what changed, in dependency order |
# | same row twice | two independent objects | one object per row and session (identity map) |
# | queries | `Model.objects` (a manager) | `select(Model)` run by a session |
# | schema changes | built in (`makemigrations` / `migrate`) | Alembic |
# | strengths | little code, fast to start, fits CRUD apps and admin screens | domain objects free of persistence, complex mappings, fine control of SQL |
# | costs | business logic drifts into models; hard to test without a database | more concepts (session states, flushes); more setup |
#
# Neither is "better". Active Record shines when the objects *are* the rows; Data Mapper when the
# domain has rules of its own and you want to test them without a database, which is exactly what
# the Repository and Unit of Work above build on.

# %% [markdown]
# ### Exercise 04b.12 · Which pattern? (warm-up)
#
# Set `patterns` to a dict mapping each statement to `"active record"`, `"data mapper"` or
# `"both"`:
#
# * `"the object has a save() method"`
# * `"a session keeps one object per database row"`
# * `"each row you load becomes a Python object"`
# * `"plain domain objects can be tested without any database"`
# * `"Django's Model"`
# * `"SQLAlchemy's Session"`
# * `"the model class itself offers the queries, as in Product.objects.filter(...)"`
# * `"changes reach the database when a separate object is told to flush or commit"`
#
# The visible check looks at the first six; the hidden tests grade all eight.

# %% nbgrader={"grade": false, "grade_id": "ex04b-12-answer", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
patterns = {
    "the object has a save() method": "active record",
    "a session keeps one object per database row": "data mapper",
    "each row you load becomes a Python object": "both",
    "plain domain objects can be tested without any database": "data mapper",
    "Django's Model": "active record",
    "SQLAlchemy's Session": "data mapper",
    "the model class itself offers the queries, as in Product.objects.filter(...)": "active record",
    "changes reach the database when a separate object is told to flush or commit": "data mapper",
}
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ex04b-12-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check.patterns(patterns)
### BEGIN HIDDEN TESTS
check.patterns(patterns, hidden=True)
### END HIDDEN TESTS

# %% [markdown]
# ## Key points
#
# * The Django ORM runs anywhere after `settings.configure()` + `django.setup()`; migrations need an
#   app package on disk. In Jupyter, set `DJANGO_ALLOW_ASYNC_UNSAFE` (never in an async server);
#   settings change only with a kernel restart.
# * `makemigrations` writes versioned schema changes, `migrate` applies (and reverses) them; data
#   migrations use `RunPython` with historical models (`apps.get_model`) and a reverse function.
# * QuerySets are lazy and chainable; count your queries. `select_related` joins (forward FK),
#   `prefetch_related` adds one query per relation (reverse FK, M2M): N+1 becomes constant.
# * `F()` does arithmetic in the database: no lost updates; a conditional `update()` prevents
#   overselling. `annotate` computes per row, `aggregate` over all; beware of multiplying joins.
# * Custom QuerySet methods + `as_manager()` (or `Manager.from_queryset`) name your filters once; a
#   `get_queryset()` override belongs on an extra manager, never on the default one. Signals are
#   synchronous, run in the caller's transaction, and skip `update()` / `bulk_create()`: use them
#   sparingly.
# * `transaction.atomic` makes changes all-or-nothing (nested blocks are savepoints);
#   `select_for_update` locks rows you are about to change.
# * FastAPI: a `yield` dependency gives each request a session and closes it; Pydantic models define
#   the contract (422 for bad input); `dependency_overrides` + `TestClient` test the app in-process,
#   in a transaction that is rolled back.
# * Repository + Unit of Work keep business code independent of the ORM and testable with fakes;
#   a repository that hands out objects to change locks their rows (`with_for_update()`), or the
#   read-modify-write in the business code loses concurrent updates. Django is Active Record,
#   SQLAlchemy a Data Mapper.
#
# Your progress in this chapter:

# %%
connections.close_all()     # Django's connection
notebook_engine.dispose()   # SQLAlchemy's pool
check.progress()

# %% [markdown]
# **Where next**: chapter 05 leaves tables behind: documents in MongoDB with PyMongo. Open
# `05_mongodb.ipynb`.
