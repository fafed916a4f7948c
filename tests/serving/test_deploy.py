"""Replicas behind nginx: health, routing, retry when a replica is killed, and guaranteed cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import httpx
import numpy as np
import pytest
from serving_fixtures import ServingRun

from kdutils.inference.predictors import load_predictor
from kdutils.serving import loadtest
from kdutils.serving.deploy import (
    Deployment,
    ServerOptions,
    nginx_binary,
    nginx_config,
)


def group_alive(pgid: int) -> bool:
    """True while any process of the group ``pgid`` exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

# Session fixtures (serving_run, live_server) shared by the serving tests.
pytest_plugins = ("serving_fixtures",)

MODEL = "student_distilled@onnx"


def test_nginx_config_has_retry_and_keepalive(tmp_path) -> None:
    conf = nginx_config(tmp_path, 8080, [9001, 9002], max_body_bytes=5000)
    for directive in ("daemon off;", f"pid {tmp_path}/nginx.pid;", "error_log", "least_conn;", "keepalive 32;",
                      "proxy_http_version 1.1;", 'proxy_set_header Connection "";',
                      "proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
                      "proxy_next_upstream_tries 3;", "server 127.0.0.1:9001", "server 127.0.0.1:9002",
                      "listen 127.0.0.1:8080;", "client_max_body_size 5000;"):
        assert directive in conf, directive
    if nginx_binary():
        (tmp_path / "nginx.conf").write_text(conf)
        check = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                                "-e", str(tmp_path / "error.log")], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr


@pytest.mark.nginx
@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
def test_two_replicas_behind_nginx_survive_a_killed_replica(serving_run: ServingRun, tmp_path) -> None:
    texts_path = loadtest.write_texts(tmp_path / "texts.json", serving_run.texts)
    options = ServerOptions(models=(MODEL,), threads=1, batching=True)
    pgids: list[int] = []
    with pytest.raises(RuntimeError, match="cell failed"):
        with Deployment(serving_run.run.root, replicas=2, nginx=True, options=options, log_dir=tmp_path) as dep:
            pgids = dep.pgids()
            assert len(pgids) == 3 and all(group_alive(p) for p in pgids)
            assert httpx.get(dep.url + "/healthz").json()["models"] == [MODEL]
            # Through nginx, with micro-batching on, answers equal the in-process model's.
            expected = load_predictor(serving_run.run, MODEL, threads=1).predict_logits(serving_run.texts[:8])
            got = [httpx.post(dep.url + f"/predict/{MODEL}", json={"texts": [t]}).json()["predictions"][0]["label_id"]
                   for t in serving_run.texts[:8]]
            assert got == expected.argmax(axis=1).tolist()
            fault = loadtest.fault_test(dep, MODEL, texts_path, users=4, duration_s=3, warmup_s=1, out_dir=tmp_path)
            assert not dep.servers[0].alive() and dep.servers[1].alive()
            assert fault["failed"] == 0, fault
            assert fault["before"]["requests"] > 0 and fault["after"]["requests"] > 0
            # Both replicas served before the kill: least_conn spread the load.
            log = [row for row in dep.nginx_access_log() if "/predict/" in row["request"]]
            assert {row["upstreams"][0] for row in log} == {s.url.removeprefix("http://") for s in dep.servers}
            assert all(row["status"] == 200 for row in log)
            # Requests in flight on the killed replica were answered by the other one.
            assert fault["retried_by_nginx"] == sum(len(row["upstreams"]) > 1 for row in log)
            # A failing notebook cell inside the block: everything must still be stopped.
            raise RuntimeError("cell failed")
    assert pgids and not any(group_alive(p) for p in pgids)
    assert (tmp_path / "nginx_access.log").exists()


def test_without_nginx_and_left_running_atexit_cleans_up(serving_run: ServingRun) -> None:
    # A process (a notebook kernel, say) on a machine without nginx starts a deployment and
    # exits without closing it: the replica serves directly, and atexit stops it.
    code = textwrap.dedent(f"""
        import httpx
        from kdutils.serving.deploy import Deployment, ServerOptions, nginx_binary
        assert nginx_binary() is None
        dep = Deployment({str(serving_run.run.root)!r}, replicas=1, nginx=True,
                         options=ServerOptions(models=({MODEL!r},))).__enter__()
        assert dep.nginx_skipped == "nginx is not installed" and dep.balancer is None
        assert dep.url == dep.servers[0].url and httpx.get(dep.url + "/healthz").status_code == 200
        print(dep.pgids()[0], flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                         env={**os.environ, "KDUTILS_NGINX": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    pgid = int(out.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(pgid)


def test_free_ports_scan_from_base() -> None:
    from kdutils.serving.deploy import free_ports

    ports = free_ports(3, start=20000)
    assert len(set(ports)) == 3 and all(p >= 20000 for p in ports) and ports == sorted(ports)
    assert np.all(np.diff(ports) >= 1)


def test_deploy_profile_section_is_validated() -> None:
    from kdutils.study.config import load_profile
    from kdutils.study.specs import ConfigError

    with pytest.raises(ConfigError, match="deploy.load_models"):
        load_profile("smoke", {"deploy": {"load_models": ["bert-base"]}})
    with pytest.raises(ConfigError, match="deploy.concurrency"):
        load_profile("smoke", {"deploy": {"concurrency": [4, 0]}})
    with pytest.raises(ConfigError, match="deploy.replicas"):
        load_profile("smoke", {"deploy": {"replicas": 0}})
    cfg = load_profile("smoke", {"deploy": {"load_models": ["student_distilled@onnx-int8"], "concurrency": [8, 1]}})
    assert cfg.deploy.concurrency == (1, 8) and cfg.deploy.load_models == ("student_distilled@onnx-int8",)
