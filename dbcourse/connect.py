"""Connect to the course's databases, failing fast with a message that says how to fix it.

Every helper here gives up within about 3 seconds when a server is down or a URL is wrong,
and raises :class:`~dbcourse.errors.ServiceUnavailable` naming the fix, instead of hanging
for 30 seconds or printing a driver traceback.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .config import ServerConfig, get_settings
from .errors import ServiceUnavailable

#: Seconds to wait for a server before giving up.
CONNECT_TIMEOUT = 2

DISPLAY_NAMES = {"postgres": "PostgreSQL", "mysql": "MySQL/MariaDB", "mongodb": "MongoDB", "redis": "Redis"}


def start_command(service: str | None = None) -> str:
    return "dbcourse services up" + (f" {service}" if service else "")


def _server(service: str, url: str | None) -> ServerConfig:
    settings = get_settings()
    if url is None:
        return settings[service]
    return ServerConfig(service, url, url_overridden=True)


def _with_database(url: str, database: str | None) -> str:
    if database is None:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def explain(service: str, server: ServerConfig, exc: BaseException) -> ServiceUnavailable:
    """Turn a driver's connection error into one friendly :class:`ServiceUnavailable`."""
    name = DISPLAY_NAMES[service]
    text = str(exc)
    low = text.lower()
    variable = f"DBCOURSE_{service.upper()}_URL"
    if any(s in low for s in ("connection refused", "errno 111", "can't connect", "no route", "timed out",
                              "timeout", "server closed the connection", "name or service not known",
                              "nodename nor servname", "connection reset")):
        if server.url_overridden and not server.is_local:
            fix = f"check that the server in {variable} is running and reachable, or unset {variable}"
        else:
            fix = start_command(service)
        reason = f"no {name} server answers at {server.host}:{server.port}"
    elif any(s in low for s in ("password authentication failed", "access denied", "authentication failed",
                                "auth", "wrongpass", "noauth")):
        reason = f"{name} refused the login of user {server.user!r}"
        fix = (f"check the user and password in {variable} (or DBCOURSE_USER / DBCOURSE_PASSWORD) in .env; "
               "the course's own servers use the defaults in .env.example")
    elif "does not exist" in low or "unknown database" in low:
        reason = f"{name} has no database named {server.database!r}"
        fix = ("run the notebook's setup cell (it creates the notebook's own database), "
               f"or `dbcourse services up {service}` to create the course's default database")
    else:
        reason = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        fix = start_command(service)
    return ServiceUnavailable(name, server.masked_url, reason, fix)


# --------------------------------------------------------------------------- PostgreSQL

def postgres_url(database: str | None = None, *, url: str | None = None) -> str:
    """The libpq URL of the course's PostgreSQL, optionally for another database."""
    return _with_database(_server("postgres", url).url, database)


def connect_postgres(database: str | None = None, *, url: str | None = None, **kwargs: Any):
    """A psycopg 3 connection (``database`` defaults to the course's database)."""
    import psycopg

    server = _server("postgres", postgres_url(database, url=url))
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
    try:
        return psycopg.connect(server.url, **kwargs)
    except psycopg.OperationalError as exc:
        raise explain("postgres", server, exc) from None


# --------------------------------------------------------------------------- MySQL / MariaDB

def mysql_params(database: str | None = None, *, url: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``pymysql.connect`` / ``mysql.connector.connect``.

    ``database=None`` means the database of the URL; ``database=""`` means no database.
    """
    server = _server("mysql", url)
    params = {
        "host": server.host,
        "port": server.port,
        "user": unquote(server.user or "root"),
        "password": unquote(server.password or ""),
        "database": database if database is not None else server.database,
        "charset": "utf8mb4",
        "connect_timeout": CONNECT_TIMEOUT,
    }
    if not params["database"]:
        del params["database"]
    return params


def connect_mysql(database: str | None = None, *, url: str | None = None, driver: str = "pymysql",
                  **kwargs: Any):
    """A MySQL/MariaDB connection with PyMySQL (default) or mysql-connector-python."""
    server = _server("mysql", _with_database(_server("mysql", url).url, database))
    params = mysql_params(database, url=url)
    params.update(kwargs)
    if driver == "pymysql":
        import pymysql

        try:
            return pymysql.connect(**params)
        except pymysql.err.OperationalError as exc:
            raise explain("mysql", server, exc) from None
    if driver in ("connector", "mysql-connector", "mysql.connector"):
        import mysql.connector

        params.setdefault("use_pure", True)
        params.setdefault("collation", "utf8mb4_unicode_ci")
        try:
            return mysql.connector.connect(**params)
        except mysql.connector.Error as exc:
            raise explain("mysql", server, exc) from None
    raise ValueError(f"driver must be 'pymysql' or 'connector', not {driver!r}")


# --------------------------------------------------------------------------- MongoDB

def mongo_client(*, url: str | None = None, **kwargs: Any):
    """A connected :class:`pymongo.MongoClient` (pinged, so a down server fails here)."""
    import pymongo
    from pymongo.errors import PyMongoError

    server = _server("mongodb", url)
    kwargs.setdefault("serverSelectionTimeoutMS", CONNECT_TIMEOUT * 1000)
    kwargs.setdefault("connectTimeoutMS", CONNECT_TIMEOUT * 1000)
    kwargs.setdefault("tz_aware", True)
    client = pymongo.MongoClient(server.url, **kwargs)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        client.close()
        raise explain("mongodb", server, exc) from None
    return client


# --------------------------------------------------------------------------- Redis

def redis_client(*, url: str | None = None, decode_responses: bool = True, **kwargs: Any):
    """A connected :class:`redis.Redis` (pinged, so a down server fails here)."""
    import redis

    server = _server("redis", url)
    kwargs.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
    kwargs.setdefault("socket_timeout", 10)
    client = redis.Redis.from_url(server.url, decode_responses=decode_responses, **kwargs)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise explain("redis", server, exc) from None
    return client


# --------------------------------------------------------------------------- SQLite

def connect_sqlite(path: str | Path = ":memory:", **kwargs: Any) -> sqlite3.Connection:
    """An SQLite connection with foreign keys enforced (SQLite leaves them off by default)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, **kwargs)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


# --------------------------------------------------------------------------- SQLAlchemy

SQLALCHEMY_DRIVERS = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}


def sqlalchemy_url(service: str, database: str | None = None, *, url: str | None = None,
                   driver: str | None = None) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``, ``mysql+pymysql://...``)."""
    if service == "sqlite":
        return f"sqlite:///{database}" if database else "sqlite://"
    server = _server(service, url)
    parts = urlsplit(_with_database(server.url, database))
    scheme = driver or SQLALCHEMY_DRIVERS[service]
    query = parts.query
    if service == "mysql":
        query = "&".join(q for q in [query, "charset=utf8mb4"] if q)
    return urlunsplit((scheme, parts.netloc, parts.path, query, parts.fragment))


def create_engine(service: str, database: str | None = None, *, url: str | None = None, **kwargs: Any):
    """A SQLAlchemy engine, checked with one connection so a down server fails here."""
    import sqlalchemy

    if service == "postgres":
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", CONNECT_TIMEOUT)
    elif service == "mysql":
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", CONNECT_TIMEOUT)
    engine = sqlalchemy.create_engine(sqlalchemy_url(service, database, url=url), **kwargs)
    if service in SQLALCHEMY_DRIVERS:
        server = _server(service, _with_database(_server(service, url).url, database))
        try:
            with engine.connect():
                pass
        except sqlalchemy.exc.OperationalError as exc:
            engine.dispose()
            raise explain(service, server, exc.orig or exc) from None
    return engine
