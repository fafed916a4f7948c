"""Score a file: ``python -m kdutils.predict --run outputs/<profile> INPUT OUTPUT``.

    python -m kdutils.predict --run outputs/default [--model NAME] INPUT OUTPUT
        [--text-column C] [--id-column C] [--engine local|ray] [--address A]
        [--resume | --overwrite] [--batch-size N] [--workers N] [--chunk-rows N]

INPUT is a CSV, Parquet or JSONL file, a folder of them or a glob (quote it); OUTPUT is
``.parquet``, ``.csv`` or ``.jsonl``. The work is :func:`kdutils.inference.batch.predict_file`; this
module only parses flags and turns a bad input into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from kdutils.inference.batch import DEFAULT_MODEL, predict_file
from kdutils.inference.batch_engines import BATCH_SIZE
from kdutils.inference.batch_io import CHUNK_ROWS, PredictInputError

# Local directories only: a missing model file fails, it never reaches for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block) and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _Parser(prog="python -m kdutils.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="run directory, e.g. outputs/default")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"a name the server accepts (default {DEFAULT_MODEL}; e.g. teacher, teacher@onnx)")
    p.add_argument("input", metavar="INPUT", help="CSV, Parquet or JSONL file, folder or quoted glob")
    p.add_argument("output", metavar="OUTPUT", help="output file: .parquet, .csv or .jsonl")
    p.add_argument("--text-column", default="text")
    p.add_argument("--id-column", default=None, help="column copied to the output's id (default: row number)")
    p.add_argument("--engine", default="local", choices=("local", "ray"))
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. auto, or host:6379); default: a local Ray on this machine")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue a killed job from its part files")
    again.add_argument("--overwrite", action="store_true", help="replace an existing output, drop old parts")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"texts per model call ({BATCH_SIZE})")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: this machine's cores) or Ray actors (default 2)")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS,
                   help=f"rows read, predicted and saved together: the unit of --resume ({CHUNK_ROWS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = predict_file(args.run, args.input, args.output, model=args.model, text_column=args.text_column,
                              id_column=args.id_column, engine=args.engine, address=args.address,
                              resume=args.resume, overwrite=args.overwrite, batch_size=args.batch_size,
                              workers=args.workers, chunk_rows=args.chunk_rows,
                              quiet=args.no_progress)
    except PredictInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConnectionError as err:  # ray.init: no cluster at --address
        print(f"error: --address {args.address}: no Ray cluster answered ({err})", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # an output folder that cannot be written, a disk that is full
        print(f"error: {err.filename or args.output}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    print(result.summary_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
