"""``dbcourse.setup``: the one call at the top of every notebook.

It checks that the servers the chapter needs are up (one message naming the fix when one is
not), creates the notebook's fresh namespace in each of them, loads the chapter's data and
returns a :class:`Workspace` with ready-made connections::

    course = dbcourse.setup("02-postgresql", services=["postgres"], data={"postgres": "shop"})
    with course.connect_postgres() as conn:
        ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from . import connect, namespaces
from .config import SERVER_NAMES, URL_VARIABLES, ServerConfig, get_settings
from .errors import BadParameter, ServiceUnavailable

STORES = ("sqlite", *SERVER_NAMES)
SCALES = ("small", "large")


@dataclass
class Workspace:
    """The namespace of one notebook run, and connections into it."""

    chapter: str
    namespace: str
    services: tuple[str, ...]
    scale: str
    urls: dict[str, str]
    folder: Path
    loaded: dict[str, list[str]] = field(default_factory=dict)
    _mongo: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)

    # -- files
    def path(self, name: str) -> Path:
        """A file in the notebook's scratch folder (``.work/<namespace>/name``)."""
        return self.folder / name

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file that holds the chapter's data set (``shop.db``)."""
        return self.folder / "shop.db"

    def sqlite_url(self, name: str = "shop.db") -> str:
        """SQLAlchemy URL of an SQLite file in the scratch folder (for ``%sql`` and engines)."""
        return f"sqlite:///{self.folder / name}"

    def sql_connect(self, url: str | None = None) -> None:
        """Connect the ``%sql`` magic, as ``%sql URL`` does (default: the shop's SQLite file).

        It first closes a connection the magic may still hold to that URL: after the setup cell
        has run again, that would read the replaced (deleted) file. Works with JupySQL and
        ipython-sql. Load the extension first (``%load_ext sql``).
        """
        from IPython import get_ipython

        shell = get_ipython()
        url = url or self.sqlite_url()
        try:
            shell.run_line_magic("sql", f"--close {url}")
        except Exception:  # noqa: BLE001 - nothing to close
            pass
        shell.run_line_magic("sql", url)

    # -- PostgreSQL
    @property
    def postgres_url(self) -> str:
        return connect.postgres_url(self.namespace, url=self.urls.get("postgres"))

    def connect_postgres(self, **kwargs: Any):
        return connect.connect_postgres(self.namespace, url=self.urls.get("postgres"), **kwargs)

    # -- MySQL
    @property
    def mysql_url(self) -> str:
        return connect.sqlalchemy_url("mysql", self.namespace, url=self.urls.get("mysql"), driver="mysql")

    @property
    def mysql_params(self) -> dict[str, Any]:
        return connect.mysql_params(self.namespace, url=self.urls.get("mysql"))

    def connect_mysql(self, driver: str = "pymysql", **kwargs: Any):
        return connect.connect_mysql(self.namespace, url=self.urls.get("mysql"), driver=driver, **kwargs)

    # -- SQLAlchemy
    def sqlalchemy_url(self, service: str) -> str:
        """The SQLAlchemy URL of this namespace in ``service`` (sqlite, postgres or mysql)."""
        if service == "sqlite":
            return self.sqlite_url()
        return connect.sqlalchemy_url(service, self.namespace, url=self.urls.get(service))

    def engine(self, service: str, **kwargs: Any):
        """A new SQLAlchemy engine on this namespace (dispose of it when done)."""
        if service == "sqlite":
            import sqlalchemy

            return sqlalchemy.create_engine(self.sqlalchemy_url("sqlite"), **kwargs)
        return connect.create_engine(service, self.namespace, url=self.urls.get(service), **kwargs)

    # -- MongoDB
    @property
    def mongo_client(self):
        if self._mongo is None:
            self._mongo = connect.mongo_client(url=self.urls.get("mongodb"))
        return self._mongo

    @property
    def mongo_db(self):
        """The notebook's MongoDB database."""
        return self.mongo_client[self.namespace]

    # -- Redis
    @property
    def redis(self):
        """A Redis client (``decode_responses=True``); use :meth:`key` to name keys."""
        if self._redis is None:
            self._redis = connect.redis_client(url=self.urls.get("redis"))
        return self._redis

    @property
    def redis_url(self) -> str:
        """The URL of the Redis server this notebook uses (for ``redis.Redis.from_url``)."""
        return self.urls.get("redis") or get_settings().redis.url

    @property
    def mongodb_url(self) -> str:
        """The URL of the MongoDB server this notebook uses (for ``pymongo.MongoClient``)."""
        return self.urls.get("mongodb") or get_settings().mongodb.url

    @property
    def redis_prefix(self) -> str:
        return f"{self.namespace}:"

    def key(self, *parts: Any) -> str:
        """A Redis key in the notebook's namespace: ``key("user", 42)`` -> ``dbc_06_redis:user:42``."""
        return self.redis_prefix + ":".join(str(p) for p in parts)

    def close(self) -> None:
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None


def _check_urls(urls: Mapping[str, str | None] | None) -> dict[str, str]:
    clean: dict[str, str] = {}
    for service, url in (urls or {}).items():
        if url in (None, ""):
            continue
        if service not in SERVER_NAMES:
            raise BadParameter(f"urls: unknown service {service!r}; use {', '.join(SERVER_NAMES)}")
        if not isinstance(url, str) or not urlsplit(url).scheme or not urlsplit(url).hostname:
            raise BadParameter(f"{service}_url={url!r} is not a URL like "
                               f"{get_settings()[service].masked_url}")
        clean[service] = url
    return clean


def check_services(services: Iterable[str], urls: Mapping[str, str], chapter: str) -> None:
    """Raise one :class:`ServiceUnavailable` that names every server that is down."""
    from .services.probe import probe

    problems = []
    for name in services:
        if name == "sqlite":
            continue
        server = ServerConfig(name, urls[name], url_overridden=True) if name in urls else get_settings()[name]
        result = probe(server)
        if not result.up:
            problems.append(result.error)
    if not problems:
        return
    if len(problems) == 1:
        raise problems[0]
    names = ", ".join(p.service for p in problems)
    reasons = "\n".join(f"- {p.service} at {p.url}: {p.reason}" for p in problems)
    raise ServiceUnavailable(names, "their configured URLs", f"chapter {chapter} needs them:\n{reasons}",
                             connect.start_command())


def default_namespace(chapter: str) -> str:
    """The chapter's namespace, from where the notebook runs (its kernel's working folder):

    * ``solutions/``: a namespace of its own, so opening a solution never wipes the learner's
      work (and CI runs both versions at once);
    * ``autograded/<student>/<assignment>/`` (nbgrader autograde, also from the formgrader):
      one namespace per submission, so one submission's writes never change another's score;
    * anywhere else: the chapter's namespace.
    """
    cwd = Path.cwd()
    if cwd.name == "solutions":
        return f"{chapter}_solution"
    if cwd.parent.parent.name == "autograded":
        return f"grade_{cwd.parent.name}_{chapter}"
    return chapter


def setup(chapter: str, services: Iterable[str] = (), *, data: Mapping[str, str] | None = None,
          scale: str = "small", namespace: str | None = None, urls: Mapping[str, str | None] | None = None,
          quiet: bool = False) -> Workspace:
    """Prepare the notebook of ``chapter``: check servers, create a fresh namespace, load data.

    ``services``: the servers the notebook uses (any of sqlite, postgres, mysql, mongodb, redis);
    ``data``: data set(s) to load per store, e.g. ``{"postgres": "shop"}`` or
    ``{"postgres": ("shop", "flights")}``. Both default to the
    chapter's entry in :mod:`dbcourse.chapters`.
    ``scale``: ``"small"`` (default) or ``"large"``.
    ``namespace``: override the namespace name (graders and papermill runs use this; the
    environment variable ``DBCOURSE_NAMESPACE`` does the same).
    ``urls``: override a server's URL, e.g. ``{"postgres": "postgresql://..."}``.
    """
    if not services and data is None:
        from .chapters import CHAPTERS

        if chapter in CHAPTERS:
            services, data = CHAPTERS[chapter].services, CHAPTERS[chapter].data
    services = tuple(dict.fromkeys(services))
    unknown = [s for s in services if s not in STORES]
    if unknown:
        raise BadParameter(f"services: unknown store {unknown[0]!r}; choose from {', '.join(STORES)}")
    if scale not in SCALES:
        raise BadParameter(f"scale={scale!r} is not a data scale: use one of {', '.join(map(repr, SCALES))}")
    data = dict(data or {})
    for store in data:
        if store not in services:
            raise BadParameter(f"data: {store!r} is not among the services {services}")
    if namespace is not None and not isinstance(namespace, str):
        raise BadParameter(f"namespace={namespace!r} must be a string such as 'ch02_alice'")
    clean_urls = _check_urls(urls)
    settings = get_settings()
    ns = namespaces.namespace_name(namespace or settings.namespace_override or default_namespace(chapter))

    check_services(services, clean_urls, chapter)
    folder = namespaces.create_sqlite(ns)
    for name in services:
        if name != "sqlite":
            namespaces.CREATE[name](ns, url=clean_urls.get(name))
    workspace = Workspace(chapter, ns, services, scale, clean_urls, folder)

    lines = [f"Namespace {ns} is ready (fresh) for chapter {chapter}:"]
    for name in services:
        where = {"sqlite": f"folder .work/{ns}/", "postgres": f"database {ns}", "mysql": f"database {ns}",
                 "mongodb": f"database {ns}", "redis": f"keys {ns}:*"}[name]
        line = f"  {connect.DISPLAY_NAMES.get(name, 'SQLite'):<14}{where}"
        wanted = data.get(name, ())
        for dataset in ([wanted] if isinstance(wanted, str) else list(wanted)):
            from .datasets import load_into_workspace

            summary = load_into_workspace(workspace, name, dataset)
            workspace.loaded.setdefault(name, []).append(dataset)
            line += f"  |  {summary}"
        lines.append(line)
    try:
        from .checks.display import install_friendly_errors

        install_friendly_errors()
    except ImportError:  # outside IPython
        pass
    if not quiet:
        print("\n".join(lines))
    return workspace


def url_parameter_names() -> dict[str, str]:
    """Notebook parameter name -> service, for papermill runs (``postgres_url`` ...)."""
    return {f"{name}_url": name for name in URL_VARIABLES}

