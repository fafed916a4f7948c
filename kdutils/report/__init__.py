"""Tables, the paper and the HTML index of a run, rendered from its ``summary.json``.

    python -m kdutils.report render  --run outputs/<profile> [--out DIR] [--engine auto|pandoc|python]
    python -m kdutils.report publish --run outputs/default   [--dest DIR]   (or outputs/paper)
    python -m kdutils.report index   --run outputs/<profile>
    python -m kdutils.report check   [--published paper/]

Every number in the paper comes from ``summary.json`` (results) and ``manifest.json``
(parameters, machine, versions) through the Jinja2 template ``templates/paper.md.j2``;
sentences that depend on an outcome ("the gain is significant") are template logic.
Each summary is read once, through :func:`kdutils.study.summary.load_summary` (a file written by
an older version fails there, naming each field), and used as the typed
:class:`~kdutils.study.summary.Summary`. Published figures of other projects come from
:mod:`kdutils.report.anchors`. Nothing here trains or scores a model, so a paper can be
re-rendered from the committed files alone.

Layout
------
``render`` writes a run's own paper into ``<run>/paper/`` (or ``--out``); the pipeline does so
after every run::

    paper.md, paper.html        the paper (HTML standalone: CSS inlined, figures as data URIs)
    tables/<name>.md, .tex      the paper's tables (Markdown and LaTeX)
    figures/<name>.png, .pdf    copies of the run's figures that the paper shows

``publish`` puts a finished run of a published profile (``default``, ``paper``) into the
repository's ``paper/`` and renders the paper there from every run published so far::

    paper/runs/<profile>/       summary.json, manifest.json, tables/ (that run's paper tables,
                                and the notebooks' under tables/notebooks/), figures/
    paper/paper.md, paper.html  one paper: ``default`` is the main body; the ``paper`` run (the
    paper/tables/, figures/     110M mpnet-12 teacher), when published, adds a section with both
                                teachers side by side (table ``teacher_comparison``, figure
                                ``teacher_comparison`` drawn here) and its depth table

It refuses a run whose manifest records uncommitted changes or a notebook that failed or did
not run, and any other profile (``render`` also refuses an ``--out`` inside ``paper/`` for
one). Everything is staged first and swapped into place, and ``publish`` re-checks what it
wrote. ``check`` validates every ``paper/runs/*/summary.json`` and manifest, re-renders the
paper's text and tables and each run's tables into a temporary folder and diffs them with the
published files (non-zero exit on any difference); ``paper.html`` is compared when this machine
has the HTML engine that wrote it (recorded in the file), otherwise the check says it skipped it.

HTML comes from pandoc (``/usr/bin/pandoc``; ``--embed-resources --standalone``, or
``--self-contained`` before pandoc 2.19) when it is installed, otherwise from python-markdown
with the CSS and images inlined here; ``--engine`` forces one. The figures the paper expects,
and the notebook that saves each, are listed in :data:`PAPER_FIGURES`; a missing one is left
out with a note.

``index`` writes ``<run>/reports/index.html``: every notebook's executed HTML (code and
reader versions), the paper, the manifest, the figures and the headline table, linking
only files that exist and listing what is missing in plain words.

Modules, one job each: ``reading`` (a run's files, where published runs live), ``results``
(quantities read off a summary, the teachers' comparison), ``formatting`` (numbers and headers
as printed; what each teacher and data set is comes from ``kdutils.study.specs``), ``anchors`` (published
figures of other projects), ``tables``, ``figures`` (the paper's figures; the comparison figure
drawn here), ``context`` (what the template may say), ``rendering`` (Markdown and HTML),
``publishing`` (``paper/`` and its check), ``index`` (a run's HTML index), ``display``
(notebook output), ``cli``.
"""

from kdutils.report.cli import main
from kdutils.report.context import build_context
from kdutils.report.display import show, show_figure
from kdutils.report.figures import FIGURE_SECTIONS, PAPER_FIGURES, PAPER_SECTIONS, collect_figures
from kdutils.report.formatting import (
    format_cell,
    millions,
    num,
    p_clause,
    pct,
    pct_ci,
    points,
    points_ci,
    pval,
    readable,
)
from kdutils.report.index import broken_links, local_links, write_index
from kdutils.report.publishing import check, publish
from kdutils.report.reading import ReportError, publish_dir
from kdutils.report.rendering import PANDOC, render, render_markdown, render_run
from kdutils.report.results import guard_intervals, significance_caveat
from kdutils.report.tables import PEER_LABELS, ablation_table, build_tables, teacher_table
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL

__all__ = [
    "FIGURE_SECTIONS",
    "MIN_SEEDS_FOR_INTERVAL",
    "PANDOC",
    "PAPER_FIGURES",
    "PAPER_SECTIONS",
    "PEER_LABELS",
    "ReportError",
    "ablation_table",
    "broken_links",
    "build_context",
    "build_tables",
    "check",
    "collect_figures",
    "format_cell",
    "guard_intervals",
    "local_links",
    "main",
    "millions",
    "num",
    "p_clause",
    "pct",
    "pct_ci",
    "points",
    "points_ci",
    "publish",
    "publish_dir",
    "pval",
    "readable",
    "render",
    "render_markdown",
    "render_run",
    "show",
    "show_figure",
    "significance_caveat",
    "teacher_table",
    "write_index",
]
