"""A SQL database as the data source: `data.source` a SQLAlchemy URL, with `data.query` or `data.table`.

Reads:  the rows of `data.query` (run in a transaction that is rolled back) or of the whole `data.table`, from the
        database `data.source` names. `${VAR}` in the URL is expanded from the environment only when the
        connection opens, so the config and everything logged keep `${VAR}` literally.
Writes: nothing. What may be logged about the source (password masked) is `describe_sql_source`.

Errors are one line, passwords masked: a URL that does not parse or names a dialect or driver that is not installed
is a ConfigError (exit 2); a server that cannot be reached, refuses the login or lacks the database is
SourceUnreachable (exit 4); an SQL error, an unknown table or column and an empty result are DataErrors (exit 2).
SQLAlchemy and the drivers are imported only when a database is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.data.digests import digest
from pipeline.data.source_text import is_sql_url as is_sql_url  # importable from here too
from pipeline.errors import ConfigError, DataError, SourceUnreachable, first_line
from pipeline.masking import mask_url

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import URL, Connection

    from pipeline.config import DataConfig

SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CONNECT_TIMEOUT_S = 10
SHOWN_QUERY_CHARS = 200
MESSAGE_CHARS = 300
# Drivers whose DBAPI takes a `connect_timeout` (seconds); sqlite opens a file, the others keep their defaults.
_TIMEOUT_BACKENDS = ("postgresql", "mysql", "mariadb")


def _expand(text: str | None) -> str | None:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"data.source: environment variable {name} is not set (the URL uses ${{{name}}}); "
                "export it before running the step"
            )
        return os.environ[name]

    return SECRET.sub(value, text) if text else text


def _parse(source: str) -> URL:
    """The URL as SQLAlchemy reads it, `${VAR}` still literal; a malformed one is a ConfigError."""
    from sqlalchemy.engine import make_url

    authority = source.partition("://")[2].split("/", 1)[0]
    if authority.count("@") > 1:  # SQLAlchemy would cut the password at the first @ and show the rest as the host
        raise ConfigError(
            f"data.source '{_shown_url(source)}': the user or password holds an unescaped '@' (write it as %40)"
        )
    try:
        return make_url(source)
    except Exception as exc:
        raise ConfigError(
            f"data.source '{_shown_url(source)}' is not a valid database URL: {scrub_error(exc, [])}"
        ) from exc


def _expanded(url: URL) -> URL:
    """Each part of the URL with `${VAR}` expanded: a secret's characters (@, /, :) then need no escaping."""
    query = {
        key: _expand(value) or "" if isinstance(value, str) else tuple(_expand(v) or "" for v in value)
        for key, value in url.query.items()
    }
    return url.set(
        username=_expand(url.username),
        password=_expand(url.password),
        host=_expand(url.host),
        database=_expand(url.database),
        query=query,
    )


def with_psycopg(url: URL) -> URL:
    """`postgresql://` and `postgres://` use psycopg 3 (the driver installed; SQLAlchemy's default is psycopg2)."""
    backend, _, driver = url.drivername.lower().partition("+")
    if backend in ("postgres", "postgresql"):
        return url.set(drivername=f"postgresql+{driver or 'psycopg'}")
    return url.set(drivername=url.drivername.lower())


def expand_secrets(url: str) -> str:
    """The URL with every `${VAR}` expanded from the environment (user, password, host, database, query
    parameters); an unset variable is a ConfigError naming it. Call it only to connect: never log the result."""
    return _expanded(_parse(url)).render_as_string(hide_password=False)


def _shown_url(source: str) -> str:
    return str(mask_url(source))


def describe_sql_source(data: DataConfig) -> str:
    """What may be logged about a SQL source: the URL with its password masked (`${VAR}` unexpanded) and the table,
    or the query's first characters with whitespace collapsed."""
    if data.table:
        return f"{_shown_url(data.source)} table {data.table}"
    query = " ".join((data.query or "").split())
    more = "..." if len(query) > SHOWN_QUERY_CHARS else ""
    return f"{_shown_url(data.source)} query: {query[:SHOWN_QUERY_CHARS]}{more}"


def scrub_error(exc: BaseException, secrets: list[str | None]) -> str:
    """The driver's first line, without SQLAlchemy's `(module.Class)` prefix and without any secret."""
    text = re.sub(r"^\([\w.]+\)\s*", "", first_line(getattr(exc, "orig", None) or exc))
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text[:MESSAGE_CHARS]


def single_connection_engine(url: URL, connect_timeout_s: int):
    """An engine that opens one connection per use (no pool), giving up connecting after `connect_timeout_s` where
    the driver takes a timeout. Shared by SQL sources and the tracking-database probe."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    timeout = {"connect_timeout": connect_timeout_s} if url.get_backend_name() in _TIMEOUT_BACKENDS else {}
    return create_engine(url, poolclass=NullPool, connect_args=timeout)


def _engine(data: DataConfig):
    """An engine for the expanded URL: one connection, no pool, a short connect timeout."""
    url = with_psycopg(_expanded(_parse(data.source)))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).is_file():  # sqlite would create an empty file and then find no table
            raise DataError(f"data.source {_shown_url(data.source)}: database file {url.database} not found")
    try:
        return single_connection_engine(url, CONNECT_TIMEOUT_S)
    except Exception as exc:
        raise ConfigError(
            f"data.source '{_shown_url(data.source)}' cannot be used: {scrub_error(exc, [url.password])} "
            "(is the dialect right and its driver installed?)"
        ) from exc


def _statement(data: DataConfig):
    """The query as text, or `SELECT * FROM <table>` with the name quoted by SQLAlchemy (`schema.table` allowed)."""
    from sqlalchemy import literal_column, select, table, text

    if data.query:
        return text(data.query)
    schema, _, name = (data.table or "").rpartition(".")
    return select(literal_column("*")).select_from(table(name, schema=schema or None))


def _read(connection: Connection, data: DataConfig) -> pd.DataFrame:
    """The rows as a frame. Executed here, not by pandas.read_sql, which wraps the driver's error in its own."""
    import pandas as pd

    result = connection.execute(_statement(data))
    return pd.DataFrame.from_records(
        result.fetchall(), columns=list(result.keys()), coerce_float=True
    )  # NUMERIC's Decimals become floats


def _with_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """DATE columns arrive as Python `date` objects: make them datetime64, which preprocess reads as dates."""
    import datetime

    import pandas as pd

    for position, dtype in enumerate(frame.dtypes):  # by position: a query may repeat a column name
        values = frame.iloc[:, position].dropna()
        if dtype == "object" and len(values) and all(type(value) is datetime.date for value in values):
            frame.isetitem(position, pd.to_datetime(frame.iloc[:, position]))
    return frame


def fetch(data: DataConfig) -> pd.DataFrame:
    """Read the configured query or table, fresh from the database (see `read_sql` for the memoised read)."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    engine = _engine(data)
    shown, secrets = describe_sql_source(data), [engine.url.password]
    database = _shown_url(data.source)
    try:
        connection = engine.connect()
    except SQLAlchemyError as exc:
        raise SourceUnreachable(
            f"cannot reach the database {database} (data.source): {scrub_error(exc, secrets)}"
        ) from exc
    try:
        with connection:  # leaving it rolls back: a query that writes changes nothing
            frame = _read(connection, data)
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise SourceUnreachable(f"lost the database {database} (data.source): {scrub_error(exc, secrets)}") from exc
        raise DataError(f"the database {database} refused {_what(data)}: {scrub_error(exc, secrets)}") from exc
    except SQLAlchemyError as exc:  # no rows returned (not a SELECT), a `:name` without a value, ...
        raise DataError(f"{_what(data)} on {database} failed: {scrub_error(exc, secrets)}") from exc
    finally:
        engine.dispose()
    if frame.empty:
        raise DataError(f"data source {shown} holds no rows")
    return _with_dates(frame)


def _what(data: DataConfig) -> str:
    return f"table {data.table}" if data.table else "data.query"


@dataclass(frozen=True)
class _Handoff:
    """One read of a source, passed on to the next read of the other kind (see `read_sql`)."""

    key: tuple[str, str | None, str | None]
    digest: str
    frame: pd.DataFrame | None  # set by sql_digest for load; None once load has taken it


# A source is read twice per process: `main` hashes it for preprocess's fingerprint, then preprocess loads it (and
# hashes it again for its own fingerprint). A table is not a file whose hash is cheap, so one read is handed on to
# the next read of the other kind: sql_digest -> read_sql keeps the frame, read_sql -> sql_digest keeps only its
# digest. One entry, this process only: a digest after a digest, or a load after a load, reads afresh, so a
# long-lived process (an orchestrator's worker running `main` twice) sees a changed table.
_handoff: dict[str, _Handoff] = {}


def _key(data: DataConfig) -> tuple[str, str | None, str | None]:
    return (data.source, data.query, data.table)


def read_sql(data: DataConfig) -> pd.DataFrame:
    """The rows of the configured query or table: the frame `sql_digest` just read for the same source, if any (so
    `main` reads the table once), else a fresh read whose digest is kept for the next `sql_digest`."""
    held = _handoff.pop("last", None)
    if held is not None and held.key == _key(data) and held.frame is not None:
        _handoff["last"] = _Handoff(held.key, held.digest, None)
        return held.frame
    frame = fetch(data)
    _handoff["last"] = _Handoff(_key(data), digest(frame), None)
    return frame


def sql_digest(data: DataConfig) -> str:
    """The content digest of the configured rows (pipeline.data.digests.digest): that of the frame `read_sql` just
    loaded for the same source, if any, else of a fresh read, whose frame is kept for the next `read_sql`."""
    held = _handoff.pop("last", None)
    if held is not None and held.key == _key(data) and held.frame is None:
        return held.digest
    frame = fetch(data)
    _handoff["last"] = _Handoff(_key(data), digest(frame), frame)
    return _handoff["last"].digest
