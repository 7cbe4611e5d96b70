"""Checks for chapter 02, "PostgreSQL from Python with psycopg 3".

Every check recomputes its expected result from the notebook's own database (never a
hard-coded answer), and the hidden variants change the data inside a transaction that is
rolled back (or in scratch rows and tables that are removed afterwards), try awkward values
(quotes, NULLs, empty results, other time zones) or run the learner's code from several
connections at once against the real server.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Callable, Iterator

from .compare import Rows, compare_rows, compare_value, fetch_rows, run_sql
from .core import Chapter, ExerciseFailed, expect, fail, not_answered

chapter = Chapter("02", "PostgreSQL from Python")
exercise = chapter.exercise
progress = chapter.progress

#: statuses whose orders never count as revenue
NOT_REVENUE = ("cancelled", "refunded")

# Ids far above the data's own, for rows the hidden tests add (and remove again).
SCRATCH_ID = 900_001


# --------------------------------------------------------------------------- helpers

def _connect(workspace: Any, *, timezone: str = "UTC", extra_options: str = "", **kwargs: Any):
    """A psycopg connection to the notebook's database, in a known session time zone."""
    if workspace is None or not hasattr(workspace, "connect_postgres"):
        fail("this check needs the workspace: pass `course` as its second argument, as the check cell does.")
    options = f"-c TimeZone={timezone} {extra_options}".strip()
    return workspace.connect_postgres(options=options, **kwargs)


def _callable(func: Any, name: str, signature: str) -> None:
    not_answered(func, name)
    expect(callable(func), f"`{name}` should be a function {signature}, not {type(func).__name__}.",
           hint=f"define it with `def {signature}:` in the answer cell and run that cell.")


def _sql_text(sql: Any, name: str) -> str:
    not_answered(sql, name)
    expect(isinstance(sql, str), f"`{name}` should be a string holding one SQL statement, not {type(sql).__name__}.",
           hint=f'write {name} = """SELECT ..."""')
    return sql


def _scalar(conn: Any, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _executemany(conn: Any, query: str, rows: list) -> None:
    if rows:
        with conn.cursor() as cur:
            cur.executemany(query, rows)


def _compare_dicts(got: Any, expected: Rows, what: str, *, ordered: bool = True) -> None:
    """Compare a list of dicts (dict rows) with ``expected``, keys in any order."""
    expect(isinstance(got, list), f"{what} returned {type(got).__name__}; expected a list of dicts.",
           hint="return cur.fetchall() from a cursor created with row_factory=dict_row.")
    if not got:
        expect(not expected.rows, f"{what} returned an empty list; expected {len(expected.rows)} row(s).",
               hint="check your WHERE conditions and the values you pass as parameters.")
        return
    bad = next((row for row in got if not isinstance(row, dict)), None)
    if bad is not None:
        fail(f"{what} returned rows like {bad!r} ({type(bad).__name__}); expected dicts such as "
             f"{dict(zip(expected.columns, expected.rows[0])) if expected.rows else {}!r}.",
             hint="create the cursor with conn.cursor(row_factory=dict_row) (from psycopg.rows import dict_row).")
    keys = {str(k).lower() for k in got[0]}
    wanted = [c.lower() for c in expected.columns]
    if keys != set(wanted):
        fail(f"{what} returned dicts with the keys {sorted(got[0])}; expected {expected.columns}.",
             hint="select exactly the columns the exercise names (use AS to rename one).")
    rows = [tuple({str(k).lower(): v for k, v in row.items()}.get(c) for c in wanted) for row in got]
    compare_rows(Rows(list(expected.columns), rows), expected, ordered=ordered, what=what)


def _run_answer_sql(conn: Any, sql: str, params: Any, what: str) -> Rows:
    return run_sql(conn, sql, params, what=what)


@contextmanager
def _cleanup(workspace: Any, *statements: str) -> Iterator[None]:
    """After the block, run ``statements`` in a fresh connection and commit (removes scratch rows
    even when the learner's code committed them)."""
    try:
        yield
    finally:
        try:
            with _connect(workspace) as conn:
                for statement in statements:
                    conn.execute(statement)
        except Exception:  # noqa: BLE001 - cleanup must never hide the real feedback
            pass


def _needs_column(conn: Any, table: str, column: str, where: str) -> None:
    exists = _scalar(conn, "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                           "AND table_name = %s AND column_name = %s", (table, column))
    expect(bool(exists), f"the column {table}.{column} does not exist yet in your database.",
           hint=f"run the cell of {where} that adds it, then run this check again.")


# --------------------------------------------------------------------------- 02.1

FIND_PRODUCTS_REF = """
SELECT p.product_id, p.name, p.price
FROM products p JOIN categories c ON c.category_id = p.category_id
WHERE c.name = %s AND p.price <= %s AND NOT p.is_discontinued
ORDER BY p.price, p.product_id
"""


@exercise("02.1", "Products as dicts, with parameters", answer="find_products")
def find_products(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    _callable(func, "find_products", "find_products(conn, category, max_price)")
    cases: list[tuple[str, Any]] = [("Laptops", 1500), ("Board Games", Decimal("40"))]
    if hidden:
        cases += [("Home & Kitchen", 10_000), ("x' OR '1'='1", 10_000), ("Kids' Books", 30), ("Kids' Books", 5)]
    cat, first = SCRATCH_ID, SCRATCH_ID
    with _cleanup(workspace, f"DELETE FROM products WHERE product_id >= {first}",
                  f"DELETE FROM categories WHERE category_id >= {cat}"), _connect(workspace) as conn:
        try:
            if hidden:
                conn.execute("INSERT INTO categories (category_id, name, parent_id) VALUES (%s, %s, 1)",
                             (cat, "Kids' Books"))
                _executemany(conn, 
                    "INSERT INTO products (product_id, sku, name, category_id, price, stock, created_at, "
                    "is_discontinued) VALUES (%s, %s, %s, %s, %s, 5, now(), %s)",
                    [(first, "SKU-CHK-1", "Gruffalo's Child", cat, Decimal("12.50"), False),
                     (first + 1, "SKU-CHK-2", "Where's Spot?", cat, Decimal("29.99"), False),
                     (first + 2, "SKU-CHK-3", "Out of print", cat, Decimal("9.99"), True),
                     (first + 3, "SKU-CHK-4", "Too dear", cat, Decimal("30.01"), False)])
            for category, max_price in cases:
                what = f"find_products(conn, {category!r}, {max_price!r})"
                got = func(conn, category, max_price)
                expected = run_sql(conn, FIND_PRODUCTS_REF, (category, max_price), what="The reference query")
                _compare_dicts(got, expected, what)
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 02.2

def _has_generated_ids(conn: Any, table: str, column: str) -> bool:
    row = conn.execute("SELECT is_identity, column_default FROM information_schema.columns "
                       "WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s",
                       (table, column)).fetchone()
    return bool(row) and (row[0] == "YES" or row[1] is not None)


POOL_SIZE = 2


@contextmanager
def _check_pool(workspace: Any) -> Iterator[Any]:
    """A small psycopg_pool.ConnectionPool on the notebook's database (tuple rows, UTC)."""
    from psycopg_pool import ConnectionPool

    if workspace is None or not hasattr(workspace, "postgres_url"):
        fail("this check needs the workspace: pass `course` as its second argument, as the check cell does.")
    pool = ConnectionPool(workspace.postgres_url, min_size=1, max_size=POOL_SIZE, open=False, timeout=3,
                          name="check-02.2", kwargs={"connect_timeout": 5, "options": "-c TimeZone=UTC"})
    pool.open(wait=True, timeout=10)
    try:
        yield pool
    finally:
        pool.close(timeout=2)


def _all_returned(pool: Any, what: str) -> None:
    """Every connection of ``pool`` can be borrowed again (none was kept by the learner's code)."""
    from psycopg_pool import PoolTimeout

    held = []
    try:
        for _ in range(POOL_SIZE):
            held.append(pool.getconn(timeout=1))
    except PoolTimeout:
        fail(f"after {what}, the pool ({POOL_SIZE} connections) could not lend {POOL_SIZE} connections again: "
             "your function kept one.",
             hint="borrow with `with pool.connection() as conn:`, which gives the connection back when the block "
                  "ends (pool.getconn() needs a pool.putconn(conn) on every path).")
    finally:
        for conn in held:
            pool.putconn(conn)


@exercise("02.2", "Place an order through a pool, with RETURNING", answer="place_order")
def place_order(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    from psycopg_pool import PoolTimeout

    _callable(func, "place_order", "place_order(pool, user_id, items)")
    with _connect(workspace, autocommit=True) as watcher, _check_pool(workspace) as pool:
        for table, column in (("orders", "order_id"), ("order_items", "order_item_id")):
            expect(_has_generated_ids(watcher, table, column),
                   f"{table}.{column} does not generate its values yet.",
                   hint="run the cell of section 2 that adds identity columns, then run this check again.")
        max_order = _scalar(watcher, "SELECT coalesce(max(order_id), 0) FROM orders")
        max_item = _scalar(watcher, "SELECT coalesce(max(order_item_id), 0) FROM order_items")
        products = [r[0] for r in watcher.execute(
            "SELECT product_id FROM products WHERE NOT is_discontinued ORDER BY product_id LIMIT 3")]
        lower_user = _scalar(watcher, "SELECT min(user_id) FROM users WHERE country <> upper(country)")

        def new_orders() -> int:
            return _scalar(watcher, "SELECT count(*) FROM orders WHERE order_id > %s", (max_order,)) + \
                _scalar(watcher, "SELECT count(*) FROM order_items WHERE order_item_id > %s", (max_item,))

        def call(user_id: int, items: list[tuple[int, int]]) -> tuple[Any, BaseException | None]:
            try:
                return func(pool, user_id, items), None
            except PoolTimeout:
                fail(f"place_order(pool, {user_id}, {items}) found the pool ({POOL_SIZE} connections) exhausted: "
                     "an earlier call kept its connection.",
                     hint="borrow with `with pool.connection() as conn:`, which gives the connection back when the "
                          "block ends, even after an exception.")
            except ExerciseFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - inspected by the caller
                return None, exc

        def placed(user_id: int, items: list[tuple[int, int]]) -> None:
            before = new_orders()
            what = f"place_order(pool, {user_id}, {items})"
            order_id, error = call(user_id, items)
            expect(error is None, f"{what} raised {_describe(error)}" if error else "",
                   hint="run your function on its own in a cell to see the whole error.")
            expect(isinstance(order_id, int) and not isinstance(order_id, bool),
                   f"{what} returned {order_id!r}; expected the new order's id (an int).",
                   hint="INSERT ... RETURNING order_id, then fetchone()[0].")
            row = watcher.execute("SELECT user_id, status, shipping_country, ordered_at > now() - interval '10 minutes' "
                                  "FROM orders WHERE order_id = %s", (order_id,)).fetchone()
            expect(row is not None, f"{what} returned {order_id}, but another connection finds no order with that id.",
                   hint="commit the transaction: a `with pool.connection() as conn:` block commits when it ends "
                        "(a connection given back with an open transaction is rolled back by the pool).")
            country = _scalar(watcher, "SELECT upper(country) FROM users WHERE user_id = %s", (user_id,))
            compare_value(tuple(row[:3]), (user_id, "pending", country),
                          name=f"the order's (user_id, status, shipping_country) after {what}",
                          hint="status 'pending', shipping_country the user's country in upper case.")
            expect(row[3], f"the order's ordered_at is not the time it was placed (after {what}).",
                   hint="use now() for ordered_at.")
            got = run_sql(watcher, "SELECT product_id, quantity, unit_price FROM order_items WHERE order_id = %s",
                          (order_id,))
            expected = run_sql(watcher, "SELECT p.product_id, i.quantity, p.price AS unit_price FROM products p "
                                        "JOIN unnest(%s::int[], %s::int[]) AS i(product_id, quantity) "
                                        "ON i.product_id = p.product_id",
                               ([p for p, _ in items], [q for _, q in items]))
            compare_rows(got, expected, what=f"The items stored by {what}")
            expect(new_orders() == before + 1 + len(items),
                   f"{what} stored {new_orders() - before} rows in orders and order_items; expected "
                   f"{1 + len(items)} (one order and its items).")

        def refused(user_id: int, items: list[tuple[int, int]], why: str, *, value_error: bool) -> None:
            before = new_orders()
            what = f"place_order(pool, {user_id}, {items})"
            result, error = call(user_id, items)
            stored = new_orders() - before
            wanted = "raise ValueError" if value_error else "raise an exception"
            expect(error is not None, f"{what} returned {result!r}, but {why}: it should {wanted}.",
                   hint="INSERT ... SELECT inserts nothing when the SELECT finds no row: check what RETURNING gave "
                        "you (fetchone() is None) and raise ValueError." if value_error else
                        "let the database error propagate (do not catch it), so that the transaction is rolled back.")
            if value_error:
                expect(isinstance(error, ValueError),
                       f"{what} raised {_describe(error)}, but {why}: the exercise asks for ValueError.",
                       hint="raise ValueError(...) yourself when RETURNING gives no row (fetchone() is None).")
            expect(stored == 0, f"{what} raised, as it should, but left {stored} row(s) behind in orders/order_items.",
                   hint="do all the inserts in one transaction on one borrowed connection (`with pool.connection() "
                        "as conn:`), so that a failure undoes them all.")

        try:
            placed(42, [(products[0], 2), (products[1], 1)])
            refused(42, [(products[0], 1), (999_999_999, 1)], "product 999999999 does not exist", value_error=True)
            if hidden:
                placed(lower_user, [(products[2], 3)])
                refused(999_999_999, [(products[0], 1)], "user 999999999 does not exist", value_error=True)
                refused(42, [(products[0], 1), (products[1], 0)], "a quantity of 0 breaks the CHECK constraint",
                        value_error=False)
                placed(42, [(products[1], 1)])
            _all_returned(pool, "your calls")
        finally:
            watcher.execute("DELETE FROM order_items WHERE order_item_id > %s OR order_id > %s", (max_item, max_order))
            watcher.execute("DELETE FROM orders WHERE order_id > %s", (max_order,))


# --------------------------------------------------------------------------- 02.3

def _waiting_on_lock(monitor: Any, pids: list[int]) -> int:
    return _scalar(monitor, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND wait_event_type = 'Lock'",
                   (pids,))


def _race(workspace: Any, func: Callable, product_id: int, start: int, quantities: list[int]) -> tuple[list, int]:
    """Run ``func(conn, product_id, q)`` for each q at the same moment, each on its own connection.

    A blocker transaction locks the product's row first, so that every seller has read (or tried to
    lock) the row before anyone can write it: the worst interleaving, every time. Returns each
    call's outcome (a value or an exception) and the final stock.
    """
    with _connect(workspace, autocommit=True) as admin:
        admin.execute("UPDATE products SET stock = %s WHERE product_id = %s", (start, product_id))
        blocker = _connect(workspace)
        conns = [_connect(workspace, extra_options="-c lock_timeout=10s") for _ in quantities]
        outcomes: list[Any] = [None] * len(quantities)
        threads: list[threading.Thread] = []

        def run(index: int) -> None:
            try:
                outcomes[index] = ("ok", func(conns[index], product_id, quantities[index]))
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                outcomes[index] = ("error", exc)

        try:
            blocker.execute("SELECT 1 FROM products WHERE product_id = %s FOR UPDATE", (product_id,))
            threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(quantities))]
            for thread in threads:
                thread.start()
            pids = [c.info.backend_pid for c in conns]
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and any(t.is_alive() for t in threads):
                if _waiting_on_lock(admin, pids) == len(pids):
                    break
                time.sleep(0.01)
            blocker.commit()
            for thread in threads:
                thread.join(20)
            expect(not any(t.is_alive() for t in threads),
                   "sell() did not finish within 20 seconds when several connections sold at once.",
                   hint="commit before returning, so that the other sellers can get the row lock.")
        finally:
            blocker.close()
            for conn, thread in zip(conns, threads or [None] * len(conns)):
                if thread is None or not thread.is_alive():
                    conn.close()
        final = _scalar(admin, "SELECT stock FROM products WHERE product_id = %s", (product_id,))
    return outcomes, final


def _check_race(workspace: Any, func: Callable, product_id: int, start: int, quantities: list[int]) -> None:
    import psycopg

    outcomes, final = _race(workspace, func, product_id, start, quantities)
    what = f"{len(quantities)} connections selling {quantities} at the same moment from a stock of {start}"
    for kind, value in outcomes:
        if kind == "error" and not isinstance(value, ValueError):
            hint = "make sell() safe under concurrency: lock the row (SELECT ... FOR UPDATE) or let one UPDATE " \
                   "check and change the stock."
            if isinstance(value, psycopg.errors.SerializationFailure):
                hint = ("at REPEATABLE READ or SERIALIZABLE a concurrent sale makes the transaction fail: retry it, "
                        "or stay at READ COMMITTED and lock the row with SELECT ... FOR UPDATE.")
            elif isinstance(value, psycopg.errors.LockNotAvailable):
                hint = "a seller waited more than 10 s for the row lock: commit as soon as the sale is done."
            fail(f"with {what}, a call raised {_describe(value)}.", hint=hint)
    # The sales that can succeed, in any order: greedily, the orders in which they commit.
    sold = [q for (kind, _), q in zip(outcomes, quantities) if kind == "ok"]
    refused = [q for (kind, _), q in zip(outcomes, quantities) if kind == "error"]
    expect(final == start - sum(sold),
           f"with {what}, {len(sold)} sale(s) of {sold} succeeded, so the stock should be {start - sum(sold)}, "
           f"but it is {final}: a lost update (two sellers read the same stock and each wrote their own result).",
           hint="do not compute the new stock in Python from a plain SELECT: lock the row with SELECT ... FOR UPDATE, "
                "or write UPDATE ... SET stock = stock - %s WHERE ... AND stock >= %s RETURNING stock.")
    expect(final >= 0, f"with {what}, the stock went negative ({final}).")
    for q in refused:
        expect(final < q, f"with {what}, a sale of {q} was refused although {final} unit(s) were still left at the end.",
               hint="refuse a sale only when the stock (read under a lock) is too low.")
    values = sorted(v for kind, v in outcomes if kind == "ok")
    expect(all(isinstance(v, int) and not isinstance(v, bool) for v in values),
           f"with {what}, sell() returned {values}; it should return the new stock (an int).")
    expect(final in values or not values, f"with {what}, no call returned the final stock {final} (they returned "
                                          f"{values}).", hint="return the stock as it is after your own sale.")


@exercise("02.3", "Find and fix: the lost sale", answer="sell")
def sell(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    _callable(func, "sell", "sell(conn, product_id, quantity)")
    with _connect(workspace, autocommit=True) as admin:
        product_id, hidden_product = [r[0] for r in admin.execute(
            "SELECT product_id FROM products ORDER BY product_id LIMIT 2")]
        saved = dict(admin.execute("SELECT product_id, stock FROM products WHERE product_id = ANY(%s)",
                                   ([product_id, hidden_product],)).fetchall())
        try:
            # one seller at a time: the basics
            admin.execute("UPDATE products SET stock = 5 WHERE product_id = %s", (product_id,))
            with _connect(workspace) as conn:
                got = func(conn, product_id, 2)
                compare_value(got, 3, name=f"sell(conn, {product_id}, 2) with 5 in stock")
                seen = _scalar(admin, "SELECT stock FROM products WHERE product_id = %s", (product_id,))
                expect(seen == 3, f"after sell(conn, {product_id}, 2) another connection sees a stock of {seen}, not 3.",
                       hint="commit the sale before returning (`with conn.transaction():`).")
                try:
                    got = func(conn, product_id, 4)
                except ValueError:
                    pass
                else:
                    fail(f"sell(conn, {product_id}, 4) with only 3 in stock returned {got!r}; it should raise "
                         "ValueError.")
                seen = _scalar(admin, "SELECT stock FROM products WHERE product_id = %s", (product_id,))
                expect(seen == 3, f"a refused sale changed the stock to {seen}.")
            # several sellers at once
            _check_race(workspace, func, product_id, 10, [1, 1, 1])
            if hidden:
                _check_race(workspace, func, hidden_product, 2, [1, 1, 1, 1])
                _check_race(workspace, func, hidden_product, 10, [3, 2, 4])
        finally:
            for pid, stock in saved.items():
                admin.execute("UPDATE products SET stock = %s WHERE product_id = %s", (stock, pid))


# --------------------------------------------------------------------------- 02.4

@exercise("02.4", "Retry a serialization failure", answer="run_with_retries")
def run_with_retries(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    import psycopg

    _callable(func, "run_with_retries", "run_with_retries(conn, work, attempts=5)")
    table = "ch02_retry_check"
    with _connect(workspace, autocommit=True) as other:
        other.execute(f"DROP TABLE IF EXISTS {table}")
        other.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL)")

        def scenario(fail_times: int, attempts: int | None, *, boom: bool = False):
            other.execute(f"DELETE FROM {table}")
            other.execute(f"INSERT INTO {table} VALUES (1, 0)")
            levels: list[str] = []

            def work(conn: Any) -> int:
                levels.append(_scalar(conn, "SHOW transaction_isolation"))
                n = _scalar(conn, f"SELECT n FROM {table} WHERE id = 1")
                if len(levels) <= fail_times:  # another transaction changes the row meanwhile, and commits
                    other.execute(f"UPDATE {table} SET n = n + 100 WHERE id = 1")
                conn.execute(f"UPDATE {table} SET n = %s WHERE id = 1", (n + 1,))
                if boom:
                    raise ValueError("not a serialization failure")
                return n + 1

            with _connect(workspace) as conn:
                try:
                    result = func(conn, work) if attempts is None else func(conn, work, attempts)
                    error = None
                except Exception as exc:  # noqa: BLE001 - inspected below
                    result, error = None, exc
                status = conn.info.transaction_status.name
            final = _scalar(other, f"SELECT n FROM {table} WHERE id = 1")
            return result, error, levels, status, final

        try:
            result, error, levels, status, final = scenario(2, 5)
            call = "run_with_retries(conn, work, 5) while two concurrent updates hit the first two attempts"
            if levels and levels[0] == "read committed" and error is None:
                fail(f"{call}: work ran at READ COMMITTED, so the concurrent update was silently overwritten "
                     f"(the counter is {final}, not 201).",
                     hint="set conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE (or REPEATABLE READ) "
                          "before the transaction starts.")
            if error is not None:
                fail(f"{call} raised {_describe(error)}.",
                     hint="catch psycopg.errors.SerializationFailure around the whole transaction block, and try "
                          "again with a new transaction.")
            expect(len(levels) == 3, f"{call} called work {len(levels)} time(s); expected 3 (two failures, then "
                                     "success).")
            expect(all(level in ("repeatable read", "serializable") for level in levels),
                   f"{call}: work ran at {sorted(set(levels))}; expected SERIALIZABLE or REPEATABLE READ.",
                   hint="set the isolation level for every attempt.")
            compare_value(result, 201, name=f"the value {call} returned",
                          hint="return what work(conn) returned on the attempt that succeeded.")
            compare_value(final, 201, name="the counter another connection reads afterwards",
                          hint="commit the attempt that succeeded.")
            expect(status == "IDLE", f"after {call}, the connection is left {status}, not IDLE.",
                   hint="use `with conn.transaction():` for each attempt: it commits or rolls back.")
            if hidden:
                result, error, levels, status, final = scenario(10, 3)
                call = "run_with_retries(conn, work, 3) when every attempt meets a concurrent update"
                expect(isinstance(error, psycopg.errors.SerializationFailure),
                       f"{call} {'raised ' + _describe(error) if error else 'returned ' + repr(result)}; it should "
                       "give up and raise the last SerializationFailure.",
                       hint="after the last attempt, re-raise the error (`raise`).")
                expect(len(levels) == 3, f"{call} called work {len(levels)} time(s); expected exactly 3.")
                expect(status == "IDLE", f"after {call}, the connection is left {status}, not IDLE.")
                compare_value(final, 300, name="the counter after the failed attempts",
                              hint="a failed attempt must leave nothing behind.")
                result, error, levels, status, final = scenario(4, None)
                call = "run_with_retries(conn, work) (default attempts) with four failing attempts"
                expect(error is None and len(levels) == 5,
                       f"{call} {'raised ' + _describe(error) if error else 'returned'} after {len(levels)} call(s); "
                       "with attempts=5 by default, the fifth attempt should succeed.",
                       hint="attempts is the total number of tries, 5 unless the caller says otherwise.")
                result, error, levels, status, final = scenario(0, 5, boom=True)
                call = "run_with_retries(conn, work, 5) when work raises ValueError"
                expect(isinstance(error, ValueError),
                       f"{call} {'raised ' + _describe(error) if error else 'returned ' + repr(result)}; the "
                       "ValueError should reach the caller.", hint="retry only on SerializationFailure.")
                expect(len(levels) == 1, f"{call} called work {len(levels)} times; other errors must not be retried.")
                compare_value(final, 0, name="the counter after work raised ValueError",
                              hint="the failed transaction must be rolled back.")
                expect(status == "IDLE", f"after {call}, the connection is left {status}, not IDLE.")
        finally:
            other.execute(f"DROP TABLE IF EXISTS {table}")


# --------------------------------------------------------------------------- 02.5

SEARCH_VECTOR = ("setweight(to_tsvector('english', p.title), 'A') || "
                 "setweight(to_tsvector('english', coalesce(p.body, '')), 'B')")
SEARCH_REF = f"""
SELECT p.post_id, p.title, ts_rank({SEARCH_VECTOR}, websearch_to_tsquery('english', %(q)s)) AS rank
FROM posts p
WHERE p.published_at IS NOT NULL AND {SEARCH_VECTOR} @@ websearch_to_tsquery('english', %(q)s)
ORDER BY rank DESC, p.post_id
LIMIT 10
"""


@exercise("02.5", "Ranked full-text search", answer="search_sql")
def search(sql: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    sql = _sql_text(sql, "search_sql")
    queries = ["redis caching", "window functions"]
    if hidden:
        queries += ['"read replicas"', "indexes -mysql", "O'Brien", "xyzzy", "caching or backups"]
    with _connect(workspace) as conn:
        try:
            if hidden:
                conn.execute("INSERT INTO posts (post_id, author_id, kind, title, body, published_at, word_count, "
                             "views) VALUES (%s, 1, 'article', %s, %s, now(), 12, 0), (%s, 1, 'article', %s, %s, NULL, "
                             "12, 0)",
                             (SCRATCH_ID, "Redis caching, caching and more caching", "Redis caching explained.",
                              SCRATCH_ID + 1, "Redis caching draft", "Redis caching, unpublished."))
            for q in queries:
                what = f"Your query with q = {q!r}"
                got = _run_answer_sql(conn, sql, {"q": q}, what)
                expected = run_sql(conn, SEARCH_REF, {"q": q}, what="The reference query")
                compare_rows(got, expected, ordered=True, what=what,
                             order_hint="order by rank, highest first, then by post_id.")
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 02.6

WIRELESS_REF = """
SELECT product_id, name, (attributes ->> 'ram_gb')::int AS ram_gb, price
FROM products
WHERE attributes @> '{"wireless": true}' AND (attributes ->> 'ram_gb')::int >= %(min_ram)s
ORDER BY ram_gb DESC, price, product_id
"""


@exercise("02.6", "Filter on JSONB attributes", answer="wireless_sql")
def wireless(sql: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    from psycopg.types.json import Jsonb

    sql = _sql_text(sql, "wireless_sql")
    sizes = [16, 32]
    if hidden:
        sizes += [8, 64, 1000]
    with _connect(workspace) as conn:
        try:
            if hidden:
                rows = [({"wireless": True, "ram_gb": 128, "color": "red"}), ({"wireless": False, "ram_gb": 256}),
                        None, ({"ram_gb": 512}), ({"wireless": True, "ram_gb": 64, "color": "blue"})]
                _executemany(conn, "INSERT INTO products (product_id, sku, name, category_id, price, stock, created_at, "
                                 "attributes, is_discontinued) VALUES (%s, %s, %s, 7, %s, 1, now(), %s, false)",
                                 [(SCRATCH_ID + i, f"SKU-CHK-J{i}", f"Check laptop {i}", Decimal("999.00") + i,
                                   None if a is None else Jsonb(a)) for i, a in enumerate(rows)])
                sizes.insert(0, 100)
            for min_ram in sizes:
                what = f"Your query with min_ram = {min_ram}"
                got = _run_answer_sql(conn, sql, {"min_ram": min_ram}, what)
                expected = run_sql(conn, WIRELESS_REF, {"min_ram": min_ram}, what="The reference query")
                compare_rows(got, expected, ordered=True, what=what,
                             order_hint="order by ram_gb (largest first), then price, then product_id.")
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 02.7

TAGGED_REF = """
SELECT p.post_id, p.title, array_agg(t.name ORDER BY t.name)::text[] AS tags
FROM posts p
JOIN post_tags pt ON pt.post_id = p.post_id
JOIN tags t ON t.tag_id = pt.tag_id
WHERE p.published_at IS NOT NULL
GROUP BY p.post_id, p.title
HAVING array_agg(t.name)::text[] @> %(tags)s::text[]
ORDER BY p.post_id
"""


@exercise("02.7", "Posts with all of these tags (arrays)", answer="tagged_sql")
def tagged(sql: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    sql = _sql_text(sql, "tagged_sql")
    cases = [["postgresql", "performance"], ["redis"]]
    if hidden:
        cases = [["json", "indexes", "advanced"], ["postgresql", "no-such-tag"], ["full-text-search"]] + cases
    with _connect(workspace) as conn:
        try:
            _needs_column(conn, "posts", "tags", "section 7")
            if hidden:
                ids = dict(conn.execute("SELECT name, tag_id FROM tags").fetchall())
                for offset, published, names in ((0, True, ["full-text-search", "postgresql", "performance"]),
                                                 (1, False, ["postgresql", "performance", "redis"])):
                    conn.execute("INSERT INTO posts (post_id, author_id, kind, title, body, published_at, word_count, "
                                 "views, tags) VALUES (%s, 1, 'article', %s, 'Body.', CASE WHEN %s THEN now() END, 1, 0, "
                                 "%s)", (SCRATCH_ID + offset, f"Check post {offset}", published, sorted(names)))
                    _executemany(conn, "INSERT INTO post_tags (post_id, tag_id) VALUES (%s, %s)",
                                     [(SCRATCH_ID + offset, ids[n]) for n in names])
            for tags in cases:
                what = f"Your query with tags = {tags}"
                got = _run_answer_sql(conn, sql, {"tags": tags}, what)
                expected = run_sql(conn, TAGGED_REF, {"tags": tags}, what="The reference query")
                compare_rows(got, expected, ordered=True, what=what, order_hint="order by post_id.")
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 02.8

TOP_PRODUCTS_REF = """
WITH units AS (
    SELECT c.name AS category, p.name AS product, sum(oi.quantity) AS units
    FROM order_items oi
    JOIN orders o ON o.order_id = oi.order_id
    JOIN products p ON p.product_id = oi.product_id
    JOIN categories c ON c.category_id = p.category_id
    WHERE o.status NOT IN ('cancelled', 'refunded')
    GROUP BY c.name, p.product_id, p.name
), ranked AS (
    SELECT category, product, units, rank() OVER (PARTITION BY category ORDER BY units DESC) AS rnk
    FROM units
)
SELECT category, product, units, rnk FROM ranked WHERE rnk <= 3 ORDER BY category, rnk, product
"""

_UNITS_IN = """
SELECT p.product_id, sum(oi.quantity) AS units
FROM order_items oi JOIN orders o ON o.order_id = oi.order_id JOIN products p ON p.product_id = oi.product_id
WHERE o.status NOT IN ('cancelled', 'refunded') AND p.category_id = %s
GROUP BY p.product_id ORDER BY units DESC, p.product_id
"""


def _add_order(conn: Any, order_id: int, status: str, items: list[tuple[int, int]],
               ordered_at: str = "2025-06-15 12:00+00") -> None:
    conn.execute("INSERT INTO orders (order_id, user_id, ordered_at, status, shipping_country) "
                 "VALUES (%s, 1, %s, %s, 'US')", (order_id, ordered_at, status))
    _executemany(conn, "INSERT INTO order_items (order_item_id, order_id, product_id, quantity, unit_price) "
                     "VALUES (%s, %s, %s, %s, 10.00)",
                     [(order_id * 10 + i, order_id, p, q) for i, (p, q) in enumerate(items)])


@exercise("02.8", "Best sellers per category (window functions)", answer="top_products_sql")
def top_products(sql: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    sql = _sql_text(sql, "top_products_sql")
    with _connect(workspace) as conn:
        try:
            scenarios = ["as loaded"]
            if hidden:
                scenarios += ["with a tie for second place, a new best seller and a big cancelled order"]
            for scenario in scenarios:
                if scenario != "as loaded":
                    laptops = _scalar(conn, "SELECT category_id FROM categories WHERE name = 'Laptops'")
                    ranked = conn.execute(_UNITS_IN, (laptops,)).fetchall()
                    phones = _scalar(conn, "SELECT category_id FROM categories WHERE name = 'Phones'")
                    phone_ranked = conn.execute(_UNITS_IN, (phones,)).fetchall()
                    tie_product, tie_units = ranked[4]
                    _add_order(conn, SCRATCH_ID, "delivered",
                               [(tie_product, ranked[1][1] - tie_units), (phone_ranked[-1][0], phone_ranked[0][1] + 50)])
                    _add_order(conn, SCRATCH_ID + 1, "cancelled", [(phone_ranked[-2][0], 100_000)])
                what = f"Your query ({scenario})"
                got = _run_answer_sql(conn, sql, None, what)
                expected = run_sql(conn, TOP_PRODUCTS_REF, what="The reference query")
                try:
                    compare_rows(got, expected, ordered=True, what=what,
                                 order_hint="order by category, then rnk, then product.")
                except ExerciseFailed as exc:
                    hint = exc.hint
                    if len(got) != len(expected):
                        hint = ("with a tie, RANK() gives both products the same rank and skips the next one "
                                "(1, 2, 2, 4); ROW_NUMBER() and DENSE_RANK() do not.")
                    fail(exc.message, hint=hint)
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 02.9

CATEGORY_REVENUE_REF = """
WITH RECURSIVE tree AS (
    SELECT category_id, category_id AS top_id FROM categories WHERE parent_id IS NULL
    UNION ALL
    SELECT c.category_id, t.top_id FROM categories c JOIN tree t ON c.parent_id = t.category_id
), revenue AS (
    SELECT p.category_id, sum(oi.quantity * oi.unit_price) AS revenue
    FROM order_items oi
    JOIN orders o ON o.order_id = oi.order_id
    JOIN products p ON p.product_id = oi.product_id
    WHERE o.status NOT IN ('cancelled', 'refunded')
    GROUP BY p.category_id
)
SELECT top.name AS top_category, coalesce(sum(r.revenue), 0) AS revenue
FROM tree t
JOIN categories top ON top.category_id = t.top_id
LEFT JOIN revenue r ON r.category_id = t.category_id
GROUP BY top.name
ORDER BY revenue DESC, top_category
"""


@exercise("02.9", "Revenue by top-level category (recursive CTE)", answer="category_revenue_sql")
def category_revenue(sql: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    sql = _sql_text(sql, "category_revenue_sql")
    with _connect(workspace) as conn:
        try:
            scenarios = ["as loaded"]
            if hidden:
                scenarios.append("with a deeper category tree and an empty top-level category")
            for scenario in scenarios:
                if scenario != "as loaded":
                    databases = _scalar(conn, "SELECT category_id FROM categories WHERE name = 'Databases'")
                    cameras = _scalar(conn, "SELECT category_id FROM categories WHERE name = 'Cameras'")
                    conn.execute("INSERT INTO categories (category_id, name, parent_id) VALUES "
                                 "(%s, 'Database Internals', %s), (%s, 'Storage Engines', %s), (%s, 'Gift Cards', NULL)",
                                 (SCRATCH_ID, databases, SCRATCH_ID + 1, SCRATCH_ID, SCRATCH_ID + 2))
                    conn.execute("UPDATE products SET category_id = %s WHERE category_id = %s",
                                 (SCRATCH_ID + 1, cameras))
                what = f"Your query ({scenario})"
                got = _run_answer_sql(conn, sql, None, what)
                expected = run_sql(conn, CATEGORY_REVENUE_REF, what="The reference query")
                try:
                    compare_rows(got, expected, ordered=True, what=what,
                                 order_hint="order by revenue, largest first, then by top_category.")
                except ExerciseFailed as exc:
                    hint = exc.hint
                    if scenario != "as loaded":
                        hint = ("here a category sits three levels below its top-level category, and one top-level "
                                "category has no products at all: walk the tree with WITH RECURSIVE (any depth) "
                                "and keep every top-level category (LEFT JOIN, coalesce to 0).")
                    fail(exc.message, hint=hint)
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 02.10

MONTHLY_REF = """
WITH months AS (
    SELECT generate_series(make_date(%(year)s, 1, 1), make_date(%(year)s, 12, 1), interval '1 month')::date AS month
), counted AS (
    SELECT o.order_id, date_trunc('month', o.ordered_at AT TIME ZONE 'UTC')::date AS month,
           coalesce(sum(oi.quantity * oi.unit_price), 0) AS revenue
    FROM orders o LEFT JOIN order_items oi ON oi.order_id = o.order_id
    WHERE o.status NOT IN ('cancelled', 'refunded')
      AND o.ordered_at >= make_timestamptz(%(year)s, 1, 1, 0, 0, 0, 'UTC')
      AND o.ordered_at < make_timestamptz(%(year)s + 1, 1, 1, 0, 0, 0, 'UTC')
    GROUP BY o.order_id
)
SELECT m.month, count(c.order_id) AS orders, coalesce(sum(c.revenue), 0) AS revenue
FROM months m LEFT JOIN counted c ON c.month = m.month
GROUP BY m.month
ORDER BY m.month
"""


UTC_MONTH_HINT = ("months are UTC months whatever the session's time zone: take the UTC wall-clock time first, "
                  "date_trunc('month', ordered_at AT TIME ZONE 'UTC')::date. (date_trunc('month', ordered_at, 'UTC') "
                  "returns a timestamptz, and ::date converts it back in the session's zone: in New York, 1 January "
                  "00:00 UTC is still 31 December.) Compare with UTC boundaries too.")


@exercise("02.10", "A monthly report with DATE_TRUNC", answer="monthly_sql")
def monthly(sql: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    sql = _sql_text(sql, "monthly_sql")
    scenarios = [("UTC", 2025, False)]
    if hidden:
        scenarios += [("UTC", 2021, False), ("Pacific/Auckland", 2025, True), ("America/New_York", 2024, True)]
    for timezone, year, add_edges in scenarios:
        with _connect(workspace, timezone=timezone) as conn:
            try:
                if add_edges:  # orders a few minutes before a UTC month ends: in the next month elsewhere
                    _add_order(conn, SCRATCH_ID, "paid", [(1, 2)], ordered_at=f"{year}-01-31 23:50+00")
                    _add_order(conn, SCRATCH_ID + 1, "delivered", [], ordered_at=f"{year}-12-31 23:59+00")
                    _add_order(conn, SCRATCH_ID + 2, "refunded", [(1, 1)], ordered_at=f"{year}-03-01 00:10+00")
                what = f"Your query for year {year}" + ("" if timezone == "UTC" else f" (session time zone {timezone})")
                got = _run_answer_sql(conn, sql, {"year": year}, what)
                if got.rows and isinstance(got.rows[0][0], dt.datetime):
                    fail(f"{what}: month is a timestamp ({got.rows[0][0]!r}); expected a date such as "
                         f"{dt.date(year, 1, 1)!r}.",
                         hint="cast it: date_trunc('month', ordered_at AT TIME ZONE 'UTC')::date.")
                not_first = next((r[0] for r in got.rows if isinstance(r[0], dt.date) and r[0].day != 1), None)
                if not_first is not None:
                    fail(f"{what}: a month is {not_first.isoformat()}, not the first day of a month.",
                         hint=UTC_MONTH_HINT)
                expected = run_sql(conn, MONTHLY_REF, {"year": year}, what="The reference query")
                try:
                    compare_rows(got, expected, ordered=True, what=what, order_hint="order by month.")
                except ExerciseFailed as exc:
                    hint = exc.hint
                    if len(got) != 12:
                        hint = "one row per month of the year, even a month without orders: start from " \
                               "generate_series(...) and LEFT JOIN the orders to it."
                    elif timezone != "UTC":
                        hint = UTC_MONTH_HINT
                    fail(exc.message, hint=hint)
            finally:
                conn.rollback()


# --------------------------------------------------------------------------- 02.11

ORDER_HISTORY_SQL = "SELECT order_id, ordered_at, status FROM orders WHERE user_id = %s ORDER BY ordered_at DESC LIMIT 10"


def plan_nodes(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, depth first."""
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


def explain_json(conn: Any, query: str, params: Any = None) -> dict:
    """The top plan node of ``EXPLAIN (FORMAT JSON) query``."""
    return conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()[0][0]["Plan"]


def describe_plan(plan: dict) -> str:
    parts = []
    for node in plan_nodes(plan):
        name = node["Node Type"]
        if node.get("Index Name"):
            name += f" using {node['Index Name']}"
        elif node.get("Relation Name"):
            name += f" on {node['Relation Name']}"
        parts.append(name)
    return " > ".join(parts)


@exercise("02.11", "Find and fix: a slow order history", answer="order_history_index_sql")
def order_history_index(sql: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    from psycopg import sql as pgsql

    sql = _sql_text(sql, "order_history_index_sql")
    expect(re.match(r"\s*create\s+(unique\s+)?index\b", sql, re.I) is not None,
           "`order_history_index_sql` should be one CREATE INDEX statement.",
           hint="CREATE INDEX name ON table (columns ...)")
    sql = re.sub(r"\bconcurrently\b", "", sql, count=1, flags=re.I)  # the check runs it inside a transaction
    with _connect(workspace) as conn:
        try:
            existing = conn.execute(
                "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indrelid = 'orders'::regclass "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)").fetchall()
            for schema, name in existing:  # start from the table as loaded (undone at the end)
                conn.execute(pgsql.SQL("DROP INDEX {}").format(pgsql.Identifier(schema, name)))
            try:
                conn.execute(sql)
            except Exception as exc:  # noqa: BLE001 - the database's reason is the feedback
                fail(f"your CREATE INDEX failed in the database: {_describe(exc)}.",
                     hint="run it on its own in a cell to see the full error.")
            created = _scalar(conn, "SELECT count(*) FROM pg_index i WHERE i.indrelid = 'orders'::regclass AND NOT "
                                    "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)")
            expect(created >= 1, "your statement created no index on the orders table.",
                   hint="the slow query reads orders: CREATE INDEX ... ON orders (...)")
            heavy = _scalar(conn, "SELECT user_id FROM orders GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1")
            users = [heavy]
            if hidden:
                light = _scalar(conn, "SELECT user_id FROM orders GROUP BY user_id HAVING count(*) = 2 "
                                      "ORDER BY user_id LIMIT 1")
                second = _scalar(conn, "SELECT user_id FROM orders GROUP BY user_id ORDER BY count(*) DESC, "
                                       "user_id LIMIT 1 OFFSET 1")
                nobody = _scalar(conn, "SELECT min(user_id) FROM users u WHERE NOT EXISTS "
                                       "(SELECT 1 FROM orders o WHERE o.user_id = u.user_id)")
                users += [second, light, nobody]
            for user_id in users:
                plan = explain_json(conn, ORDER_HISTORY_SQL, (user_id,))
                nodes = plan_nodes(plan)
                shown = describe_plan(plan)
                expect(not any(n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "orders" for n in nodes),
                       f"for user {user_id} the plan still reads the whole orders table: {shown}.",
                       hint="index the column the WHERE clause filters on.")
                if user_id in (heavy, users[1] if hidden else heavy):
                    expect(not any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes),
                           f"for user {user_id} (one of the busiest customers) the plan still sorts the orders: "
                           f"{shown}.",
                           hint="an index on (user_id, ordered_at) hands the rows over already in date order, so the "
                                "LIMIT can stop after 10 of them.")
        finally:
            conn.rollback()


# --------------------------------------------------------------------------- 02.12

_LOG_FUNCTION = """
CREATE OR REPLACE FUNCTION ch02_log_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ch02_statement_log VALUES (current_query());
    RETURN NULL;
END $$
"""


@exercise("02.12", "A COPY loader", answer="copy_rows")
def copy_rows(func: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    from psycopg import sql as pgsql

    _callable(func, "copy_rows", "copy_rows(conn, table, columns, rows)")
    tz = dt.timezone.utc
    cases: list[tuple[str, list[tuple[str, str]], list[tuple]]] = [
        ("copy_check", [("id", "int"), ("note", "text"), ("score", "numeric(8,2)")],
         [(1, "plain", Decimal("1.50")), (2, "tab\there, new\nline, back\\slash", None),
          (3, None, Decimal("-2.25")), (4, "O'Brien said \"hi\" 🐘", Decimal("0.00"))]),
    ]
    if hidden:
        many = [(i, f"row {i}" if i % 7 else None, f"user;{i}", dt.datetime(2026, 1, 1, tzinfo=tz) +
                 dt.timedelta(minutes=i)) for i in range(2500)]
        cases += [('Import "Log" 2026', [("id", "int"), ("Note", "text"), ("user", "text"), ("at", "timestamptz")],
                   many),
                  ("copy_check_empty", [("id", "int"), ("note", "text")], [])]
    for table, columns, rows in cases:
        names = [c for c, _ in columns]
        ident = pgsql.Identifier(table)
        what = f"copy_rows(conn, {table!r}, {names}, <{len(rows)} rows>)"
        drop = pgsql.SQL("DROP TABLE IF EXISTS {}").format(ident)
        with _connect(workspace) as conn:
            drop_text = drop.as_string(conn)
        with _cleanup(workspace, drop_text, "DROP TABLE IF EXISTS ch02_statement_log",
                      "DROP FUNCTION IF EXISTS ch02_log_statement()"), _connect(workspace) as conn:
            try:
                conn.execute(drop)
                # an extra first column with a default: a COPY that does not name its columns fails
                conn.execute(pgsql.SQL("CREATE TABLE {} (loaded_at timestamptz NOT NULL DEFAULT now(), {})").format(
                    ident, pgsql.SQL(", ").join(pgsql.SQL("{} {}").format(pgsql.Identifier(c), pgsql.SQL(t))
                                                for c, t in columns)))
                conn.execute("CREATE TABLE IF NOT EXISTS ch02_statement_log (statement text)")
                conn.execute(_LOG_FUNCTION)
                conn.execute(pgsql.SQL("CREATE TRIGGER log_statements AFTER INSERT ON {} FOR EACH STATEMENT "
                                       "EXECUTE FUNCTION ch02_log_statement()").format(ident))
                conn.execute("DELETE FROM ch02_statement_log")
                try:
                    count = func(conn, table, names, rows)
                except ExerciseFailed:
                    raise
                except Exception as exc:  # noqa: BLE001 - the learner's code failed: say how
                    fail(f"{what} raised {_describe(exc)}.",
                         hint="compose the statement with psycopg.sql: sql.Identifier for the table and for each "
                              "column, and list the columns: COPY {} ({}) FROM STDIN.")
                compare_value(count, len(rows), name=f"the count {what} returned",
                              hint="return the number of rows loaded (cur.rowcount after the COPY block, or "
                                   "len(rows)).")
                got = conn.execute(pgsql.SQL("SELECT {} FROM {} ORDER BY 1").format(
                    pgsql.SQL(", ").join(map(pgsql.Identifier, names)), ident)).fetchall()
                compare_rows(Rows(names, got), Rows(names, [tuple(r) for r in sorted(rows, key=lambda r: r[0])]),
                             ordered=True, what=f"The table after {what}")
                statements = [s for (s,) in conn.execute("SELECT statement FROM ch02_statement_log")]
                inserts = [s for s in statements if not s.lstrip().upper().startswith("COPY")]
                expect(not inserts, f"{what} loaded the rows with {len(inserts)} INSERT statement(s) such as "
                                    f"{inserts[0][:60]!r}, not with COPY." if inserts else "",
                       hint="use `with cur.copy(...) as copy:` and copy.write_row(row) for each row.")
                expect(bool(statements) or not rows, f"{what} stored the rows without a COPY statement.")
            finally:
                conn.rollback()
