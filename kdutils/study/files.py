"""Files written atomically, JSON and sha256: what every stage writes with, and nothing else.

Files and model directories are written to a temporary sibling and renamed into place, so an
interrupted run never leaves a half-written artefact that a later step trusts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# Figures are saved as PNG at this resolution (for the web) and as PDF (for print).
FIGURE_DPI = 200


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``, read in blocks of ``chunk`` bytes.

    Raises ``OSError`` (e.g. ``FileNotFoundError``) when the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(*parts: str) -> str:
    """Hex sha256 of ``parts`` encoded as UTF-8, each followed by a NUL byte.

    The separator keeps ``("ab", "c")`` and ``("a", "bc")`` apart.
    """
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows; os.umask is a set-and-get)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces ``path`` in one rename.

    The file ends up with the permissions an ordinary ``open()`` would give (0666 minus the
    umask): mkstemp makes it owner-only, which would hide reports from a web server's user.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path`` as a whole.

    A crash inside the block leaves the old ``path`` (or nothing) in place, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~current_umask())  # as mkdir would make it, not mkdtemp's owner-only 0700
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` to ``path`` as indented JSON, atomically (:func:`atomic_path`); returns ``path``.

    numpy scalars and arrays and paths are written as JSON numbers, lists and strings; any other
    object JSON cannot hold raises ``TypeError`` and leaves ``path`` as it was.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")
    return Path(path)


def read_json(path: str | Path) -> Any:
    """The parsed JSON at ``path``. Raises ``FileNotFoundError`` or ``json.JSONDecodeError``."""
    return json.loads(Path(path).read_text())


def json_default(obj: Any) -> Any:
    """``json.dumps``'s ``default``: numpy scalars and arrays, Paths and tuples as plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_figure_files(fig: Any, directory: str | Path, name: str, *, deterministic: bool = False) -> list[Path]:
    """Save the matplotlib figure ``fig`` as ``<directory>/<name>.png`` (:data:`FIGURE_DPI`, for the
    web) and ``<name>.pdf`` (for print), each atomically; returns the two paths, PNG first.

    With ``deterministic`` the files leave out the PDF's creation date and the PNG's software tag
    (matplotlib's version), so the same numbers drawn twice give the same bytes.
    """
    directory = Path(directory)
    stamp_free = {"png": {"Software": None}, "pdf": {"CreationDate": None}}
    paths = []
    for ext, kw in (("png", {"dpi": FIGURE_DPI}), ("pdf", {})):
        if deterministic:
            kw = {**kw, "metadata": stamp_free[ext]}
        target = directory / f"{name}.{ext}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", **kw)
        paths.append(target)
    return paths
