"""Shared fixtures: a small real slice of rotten_tomatoes and a throwaway run directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from cpu_classes import inject_cpu
from smoke_study import BackgroundStudy

from kdutils.data.corpora import Splits, load_dataset, make_splits
from kdutils.data.text import Vocab
from kdutils.machine import CPU_CLASSES
from kdutils.student.train import build_vocab, torch_threads
from kdutils.study.config import DataConfig
from kdutils.study.runs import RunDir

# Small enough for a test on 2 shared cores, large enough for stratification and a few batches.
RT_SLICE = DataConfig(dataset="rotten_tomatoes", max_train=400, max_val=100, max_test=100)


@pytest.fixture(scope="session")
def rt_splits() -> Splits:
    """Stratified, seeded slice of the real rotten_tomatoes data: 400 train / 100 val / 100 test.

    Session-scoped and shared: treat the DataFrames as read-only (``.copy()`` before mutating).
    """
    df, label_names = load_dataset(RT_SLICE)
    return make_splits(df, RT_SLICE, label_names)


@pytest.fixture
def tmp_run(tmp_path: Path) -> RunDir:
    """An empty run directory (``RunDir``) under pytest's ``tmp_path``."""
    return RunDir(tmp_path / "run")


@pytest.fixture(scope="session")
def vocab(rt_splits: Splits) -> Vocab:
    """The student vocabulary of the training slice (every word of it fits under 5,000)."""
    return build_vocab(rt_splits.train["text"], max_size=5000)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small LSTMs on a shared 2-core machine: one thread avoids OpenMP spin contention."""
    with torch_threads(1):
        yield


@pytest.fixture(autouse=True, scope="session")
def avx2_unless_injected():
    """Tests see an AVX2-only CPU (fp32 everywhere) unless they inject another class.

    A test's numbers then do not depend on the machine that runs it, and emulated bf16 (several
    times slower than fp32 on AVX2) runs only where a test asks for it, on the tiny teacher. The
    end-to-end smoke study lifts this to run in the real machine's mode, as a user's would.
    """
    with pytest.MonkeyPatch.context() as mp:
        inject_cpu(mp, "avx2")
        yield


@pytest.fixture(params=sorted(CPU_CLASSES))
def cpu_class(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each CPU class in turn, injected (see :func:`inject_cpu`)."""
    inject_cpu(monkeypatch, request.param)
    return request.param


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU local Ray cluster on loopback for the whole session; its address (host:port).

    A token in the environment (inherited by the CLI subprocess) rather than Ray's token file in
    the user's home.
    """
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _node_ip_address="127.0.0.1")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


# The end-to-end smoke study starts when collection ends, if a test of tests/test_study.py is
# selected, and runs beside the rest of the suite (see tests/smoke_study.py).
SMOKE_STUDY = pytest.StashKey[BackgroundStudy]()
SMOKE_STUDY_TESTS = "test_study.py"


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any(i.path.name == SMOKE_STUDY_TESTS for i in session.items):
        return
    # pytest's own temporary-folder factory (what the tmp_path_factory fixture returns), so the
    # study lands under --basetemp like every other test's files.
    output_root = session.config._tmp_path_factory.mktemp("study")
    session.config.stash[SMOKE_STUDY] = BackgroundStudy.start(output_root)


def pytest_sessionfinish(session: pytest.Session) -> None:
    study = session.config.stash.get(SMOKE_STUDY, None)
    if study is not None:
        study.stop()


@pytest.fixture(scope="session")
def smoke_study(request: pytest.FixtureRequest) -> BackgroundStudy:
    """The background smoke study, finished: fails the test if it exited with an error."""
    study = request.config.stash.get(SMOKE_STUDY, None)
    assert study is not None, f"the smoke study starts only when a test of {SMOKE_STUDY_TESTS} is collected"
    code = study.wait()
    assert code == 0, f"the smoke study failed (exit {code}); the end of its log {study.log}:\n{study.log_tail()}"
    return study
