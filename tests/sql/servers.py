"""Database servers the SQL connector tests read from, as an ERP's database would be.

``MariaDbServer`` is a throwaway ``mariadbd`` of the test session's own: a fresh data directory, loopback only, a
free port, a reading user with a real password (so a wrong password is refused by the server itself, which
PostgreSQL's trust authentication on this machine cannot show). ``PostgresDatabase`` is a scratch database on
the PostgreSQL server the suite already uses. Both hand out an admin DB-API connection (to create the ERP tables
and change them between pulls) and a SQLAlchemy URL without the password, as a connector is configured.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

START_TIMEOUT = 60
STOP_TIMEOUT = 30


def _binary(name: str) -> str | None:
    """Debian puts the server in /usr/sbin, which an ordinary user's PATH may not contain."""
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def mariadb_missing() -> str | None:
    """Why a MariaDB server cannot be started here, or None."""
    for name in ("mariadbd", "mariadb-install-db"):
        if _binary(name) is None:
            return f"{name} not found: install the Debian package mariadb-server (.ci/run does)"
    try:
        import pymysql  # noqa: F401
    except ImportError:
        return "PyMySQL is not installed (pip install -e '.[dev]')"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MariaDbServer:
    """A private mariadbd: ``start()``, use, ``stop()``. Data lives in ``root`` (a temporary directory)."""

    dialect = "mariadb"
    database = "erp"
    reader = "soxgov_reader"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.datadir = self.root / "data"
        self.socket = self.root / "mariadb.sock"
        self.log = self.root / "error.log"
        self.port = 0
        self.password = secrets.token_urlsafe(18)
        self.process: subprocess.Popen | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def _user_args(self) -> list[str]:
        # mariadbd refuses to run as root unless told to; as anyone else it runs as that user.
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> MariaDbServer:
        common = ["--no-defaults", f"--datadir={self.datadir}", "--innodb-log-file-size=8M"]
        install = subprocess.run(
            [_binary("mariadb-install-db"), *common, *self._user_args(), "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve"],
            capture_output=True, text=True, timeout=START_TIMEOUT,
        )  # fmt: skip
        if install.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db failed:\n{install.stdout[-2000:]}\n{install.stderr[-2000:]}"
            )
        for _attempt in range(3):  # a port taken between probing and binding: try another
            self.port = _free_port()
            self.process = subprocess.Popen(
                [_binary("mariadbd"), *common, *self._user_args(), f"--socket={self.socket}",
                 f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.root / 'mariadbd.pid'}",
                 f"--log-error={self.log}", "--skip-name-resolve", "--innodb-buffer-pool-size=32M",
                 "--max-connections=50"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if self._wait_ready():
                break
            if "Address already in use" not in self._log_tail():
                raise RuntimeError(f"mariadbd did not start within {START_TIMEOUT} s:\n{self._log_tail()}")
        else:
            raise RuntimeError(f"mariadbd found no free port:\n{self._log_tail()}")
        with self.admin() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {self.database} CHARACTER SET utf8mb4")
            cursor.execute(f"CREATE USER '{self.reader}'@'127.0.0.1' IDENTIFIED BY %s", [self.password])
            # Read only, as a connector's user should be; SOXGov's read-only transaction is the second guard.
            cursor.execute(f"GRANT SELECT ON {self.database}.* TO '{self.reader}'@'127.0.0.1'")
        return self

    def _wait_ready(self) -> bool:
        import pymysql

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=2).close()
                return True
            except pymysql.err.OperationalError:
                time.sleep(0.2)
        self.stop()
        return False

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no error log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: a clean InnoDB shutdown
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    # --- use ------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def admin(self, database: str | None = None):
        """root over the socket, autocommit: for creating and changing the ERP's tables."""
        import pymysql

        connection = pymysql.connect(
            unix_socket=str(self.socket), user="root", database=database, autocommit=True, charset="utf8mb4"
        )
        try:
            yield connection
        finally:
            connection.close()

    def url(self, user: str | None = None, database: str | None = None) -> str:
        """A connector's URL: TCP on loopback, no password (that is the connector's secret)."""
        return f"mysql+pymysql://{user or self.reader}@127.0.0.1:{self.port}/{database or self.database}"


class PostgresDatabase:
    """A scratch database on the suite's PostgreSQL server (DATABASE_URL), dropped at the end.

    The server trusts loopback connections, so there is no password to get wrong here (MariaDB tests that)."""

    dialect = "postgresql"

    def __init__(self, params: dict):
        self.params = {k: v for k, v in params.items() if k in ("host", "port", "user", "password")}
        self.params.setdefault("host", "127.0.0.1")
        self.params.setdefault("port", 5432)
        self.database = f"soxgov_erp_{uuid.uuid4().hex[:10]}"
        self.password = self.params.get("password") or ""

    def start(self) -> PostgresDatabase:
        with self._server() as connection, connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def stop(self) -> None:
        with self._server() as connection, connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    @contextlib.contextmanager
    def _server(self):
        import psycopg2

        connection = psycopg2.connect(dbname="postgres", **self.params)
        connection.autocommit = True
        try:
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def admin(self, database: str | None = None):
        import psycopg2

        connection = psycopg2.connect(dbname=database or self.database, **self.params)
        connection.autocommit = True
        try:
            yield connection
        finally:
            connection.close()

    def url(self, user: str | None = None, database: str | None = None) -> str:
        return (
            f"postgresql+psycopg2://{user or self.params['user']}@{self.params['host']}:{self.params['port']}"
            f"/{database or self.database}"
        )
