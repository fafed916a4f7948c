"""Tables and figures shown in a notebook the way the paper shows them."""

from __future__ import annotations

import base64
import html
from typing import Any

import pandas as pd

from kdutils.report.figures import figure_caption
from kdutils.report.formatting import looks_numeric, readable


def show(frame: pd.DataFrame) -> None:
    """Display :func:`readable` ``frame`` in a notebook: no row numbers, text left, numbers right."""
    from IPython.display import display

    shown = readable(frame)
    text = [c for c in shown.columns if not shown[c].map(looks_numeric).all()]
    styler = shown.style.hide(axis="index").set_properties(subset=text, **{"text-align": "left"})
    # Headers follow their column (nbconvert's stylesheet right-aligns every header).
    styler = styler.set_table_styles([{"selector": f"th.col_heading.col{shown.columns.get_loc(c)}",
                                       "props": [("text-align", "left")]} for c in text])
    display(styler)


def show_figure(fig: Any, name: str, dpi: int = 110) -> None:
    """Display a matplotlib figure in a notebook with its caption as alt text, then close it.

    nbconvert's HTML export gives a plain ``image/png`` output no alt text (and warns
    "Alternative text is missing"), so the figure is shown as an HTML ``<img>`` that carries
    the paper's caption (:func:`figure_caption`) as ``alt`` and below the image. ``dpi`` sets
    the on-screen resolution; the files the paper uses come from ``RunDir.save_figure``.
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = html.escape(figure_caption(name))
    display(HTML(f'<figure style="margin: 0.5em 0"><img src="data:image/png;base64,{data}" alt="{caption}" '
                 f'style="max-width: 100%; height: auto"><figcaption style="font-size: 0.9em; color: #444">'
                 f"<b>{html.escape(name)}</b>: {caption}</figcaption></figure>"))
