"""Fine-tune a teacher from the command line, in one process or several.

The same command runs as one process or as data-parallel ranks::

    python -m kdutils.teacher.train_cli --teacher minilm-l6 --train train.parquet --val val.parquet \\
        --output outputs/default/models/teacher --scratch outputs/default/cache/checkpoints/teacher
    torchrun --nproc_per_node 2 -m kdutils.teacher.train_cli ...        # 2 processes (gloo on CPU)
    torchrun --nnodes 2 --node_rank 0 --rdzv_endpoint host:29500 -m kdutils.teacher.train_cli ...

``--train``/``--val`` are Parquet or CSV files with ``text`` and ``label`` columns, or a run's
``data/`` folder (``--data``) as written by notebook 01. Every rank runs :func:`kdutils.teacher.finetune.
fine_tune`; rank 0 writes the model and prints its ``kdmodel.json`` summary as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd

from kdutils.data.corpora import load_splits
from kdutils.study.specs import TEACHERS
from kdutils.teacher.finetune import FineTuneJob, FineTuneSettings, fine_tune
from kdutils.teacher.weights import resolve_teacher


def _read_frame(path: str) -> pd.DataFrame:
    df = pd.read_csv(path) if path.endswith(".csv") else pd.read_parquet(path)
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise SystemExit(f"{path}: missing columns {sorted(missing)} (need text, label)")
    return pd.DataFrame({"text": df["text"].astype(str), "label": df["label"].astype("int64")})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdutils.teacher.train_cli", description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", default="minilm-l6", help=f"registry name ({', '.join(TEACHERS)}) or a local HF directory")
    parser.add_argument("--data", help="a run directory or its data/ folder (written by notebook 01) instead of --train/--val")
    parser.add_argument("--train", help="training file (.parquet or .csv with text, label)")
    parser.add_argument("--val", help="validation file (.parquet or .csv with text, label)")
    parser.add_argument("--label-names", help='JSON list, e.g. \'["negative", "positive"]\' (default: from --data meta.json)')
    parser.add_argument("--output", required=True, help="model directory to write (atomically)")
    parser.add_argument("--scratch", required=True, help="checkpoint directory (resumed from when it matches)")
    parser.add_argument("--name", default="teacher", help="model name recorded in kdmodel.json")
    parser.add_argument("--limit-train", type=int, help="use only the first N training rows")
    parser.add_argument("--limit-val", type=int, help="use only the first N validation rows")
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    FineTuneSettings.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.data:
        splits = load_splits(args.data)
        train, val, label_names = splits.train, splits.val, splits.label_names
    elif args.train and args.val:
        train, val = _read_frame(args.train), _read_frame(args.val)
        if not args.label_names:
            raise SystemExit("--label-names is required with --train/--val")
        label_names = json.loads(args.label_names)
    else:
        raise SystemExit("give --data, or --train and --val")
    if args.label_names:
        label_names = json.loads(args.label_names)
    train = train.iloc[: args.limit_train] if args.limit_train else train
    val = val.iloc[: args.limit_val] if args.limit_val else val

    settings = FineTuneSettings.from_args(args)
    base = resolve_teacher(args.teacher) if args.teacher in TEACHERS else Path(args.teacher)
    teacher = args.teacher if args.teacher in TEACHERS else ""
    result = fine_tune(base, FineTuneJob(train, val, label_names, args.output, args.scratch), settings,
                       name=args.name, teacher=teacher, resume=not args.no_resume, progress=not args.quiet)
    summary = {"model_dir": str(result.model_dir), "world_size": result.world_size,
               "val_accuracy": result.val_accuracy, "epochs_run": result.epochs_run,
               "train_seconds": result.train_seconds}
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
