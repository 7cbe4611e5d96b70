"""One source of truth for versions: requirements.txt; environment.yml files must agree."""

from __future__ import annotations

import yaml


def pins(text: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def pip_section(path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    [pip] = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    return pip


def test_environment_yml_has_the_same_pins_as_requirements(root):
    expected = pins((root / "requirements.txt").read_text())
    assert all("==" in p for p in expected), "pin every direct dependency with =="
    for path in (root / "environment.yml", root / "binder" / "environment.yml"):
        assert pip_section(path) == expected, f"{path.name} differs: run scripts/sync_environment.py"


def test_environment_yml_brings_the_servers_and_python(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    names = {str(d).split("=")[0].split(">")[0] for d in env["dependencies"] if isinstance(d, str)}
    assert {"python", "pip", "postgresql", "mysql-server", "redis-server", "mongodb"} <= names
    assert env["channels"] == ["conda-forge"]


def test_the_ipython_sql_variant_only_swaps_the_magics(root):
    extra = pins((root / "requirements-ipython-sql.txt").read_text())
    assert extra == ["ipython-sql==0.5.0", "prettytable<3.12"]
    assert any(p.startswith("jupysql==") for p in pins((root / "requirements.txt").read_text()))
