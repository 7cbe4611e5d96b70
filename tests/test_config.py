"""Configuration: defaults, .env files, environment variables, URL masking, bad values."""

from pathlib import Path

import pytest

from dbcourse.config import DEFAULTS, ConfigError, load_settings, mask_url, read_env_file


def test_defaults_point_at_the_course_ports(tmp_path):
    s = load_settings(root=tmp_path, environ={})
    assert s.postgres.url == "postgresql://course:course@127.0.0.1:55432/course"
    assert s.mysql.url == "mysql://course:course@127.0.0.1:53306/course"
    assert s.mongodb.url == "mongodb://127.0.0.1:57017/?directConnection=true"
    assert s.redis.url == "redis://127.0.0.1:56379/0"
    assert (s.postgres.port, s.mysql.port, s.mongodb.port, s.redis.port) == (55432, 53306, 57017, 56379)
    assert s.services_dir == tmp_path / ".services"
    assert s.sqlite_dir == tmp_path / ".work" / "sqlite"
    assert not s.postgres.url_overridden


def test_env_file_then_environment_take_precedence(tmp_path):
    (tmp_path / ".env").write_text(
        "# a comment\n"
        "DBCOURSE_POSTGRES_PORT=6000\n"
        "export DBCOURSE_PASSWORD='s3cret: with spaces'\n"
        "DBCOURSE_REDIS_PORT=7000  # trailing comment\n"
        "\n")
    s = load_settings(root=tmp_path, environ={"DBCOURSE_REDIS_PORT": "7100"})
    assert s.postgres.port == 6000
    assert s.postgres.password == "s3cret%3A%20with%20spaces"  # quoted into the URL
    assert s.redis.port == 7100  # the environment wins over .env
    assert s.mysql.port == int(DEFAULTS["DBCOURSE_MYSQL_PORT"])


def test_whole_url_override(tmp_path):
    url = "postgresql://alice:pw@db.example.org:5432/shop"
    s = load_settings(root=tmp_path, environ={"DBCOURSE_POSTGRES_URL": url})
    assert s.postgres.url == url and s.postgres.url_overridden and not s.postgres.is_local
    assert s.postgres.database == "shop" and s.postgres.user == "alice"


def test_url_with_the_wrong_scheme_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="DBCOURSE_REDIS_URL.*redis://"):
        load_settings(root=tmp_path, environ={"DBCOURSE_REDIS_URL": "http://127.0.0.1:6379"})


def test_bad_port_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="DBCOURSE_MYSQL_PORT='abc'"):
        load_settings(root=tmp_path, environ={"DBCOURSE_MYSQL_PORT": "abc"})
    with pytest.raises(ConfigError, match="DBCOURSE_MYSQL_PORT='70000'"):
        load_settings(root=tmp_path, environ={"DBCOURSE_MYSQL_PORT": "70000"})


def test_malformed_env_file_line_is_reported_with_its_number(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DBCOURSE_HOST=127.0.0.1\nthis is not a setting\n")
    with pytest.raises(ConfigError, match=r"line 2"):
        read_env_file(env)


@pytest.mark.parametrize("url, masked", [
    ("postgresql://course:course@127.0.0.1:55432/course", "postgresql://course:***@127.0.0.1:55432/course"),
    ("mysql+pymysql://u:p%40ss@db:3306/x?charset=utf8mb4", "mysql+pymysql://u:***@db:3306/x?charset=utf8mb4"),
    ("redis://:secret@localhost:6379/0", "redis://:***@localhost:6379/0"),
    ("mongodb://127.0.0.1:57017/?directConnection=true", "mongodb://127.0.0.1:57017/?directConnection=true"),
])
def test_mask_url_hides_only_the_password(url, masked):
    assert mask_url(url) == masked
    assert "secret" not in mask_url(url) and "p%40ss" not in mask_url(url)


def test_env_example_lists_every_default(root: Path):
    example = read_env_file(root / ".env.example")
    for key, value in DEFAULTS.items():
        assert example.get(key) == value, f".env.example should set {key}={value}"
