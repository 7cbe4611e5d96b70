#!/usr/bin/env python3
"""Write the pip section of environment.yml (and binder/environment.yml) from requirements.txt.

requirements.txt is the single source of the Python pins; run this after changing it.
tests/test_environment.py fails when the files disagree.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEADER = """\
# The course environment for conda and Binder (repo2docker).
# Python packages: the same pins as requirements.txt (scripts/sync_environment.py writes them;
# tests/test_environment.py checks). Database servers come from conda-forge, so that
# `dbcourse services up` can start them natively where there is no Docker.
name: dbcourse
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - postgresql>=15
  - mysql-server>=8.0
  - redis-server>=7
  - mongodb>=7
  - pip:
"""


def pins() -> list[str]:
    lines = []
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def render() -> str:
    return HEADER + "".join(f"      - {pin}\n" for pin in pins())


def main() -> None:
    text = render()
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
