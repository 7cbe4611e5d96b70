"""Chapter 04a's checks accept right answers on every backend and reject wrong ones helpfully.

Runs against the real servers, in a namespace of its own (``dbc_test_ch04a``). The models and
the right answers below are those of ``solutions/04a_sqlalchemy.py``.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from sqlalchemy import Column, DateTime, ForeignKey, String, Table, Text, case, desc, event, func, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, joinedload, mapped_column, relationship, selectinload, sessionmaker
from typing import Annotated

import dbcourse
from dbcourse.checks import NotAnswered
from dbcourse.checks import ch04a as check

from .conftest import feedback

BACKENDS = ("sqlite", "postgres", "mysql")


# --------------------------------------------------------------------------- the notebook's models

class Base(DeclarativeBase):
    pass


post_tags = Table("post_tags", Base.metadata,
                  Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
                  Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True))


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    posts: Mapped[list["Post"]] = relationship(back_populates="author", cascade="all, delete-orphan",
                                               order_by="Post.id")


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[bool] = mapped_column(default=False)
    views: Mapped[int] = mapped_column(default=0)
    author: Mapped[User] = relationship(back_populates="posts")
    tags: Mapped[list["Tag"]] = relationship(secondary=post_tags, back_populates="posts", order_by="Tag.name")


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    posts: Mapped[list[Post]] = relationship(secondary=post_tags, back_populates="tags", order_by=Post.id)


TAGS = ["async", "orm", "python", "sql", "testing"]
USERS = [("ada@example.com", "Ada"), ("brian@example.com", "Brian"), ("chen@example.com", "Chen"),
         ("dora@example.com", "Dora"), ("emil@example.com", "Emil"), ("fatima@example.com", "Fatima")]
POSTS = [
    ("ada@example.com", "Why ORMs exist", True, 120, ["orm", "python"]),
    ("ada@example.com", "Sessions in depth", True, 80, ["orm"]),
    ("ada@example.com", "Draft: migrations", False, 0, ["sql"]),
    ("brian@example.com", "SQL joins by example", True, 200, ["sql"]),
    ("brian@example.com", "Window functions", True, 150, ["sql"]),
    ("chen@example.com", "Async Python", True, 90, ["async", "python"]),
    ("chen@example.com", "Testing with databases", False, 10, ["python", "testing"]),
    ("dora@example.com", "Indexes explained", True, 60, ["sql"]),
    ("fatima@example.com", "Pydantic and you", True, 75, ["python", "testing"]),
    ("fatima@example.com", "Eager loading", True, 130, ["orm", "sql"]),
]


def seed(session) -> None:
    tags = {name: Tag(name=name) for name in TAGS}
    users = {email: User(email=email, name=name) for email, name in USERS}
    session.add_all([*tags.values(), *users.values()])
    for email, title, published, views, tag_names in POSTS:
        session.add(Post(author=users[email], title=title, published=published, views=views,
                         tags=[tags[t] for t in tag_names]))


@pytest.fixture(scope="module")
def course():
    return dbcourse.setup("04a-sqlalchemy", namespace="test_ch04a", quiet=True)


def make_engine(course, name):
    engine = sa.create_engine(course.sqlalchemy_url(name))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA foreign_keys = ON"))
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with sessionmaker(engine).begin() as session:
        seed(session)
    return engine


@pytest.fixture(scope="module")
def engines(course):
    made = {}

    def get(name):
        if name not in made:
            made[name] = make_engine(course, name)
        return made[name]

    yield get
    for engine in made.values():
        engine.dispose()


@pytest.fixture
def engine(engines):
    return engines("sqlite")


def async_url(course, name):
    drivers = {"sqlite": "sqlite+aiosqlite", "postgres": "postgresql+psycopg", "mysql": "mysql+aiomysql"}
    return sa.make_url(course.sqlalchemy_url(name)).set(drivername=drivers[name])


def fails(call, pattern: str, *args, **kwargs) -> str:
    message = feedback(call, *args, **kwargs)
    assert re.search(pattern, message, re.S), message
    return message


# --------------------------------------------------------------------------- the right answers

def library(*, orphan=True, server_default=True, isbn_nullable=False):
    class LibraryBase(DeclarativeBase):
        pass

    class Shelf(LibraryBase):
        __tablename__ = "shelves"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50), unique=True)
        books: Mapped[list["Book"]] = relationship(
            back_populates="shelf", cascade="all, delete-orphan" if orphan else "all")

    default = {"server_default": func.now()} if server_default else {"default": datetime.now}

    class Book(LibraryBase):
        __tablename__ = "books"
        id: Mapped[int] = mapped_column(primary_key=True)
        shelf_id: Mapped[int] = mapped_column(ForeignKey("shelves.id"))
        title: Mapped[str] = mapped_column(String(200))
        isbn: Mapped[str] = mapped_column(String(13), unique=True, nullable=isbn_nullable)
        added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), **default)
        shelf: Mapped[Shelf] = relationship(back_populates="books")

    return Shelf, Book


def published_titles(session, email):
    return list(session.scalars(select(Post.title).join(Post.author)
                                .where(User.email == email, Post.published).order_by(Post.title)))


author_stats_stmt = (select(User.name, func.count(Post.id).label("posts"),
                            func.coalesce(func.sum(case((Post.published, 1), else_=0)), 0).label("published"))
                     .outerjoin(User.posts).group_by(User.id, User.name).order_by(desc("posts"), User.name))


def authors_with_tag(session, tag):
    return list(session.scalars(select(User.name).where(User.posts.any(Post.tags.any(Tag.name == tag)))
                                .order_by(User.name)))


def find_user_name(conn, email):
    row = conn.execute(text("SELECT name FROM users WHERE email = :email"), {"email": email}).first()
    return row.name if row else None


def titles_by_author(session):
    stmt = select(User).options(selectinload(User.posts)).order_by(User.name)
    return {u.name: [p.title for p in u.posts] for u in session.scalars(stmt)}


def add_tags(session, names):
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return 0
    existing = set(session.scalars(select(Tag.name).where(Tag.name.in_(wanted))))
    new = [{"name": n} for n in wanted if n not in existing]
    if new:
        session.execute(insert(Tag), new)
    return len(new)


async def top_tags(session, limit):
    stmt = (select(Tag.name, func.count(Post.id).label("posts")).join(Tag.posts)
            .group_by(Tag.id, Tag.name).order_by(desc("posts"), Tag.name).limit(limit))
    return [(name, count) for name, count in await session.execute(stmt)]


def add_slug(op, batch_size=100, *, batched=True, batch_mode=True):
    op.add_column("articles", sa.Column("slug", sa.String(200), nullable=True))
    articles = sa.table("articles", sa.column("id", sa.Integer), sa.column("title", sa.String),
                        sa.column("slug", sa.String))
    conn = op.get_bind()
    slug = sa.func.replace(sa.func.lower(articles.c.title), " ", "-")
    if batched:
        last = 0
        while ids := conn.execute(sa.select(articles.c.id).where(articles.c.id > last)
                                  .order_by(articles.c.id).limit(batch_size)).scalars().all():
            conn.execute(articles.update().where(articles.c.id.in_(ids)).values(slug=slug))
            last = ids[-1]
    else:
        conn.execute(articles.update().values(slug=slug))
    if batch_mode:
        with op.batch_alter_table("articles") as batch:
            batch.alter_column("slug", existing_type=sa.String(200), nullable=False)
    else:
        op.alter_column("articles", "slug", existing_type=sa.String(200), nullable=False)


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def user_model(*, forbid=True, lower=True):
    class UserIn(BaseModel):
        model_config = ConfigDict(extra="forbid" if forbid else "ignore")
        email: str
        name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]

        @field_validator("email")
        @classmethod
        def normalize(cls, value):
            value = value.strip().lower() if lower else value.strip()
            if not EMAIL.match(value):
                raise ValueError("not a valid e-mail address")
            return value

    return UserIn


# --------------------------------------------------------------------------- every backend

@pytest.mark.parametrize("backend", BACKENDS)
def test_right_answers_pass_on_every_backend(course, engines, backend):
    engine = engines(backend)
    check.library_models(*library(), engine, hidden=True)
    check.published_titles(published_titles, engine, hidden=True)
    check.author_stats(author_stats_stmt, engine, course, hidden=True)
    check.authors_with_tag(authors_with_tag, engine, hidden=True)
    check.find_user_name(find_user_name, engine, hidden=True)
    check.titles_by_author(titles_by_author, engine, hidden=True)
    check.add_tags(add_tags, engine, hidden=True)
    check.top_tags(top_tags, async_url(course, backend), engine, hidden=True)
    check.add_slug(add_slug, engine, hidden=True)
    check.user_in(user_model(), User, engine, hidden=True)
    with engine.connect() as conn:  # the checks changed nothing
        assert conn.execute(text("SELECT COUNT(*) FROM users")).scalar_one() == len(USERS)
        assert conn.execute(text("SELECT COUNT(*) FROM tags")).scalar_one() == len(TAGS)
        assert "articles" not in sa.inspect(engine).get_table_names()


# --------------------------------------------------------------------------- wrong answers

def test_models_without_orphan_cascade_or_server_default(engine):
    fails(check.library_models, r"delete a book removed from the list.*delete-orphan", *library(orphan=False), engine)
    fails(check.library_models, r"filled by the database: give it a server_default",
          *library(server_default=False), engine)
    fails(check.library_models, r"`Book.isbn` should be NOT NULL", *library(isbn_nullable=True), engine)
    fails(check.library_models, r"`Shelf` has no relationship `books`|should be a mapped class", object, object, engine)


def test_published_titles_wrong_answers(engine):
    def with_drafts(session, email):
        return list(session.scalars(select(Post.title).join(Post.author).where(User.email == email)
                                    .order_by(Post.title)))

    def unordered(session, email):
        return sorted(published_titles(session, email), reverse=True)

    def not_a_list(session, email):
        return session.scalars(select(Post.title).join(Post.author).where(User.email == email))

    with sessionmaker(engine)() as session:
        hard_coded = {e: published_titles(session, e) for e, _ in USERS}

    fails(check.published_titles, r"expected \[", with_drafts, engine)
    fails(check.published_titles, r"wrong order.*order_by\(Post.title\)", unordered, engine)
    fails(check.published_titles, r"returned ScalarResult; expected a list", not_a_list, engine)
    check.published_titles(lambda s, e: hard_coded.get(e, []), engine)  # the visible check alone...
    fails(check.published_titles, r"o'hara@example.com", lambda s, e: hard_coded.get(e, []), engine,
          hidden=True)  # ...but the hidden one adds data


def test_placeholder_is_not_answered(engine):
    def placeholder(session, email):
        raise NotImplementedError("Exercise not answered yet")

    with pytest.raises(NotAnswered, match="not answered yet"):
        check.published_titles(placeholder, engine)


def _tables_in(course, service):
    engine = course.engine(service)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_author_stats_wrong_answers(course, engines, engine):
    inner = (select(User.name, func.count(Post.id).label("posts"),
                    func.sum(case((Post.published, 1), else_=0)).label("published"))
             .join(User.posts).group_by(User.id, User.name).order_by(desc("posts"), User.name))
    fails(check.author_stats, r"has 5 row\(s\); expected 6", inner, engine, course)
    fails(check.author_stats, r"should be a select\(\) statement, not str", "SELECT 1", engine, course)
    fails(check.author_stats, r"pass the workspace too", author_stats_stmt, engine)
    filtered = (select(User.name, func.count(Post.id).label("posts"),
                       func.count(Post.id).filter(Post.published).label("published"))
                .outerjoin(User.posts).group_by(User.id, User.name).order_by(desc("posts"), User.name))
    # FILTER works on SQLite and PostgreSQL, but the check also runs the statement on MySQL
    fails(check.author_stats, r"failed in the database \(mysql\).*FILTER", filtered, engine, course)
    fails(check.author_stats, r"failed in the database \(mysql\).*FILTER", filtered, engines("postgres"), course)
    fails(check.author_stats, r"failed in the database \(mysql\).*FILTER", filtered, engines("mysql"), course)
    by_name = author_stats_stmt.order_by(None).order_by(User.name)
    fails(check.author_stats, r"not in the order asked.*order by posts descending", by_name, engine, course)


def test_author_stats_portability_run_leaves_no_tables(course, engine):
    """On a backend where this namespace has no blog tables, the check creates them and drops them again."""
    mysql = course.engine("mysql")
    try:
        Base.metadata.drop_all(mysql)
    finally:
        mysql.dispose()
    try:
        check.author_stats(author_stats_stmt, engine, course, hidden=True)
        assert not {"users", "posts"} & _tables_in(course, "mysql")
        filtered = (select(User.name, func.count(Post.id).label("posts"),
                           func.count(Post.id).filter(Post.published).label("published"))
                    .outerjoin(User.posts).group_by(User.id, User.name).order_by(desc("posts"), User.name))
        fails(check.author_stats, r"failed in the database \(mysql\)", filtered, engine, course)
        assert not {"users", "posts"} & _tables_in(course, "mysql")  # a failure leaves nothing behind either
    finally:
        mysql = course.engine("mysql")  # the module's other tests expect the seeded tables on MySQL
        try:
            Base.metadata.drop_all(mysql)
            Base.metadata.create_all(mysql)
            with sessionmaker(mysql).begin() as session:
                seed(session)
        finally:
            mysql.dispose()


def test_authors_with_tag_duplicates(engine):
    def joined(session, tag):
        return list(session.scalars(select(User.name).join(User.posts).join(Post.tags)
                                    .where(Tag.name == tag).order_by(User.name)))

    fails(check.authors_with_tag, r"more than once.*distinct", joined, engine)


def test_find_user_name_injection(engine):
    def glued(conn, email):
        row = conn.execute(text(f"SELECT name FROM users WHERE email = '{email}'")).first()
        return row.name if row else None

    def escaped(conn, email):
        safe = email.replace("'", "''")
        row = conn.execute(text(f"SELECT name FROM users WHERE email = '{safe}'")).first()
        return row.name if row else None

    fails(check.find_user_name, r"written into the SQL text.*bound parameter", glued, engine)
    fails(check.find_user_name, r"written into the SQL text", escaped, engine)


def test_titles_by_author_n_plus_one(engine):
    def slow(session):
        return {u.name: [p.title for p in u.posts] for u in session.scalars(select(User).order_by(User.name))}

    def joined_without_unique(session):
        stmt = select(User).options(joinedload(User.posts))
        return {u.name: [p.title for p in u.posts] for u in session.scalars(stmt)}

    fails(check.titles_by_author, r"sent 7 SELECT statements for 6 users; expected at most 2.*selectinload", slow, engine)
    fails(check.titles_by_author, r"raised InvalidRequestError", joined_without_unique, engine)
    check.titles_by_author(lambda s: {u.name: [p.title for p in u.posts] for u in s.scalars(
        select(User).options(joinedload(User.posts))).unique()}, engine, hidden=True)


def test_add_tags_wrong_answers(engine):
    def one_by_one(session, names):
        new = [n for n in dict.fromkeys(names) if n not in set(session.scalars(select(Tag.name)))]
        for name in new:
            session.execute(insert(Tag).values(name=name))
        return len(new)

    def unguarded(session, names):
        wanted = list(dict.fromkeys(names))
        existing = set(session.scalars(select(Tag.name)))
        new = [{"name": n} for n in wanted if n not in existing]
        session.execute(insert(Tag), new)
        return len(new)

    fails(check.add_tags, r"sent 3 INSERT statements; expected 1", one_by_one, engine)
    check.add_tags(unguarded, engine)  # the visible case has new names...
    fails(check.add_tags, r"add_tags\(session, \[\]\) failed in the database.*DEFAULT VALUES", unguarded, engine,
          hidden=True)  # ...the hidden one an empty list


def test_top_tags_wrong_answers(course, engine):
    def not_async(session, limit):
        return []

    async def by_name(session, limit):
        stmt = (select(Tag.name, func.count(Post.id)).join(Tag.posts).group_by(Tag.id, Tag.name)
                .order_by(Tag.name).limit(limit))
        return [tuple(r) for r in await session.execute(stmt)]

    url = async_url(course, "sqlite")
    fails(check.top_tags, r"coroutine function", not_async, url, engine)
    fails(check.top_tags, r"top_tags\(session, 3\)", by_name, url, engine)


def test_add_slug_wrong_answers(engine):
    fails(check.add_slug, r"one UPDATE changed 5 rows; with batch_size=2",
          lambda op, bs: add_slug(op, bs, batched=False), engine)
    fails(check.add_slug, r"SQLite cannot ALTER a column.*batch_alter_table",
          lambda op, bs: add_slug(op, bs, batch_mode=False), engine)

    def not_null_at_once(op, batch_size):
        op.add_column("articles", sa.Column("slug", sa.String(200), nullable=False))

    fails(check.add_slug, r"failed in the database", not_null_at_once, engine)
    assert "articles" not in sa.inspect(engine).get_table_names()


def test_user_in_wrong_answers(engine):
    fails(check.user_in, r"accepted the extra field 'is_admin'.*extra=\"forbid\"", user_model(forbid=False), User, engine)
    fails(check.user_in, r"expected \{'email': 'ada.l@example.com'", user_model(lower=False), User, engine)
    fails(check.user_in, r"should be a Pydantic model", dict, User, engine)
