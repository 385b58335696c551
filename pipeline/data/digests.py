"""Content hashes of data: a frame's rows (`digest`), a file's bytes (`file_digest`, computed once per process for
the same path, size and modification time) and a local dataset of files (`files_digest` over `dataset_files`).

Reads the files it hashes; writes nothing. Used by the sources' digests (pipeline/data/source_kinds.py, the cache
fingerprint's data part), preprocess's split digests and evaluate's `eval-data` digest.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def digest(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values and column order, not the index)."""
    import pandas as pd  # here: the fingerprint of a file source needs no pandas

    return str(pd.util.hash_pandas_object(frame, index=False).sum())


def file_digest(path: str | Path) -> str:
    """A file's content hash, computed once per process for the same size and modification time (main's
    fingerprint and the step both ask for it)."""
    stat = os.stat(path)
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    hashed = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            hashed.update(block)
    return hashed.hexdigest()


def dataset_files(source: str) -> list[Path]:
    """The files of a local dataset: the file itself, every file under a folder (hidden ones aside), or a glob's."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = path.rglob("*")
    elif any(char in source for char in "*?["):
        found = (Path(name) for name in glob.glob(source, recursive=True))
    else:
        return []
    return sorted(p for p in found if p.is_file() and not any(part.startswith(".") for part in p.parts[-1:]))


def files_digest(files: list[Path], folder: Path | None) -> str:
    """One hash of several files' names and contents; names relative to `folder` when given, so a folder moved
    elsewhere keeps its digest."""
    combined = hashlib.sha256()
    for path in files:
        name = path.relative_to(folder) if folder else path
        combined.update(f"{name.as_posix()}\0{file_digest(path)}\n".encode())
    return combined.hexdigest()
