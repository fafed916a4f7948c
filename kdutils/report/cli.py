"""``python -m kdutils.report``: render, publish, index and check from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from kdutils.report import __doc__ as _package_doc
from kdutils.report.index import write_index
from kdutils.report.publish import check, publish
from kdutils.report.reading import ReportError
from kdutils.report.render import render
from kdutils.runs import REPO_ROOT
from kdutils.summary import SummaryError


def main(argv: Iterable[str] | None = None) -> int:
    """Run one subcommand (``render``, ``publish``, ``index``, ``check``); the exit code: 0 done,
    1 a check found differences, 2 an error (printed on stderr)."""
    parser = argparse.ArgumentParser(prog="python -m kdutils.report", description=_package_doc.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_render = sub.add_parser("render", help="tables, paper.md and paper.html of a run")
    p_render.add_argument("--run", required=True, help="run directory, e.g. outputs/smoke")
    p_render.add_argument("--out", default=None, help="output folder (default <run>/paper)")
    p_render.add_argument("--engine", default="auto", choices=["auto", "pandoc", "python"])
    p_pub = sub.add_parser("publish", help="copy a run's results into paper/ and render there")
    p_pub.add_argument("--run", required=True)
    p_pub.add_argument("--dest", default=None, help="override the publish folder")
    p_pub.add_argument("--engine", default="auto", choices=["auto", "pandoc", "python"])
    p_index = sub.add_parser("index", help="write <run>/reports/index.html")
    p_index.add_argument("--run", required=True)
    p_check = sub.add_parser("check", help="re-render a published folder and diff it")
    p_check.add_argument("--published", default=str(REPO_ROOT / "paper"))
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
            # What was just written must be what its own summary.json renders to.
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
                print(f"{len(diffs)} file(s) differ from what {args.published}/summary.json renders to:")
                for d in diffs:
                    print(d)
                return 1
            print(f"{args.published}: tables and text match summary.json")
    except (ReportError, SummaryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0

