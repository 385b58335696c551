"""Secrets kept out of what is logged: URLs (data sources, tracking and study stores, Dask schedulers) as they may
appear in params, tags, artifacts, messages and the console, any password replaced by ***.

Reads and writes nothing. Imports only pipeline.data.source_text (which imports nothing of the pipeline), so any
module, pipeline/config.py first, can mask without an import cycle; SQLAlchemy is imported only to mask a URL.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pipeline.data.source_text import is_sql_url


def mask_url(url: str | None) -> str | None:
    """A URL as it may be logged: any password replaced by ***."""
    if not url or "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    scheme, rest = url.split("://", 1)
    if rest.split("/", 1)[0].count("@") > 1:  # an unescaped @ in the password: make_url would show its tail
        return f"{scheme}://***@{rest.split('/', 1)[0].rsplit('@', 1)[1]}"
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable: show the scheme only, never the raw text
        return scheme + "://***"
    return re.sub(r"%24%7B(\w+)%7D", r"${\1}", shown)  # a user or host `${VAR}` stays readable, unexpanded


def mask_source(source: str) -> str:
    """`data.source` as it may be logged: a database URL, or another URL holding a password, masked by mask_url;
    anything else as written (mask_url would re-encode a plain URL's path and query)."""
    try:
        secret = "://" in source and urlsplit(source).password is not None
    except ValueError:  # a netloc urlsplit cannot read: mask_url shows the scheme only
        secret = True
    return str(mask_url(source)) if is_sql_url(source) or secret else source
