"""Progress bars as readers of the executed notebooks see them (kdutils.progress)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from kdutils import progress
from kdutils.pipeline import KERNEL_NAME
from kdutils.study.files import REPO_ROOT


def test_display_line_keeps_the_last_state_or_nothing_once_cleared() -> None:
    for leave, last in ((True, "train: 100%|██████████| 14/14"), (False, "")):
        shown: list[str] = []
        for _ in progress.bar(range(14), file=progress.DisplayLine(shown.append), desc="train", leave=leave,
                              mininterval=0):
            pass
        assert shown[0].startswith("train:   0%|") and shown[-1].startswith(last)
        assert all("\r" not in s and s == s.rstrip() for s in shown)


def test_in_an_executed_notebook_only_the_final_bar_is_kept_as_plain_output() -> None:
    """The bug: every redraw was stored as a stderr output, so the HTML showed `0/50` in an error box."""
    code = ("from kdutils import progress\n"
            "for _ in progress.bar(range(50), desc='kept', mininterval=0): pass\n"
            "for _ in progress.bar(range(50), desc='cleared', leave=False, mininterval=0): pass")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=120, resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data", "display_data"]
    kept, cleared = (o.data["text/plain"] for o in outputs)
    assert kept.startswith("kept: 100%|") and "50/50" in kept and cleared == ""
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert "| 50/50" in page and "| 0/50" not in page
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in page
