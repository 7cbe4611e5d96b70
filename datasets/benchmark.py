#!/usr/bin/env python3
"""Benchmark: the course's loaders against each store's own bulk tool, on the `large` shop.

    .venv/bin/python datasets/benchmark.py                # all stores
    .venv/bin/python datasets/benchmark.py postgres mysql  # some

For each store it loads the same CSV files twice, once with the course's loader (`dbcourse data
load`, the code notebooks use) and once with the store's own tool doing the same work:

* PostgreSQL: `psql` with `\\copy` into the same tables, then the same keys and ANALYZE;
* MySQL/MariaDB: the `mariadb` (or `mysql`) client with LOAD DATA LOCAL INFILE;
* SQLite: the `sqlite3` shell with `.import --csv`;
* Redis: `redis-cli --pipe` fed with the same commands in Redis's wire protocol (producing that
  protocol from the CSV files is part of using the tool, so it is timed too);
* MongoDB: `mongoimport` when installed (it is not, with the SecantusDB stand-in).

It prints rows (or commands) per second for both and the ratio. The target: the course's loader
reaches at least 70% of the native tool's throughput. Results are recorded in datasets/README.md.
Each run takes a few minutes and uses the namespace dbc_benchmark (dropped at the end).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dbcourse import connect, datasets, namespaces
from dbcourse.config import get_settings
from dbcourse.datasets import files, load_nosql, load_sql, schema

NS = "dbc_benchmark"
REPEAT = 3


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def best_of(func, repeat: int = REPEAT) -> float:
    return min(timed(func) for _ in range(repeat))


def postgres(directory: Path, rows: int) -> tuple[float, float]:
    namespaces.create_postgres(NS)
    ours = best_of(lambda: datasets.load("shop", "postgres", namespace=NS, scale="large"))
    server = get_settings().postgres
    script = ["SET TIME ZONE 'UTC';", "BEGIN;"]
    script += [f'DROP TABLE IF EXISTS "{t.name}" CASCADE;' for t in reversed(schema.SHOP_TABLES)]
    script += [schema.create_table(load_sql._bare_table(t), "postgres") + ";" for t in schema.SHOP_TABLES]
    script += [f"\\copy \"{t.name}\" FROM '{directory / (t.name + '.csv')}' WITH (FORMAT csv, HEADER true)"
               for t in schema.SHOP_TABLES]
    script += [s + ";" for t in schema.SHOP_TABLES for s in load_sql._constraint_statements(t, "postgres")]
    script += ["COMMIT;"] + [f'ANALYZE "{t.name}";' for t in schema.SHOP_TABLES]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write("\n".join(script))
    env = dict(os.environ, PGPASSWORD=server.password or "")
    command = ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.host, "-p", str(server.port), "-U",
               server.user, "-d", NS, "-f", fh.name]
    native = best_of(lambda: subprocess.run(command, env=env, check=True, capture_output=True))
    os.unlink(fh.name)
    return ours, native


def mysql(directory: Path, rows: int) -> tuple[float, float]:
    namespaces.create_mysql(NS)
    ours = best_of(lambda: datasets.load("shop", "mysql", namespace=NS, scale="large"))
    server = get_settings().mysql
    statements = [f"DROP DATABASE IF EXISTS `{NS}_native`",
                  f"CREATE DATABASE `{NS}_native` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                  f"USE `{NS}_native`", "SET foreign_key_checks = 0, unique_checks = 0, time_zone = '+00:00'"]
    statements += [schema.create_table(t, "mysql") for t in schema.SHOP_TABLES]
    for t in schema.SHOP_TABLES:
        variables = [f"@v{i}" for i in range(len(t.columns))]
        assignments = ", ".join(f"`{c.name}` = NULLIF({v}, '')" if c.nullable else f"`{c.name}` = {v}"
                                for c, v in zip(t.columns, variables))
        statements.append(
            f"LOAD DATA LOCAL INFILE '{directory / (t.name + '.csv')}' INTO TABLE `{t.name}` CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
            f"IGNORE 1 LINES ({', '.join(variables)}) SET {assignments}")
    statements += [f"ANALYZE TABLE `{t.name}`" for t in schema.SHOP_TABLES]
    statements.append(f"DROP DATABASE `{NS}_native`")
    client = shutil.which("mariadb") or shutil.which("mysql")
    command = [client, "--no-defaults", "--local-infile=1", "-h", server.host, "-P", str(server.port), "-u",
               server.user, f"-p{server.password}", "-e", ";\n".join(statements)]
    native = best_of(lambda: subprocess.run(command, check=True, capture_output=True))
    return ours, native


def sqlite(directory: Path, rows: int) -> tuple[float, float]:
    target = Path(tempfile.mkdtemp()) / "shop.db"
    ours = best_of(lambda: datasets.load("shop", "sqlite", namespace=NS, scale="large", sqlite_path=target))

    def native():
        target.unlink(missing_ok=True)
        lines = ["PRAGMA journal_mode = OFF;", "PRAGMA synchronous = OFF;"]
        lines += [schema.create_table(t, "sqlite") + ";" for t in schema.SHOP_TABLES]
        lines += [f".import --csv --skip 1 '{directory / (t.name + '.csv')}' {t.name}" for t in schema.SHOP_TABLES]
        lines += ["ANALYZE;"]
        subprocess.run(["sqlite3", str(target)], input="\n".join(lines), text=True, check=True, capture_output=True)

    theirs = best_of(native)
    shutil.rmtree(target.parent, ignore_errors=True)
    return ours, theirs


def redis(directory: Path, rows: int) -> tuple[float, float]:
    ours = best_of(lambda: datasets.load("shop", "redis", namespace=NS, scale="large"))
    namespaces.clear_redis(NS)
    server = get_settings().redis

    def native():
        # redis-cli --pipe needs the commands in Redis's protocol: producing them from the CSV
        # files is part of using the tool, so it is timed too (with the same generator).
        payload = b"".join(load_nosql.resp(*c) for c in load_nosql.redis_commands(directory, f"{NS}:"))
        subprocess.run(["redis-cli", "-h", server.host, "-p", str(server.port), "--pipe"], input=payload,
                       check=True, capture_output=True)
    theirs = best_of(native)
    return ours, theirs


def mongodb(directory: Path, rows: int) -> tuple[float, float | None]:
    namespaces.create_mongodb(NS)
    ours = timed(lambda: datasets.load("shop", "mongodb", namespace=NS, scale="large"))
    return ours, None  # no mongoimport on this machine: see the module docstring


STORES = {"postgres": postgres, "mysql": mysql, "sqlite": sqlite, "redis": redis, "mongodb": mongodb}


def main(argv: list[str]) -> int:
    chosen = argv or list(STORES)
    directory = files.verified_folder("shop", "large")
    rows = datasets.expected_rows("shop", "large")
    print(f"large shop: {rows:,} rows in {len(schema.SHOP_TABLES)} CSV files; best of {REPEAT} runs\n")
    print(f"{'store':<10} {'course loader':>16} {'native tool':>16} {'ratio':>7}")
    results = []
    try:
        for name in chosen:
            units = rows
            if name == "redis":
                units = sum(1 for _ in load_nosql.redis_commands(directory, "x:"))
            ours, native = STORES[name](directory, rows)
            ratio = f"{native / ours:.0%}" if native else "n/a"
            theirs = f"{units / native:,.0f}/s" if native else "n/a"
            unit = "cmds" if name == "redis" else "rows"
            print(f"{name:<10} {units / ours:>12,.0f} {unit}/s {theirs:>16} {ratio:>7}   ({ours:.1f} s vs "
                  f"{native:.1f} s)" if native else f"{name:<10} {units / ours:>12,.0f} {unit}/s {'n/a':>16} "
                  f"{'n/a':>7}   ({ours:.1f} s)", flush=True)
            results.append((name, ours, native))
    finally:
        namespaces.reset_all(match=NS)
    below = [n for n, ours, native in results if native and native / ours < 0.7]
    if below:
        print(f"\nbelow the 70% target: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
