"""The typed summary.json contract (kdutils.study.summary) against real runs.

``tests/fixtures/smoke_summary.json`` is the whole summary of a real smoke run of the merged
notebooks 01-05 (2 seeds, so no intervals): it must validate and dump back to the same bytes. ``tests/fixtures/published_summary_v1.json`` is a complete
default run, as published (5 seeds, the depth sweep) written before notebook 05 measured peers and batching
with the light client; it must fail, naming those fields and notebook 05. Brought up to date (the teacher's numeric mode, the scorer's numeric mode and runtime,
the smoke run's serving section) it is the main fixture: damaged copies of it must fail with one
message naming the dotted field path and the notebook to rerun. Nothing here trains or scores a
model; a fresh smoke run is validated as it is written (RunDir.update_summary, test_study).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kdutils.study.files import REPO_ROOT, write_json
from kdutils.study.runs import RunDir
from kdutils.study.summary import (
    FaultTestSkipped,
    Summary,
    SummaryError,
    field_path,
    load_summary,
    notebook_for,
    validate_summary,
)

# The default run published before the typed contract (notebooks 02, 04, 05 of that time), kept as a
# fixture: the summary an older version wrote.
PUBLISHED = Path(__file__).resolve().parents[1] / "fixtures" / "published_summary_v1.json"
SMOKE = Path(__file__).resolve().parents[1] / "fixtures" / "smoke_summary.json"


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    """The published run as written (older notebooks 02, 04 and 05)."""
    return json.loads(PUBLISHED.read_text())


@pytest.fixture(scope="module")
def smoke() -> dict[str, Any]:
    return json.loads(SMOKE.read_text())


@pytest.fixture(scope="module")
def current(published: dict[str, Any], smoke: dict[str, Any]) -> dict[str, Any]:
    """The published run as the current notebooks write it: the fields they added, and the smoke
    run's serving section (peers, batching, the light client's HTTP overhead)."""
    out = copy.deepcopy(published)
    for name, entry in out["models"].items():
        if name.startswith("teacher"):
            # teachers.summary_entry writes precision after world_size.
            items = list(entry.items())
            at = [k for k, _ in items].index("world_size") + 1
            out["models"][name] = dict(items[:at] + [("precision", "fp32")] + items[at:])
    out["distillation"]["teacher_scoring"].update(
        precision="fp32",
        precision_reason="CPU lacks native bf16",
        runtime=None,
        runtime_calibration=None,
    )
    out["serving"] = copy.deepcopy(smoke["serving"])
    return out


@pytest.fixture
def raw(current: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the up-to-date published summary, free to damage."""
    return copy.deepcopy(current)


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(SummaryError) as info:
        Summary.from_dict(raw)
    return str(info.value)


# --------------------------------------------------------------------------- valid summaries


def test_published_summary_predates_the_light_client() -> None:
    # paper/ is an older run: notebook 05 now writes peers, batching and the light client's
    # HTTP overhead, notebooks 02 and 04 the teacher's numeric mode. It is republished later.
    with pytest.raises(SummaryError) as info:
        load_summary(PUBLISHED)
    message = str(info.value)
    assert message.startswith(f"{PUBLISHED}: ")
    assert "rerun notebooks/02_teacher.ipynb and notebooks/04_distillation.ipynb and " in message
    assert message.splitlines()[0].endswith("notebooks/05_deployment.ipynb")
    assert "models.teacher.precision: missing" in message
    assert "serving.settings.latency_client: missing" in message


def test_published_serving_section_names_the_replaced_fields(published: dict[str, Any]) -> None:
    message = _error({"serving": published["serving"]})
    assert "rerun notebooks/05_deployment.ipynb" in message
    for line in (
        "serving.peers: missing",
        "serving.batching: missing",
        "serving.http_overhead.noop.p50_ms_repeats: missing",
        "serving.http_overhead.noop.requests_total: unknown key",
        "serving.http_overhead.noop.users: unknown key",
    ):
        assert line in message, message


def test_smoke_summary_validates_and_round_trips_byte_for_byte(smoke: dict[str, Any]) -> None:
    summary = load_summary(SMOKE)
    assert summary.models is not None and summary.models.teacher is not None
    assert summary.models.teacher.precision in ("fp32", "bf16")
    assert summary.distillation is not None and summary.distillation.gain_ci95 is None  # 2 seeds
    assert summary.serving is not None and summary.serving.peers.settings.repeats == 3
    assert summary.serving.http_overhead.method == summary.serving.peers.settings.method
    assert summary.inference is not None and "student_distilled" in summary.inference.by_model()
    dumped = summary.dump()
    assert dumped == smoke
    assert json.dumps(dumped, indent=2) + "\n" == SMOKE.read_text()


def test_current_summary_validates_with_precise_types(current: dict[str, Any]) -> None:
    summary = Summary.from_dict(current)
    assert summary.data is not None and summary.data.n_test == 853
    models = summary.models
    assert (
        models is not None and models.teacher is not None and models.student_distilled is not None
    )
    assert isinstance(models.teacher.params, int) and models.teacher.precision == "fp32"
    assert list(models.depth_sweep()) == [2, 4]
    baseline = models.student_baseline
    assert baseline is not None and baseline.arch.embedding == "glove"
    assert isinstance(baseline.accuracy_ci95, tuple) and len(baseline.accuracy_ci95) == 2
    assert [r.seed for r in baseline.per_seed] == [0, 1, 2, 3, 4]
    assert models.tfidf_logreg is not None and models.tfidf_logreg.per_seed[0].best_epoch is None
    dist = summary.distillation
    assert dist is not None and dist.loss == "kl" and dist.gain_ci95 is not None
    assert dist.gain_ci95[0] > 0  # points: the published +2.72-point gain
    assert dist.teacher_scoring.sentences_per_s is None and dist.teacher_scoring.runtime is None
    assert summary.inference is not None
    assert summary.inference.by_model()["student_distilled"]["onnx-int8"].throughput_per_s > 0
    assert summary.inference.machine.cores == 2
    serving = summary.serving
    assert serving is not None and serving.peers.runtime == "onnx"
    assert serving.peers.ours["16"].p50_ms_repeats and serving.batching.on["1"].errors == 0
    assert serving.http_overhead.floor.p50_ms == serving.peers.floor["1"].p50_ms
    assert set(serving.sweeps()) == {"1_replica", "N_replicas_nginx"}
    assert serving.one_replica["teacher"]["4"].users == 4
    assert not isinstance(serving.fault_test, FaultTestSkipped) and serving.fault_test.failed == 0


def test_current_summary_round_trips_key_for_key(current: dict[str, Any]) -> None:
    dumped = Summary.from_dict(current).dump()
    # Key order too (models and inference are open mappings): written back, it is the same file.
    assert json.dumps(dumped, indent=2) == json.dumps(current, indent=2)


def test_run_dir_writes_a_dump_that_reads_back(tmp_run: RunDir, current: dict[str, Any]) -> None:
    summary = Summary.from_dict(current)
    for section, value in summary.dump().items():
        tmp_run.update_summary({section: value})
    assert tmp_run.summary_path.read_text() == json.dumps(current, indent=2) + "\n"
    assert load_summary(tmp_run.summary_path) == summary == tmp_run.summary()


@pytest.mark.parametrize(
    "sections",
    [
        (),
        ("data",),  # notebook 01 only
        ("data", "models"),
        ("data", "models", "student", "distillation"),  # 01-04, no deployment yet
    ],
)
def test_partial_runs_validate(current: dict[str, Any], sections: tuple[str, ...]) -> None:
    raw = {k: current[k] for k in sections}
    summary = Summary.from_dict(raw)
    assert summary.dump() == raw
    assert all(getattr(summary, k) is None for k in Summary.model_fields if k not in sections)


def test_run_of_notebook_02_alone_has_only_teachers(current: dict[str, Any]) -> None:
    teachers = {k: v for k, v in current["models"].items() if k.startswith("teacher")}
    summary = Summary.from_dict({"data": current["data"], "models": teachers})
    assert summary.models is not None and summary.models.student_baseline is None
    assert list(summary.models.entries()) == ["teacher", "teacher_L2", "teacher_L4"]


def test_sections_reset_to_null_by_notebook_05_validate(published: dict[str, Any]) -> None:
    # Notebook 05 writes {"inference": null} before the new section; a crash in between leaves it.
    raw = {"data": published["data"], "inference": None, "serving": None}
    summary = Summary.from_dict(raw)
    assert summary.inference is None and summary.dump() == raw


def test_too_few_seeds_for_intervals_gives_nulls(raw: dict[str, Any]) -> None:
    # kdutils.stats.mean_ci reports no interval below 3 seeds (smoke runs, 2-seed ablations).
    raw["models"]["student_baseline"]["accuracy_ci95"] = None
    raw["distillation"]["gain_ci95"] = None
    raw["distillation"]["ablation"][0]["accuracy_ci95"] = None
    summary = Summary.from_dict(raw)
    assert summary.distillation is not None and summary.distillation.gain_ci95 is None
    assert summary.dump() == raw


def test_teacher_precision_and_scoring_runtime_are_accepted(raw: dict[str, Any]) -> None:
    raw["models"]["teacher"]["precision"] = "bf16"
    raw["models"]["teacher_L2"]["precision"] = "fp32"
    raw["distillation"]["teacher_scoring"] = {
        "rows": 31030,
        "from_cache": 0,
        "scored": 31030,
        "rebuilt": False,
        "seconds": 812.4,
        "sentences_per_s": 38.2,
        "precision": "fp32",
        "precision_reason": "CPU lacks native bf16 (no avx512_bf16/amx_bf16)",
        "runtime": "onnx",
        "runtime_calibration": {
            "onnx_file": "/outputs/default/cache/teacher-0123456789ab.onnx",
            "export_seconds": 11.52,
            "torch_seconds": 1.204,
            "onnx_seconds": 0.711,
            "speedup": 1.693,
            "max_abs_logit_diff": 0.00021,
            "same_argmax": True,
            "chosen": "onnx",
        },
    }
    summary = Summary.from_dict(raw)
    assert summary.models is not None and summary.models.teacher is not None
    assert summary.models.teacher.precision == "bf16"
    assert summary.dump() == raw


def test_all_cached_scoring_records_null_runtime(raw: dict[str, Any]) -> None:
    raw["distillation"]["teacher_scoring"].update(
        precision="fp32", precision_reason="requested fp32", runtime=None, runtime_calibration=None
    )
    assert Summary.from_dict(raw).dump() == raw


def _peer_stats(p50: float) -> dict[str, Any]:
    # kdutils.serving.lightload.interleaved's per-target stats.
    return {
        "p50_ms": p50,
        "p95_ms": 2 * p50,
        "p99_ms": 3 * p50,
        "rps": 1000 / p50,
        "errors": 0,
        "requests": 1200,
        "p50_ms_repeats": [p50, 1.1 * p50, 0.9 * p50],
    }


def _client() -> dict[str, Any]:
    return {
        "cpu_s": 4.3,
        "wall_s": 43.0,
        "cpu_share": 0.1,
        "cpu_us_per_request": 514.6,
        "pid": 2879,
        "cpus": [1],
    }


def _peers() -> dict[str, Any]:
    levels = ("1", "4", "16")
    return {
        "model": "student_distilled@onnx",
        "runtime": "onnx",
        **{
            peer: {c: _peer_stats(base * int(c)) for c in levels}
            for peer, base in (("floor", 0.5), ("naive", 3.0), ("ours", 1.5))
        },
        "settings": {
            "method": "kdutils.lightload (http.client keep-alive, own process, interleaved)",
            "requests_per_repeat": 400,
            "repeats": 3,
            "block": 100,
            "threads": 1,
            "server_cpus": [0],
            "client_cpus": [1],
            "client": {c: _client() for c in levels},
        },
    }


def test_serving_peers_section(raw: dict[str, Any]) -> None:
    raw["serving"]["peers"] = _peers()
    summary = Summary.from_dict(raw)
    assert summary.serving is not None
    assert summary.serving.peers.ours["16"].p50_ms == 24.0
    assert summary.serving.peers.settings.client["4"].cpu_us_per_request == 514.6
    assert summary.dump() == raw


def test_a_repeat_without_success_is_nan(raw: dict[str, Any]) -> None:
    # lightload records NaN for a repeat in which every request failed; json writes NaN.
    stats = raw["serving"]["batching"]["off"]["1"]
    stats.update(p50_ms=None, p95_ms=None, p99_ms=None, errors=stats["requests"])
    stats["p50_ms_repeats"] = [float("nan")] * 3
    raw["serving"]["settings"]["other_processes_cpu_share"]["peers"] = None
    summary = Summary.from_dict(json.loads(json.dumps(raw)))
    assert summary.serving is not None and summary.serving.batching.off["1"].p50_ms is None


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: p["ours"].__setitem__("x", _peer_stats(1.0)), "serving.peers.ours.x (the key)"),
        (lambda p: p["naive"]["4"].pop("p99_ms"), "serving.peers.naive.4.p99_ms: missing"),
        (
            lambda p: p["floor"]["1"].__setitem__("max_ms", 9.0),
            "serving.peers.floor.1.max_ms: unknown",
        ),
        (lambda p: p.__setitem__("runtime", "tensorrt"), "serving.peers.runtime: expected 'torch'"),
        (
            lambda p: p.__setitem__("runtime", "onnx-int8"),
            "serving.peers: runtime 'onnx-int8' is not the runtime of model",
        ),
        (lambda p: p.pop("model"), "serving.peers.model: missing"),
        (lambda p: p["naive"].pop("16"), "serving.peers: concurrency levels differ"),
        (
            lambda p: p["ours"]["1"].__setitem__("p50_ms_repeats", [-1.0]),
            "serving.peers.ours.1.p50_ms_repeats[0]: expected a non-negative number of ms or NaN",
        ),
        (
            lambda p: p["floor"]["4"].__setitem__("errors", 5000),
            "serving.peers.floor.4: errors (5000) exceed requests (1200)",
        ),
        (lambda p: p.pop("settings"), "serving.peers.settings: missing"),
        (
            lambda p: p["settings"]["client"]["1"].pop("pid"),
            "serving.peers.settings.client.1.pid: missing",
        ),
    ],
)
def test_damaged_peers_name_the_field(
    raw: dict[str, Any], damage: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    peers = _peers()
    damage(peers)
    raw["serving"]["peers"] = peers
    message = _error(raw)
    assert expected in message, message
    assert "rerun notebooks/05_deployment.ipynb" in message


def test_deployment_without_nginx(raw: dict[str, Any]) -> None:
    serving = raw["serving"]
    del serving["N_replicas_nginx"]
    del serving["settings"]["other_processes_cpu_share"]["N_replicas_nginx"]
    serving["settings"]["nginx"] = None
    serving["fault_test"] = {"skipped": "nginx is not installed"}
    summary = Summary.from_dict(raw)
    assert summary.serving is not None and isinstance(summary.serving.fault_test, FaultTestSkipped)
    assert list(summary.serving.sweeps()) == ["1_replica"]
    assert summary.dump() == raw


# --------------------------------------------------------------------------- damaged summaries


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(raw: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return apply


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(raw: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return apply


DAMAGE = [
    # (damage, the message's field path and complaint, notebook named for the rerun)
    (
        _drop("models/student_baseline/per_seed/1/accuracy"),
        "models.student_baseline.per_seed[1].accuracy: missing",
        "03_student",
    ),
    (
        _set("distillation/gain_ci95", "x"),
        "distillation.gain_ci95: expected a list of 2 numbers [low, high], got 'x'",
        "04_distillation",
    ),
    (
        _set("distillation/bootstrap_gain_ci95_points", [1.0]),
        "distillation.bootstrap_gain_ci95_points: expected a list of 2 numbers",
        "04_distillation",
    ),
    (
        _set("distillation/gain_ci95", [3.0, 1.0]),
        "distillation.gain_ci95: expected [low, high] with low <= high",
        "04_distillation",
    ),
    (
        _set("serving/fault_test/retried", 3),
        "serving.fault_test.retried: unknown key",
        "05_deployment",
    ),
    (_set("surprise", {}), "surprise: unknown key", None),
    (
        _drop("serving/fault_test/before/rps"),
        "serving.fault_test.before.rps: missing",
        "05_deployment",
    ),
    (
        _set("models/teacher/accuracy", 84.6),
        "models.teacher.accuracy: expected less than or equal to 1 (a fraction, not points",
        "02_teacher",
    ),
    (
        _set("models/teacher_L4/params", "19M"),
        "models.teacher_L4.params: expected an integer, got '19M'",
        "02_teacher",
    ),
    (
        _set("models/student_distilled/per_seed/0/accuracy", "0.8"),
        "models.student_distilled.per_seed[0].accuracy: expected a number, got '0.8'",
        "04_distillation",
    ),
    (
        _set("models/tfidf_logreg/n_seeds", 1.0),
        "models.tfidf_logreg.n_seeds: expected an integer",
        "03_student",
    ),
    (_set("data/n_test", True), "data.n_test: expected an integer, got True", "01_data"),
    (_set("data/num_labels", 3), "data: num_labels is 3 but label_names has 2 names", "01_data"),
    (
        _set("models/teacher/precision", "fp16"),
        "models.teacher.precision: expected 'fp32' or 'bf16', got 'fp16'",
        "02_teacher",
    ),
    (
        _set("distillation/loss", "kd"),
        "distillation.loss: expected 'ce', 'mse' or 'kl'",
        "04_distillation",
    ),
    (
        _set("models/student_tiny", {}),
        "models: unknown model name(s) 'student_tiny'",
        None,
    ),
    (
        _set("inference/teacher/tensorrt", {}),
        "inference.teacher.tensorrt (the key): expected 'torch', 'onnx' or 'onnx-int8'",
        "05_deployment",
    ),
    (
        _set("inference/teacher/onnx/throughput_per_s_b32", 10.0),
        "inference.teacher.onnx: expected exactly one throughput key 'throughput_per_s_b64'",
        "05_deployment",
    ),
    (
        _set("serving/1_replica/teacher/four", {}),
        "serving.1_replica.teacher.four (the key)",
        "05_deployment",
    ),
    (
        _set("serving/fault_test", {"skipped": 3}),
        "serving.fault_test.skipped: expected a string",
        "05_deployment",
    ),
    (_drop("serving/http_overhead"), "serving.http_overhead: missing", "05_deployment"),
    (_drop("serving/peers"), "serving.peers: missing", "05_deployment"),
    (
        _set("serving/batching/on/4/users", 4),
        "serving.batching.on.4.users: unknown key",
        "05_deployment",
    ),
    (
        _drop("serving/batching/off/16"),
        "serving.batching: concurrency levels differ",
        "05_deployment",
    ),
    (
        _set("serving/http_overhead/noop/requests_total", 1200),
        "serving.http_overhead.noop.requests_total: unknown key",
        "05_deployment",
    ),
    (_drop("serving/http_overhead/floor"), "serving.http_overhead.floor: missing", "05_deployment"),
    (
        _drop("serving/settings/latency_client"),
        "serving.settings.latency_client: missing",
        "05_deployment",
    ),
    (
        _drop("serving/settings/other_processes_cpu_share/peers"),
        "serving.settings.other_processes_cpu_share.peers: missing",
        "05_deployment",
    ),
    (_drop("models/teacher_L2/precision"), "models.teacher_L2.precision: missing", "02_teacher"),
    (
        _drop("distillation/teacher_scoring/runtime"),
        "distillation.teacher_scoring.runtime: missing",
        "04_distillation",
    ),
    (
        _set(
            "distillation/teacher_scoring/runtime_calibration",
            {"onnx_file": "t.onnx", "export_seconds": 1.0, "torch_seconds": 1.0},
        ),
        "distillation.teacher_scoring.runtime_calibration: a timed calibration records every "
        "timing field; missing onnx_seconds",
        "04_distillation",
    ),
    (
        _set("models/student_distilled/teacher_agreement_per_seed", [0.8]),
        "models.student_distilled: teacher_agreement_per_seed has 1 values for 5 seeds",
        "04_distillation",
    ),
]


@pytest.mark.parametrize(("damage", "expected", "notebook"), DAMAGE)
def test_damaged_summary_names_the_field(
    raw: dict[str, Any],
    damage: Callable[[dict[str, Any]], None],
    expected: str,
    notebook: str | None,
) -> None:
    damage(raw)
    message = _error(raw)
    assert message.startswith("summary.json: ")
    assert expected in message, message
    assert "written by an older version?" in message
    if notebook:
        assert f"rerun notebooks/{notebook}.ipynb" in message
    assert "Traceback" not in message and "pydantic" not in message


def test_every_bad_field_is_listed_with_each_notebook(raw: dict[str, Any]) -> None:
    del raw["models"]["teacher"]["accuracy"]
    raw["distillation"]["p_value"] = "small"
    message = _error(raw)
    first, *lines = message.splitlines()
    assert first == (
        "summary.json: 2 fields do not match the summary contract — written by an older version? "
        "rerun notebooks/02_teacher.ipynb and notebooks/04_distillation.ipynb"
    )
    assert [line.strip() for line in lines] == [
        "models.teacher.accuracy: missing",
        "distillation.p_value: expected a number, got 'small'",
    ]


def test_model_validate_raises_summary_error(raw: dict[str, Any]) -> None:
    raw["student"]["batch_size"] = "64"
    with pytest.raises(SummaryError, match=r"student\.batch_size: expected an integer, got '64'"):
        Summary.model_validate(raw)
    assert issubclass(SummaryError, ValueError)
    with pytest.raises(SummaryError, match="expected an object"):
        validate_summary(["not", "a", "summary"])


def test_load_summary_names_the_file(tmp_path: Path, raw: dict[str, Any]) -> None:
    path = tmp_path / "summary.json"
    raw["data"]["split_seed"] = "13"
    write_json(path, raw)
    with pytest.raises(SummaryError, match=rf"^{path}: data\.split_seed: expected an integer"):
        load_summary(path)
    path.write_text('{"data": ')
    with pytest.raises(SummaryError, match="not valid JSON"):
        load_summary(path)
    with pytest.raises(FileNotFoundError):
        load_summary(tmp_path / "absent.json")


def test_floats_accept_json_integers(raw: dict[str, Any]) -> None:
    # A measured zero may be written as 0; it is still a number of seconds.
    raw["models"]["teacher"]["train_seconds"] = 410
    raw["distillation"]["alpha"] = 0
    summary = Summary.from_dict(raw)
    assert summary.distillation is not None and summary.distillation.alpha == 0.0


# --------------------------------------------------------------------------- helpers


def test_field_path_and_notebook_hint() -> None:
    loc = ("models", "student_baseline", "per_seed", 2, "accuracy")
    assert field_path(loc) == "models.student_baseline.per_seed[2].accuracy"
    assert (
        field_path(("serving", "fault_test", "FaultTest", "before")) == "serving.fault_test.before"
    )
    assert field_path(()) == "(top level)"
    assert notebook_for(loc) == "03_student"
    assert notebook_for(("models", "teacher_L12", "ece")) == "02_teacher"
    assert notebook_for(("models", "student_distilled")) == "04_distillation"
    assert notebook_for(("serving", "peers")) == "05_deployment"
    assert notebook_for(("models",)) is None and notebook_for(("surprise",)) is None


def test_every_section_names_its_notebook() -> None:
    from kdutils.study.summary import notebook_for, section_notebooks, split_sections

    SECTION_NOTEBOOKS = section_notebooks()
    assert split_sections() == {"models", "targets"}
    assert set(SECTION_NOTEBOOKS) | split_sections() == set(Summary.model_fields)
    assert notebook_for(("targets", "deployment", 0, "met")) == "05_deployment"
    assert notebook_for(("targets", "distillation")) == "04_distillation"
    notebooks = {p.stem for p in (REPO_ROOT / "notebooks").glob("0*.ipynb")}
    assert set(SECTION_NOTEBOOKS.values()) <= notebooks


def test_every_field_is_described() -> None:
    # The contract is the documentation: each key says what it holds and in which unit.
    import inspect

    from pydantic import BaseModel

    import kdutils.study.summary as module

    undescribed = [
        f"{name}.{field}"
        for name, cls in vars(module).items()
        if inspect.isclass(cls) and issubclass(cls, BaseModel) and cls.__module__ == module.__name__
        for field, info in cls.model_fields.items()
        if not info.description
    ]
    assert undescribed == []
    assert "DistillationSection" in Summary.model_json_schema()["$defs"]


def test_long_error_lists_are_cut_but_name_every_notebook(raw: dict[str, Any]) -> None:
    # A summary from a much older version fails everywhere: the list is capped, the hint is not.
    from kdutils.study.summary import MAX_LISTED_ERRORS

    for key in list(raw["data"])[:MAX_LISTED_ERRORS]:
        del raw["data"][key]
    raw["serving"]["micro_batching"]["users"] = "16"
    message = _error(raw)
    assert message.endswith("... and 1 more")
    assert "rerun notebooks/01_data.ipynb and notebooks/05_deployment.ipynb" in message
    assert "serving.micro_batching.users" not in message  # beyond the cap
