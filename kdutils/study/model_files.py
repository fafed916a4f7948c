"""The layout of a saved model: its file names, and its ``kdmodel.json`` read and written in one place.

A saved model is one directory holding ``kdmodel.json`` (``kind``: ``teacher``, ``student`` or
``reference``; ``name``, ``label_names``, ``max_length``, ``params``, ``size_mb`` and what its
writer adds) next to:

- a teacher: the Hugging Face ``save_pretrained`` files (``model.safetensors``, ``config.json``)
  and its tokenizer (:mod:`kdutils.teacher.finetune`);
- a student: ``model.safetensors``, ``config.json`` (architecture) and ``vocab.json``
  (:func:`kdutils.student.models.save_student`);
- the TF-IDF reference: ``pipeline.joblib`` (:mod:`kdutils.student.baselines`).

An ONNX export of a model is a directory of ``model.onnx``, ``model.int8.onnx`` and
``export.json`` (:mod:`kdutils.inference.export`); where models and exports live in a run is
:class:`kdutils.study.runs.RunDir`'s business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdutils.study.files import read_json, write_json

META_FILE = "kdmodel.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
PIPELINE_FILE = "pipeline.joblib"  # the TF-IDF reference (joblib: a reference model, never served)
# Runtime (as served after "@") -> file name inside an export directory.
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
EXPORT_META = "export.json"


def meta_path(model_dir: str | Path) -> Path:
    """``<model_dir>/kdmodel.json`` (whether or not it exists)."""
    return Path(model_dir) / META_FILE


def weights_path(model_dir: str | Path) -> Path:
    """``<model_dir>/model.safetensors``, the weights of a teacher or student (whether or not it exists)."""
    return Path(model_dir) / WEIGHTS_FILE


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """The parsed ``kdmodel.json`` of ``model_dir``.

    Raises ``FileNotFoundError`` when there is none (the model was not saved) and
    ``json.JSONDecodeError`` (a ``ValueError``) when it is not JSON.
    """
    return read_json(meta_path(model_dir))


def write_meta(model_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``meta`` as ``<model_dir>/kdmodel.json`` atomically (indented JSON, keys in the given order).

    The file is written to a temporary sibling and renamed, so a failure (for instance a value JSON
    cannot hold: ``TypeError``) leaves the previous file, or none, and no partial one. numpy values
    and paths are written as plain JSON. Returns the file's path.
    """
    return write_json(meta_path(model_dir), meta)
