"""Probing a database tracking store before MLflow opens it.

MLflow's SQLAlchemy store retries a database it cannot open ten times with exponential back-off (about 100 s, not
configurable), printing a multi-line warning each time, and then fails with a traceback. For a tracking URI that is a
database (postgresql, mysql, mssql, sqlite), the pipeline connects once itself, with a short timeout, and turns a
failure into one TrackingError (exit 4) that names the URI (password masked) and the likely fix. A store that answers
is then opened by MLflow exactly as before.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.data.sql_source import scrub_error, single_connection_engine, with_psycopg
from pipeline.errors import TrackingError, first_line
from pipeline.masking import mask_url

CONNECT_TIMEOUT_S = 5
# Known causes, in the words of the drivers (psycopg, PyMySQL, pyodbc), and what to do about each.
_CAUSES = (
    (
        re.compile(r'database "?[^"\s]+"? does not exist|Unknown database', re.I),
        "the database {database} does not exist: create it (`createdb -h {host} -U {user} {database}`; "
        "`make server` creates the database it is given)",
    ),
    (
        re.compile(r"password authentication failed|Access denied|no password supplied|role .* does not exist", re.I),
        "authentication failed for user {user}: put the right user and password in MLFLOW_TRACKING_URI "
        "(or PGPASSWORD / ~/.pgpass for PostgreSQL)",
    ),
    (
        re.compile(
            r"could not translate host name|Name or service not known|nodename nor servname|"
            r"Unknown (MySQL )?server host|getaddrinfo failed",
            re.I,
        ),
        "the host {host} cannot be resolved: check the host name in MLFLOW_TRACKING_URI",
    ),
    (
        re.compile(r"Connection refused|timeout expired|timed out|Can't connect|No route to host", re.I),
        "nothing answers on {host}:{port}: is the database server running, and is the port right?",
    ),
)


def probe_tracking_database(uri: str) -> None:
    """Raise a one-line TrackingError when the database tracking store `uri` cannot be opened; else return."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = mask_url(uri)
    try:
        url = with_psycopg(make_url(uri))
    except ArgumentError as exc:
        raise TrackingError(f"the tracking URI {shown} is not a database URL: {first_line(exc)}") from exc
    if url.get_backend_name() == "sqlite":
        _check_sqlite_folder(url.database, shown)
        return
    _connect(url, shown)


def _check_sqlite_folder(database: str | None, shown: str | None) -> None:
    """SQLite needs its folder to exist and be writable (its journal lives there). MLflow creates a missing folder;
    so does this check (ahead of MLflow), and a folder that cannot be created or written is the error."""
    if database in (None, "", ":memory:"):
        return
    folder = Path(database).expanduser().resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(
            f"the tracking store {shown}: cannot create its folder {folder} ({exc.strerror}): use a writable path"
        ) from exc
    if not os.access(folder, os.W_OK):
        raise TrackingError(
            f"the tracking store {shown}: folder {folder} is read-only (SQLite writes its journal there): "
            "use a writable folder"
        )


def _connect(url, shown: str | None) -> None:
    from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

    try:
        engine = single_connection_engine(url, CONNECT_TIMEOUT_S)
    except (NoSuchModuleError, ImportError) as exc:
        raise TrackingError(
            f"the tracking store {shown} needs a database driver that is not installed: "
            f"{first_line(exc)} (install it into .venv)"
        ) from exc
    try:
        engine.connect().close()
    except SQLAlchemyError as exc:
        raise TrackingError(f"cannot open the tracking store {shown}: {_cause(exc, url)}") from exc
    finally:
        engine.dispose()


def _cause(exc: BaseException, url) -> str:
    """The likely cause and its fix, or the driver's own first line (password removed) when none is known."""
    message = scrub_error(exc, [url.password])
    names = {
        "database": url.database or "?",
        "host": url.host or "localhost",
        "port": url.port or "default",
        "user": url.username or "?",
    }
    for pattern, advice in _CAUSES:
        if pattern.search(message):
            return advice.format(**names)
    return message
