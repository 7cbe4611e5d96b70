"""Services: status of the running servers, fail-fast messages, and the start/stop life cycle.

Nothing here is mocked: "down" means a port where no server listens, and the life-cycle tests
start real servers on spare ports in a temporary folder and stop them again.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from dbcourse import connect, services
from dbcourse.config import load_settings
from dbcourse.errors import ServiceUnavailable
from dbcourse.services import native

from .conftest import free_port


def test_every_course_server_is_up():
    statuses = services.status()
    assert [s.name for s in statuses] == ["postgres", "mysql", "mongodb", "redis"]
    for s in statuses:
        assert s.up, f"{s.name} is down: {s.detail} (fix: {s.fix})"
        assert s.mode in ("native", "stand-in", "docker", "existing", "existing (stand-in)")
        assert s.version
        assert "course:course@" not in s.url  # passwords are masked


def test_status_command_prints_the_table():
    result = subprocess.run(["dbcourse", "services", "status"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header[:3] == ["service", "how", "it"]
    assert "PostgreSQL" in result.stdout and "up" in result.stdout


DOWN_CASES = {
    "postgres": lambda port: connect.connect_postgres(url=f"postgresql://course:course@127.0.0.1:{port}/course"),
    "mysql": lambda port: connect.connect_mysql(url=f"mysql://course:course@127.0.0.1:{port}/course"),
    "mongodb": lambda port: connect.mongo_client(url=f"mongodb://127.0.0.1:{port}/?directConnection=true"),
    "redis": lambda port: connect.redis_client(url=f"redis://127.0.0.1:{port}/0"),
}


@pytest.mark.parametrize("service", list(DOWN_CASES))
def test_a_down_server_fails_fast_with_the_fix(service):
    port = free_port()
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable) as info:
        DOWN_CASES[service](port)
    assert time.monotonic() - start < 3
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "dbcourse services up" in message
    # IPython shows this instead of a traceback
    rendered = info.value._render_traceback_()
    assert "Traceback" not in "".join(rendered) and "How to fix" in "".join(rendered)


def test_a_wrong_password_is_explained(settings):
    url = settings.postgres.url.replace(f":{settings.postgres.password}@", ":not-the-password@")
    with pytest.raises(ServiceUnavailable, match="refused the login"):
        connect.connect_postgres(url=url)
    url = settings.mysql.url.replace(f":{settings.mysql.password}@", ":not-the-password@")
    with pytest.raises(ServiceUnavailable, match="refused the login"):
        connect.connect_mysql(url=url)


def _temp_settings(tmp_path, **ports):
    environ = {"DBCOURSE_SERVICES_DIR": str(tmp_path / "services")}
    for name, port in ports.items():
        environ[f"DBCOURSE_{name.upper()}_PORT"] = str(port)
    return load_settings(root=tmp_path, environ=environ)


def test_redis_life_cycle_native(tmp_path):
    settings = _temp_settings(tmp_path, redis=free_port())
    try:
        before = services.service_status("redis", settings)
        assert not before.up and before.mode == "down" and before.fix == "dbcourse services up redis"

        [status] = services.up(["redis"], settings=settings, log=lambda _: None)
        assert status.up and status.mode == "native" and status.started
        pid = native.Redis(settings).pid()
        assert pid and native.pid_alive(pid)

        [again] = services.up(["redis"], settings=settings, log=lambda _: None)  # idempotent
        assert again.up and not again.started and native.Redis(settings).pid() == pid

        assert services.down(["redis"], settings=settings, log=lambda _: None) == ["redis"]
        assert not native.pid_alive(pid)
        assert not services.service_status("redis", settings).up
    finally:
        services.down(["redis"], settings=settings, log=lambda _: None)


def test_postgres_life_cycle_native(tmp_path):
    settings = _temp_settings(tmp_path, postgres=free_port())
    server = native.Postgres(settings)
    try:
        [status] = services.up(["postgres"], settings=settings, log=lambda _: None)
        assert status.up and status.mode == "native", status.detail
        # The course's login works, and its database exists.
        with connect.connect_postgres(url=settings.postgres.url) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == ("course", "course")
        pid = server.pid()
        services.down(["postgres"], settings=settings, log=lambda _: None)
        assert not native.pid_alive(pid)
        with pytest.raises(ServiceUnavailable):
            connect.connect_postgres(url=settings.postgres.url)
    finally:
        services.down(["postgres"], settings=settings, log=lambda _: None)
        if str(server.base).startswith("/var/lib/dbcourse/"):
            shutil.rmtree(server.base.parent, ignore_errors=True)


def test_mysql_life_cycle_native(tmp_path):
    settings = _temp_settings(tmp_path, mysql=free_port())
    try:
        [status] = services.up(["mysql"], settings=settings, log=lambda _: None)
        assert status.up and status.mode == "native", status.detail
        conn = connect.connect_mysql(url=settings.mysql.url)
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), DATABASE(), @@character_set_server, @@local_infile")
            user, database, charset, local_infile = cur.fetchone()
        conn.close()
        assert user.startswith("course@") and database == "course"
        assert charset == "utf8mb4" and local_infile == 1
        pid = native.MySQL(settings).pid()
        services.down(["mysql"], settings=settings, log=lambda _: None)
        assert not native.pid_alive(pid)
    finally:
        services.down(["mysql"], settings=settings, log=lambda _: None)


def test_down_never_stops_a_server_the_course_did_not_start(tmp_path):
    port = free_port()
    own = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    settings = _temp_settings(tmp_path, redis=port)
    try:
        assert native.wait_until(lambda: services.service_status("redis", settings).up, 10)
        [status] = services.up(["redis"], settings=settings, log=lambda _: None)
        assert status.mode == "existing" and not status.started
        assert services.down(["redis"], settings=settings, log=lambda _: None) == []
        assert own.poll() is None, "the learner's own Redis was stopped"
    finally:
        own.terminate()
        own.wait(10)
