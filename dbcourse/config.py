"""Every connection setting of the course, in one place.

Settings come from, in order of precedence:

1. environment variables (``DBCOURSE_*``),
2. a ``.env`` file at the root of the course (copy ``.env.example`` to start one),
3. the defaults below, which point at the course's own services.

The defaults use course-specific ports (55432, 53306, 57017, 56379) so that the course
never collides with a PostgreSQL, MySQL, MongoDB or Redis that already runs on the
learner's machine on the standard ports. ``docker/compose.yml`` reads the same variables
with the same defaults (a unit test keeps the two in step).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

#: The defaults: the single source of truth for ports and credentials.
DEFAULTS: dict[str, str] = {
    "DBCOURSE_HOST": "127.0.0.1",
    "DBCOURSE_USER": "course",
    "DBCOURSE_PASSWORD": "course",
    "DBCOURSE_DATABASE": "course",
    "DBCOURSE_POSTGRES_PORT": "55432",
    "DBCOURSE_MYSQL_PORT": "53306",
    "DBCOURSE_MONGODB_PORT": "57017",
    "DBCOURSE_REDIS_PORT": "56379",
}

#: Variables that override a whole URL (then host, port and credentials above are ignored).
URL_VARIABLES = {
    "postgres": "DBCOURSE_POSTGRES_URL",
    "mysql": "DBCOURSE_MYSQL_URL",
    "mongodb": "DBCOURSE_MONGODB_URL",
    "redis": "DBCOURSE_REDIS_URL",
}

#: The four database servers of the course, in the order the course introduces them.
SERVER_NAMES = ("postgres", "mysql", "mongodb", "redis")


class ConfigError(ValueError):
    """A setting is malformed; the message names the variable and how to fix it."""


def find_root() -> Path:
    """The folder that holds the course (README.md, notebooks/, solutions/...)."""
    if os.environ.get("DBCOURSE_HOME"):
        return Path(os.environ["DBCOURSE_HOME"]).expanduser().resolve()
    return Path(__file__).resolve().parent.parent


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(
                f"{path}, line {number}: expected KEY=value, got {raw!r}. "
                "Fix or delete that line (see .env.example for the format)."
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``postgresql://course:***@host:5432/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{userinfo}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class ServerConfig:
    """Where one database server of the course is reached."""

    name: str  # postgres | mysql | mongodb | redis
    url: str
    #: True when the URL came from DBCOURSE_<NAME>_URL rather than host/port defaults.
    url_overridden: bool = False

    @property
    def parts(self):
        return urlsplit(self.url)

    @property
    def host(self) -> str:
        return self.parts.hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        default_ports = {"postgres": 5432, "mysql": 3306, "mongodb": 27017, "redis": 6379}
        return self.parts.port or default_ports[self.name]

    @property
    def user(self) -> str | None:
        return self.parts.username

    @property
    def password(self) -> str | None:
        return self.parts.password

    @property
    def database(self) -> str | None:
        path = self.parts.path.lstrip("/")
        return path or None

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def is_local(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Settings:
    """The course's settings, resolved once per process (see :func:`get_settings`)."""

    root: Path
    values: dict[str, str] = field(repr=False)
    servers: dict[str, ServerConfig] = field(repr=False)

    def __getitem__(self, name: str) -> ServerConfig:
        return self.servers[name]

    @property
    def postgres(self) -> ServerConfig:
        return self.servers["postgres"]

    @property
    def mysql(self) -> ServerConfig:
        return self.servers["mysql"]

    @property
    def mongodb(self) -> ServerConfig:
        return self.servers["mongodb"]

    @property
    def redis(self) -> ServerConfig:
        return self.servers["redis"]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    @property
    def services_dir(self) -> Path:
        """Where natively started servers keep their data, logs and pid files."""
        return Path(self.values.get("DBCOURSE_SERVICES_DIR") or self.root / ".services")

    @property
    def work_dir(self) -> Path:
        """Scratch space of the notebooks (SQLite files, exports, backups)."""
        return Path(self.values.get("DBCOURSE_WORK_DIR") or self.root / ".work")

    @property
    def sqlite_dir(self) -> Path:
        return Path(self.values.get("DBCOURSE_SQLITE_DIR") or self.work_dir / "sqlite")

    @property
    def data_dir(self) -> Path:
        """Where generated data sets are written (``datasets/generated``)."""
        return Path(self.values.get("DBCOURSE_DATA_DIR") or self.root / "datasets" / "generated")

    @property
    def namespace_override(self) -> str | None:
        """``DBCOURSE_NAMESPACE``: graders set it to give each submission its own namespace."""
        return self.values.get("DBCOURSE_NAMESPACE") or None


def _port(values: dict[str, str], key: str) -> int:
    raw = values[key]
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{key}={raw!r} is not a port number (1-65535). Fix it in .env or the environment.")
    return int(raw)


def _build_servers(values: dict[str, str]) -> dict[str, ServerConfig]:
    host = values["DBCOURSE_HOST"]
    user = quote(values["DBCOURSE_USER"], safe="")
    password = quote(values["DBCOURSE_PASSWORD"], safe="")
    database = values["DBCOURSE_DATABASE"]
    defaults = {
        "postgres": f"postgresql://{user}:{password}@{host}:{_port(values, 'DBCOURSE_POSTGRES_PORT')}/{database}",
        "mysql": f"mysql://{user}:{password}@{host}:{_port(values, 'DBCOURSE_MYSQL_PORT')}/{database}",
        "mongodb": f"mongodb://{host}:{_port(values, 'DBCOURSE_MONGODB_PORT')}/?directConnection=true",
        "redis": f"redis://{host}:{_port(values, 'DBCOURSE_REDIS_PORT')}/0",
    }
    schemes = {
        "postgres": ("postgresql", "postgres"),
        "mysql": ("mysql", "mariadb"),
        "mongodb": ("mongodb",),
        "redis": ("redis",),
    }
    servers = {}
    for name in SERVER_NAMES:
        variable = URL_VARIABLES[name]
        url = values.get(variable)
        if url:
            scheme = urlsplit(url).scheme.split("+")[0]
            if scheme not in schemes[name]:
                raise ConfigError(
                    f"{variable}={mask_url(url)!r} should start with {schemes[name][0]}://. "
                    f"Example: {mask_url(defaults[name])}"
                )
            servers[name] = ServerConfig(name, url, url_overridden=True)
        else:
            servers[name] = ServerConfig(name, defaults[name])
    return servers


def load_settings(root: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Resolve the settings from defaults, the ``.env`` file and the environment."""
    root = root or find_root()
    environ = dict(os.environ if environ is None else environ)
    values = dict(DEFAULTS)
    env_file = Path(environ.get("DBCOURSE_ENV_FILE") or root / ".env")
    values.update(read_env_file(env_file))
    values.update({k: v for k, v in environ.items() if k.startswith("DBCOURSE_")})
    return Settings(root=root, values=values, servers=_build_servers(values))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached; call ``get_settings.cache_clear()`` to reload)."""
    return load_settings()
