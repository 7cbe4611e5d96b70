"""Checks for chapter 01, "SQLite and SQL".

Every check works on a private copy of the learner's shop database (an in-memory backup, or a
file in a temporary folder), so checks never change the learner's data and hidden tests can
change the copy freely: insert rows, cancel orders, add categories. SQL answers are run here
with ``sqlite3``, never through the ``%sql`` magics.
"""

from __future__ import annotations

import random
import re
import sqlite3
import tempfile
import threading
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

from .compare import Rows, compare_rows, fetch_rows, run_sql, values_equal
from .core import Chapter, ExerciseFailed, expect, fail, not_answered

chapter = Chapter("01", "SQLite and SQL")
exercise = chapter.exercise
progress = chapter.progress


# --------------------------------------------------------------------------- private copies of the shop

def _shop_path(workspace: Any) -> Path:
    path = Path(getattr(workspace, "sqlite_path", workspace))
    expect(path.exists(), f"the shop database {path} does not exist.",
           hint="run the setup cell at the top of the notebook first.")
    return path


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def memory_copy(workspace: Any) -> sqlite3.Connection:
    """A private in-memory copy of the shop, with foreign keys enforced."""
    mem = sqlite3.connect(":memory:")
    with closing(_open_read_only(_shop_path(workspace))) as src:
        src.backup(mem)
    mem.execute("PRAGMA foreign_keys = ON")
    return mem


def file_copy(workspace: Any, folder: Path, name: str = "shop-copy.db") -> Path:
    """A private copy of the shop in ``folder`` (for answers that open a file themselves)."""
    target = Path(folder) / name
    with closing(_open_read_only(_shop_path(workspace))) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


def _require_sql(sql: Any, name: str) -> None:
    not_answered(sql, name)
    expect(isinstance(sql, str), f"`{name}` should be a string holding one SQL query, not {type(sql).__name__}.",
           hint='write it between triple quotes: name = """SELECT ..."""')


def _check_query(sql: Any, name: str, workspace: Any, reference: str, *, ordered: bool, hidden: bool,
                 changes: str | Callable[[sqlite3.Connection], None] | None = None,
                 diagnose: Callable[[sqlite3.Connection, Rows, Rows], None] | None = None,
                 order_hint: str | None = None) -> None:
    """Run the learner's query and the reference on a private copy of the shop and compare them;
    with ``hidden``, change the copy (``changes``) and compare again."""
    _require_sql(sql, name)
    with closing(memory_copy(workspace)) as conn:
        rounds = [("", None)] + ([(" (hidden test, on changed data)", changes)] if hidden and changes else [])
        for label, change in rounds:
            if change is not None:
                change(conn) if callable(change) else conn.executescript(change)
            got = run_sql(conn, sql, what="Your query" + label)
            expected = run_sql(conn, reference, what="The reference query")
            if diagnose is not None:
                diagnose(conn, got, expected)
            compare_rows(got, expected, ordered=ordered, what="Your result" + label, order_hint=order_hint)


_USER_COLUMNS = "user_id, email, full_name, country, city, birth_year, signup_at, is_active, marketing_opt_in"
_ORDER_COLUMNS = "order_id, user_id, ordered_at, status, shipping_country"
_ITEM_COLUMNS = "order_item_id, order_id, product_id, quantity, unit_price"


# --------------------------------------------------------------------------- 01.1 cursor and rows

def _reference_cheapest(path: Path, n: int) -> list[tuple]:
    with closing(_open_read_only(path)) as conn:
        return conn.execute("SELECT sku, name, price FROM products WHERE is_discontinued = 0 "
                            "ORDER BY price, sku LIMIT ?", (n,)).fetchall()


@exercise("01.1", "Read rows with a cursor", answer="cheapest_products")
def cheapest_products(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "cheapest_products")
    expect(callable(func), "`cheapest_products` should be a function cheapest_products(path, n).")
    shop = _shop_path(workspace)
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(shop, 5), (shop, 1000)]
        if hidden:
            copy = file_copy(workspace, Path(tmp))
            with closing(sqlite3.connect(copy)) as conn, conn:
                conn.executemany(
                    "INSERT INTO products (product_id, sku, name, category_id, price, stock, created_at, attributes,"
                    " is_discontinued) VALUES (?, ?, ?, 2, ?, 5, '2026-06-01 00:00:00', NULL, ?)",
                    [(90001, "SKU-H90003", "Kid's Crayon", 0.49, 0), (90002, "SKU-H90001", "Budget Bookmark", 0.49, 0),
                     (90003, "SKU-H90002", "Old Sticker", 0.09, 1)])
            cases = [(copy, 3), (copy, 0), (shop, 12)]
        for path, n in cases:
            call = f"cheapest_products(path, {n})"
            got = func(str(path), n)
            expect(isinstance(got, list), f"{call} returned a {type(got).__name__}; expected a list of dicts.",
                   hint="fetchall() returns a list; turn each row into a dict with dict(row).")
            rows = []
            for item in got:
                if isinstance(item, sqlite3.Row):
                    item = dict(item)
                expect(isinstance(item, dict),
                       f"{call} returned a list of {type(item).__name__}; each element should be a dict.",
                       hint="set conn.row_factory = sqlite3.Row, then dict(row) turns a row into a dict.")
                expect(set(item) == {"sku", "name", "price"},
                       f"{call}: a dict has the keys {sorted(item)}; expected exactly ['name', 'price', 'sku'].",
                       hint="select exactly the columns sku, name, price.")
                rows.append((item["sku"], item["name"], item["price"]))
            expected = _reference_cheapest(path, n)
            compare_rows(Rows(["sku", "name", "price"], rows), Rows(["sku", "name", "price"], expected),
                         ordered=True, what=f"{call}" + (" (hidden test, on changed data)" if path != shop else ""),
                         order_hint="cheapest first; products with the same price in sku order.")


# --------------------------------------------------------------------------- 01.2 a filtered, sorted query

GERMAN_SENIORS = """
SELECT user_id, full_name, birth_year
FROM users
WHERE upper(country) = 'DE' AND birth_year <= 1960
ORDER BY birth_year, user_id
"""


def _diagnose_country(conn: sqlite3.Connection, got: Rows, expected: Rows) -> None:
    if got.rows and expected.rows and len(got.rows) < len(expected.rows):
        got_ids = {r[0] for r in got.rows}
        missing = [r[0] for r in expected.rows if r[0] not in got_ids]
        codes = {conn.execute("SELECT country FROM users WHERE user_id = ?", (i,)).fetchone()[0] for i in missing}
        if any(code != code.upper() for code in codes):
            fail(f"Your result misses {len(missing)} customer(s), for example user {missing[0]}, whose country "
                 f"code is written {sorted(codes)}.",
                 hint="about 1% of country codes are in lower case: compare upper(country) with 'DE'.")


@exercise("01.2", "German customers born by 1960", answer="german_seniors_sql")
def german_seniors(sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    changes = (f"INSERT INTO users ({_USER_COLUMNS}) VALUES "
               "(90001, 'h1@example.com', 'Hidden Senior', 'de', 'Köln', 1942, '2026-01-01 00:00:00', 1, 0),"
               "(90002, 'h2@example.com', 'Hidden Unknown', 'DE', NULL, NULL, '2026-01-01 00:00:00', 1, 0),"
               "(90003, 'h3@example.com', 'Hidden Boundary', 'DE', 'Berlin', 1960, '2026-01-01 00:00:00', 1, 0),"
               "(90004, 'h4@example.com', 'Hidden Austrian', 'AT', 'Wien', 1941, '2026-01-01 00:00:00', 1, 0),"
               "(90005, 'h5@example.com', 'Hidden Young', 'DE', 'Bonn', 1961, '2026-01-01 00:00:00', 0, 0);")
    _check_query(sql, "german_seniors_sql", workspace, GERMAN_SENIORS, ordered=True, hidden=hidden,
                 changes=changes, diagnose=_diagnose_country,
                 order_hint="oldest first (ORDER BY birth_year), then by user_id for people born the same year.")


# --------------------------------------------------------------------------- 01.3 LEFT JOIN: never ordered

NEVER_ORDERED = """
SELECT u.user_id, u.full_name, u.signup_at
FROM users AS u
LEFT JOIN orders AS o ON o.user_id = u.user_id
WHERE o.order_id IS NULL
ORDER BY u.signup_at DESC, u.user_id
"""


def _never_ordered_changes(conn: sqlite3.Connection) -> None:
    first = conn.execute("SELECT min(user_id) FROM users WHERE user_id NOT IN (SELECT user_id FROM orders)").fetchone()[0]
    conn.execute(f"INSERT INTO users ({_USER_COLUMNS}) VALUES "
                 "(90001, 'new@example.com', 'Newest Customer', 'FR', 'Lyon', NULL, '2026-06-30 23:59:59', 1, 1),"
                 "(90002, 'tie@example.com', 'Tied Customer', 'FR', 'Lyon', NULL, '2026-06-30 23:59:59', 1, 1)")
    conn.execute(f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES (900001, ?, '2026-06-30 12:00:00', 'cancelled', 'FR')",
                 (first,))


@exercise("01.3", "Customers who never ordered", answer="never_ordered_sql")
def never_ordered(sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    def diagnose(conn: sqlite3.Connection, got: Rows, expected: Rows) -> None:
        expect(got.rows or not expected.rows, "Your query returns no rows at all.",
               hint="an INNER JOIN keeps only users WITH orders: use LEFT JOIN and keep the rows where the "
                    "order side IS NULL.")

    _check_query(sql, "never_ordered_sql", workspace, NEVER_ORDERED, ordered=True, hidden=hidden,
                 changes=_never_ordered_changes, diagnose=diagnose,
                 order_hint="newest sign-ups first (signup_at DESC), then user_id for equal times.")


# --------------------------------------------------------------------------- 01.4 join + GROUP BY + HAVING

CATEGORY_REVENUE = """
SELECT c.name AS category,
       COUNT(DISTINCT o.order_id) AS orders,
       SUM(i.quantity) AS units,
       ROUND(SUM(i.quantity * i.unit_price), 2) AS revenue
FROM order_items AS i
JOIN orders AS o ON o.order_id = i.order_id
JOIN products AS p ON p.product_id = i.product_id
JOIN categories AS c ON c.category_id = p.category_id
WHERE o.status NOT IN ('cancelled', 'refunded')
GROUP BY c.category_id, c.name
HAVING SUM(i.quantity * i.unit_price) >= 100000
ORDER BY revenue DESC, category
"""


def _category_revenue_changes(conn: sqlite3.Connection) -> None:
    def product_in(category: str) -> int:
        return conn.execute("SELECT min(product_id) FROM products p JOIN categories c USING (category_id) "
                            "WHERE c.name = ?", (category,)).fetchone()[0]

    conn.execute("UPDATE orders SET status = 'refunded' WHERE order_id IN (SELECT i.order_id FROM order_items i "
                 "JOIN products p USING (product_id) JOIN categories c USING (category_id) WHERE c.name = 'Furniture')")
    conn.execute(f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES (900001, 1, '2026-06-30 12:00:00', 'paid', 'DE'),"
                 "(900002, 2, '2026-06-30 12:00:00', 'cancelled', 'DE'), (900003, 3, '2026-06-30 12:00:00', 'paid', 'DE')")
    second_phone = conn.execute("SELECT max(product_id) FROM products p JOIN categories c USING (category_id) "
                                "WHERE c.name = 'Phones'").fetchone()[0]
    conn.execute(f"INSERT INTO order_items ({_ITEM_COLUMNS}) VALUES (9000001, 900001, ?, 400, 300.0),"
                 "(9000002, 900002, ?, 900, 300.0), (9000003, 900003, ?, 1, 500.0), (9000004, 900003, ?, 2, 400.0)",
                 (product_in("Skincare"), product_in("Fragrance"), product_in("Phones"), second_phone))


@exercise("01.4", "Revenue by category", answer="category_revenue_sql")
def category_revenue(sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    _check_query(sql, "category_revenue_sql", workspace, CATEGORY_REVENUE, ordered=True, hidden=hidden,
                 changes=_category_revenue_changes,
                 order_hint="highest revenue first; categories with equal revenue by name.")


# --------------------------------------------------------------------------- 01.5 find and fix: monthly revenue

MONTHLY_REVENUE = """
WITH order_totals AS (
    SELECT o.order_id,
           substr(o.ordered_at, 1, 7) AS month,
           COALESCE(SUM(i.quantity * i.unit_price), 0) AS total
    FROM orders AS o
    LEFT JOIN order_items AS i ON i.order_id = o.order_id
    WHERE o.status NOT IN ('cancelled', 'refunded')
      AND o.ordered_at >= '2025-01-01' AND o.ordered_at < '2026-01-01'
    GROUP BY o.order_id
)
SELECT month, COUNT(*) AS orders, ROUND(SUM(total), 2) AS revenue
FROM order_totals
GROUP BY month
ORDER BY month
"""

BUGGY_MONTHLY_REVENUE = """
SELECT substr(o.ordered_at, 1, 7) AS month,
       COUNT(*) AS orders,
       SUM(i.quantity * p.price) AS revenue
FROM orders AS o
JOIN order_items AS i ON i.order_id = o.order_id
JOIN products AS p ON p.product_id = i.product_id
WHERE o.ordered_at BETWEEN '2025-01-01' AND '2025-12-31'
GROUP BY month
ORDER BY month
"""


def _monthly_changes(conn: sqlite3.Connection) -> None:
    conn.execute(f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES "
                 "(900001, 1, '2025-12-31 23:59:59', 'paid', 'DE'),"       # the last second of the year
                 "(900002, 2, '2025-03-15 10:00:00', 'cancelled', 'DE'),"  # never revenue
                 "(900003, 3, '2025-05-20 10:00:00', 'paid', 'DE'),"       # an order without items
                 "(900004, 4, '2026-01-01 00:00:00', 'paid', 'DE')")       # next year
    conn.execute(f"INSERT INTO order_items ({_ITEM_COLUMNS}) VALUES (9000001, 900001, 1, 3, 10.5),"
                 "(9000002, 900001, 2, 1, 99.99), (9000003, 900002, 1, 50, 10.0), (9000004, 900004, 1, 7, 10.0)")
    conn.execute("UPDATE products SET price = price * 3")  # today's prices change; prices paid do not


def _diagnose_monthly(conn: sqlite3.Connection, got: Rows, expected: Rows) -> None:
    cols = [c.lower() for c in got.columns]
    if cols != ["month", "orders", "revenue"] or len(got.rows) != len(expected.rows):
        return  # compare_rows explains columns and row counts
    by_month = {r[0]: r for r in got.rows}
    wrong_orders = [m for m, o, _ in expected.rows if m in by_month and not values_equal(by_month[m][1], o)]
    wrong_revenue = [m for m, _, r in expected.rows if m in by_month and not values_equal(by_month[m][2], r, 1e-6)]
    only_december = (wrong_orders or wrong_revenue) and set(wrong_orders) | set(wrong_revenue) == {"2025-12"}
    too_low = "2025-12" in by_month and by_month["2025-12"][1] <= dict((m, o) for m, o, _ in expected.rows)["2025-12"]
    if only_december and too_low:
        fail("Every month is right except December 2025, which is too low.",
             hint="ordered_at holds a date AND a time: '2025-12-31 08:00:00' is greater than '2025-12-31', so "
                  "BETWEEN ... AND '2025-12-31' drops the last day. Use ordered_at < '2026-01-01'.")
    if wrong_orders:
        fail(f"The `orders` column is off in {len(wrong_orders)} month(s), e.g. {wrong_orders[0]}: "
             f"{by_month[wrong_orders[0]][1]} instead of {dict((m, o) for m, o, _ in expected.rows)[wrong_orders[0]]}.",
             hint="count each order once (not each of its items), leave out cancelled and refunded orders, "
                  "and keep orders that have no items (LEFT JOIN).")
    if wrong_revenue:
        fail(f"The `revenue` column is off in {len(wrong_revenue)} month(s), e.g. {wrong_revenue[0]}: "
             f"{by_month[wrong_revenue[0]][2]!r} instead of "
             f"{dict((m, r) for m, _, r in expected.rows)[wrong_revenue[0]]!r}.",
             hint="revenue is what customers paid: order_items.unit_price (products.price is today's price), "
                  "without cancelled and refunded orders, rounded to cents.")


@exercise("01.5", "Find and fix: monthly revenue", answer="monthly_revenue_sql")
def monthly_revenue(sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    _require_sql(sql, "monthly_revenue_sql")
    expect(" ".join(sql.split()) != " ".join(BUGGY_MONTHLY_REVENUE.split()),
           "`monthly_revenue_sql` is still the colleague's query.", hint="find the bugs described above and fix them.")
    _check_query(sql, "monthly_revenue_sql", workspace, MONTHLY_REVENUE, ordered=True, hidden=hidden,
                 changes=_monthly_changes, diagnose=_diagnose_monthly, order_hint="one row per month, in month order.")


# --------------------------------------------------------------------------- 01.6 recursive CTE

CATEGORY_PATHS = """
WITH RECURSIVE tree (category_id, path, depth) AS (
    SELECT category_id, name, 1 FROM categories WHERE parent_id IS NULL
    UNION ALL
    SELECT c.category_id, t.path || ' > ' || c.name, t.depth + 1
    FROM categories AS c
    JOIN tree AS t ON c.parent_id = t.category_id
)
SELECT category_id, path, depth FROM tree ORDER BY path
"""


@exercise("01.6", "The category tree (recursive CTE)", answer="category_paths_sql")
def category_paths(sql: Any, workspace: Any, *, hidden: bool = False) -> None:
    changes = ("INSERT INTO categories (category_id, name, parent_id) VALUES "
               "(90001, 'SQLite', 4), (90002, 'SQLite internals', 90001), (90003, 'The query planner', 90002),"
               "(90004, 'Hi-Fi', 6), (90005, 'Turntables', 90004);")

    def diagnose(conn: sqlite3.Connection, got: Rows, expected: Rows) -> None:
        deepest = max((r[2] for r in expected.rows), default=0)
        paths = {r[0]: r[1] for r in expected.rows}
        got_paths = {r[0]: r[1] for r in got.rows if len(r) >= 2}
        too_short = [i for i, path in paths.items() if path.count(" > ") >= 2 and i in got_paths
                     and str(got_paths[i]).count(" > ") < path.count(" > ")]
        if len(got.rows) < len(expected.rows) or too_short:
            fail(f"Your result does not follow the tree to its full depth ({deepest} levels here): "
                 + (f"category {too_short[0]} should have the path {paths[too_short[0]]!r}, not "
                    f"{got_paths[too_short[0]]!r}." if too_short else
                    f"it has {len(got.rows)} categories; expected {len(expected.rows)}."),
                 hint="a fixed number of self-joins only reaches a fixed depth: a recursive CTE follows parent_id "
                      "to any depth (WITH RECURSIVE ... UNION ALL ...).")

    _check_query(sql, "category_paths_sql", workspace, CATEGORY_PATHS, ordered=True, hidden=hidden, changes=changes,
                 diagnose=diagnose, order_hint="sort by the path text (ORDER BY path).")


# --------------------------------------------------------------------------- 01.7 DDL with constraints

_COUPON_CASES = [
    # (description, column values, should be accepted, rule it tests)
    ("a plain coupon", {"code": "WELCOME10", "percent_off": 10}, True, "a valid row"),
    ("a coupon for user 1 used up to 3 times", {"code": "VIP50", "percent_off": 50, "user_id": 1, "max_uses": 3},
     True, "a valid row"),
    ("a coupon without a code", {"code": None, "percent_off": 10}, False, "code is required (NOT NULL)"),
    ("a second coupon with the code 'WELCOME10'", {"code": "WELCOME10", "percent_off": 20}, False,
     "codes are unique (UNIQUE)"),
    ("a coupon with percent_off = 4", {"code": "TOO-SMALL", "percent_off": 4}, False,
     "percent_off is between 5 and 50 (CHECK)"),
    ("a coupon with percent_off = 51", {"code": "TOO-BIG", "percent_off": 51}, False,
     "percent_off is between 5 and 50 (CHECK)"),
    ("a coupon without percent_off", {"code": "NO-PERCENT"}, False, "percent_off is required (NOT NULL)"),
    ("a coupon for user 99, who does not exist", {"code": "GHOST", "percent_off": 10, "user_id": 99}, False,
     "user_id references users (FOREIGN KEY)"),
    ("a coupon with max_uses = 0", {"code": "NEVER", "percent_off": 10, "max_uses": 0}, False,
     "max_uses is at least 1 (CHECK)"),
]
_COUPON_HIDDEN = [
    ("a coupon with percent_off = 5", {"code": "LOW-EDGE", "percent_off": 5}, True, "5 is allowed (inclusive)"),
    ("a coupon with percent_off = 50 for user 2", {"code": "HIGH-EDGE", "percent_off": 50, "user_id": 2}, True,
     "50 is allowed (inclusive)"),
    ("a coupon with percent_off = -10", {"code": "NEGATIVE", "percent_off": -10}, False,
     "percent_off is between 5 and 50 (CHECK)"),
    ("a coupon with max_uses = NULL", {"code": "NULL-USES", "percent_off": 10, "max_uses": None}, False,
     "max_uses is required (NOT NULL)"),
    ("a coupon with max_uses = -1", {"code": "MINUS", "percent_off": 10, "max_uses": -1}, False,
     "max_uses is at least 1 (CHECK)"),
    ("a coupon with created_at = NULL", {"code": "NO-TIME", "percent_off": 10, "created_at": None}, False,
     "created_at is required (NOT NULL): a DEFAULT only fills a column the INSERT leaves out"),
]
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@exercise("01.7", "A table with every kind of constraint", answer="coupons_ddl")
def coupons(ddl: Any, *, hidden: bool = False) -> None:
    _require_sql(ddl, "coupons_ddl")
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("CREATE TABLE users (user_id INTEGER PRIMARY KEY, full_name TEXT NOT NULL)")
        conn.executemany("INSERT INTO users VALUES (?, ?)", [(1, "Ada"), (2, "Alan")])
        conn.commit()
        try:
            conn.executescript(ddl)
        except sqlite3.Error as exc:
            fail(f"Your DDL failed in SQLite: {type(exc).__name__}: {exc}",
                 hint="run it on its own on a :memory: connection to see the full error.")
        columns = {r[1].lower(): r for r in conn.execute("PRAGMA table_info(coupons)")}
        expect(columns, "After your DDL there is no table `coupons`.", hint="CREATE TABLE coupons (...)")
        wanted = ["coupon_id", "code", "percent_off", "user_id", "max_uses", "created_at"]
        missing = [c for c in wanted if c not in columns]
        expect(not missing, f"The table `coupons` has no column(s) {missing}.",
               hint=f"the columns are {', '.join(wanted)}.")
        cases = _COUPON_CASES + (_COUPON_HIDDEN if hidden else [])
        for description, values, accept, rule in cases:
            cols = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            try:
                with conn:
                    cur = conn.execute(f"INSERT INTO coupons ({cols}) VALUES ({marks})", tuple(values.values()))
            except sqlite3.IntegrityError as exc:
                expect(not accept, f"SQLite rejected {description} ({exc}), but that row is valid.",
                       hint="the error names the rule that rejected it: compare that rule with the specification.")
                continue
            except sqlite3.Error as exc:
                fail(f"Inserting {description} failed with {type(exc).__name__}: {exc}.")
            expect(accept, f"SQLite accepted {description}, but it should reject it: {rule}.",
                   hint="add that rule to the column definition or as a table constraint." +
                        (" Foreign keys are only enforced with PRAGMA foreign_keys = ON, which the check sets: "
                         "declare user_id ... REFERENCES users (user_id)." if "FOREIGN" in rule else ""))
            row = conn.execute("SELECT coupon_id, max_uses, created_at FROM coupons WHERE rowid = ?",
                               (cur.lastrowid,)).fetchone()
            expect(isinstance(row[0], int), f"{description} got coupon_id {row[0]!r}; it should be numbered "
                                            "automatically.", hint="coupon_id INTEGER PRIMARY KEY")
            if "max_uses" not in values:
                expect(row[1] == 1, f"{description} got max_uses = {row[1]!r}; the default is 1.",
                       hint="max_uses INTEGER NOT NULL DEFAULT 1 CHECK (...)")
            expect(isinstance(row[2], str) and _TIMESTAMP.match(row[2]),
                   f"{description} got created_at = {row[2]!r}; it should default to the current time "
                   "('YYYY-MM-DD HH:MM:SS').", hint="created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP")
        ids = [r[0] for r in conn.execute("SELECT coupon_id FROM coupons ORDER BY rowid")]
        expect(len(set(ids)) == len(ids), "Two coupons got the same coupon_id.", hint="make coupon_id the primary key.")


# --------------------------------------------------------------------------- 01.8 executemany + rowcount

class _CountingCursor(sqlite3.Cursor):
    """A cursor that records the statements run through it on its connection (see below)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.connection.calls.append(("execute", sql))
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        self.connection.calls.append(("executemany", sql))
        return super().executemany(sql, seq_of_parameters)


class _CountingConnection(sqlite3.Connection):
    """An ordinary sqlite3 connection that also records which of execute() and executemany() ran,
    on the connection itself or on its cursors (so 01.8 can check "one executemany call")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str]] = []

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:
        return super().cursor(_CountingCursor if factory in (None, sqlite3.Cursor) else factory)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.calls.append(("execute", sql))
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        self.calls.append(("executemany", sql))
        return super().executemany(sql, seq_of_parameters)


def _stocks(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT sku, stock FROM products"))


@exercise("01.8", "Restock with executemany", answer="restock")
def restock(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "restock")
    expect(callable(func), "`restock` should be a function restock(conn, deliveries) -> int.")
    cases = [[("SKU-000001", 10), ("SKU-000002", 5), ("SKU-999999", 3)]]
    if hidden:
        cases += [[("SKU-000003", 1), ("SKU-000003", 2)], [], [("SKU-000004", 7)]]
    with tempfile.TemporaryDirectory() as tmp:
        path = file_copy(workspace, Path(tmp))
        for deliveries in cases:
            before = _stocks(path)
            expected = dict(before)
            updated = 0
            for sku, qty in deliveries:
                if sku in expected:
                    expected[sku] += qty
                    updated += 1
            conn = sqlite3.connect(path, factory=_CountingConnection)
            call = f"restock(conn, {deliveries!r})"
            try:
                result = func(conn, list(deliveries))
                expect(not conn.in_transaction, f"After {call} the connection still has an open transaction: the "
                                                 "changes were never committed.",
                       hint="wrap the update in `with conn:` (or call conn.commit()).")
            except sqlite3.ProgrammingError as exc:
                fail(f"restock raised ProgrammingError: {exc}.", hint="do not close the connection you were given.")
            finally:
                conn.close()
            after = _stocks(path)  # a new connection sees only what was committed
            changed = {sku: (before[sku], after[sku]) for sku in before if after[sku] != expected[sku]}
            if changed:
                sku, (old, new) = next(iter(changed.items()))
                fail(f"After {call}, {sku} has stock {new} (it was {old}); expected {expected[sku]}.",
                     hint="add each delivered quantity to the product's stock: SET stock = stock + ? WHERE sku = ?.")
            expect(isinstance(result, int) and not isinstance(result, bool),
                   f"{call} returned {result!r}; expected the number of product rows updated ({updated}).",
                   hint="executemany() returns a cursor whose rowcount sums the rows changed by all parameter sets.")
            expect(result == updated, f"{call} returned {result}; expected {updated}: the cursor's rowcount, which "
                                      "counts a sku delivered twice twice and an unknown sku not at all.",
                   hint="return cursor.rowcount of the executemany().")
            many = [sql for kind, sql in conn.calls if kind == "executemany"]
            single_updates = [sql for kind, sql in conn.calls if kind == "execute" and "update" in sql.lower()]
            expect(not single_updates and len(many) <= 1 and (many or not deliveries),
                   f"{call} ran {len(many)} executemany() call(s) and {len(single_updates)} UPDATE(s) through "
                   "execute(); the exercise asks for one executemany() call.",
                   hint="cur = conn.executemany(\"UPDATE products SET stock = stock + ? WHERE sku = ?\", pairs) runs "
                        "the statement once per pair, in one call.")


# --------------------------------------------------------------------------- 01.9 normalization (many-to-many)

WISHLIST_VISIBLE = [
    ("ada@example.com", "Ada Lovelace", "SKU-000001", "Smart Pan 410", "2026-06-01 10:00:00"),
    ("ada@example.com", "Ada Lovelace", "SKU-000002", "Eco Novel 635", "2026-06-02 11:30:00"),
    ("ada@example.com", "Ada Lovelace", "SKU-000003", "Cosy Boots 768", "2026-06-03 09:15:00"),
    ("alan@example.com", "Alan Turing", "SKU-000001", "Smart Pan 410", "2026-06-04 16:45:00"),
    ("alan@example.com", "Alan Turing", "SKU-000004", "Trail Phone 393", "2026-06-05 08:00:00"),
    ("grace@example.com", "Grace Hopper", "SKU-000002", "Eco Novel 635", "2026-06-06 20:20:00"),
]

WISHLIST_FLAT_DDL = ("CREATE TABLE wishlist_flat (email TEXT NOT NULL, full_name TEXT NOT NULL, sku TEXT NOT NULL, "
                     "product_name TEXT NOT NULL, added_at TEXT NOT NULL)")


def wishlist_rows(hidden: bool = False) -> list[tuple[str, str, str, str, str]]:
    """The flat wish-list rows the check normalizes (the visible ones, or a larger hidden set)."""
    if not hidden:
        return list(WISHLIST_VISIBLE)
    rng = random.Random(20240501)
    people = [("dennis.oneil@example.com", "Dennis O'Neil"), ("zoe@example.com", "Zoë Ritchie"),
              ("soren@example.com", "Søren Singh"), ("kwame@example.com", "Kwame D'Angelo"),
              ("solo@example.com", "Only One")]
    products = [(f"SKU-0000{n:02d}", f"Product {n}") for n in range(10, 22)] + [("SKU-000099", "Kid's Crayon")]
    rows, seen = [], set()
    for email, name in people[:-1]:
        for sku, pname in rng.sample(products, 5):
            if (email, sku) not in seen:
                seen.add((email, sku))
                rows.append((email, name, sku, pname, f"2026-05-{rng.randrange(1, 29):02d} 12:00:00"))
    rows.append((*people[-1], *products[-1], "2026-05-30 12:00:00"))
    return rows


def _integrity(conn: sqlite3.Connection, sql: str, params: tuple, accept: bool, message: str, hint: str) -> None:
    try:
        with conn:
            conn.execute(sql, params)
    except sqlite3.IntegrityError:
        expect(not accept, message, hint)
        return
    except sqlite3.Error as exc:
        fail(f"{message} ({type(exc).__name__}: {exc})", hint)
    expect(accept, message, hint)


@exercise("01.9", "Normalize a wish list (many-to-many)", answer="wishlist_sql")
def wishlists(script: Any, *, hidden: bool = False) -> None:
    _require_sql(script, "wishlist_sql")
    flat = wishlist_rows(hidden)
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(WISHLIST_FLAT_DDL)
        conn.executemany("INSERT INTO wishlist_flat VALUES (?, ?, ?, ?, ?)", flat)
        conn.commit()
        try:
            conn.executescript(script)
        except sqlite3.Error as exc:
            fail(f"Your script failed in SQLite: {type(exc).__name__}: {exc}",
                 hint="run it on the scratch database above (conn.executescript) to see where.")
        spec = {"wishlist_users": ["user_id", "email", "full_name"],
                "wishlist_products": ["product_id", "sku", "name"],
                "wishlist_items": ["user_id", "product_id", "added_at"]}
        for table, cols in spec.items():
            have = {r[1].lower() for r in conn.execute(f"PRAGMA table_info({table})")}
            expect(have, f"After your script there is no table `{table}`.",
                   hint="create the three tables wishlist_users, wishlist_products and wishlist_items.")
            missing = [c for c in cols if c not in have]
            expect(not missing, f"The table `{table}` has no column(s) {missing}.",
                   hint=f"{table} has the columns {', '.join(cols)}.")
        n_users = conn.execute("SELECT count(*) FROM wishlist_users").fetchone()[0]
        n_products = conn.execute("SELECT count(*) FROM wishlist_products").fetchone()[0]
        emails, skus = len({r[0] for r in flat}), len({r[2] for r in flat})
        expect(n_users == emails, f"wishlist_users has {n_users} rows; the flat table has {emails} different "
                                  "customers.", hint="one row per customer: INSERT ... SELECT DISTINCT email, full_name.")
        expect(n_products == skus, f"wishlist_products has {n_products} rows; the flat table has {skus} different "
                                   "products.", hint="one row per product: INSERT ... SELECT DISTINCT sku, product_name.")
        rebuilt = run_sql(conn, "SELECT u.email, u.full_name, p.sku, p.name, w.added_at FROM wishlist_items AS w "
                                "JOIN wishlist_users AS u ON u.user_id = w.user_id "
                                "JOIN wishlist_products AS p ON p.product_id = w.product_id",
                          what="Joining your three tables back together")
        compare_rows(rebuilt, Rows(["email", "full_name", "sku", "name", "added_at"], flat), check_columns=False,
                     what="Joining your three tables back together (email, full_name, sku, name, added_at)")
        any_item = conn.execute("SELECT user_id, product_id, added_at FROM wishlist_items LIMIT 1").fetchone()
        any_user = conn.execute("SELECT email FROM wishlist_users LIMIT 1").fetchone()
        any_product = conn.execute("SELECT sku FROM wishlist_products LIMIT 1").fetchone()
        _integrity(conn, "INSERT INTO wishlist_items (user_id, product_id, added_at) VALUES (?, ?, ?)", any_item,
                   False, "The same product could be added twice to the same customer's wish list.",
                   "make (user_id, product_id) the primary key of wishlist_items.")
        _integrity(conn, "INSERT INTO wishlist_items (user_id, product_id, added_at) VALUES (?, ?, ?)",
                   (987654, any_item[1], "2026-06-30 12:00:00"), False,
                   "wishlist_items accepted a user_id that is not in wishlist_users.",
                   "declare user_id ... REFERENCES wishlist_users (user_id) (and product_id likewise).")
        _integrity(conn, "INSERT INTO wishlist_items (user_id, product_id, added_at) VALUES (?, ?, ?)",
                   (any_item[0], 987654, "2026-06-30 12:00:00"), False,
                   "wishlist_items accepted a product_id that is not in wishlist_products.",
                   "declare product_id ... REFERENCES wishlist_products (product_id).")
        _integrity(conn, "INSERT INTO wishlist_users (email, full_name) VALUES (?, ?)", (any_user[0], "Copy"), False,
                   "wishlist_users accepted a second row with the same e-mail.", "make email UNIQUE.")
        _integrity(conn, "INSERT INTO wishlist_products (sku, name) VALUES (?, ?)", (any_product[0], "Copy"), False,
                   "wishlist_products accepted a second row with the same sku.", "make sku UNIQUE.")
        _integrity(conn, "INSERT INTO wishlist_users (email, full_name) VALUES (?, ?)", ("new@example.com", "New"),
                   True, "A new customer (e-mail and name only) was rejected: user_id should be numbered "
                         "automatically.", "user_id INTEGER PRIMARY KEY")
        if hidden:
            _integrity(conn, "INSERT INTO wishlist_users (email, full_name) VALUES (?, ?)", (None, "No Mail"), False,
                       "wishlist_users accepted a customer without an e-mail.", "email TEXT NOT NULL UNIQUE")
            _integrity(conn, "INSERT INTO wishlist_products (sku, name) VALUES (?, ?)", ("SKU-NEW", None), False,
                       "wishlist_products accepted a product without a name.", "name TEXT NOT NULL")
            new_user = conn.execute("SELECT user_id FROM wishlist_users WHERE email = 'new@example.com'").fetchone()
            _integrity(conn, "INSERT INTO wishlist_items (user_id, product_id, added_at) VALUES (?, ?, ?)",
                       (new_user[0], any_item[1], None), False,
                       "wishlist_items accepted a row without added_at.", "added_at TEXT NOT NULL")
            # SQLite (for backward compatibility) lets a PRIMARY KEY that is not an INTEGER PRIMARY KEY hold
            # NULL, and a foreign key does not check NULL: only NOT NULL keeps these out.
            _integrity(conn, "INSERT INTO wishlist_items (user_id, product_id, added_at) VALUES (?, ?, ?)",
                       (None, any_item[1], "2026-06-30 12:00:00"), False,
                       "wishlist_items accepted a row without a user_id (user_id NULL).",
                       "SQLite lets a composite PRIMARY KEY hold NULL, and a foreign key lets NULL through: "
                       "declare user_id INTEGER NOT NULL REFERENCES ...")
            _integrity(conn, "INSERT INTO wishlist_items (user_id, product_id, added_at) VALUES (?, ?, ?)",
                       (new_user[0], None, "2026-06-30 12:00:00"), False,
                       "wishlist_items accepted a row without a product_id (product_id NULL).",
                       "SQLite lets a composite PRIMARY KEY hold NULL, and a foreign key lets NULL through: "
                       "declare product_id INTEGER NOT NULL REFERENCES ...")


# --------------------------------------------------------------------------- 01.10 transactions

POINTS_SCHEMA = """
CREATE TABLE wallets (
    user_id INTEGER PRIMARY KEY,
    points  INTEGER NOT NULL CHECK (points >= 0)
);
CREATE TABLE transfers (
    transfer_id INTEGER PRIMARY KEY,
    from_user   INTEGER NOT NULL REFERENCES wallets (user_id),
    to_user     INTEGER NOT NULL REFERENCES wallets (user_id),
    points      INTEGER NOT NULL CHECK (points > 0),
    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""


def points_database(path: Path | str, wallets: dict[int, int]) -> None:
    """Create the wallets/transfers schema in ``path`` with the given balances."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(POINTS_SCHEMA)
        with conn:
            conn.executemany("INSERT INTO wallets (user_id, points) VALUES (?, ?)", wallets.items())


def _points_state(conn: sqlite3.Connection) -> tuple[dict[int, int], list[tuple[int, int, int]]]:
    wallets = dict(conn.execute("SELECT user_id, points FROM wallets ORDER BY user_id"))
    transfers = [tuple(r) for r in conn.execute("SELECT from_user, to_user, points FROM transfers ORDER BY transfer_id")]
    return wallets, transfers


@exercise("01.10", "Send points to several people, all or nothing", answer="send_points")
def send_points(func: Any, *, hidden: bool = False) -> None:
    not_answered(func, "send_points")
    expect(callable(func), "`send_points` should be a function send_points(conn, sender, payments).")
    cases: list[tuple[int, dict[int, int], bool, str]] = [
        (1, {2: 30, 3: 20}, True, "a valid payment to two people"),
        (4, {1: 5, 2: 6}, False, "user 4 has 10 points and tries to send 11"),
        (1, {2: 5, 99: 5}, False, "user 99 has no wallet"),
    ]
    if hidden:
        cases += [
            (2, {1: 80}, True, "user 2 sends exactly all of their 80 points"),
            (3, {1: 0}, False, "a payment of 0 points"),
            (3, {1: 5, 2: -5}, False, "a negative payment (it would take points from user 2)"),
            (98, {1: 1}, False, "user 98 has no wallet"),
            (3, {1: 15, 4: 6}, False, "user 3 has 20 points and tries to send 21"),
        ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "points.db"
        points_database(path, {1: 100, 2: 50, 3: 0, 4: 10})
        conn = sqlite3.connect(path)
        try:
            for sender, payments, ok, what in cases:
                call = f"send_points(conn, {sender}, {payments!r}) ({what})"
                before = _points_state(conn)
                try:
                    func(conn, sender, dict(payments))
                    error = None
                except ValueError as exc:
                    error = exc
                except sqlite3.ProgrammingError as exc:
                    fail(f"{call} raised ProgrammingError: {exc}.", hint="do not close the connection you were given.")
                except Exception as exc:  # noqa: BLE001 - the learner's function raised something else
                    if ok:
                        raise
                    if conn.in_transaction:
                        conn.rollback()
                    fail(f"{call} raised {type(exc).__name__}: {exc}; expected ValueError.",
                         hint="check the request yourself and raise ValueError (you may catch the database's "
                              "IntegrityError and raise ValueError from it).")
                expect(not conn.in_transaction,
                       f"After {call} the connection still has an open transaction.",
                       hint="commit on success and roll back on failure (`with conn:` does both).")
                seen_by_you = _points_state(conn)
                with closing(sqlite3.connect(path)) as other:
                    seen_by_others = _points_state(other)
                expect(seen_by_you == seen_by_others, f"After {call} your connection and a new one see different "
                                                      "data: something is not committed.",
                       hint="commit on success and roll back on failure (`with conn:` does both).")
                if not ok:
                    expect(error is not None, f"{call} should raise ValueError, but it returned normally.",
                           hint="check the amounts and the wallets, and raise ValueError when the request is invalid.")
                    expect(seen_by_you == before, f"{call} raised ValueError, but the data changed: "
                                                  f"{before[0]} -> {seen_by_you[0]}.",
                           hint="every change of a failed request must be rolled back, including the payments "
                                "made before the problem was found.")
                    continue
                expect(error is None, f"{call} raised ValueError: {error}; this payment is valid.")
                wallets, transfers = dict(before[0]), list(before[1])
                for to, amount in payments.items():
                    wallets[sender] -= amount
                    wallets[to] += amount
                expect(seen_by_you[0] == wallets, f"After {call} the wallets are {seen_by_you[0]}; expected {wallets}.",
                       hint="take each payment from the sender and give it to its recipient.")
                new = sorted(seen_by_you[1][len(before[1]):])
                expected_new = sorted((sender, to, amount) for to, amount in payments.items())
                expect(seen_by_you[1][:len(before[1])] == before[1] and new == expected_new,
                       f"After {call} the new rows of `transfers` (from_user, to_user, points) are {new}; "
                       f"expected {expected_new}.", hint="insert one row into transfers per payment.")
        finally:
            conn.close()


# --------------------------------------------------------------------------- 01.11 WAL and threads

@exercise("01.11", "A connection factory for a threaded app", answer="connect_for_app")
def connect_for_app(func: Any, *, hidden: bool = False) -> None:
    not_answered(func, "connect_for_app")
    expect(callable(func), "`connect_for_app` should be a function connect_for_app(path) -> sqlite3.Connection.")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "app.db")
        conn = func(path)
        expect(isinstance(conn, sqlite3.Connection),
               f"connect_for_app(path) returned a {type(conn).__name__}; expected an sqlite3.Connection.",
               hint="return the connection itself (not a context manager, not a cursor).")
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            expect(str(mode).lower() == "wal", f"The journal mode is {mode!r}; expected 'wal'.",
                   hint="conn.execute('PRAGMA journal_mode = WAL')")
            expect(conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1, "Foreign keys are not enforced.",
                   hint="conn.execute('PRAGMA foreign_keys = ON') on every new connection.")
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
            expect(sync == 1, f"PRAGMA synchronous is {sync}; expected 1 (NORMAL), safe in WAL mode and faster.",
                   hint="conn.execute('PRAGMA synchronous = NORMAL')")
            timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
            expect(timeout >= 5000, f"The busy timeout is {timeout} ms; a writer should wait at least 5 seconds "
                                    "for a lock.", hint="sqlite3.connect(path, timeout=5) (5 s is Python's default).")
            expect(conn.row_factory is sqlite3.Row, "Rows are not sqlite3.Row objects.",
                   hint="conn.row_factory = sqlite3.Row")
            with conn:
                conn.execute("CREATE TABLE IF NOT EXISTS parents (id INTEGER PRIMARY KEY)")
                conn.execute("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, "
                             "n INTEGER NOT NULL, parent_id INTEGER REFERENCES parents (id))")
        finally:
            conn.close()

        writers, per_writer = (6, 40) if hidden else (4, 30)
        errors: list[str] = []
        done = threading.Event()
        reads: list[int] = []

        def write(w: int) -> None:
            try:
                c = func(path)
                try:
                    for n in range(per_writer):
                        with c:
                            c.execute("INSERT INTO log (writer, n) VALUES (?, ?)", (w, n))
                    if hidden and w == 0:
                        try:
                            with c:
                                c.execute("INSERT INTO log (writer, n, parent_id) VALUES (?, ?, ?)", (w, -1, 12345))
                            errors.append("a connection opened in a thread accepted a row whose parent does not exist "
                                          "(foreign keys off)")
                        except sqlite3.IntegrityError:
                            pass
                finally:
                    c.close()
            except Exception as exc:  # noqa: BLE001 - report any failure in a thread
                errors.append(f"writer {w}: {type(exc).__name__}: {exc}")

        def read() -> None:
            try:
                c = func(path)
                try:
                    while not done.is_set():
                        reads.append(c.execute("SELECT count(*) FROM log").fetchone()[0])
                finally:
                    c.close()
            except Exception as exc:  # noqa: BLE001
                errors.append(f"reader: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        readers = [threading.Thread(target=read) for _ in range(2)]
        for t in readers + threads:
            t.start()
        for t in threads:
            t.join(60)
        done.set()
        for t in readers:
            t.join(60)
        expect(not errors, f"With {writers} threads writing and 2 reading, each with its own connection from "
                           f"connect_for_app: {errors[0] if errors else ''}",
               hint="WAL mode lets readers and one writer work at once; a busy timeout makes writers wait their "
                    "turn instead of failing with 'database is locked'.")
        with closing(sqlite3.connect(path)) as c:
            count = c.execute("SELECT count(*) FROM log").fetchone()[0]
        expect(count == writers * per_writer, f"{count} rows were written; expected {writers * per_writer}.")


# --------------------------------------------------------------------------- 01.12 find and fix: injection

BUGGY_FIND_CUSTOMERS = '''
def find_customers(conn, text):
    sql = f"SELECT user_id, full_name FROM users WHERE full_name LIKE '%{text}%' ORDER BY user_id"
    return conn.execute(sql).fetchall()
'''


def _reference_customers(conn: sqlite3.Connection, text: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(
        "SELECT user_id, full_name FROM users WHERE instr(lower(full_name), lower(?)) > 0 ORDER BY user_id", (text,))]


@exercise("01.12", "Find and fix: an injectable search", answer="find_customers")
def find_customers(func: Any, workspace: Any, *, hidden: bool = False) -> None:
    not_answered(func, "find_customers")
    expect(callable(func), "`find_customers` should be a function find_customers(conn, text).")
    texts = ["brien", "O'Brien", "' OR '1'='1", "%"]
    if hidden:
        texts += ["D'ANGELO", "_", "50%", "x' UNION SELECT user_id, email FROM users --",
                  "'; DROP TABLE users; --", "zoë"]
    with closing(memory_copy(workspace)) as conn:
        users_before = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        for text in texts:
            call = f"find_customers(conn, {text!r})"
            try:
                got = func(conn, text)
            except sqlite3.Error as exc:
                fail(f"{call} failed with sqlite3.{type(exc).__name__}: {exc}.",
                     hint="the text was pasted into the SQL, so its quote changed the query: pass it as a "
                          "parameter (?) instead.")
            expect(isinstance(got, list), f"{call} returned a {type(got).__name__}; expected a list of rows.",
                   hint="return cursor.fetchall().")
            rows = [tuple(r) for r in got]
            expected = _reference_customers(conn, text)
            if len(rows) > len(expected) and len(expected) == 0:
                fail(f"{call} returned {len(rows)} rows; no customer's name contains that text, so expected none.",
                     hint=("'%' and '_' are wildcards in LIKE: a search text is text, not a pattern. Use "
                           "instr(lower(full_name), lower(?)) > 0, or LIKE ... ESCAPE." if text in ("%", "_", "50%")
                           else "the text was pasted into the SQL and rewrote the query (SQL injection): pass it "
                                "as a parameter (?)."))
            compare_rows(Rows(["user_id", "full_name"], rows), Rows(["user_id", "full_name"], expected),
                         ordered=True, check_columns=False, what=f"{call}",
                         order_hint="order the customers by user_id.")
        users_after = conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'users'").fetchone()[0]
        expect(users_after == 1 and conn.execute("SELECT count(*) FROM users").fetchone()[0] == users_before,
               "The users table was changed by a search.", hint="a search must only read: use a parameter (?).")
