"""Start and stop the database servers natively, in a project-local data folder.

Used when no server answers at the configured URL and no Docker engine runs (this is the
path on Binder and on machines without Docker). Each server keeps its data, log and pid file
under ``.services/<name>/`` (git-ignored). ``stop`` only ever signals a process whose pid file
the course wrote, so it never touches a server the learner runs themselves.
"""

from __future__ import annotations

import getpass
import glob
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..config import ServerConfig, Settings
from .probe import probe

Log = Callable[[str], None]

SECANTUS_REQUIREMENT = "SecantusDB==0.7.0b3"


class StartError(RuntimeError):
    """A server could not be started; the message says why and where the log is."""


def is_root() -> bool:
    return os.geteuid() == 0


def find_binary(*names: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    """The first of ``names`` found on PATH or in ``extra_dirs`` (globs allowed)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for pattern in extra_dirs:
        for directory in sorted(glob.glob(pattern), reverse=True):  # newest version first
            for name in names:
                candidate = Path(directory) / name
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return str(candidate)
    return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def terminate(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM, wait for the process to exit, SIGKILL as a last resort."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_until(lambda: not pid_alive(pid), timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not pid_alive(pid), 5)


def short_dir(preferred: Path, tag: str, room: int = 24) -> Path:
    """``preferred``, or a short folder under /tmp when a socket path there would be too long."""
    if len(str(preferred)) + room <= 100:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"dbcourse-{tag}-{digest}"


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class NativeServer:
    """One database server that the course can run from installed binaries."""

    name = ""
    mode = "native"
    #: Debian package that provides the server (for ``--install`` and for the fix message).
    debian_package: str | None = None

    def __init__(self, settings: Settings):
        self.settings = settings
        self.server: ServerConfig = settings[self.name]
        self.base = settings.services_dir / self.name

    # -- what subclasses provide
    def available(self) -> bool:
        raise NotImplementedError

    def _start(self, log: Log) -> None:
        raise NotImplementedError

    @property
    def pid_file(self) -> Path:
        return self.base / f"{self.name}.pid"

    # -- shared behaviour
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def install_hint(self) -> str:
        if self.debian_package:
            return (f"install the server (Debian/Ubuntu: apt-get install {self.debian_package}; "
                    "or run `dbcourse services up --install` as root), or use Docker (see docker/README.md)")
        return "install the server, or use Docker (see docker/README.md)"

    def start(self, log: Log) -> None:
        if not self.server.is_local:
            raise StartError(f"{self.server.masked_url} is not on this machine: the course cannot start it")
        self.base.mkdir(parents=True, exist_ok=True)
        self._start(log)
        self.wait_ready()
        self.bootstrap(log)
        result = probe(self.server)
        if not result.up:
            raise StartError(f"{self.name} started but the course cannot log in at {self.server.masked_url}: "
                             f"{result.error}\nlog:\n{tail(self.log_file)}")
        mode_file = self.settings.services_dir / self.name / "mode"
        mode_file.parent.mkdir(parents=True, exist_ok=True)
        mode_file.write_text(self.mode + "\n")

    def wait_ready(self) -> None:
        """Wait until the server accepts connections (default: the course's own login works)."""
        if not wait_until(lambda: probe(self.server).up, 60, 0.3):
            raise StartError(f"{self.name} started but does not answer at {self.server.masked_url}; "
                             f"log:\n{tail(self.log_file)}")

    @property
    def log_file(self) -> Path:
        return self.base / f"{self.name}.log"

    def bootstrap(self, log: Log) -> None:
        """Create the course's user and database (idempotent)."""

    def stop(self, log: Log) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        log(f"stopping {self.name} (pid {pid})")
        terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def run(self, args: list[str], *, as_user: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        if as_user and is_root() and as_user != "root":
            args = ["runuser", "-u", as_user, "--", *args]
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise StartError(f"`{' '.join(args)}` failed (exit {result.returncode}):\n"
                             f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result


# --------------------------------------------------------------------------- PostgreSQL

class Postgres(NativeServer):
    name = "postgres"
    debian_package = "postgresql"
    BIN_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin")

    def __init__(self, settings: Settings):
        super().__init__(settings)
        # PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user,
        # which must be able to reach the data folder. If it cannot (a project under /root,
        # say), the data lives in a folder of its own under /var/lib/dbcourse.
        if is_root() and not self._reachable_by_postgres(self.base):
            digest = hashlib.sha1(str(self.base).encode()).hexdigest()[:12]
            self.base = Path("/var/lib/dbcourse") / digest / "postgres"

    @staticmethod
    def _reachable_by_postgres(path: Path) -> bool:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return True  # no postgres user: _start reports it
        probe_dir = path
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
        result = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(probe_dir)],
                                capture_output=True)
        return result.returncode == 0

    def binary(self, name: str) -> str | None:
        return find_binary(name, extra_dirs=self.BIN_DIRS)

    def wait_ready(self) -> None:
        pass  # `pg_ctl -w` has waited until the server accepts connections

    def available(self) -> bool:
        return all(self.binary(b) for b in ("initdb", "pg_ctl", "postgres"))

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return short_dir(self.base / "run", "pg")

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def owner(self) -> str | None:
        return "postgres" if is_root() else None

    def _prepare_dirs(self) -> None:
        for path in (self.base, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        if self.owner:
            try:
                entry = pwd.getpwnam(self.owner)
            except KeyError:
                raise StartError("PostgreSQL refuses to run as root and this machine has no `postgres` "
                                 "user: create one (useradd --system postgres) or run as a normal user")
            for path in (self.base, self.socket_dir):
                for root, dirs, files in os.walk(path):
                    os.chown(root, entry.pw_uid, entry.pw_gid)
                    for item in files + dirs:
                        os.chown(os.path.join(root, item), entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def _start(self, log: Log) -> None:
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            log(f"initializing PostgreSQL in {self.data_dir}")
            args = [self.binary("initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8"]
            result = self.run(args + ["--locale=C.UTF-8"], as_user=self.owner, check=False)
            if result.returncode != 0:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.run(args + ["--no-locale"], as_user=self.owner)
        options = (f"-p {self.server.port} -k {self.socket_dir} -c listen_addresses={self.server.host} "
                   "-c max_connections=200 -c shared_buffers=256MB")
        log(f"starting PostgreSQL on {self.server.host}:{self.server.port}")
        self.run([self.binary("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
                  "-w", "-t", "60", "start"], as_user=self.owner)

    def bootstrap(self, log: Log) -> None:
        import psycopg
        from psycopg import sql

        user, password = self.server.user or "course", self.server.password or "course"
        database = self.server.database or "course"
        with psycopg.connect(host=str(self.socket_dir), port=self.server.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(password)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
                log(f"creating PostgreSQL database {database}")
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database),
                                                                          sql.Identifier(user)))

    def stop(self, log: Log) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        log(f"stopping postgres (pid {pid})")
        result = self.run([self.binary("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60",
                           "stop"], as_user=self.owner, check=False)
        if result.returncode != 0:
            terminate(pid)
        return True


# --------------------------------------------------------------------------- MySQL / MariaDB

class MySQL(NativeServer):
    name = "mysql"
    debian_package = "mariadb-server"
    SBIN = ("/usr/sbin", "/usr/local/mysql/bin", "/usr/local/sbin")

    def server_binary(self) -> str | None:
        return find_binary("mariadbd", "mysqld", extra_dirs=self.SBIN)

    def available(self) -> bool:
        return bool(self.server_binary())

    @property
    def flavor(self) -> str:
        out = subprocess.run([self.server_binary(), "--version"], capture_output=True, text=True).stdout
        return "mariadb" if "mariadb" in out.lower() else "mysql"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> Path:
        return short_dir(self.base, "my", room=12) / "mysqld.sock"

    @property
    def os_user(self) -> str:
        return getpass.getuser()

    def _start(self, log: Log) -> None:
        flavor = self.flavor
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "mysql").exists():
            log(f"initializing {flavor} in {self.data_dir}")
            shutil.rmtree(self.data_dir, ignore_errors=True)
            if flavor == "mariadb":
                install_db = find_binary("mariadb-install-db", "mysql_install_db", extra_dirs=("/usr/bin",) + self.SBIN)
                if not install_db:
                    raise StartError("mariadb-install-db not found next to mariadbd")
                self.run([install_db, "--no-defaults", f"--datadir={self.data_dir}", f"--user={self.os_user}",
                          "--auth-root-authentication-method=socket", "--skip-test-db"])
            else:
                self.run([self.server_binary(), "--no-defaults", "--initialize-insecure",
                          f"--datadir={self.data_dir}", f"--user={self.os_user}"])
        args = [self.server_binary(), "--no-defaults", f"--datadir={self.data_dir}", f"--socket={self.socket}",
                f"--port={self.server.port}", f"--bind-address={self.server.host}", f"--pid-file={self.pid_file}",
                f"--log-error={self.log_file}", "--local-infile=1", "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci", "--max-allowed-packet=256M",
                "--innodb-buffer-pool-size=512M", f"--user={self.os_user}"]
        if flavor == "mysql":
            args += ["--mysqlx=OFF"]
        log(f"starting {flavor} on {self.server.host}:{self.server.port}")
        subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)

    def _admin_connect(self):
        """The server's administrator through the socket: MariaDB's root (or the OS user that
        installed it) authenticates by the socket's peer credentials, MySQL 8's root has no
        password after --initialize-insecure. PyMySQL handles both, no client binary needed."""
        import pymysql

        user = "root" if is_root() or self.flavor == "mysql" else self.os_user
        return pymysql.connect(unix_socket=str(self.socket), user=user, password="", connect_timeout=2,
                               autocommit=True)

    def wait_ready(self) -> None:
        # The course's user does not exist yet on a fresh data folder: wait for the admin login.
        def admin_ok() -> bool:
            if not self.socket.exists():
                return False
            try:
                self._admin_connect().close()
                return True
            except Exception:
                return False

        if not wait_until(admin_ok, 60, 0.3):
            raise StartError(f"{self.flavor} did not start; log:\n{tail(self.log_file)}")

    def admin_sql(self, statements: list[str]) -> None:
        """Run SQL as the server's administrator, through the socket (no password needed)."""
        conn = self._admin_connect()
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def bootstrap(self, log: Log) -> None:
        user = (self.server.user or "course").replace("'", "''")
        password = (self.server.password or "course").replace("'", "''")
        database = (self.server.database or "course").replace("`", "``")
        statements = []
        for host in ("%", "localhost"):
            statements += [
                f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}'",
                f"ALTER USER '{user}'@'{host}' IDENTIFIED BY '{password}'",
                f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}' WITH GRANT OPTION",
            ]
        statements.append(f"CREATE DATABASE IF NOT EXISTS `{database}` "
                          "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        self.admin_sql(statements)


# --------------------------------------------------------------------------- Redis

class Redis(NativeServer):
    name = "redis"
    debian_package = "redis-server"

    def available(self) -> bool:
        return bool(find_binary("redis-server", extra_dirs=("/usr/bin", "/usr/local/bin")))

    def _start(self, log: Log) -> None:
        log(f"starting Redis on {self.server.host}:{self.server.port}")
        self.run([find_binary("redis-server", extra_dirs=("/usr/bin", "/usr/local/bin")),
                  "--port", str(self.server.port), "--bind", self.server.host, "--daemonize", "yes",
                  "--dir", str(self.base), "--pidfile", str(self.pid_file), "--logfile", str(self.log_file),
                  "--save", "", "--appendonly", "no"])
        wait_until(self.running, 10)


# --------------------------------------------------------------------------- MongoDB

class Mongod(NativeServer):
    """A real ``mongod``, when one is installed (for example from conda-forge on Binder)."""

    name = "mongodb"
    debian_package = None
    REPLICA_SET = "rs0"

    def binary(self) -> str | None:
        return find_binary("mongod", extra_dirs=("/usr/bin", "/usr/local/bin", "/opt/mongodb/bin"))

    def available(self) -> bool:
        return bool(self.binary())

    @property
    def pid_file(self) -> Path:
        return self.base / "mongod.pid"

    def _start(self, log: Log) -> None:
        (self.base / "data").mkdir(parents=True, exist_ok=True)
        log(f"starting mongod on {self.server.host}:{self.server.port}")
        self.run([self.binary(), "--dbpath", str(self.base / "data"), "--port", str(self.server.port),
                  "--bind_ip", self.server.host, "--replSet", self.REPLICA_SET, "--fork",
                  "--logpath", str(self.log_file), "--pidfilepath", str(self.pid_file)])

    def bootstrap(self, log: Log) -> None:
        # A one-node replica set, so that transactions and change streams work as in production.
        from pymongo.errors import OperationFailure

        from ..connect import mongo_client

        client = mongo_client(url=self.server.url)
        try:
            try:
                client.admin.command("replSetGetStatus")
            except OperationFailure as exc:
                if exc.code not in (94, 93):  # NotYetInitialized / InvalidReplicaSetConfig
                    raise
                log("initiating the one-node replica set")
                client.admin.command("replSetInitiate", {
                    "_id": self.REPLICA_SET, "members": [{"_id": 0, "host": f"{self.server.host}:{self.server.port}"}]})
            if not wait_until(lambda: client.admin.command("hello").get("isWritablePrimary"), 30, 0.5):
                raise StartError("mongod's replica set did not elect a primary within 30 s")
        finally:
            client.close()


class Secantus(NativeServer):
    """The MongoDB stand-in: SecantusDB, a MongoDB-wire-compatible server on WiredTiger.

    Used only when no MongoDB answers, no Docker engine runs and no ``mongod`` is installed.
    It lacks text indexes; the MongoDB chapter says so where it matters.
    """

    name = "mongodb"
    mode = "stand-in"

    @property
    def venv(self) -> Path:
        return self.settings.services_dir / "secantus-venv"

    @property
    def executable(self) -> Path:
        return self.venv / "bin" / "secantusd-py"

    def available(self) -> bool:
        return True  # installed from PyPI on first use

    def install(self, log: Log) -> None:
        if self.executable.exists():
            return
        log(f"installing the MongoDB stand-in ({SECANTUS_REQUIREMENT}) in {self.venv}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(self.venv)], check=True, capture_output=True)
        uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        if Path(uv).exists():
            args = [uv, "pip", "install", "--quiet", "--python", str(self.venv / "bin" / "python"), SECANTUS_REQUIREMENT]
        else:
            args = [str(self.venv / "bin" / "python"), "-m", "pip", "install", "--quiet", SECANTUS_REQUIREMENT]
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0 or not self.executable.exists():
            raise StartError(f"could not install {SECANTUS_REQUIREMENT}:\n{result.stderr[-2000:]}")

    def _start(self, log: Log) -> None:
        self.install(log)
        (self.base / "secantus-data").mkdir(parents=True, exist_ok=True)
        log(f"starting the MongoDB stand-in (SecantusDB) on {self.server.host}:{self.server.port}")
        with open(self.log_file, "ab") as logfh:
            proc = subprocess.Popen(
                [str(self.executable), "--host", self.server.host, "--port", str(self.server.port),
                 "--storage-path", str(self.base / "secantus-data"), "--log-level", "WARNING"],
                stdin=subprocess.DEVNULL, stdout=logfh, stderr=logfh, start_new_session=True,
                cwd=str(self.base))
        self.pid_file.write_text(f"{proc.pid}\n")


NATIVE = {"postgres": [Postgres], "mysql": [MySQL], "redis": [Redis], "mongodb": [Mongod, Secantus]}


def candidates(name: str, settings: Settings) -> list[NativeServer]:
    return [cls(settings) for cls in NATIVE[name]]
