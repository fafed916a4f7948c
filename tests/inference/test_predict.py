"""Batch prediction (kdutils.inference.batch, python -m kdutils.predict) on the serving fixture's real models.

Inputs are the fixture's real test sentences plus rows that must get no prediction. Small chunks
(16 rows) exercise chunking, sorting inside chunks and resuming without a large file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serving_fixtures import ServingRun

from kdutils.inference import batch as bp
from kdutils.inference import batch_engines, batch_io
from kdutils.inference.predictors import load_predictor
from kdutils.predict import main

pytest_plugins = ("serving_fixtures",)

ROOT = Path(__file__).resolve().parents[2]
MODEL = "student_distilled@onnx"
CHUNK = 16
# Rows that get no prediction, with the reason each must get. "\u200b" (zero-width space) is not
# whitespace to Python but leaves no token for the model's tokenizer.
BAD = [(None, "missing"), ("", "empty"), ("   \t", "whitespace only"), ("\u200b", "no tokens")]


def _frame(serving_run: ServingRun) -> pd.DataFrame:
    texts: list = list(serving_run.texts)
    for j, (value, _) in enumerate(BAD):
        texts.insert(7 + 23 * j, value)
    return pd.DataFrame({"key": [f"r{i}" for i in range(len(texts))], "sentence": texts})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, serving_run: ServingRun) -> dict:
    root = tmp_path_factory.mktemp("predict-in")
    df = _frame(serving_run)
    files = {"parquet": root / "in.parquet", "csv": root / "in.csv", "jsonl": root / "in.jsonl"}
    df.to_parquet(files["parquet"], index=False)
    # CSV has no null: the missing text is written as an empty cell, which reads as empty.
    df.to_csv(files["csv"], index=False)
    rows = df.to_dict("records")
    rows[3]["sentence"] = 42  # JSON lets a value be a number: not text
    with open(files["jsonl"], "w") as f:
        for r in rows:
            f.write(json.dumps({k: v for k, v in r.items() if k != "sentence" or isinstance(v, str | int)}) + "\n")
    return {"df": df, "files": files, "root": root}


def _predict(serving_run: ServingRun, inp, out, **kw) -> bp.PredictResult:
    kw.setdefault("chunk_rows", CHUNK)
    kw.setdefault("workers", 1)
    return bp.predict_file(serving_run.run.root, inp, out, model=kw.pop("model", MODEL),
                           text_column="sentence", quiet=True, **kw)


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"id": str})
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype={"id": str})
    return pq.read_table(path).to_pandas()


def _reasons(df: pd.DataFrame) -> list[str | None]:
    return [r if isinstance(r, str) else None for r in df["reason"]]


def test_parquet_predictions_order_and_bad_rows(serving_run: ServingRun, corpus: dict, tmp_path: Path) -> None:
    df = corpus["df"]
    res = _predict(serving_run, corpus["files"]["parquet"], tmp_path / "out.parquet", id_column="key")
    out = _read(tmp_path / "out.parquet")
    names = serving_run.label_names
    assert list(out.columns) == ["id", "label", *[f"prob_{n}" for n in names], "model", "reason"]
    assert list(out["id"]) == list(df["key"]), "input order kept"
    assert res.rows == len(df) and res.chunks == -(-len(df) // CHUNK)
    assert res.bad == {**dict.fromkeys(batch_io.REASONS, 0), **{r: 1 for _, r in BAD}}
    assert res.predicted == len(df) - len(BAD)
    bad = out[out["reason"].notna()]
    assert _reasons(bad) == [r for _, r in BAD]
    assert bad["label"].isna().all() and bad[f"prob_{names[0]}"].isna().all()
    good = out[out["reason"].isna()]
    assert (good["model"] == MODEL).all()
    # The same numbers as the predictor called directly on the good texts.
    logits = load_predictor(serving_run.run, MODEL, threads=1).predict_logits(serving_run.texts)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(good[[f"prob_{n}" for n in names]].to_numpy(), probs, atol=1e-6)
    assert list(good["label"]) == [names[i] for i in logits.argmax(1)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_jsonl_in_and_out(serving_run: ServingRun, corpus: dict, tmp_path: Path, fmt: str) -> None:
    ref = _predict(serving_run, corpus["files"]["parquet"], tmp_path / "ref.parquet", id_column="key")
    res = _predict(serving_run, corpus["files"][fmt], tmp_path / f"out.{fmt}", id_column="key")
    out, want = _read(tmp_path / f"out.{fmt}"), _read(tmp_path / "ref.parquet")
    assert list(out["id"].astype(str)) == list(want["id"])
    expected = _reasons(want)
    if fmt == "csv":
        expected[7] = "empty"  # a missing CSV cell is an empty one
    else:
        expected[3] = "not text"
    assert _reasons(out) == expected
    assert res.rows == ref.rows
    same = out["reason"].isna() & want["reason"].isna()
    assert (out.loc[same, "label"] == want.loc[same, "label"]).all()
    np.testing.assert_allclose(out.loc[same, "prob_positive"].astype(float), want.loc[same, "prob_positive"],
                               atol=1e-9)


def test_folder_and_glob_number_rows_across_files(serving_run: ServingRun, corpus: dict, tmp_path: Path) -> None:
    df = corpus["df"]
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    df.iloc[:50].to_parquet(folder / "a.parquet", index=False)
    df.iloc[50:].to_csv(folder / "sub" / "b.csv", index=False)
    (folder / "notes.txt").write_text("not an input")
    one = _predict(serving_run, corpus["files"]["parquet"], tmp_path / "one.parquet")
    _predict(serving_run, folder, tmp_path / "folder.parquet")
    _predict(serving_run, str(folder / "**" / "*.*"), tmp_path / "glob.parquet")
    want = _read(tmp_path / "one.parquet")
    for name in ("folder", "glob"):
        got = _read(tmp_path / f"{name}.parquet")
        assert list(got["id"]) == list(range(one.rows)), "row numbers run on across files"
        ok = got["reason"].isna() & want["reason"].isna()
        assert (got.loc[ok, "label"] == want.loc[ok, "label"]).all()


def test_worker_processes_and_threads_give_the_same_file(serving_run: ServingRun, corpus: dict,
                                                         tmp_path: Path) -> None:
    inp = corpus["files"]["parquet"]
    _predict(serving_run, inp, tmp_path / "w1.parquet")
    res = _predict(serving_run, inp, tmp_path / "w2.parquet", workers=2)
    _predict(serving_run, inp, tmp_path / "t2.parquet", workers=2, pool="thread")
    assert res.workers == 2
    one = (tmp_path / "w1.parquet").read_bytes()
    assert (tmp_path / "w2.parquet").read_bytes() == one
    assert (tmp_path / "t2.parquet").read_bytes() == one


def test_teacher_and_sort_off(serving_run: ServingRun, corpus: dict, tmp_path: Path) -> None:
    a = _predict(serving_run, corpus["files"]["parquet"], tmp_path / "a.parquet", model="teacher@onnx")
    b = _predict(serving_run, corpus["files"]["parquet"], tmp_path / "b.parquet", model="teacher@onnx",
                 sort=False, batch_size=7)
    assert a.predicted == b.predicted == len(serving_run.texts)
    x, y = _read(tmp_path / "a.parquet"), _read(tmp_path / "b.parquet")
    assert (x["model"].dropna() == "teacher@onnx").all()
    np.testing.assert_allclose(x["prob_positive"].fillna(-1), y["prob_positive"].fillna(-1), atol=1e-5)


# --------------------------------------------------------------------------- bad inputs


def _cli(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_inputs_get_one_line_and_exit_2(serving_run: ServingRun, corpus: dict, tmp_path: Path,
                                            capsys) -> None:
    run = str(serving_run.run.root)
    inp = str(corpus["files"]["parquet"])
    out = tmp_path / "o.parquet"
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    cases = [
        ((inp, str(out), "--text-column", "body"), ["no column 'body'", "available: key, sentence"]),
        ((str(corpus["files"]["csv"]), str(out), "--text-column", "sentence", "--id-column", "nope"),
         ["no column 'nope'", "--id-column", "key, sentence"]),
        ((str(corpus["files"]["jsonl"]), str(out), "--text-column", "body"), ["no column 'body'", "key, sentence"]),
        ((str(broken), str(out), "--text-column", "sentence"), ["cannot read", "broken.parquet"]),
        ((str(tmp_path / "absent.csv"), str(out)), ["no such file or folder"]),
        ((str(tmp_path / "*.csv"), str(out)), ["matches no CSV, Parquet or JSONL file"]),
        ((inp, str(tmp_path / "o.xlsx"), "--text-column", "sentence"), ["unknown extension '.xlsx'"]),
        ((inp, str(out), "--text-column", "sentence", "--model", "student_distilled@gpu"),
         ["no model 'student_distilled@gpu'", "available:", "student_distilled@onnx", "teacher@onnx"]),
        ((inp, str(out), "--resume", "--overwrite"), ["not allowed with argument"]),
        ((inp, str(out), "--address", "auto"), ["--address needs --engine ray"]),
        ((inp, str(out), "--workers", "0"), ["--workers must be at least 1"]),
    ]
    for argv, needles in cases:
        code, err = _cli(capsys, "--run", run, *argv)
        assert code == 2, (argv, err)
        assert len(err.splitlines()) == 1 and err.startswith("error:"), err
        for needle in needles:
            assert needle in err, (needle, err)
    assert not out.exists()

    # An existing output, and the parts of an unfinished job, each need --resume or --overwrite.
    out.write_bytes(b"old")
    code, err = _cli(capsys, "--run", run, inp, str(out), "--text-column", "sentence")
    assert code == 2 and "exists: pass --overwrite" in err and out.read_bytes() == b"old"
    out.unlink()
    batch_io.parts_dir(out).mkdir()
    code, err = _cli(capsys, "--run", run, inp, str(out), "--text-column", "sentence")
    assert code == 2 and "unfinished job: pass --resume" in err
    assert main(["--run", run, inp, str(out), "--text-column", "sentence", "--overwrite", "--no-progress"]) == 0
    assert "rows ->" in capsys.readouterr().out
    assert not batch_io.parts_dir(out).exists()


def test_an_input_failing_part_way_leaves_no_output(serving_run: ServingRun, corpus: dict, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    corpus["df"].to_parquet(folder / "a.parquet", index=False)
    (folder / "b.jsonl").write_text('{"sentence": "fine"}\nnot json\n')  # bad from its second line
    with pytest.raises(batch_io.PredictInputError, match="cannot read .*b.jsonl: line 2 is not JSON"):
        _predict(serving_run, folder, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    assert batch_io.parts_dir(tmp_path / "out.parquet").is_dir(), "finished chunks kept for --resume"


def test_ray_missing_says_how_to_install(serving_run: ServingRun, corpus: dict, tmp_path: Path,
                                         monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(batch_io.PredictInputError) as err:
        _predict(serving_run, corpus["files"]["parquet"], tmp_path / "o.parquet", engine="ray")
    assert str(err.value) == batch_engines.RAY_INSTALL_HINT and "pip install" in str(err.value)


# --------------------------------------------------------------------------- resume after a kill


def _big_input(serving_run: ServingRun, path: Path, repeat: int) -> None:
    texts = [t for _ in range(repeat) for t in serving_run.texts]
    pq.write_table(pa.table({"text": texts}), path)


def test_resume_after_kill_gives_the_same_file(serving_run: ServingRun, tmp_path: Path) -> None:
    inp, out = tmp_path / "big.parquet", tmp_path / "out.parquet"
    _big_input(serving_run, inp, repeat=100)  # 10,000 real sentences
    cmd = [sys.executable, "-m", "kdutils.predict", "--run", str(serving_run.run.root), str(inp), str(out),
           "--workers", "1", "--batch-size", "32", "--chunk-rows", "128", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = batch_io.parts_dir(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(batch_io.done_parts(parts)) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the job finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "no half-written file under the final name"
    killed_with = len(batch_io.done_parts(parts))
    assert 3 <= killed_with < 10_000 // 128

    again = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not parts.exists()
    fresh = bp.predict_file(serving_run.run.root, inp, tmp_path / "fresh.parquet", batch_size=32, workers=1,
                            chunk_rows=128, quiet=True)
    assert fresh.rows == 10_000
    assert out.read_bytes() == (tmp_path / "fresh.parquet").read_bytes()


# --------------------------------------------------------------------------- Ray


def test_ray_engine_gives_the_local_predictions(serving_run: ServingRun, corpus: dict, tmp_path: Path,
                                                ray_cluster: str) -> None:
    inp = corpus["files"]["parquet"]
    local = _predict(serving_run, inp, tmp_path / "local.parquet", id_column="key")
    res = _predict(serving_run, inp, tmp_path / "ray.parquet", id_column="key", engine="ray", workers=2)
    assert res.rows == local.rows and res.bad == local.bad
    a, b = _read(tmp_path / "local.parquet"), _read(tmp_path / "ray.parquet")
    pd.testing.assert_frame_equal(a.set_index("id"), b.set_index("id").loc[a["id"]])
    assert (tmp_path / "ray.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()

    # The command line, in its own process, joins the running cluster by its address.
    cli = subprocess.run([sys.executable, "-m", "kdutils.predict", "--run", str(serving_run.run.root), str(inp),
                          str(tmp_path / "cli.csv"), "--text-column", "sentence", "--id-column", "key",
                          "--engine", "ray", "--address", ray_cluster, "--workers", "2", "--chunk-rows",
                          str(CHUNK), "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    c = _read(tmp_path / "cli.csv")
    assert list(c["id"]) == list(a["id"]) and (c["label"].fillna("") == a["label"].fillna("")).all()
