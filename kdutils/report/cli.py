"""``python -m kdutils.report``: render, publish, index and check from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from kdutils.report.index import write_index
from kdutils.report.publishing import check, publish
from kdutils.report.reading import PAPER_DIR, ReportError
from kdutils.report.rendering import render
from kdutils.study.summary import SummaryError

# The first line of the package's docstring (kdutils.report), which --help shows.
DESCRIPTION = "Tables, the paper and the HTML index of a run, rendered from its ``summary.json``."


def main(argv: Iterable[str] | None = None) -> int:
    """Run one subcommand (``render``, ``publish``, ``index``, ``check``); the exit code: 0 done,
    1 a check found differences, 2 an error (printed on stderr)."""
    parser = argparse.ArgumentParser(prog="python -m kdutils.report", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    p_render = sub.add_parser("render", help="tables, paper.md and paper.html of a run")
    p_render.add_argument("--run", required=True, help="run directory, e.g. outputs/smoke")
    p_render.add_argument("--out", default=None, help="output folder (default <run>/paper)")
    p_render.add_argument("--engine", default="auto", choices=["auto", "pandoc", "python"])
    p_pub = sub.add_parser("publish", help="copy a finished run into paper/runs/<profile>/ and render the "
                                           "paper from every published run")
    p_pub.add_argument("--run", required=True, help="run directory of a published profile, e.g. outputs/default")
    p_pub.add_argument("--dest", default=None, help="the paper folder (default paper/)")
    p_pub.add_argument("--engine", default="auto", choices=["auto", "pandoc", "python"])
    p_index = sub.add_parser("index", help="write <run>/reports/index.html")
    p_index.add_argument("--run", required=True)
    p_check = sub.add_parser("check", help="validate every published run and diff the paper with a re-render")
    p_check.add_argument("--published", default=str(PAPER_DIR), help="the paper folder (default paper/)")
    p_check.add_argument("--engine", default=None, choices=["pandoc", "python"])
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        if args.command == "render":
            res = render(args.run, args.out, args.engine)
            print(f"rendered {res.paper_md} and {res.paper_html} ({res.engine}); "
                  f"{len(res.tables)} table files, {len(res.figures)} figures")
            for name in res.missing_figures:
                print(f"  figure not produced by this run, left out: {name}")
        elif args.command == "publish":
            res = publish(args.run, args.dest, args.engine)
            print(f"published {args.run} into {res.out_dir}")
            for name in res.missing_figures:
                print(f"  figure not produced by this run, left out: {name}")
            # What was just written must be what the published summaries render to.
            diffs, _ = check(res.out_dir)
            if diffs:
                print("the published folder does not re-render identically:\n" + "\n".join(diffs))
                return 1
        elif args.command == "index":
            print(f"wrote {write_index(args.run)}")
        elif args.command == "check":
            diffs, notes = check(args.published, args.engine)
            for note in notes:
                print(f"note: {note}")
            if diffs:
                print(f"{len(diffs)} difference(s) from what the runs in {args.published}/runs/ render to:")
                for d in diffs:
                    print(d)
                return 1
            print(f"{args.published}: the paper and each run's tables match the published summaries")
    except (ReportError, SummaryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0

