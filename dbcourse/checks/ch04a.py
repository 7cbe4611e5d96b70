"""Checks for chapter 04a, "ORMs: SQLAlchemy 2, Alembic and Pydantic".

Every check runs on the engine the notebook passes in (SQLite, PostgreSQL or MySQL, whichever
``backend`` the notebook uses), recomputes the expected result from the tables with plain SQL,
and changes data only inside a transaction that it rolls back (or in a scratch table that it
drops), so checks can run in any order and as often as the learner likes.

The blog tables the notebook defines are ``users(id, email, name, ...)``,
``posts(id, author_id, title, body, published, views, ...)``, ``tags(id, name)`` and
``post_tags(post_id, tag_id)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect as pyinspect
import math
from typing import Any, Callable, Iterator

from .compare import Rows, compare_rows, compare_value
from .core import Chapter, ExerciseFailed, expect, fail, not_answered

chapter = Chapter("04a", "ORMs: SQLAlchemy 2, Alembic and Pydantic")
exercise = chapter.exercise
progress = chapter.progress


# --------------------------------------------------------------------------- helpers

class _Recorder:
    """Record the statements an engine sends (verb, SQL, parameters, rows affected)."""

    def __init__(self, engine: Any):
        self.engine = getattr(engine, "sync_engine", engine)
        self.items: list[dict[str, Any]] = []

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        words = statement.lstrip().split(None, 1)
        self.items.append({"verb": words[0].upper() if words else "", "sql": " ".join(statement.split()),
                           "params": parameters, "many": executemany,
                           "rowcount": getattr(cursor, "rowcount", -1)})

    def __enter__(self) -> "_Recorder":
        from sqlalchemy import event

        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: Any) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "after_cursor_execute", self._after)

    def verbs(self, *verbs: str, table: str | None = None) -> list[dict[str, Any]]:
        found = [i for i in self.items if i["verb"] in verbs]
        if table is not None:
            found = [i for i in found if table in i["sql"].lower()]
        return found


@contextlib.contextmanager
def _scratch(engine: Any) -> Iterator[tuple[Any, Any]]:
    """A connection in a transaction that is always rolled back, and an ORM session on it.

    ``join_transaction_mode="rollback_only"``: if the learner's code commits, the outer
    transaction stays open, so the rollback at the end still undoes everything."""
    from sqlalchemy.orm import Session

    with engine.connect() as conn:
        trans = conn.begin()
        session = Session(bind=conn, join_transaction_mode="rollback_only")
        try:
            yield conn, session
        finally:
            session.close()
            if trans.is_active:
                trans.rollback()


def _rows(conn: Any, sql: str, params: dict | None = None) -> list[tuple]:
    from sqlalchemy import text

    return [tuple(r) for r in conn.execute(text(sql), params or {})]


def _scalars(conn: Any, sql: str, params: dict | None = None) -> list[Any]:
    return [r[0] for r in _rows(conn, sql, params)]


def _add_user(conn: Any, email: str, name: str) -> int:
    from sqlalchemy import text

    conn.execute(text("INSERT INTO users (email, name) VALUES (:email, :name)"), {"email": email, "name": name})
    return conn.execute(text("SELECT id FROM users WHERE email = :email"), {"email": email}).scalar_one()


def _add_post(conn: Any, author_id: int, title: str, *, published: bool = True, views: int = 0,
              tags: tuple[str, ...] = ()) -> int:
    from sqlalchemy import text

    conn.execute(text("INSERT INTO posts (author_id, title, body, published, views) "
                      "VALUES (:a, :t, '', :p, :v)"), {"a": author_id, "t": title, "p": published, "v": views})
    post_id = conn.execute(text("SELECT MAX(id) FROM posts WHERE title = :t"), {"t": title}).scalar_one()
    for tag in tags:
        tag_id = conn.execute(text("SELECT id FROM tags WHERE name = :n"), {"n": tag}).scalar_one_or_none()
        if tag_id is None:
            conn.execute(text("INSERT INTO tags (name) VALUES (:n)"), {"n": tag})
            tag_id = conn.execute(text("SELECT id FROM tags WHERE name = :n"), {"n": tag}).scalar_one()
        conn.execute(text("INSERT INTO post_tags (post_id, tag_id) VALUES (:p, :t)"), {"p": post_id, "t": tag_id})
    return post_id


def _result_rows(result: Any) -> Rows:
    """A SQLAlchemy result as :class:`Rows` (built directly: fetch_rows would import pandas)."""
    return Rows([str(k) for k in result.keys()], [tuple(r) for r in result.fetchall()])


def _require_tables(engine: Any, *tables: str) -> None:
    from sqlalchemy import inspect

    present = set(inspect(engine).get_table_names())
    missing = [t for t in tables if t not in present]
    expect(not missing, f"the table(s) {missing} do not exist in your database.",
           hint="run the cells of sections 2 and 3 (they create the blog tables and fill them), then this check.")


def _is_db_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    return isinstance(exc, DBAPIError)


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}"


def _call(what: str, func: Callable[..., Any], *args: Any, engine: Any = None) -> Any:
    """Call the learner's function; a database error becomes feedback that names the call."""
    try:
        return func(*args)
    except ExerciseFailed:
        raise
    except NotImplementedError:
        raise
    except Exception as exc:
        if _is_db_error(exc):
            where = f" on {engine.dialect.name}" if engine is not None else ""
            fail(f"{what} failed in the database{where}: {_db_message(exc)}",
                 hint="run your code on its own to see the full error; the SQL must work on SQLite, "
                      "PostgreSQL and MySQL.")
        raise


def _callable(value: Any, name: str) -> None:
    not_answered(value, name)
    expect(callable(value), f"`{name}` should be a function, not {type(value).__name__}.")


def _expect_list(got: Any, message: str, hint: str | None = None) -> None:
    """Fail with `message` unless `got` is a list or tuple.

    A learner's function may return an unconsumed ``Result``: close it before failing, or its
    open cursor stays on the pooled connection (on SQLite a later DROP TABLE on that connection
    then fails with "database table is locked")."""
    if isinstance(got, (list, tuple)):
        return
    close = getattr(got, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # closing is best effort; the feedback below is what matters
            pass
    fail(message, hint=hint)


# --------------------------------------------------------------------------- 04a.1 models

def _column(table: Any, name: str, owner: str) -> Any:
    expect(name in table.c, f"`{owner}` has no column `{name}` (its columns: {list(table.c.keys())}).",
           hint="declare it as a class attribute with `Mapped[...] = mapped_column(...)`; the attribute name "
                "is the column name.")
    return table.c[name]


def _is_unique(table: Any, column: Any) -> bool:
    from sqlalchemy import UniqueConstraint

    if column.unique or column.primary_key:
        return True
    if any(isinstance(c, UniqueConstraint) and list(c.columns.keys()) == [column.name] for c in table.constraints):
        return True
    return any(i.unique and list(i.columns.keys()) == [column.name] for i in table.indexes)


def _check_string(column: Any, owner: str, length: int) -> None:
    from sqlalchemy import String

    expect(isinstance(column.type, String) and column.type.length == length,
           f"`{owner}.{column.name}` should be a String({length}), not {column.type!r}.",
           hint=f"mapped_column(String({length}), ...)")


def _relationship(cls: Any, name: str, target: Any) -> Any:
    from sqlalchemy import inspect

    mapper = inspect(cls)
    rel = mapper.relationships.get(name)
    expect(rel is not None, f"`{cls.__name__}` has no relationship `{name}`.",
           hint=f"{name}: Mapped[...] = relationship(back_populates=...)")
    expect(rel.mapper.class_ is target, f"`{cls.__name__}.{name}` should lead to `{target.__name__}`, "
                                        f"not `{rel.mapper.class_.__name__}`.")
    return rel


@exercise("04a.1", "Shelves and books", answer="Shelf")
def library_models(shelf_cls: Any, book_cls: Any, engine: Any, *, hidden: bool = False) -> None:
    from sqlalchemy import DateTime, Integer, func, inspect, select
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    for cls, name in ((shelf_cls, "Shelf"), (book_cls, "Book")):
        not_answered(cls, name)
        expect(isinstance(cls, type) and hasattr(cls, "__table__"),
               f"`{name}` should be a mapped class (a subclass of LibraryBase with __tablename__).")
    shelves, books = shelf_cls.__table__, book_cls.__table__
    expect(shelves.name == "shelves", f"`Shelf` maps the table {shelves.name!r}; expected 'shelves'.",
           hint='__tablename__ = "shelves"')
    expect(books.name == "books", f"`Book` maps the table {books.name!r}; expected 'books'.",
           hint='__tablename__ = "books"')

    sid = _column(shelves, "id", "Shelf")
    expect(sid.primary_key and isinstance(sid.type, Integer), "`Shelf.id` should be the integer primary key.")
    sname = _column(shelves, "name", "Shelf")
    _check_string(sname, "Shelf", 50)
    expect(not sname.nullable, "`Shelf.name` should be NOT NULL.", hint="Mapped[str] (not Mapped[str | None])")
    expect(_is_unique(shelves, sname), "`Shelf.name` should be unique.", hint="mapped_column(..., unique=True)")

    bid = _column(books, "id", "Book")
    expect(bid.primary_key and isinstance(bid.type, Integer), "`Book.id` should be the integer primary key.")
    fk = _column(books, "shelf_id", "Book")
    targets = {f.target_fullname for f in fk.foreign_keys}
    expect(targets == {"shelves.id"}, f"`Book.shelf_id` should be a foreign key to shelves.id (it points to "
                                      f"{sorted(targets) or 'nothing'}).", hint='mapped_column(ForeignKey("shelves.id"))')
    expect(not fk.nullable, "`Book.shelf_id` should be NOT NULL: a book always stands on a shelf.")
    title = _column(books, "title", "Book")
    _check_string(title, "Book", 200)
    expect(not title.nullable, "`Book.title` should be NOT NULL.")
    isbn = _column(books, "isbn", "Book")
    _check_string(isbn, "Book", 13)
    expect(not isbn.nullable, "`Book.isbn` should be NOT NULL.")
    expect(_is_unique(books, isbn), "`Book.isbn` should be unique.")
    added = _column(books, "added_at", "Book")
    expect(isinstance(added.type, DateTime) and added.type.timezone,
           "`Book.added_at` should be a timezone-aware DateTime.", hint="mapped_column(DateTime(timezone=True), ...)")
    expect(added.server_default is not None,
           "`Book.added_at` should be filled by the database: give it a server_default.",
           hint="server_default=func.now() (a Python `default=` is set by the ORM, not by the database)")
    expect(not added.nullable, "`Book.added_at` should be NOT NULL.")

    books_rel = _relationship(shelf_cls, "books", book_cls)
    shelf_rel = _relationship(book_cls, "shelf", shelf_cls)
    expect(books_rel.uselist, "`Shelf.books` should be a list: Mapped[list[\"Book\"]].")
    expect(books_rel.back_populates == "shelf" and shelf_rel.back_populates == "books",
           "`Shelf.books` and `Book.shelf` should name each other with back_populates.",
           hint='books: ... relationship(back_populates="shelf") and shelf: ... relationship(back_populates="books")')
    expect(books_rel.cascade.delete and books_rel.cascade.delete_orphan,
           f"`Shelf.books` has the cascade {sorted(books_rel.cascade)}; it should delete a shelf's books with "
           "it and delete a book removed from the list.", hint='relationship(..., cascade="all, delete-orphan")')

    metadata = shelves.metadata
    tables = [shelves, books]
    metadata.drop_all(engine, tables=tables)
    metadata.create_all(engine, tables=tables)
    try:
        with Session(engine) as session:
            shelf = shelf_cls(name="Databases")
            first = book_cls(title="Designing Data-Intensive Applications", isbn="9781449373320")
            second = book_cls(title="SQL Antipatterns", isbn="9781934356555")
            third = book_cls(title="Database Internals", isbn="9781492040347")
            shelf.books.extend([first, second, third])
            expect(first.shelf is shelf, "after `shelf.books.append(book)`, `book.shelf` is not the shelf.",
                   hint="back_populates keeps both ends in step in memory")
            session.add(shelf)
            session.commit()
            count_books = select(func.count()).select_from(books)
            expect(session.scalar(count_books) == 3, "saving a shelf with 3 books did not store 3 books.",
                   hint="the default save-update cascade adds the books with the shelf")
            expect(session.scalar(select(func.count(books.c.added_at))) == 3,
                   "`added_at` is NULL after saving: the database did not fill it.")
            shelf.books.remove(second)
            session.commit()
            expect(session.scalar(count_books) == 2,
                   "a book removed from `shelf.books` is still in the table (or the commit failed).",
                   hint='cascade="all, delete-orphan" deletes orphans')
            session.delete(shelf)
            session.commit()
            expect(session.scalar(count_books) == 0, "deleting the shelf left its books in the table.",
                   hint='cascade="all, ..." includes delete')

        with Session(engine) as session:
            shelf = shelf_cls(name="Duplicates")
            shelf.books.extend([book_cls(title="One", isbn="1111111111111"),
                                book_cls(title="Two", isbn="1111111111111")])
            session.add(shelf)
            try:
                session.commit()
                fail("two books with the same ISBN were both saved.", hint="unique=True on isbn")
            except DBAPIError:
                session.rollback()

        with Session(engine) as session:
            shelf = shelf_cls(name="Untitled")
            shelf.books.append(book_cls(title=None, isbn="2222222222222"))
            session.add(shelf)
            try:
                session.commit()
                fail("a book without a title was saved.", hint="Mapped[str] makes the column NOT NULL")
            except DBAPIError:
                session.rollback()

        if hidden:
            inspector = inspect(engine)
            reflected = {c["name"]: c for c in inspector.get_columns("books")}
            expect(not reflected["isbn"]["nullable"] and not reflected["title"]["nullable"],
                   "in the database, books.isbn and books.title accept NULL.")
            fks = inspector.get_foreign_keys("books")
            expect(any(f["referred_table"] == "shelves" for f in fks), "the database has no foreign key books -> shelves.")
            with Session(engine) as session:
                session.add_all([shelf_cls(name="Same"), shelf_cls(name="Same")])
                try:
                    session.commit()
                    fail("two shelves with the same name were both saved.", hint="unique=True on Shelf.name")
                except DBAPIError:
                    session.rollback()
    finally:
        metadata.drop_all(engine, tables=tables)


# --------------------------------------------------------------------------- 04a.2 select()

PUBLISHED_TITLES = """
SELECT p.title FROM posts p JOIN users u ON u.id = p.author_id
WHERE u.email = :email AND p.published = :yes
ORDER BY p.title
"""


def _check_title_lists(func: Callable, session: Any, conn: Any, emails: list[str], engine: Any) -> None:
    for email in emails:
        got = _call(f"published_titles(session, {email!r})", func, session, email, engine=engine)
        _expect_list(got, f"published_titles(session, {email!r}) returned {type(got).__name__}; expected a list of titles.",
                     hint="session.scalars(stmt).all() or list(session.scalars(stmt))")
        expected = _scalars(conn, PUBLISHED_TITLES, {"email": email, "yes": True})
        got = list(got)
        if sorted(map(str, got)) == sorted(map(str, expected)) and got != expected:
            fail(f"published_titles(session, {email!r}) has the right titles in the wrong order.",
                 hint="add .order_by(Post.title) to the statement")
        compare_value(got, expected, name=f"published_titles(session, {email!r})",
                      hint="only published posts (Post.published), of that author (join Post.author, filter "
                           "on User.email), ordered by title")


@exercise("04a.2", "Published titles of one author", answer="published_titles")
def published_titles(func: Any, engine: Any, *, hidden: bool = False) -> None:
    _callable(func, "published_titles")
    _require_tables(engine, "users", "posts")
    with _scratch(engine) as (conn, session):
        emails = _scalars(conn, "SELECT u.email FROM users u WHERE EXISTS (SELECT 1 FROM posts p WHERE "
                                "p.author_id = u.id AND p.published = :yes) ORDER BY u.email", {"yes": True})
        expect(len(emails) >= 1, "no user has a published post: run the cells of section 3 again.")
        _check_title_lists(func, session, conn, emails[:2] + ["nobody@example.com"], engine)
        if hidden:
            uid = _add_user(conn, "o'hara@example.com", "Scarlett")
            _add_post(conn, uid, "Zebra crossings", published=True)
            _add_post(conn, uid, "Apples and pears", published=True)
            _add_post(conn, uid, "Hidden draft", published=False)
            all_emails = _scalars(conn, "SELECT email FROM users ORDER BY email")
            _check_title_lists(func, session, conn, all_emails + ["x' OR '1'='1"], engine)


# --------------------------------------------------------------------------- 04a.3 aggregates

AUTHOR_STATS = """
SELECT u.name AS name, COUNT(p.id) AS posts,
       COALESCE(SUM(CASE WHEN p.published = :yes THEN 1 ELSE 0 END), 0) AS published
FROM users u LEFT JOIN posts p ON p.author_id = u.id
GROUP BY u.id, u.name
ORDER BY posts DESC, u.name
"""


def _run_stmt(session: Any, stmt: Any, engine: Any) -> Any:
    try:
        return _result_rows(session.execute(stmt))
    except ExerciseFailed:
        raise
    except Exception as exc:
        if _is_db_error(exc):
            fail(f"Your statement failed in the database ({engine.dialect.name}): {_db_message(exc)}",
                 hint="FILTER (WHERE ...) does not exist in MySQL; use func.sum(case((condition, 1), else_=0)).")
        raise


#: service name of each SQLAlchemy dialect the chapter runs on
_SERVICES = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}

#: users (name, [published flag of each post]) the portability run adds on the other backends
PORTABLE_USERS = [("Port Ana", [True, False, True]), ("Port Bo", [False]), ("Port Cy", []),
                  ("Port Di", [True, True, True])]
PORTABLE_USERS_HIDDEN = [("Port Ed", [False] * 5), ("Port Al", [True] * 5), ("O'Port", [True, False])]


def _blog_tables(stmt: Any) -> list[Any]:
    """The Table objects ``users`` and ``posts`` of the models the statement is built on."""
    from sqlalchemy import Table
    from sqlalchemy.sql import visitors
    from sqlalchemy.sql.util import find_tables

    found = [el for el in visitors.iterate(stmt) if isinstance(el, Table)]
    for clause in stmt.get_final_froms():
        found += [t for t in find_tables(clause, include_joins=True) if isinstance(t, Table)]
    for table in found:
        users, posts = table.metadata.tables.get("users"), table.metadata.tables.get("posts")
        if users is not None and posts is not None:
            return [users, posts]
    fail("`author_stats_stmt` is not built on the models `User` and `Post` (tables users and posts).",
         hint="select(User.name, ...).outerjoin(User.posts)...: the check recreates those tables on the "
              "other backends to run your statement there.")


def _author_stats_elsewhere(stmt: Any, workspace: Any, service: str, users: list, what: str) -> None:
    """Run the statement on another backend: in its own tables (created, then dropped), or, when this
    namespace already has the blog tables there, on them inside a transaction that is rolled back."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    tables = _blog_tables(stmt)
    metadata = tables[0].metadata
    try:
        engine = workspace.engine(service)
    except Exception as exc:  # noqa: BLE001 - a missing driver or a bad URL
        fail(f"The check could not open {service} to run your statement there: {exc}")
    try:
        try:
            conn = engine.connect()
        except DBAPIError as exc:
            fail(f"The check could not connect to {service} to run your statement there: {_db_message(exc)}",
                 hint="this chapter needs SQLite, PostgreSQL and MySQL: `dbcourse services up`.")
        with conn:
            present = set(inspect(conn).get_table_names())
            created = [t for t in tables if t.name not in present]
            if created:
                metadata.create_all(conn, tables=created)
            conn.commit()  # end the transaction that inspect() began (and keep the new tables)
            try:
                trans = conn.begin()
                session = Session(bind=conn, join_transaction_mode="rollback_only")
                try:
                    for name, flags in users:
                        uid = _add_user(conn, f"{name.lower().replace(' ', '-')}@example.com", name)
                        for i, published in enumerate(flags):
                            _add_post(conn, uid, f"{name} post {i}", published=published)
                    compare_rows(_run_stmt(session, stmt, conn.engine), _rows_with_columns(conn, AUTHOR_STATS),
                                 ordered=True, what=what, order_hint="order by posts descending, then name")
                finally:
                    session.close()
                    if trans.is_active:
                        trans.rollback()
            finally:
                if created:
                    metadata.drop_all(conn, tables=created)
                    conn.commit()
    finally:
        engine.dispose()


@exercise("04a.3", "Statistics per author", answer="author_stats_stmt")
def author_stats(stmt: Any, engine: Any, workspace: Any = None, *, hidden: bool = False) -> None:
    from sqlalchemy.sql import Select

    not_answered(stmt, "author_stats_stmt")
    expect(isinstance(stmt, Select), f"`author_stats_stmt` should be a select() statement, not {type(stmt).__name__}.",
           hint="build it with select(...); do not execute it (the check runs it)")
    expect(workspace is not None, "pass the workspace too: check.author_stats(author_stats_stmt, engine, course).",
           hint="the check runs your statement on all three databases, and needs `course` to reach them")
    _require_tables(engine, "users", "posts")
    with _scratch(engine) as (conn, session):
        compare_rows(_run_stmt(session, stmt, engine), _rows_with_columns(conn, AUTHOR_STATS), ordered=True,
                     what="Your statement's result",
                     order_hint="order by posts descending, then name")
        if hidden:
            _add_user(conn, "zed@example.com", "Zed")
            quiet = conn.execute(_text("SELECT MIN(id) FROM users")).scalar_one()
            for i in range(4):
                _add_post(conn, quiet, f"Hidden stats {i}", published=i == 0)
            compare_rows(_run_stmt(session, stmt, engine), _rows_with_columns(conn, AUTHOR_STATS), ordered=True,
                         what="With other data, your statement's result",
                         order_hint="order by posts descending, then name")
    mine = _SERVICES.get(engine.dialect.name)
    users = PORTABLE_USERS + (PORTABLE_USERS_HIDDEN if hidden else [])
    for service in ("sqlite", "postgres", "mysql"):
        if service != mine:
            _author_stats_elsewhere(stmt, workspace, service, users, f"On {service}, your statement's result")


def _text(sql: str) -> Any:
    from sqlalchemy import text

    return text(sql)


def _rows_with_columns(conn: Any, sql: str, params: dict | None = None) -> Any:
    params = {"yes": True, **(params or {})}
    return _result_rows(conn.execute(_text(sql), params))


# --------------------------------------------------------------------------- 04a.4 relationships

AUTHORS_WITH_TAG = """
SELECT DISTINCT u.name FROM users u
JOIN posts p ON p.author_id = u.id
JOIN post_tags pt ON pt.post_id = p.id
JOIN tags t ON t.id = pt.tag_id
WHERE t.name = :tag
ORDER BY u.name
"""


def _check_authors(func: Callable, session: Any, conn: Any, tags: list[str], engine: Any) -> None:
    for tag in tags:
        got = _call(f"authors_with_tag(session, {tag!r})", func, session, tag, engine=engine)
        _expect_list(got, f"authors_with_tag(session, {tag!r}) returned {type(got).__name__}; expected a list of names.")
        got = list(got)
        expected = _scalars(conn, AUTHORS_WITH_TAG, {"tag": tag})
        if len(set(got)) < len(got):
            fail(f"authors_with_tag(session, {tag!r}) lists a name more than once: {got}.",
                 hint="a user with two such posts appears twice after the joins: add .distinct(), or use "
                      "User.posts.any(Post.tags.any(Tag.name == tag))")
        if sorted(map(str, got)) == sorted(map(str, expected)) and got != expected:
            fail(f"authors_with_tag(session, {tag!r}) has the right names in the wrong order.",
                 hint="order by User.name")
        compare_value(got, expected, name=f"authors_with_tag(session, {tag!r})",
                      hint="users with at least one post carrying that tag, published or not")


@exercise("04a.4", "Who writes about it?", answer="authors_with_tag")
def authors_with_tag(func: Any, engine: Any, *, hidden: bool = False) -> None:
    _callable(func, "authors_with_tag")
    _require_tables(engine, "users", "posts", "tags", "post_tags")
    with _scratch(engine) as (conn, session):
        used = _scalars(conn, "SELECT t.name FROM tags t WHERE EXISTS (SELECT 1 FROM post_tags pt WHERE "
                              "pt.tag_id = t.id) ORDER BY t.name")
        visible = [t for t in ("sql", "python") if t in used] or used[:2]
        _check_authors(func, session, conn, visible + ["no-such-tag"], engine)
        if hidden:
            uid = _add_user(conn, "newcomer@example.com", "Newcomer")
            _add_post(conn, uid, "A hidden first post", published=False, tags=("hidden-tag", "sql"))
            conn.execute(_text("INSERT INTO tags (name) VALUES ('unused-tag')"))
            all_tags = _scalars(conn, "SELECT name FROM tags ORDER BY name")
            _check_authors(func, session, conn, all_tags, engine)


# --------------------------------------------------------------------------- 04a.5 text()

@exercise("04a.5", "Find and fix: the login lookup", answer="find_user_name")
def find_user_name(func: Any, engine: Any, *, hidden: bool = False) -> None:
    _callable(func, "find_user_name")
    _require_tables(engine, "users")
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            _add_user(conn, "o'brien@example.com", "Siobhan O'Brien")
            known = _scalars(conn, "SELECT email FROM users ORDER BY email")
            emails = [known[0], "o'brien@example.com", "nobody@example.com", "x' OR '1'='1"]
            if hidden:
                _add_user(conn, "semi;colon@example.com", "Semi Colon")
                emails = _scalars(conn, "SELECT email FROM users ORDER BY email") + [
                    "nobody' OR 'a'='a", "'; DELETE FROM users; --", 'double"quote@example.com', ""]
            for email in emails:
                with _Recorder(engine) as recorder:
                    try:
                        got = func(conn, email)
                    except NotImplementedError:
                        raise
                    except Exception as exc:
                        if _is_db_error(exc):
                            fail(f"find_user_name(conn, {email!r}) failed in the database: {_db_message(exc)}",
                                 hint="the quote in the e-mail ended the SQL string: pass the e-mail as a bound "
                                      "parameter, text('... WHERE email = :email') with {'email': email}")
                        raise
                glued = [i["sql"] for i in recorder.items if email and email in i["sql"]]
                if glued:
                    fail(f"for {email!r} the e-mail was written into the SQL text: {glued[0][:120]!r}.",
                         hint="use a bound parameter: text('SELECT name FROM users WHERE email = :email') and pass "
                              "{'email': email} as the second argument of execute()")
                rows = _scalars(conn, "SELECT name FROM users WHERE email = :email", {"email": email})
                expected = rows[0] if rows else None
                expect(got == expected, f"find_user_name(conn, {email!r}) returned {got!r}; expected {expected!r}.",
                       hint="return row.name for the first matching row, None when there is none")
        finally:
            if trans.is_active:
                trans.rollback()


# --------------------------------------------------------------------------- 04a.6 N+1

def _expected_titles(conn: Any) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {name: [] for name in _scalars(conn, "SELECT name FROM users")}
    for name, title in _rows(conn, "SELECT u.name, p.title FROM posts p JOIN users u ON u.id = p.author_id "
                                   "ORDER BY p.id"):
        result[name].append(title)
    return result


def _check_titles(func: Callable, session: Any, conn: Any, engine: Any, users: int) -> None:
    session.expire_all()
    with _Recorder(engine) as recorder:
        got = _call("titles_by_author(session)", func, session, engine=engine)
    selects = recorder.verbs("SELECT", "WITH")
    expect(isinstance(got, dict), f"titles_by_author(session) returned {type(got).__name__}; expected a dict.")
    expected = _expected_titles(conn)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    expect(not missing and not extra, f"titles_by_author(session) has the wrong users: missing {missing[:5]}, "
                                      f"not expected {extra[:5]}.", hint="every user, also those without posts")
    for name, titles in expected.items():
        expect(isinstance(got[name], (list, tuple)), f"the value for {name!r} is a {type(got[name]).__name__}; "
                                                     "expected a list of titles.")
        compare_value(list(got[name]), titles, name=f"titles_by_author(session)[{name!r}]",
                      hint="the titles of that user's posts, in the order of User.posts (post id)")
    expect(len(selects) <= 2,
           f"titles_by_author(session) sent {len(selects)} SELECT statements for {users} users; expected at most 2.",
           hint="load the posts with the users: select(User).options(selectinload(User.posts))")


@exercise("04a.6", "Find and fix: the slow author page", answer="titles_by_author")
def titles_by_author(func: Any, engine: Any, *, hidden: bool = False) -> None:
    _callable(func, "titles_by_author")
    _require_tables(engine, "users", "posts")
    with _scratch(engine) as (conn, session):
        users = len(_scalars(conn, "SELECT id FROM users"))
        _check_titles(func, session, conn, engine, users)
        if hidden:
            for i in range(8):
                uid = _add_user(conn, f"hidden{i}@example.com", f"Hidden {i}")
                for j in range(2):
                    _add_post(conn, uid, f"Hidden post {i}.{j}", published=j == 0)
            _add_user(conn, "silent@example.com", "Silent")
            _check_titles(func, session, conn, engine, users + 9)


# --------------------------------------------------------------------------- 04a.7 bulk insert

def _check_add_tags(func: Callable, session: Any, conn: Any, engine: Any, names: list[str]) -> None:
    before = set(_scalars(conn, "SELECT name FROM tags"))
    with _Recorder(engine) as recorder:
        if names:
            got = _call(f"add_tags(session, {names!r})", func, session, list(names), engine=engine)
        else:
            try:
                got = func(session, [])
            except Exception as exc:
                if not _is_db_error(exc):
                    raise
                sent = " ".join(str(getattr(exc, "statement", None) or "an INSERT").split())
                fail(f"add_tags(session, []) failed in the database ({engine.dialect.name}): {_db_message(exc)}",
                     hint="for an empty list, return 0 before executing anything: session.execute(insert(Tag), []) "
                          f"does not insert nothing, it sends {sent!r} (one row of defaults), and tags.name is "
                          "NOT NULL without a default")
        session.flush()
    inserts = recorder.verbs("INSERT", table="tags")
    after = set(_scalars(conn, "SELECT name FROM tags"))
    new = set(names) - before
    expect(after - before == new,
           f"after add_tags(session, {names!r}) the new tags are {sorted(after - before)!r}; "
           f"expected {sorted(new)!r}.",
           hint="insert each name that is not in the table yet; for an empty list, insert nothing")
    expect(before <= after, "add_tags removed tags from the table.")
    expect(got == len(new), f"add_tags(session, {names!r}) returned {got!r}; expected {len(new)} "
                            "(the number of tags inserted).")
    allowed = math.ceil(len(new) / 1000)
    expect(len(inserts) <= allowed,
           f"add_tags(session, {names!r}) sent {len(inserts)} INSERT statements; expected {allowed}.",
           hint="one bulk insert for all new names: session.execute(insert(Tag), [{'name': n}, ...])")


@exercise("04a.7", "Import tags in bulk", answer="add_tags")
def add_tags(func: Any, engine: Any, *, hidden: bool = False) -> None:
    _callable(func, "add_tags")
    _require_tables(engine, "tags")
    with _scratch(engine) as (conn, session):
        existing = sorted(_scalars(conn, "SELECT name FROM tags"))
        names = ["graphql", "redis", "graphql"] + existing[:1] + ["caching"]
        _check_add_tags(func, session, conn, engine, names)
    if hidden:
        for names in ([], existing[:3], [f"bulk-{i:02}" for i in range(30)] + existing + ["o'reilly", "o'reilly"]):
            with _scratch(engine) as (conn, session):
                _check_add_tags(func, session, conn, engine, names)


# --------------------------------------------------------------------------- 04a.8 async

TOP_TAGS = """
SELECT t.name, COUNT(pt.post_id) AS posts
FROM tags t JOIN post_tags pt ON pt.tag_id = t.id
GROUP BY t.id, t.name
ORDER BY posts DESC, t.name
"""


def _run_coroutine(factory: Callable[[], Any]) -> Any:
    """Run a coroutine to the end in a thread with its own event loop (the notebook's loop is busy)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, factory()).result()


async def _top_tags_scenario(func: Callable, async_url: Any, limits: list[int], hidden: bool) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(async_url)
    try:
        async with engine.connect() as conn:
            trans = await conn.begin()
            try:
                if hidden:
                    await conn.run_sync(_add_hidden_tags)
                session = AsyncSession(bind=conn, join_transaction_mode="rollback_only")
                try:
                    for limit in limits:
                        result = func(session, limit)
                        expect(pyinspect.isawaitable(result),
                               "top_tags(session, limit) did not return a coroutine: define it with `async def`.")
                        try:
                            got = await result
                        except ExerciseFailed:
                            raise
                        except NotImplementedError:
                            raise
                        except Exception as exc:
                            if _is_db_error(exc):
                                fail(f"top_tags(session, {limit}) failed in the database: {_db_message(exc)}")
                            raise
                        expect(isinstance(got, (list, tuple)),
                               f"top_tags(session, {limit}) returned {type(got).__name__}; expected a list of tuples.",
                               hint="[(name, count) for name, count in result]")
                        rows = [tuple(r) for r in (await conn.execute(text(TOP_TAGS))).all()][:limit]
                        compare_rows(Rows([], [tuple(r) for r in got]), Rows([], rows), ordered=True,
                                     check_columns=False, what=f"top_tags(session, {limit})",
                                     order_hint="most used first (count descending), ties by tag name")
                finally:
                    await session.close()
            finally:
                if trans.is_active:
                    await trans.rollback()
    finally:
        await engine.dispose()


def _add_hidden_tags(sync_conn: Any) -> None:
    uid = _add_user(sync_conn, "async-hidden@example.com", "Async Hidden")
    for i in range(5):
        _add_post(sync_conn, uid, f"Async hidden {i}", tags=("zz-hidden", "aa-hidden") if i < 3 else ("zz-hidden",))


@exercise("04a.8", "An async query", answer="top_tags")
def top_tags(func: Any, async_url: Any, engine: Any, *, hidden: bool = False) -> None:
    _callable(func, "top_tags")
    expect(pyinspect.iscoroutinefunction(func), "`top_tags` should be a coroutine function: `async def top_tags(...)`.")
    _require_tables(engine, "tags", "post_tags")
    limits = [3] if not hidden else [0, 1, 2, 100]
    _run_coroutine(lambda: _top_tags_scenario(func, async_url, limits, hidden))


# --------------------------------------------------------------------------- 04a.9 Alembic

SLUG_VISIBLE = ["Hello World", "SQLAlchemy in Practice", "Safe Migrations", "Batch By Batch", "One More Thing"]
SLUG_HIDDEN = [
    (["Don't Panic", "The Answer Is 42", "Mostly Harmless", "So Long", "Life The Universe And Everything",
      "A B C", "Dirk Gently", "Last Chance To See", "Starship Titanic", "The Salmon Of Doubt", "Zaphod"], 3),
    (["Just One", "And Two", "Three"], 100),
    ([], 5),
]


BATCH_HINT = ('make the column NOT NULL inside `with op.batch_alter_table("articles") as batch:` '
              '(batch.alter_column("slug", existing_type=sa.String(200), nullable=False)): on SQLite, Alembic then '
              'copies the table; elsewhere it issues a plain ALTER')


def _run_slug_migration(func: Callable, engine: Any, titles: list[str], batch_size: int) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, insert, text

    metadata = MetaData()
    articles = Table("articles", metadata, Column("id", Integer, primary_key=True),
                     Column("title", String(200), nullable=False))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS articles"))
    metadata.create_all(engine)
    try:
        if titles:
            with engine.begin() as conn:
                conn.execute(insert(articles), [{"title": t} for t in titles])
        with _Recorder(engine) as recorder:
            with engine.begin() as conn:
                op = Operations(MigrationContext.configure(conn))
                try:
                    func(op, batch_size)
                except NotImplementedError as exc:
                    if "batch" in str(exc).lower() or "sqlite" in str(exc).lower():
                        fail("SQLite cannot ALTER a column in place, so op.alter_column failed.", hint=BATCH_HINT)
                    raise
                except ExerciseFailed:
                    raise
                except Exception as exc:
                    if _is_db_error(exc) and engine.dialect.name == "sqlite" and "ALTER" in str(exc) \
                            and "syntax error" in str(exc):
                        fail("SQLite cannot ALTER a column in place, so op.alter_column failed "
                             f"({_db_message(exc)}).", hint=BATCH_HINT)
                    if _is_db_error(exc):
                        fail(f"add_slug(op, {batch_size}) failed in the database ({engine.dialect.name}): "
                             f"{_db_message(exc)}",
                             hint="the column must be added as nullable, filled, and only then made NOT NULL")
                    raise
        columns = {c["name"]: c for c in inspect(engine).get_columns("articles")}
        expect("slug" in columns, "after add_slug, the table articles has no column slug.",
               hint='op.add_column("articles", sa.Column("slug", sa.String(200), nullable=True))')
        expect(not columns["slug"]["nullable"], "after add_slug, articles.slug still accepts NULL.",
               hint="step 3: batch.alter_column(\"slug\", existing_type=sa.String(200), nullable=False)")
        with engine.connect() as conn:
            rows = _rows(conn, "SELECT id, title, slug FROM articles ORDER BY id")
        for _id, title, slug in rows:
            wanted = title.lower().replace(" ", "-")
            expect(slug == wanted, f"the slug of {title!r} is {slug!r}; expected {wanted!r}.",
                   hint="lower case, every space replaced by '-': sa.func.replace(sa.func.lower(title), ' ', '-')")
        updates = recorder.verbs("UPDATE", table="articles")
        needed = math.ceil(len(titles) / batch_size)
        big = [u for u in updates if u["rowcount"] is not None and u["rowcount"] > batch_size]
        expect(not big, f"one UPDATE changed {big[0]['rowcount'] if big else 0} rows; with batch_size={batch_size} "
                        f"no UPDATE may change more than {batch_size}.",
               hint="walk the primary key: select the next batch_size ids, update WHERE id IN (those ids), repeat")
        expect(len(updates) >= needed,
               f"{len(titles)} rows with batch_size={batch_size} need at least {needed} UPDATE statements; "
               f"add_slug sent {len(updates)}.", hint="backfill in batches of batch_size rows")
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO articles (title, slug) VALUES ('no slug', NULL)"))
        except Exception as exc:
            if not _is_db_error(exc):
                raise
        else:
            fail("articles.slug still accepts NULL after add_slug.")
    finally:
        metadata.drop_all(engine)


@exercise("04a.9", "A data migration of your own", answer="add_slug")
def add_slug(func: Any, engine: Any, *, hidden: bool = False) -> None:
    _callable(func, "add_slug")
    _run_slug_migration(func, engine, SLUG_VISIBLE, 2)
    if hidden:
        for titles, batch_size in SLUG_HIDDEN:
            _run_slug_migration(func, engine, titles, batch_size)


# --------------------------------------------------------------------------- 04a.10 Pydantic

USER_IN_GOOD = [
    ({"email": "  Ada.L@Example.COM ", "name": "  Ada Lovelace "}, {"email": "ada.l@example.com", "name": "Ada Lovelace"}),
    ({"email": "grace@navy.mil", "name": "Grace"}, {"email": "grace@navy.mil", "name": "Grace"}),
]
USER_IN_BAD = [
    ("email", {"email": "not-an-email", "name": "X"}),
    ("email", {"email": "nodot@localhost", "name": "X"}),
    ("name", {"email": "blank@example.com", "name": "   "}),
    ("name", {"email": "long@example.com", "name": "x" * 81}),
    ("is_admin", {"email": "sneaky@example.com", "name": "Sneaky", "is_admin": True}),
]
USER_IN_GOOD_HIDDEN = [
    ({"email": "\tMIXED.Case+tag@Sub.Example.ORG\n", "name": " " + "y" * 80 + " "},
     {"email": "mixed.case+tag@sub.example.org", "name": "y" * 80}),
    ({"email": "o'neil@example.ie", "name": "Shaquille O'Neil"}, {"email": "o'neil@example.ie", "name": "Shaquille O'Neil"}),
]
USER_IN_BAD_HIDDEN = [
    ("email", {"email": "two@@example.com", "name": "X"}),
    ("email", {"email": "with space@example.com", "name": "X"}),
    ("email", {"email": "@example.com", "name": "X"}),
    ("name", {"email": "empty@example.com", "name": ""}),
    ("name", {"email": "missing@example.com"}),
    ("id", {"email": "id@example.com", "name": "Id", "id": 5}),
]


def _check_user_in(model: Any, good: list, bad: list) -> None:
    from pydantic import ValidationError

    for data, wanted in good:
        try:
            valid = model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"UserIn refused valid input {data!r}: {'.'.join(map(str, first['loc']))}: {first['msg']}.",
                 hint="strip and lower-case the e-mail before checking its pattern; strip the name")
        dumped = valid.model_dump()
        expect(dumped == wanted, f"UserIn.model_validate({data!r}).model_dump() is {dumped!r}; expected {wanted!r}.",
               hint="only the fields email and name; e-mail stripped and lower-cased, name stripped")
    for field, data in bad:
        try:
            valid = model.model_validate(data)
        except ValidationError as exc:
            locations = [e["loc"][0] if e["loc"] else None for e in exc.errors()]
            expect(field in locations, f"UserIn refused {data!r}, but on {locations} instead of {field!r}.")
            continue
        if field in ("is_admin", "id"):
            fail(f"UserIn accepted the extra field {field!r} in {data!r}.",
                 hint='refuse unknown fields: model_config = ConfigDict(extra="forbid")')
        fail(f"UserIn accepted {data!r} (a problem with {field!r}): {valid!r}.",
             hint="e-mail: match the pattern after stripping; name: 1 to 80 characters after stripping")


@exercise("04a.10", "A sign-up model", answer="UserIn")
def user_in(model: Any, user_cls: Any, engine: Any, *, hidden: bool = False) -> None:
    from pydantic import BaseModel
    from sqlalchemy import select

    not_answered(model, "UserIn")
    expect(isinstance(model, type) and issubclass(model, BaseModel),
           "`UserIn` should be a Pydantic model: class UserIn(BaseModel).")
    _check_user_in(model, USER_IN_GOOD, USER_IN_BAD)
    if hidden:
        _check_user_in(model, USER_IN_GOOD_HIDDEN, USER_IN_BAD_HIDDEN)
    _require_tables(engine, "users")
    cases = USER_IN_GOOD + (USER_IN_GOOD_HIDDEN if hidden else [])
    with _scratch(engine) as (conn, session):
        for data, wanted in cases:
            session.add(user_cls(**model.model_validate(data).model_dump()))
            session.flush()
            stored = session.execute(select(user_cls.email, user_cls.name)
                                     .where(user_cls.email == wanted["email"])).all()
            expect(len(stored) == 1 and tuple(stored[0]) == (wanted["email"], wanted["name"]),
                   f"storing {data!r} through UserIn gave {[tuple(r) for r in stored]}; "
                   f"expected {[(wanted['email'], wanted['name'])]}.")
