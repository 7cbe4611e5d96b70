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
    data: dict[str, str] = field(default_factory=dict)


CHAPTERS: dict[str, ChapterSpec] = {
    "00-start-here": ChapterSpec("Start here", ALL_SERVERS),
}


def spec(chapter: str) -> ChapterSpec:
    try:
        return CHAPTERS[chapter]
    except KeyError:
        raise BadParameter(f"unknown chapter {chapter!r}: choose from {', '.join(CHAPTERS)}") from None
