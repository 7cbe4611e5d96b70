"""What each chapter needs: its servers and the data sets loaded into its namespace.

``dbcourse.setup("02-postgresql")`` reads this table (explicit ``services=``/``data=`` arguments
win), and ``dbcourse reset 02-postgresql`` rebuilds a chapter's namespace from a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import BadParameter

ALL_SERVERS = ("sqlite", "postgres", "mysql", "mongodb", "redis")


@dataclass(frozen=True)
class ChapterSpec:
    title: str
    services: tuple[str, ...]
    #: store -> data set(s) loaded into the chapter's namespace, e.g. {"postgres": ("shop", "flights")}
    data: dict[str, str | tuple[str, ...]] = field(default_factory=dict)


SQL = ("sqlite", "postgres", "mysql")

CHAPTERS: dict[str, ChapterSpec] = {
    "00-start-here": ChapterSpec("Start here", ALL_SERVERS),
    "01-sqlite": ChapterSpec("SQLite and SQL", ("sqlite",), {"sqlite": "shop"}),
    "02-postgresql": ChapterSpec("PostgreSQL", ("postgres",), {"postgres": "shop"}),
    "03-mysql": ChapterSpec("MySQL and MariaDB", ("mysql", "postgres", "sqlite"), {"mysql": "shop"}),
    "04a-sqlalchemy": ChapterSpec("ORMs: SQLAlchemy 2 and Alembic", SQL),
    "04b-django-fastapi": ChapterSpec("ORMs: Django, FastAPI and patterns", ("sqlite", "postgres")),
    "05-mongodb": ChapterSpec("MongoDB", ("mongodb",), {"mongodb": "shop"}),
    "06-redis": ChapterSpec("Redis", ("redis", "postgres"), {"postgres": "shop", "redis": "shop"}),
    "07-optimization": ChapterSpec("Query optimization", ALL_SERVERS,
                                   {"postgres": ("shop", "flights"), "mysql": "shop", "sqlite": "shop"}),
    "08-production": ChapterSpec("Production patterns and capstone", ALL_SERVERS,
                                 {"postgres": "shop", "mysql": "shop", "mongodb": "shop"}),
}


def spec(chapter: str) -> ChapterSpec:
    try:
        return CHAPTERS[chapter]
    except KeyError:
        raise BadParameter(f"unknown chapter {chapter!r}: choose from {', '.join(CHAPTERS)}") from None
