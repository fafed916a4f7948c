"""The package's own source, read as files: its modules, the kdutils modules each one imports, digests.

Cache keys derive from the package layout through this module instead of from hard-coded file
names: the students' code fingerprint (:func:`kdutils.student.train.code_fingerprint`: the modules
a stage imports) and the pipeline's library digest (:func:`kdutils.pipeline.library_digest`: every
source file of the package). Imports are read with ``ast``, also those inside functions, so a module
imported where it is used counts like any other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from kdutils.study.files import sha256_text

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """The dotted name of the module at ``path``: ``kdutils/student/train.py`` -> ``kdutils.student.train``
    (a package's ``__init__.py`` -> the package's name)."""
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package (``*.py`` in any sub-package), by dotted name."""
    return {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))
            if "__pycache__" not in p.parts}


def imports(name: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The package's modules that module ``name`` imports anywhere in its source (module level or in
    functions; ``from kdutils.study import steps`` counts as ``kdutils.study.steps``)."""
    known = modules(package_dir)
    path = known[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def sub_package(name: str) -> str:
    """The layout unit of a module: its sub-package (``kdutils.student.train`` -> ``student``) or, for
    a top-level module, its own name (``kdutils.metrics`` -> ``metrics``)."""
    return name.split(".")[1] if name.count(".") else name


def import_closure(roots: Iterable[str], units: Iterable[str], package_dir: Path = PACKAGE_DIR) -> list[str]:
    """``roots`` and every module they import, directly or through each other, that lies in one of
    ``units`` (sub-packages or top-level modules, see :func:`sub_package`); sorted names."""
    allowed = set(units)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(m for m in imports(name, package_dir) if sub_package(m) in allowed)
    return sorted(seen)


def source_digest(files: Iterable[Path], package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 of ``files`` (each by its path relative to the package and its text), in path order."""
    ordered = sorted(files, key=lambda p: p.relative_to(package_dir).parts)
    return sha256_text(*(f"{p.relative_to(package_dir)}\0{p.read_text(errors='replace')}" for p in ordered))
