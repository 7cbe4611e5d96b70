"""Docker Compose and Binder: the files agree with the course's configuration, and the Binder
start path brings the servers up natively, for real, through the same code as `make lab`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dbcourse.config import DEFAULTS, load_settings
from dbcourse.services import native

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yml"
DATABASES = {"postgres": ("DBCOURSE_POSTGRES_PORT", 5432), "mysql": ("DBCOURSE_MYSQL_PORT", 3306),
             "mongodb": ("DBCOURSE_MONGODB_PORT", 27017), "redis": ("DBCOURSE_REDIS_PORT", 6379)}
DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def defaults_in(text: str) -> dict[str, str]:
    return dict(DEFAULT.findall(text))


def test_compose_file_is_valid_for_docker_compose():
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is needed to validate docker/compose.yml: apt-get install docker-compose"
    result = subprocess.run([tool, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_services_images_and_volumes(compose):
    assert set(compose["services"]) == {*DATABASES, "lab"}
    images = {name: compose["services"][name]["image"] for name in DATABASES}
    assert images["postgres"].startswith("postgres:") and images["mysql"].startswith("mysql:8")
    assert images["mongodb"].startswith("mongo:") and images["redis"].startswith("redis:")
    for name in DATABASES:
        [volume] = compose["services"][name]["volumes"][:1]
        assert volume.split(":")[0] in compose["volumes"], f"{name} should keep its data in a named volume"


@pytest.mark.parametrize("service", list(DATABASES))
def test_ports_are_the_course_ports_on_loopback_only(compose, service):
    variable, internal = DATABASES[service]
    [mapping] = compose["services"][service]["ports"]
    assert mapping.startswith("127.0.0.1:"), "bind to 127.0.0.1 only"
    assert mapping.endswith(f":{internal}")
    assert defaults_in(mapping) == {variable: DEFAULTS[variable]}


def test_lab_port_is_on_loopback_only(compose):
    assert all(p.startswith("127.0.0.1:") for p in compose["services"]["lab"]["ports"])


@pytest.mark.parametrize("service", list(DATABASES))
def test_healthchecks_and_the_lab_waits_for_them(compose, service):
    check = compose["services"][service]["healthcheck"]
    assert check["test"] and check["retries"] >= 10
    assert compose["services"]["lab"]["depends_on"][service] == {"condition": "service_healthy"}


def test_credentials_have_the_course_defaults(compose):
    text = COMPOSE.read_text()
    found = defaults_in(text)
    for key in ("DBCOURSE_USER", "DBCOURSE_PASSWORD", "DBCOURSE_DATABASE", *(v for v, _ in DATABASES.values())):
        assert found.get(key) == DEFAULTS[key], f"{key} default in compose.yml differs from dbcourse/config.py"
    pg = compose["services"]["postgres"]["environment"]
    assert (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]) == (
        "${DBCOURSE_USER:-course}", "${DBCOURSE_PASSWORD:-course}", "${DBCOURSE_DATABASE:-course}")
    my = compose["services"]["mysql"]["environment"]
    assert (my["MYSQL_USER"], my["MYSQL_PASSWORD"], my["MYSQL_DATABASE"]) == (
        "${DBCOURSE_USER:-course}", "${DBCOURSE_PASSWORD:-course}", "${DBCOURSE_DATABASE:-course}")
    assert "--local-infile=1" in compose["services"]["mysql"]["command"]
    assert "--replSet" in compose["services"]["mongodb"]["command"]
    lab = compose["services"]["lab"]["environment"]
    assert lab["DBCOURSE_POSTGRES_URL"].startswith("postgresql://${DBCOURSE_USER:-course}:")
    assert lab["DBCOURSE_MONGODB_URL"] == "mongodb://mongodb:27017/?directConnection=true"
    grants = ROOT / "docker" / "mysql-init" / "01-course-grants.sh"
    assert os.access(grants, os.X_OK) and "GRANT ALL PRIVILEGES ON *.*" in grants.read_text()


def test_dockerfile_uses_the_course_environment():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11" in text
    assert "requirements.txt" in text and "USER jovyan" in text and "jupyterhub==" in text
    assert os.access(ROOT / "docker" / "start-lab.sh", os.X_OK)


def test_binder_files():
    binder = ROOT / "binder"
    assert (binder / "environment.yml").read_text() == (ROOT / "environment.yml").read_text()
    for script in ("postBuild", "start"):
        assert os.access(binder / script, os.X_OK), f"binder/{script} must be executable"
    assert 'exec "$@"' in (binder / "start").read_text()


def test_binder_start_brings_the_servers_up_natively(tmp_path):
    """Run binder/start as repo2docker does, on spare ports in a fresh folder: every server must
    start natively (the stand-in for MongoDB here) and answer; then stop them all."""
    env = dict(os.environ, DBCOURSE_SERVICES_DIR=str(tmp_path / "services"))
    for variable, _ in DATABASES.values():
        env[variable] = str(free_port())
    try:
        result = subprocess.run([str(ROOT / "binder" / "start"), "dbcourse", "services", "status", "--json"],
                                env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        statuses = json.loads(result.stdout[result.stdout.index("["):])
        assert {s["name"]: s["up"] for s in statuses} == dict.fromkeys(DATABASES, True)
        assert {s["mode"] for s in statuses} <= {"native", "stand-in"}
        assert all(s["url"].split(":")[-1].split("/")[0] in {env[v] for v, _ in DATABASES.values()}
                   for s in statuses if s["name"] != "mongodb")
    finally:
        down = subprocess.run(["dbcourse", "services", "down"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert "stopped" in down.stdout
        base = native.Postgres(load_settings(environ=env)).base  # as root, PostgreSQL may live elsewhere
        if str(base).startswith("/var/lib/dbcourse/"):
            shutil.rmtree(base.parent, ignore_errors=True)
