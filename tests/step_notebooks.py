"""Tiny pipeline steps for the pipeline's tests: a notebook with the papermill parameters cell."""

from __future__ import annotations

from pathlib import Path

import nbformat


def write_step_notebook(path: Path, body: str, heading: str | None = None) -> None:
    """Write a notebook at ``path``: an optional Markdown ``heading``, the ``parameters`` cell every
    step has (``profile``, ``overrides``, ``output_root``), then ``body`` as one code cell, on the
    ``kdutils`` kernel."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "default"\noverrides = {}\noutput_root = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [*([nbformat.v4.new_markdown_cell(heading)] if heading else []), params,
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "kdutils", "display_name": "Python (kdutils)", "language": "python"}
    nbformat.write(nb, path)
