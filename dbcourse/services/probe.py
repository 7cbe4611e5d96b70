"""Ask a server whether it answers, and which version it is (within a couple of seconds)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ServerConfig
from ..errors import ServiceUnavailable
from .. import connect


@dataclass
class Probe:
    up: bool
    version: str | None = None
    #: For MongoDB: the server identifies as SecantusDB (the course's stand-in), not mongod.
    stand_in: bool = False
    error: ServiceUnavailable | None = None


def probe(server: ServerConfig) -> Probe:
    try:
        return _PROBES[server.name](server)
    except ServiceUnavailable as exc:
        return Probe(up=False, error=exc)


def _postgres(server: ServerConfig) -> Probe:
    with connect.connect_postgres(url=server.url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    return Probe(True, version.split()[0])


def _mysql(server: ServerConfig) -> Probe:
    # Connect without a database: the course's database may not have been created yet.
    conn = connect.connect_mysql(url=server.url, database="")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = cur.fetchone()[0]
    finally:
        conn.close()
    return Probe(True, version)


def _mongodb(server: ServerConfig) -> Probe:
    client = connect.mongo_client(url=server.url)
    try:
        info = client.server_info()
        hello = client.admin.command("hello")
    finally:
        client.close()
    stand_in = hello.get("setName") == "secantus" or "secantus" in str(info.get("gitVersion", "")).lower()
    version = info.get("version")
    return Probe(True, f"SecantusDB (reports {version})" if stand_in else version, stand_in=stand_in)


def _redis(server: ServerConfig) -> Probe:
    client = connect.redis_client(url=server.url)
    try:
        version = client.info("server").get("redis_version")
    finally:
        client.close()
    return Probe(True, str(version))


_PROBES = {"postgres": _postgres, "mysql": _mysql, "mongodb": _mongodb, "redis": _redis}
