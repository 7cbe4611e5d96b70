"""Namespaces: each notebook (and each graded submission) works in a space of its own.

A namespace called ``dbc_02_postgresql`` is, in each store:

========== ==========================================================
PostgreSQL the database ``dbc_02_postgresql``
MySQL      the database (schema) ``dbc_02_postgresql``
MongoDB    the database ``dbc_02_postgresql``
Redis      every key that starts with ``dbc_02_postgresql:``
SQLite     the folder ``.work/dbc_02_postgresql/``
========== ==========================================================

Creating a namespace drops whatever an earlier run left there, so that a notebook gives the
same results every time it runs, and notebooks can run in parallel without seeing each other.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Iterable

from .config import SERVER_NAMES, get_settings
from .errors import BadParameter

PREFIX = "dbc_"
MAX_LENGTH = 63  # PostgreSQL truncates identifiers at 63 bytes


def namespace_name(name: str) -> str:
    """``"02-postgresql"`` -> ``"dbc_02_postgresql"`` (lower case, ``[a-z0-9_]``, at most 63)."""
    if not isinstance(name, str) or not name.strip():
        raise BadParameter(f"namespace must be a non-empty string, not {name!r}")
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")
    if not cleaned:
        raise BadParameter(f"namespace {name!r} has no letters or digits: use something like 'ch02_alice'")
    if not cleaned.startswith(PREFIX):
        cleaned = PREFIX + cleaned
    if len(cleaned) > MAX_LENGTH:  # keep names distinct when they must be shortened
        import hashlib

        digest = hashlib.sha1(cleaned.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[:MAX_LENGTH - 9]}_{digest}"
    return cleaned


# --------------------------------------------------------------------------- per store

def create_postgres(ns: str, *, url: str | None = None) -> None:
    from psycopg import sql

    from .connect import connect_postgres

    with connect_postgres(url=url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(ns)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(ns)))


def drop_postgres(ns: str, *, url: str | None = None) -> None:
    from psycopg import sql

    from .connect import connect_postgres

    with connect_postgres(url=url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(ns)))


def list_postgres(*, url: str | None = None) -> list[str]:
    from .connect import connect_postgres

    with connect_postgres(url=url, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
                            [PREFIX + "%"]).fetchall()
    return [r[0] for r in rows]


MYSQL_LOCK_WAIT_S = 20


def _drop_mysql_database(cur, ns: str) -> None:
    """DROP DATABASE, after closing the other connections that use it (as PostgreSQL's
    ``WITH (FORCE)`` does): an open transaction of an earlier run (a kernel still holding its
    connections) would otherwise make DROP wait for its metadata locks, for a day on MariaDB and
    a year on MySQL (``lock_wait_timeout``)."""
    import pymysql

    cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", [ns])
    for (thread_id,) in cur.fetchall():
        try:
            cur.execute(f"KILL CONNECTION {int(thread_id)}")
        except pymysql.err.OperationalError:  # it ended meanwhile (1094), or we may not (1095)
            pass
    cur.execute(f"SET SESSION lock_wait_timeout = {MYSQL_LOCK_WAIT_S}")
    try:
        cur.execute(f"DROP DATABASE IF EXISTS `{ns}`")
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] == 1205:  # ER_LOCK_WAIT_TIMEOUT
            raise BadParameter(
                f"MySQL could not drop the database {ns!r}: another connection keeps a transaction open "
                f"on it (waited {MYSQL_LOCK_WAIT_S} s). Restart the kernel of the other notebook that uses "
                f"it (or this one: Kernel > Restart), then run the setup cell again.") from None
        raise


def create_mysql(ns: str, *, url: str | None = None) -> None:
    from .connect import connect_mysql

    conn = connect_mysql(database="", url=url)
    try:
        with conn.cursor() as cur:
            _drop_mysql_database(cur, ns)
            cur.execute(f"CREATE DATABASE `{ns}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()


def drop_mysql(ns: str, *, url: str | None = None) -> None:
    from .connect import connect_mysql

    conn = connect_mysql(database="", url=url)
    try:
        with conn.cursor() as cur:
            _drop_mysql_database(cur, ns)
    finally:
        conn.close()


def list_mysql(*, url: str | None = None) -> list[str]:
    from .connect import connect_mysql

    conn = connect_mysql(database="", url=url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s "
                        "ORDER BY 1", [PREFIX + "%"])
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def create_mongodb(ns: str, *, url: str | None = None) -> None:
    drop_mongodb(ns, url=url)


def drop_mongodb(ns: str, *, url: str | None = None) -> None:
    from .connect import mongo_client

    client = mongo_client(url=url)
    try:
        client.drop_database(ns)
    finally:
        client.close()


def list_mongodb(*, url: str | None = None) -> list[str]:
    from .connect import mongo_client

    client = mongo_client(url=url)
    try:
        return sorted(n for n in client.list_database_names() if n.startswith(PREFIX))
    finally:
        client.close()


def clear_redis(ns: str, *, url: str | None = None) -> int:
    """Delete every key of the namespace; returns how many were deleted."""
    from .connect import redis_client

    client = redis_client(url=url)
    deleted = 0
    try:
        batch = []
        for key in client.scan_iter(match=f"{ns}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.unlink(*batch)
                batch = []
        if batch:
            deleted += client.unlink(*batch)
    finally:
        client.close()
    return deleted


create_redis = clear_redis
drop_redis = clear_redis


def list_redis(*, url: str | None = None) -> list[str]:
    from .connect import redis_client

    client = redis_client(url=url)
    try:
        return sorted({k.split(":", 1)[0] for k in client.scan_iter(match=f"{PREFIX}*", count=1000)})
    finally:
        client.close()


def sqlite_dir(ns: str) -> Path:
    return get_settings().work_dir / ns


def create_sqlite(ns: str, **_) -> Path:
    folder = sqlite_dir(ns)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- roles and users of a namespace
# Chapter 08 creates login roles (PostgreSQL) and users (MySQL) named ``<namespace>_<suffix>``.
# The notebook drops them itself; these catch what an interrupted run or a stopped grading run
# left behind (``reset_all``: ``dbcourse services reset`` and the grader's clean-up).

def drop_postgres_roles(match: str, *, url: str | None = None) -> list[str]:
    """Drop the login roles whose names start with ``match``; returns the names dropped."""
    import psycopg
    from psycopg import sql

    from .connect import connect_postgres

    dropped = []
    with connect_postgres(url=url, autocommit=True) as conn:
        roles = [r[0] for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE left(rolname, %s) = %s AND rolname <> current_user "
            "ORDER BY 1", [len(match), match])]
        for role in roles:
            try:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))  # its grants here
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
                dropped.append(role)
            except psycopg.Error:  # still granted something in another database: leave it
                pass
    return dropped


def drop_mysql_users(match: str, *, url: str | None = None) -> list[str]:
    """Drop the MySQL users whose names start with ``match``; returns ``user@host`` of each."""
    import pymysql

    from .connect import connect_mysql

    dropped = []
    conn = connect_mysql(database="", url=url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT user, host FROM mysql.user WHERE LEFT(user, %s) = %s AND user <> "
                        "SUBSTRING_INDEX(CURRENT_USER(), '@', 1) ORDER BY 1, 2", [len(match), match])
            for user, host in cur.fetchall():
                try:
                    cur.execute("DROP USER %s@%s", [user, host])
                    dropped.append(f"{user}@{host}")
                except pymysql.Error:
                    pass
    finally:
        conn.close()
    return dropped


DROP_ACCOUNTS = {"postgres": drop_postgres_roles, "mysql": drop_mysql_users}

CREATE = {"postgres": create_postgres, "mysql": create_mysql, "mongodb": create_mongodb,
          "redis": create_redis, "sqlite": create_sqlite}
DROP = {"postgres": drop_postgres, "mysql": drop_mysql, "mongodb": drop_mongodb, "redis": drop_redis}
LIST = {"postgres": list_postgres, "mysql": list_mysql, "mongodb": list_mongodb, "redis": list_redis}


def reset_all(names: Iterable[str] | None = None, *, match: str = PREFIX) -> list[str]:
    """Drop every course namespace (whose name starts with ``match``) in every reachable server,
    and their scratch folders."""
    from .errors import ServiceUnavailable

    report = []
    for name in names or SERVER_NAMES:
        try:
            found = [ns for ns in LIST[name]() if ns.startswith(match)]
        except ServiceUnavailable as exc:
            report.append(f"{name}: skipped ({exc.reason})")
            continue
        for ns in found:
            DROP[name](ns)
        accounts = DROP_ACCOUNTS[name](match) if name in DROP_ACCOUNTS else []
        report.append(f"{name}: dropped {len(found)} namespace(s)"
                      + (f" and {len(accounts)} {'role' if name == 'postgres' else 'user'}(s)" if accounts else ""))
    if not names:
        work = get_settings().work_dir
        folders = sorted(work.glob(match + "*")) if work.exists() else []
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        report.append(f"scratch files: removed {len(folders)} folder(s) under {work}")
    return report
