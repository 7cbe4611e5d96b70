"""Load a data set into SQLite, PostgreSQL or MySQL: fast, idempotent, all-or-nothing.

* SQLite: built in a temporary file next to the target, then renamed over it (atomic).
* PostgreSQL: one transaction: drop, create, ``COPY ... FROM STDIN``, then keys and constraints;
  an error anywhere rolls the whole load back, so the previous tables stay as they were.
* MySQL/MariaDB: ``LOAD DATA LOCAL INFILE`` into a staging database, then one ``RENAME TABLE``
  statement swaps all tables in at once (DDL is not transactional in MySQL, RENAME TABLE of
  several tables is atomic); multi-row INSERTs when the server refuses LOCAL INFILE.

Reloading gives the same state: the same tables, rows and constraints.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..errors import DatasetError
from . import schema

Progress = Callable[[int], None]


def _csv_rows(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        yield from reader


def _fail(store: str, table: str, exc: BaseException) -> DatasetError:
    first = str(exc).strip().splitlines()
    detail = " ".join(line.strip() for line in first[:3])
    return DatasetError(f"loading {table}.csv into {store} failed, nothing was changed: {type(exc).__name__}: "
                        f"{detail}")


# --------------------------------------------------------------------------- SQLite

def load_sqlite(directory: Path, tables: tuple[schema.Table, ...], target: Path,
                progress: Progress | None = None, use_shell: bool | None = None,
                check_foreign_keys: bool = True) -> dict[str, int]:
    """Build the database in a scratch file next to ``target``, then rename it over ``target``.

    With the ``sqlite3`` shell installed, its ``.import`` (C speed) loads the CSV files, then one
    UPDATE per table turns empty fields into NULL; otherwise Python's ``executemany`` does it all.
    ``use_shell`` forces one path (tests run both). SQLite does not check foreign keys while
    loading; ``check_foreign_keys`` checks them all at the end (skipped for files whose checksums
    were verified: their content is known to be consistent).
    """
    import shutil

    if use_shell is None:
        use_shell = shutil.which("sqlite3") is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if use_shell:
            _sqlite_shell_import(directory, tables, tmp)
        else:
            _sqlite_executemany(directory, tables, tmp, progress)
        conn = sqlite3.connect(tmp)
        try:
            problems = conn.execute("PRAGMA foreign_key_check").fetchall() if check_foreign_keys else []
            if problems:
                raise DatasetError(f"loading into SQLite failed, nothing was changed: {len(problems)} rows break "
                                   f"a foreign key (first: {problems[0]})")
            counts = {t.name: conn.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0] for t in tables}
        finally:
            conn.close()
        if use_shell and progress:
            progress(sum(counts.values()))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


def _sqlite_executemany(directory: Path, tables, tmp: Path, progress: Progress | None) -> None:
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # a scratch file: renamed into place when complete
        conn.execute("PRAGMA synchronous = OFF")
        for table in tables:
            conn.execute(schema.create_table(table, "sqlite"))
        for table in tables:
            sql = (f"INSERT INTO {schema.quote(table.name, 'sqlite')} VALUES "
                   f"({', '.join('?' for _ in table.columns)})")
            nullable = any(c.nullable for c in table.columns)
            try:
                with conn, open(directory / f"{table.name}.csv", newline="", encoding="utf-8") as fh:
                    reader = csv.reader(fh)
                    next(reader)
                    rows = ([v or None for v in row] for row in reader) if nullable else reader
                    cursor = conn.executemany(sql, rows)
            except (sqlite3.Error, csv.Error, UnicodeDecodeError) as exc:
                raise _fail("SQLite", table.name, exc) from None
            if progress:
                progress(cursor.rowcount)
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _sqlite_shell_import(directory: Path, tables, tmp: Path) -> None:
    import subprocess

    lines = ["PRAGMA journal_mode = OFF;", "PRAGMA synchronous = OFF;"]
    lines += [schema.create_table(t, "sqlite") + ";" for t in tables]
    lines.append("BEGIN;")
    for table in tables:
        path = str(directory / f"{table.name}.csv").replace("'", "''")
        lines.append(f".import --csv --skip 1 '{path}' {table.name}")
        nulls = [c.name for c in table.columns if c.nullable]
        if nulls:  # .import stores empty fields as '': make them NULL, as the CSV means
            lines.append(f'UPDATE "{table.name}" SET ' + ", ".join(f'"{n}" = NULLIF("{n}", \'\')' for n in nulls)
                         + " WHERE " + " OR ".join(f'"{n}" = \'\'' for n in nulls) + ";")
    lines += ["COMMIT;", "ANALYZE;"]
    result = subprocess.run(["sqlite3", "-bail", str(tmp)], input="\n".join(lines), text=True,
                            capture_output=True)
    if result.returncode != 0 or result.stderr.strip():
        message = (result.stderr.strip() or f"sqlite3 exited with {result.returncode}").splitlines()[0]
        table = next((t.name for t in tables if f"{t.name}.csv" in message), "a table")
        raise DatasetError(f"loading {table}.csv into SQLite failed, nothing was changed: {message}")


# --------------------------------------------------------------------------- PostgreSQL

def _constraint_statements(table: schema.Table, dialect: str) -> list[str]:
    q = lambda n: schema.quote(n, dialect)  # noqa: E731
    name = q(table.name)
    statements = [f"ALTER TABLE {name} ADD PRIMARY KEY ({', '.join(q(c) for c in table.primary_key)})"]
    statements += [f"ALTER TABLE {name} ADD UNIQUE ({', '.join(q(c) for c in cols)})" for cols in table.unique]
    statements += [f"ALTER TABLE {name} ADD FOREIGN KEY ({q(col)}) REFERENCES {q(ref)} ({q(ref_col)})"
                   for col, ref, ref_col in table.foreign_keys]
    return statements


def _bare_table(table: schema.Table) -> schema.Table:
    """The table without keys: loaded first, keys added after (much faster for big tables)."""
    return schema.Table(table.name, table.columns, (), (), ())


def load_postgres(directory: Path, tables: tuple[schema.Table, ...], conninfo: str,
                  progress: Progress | None = None) -> dict[str, int]:
    import psycopg

    counts = {}
    try:
        conn = psycopg.connect(conninfo, connect_timeout=3)
    except psycopg.OperationalError as exc:
        from ..connect import explain
        from ..config import ServerConfig

        raise explain("postgres", ServerConfig("postgres", conninfo, True), exc) from None
    current = "(setup)"
    try:
        with conn.transaction():
            conn.execute("SET LOCAL TIME ZONE 'UTC'")
            for table in reversed(tables):
                conn.execute(f'DROP TABLE IF EXISTS "{table.name}" CASCADE')
            for table in tables:
                conn.execute(schema.create_table(_bare_table(table), "postgres"))
            for table in tables:
                current = table.name
                columns = ", ".join(f'"{c}"' for c in table.column_names)
                with conn.cursor() as cur:
                    with cur.copy(f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)') as copy:
                        with open(directory / f"{table.name}.csv", "rb") as fh:
                            while chunk := fh.read(1 << 20):
                                copy.write(chunk)
                    counts[table.name] = cur.rowcount
                if progress:
                    progress(counts[table.name])
            for table in tables:
                current = table.name
                for statement in _constraint_statements(table, "postgres"):
                    conn.execute(statement)
        conn.autocommit = True
        for table in tables:
            conn.execute(f'ANALYZE "{table.name}"')
    except psycopg.Error as exc:
        raise _fail("PostgreSQL", current, exc) from None
    finally:
        conn.close()
    return counts


# --------------------------------------------------------------------------- MySQL / MariaDB

def _mysql_connect(params: dict):
    import pymysql

    from ..connect import explain
    from ..config import ServerConfig

    try:
        return pymysql.connect(**params, local_infile=True, autocommit=True)
    except pymysql.err.OperationalError as exc:
        url = f"mysql://{params['user']}@{params['host']}:{params['port']}/{params.get('database', '')}"
        raise explain("mysql", ServerConfig("mysql", url, True), exc) from None


def _staging_name(database: str, role: str) -> str:
    import hashlib

    return f"tmp_{role}_{hashlib.sha1(database.encode()).hexdigest()[:16]}"


def load_mysql(directory: Path, tables: tuple[schema.Table, ...], params: dict, database: str,
               progress: Progress | None = None) -> dict[str, int]:
    import pymysql

    stage, old = _staging_name(database, "stage"), _staging_name(database, "old")
    conn = _mysql_connect({k: v for k, v in params.items() if k != "database"})
    counts = {}
    current = "(setup)"
    try:
        with conn.cursor() as cur:
            for db in (stage, old):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            cur.execute(f"CREATE DATABASE `{stage}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 "
                        "COLLATE utf8mb4_unicode_ci")
            cur.execute(f"USE `{stage}`")
            cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0, time_zone = '+00:00'")
            for table in tables:
                cur.execute(schema.create_table(table, "mysql"))
            local_infile = _local_infile_allowed(cur)
            for table in tables:
                current = table.name
                path = directory / f"{table.name}.csv"
                if local_infile:
                    counts[table.name] = _load_data_infile(cur, table, path)
                else:
                    counts[table.name] = _insert_batches(cur, table, path)
                if progress:
                    progress(counts[table.name])
            cur.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")
            current = "(swap)"
            cur.execute(f"CREATE DATABASE `{old}`")
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [database])
            existing = {r[0] for r in cur.fetchall()}
            renames = [f"`{database}`.`{t.name}` TO `{old}`.`{t.name}`" for t in tables if t.name in existing]
            renames += [f"`{stage}`.`{t.name}` TO `{database}`.`{t.name}`" for t in tables]
            cur.execute("SET SESSION foreign_key_checks = 0")
            cur.execute("RENAME TABLE " + ", ".join(renames))  # one statement: all tables at once
            cur.execute("SET SESSION foreign_key_checks = 1")
            cur.execute(f"USE `{database}`")
            for table in tables:
                cur.execute(f"ANALYZE TABLE `{table.name}`")
                cur.fetchall()
    except pymysql.err.MySQLError as exc:
        raise _fail("MySQL", current, exc) from None
    finally:
        try:
            with conn.cursor() as cur:
                for db in (stage, old):
                    cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        finally:
            conn.close()
    return counts


def _local_infile_allowed(cur) -> bool:
    cur.execute("SELECT @@GLOBAL.local_infile")
    return bool(int(cur.fetchone()[0]))


def _load_data_infile(cur, table: schema.Table, path: Path) -> int:
    variables = [f"@v{i}" for i in range(len(table.columns))]
    assignments = ", ".join(
        f"`{col.name}` = NULLIF({var}, '')" if col.nullable else f"`{col.name}` = {var}"
        for col, var in zip(table.columns, variables))
    sql = (f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table.name}` CHARACTER SET utf8mb4 "
           "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
           "LINES TERMINATED BY '\\n' IGNORE 1 LINES "
           f"({', '.join(variables)}) SET {assignments}")
    loaded = cur.execute(sql, [str(path)])
    cur.execute("SHOW COUNT(*) WARNINGS")
    warnings = cur.fetchone()[0]
    if warnings:
        cur.execute("SHOW WARNINGS LIMIT 1")
        level, code, message = cur.fetchone()
        raise DatasetError(f"{path.name}: {warnings} row(s) did not load cleanly into MySQL, nothing was changed "
                           f"(first: {message})")
    return loaded


def _insert_batches(cur, table: schema.Table, path: Path, batch: int = 5000) -> int:
    columns = ", ".join(f"`{c}`" for c in table.column_names)
    sql = f"INSERT INTO `{table.name}` ({columns}) VALUES ({', '.join(['%s'] * len(table.columns))})"
    total, rows = 0, []
    for row in _csv_rows(path):
        rows.append([v if v != "" else None for v in row])
        if len(rows) == batch:
            total += cur.executemany(sql, rows)  # PyMySQL sends one multi-row INSERT per batch
            rows = []
    if rows:
        total += cur.executemany(sql, rows)
    return total
