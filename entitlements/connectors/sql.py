"""The SQL source: an ERP's (or any application's) own database, read with two queries through SQLAlchemy.

``access_query`` returns the access file's columns (ACCESS_COLUMNS), ``identities_query`` (optional) the
identities file's. Both run in one read-only transaction (a consistent snapshot where the database offers one)
with a statement timeout, and rows are streamed through a server-side cursor, so memory stays flat whatever
the size. Configuration::

    {"url": "postgresql+psycopg2://soxgov_reader@erp-db:5432/erp",
     "access_query": "SELECT bname AS account_id, agr_name AS entitlement_id FROM agr_users",
     "identities_query": "SELECT ...",            (optional)
     "statement_timeout_seconds": 300}            (optional)

The password is the connector's secret ``password``, never part of the URL (which is evidenced and shown).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from entitlements.connectors.files import ACCESS_COLUMNS, IDENTITY_COLUMNS
from entitlements.connectors.sources import Source, SourceError, SourceTimeout, SourceUnreachable

KEYS = {"url", "access_query", "identities_query", "statement_timeout_seconds", "connect_timeout_seconds"}
BACKENDS = {"postgresql", "mysql", "mariadb", "mssql", "oracle", "sqlite"}
EXTRAS = {"mssql": "mssql", "oracle": "oracle"}  # pip install 'soxgov[mssql]'
BATCH = 2000  # rows fetched from the server-side cursor at a time
PROGRESS_EVERY = 10_000
MAX_TIMEOUT = 24 * 3600

# Server-side "your statement ran too long" codes: worth retrying, not a fact about the query.
_TIMEOUT_CODES = {
    "57014",  # PostgreSQL query_canceled (statement_timeout)
    "3024",  # MySQL ER_QUERY_TIMEOUT (max_execution_time)
    "1969",  # MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
    "DPY-4024",  # python-oracledb call timeout
}


_CREDENTIAL_KEY = re.compile(r"pass|pwd|secret|token|credential", re.IGNORECASE)
_CREDENTIAL_IN_VALUE = re.compile(r"(pwd|password)\s*=", re.IGNORECASE)


def sqlite_file_problem(database: str | None) -> str | None:
    """Why a SQLite source file may not be read: it must lie under SOXGOV_CONNECTOR_FILE_ROOTS, as files
    connectors read do, and never be SOXGov's own database (its sessions would let an admin act as another)."""
    from django.core.exceptions import ValidationError
    from django.db import connections

    from entitlements.connectors.roots import connector_file

    if not database or database == ":memory:":
        return "a SQLite source needs the absolute path of its file"
    try:
        path = connector_file(database)
    except ValidationError as exc:
        return " ".join(exc.messages)
    own = connections["default"].settings_dict  # the test database's name during tests
    if own["ENGINE"].endswith("sqlite3") and path == Path(str(own["NAME"])).resolve():
        return "is SOXGov's own database, not a source"
    return None


def _url(raw: str):
    from sqlalchemy.engine import make_url

    return make_url(raw)


class SqlSource(Source):
    kind = "sql"
    secret_names = frozenset({"password"})

    @classmethod
    def validate(cls, config: object, secrets: set[str]) -> list[str]:
        if not isinstance(config, Mapping):
            return ["configuration: must be a JSON object with url and access_query"]
        problems = [f"{key}: is not a setting of a SQL connector" for key in sorted(set(config) - KEYS)]
        problems += _validate_url(config.get("url"), secrets)
        for key, required in (("access_query", True), ("identities_query", False)):
            query = config.get(key)
            if query is None and not required:
                continue
            if not isinstance(query, str) or not query.strip():
                problems.append(f"{key}: is required (a SELECT whose columns are the file format's)")
        for key in ("statement_timeout_seconds", "connect_timeout_seconds"):
            value = config.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMEOUT
            ):
                problems.append(f"{key}: must be a whole number of seconds from 1 to {MAX_TIMEOUT}")
        problems += [
            f"secrets: {name!r} is not a secret of a SQL connector"
            for name in sorted(secrets - cls.secret_names)
        ]
        return problems

    def __init__(self, config, secrets, *, progress=None):
        super().__init__(config, secrets, progress=progress)
        self._engine = None
        self._connection = None
        self._read = 0

    @property
    def feeds_identities(self) -> bool:
        return bool(self.config.get("identities_query"))

    @property
    def where(self) -> str:
        """The database, as people may see it: no password."""
        return _url(self.config["url"]).render_as_string(hide_password=True)

    # --- Reading ----------------------------------------------------------------------------------------------

    def identities(self) -> Iterator[dict[str, str]]:
        if not self.feeds_identities:
            return iter(())
        return self._rows("identities_query", IDENTITY_COLUMNS, required=None)

    def access(self) -> Iterator[dict[str, str]]:
        return self._rows("access_query", ACCESS_COLUMNS, required="account_id")

    def _rows(self, key: str, columns: tuple[str, ...], *, required: str | None) -> Iterator[dict[str, str]]:
        from sqlalchemy import exc as sa_exc
        from sqlalchemy import text

        connection = self._connect()
        try:
            result = connection.execution_options(stream_results=True, yield_per=BATCH).execute(
                text(self.config[key])
            )
            names = [name.lower() for name in result.keys()]  # noqa: SIM118 (a Result, not a dict)
            _check_columns(key, names, columns, required)
            for row in result:
                self._read += 1
                if self._read % PROGRESS_EVERY == 0:
                    self.progress(read=self._read)
                yield {name: _as_text(value) for name, value in zip(names, row, strict=True)}
            self.progress(read=self._read)
        except sa_exc.DBAPIError as exc:
            raise self._query_error(key, exc) from None

    def close(self) -> None:
        try:
            if self._connection is not None:
                self._connection.close()  # rolls the read-only transaction back
        except Exception:  # a broken connection is discarded with the engine below
            pass
        finally:
            self._connection = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    # --- Connecting -------------------------------------------------------------------------------------------

    def _connect(self):
        if self._connection is not None:
            return self._connection
        from sqlalchemy import create_engine
        from sqlalchemy import exc as sa_exc
        from sqlalchemy.pool import NullPool

        url = _url(self.config["url"])
        backend = url.get_backend_name()
        if self.secrets.get("password") and backend != "sqlite":  # a SQLite file has no password
            url = url.set(password=self.secrets["password"])
        if backend == "sqlite" and (problem := sqlite_file_problem(url.database)):
            raise SourceError(f"{self.where}: {problem}")  # roots narrowed since the connector was saved
        if backend == "sqlite" and url.database and not url.database.startswith("file:"):
            # Opened read-only: a missing file is unreachable, not silently created empty.
            url = url.set(database=f"file:{url.database}", query={**url.query, "mode": "ro", "uri": "true"})
        connect_timeout = int(self.config.get("connect_timeout_seconds") or 30)
        connect_args = {}
        if backend == "postgresql":
            connect_args = {"connect_timeout": connect_timeout, "application_name": "soxgov"}
        elif backend in ("mysql", "mariadb"):
            connect_args = {"connect_timeout": connect_timeout}
        elif backend == "oracle":
            connect_args = {"tcp_connect_timeout": connect_timeout}
        elif backend == "mssql":
            connect_args = {"timeout": connect_timeout}
        try:
            self._engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
            connection = self._engine.connect()
        except sa_exc.DBAPIError as exc:
            reason = self._reason(exc)
            if "timeout" in reason.lower() or "timed out" in reason.lower():
                raise SourceTimeout(f"{self.where}: cannot connect in time: {reason}") from None
            raise SourceUnreachable(f"{self.where}: cannot connect: {reason}") from None
        except (
            Exception
        ) as exc:  # a missing driver, a malformed host: say what, never the URL with a password
            raise SourceUnreachable(
                f"{self.where}: cannot connect: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        try:
            self._read_only(connection, backend)
        except sa_exc.DBAPIError as exc:
            connection.close()
            raise SourceError(
                f"{self.where}: cannot start a read-only transaction: {self._reason(exc)}"
            ) from None
        self._connection = connection
        return connection

    def _read_only(self, connection, backend: str) -> None:
        """A read-only transaction with a statement timeout: the source is never written, and a runaway query
        ends on the server rather than holding a worker forever."""
        timeout = int(self.config.get("statement_timeout_seconds") or 300)
        run = connection.exec_driver_sql
        if backend == "postgresql":
            # REPEATABLE READ: both queries see one snapshot, so identities and access agree with each other.
            run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            run(f"SET LOCAL statement_timeout = {timeout * 1000}")
        elif backend in ("mysql", "mariadb"):
            if connection.dialect.is_mariadb:
                run(f"SET SESSION max_statement_time = {timeout}")
            else:
                run(f"SET SESSION max_execution_time = {timeout * 1000}")
            run("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            run("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")
        elif backend == "oracle":
            run("SET TRANSACTION READ ONLY")
            connection.connection.driver_connection.call_timeout = timeout * 1000
        elif backend == "mssql":
            # SQL Server has no read-only transaction: grant the login SELECT only. SNAPSHOT needs the database
            # option; the query timeout is the driver's.
            connection.connection.driver_connection.timeout = timeout
        elif backend == "sqlite":
            run("PRAGMA query_only = ON")

    # --- Errors -------------------------------------------------------------------------------------------------

    def _query_error(self, key: str, exc) -> SourceError:
        reason = self._reason(exc)
        code = _error_code(exc)
        if code in _TIMEOUT_CODES:
            return SourceTimeout(f"{self.where}: {key} ran past the statement timeout: {reason}")
        if exc.connection_invalidated:
            return SourceTimeout(f"{self.where}: the connection was lost during {key}: {reason}")
        return SourceError(f"{self.where}: {key} failed: {reason}")

    def _reason(self, exc) -> str:
        """The database's own message (first lines), without the password should a driver echo it."""
        original = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
        return self._scrub(" ".join(lines[:3])[:500]) or type(original).__name__

    def _scrub(self, message: str) -> str:
        password = self.secrets.get("password")
        if password:
            message = message.replace(password, "***")
        return message


def _validate_url(raw, secrets: set[str]) -> list[str]:
    if not isinstance(raw, str) or not raw.strip():
        return ["url: is required, e.g. postgresql+psycopg2://reader@erp-db:5432/erp"]
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = _url(raw)
    except (ArgumentError, ValueError):
        return ["url: is not a database URL (dialect+driver://user@host:port/database)"]
    backend = url.get_backend_name()
    if backend not in BACKENDS:
        return [f"url: {backend!r} is not supported (use one of {', '.join(sorted(BACKENDS))})"]
    problems = []
    if url.password is not None:
        problems.append("url: must not contain a password; give it as the secret 'password'")
    for key, value in url.query.items():
        # A password in the query (?password=..., an ODBC string's PWD=...) would be stored with the
        # configuration, shown in pages and evidence, and quoted in errors: it belongs in the secret.
        values = value if isinstance(value, tuple) else (value,)
        if _CREDENTIAL_KEY.search(key) or any(_CREDENTIAL_IN_VALUE.search(str(v)) for v in values):
            problems.append(
                f"url: the query parameter {key!r} carries a credential; give it as the secret 'password'"
            )
    if backend == "sqlite":
        problem = sqlite_file_problem(url.database)
        if problem:
            problems.append(f"url: {problem}")
    try:
        url.get_dialect()
    except NoSuchModuleError:
        problems.append(f"url: the driver {url.drivername!r} is not available")
    try:
        url.get_dialect().import_dbapi()
    except ImportError:
        extra = EXTRAS.get(backend)
        hint = f" (pip install 'soxgov[{extra}]')" if extra else ""
        problems.append(f"url: the driver for {url.drivername!r} is not installed{hint}")
    except NoSuchModuleError:
        pass
    if backend != "sqlite" and not url.host:
        problems.append("url: names no host")
    return problems


def _check_columns(key: str, names: list[str], columns: tuple[str, ...], required: str | None) -> None:
    unknown = [name for name in names if name not in columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    missing = []
    if required and required not in names:
        missing.append(required)
    if required is None and "employee_id" not in names and "email" not in names:
        missing.append("employee_id (or email)")
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)} (use {', '.join(columns)})")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if problems:
        raise SourceError(f"{key}: " + "; ".join(problems))


def _as_text(value) -> str:
    """A database value as the file formats write it."""
    if type(value) is str:  # most values, first: a pull converts millions of them
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return str(value.quantize(decimal.Decimal(1)))
    return str(value).strip()


def _error_code(exc) -> str:
    original = getattr(exc, "orig", None)
    code = getattr(original, "pgcode", None)  # psycopg2
    if code:
        return code
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL: (errno, message)
        return str(args[0])
    full_code = getattr(getattr(original, "args", [None])[0], "full_code", None)  # python-oracledb
    return full_code or ""
