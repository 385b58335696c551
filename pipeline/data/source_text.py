"""Which kind of data source a `data.source` text names, read from the text alone: the one place that decides it.

Reads and writes nothing, and imports nothing of the pipeline, so that config validation (pipeline/config.py) and
masking (pipeline/masking.py) can ask before anything else is loaded. The class that reads each kind is in
pipeline/data/source_kinds.py (`source_for`).
"""

from __future__ import annotations

import re
from typing import Literal

SKLEARN_PREFIX = "sklearn:"
SQL_SCHEME = re.compile(r"^(postgresql|postgres|mysql|mariadb|sqlite|mssql|oracle)(\+[A-Za-z0-9_]+)?://", re.IGNORECASE)

# sklearn: a bundled scikit-learn dataset; sql: a SQLAlchemy database URL; s3: an s3:// object; url: any other URL
# (http(s)://, read by pandas); files: a local file, folder or glob.
SourceKind = Literal["sklearn", "sql", "s3", "url", "files"]


def source_kind(source: str) -> SourceKind:
    """The kind of source `source` names. The order matters: a database URL is a URL too."""
    if source.startswith(SKLEARN_PREFIX):
        return "sklearn"
    if SQL_SCHEME.match(source):
        return "sql"
    if source.startswith("s3://"):
        return "s3"
    if "://" in source:
        return "url"
    return "files"


def is_sql_url(source: str) -> bool:
    """True for a SQLAlchemy database URL (`postgresql://`, `postgresql+psycopg://`, `sqlite:///path.db`, ...)."""
    return source_kind(source) == "sql"
