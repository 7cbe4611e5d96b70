"""dbcourse.setup: parameters, fresh namespaces, isolation, and a down server."""

from __future__ import annotations

import time

import pytest

import dbcourse
from dbcourse import namespaces
from dbcourse.errors import BadParameter, ServiceUnavailable
from dbcourse.workspace import default_namespace

from .conftest import free_port

ALL = ["sqlite", "postgres", "mysql", "mongodb", "redis"]


@pytest.mark.parametrize("name, expected", [
    ("02-postgresql", "dbc_02_postgresql"),
    ("Grade: Alice O'Brien / 01", "dbc_grade_alice_o_brien_01"),
    ("dbc_already", "dbc_already"),
])
def test_namespace_names_are_safe_identifiers(name, expected):
    assert namespaces.namespace_name(name) == expected


def test_long_namespace_names_stay_distinct():
    a = namespaces.namespace_name("grade_" + "x" * 70 + "_alice")
    b = namespaces.namespace_name("grade_" + "x" * 70 + "_bob")
    assert len(a) == len(b) == 63 and a != b


@pytest.mark.parametrize("bad", ["", "   ", "---"])
def test_empty_namespace_is_refused(bad):
    with pytest.raises(BadParameter):
        namespaces.namespace_name(bad)


def test_the_namespace_follows_where_the_notebook_runs(tmp_path, monkeypatch):
    (tmp_path / "solutions").mkdir()
    monkeypatch.chdir(tmp_path / "solutions")
    assert default_namespace("03-mysql") == "03-mysql_solution"
    graded = tmp_path / "autograded" / "alice" / "03_mysql"
    graded.mkdir(parents=True)
    monkeypatch.chdir(graded)
    assert default_namespace("03-mysql") == "grade_alice_03-mysql"
    monkeypatch.chdir(tmp_path)
    assert default_namespace("03-mysql") == "03-mysql"


@pytest.mark.parametrize("kwargs, message", [
    (dict(scale="huge"), "scale='huge'"),
    (dict(services=["oracle"]), "unknown store 'oracle'"),
    (dict(services=["sqlite"], data={"postgres": "shop"}), "data: 'postgres'"),
    (dict(services=["postgres"], urls={"postgres": "not a url"}), "postgres_url='not a url'"),
    (dict(namespace=42), "namespace=42"),
])
def test_bad_parameters_name_the_parameter(kwargs, message):
    with pytest.raises(BadParameter, match=message.replace("(", r"\(").replace(")", r"\)")):
        dbcourse.setup("test-bad", **kwargs)


def test_setup_gives_a_fresh_isolated_namespace(capsys):
    ns = "test_ws_fresh"
    ws = dbcourse.setup("ignored", services=ALL, namespace=ns)
    assert ws.namespace == "dbc_test_ws_fresh"
    out = capsys.readouterr().out
    assert "Namespace dbc_test_ws_fresh is ready" in out
    with ws.connect_postgres() as conn:
        conn.execute("CREATE TABLE marker (x int)")
    conn = ws.connect_mysql()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE marker (x int)")
    conn.close()
    ws.mongo_db.marker.insert_one({"x": 1})
    ws.redis.set(ws.key("marker"), 1)
    ws.path("marker.txt").write_text("x")
    ws.close()

    again = dbcourse.setup("ignored", services=ALL, namespace=ns, quiet=True)
    with again.connect_postgres() as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'marker'").fetchone()[0] == 0
    conn = again.connect_mysql()
    with conn.cursor() as cur:
        assert cur.execute("SHOW TABLES") == 0
    conn.close()
    assert again.mongo_db.list_collection_names() == []
    assert again.redis.exists(again.key("marker")) == 0
    assert not again.path("marker.txt").exists()

    # another namespace never sees this one
    other = dbcourse.setup("ignored", services=["redis"], namespace="test_ws_other", quiet=True)
    again.redis.set(again.key("only-here"), 1)
    assert other.redis.exists(other.key("only-here")) == 0
    assert namespaces.reset_all(["postgres", "mysql", "mongodb", "redis"], match="dbc_test_ws_")
    assert "dbc_test_ws_fresh" not in namespaces.list_postgres()
    again.close()
    other.close()


def test_setup_with_a_down_server_fails_fast_naming_it():
    url = f"redis://127.0.0.1:{free_port()}/0"
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="Redis") as info:
        dbcourse.setup("test-down", services=["sqlite", "redis"], urls={"redis": url}, quiet=True)
    assert time.monotonic() - start < 3
    assert "dbcourse services up" in str(info.value)


def test_a_kernel_holding_a_transaction_does_not_block_a_fresh_namespace():
    """An earlier run's open transaction (metadata lock) would make MySQL's DROP DATABASE wait a day."""
    ns = "test_ws_locked"
    first = dbcourse.setup("ignored", services=["mysql"], namespace=ns, quiet=True)
    holder = first.connect_mysql()
    with holder.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1)")
        holder.commit()
        cur.execute("SELECT * FROM t")  # a read inside a transaction that is never ended
    start = time.monotonic()
    again = dbcourse.setup("ignored", services=["mysql"], namespace=ns, quiet=True)
    assert time.monotonic() - start < namespaces.MYSQL_LOCK_WAIT_S
    conn = again.connect_mysql()
    with conn.cursor() as cur:
        assert cur.execute("SHOW TABLES") == 0
    conn.close()
    holder.close()
    namespaces.drop_mysql(again.namespace)


def test_reset_drops_the_roles_and_users_a_namespace_created():
    import psycopg
    from psycopg import sql

    from dbcourse.connect import connect_mysql, connect_postgres

    role = "dbc_test_ws_acct_reader"
    with connect_postgres(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
    my = connect_mysql(database="")
    with my.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@'%%'", [role])
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY 'x'", [role])
    report = namespaces.reset_all(["postgres", "mysql"], match="dbc_test_ws_acct")
    assert any("1 role(s)" in line for line in report), report
    assert any("1 user(s)" in line for line in report), report
    with connect_postgres(autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [role]).fetchone()[0] == 0
    with my.cursor() as cur:
        cur.execute("SELECT count(*) FROM mysql.user WHERE user = %s", [role])
        assert cur.fetchone()[0] == 0
    my.close()
    # a role of another prefix is left alone
    with connect_postgres(autocommit=True) as conn:
        assert not namespaces.drop_postgres_roles("dbc_test_ws_nobody_")
        with pytest.raises(psycopg.Error):
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
