"""Run the numbered notebooks of the study in order, through papermill.

    python -m kdutils.pipeline run --profile smoke [--only 02] [--force]

Each notebook runs with the profile's parameters into ``outputs/<profile>/``:
the executed notebook, two HTML exports (with code, and a reader's version
without input), a log, the manifest (git commit, package versions, parameters,
input hashes, wall time, git commit and library digest per notebook) and the
report index. A notebook is skipped when its source, the profile parameters it
reads (:data:`kdutils.study.steps.STEPS`), the ``kdutils`` source and its upstream notebooks are
unchanged; ``--force`` re-runs it. While a notebook runs, its cell and latest
progress bar reach the terminal and ``logs/pipeline.log`` at most once per
``progress_interval`` seconds. A failing cell stops the run with one message
naming the notebook, the cell (as JupyterLab numbers it), the error and the
partial executed notebook, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat

from kdutils.data.assets import AssetError
from kdutils.data.corpora import source_hashes, validate_source
from kdutils.machine import resolve_precision
from kdutils.manifest import git_state, write_manifest
from kdutils.report import render_run, write_index
from kdutils.study import steps
from kdutils.study.config import (
    PROFILE_DIR,
    Profile,
    absolute_overrides,
    load_profile,
    profile_path,
)
from kdutils.study.files import atomic_path, read_json, sha256_text, write_json
from kdutils.study.layout import default_output_root
from kdutils.study.run_lock import RunLocked, run_lock
from kdutils.study.runs import RunDir, missing, to_run
from kdutils.study.source import source_digest
from kdutils.study.specs import ConfigError
from kdutils.study.steps import NOTEBOOK_DIR, Step, discover_steps
from kdutils.teacher import rate
from kdutils.teacher.weights import validate_teacher

KDUTILS_DIR = Path(__file__).resolve().parent
KERNEL_NAME = "kdutils"

log = logging.getLogger("kdutils.pipeline")


class PipelineError(RuntimeError):
    """A notebook failed; the message names the notebook, cell, error and partial output."""


def select_steps(all_steps: list[Step], only: list[str] | None) -> list[Step]:
    """The steps of ``all_steps`` whose number ``only`` names (``"2"``, ``"02"`` or ``"02_teacher"``
    all name step 02), in their order; all of them when ``only`` is empty or ``None``.

    Raises :class:`ConfigError` naming the numbers that match no step and the allowed ones.
    """
    if not only:
        return all_steps
    wanted = {o.zfill(2)[:2] for o in only}
    unknown = wanted - {s.number for s in all_steps}
    if unknown:
        raise ConfigError(
            f"--only {', '.join(sorted(unknown))}: no such notebook; allowed: {', '.join(s.number for s in all_steps)}"
        )
    return [s for s in all_steps if s.number in wanted]


def step_parameters(step: Step, cfg: Profile) -> dict[str, Any]:
    """The profile values ``step`` reads (``reads`` of its entry in :data:`kdutils.study.steps.STEPS`), as
    ``{"teacher.name": ..., "data": {...}}``; a notebook the table does not know reads the whole profile."""
    dumped = cfg.model_dump(mode="json")
    try:
        reads = steps.step(step.number).reads
    except steps.UnknownStep:
        return dumped
    out = {}
    for dotted in reads:
        value: Any = dumped
        for part in dotted.split("."):
            value = value[part]
        out[dotted] = value
    return out


def library_digest(package_dir: Path = KDUTILS_DIR) -> str:
    """sha256 of the kdutils source: every file of the package and its sub-packages (``*.py``,
    templates, static files), by relative path (:func:`kdutils.study.source.source_digest`).

    Profiles are left out: a notebook's key already covers the parameters it reads, and an edit
    to one profile must not re-run the runs of the others.
    """
    files = [p for p in package_dir.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
             and p.relative_to(package_dir).parts[0] != PROFILE_DIR.name]
    return source_digest(files, package_dir)


def step_key(step: Step, cfg: Profile, upstream_key: str, library: str | None = None,
             inputs: dict[str, str] | None = None) -> str:
    """Cache key: the notebook's source, the parameters it reads, the kdutils source and its upstream's key;
    for a notebook that reads the ``data`` section, also the sha256 of each of its source files
    (``inputs``, :func:`kdutils.data.corpora.source_hashes`; computed here when not given); for one
    that reads the teacher's precision, the numeric mode it resolves to on this machine.

    A data file's path is a parameter but its content is not: without its hash a file rewritten
    in place would leave the data notebook "unchanged". The long teacher fine-tuning and scoring
    keep their own content-keyed caches, so a re-run caused by a library change that does not
    touch them reuses their results.
    """
    parameters = step_parameters(step, cfg)
    params = json.dumps(parameters, sort_keys=True)
    parts = [step.path.read_text(), params, library or library_digest(), upstream_key]
    if any(name == "data" or name.startswith("data.") for name in parameters):
        parts.append(json.dumps(source_hashes(cfg.data) if inputs is None else inputs, sort_keys=True))
    if any(name in ("teacher", "teacher.precision") for name in parameters):
        # `precision: auto` is a request: the mode it becomes depends on the machine, and the
        # teacher's numbers on the mode, so a folder reused on another CPU class runs again.
        parts.append(f"teacher mode {resolve_precision(cfg.teacher.precision).mode}")
    return sha256_text(*parts)


def rerun_command(profile: str, numbers: list[str], overrides: dict | None = None,
                  output_root: str | Path | None = None, force: bool = True) -> str:
    """The one pipeline command that (re)runs notebooks ``numbers`` (``["01", "03"]``) of a profile."""
    cmd = ["python", "-m", "kdutils.pipeline", "run", "--profile", str(profile), "--only", *numbers]
    if overrides:
        cmd += ["--set", json.dumps(overrides)]
    if output_root is not None and Path(output_root).resolve() != default_output_root().resolve():
        cmd += ["--output-root", str(output_root)]
    if force:
        cmd.append("--force")
    return shlex.join(cmd)


def require_upstream(step: str, run_root: str | Path, profile: str, overrides: dict | None = None,
                     output_root: str | Path | None = None, *, seeds: Sequence[int] = (),
                     extra: Sequence[str] = ()) -> None:
    """Raise ``FileNotFoundError`` when notebook ``step`` (``"04"``) misses what earlier notebooks write.

    Checks the step's needs in :data:`kdutils.study.steps.STEPS` (``{seed}`` for each of ``seeds``) and
    ``extra`` run files under ``run_root``, writing nothing. The message names what is missing
    and ends with the one pipeline command (:func:`rerun_command`) that makes it, for ``profile``
    (as the notebook received it), ``overrides`` and ``output_root``.
    """
    run_root = Path(run_root)
    problems = missing(run_root, step, seeds, extra)
    if not problems:
        return
    names = to_run(problems)
    raise FileNotFoundError(
        f"notebook {steps.step(step).number} needs what {', '.join(names) or 'no step'} "
        f"write{'s' if len(names) == 1 else ''} for profile {run_root.name!r} under {run_root} "
        f"({len(problems)} missing, first {problems[0]})"
        + (f"; run first:  {rerun_command(profile, [n[:2] for n in names], overrides, output_root)}" if names else ""))


def preflight(cfg: Profile) -> None:
    """Cheap checks of everything the profile names, before anything is written."""
    validate_source(cfg.data)
    validate_teacher(cfg.teacher)


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes`` (known, harmless repeats)."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


# nbconvert warns once per notebook that figures lack alt text; the figures are described in
# the surrounding Markdown, so the warning says nothing new.
_export_log = logging.getLogger("kdutils.pipeline.nbconvert")
_export_log.addFilter(_DropMessages("Alternative text is missing"))


def export_html(executed: Path, run: RunDir) -> list[Path]:
    """Export the executed notebook ``executed`` twice into the run's ``reports/``, each atomically:
    with its code, and a reader's version without input cells (:meth:`RunDir.report_html`).

    Returns the two paths, the version with code first."""
    from nbconvert import HTMLExporter  # seconds to import: only a finished notebook needs it

    nb = nbformat.read(executed, as_version=4)
    written = []
    for exclude_input in (False, True):
        exporter = HTMLExporter(embed_images=True, exclude_input=exclude_input, exclude_input_prompt=exclude_input,
                                exclude_output_prompt=exclude_input, log=_export_log)
        body, _ = exporter.from_notebook_node(nb)
        target = run.report_html(executed.stem, reader=exclude_input)
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
    # code cells from 1 as JupyterLab shows them (without the cell papermill injects), and
    # quote its last line to find it.
    try:
        code_cells = code_cells_of(nbformat.read(partial, as_version=4))
    except (OSError, ValueError):
        code_cells = []
    for number, cell in enumerate(code_cells, start=1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            lines = [ln.strip() for ln in cell.source.splitlines() if ln.strip()]
            where = f"code cell {number}" + (f" ({lines[-1][:80]!r})" if lines else "")
            break
    return f"{step.name} failed in {where}: {ename}: {evalue}\n  partial executed notebook: {partial}"


def code_cells_of(nb: Any) -> list[Any]:
    """The code cells of ``nb`` as JupyterLab numbers them: papermill's injected parameters cell left out."""
    return [c for c in nb.cells if c.cell_type == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class ProgressRelay:
    """Relays a running notebook's whereabouts to ``emit`` (the log: terminal and pipeline.log).

    Receives the kernel's stdout/stderr (as papermill's ``stdout_file``/``stderr_file``) and cell
    starts; keeps the latest progress-bar line (tqdm redraws with ``\\r``) and, at most once per
    ``interval`` seconds, emits one line: notebook, code cell n/N and its last source line, the
    latest bar (which carries its own remaining-time estimate) and the time left by the
    notebook's previous run time when known. A cell that prints nothing still gets a line every
    ``quiet_every`` intervals, so a long silent cell is visibly alive.
    """

    def __init__(self, step_name: str, n_code_cells: int, emit: Callable[[str], None], interval: float = 60.0,
                 previous_seconds: float | None = None, quiet_every: int = 5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.step_name, self.n_code_cells, self.emit = step_name, n_code_cells, emit
        self.interval, self.previous_seconds, self.quiet_every, self.clock = interval, previous_seconds, quiet_every, clock
        self.started = self.cell_started = self.last_emit = clock()
        self.cell_label = "starting the kernel"
        self.latest = ""
        self.changed = False
        self._lock = threading.Lock()

    # papermill calls write/flush on the objects given as stdout_file / stderr_file
    def write(self, text: str) -> int:
        segments = [s.strip() for s in re.split(r"[\r\n]+", text) if s.strip()]
        if segments:
            with self._lock:
                self.latest, self.changed = segments[-1][:160], True
        return len(text)

    def flush(self) -> None:
        self.tick()

    def cell(self, number: int | None, source: str) -> None:
        """A code cell starts: ``number`` as JupyterLab shows it (``None`` for the injected one)."""
        if number is None:
            return
        lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        with self._lock:
            self.cell_label = f"code cell {number}/{self.n_code_cells}" + (f" ({lines[-1][:60]})" if lines else "")
            self.cell_started, self.latest, self.changed = self.clock(), "", True
        self.tick()

    def status(self) -> str:
        now = self.clock()
        line = f"[{self.step_name}] {self.cell_label}, {_minutes(now - self.started)} in"
        if self.latest:
            line += f": {self.latest}"
        elif now - self.cell_started >= self.interval:
            line += f"; this cell has run {_minutes(now - self.cell_started)} without output"
        if self.previous_seconds:
            left = self.previous_seconds - (now - self.started)
            line += (f"; last run took {_minutes(self.previous_seconds)}"
                     + (f", about {_minutes(left)} left" if left > 0 else ", running longer this time"))
        return line

    def tick(self) -> None:
        """Emit a status line if one is due (changed and ``interval`` passed, or quiet too long)."""
        with self._lock:
            now = self.clock()
            since = now - self.last_emit
            due = (self.changed and since >= self.interval) or since >= self.interval * self.quiet_every
            if not due:
                return
            self.last_emit, self.changed = now, False
        self.emit(self.status())

    def run_ticks(self, stop: threading.Event) -> None:
        """Tick every ``interval / 4`` seconds until ``stop`` is set (a daemon thread's body)."""
        while not stop.wait(max(self.interval / 4, 0.05)):
            self.tick()


_ENGINE: str | None = None


def _engine() -> str:
    """Register (once) and name the papermill engine that tells a :class:`ProgressRelay` which
    cell starts and runs the kernel over IPC (no "running over TCP without encryption" warning)."""
    # papermill and Jupyter's kernel machinery take seconds to import: only running a notebook needs them.
    from jupyter_client.manager import AsyncKernelManager
    from papermill.engines import NBClientEngine, papermill_engines
    from traitlets import default

    global _ENGINE
    if _ENGINE is not None:
        return _ENGINE

    class IPCKernelManager(AsyncKernelManager):
        ipc_dir: str = tempfile.gettempdir()

        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("ip")
        def _default_ip(self) -> str:
            return os.path.join(self.ipc_dir, "kernel")

    class RelayEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, relay: ProgressRelay | None = None,
                                     ipc_dir: str | None = None, **kwargs: Any) -> Any:
            if relay is not None:
                numbers = {id(c): i for i, c in enumerate(code_cells_of(nb_man.nb), start=1)}
                original = nb_man.cell_start

                def cell_start(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                    if cell.cell_type == "code":
                        relay.cell(numbers.get(id(cell)), cell.source)
                    return original(cell, cell_index=cell_index, **kw)

                nb_man.cell_start = cell_start
            manager = type("StepKernelManager", (IPCKernelManager,), {"ipc_dir": ipc_dir or tempfile.gettempdir()})
            return super().execute_managed_notebook(nb_man, kernel_name, kernel_manager_class=manager, **kwargs)

    papermill_engines.register("kdutils", RelayEngine)
    _ENGINE = "kdutils"
    return _ENGINE


def run_step(step: Step, run: RunDir, profile_arg: str, output_root: Path, overrides: dict | None,
             progress_interval: float = 60.0, previous_seconds: float | None = None) -> float:
    """Execute one notebook into ``run`` (partial file renamed on success) and export its HTML.

    Returns the wall time in seconds; raises :class:`PipelineError` naming the failing cell.
    """
    import papermill as pm  # seconds to import: only running a notebook needs it

    executed = run.notebooks / f"{step.name}.ipynb"
    partial = run.notebooks / f"{step.name}.partial.ipynb"
    relay = ProgressRelay(step.name, len(code_cells_of(nbformat.read(step.path, as_version=4))), log.info,
                          interval=progress_interval, previous_seconds=previous_seconds)
    stop = threading.Event()
    ticker = threading.Thread(target=relay.run_ticks, args=(stop,), daemon=True)
    start = time.perf_counter()
    ticker.start()
    try:
        with tempfile.TemporaryDirectory(prefix="kd-kernel-") as ipc_dir:
            pm.execute_notebook(
                str(step.path),
                str(partial),
                parameters={"profile": profile_arg, "overrides": overrides or {}, "output_root": str(output_root)},
                kernel_name=KERNEL_NAME,
                engine_name=_engine(),
                cwd=str(step.path.parent),
                progress_bar=False,
                log_output=False,
                stdout_file=relay,
                stderr_file=relay,
                relay=relay,
                ipc_dir=ipc_dir,
                request_save_on_cell_execute=True,
            )
    except Exception as err:  # papermill raises its own error for a failing cell, others for a dead kernel
        raise PipelineError(_failure_message(step, err, partial)) from err
    finally:
        stop.set()
        ticker.join(timeout=5)
    os.replace(partial, executed)
    export_html(executed, run)
    return time.perf_counter() - start


def resolve_profile_arg(profile: str | Path) -> str:
    """What the notebooks receive as ``profile``: a shipped profile's name as given, any other
    profile as its absolute path (notebooks run with ``notebooks/`` as working directory)."""
    path = profile_path(profile)
    return str(profile) if path.parent == PROFILE_DIR.resolve() and str(profile) == path.stem else str(path)


def run_pipeline(
    profile: str,
    only: list[str] | None = None,
    force: bool = False,
    output_root: str | Path | None = None,
    overrides: dict | None = None,
    report: bool = True,
    notebook_dir: Path = NOTEBOOK_DIR,
    progress_interval: float = 60.0,
) -> RunDir:
    """Run the selected notebooks of ``profile`` (skipping unchanged ones) and write the manifest.

    The profile path (relative to the current directory) and any ``data.path`` (relative to the
    profile file, or in ``overrides`` to the current directory) are resolved here, once, and the
    notebooks receive them absolute. The run folder is locked (:func:`run_lock`) from before the
    first write to the end. Raises :class:`ConfigError` (bad profile, parameter or ``only``),
    :class:`AssetError`, :class:`RunLocked` (another pipeline holds the run folder) or
    :class:`PipelineError` (a failing notebook).
    """
    profile = resolve_profile_arg(profile)
    overrides = absolute_overrides(overrides) or None
    cfg = load_profile(profile, overrides)
    all_steps = discover_steps(notebook_dir)
    chosen = select_steps(all_steps, only)
    preflight(cfg)
    run = RunDir.for_profile(cfg.name, output_root)
    output_root = run.root.parent.resolve()
    run.root.mkdir(parents=True, exist_ok=True)
    with run_lock(run.root):
        _setup_log(run)
        state_dir = run.state_dir

        # Hashed once, before any notebook runs: what the data notebook will read now.
        inputs = source_hashes(cfg.data)
        upstream = ""
        timings: dict[str, Any] = {}
        selected = {s.name for s in chosen}
        for step in all_steps:
            # Read at each step, not once: code edited while a long run goes on is what later notebooks run.
            library = library_digest()
            key = step_key(step, cfg, upstream, library, inputs)
            upstream = key
            if step.name not in selected:
                continue
            state_file = state_dir / f"{step.name}.json"
            executed = run.notebooks / f"{step.name}.ipynb"
            previous = read_json(state_file) if state_file.exists() else {}
            if not force and executed.exists() and previous.get("key") == key:
                log.info("[%s] unchanged, skipped (use --force to re-run)", step.name)
                timings[step.name] = {**previous, "status": "skipped"}
                continue
            state_file.unlink(missing_ok=True)
            why = ("--force" if force else "no earlier result" if not previous or not executed.exists()
                   else "its notebook, parameters, data files, kdutils source or upstream changed")
            log.info("[%s] running (%s) ...", step.name, why)
            git = git_state()
            try:
                seconds = run_step(step, run, profile, output_root, overrides, progress_interval,
                                   previous.get("seconds"))
            except PipelineError as failed:
                try:
                    write_manifest(run, cfg, profile, {**timings, step.name: {"status": "failed", "git": git,
                                                                              "kdutils": library}})
                except OSError as err:
                    # A full disk fails the notebook and the manifest alike: the notebook's failure
                    # stays the message, the manifest's is added to it instead of replacing it.
                    raise PipelineError(f"{failed}; the manifest was not written either: {_os_error(err)}") from err
                raise
            record = {"key": key, "seconds": round(seconds, 1),
                      "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                      "git": git, "kdutils": library}
            write_json(state_file, record)
            timings[step.name] = {**record, "status": "ran"}
            log.info("[%s] done in %s", step.name, _minutes(seconds))
            write_manifest(run, cfg, profile, timings)
        write_manifest(run, cfg, profile, timings)
        if report:
            build_reports(run)
    return run


def _os_error(err: OSError) -> str:
    """An OS error as one line naming the path: ``/out/smoke/manifest.json: No space left on device``."""
    where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 else "") if err.filename else ""
    return f"{where}: {err.strerror or err}" if where else str(err.strerror or err)


def build_reports(run: RunDir) -> None:
    """The paper rendered into the run, and the HTML index linking everything."""
    render_run(run.root)
    log.info("report: %s", write_index(run.root))


def _setup_log(run: RunDir) -> None:
    # One file handler per run directory, also when run_pipeline is called again in one process.
    target = str(run.pipeline_log.resolve())
    for h in list(log.handlers):
        if isinstance(h, logging.FileHandler):
            log.removeHandler(h)
            h.close()
    handler = logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """The command line (``python -m kdutils.pipeline --help``) on ``argv`` (default ``sys.argv``):
    ``run`` executes a profile's notebooks, ``teacher-rate`` times its teacher.

    Returns the exit code: 0 done; 1 a bad profile, missing asset, failing notebook or refused
    probe, said in one ``error:`` line on stderr; 2 ``--set`` that is not JSON. argparse exits
    with 2 itself on unknown arguments."""
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
        try:
            if args.modes:
                modes = rate.compare_modes(load_profile(args.profile), args.teachers, steps=args.steps,
                                                   output_root=args.output_root)
                print(rate.modes_table(modes).to_string(index=False))
                print(f"detected: {modes['detected']['mode']} ({modes['detected']['reason']})")
                return 0
            result = rate.probe(load_profile(args.profile), steps=args.steps, warmup=args.warmup,
                                        score_rows=args.score_rows, output_root=args.output_root)
        except (ConfigError, AssetError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(rate.describe(result))
        return 0
    try:
        overrides = json.loads(args.overrides) if args.overrides else None
        run = run_pipeline(args.profile, args.only, args.force, args.output_root, overrides, not args.no_report)
    except (ConfigError, PipelineError, AssetError, RunLocked) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as err:
        print(f"error: --set is not valid JSON: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # A read-only or full output folder: where, and what the system said, not a traceback.
        print(f"error: {_os_error(err)}; the output folder must be writable and have free space "
              "(--output-root chooses another)", file=sys.stderr)
        return 1
    print(f"done: {run.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
