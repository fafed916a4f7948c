"""What readers of the executed notebooks' HTML reports see, checked on the committed notebooks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from kdutils.study.files import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# A cell's last expression is shown in the report: only calls that display something on purpose.
DISPLAY_CALLS = {"display", "print", "report.show", "report.show_figure", "plt.show", "plt.close"}


def _cells(path: Path, kind: str) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nbformat.read(path, as_version=4).cells) if c.cell_type == kind]


def test_there_are_notebooks() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_headings_share_one_style(path: Path) -> None:
    """'# N. Title' first, then '## Section' only (04 and 05 had '# 0N · Title')."""
    cells = _cells(path, "markdown")
    title = cells[0][1].splitlines()[0]
    assert cells[0][0] == 0 and re.fullmatch(rf"# {int(path.name[:2])}\. \S.*", title), title
    for i, source in cells:
        for line in source.splitlines()[1 if i == 0 else 0:]:
            if line.startswith("#"):
                assert line.startswith("## ") and not line.startswith("###"), f"{path.name} cell {i}: {line}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_cell_prints_a_return_value_by_accident(path: Path) -> None:
    """A trailing ``run.save_table(...)`` printed ``[PosixPath('…/tables/…md'), …]`` into the report."""
    for i, source in _cells(path, "code"):
        body = ast.parse(source).body
        last = body[-1] if body else None
        if isinstance(last, ast.Expr) and not isinstance(last.value, ast.Constant):
            call = ast.unparse(last.value.func) if isinstance(last.value, ast.Call) else None
            assert call in DISPLAY_CALLS, f"{path.name} cell {i} ends with `{ast.unparse(last)}`: assign it"


# 05 shows its figures through the inline backend (its owner leaves the nbconvert alt-text
# warning to the pipeline); 01-04 show each saved figure with its caption as alt text.
@pytest.mark.parametrize("path", NOTEBOOKS[:4], ids=lambda p: p.stem)
def test_every_saved_figure_is_shown_with_alt_text(path: Path) -> None:
    source = "\n".join(s for _, s in _cells(path, "code"))
    saved = re.findall(r"run\.save_figure\(fig, (\"\w+\"|name)\)", source)
    shown = re.findall(r"report\.show_figure\(fig, (\"\w+\"|name)\)", source)
    assert saved and saved == shown
    assert "display(fig)" not in source and "plt.show()" not in source
