"""Start model-server replicas and an nginx load balancer as child processes, and always stop them.

    with Deployment(run.root, replicas=2, nginx=True, models=["student_distilled"]) as dep:
        ...  # dep.url is nginx; dep.replicas[i].url each replica; dep.kill_replica(0) for a fault

Every process is started in its own session (process group), registered in a
module-level table, and stopped by the context manager, by an ``atexit`` hook
if the interpreter exits first, and by killing the whole process group (nginx's
workers included). nginx runs in the foreground (``daemon off``) with a config,
pid file, logs and temp directories generated in a private temporary directory,
so it needs no root and touches nothing outside it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kdutils.serving.app import min_body_bytes
from kdutils.study.files import REPO_ROOT

# kdutils.serving.app (FastAPI and the predictors) is imported only for the body limit: the load
# clients and nginx helpers here need none of it.

NGINX_FALLBACK = "/usr/sbin/nginx"


class DeployError(RuntimeError):
    """A process did not start or did not become healthy; the message has its log tail."""


# --------------------------------------------------------------------------- processes

_LIVE: dict[int, ManagedProcess] = {}
_OPEN_DEPLOYMENTS: weakref.WeakSet[Deployment] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


@dataclass(eq=False)
class ManagedProcess:
    """A child process in its own process group, with its log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        # start_new_session=True makes the child a session and group leader: pgid == pid.
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def kill(self) -> None:
        """SIGKILL the process and its group now (the fault test's crash)."""
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, wait, then SIGKILL whatever is left of it."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children of the leader (nginx workers) may outlive it: kill the group regardless.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        with _LIVE_LOCK:
            _LIVE.pop(self.pid, None)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"


def spawn(name: str, cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None, url: str | None = None) -> ManagedProcess:
    """Start ``cmd`` in a new session with stdout and stderr into ``log_path``; register it for cleanup."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
    proc = ManagedProcess(name, popen, log_path, url)
    with _LIVE_LOCK:
        _LIVE[popen.pid] = proc
    return proc


def stop_all() -> None:
    """Stop every process this interpreter started through :func:`spawn` and has not stopped.

    Open deployments are closed first, so their temporary directories go too.
    """
    for dep in list(_OPEN_DEPLOYMENTS):
        dep.close()
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
    for proc in procs:
        proc.stop(timeout=5)


atexit.register(stop_all)


# --------------------------------------------------------------------------- ports and health


def free_ports(n: int, start: int | None = None, host: str = "127.0.0.1") -> list[int]:
    """``n`` loopback ports free right now: scanned upward from ``start``, or chosen by the OS."""
    ports: list[int] = []
    candidate = start
    while len(ports) < n:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, candidate or 0))
            except OSError:
                candidate = candidate + 1 if candidate else None
                continue
            port = s.getsockname()[1]
        if port not in ports:
            ports.append(port)
        candidate = port + 1 if start else None
        if candidate and candidate > 65535:
            raise DeployError(f"no free port above {start}")
    return ports


def wait_healthy(url: str, proc: ManagedProcess | None = None, timeout: float = 120.0,
                 path: str = "/healthz") -> dict[str, Any]:
    """Poll ``url + path`` until it answers 200; fail early, with the log, if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc is not None and not proc.alive():
                raise DeployError(f"{proc.name} exited with code {proc.popen.returncode} before it was healthy; "
                                  f"log {proc.log_path}:\n{proc.log_tail()}")
            try:
                r = client.get(url + path)
                if r.status_code == 200:
                    return r.json()
                last = f"{r.status_code} {r.text[:200]}"
                if r.status_code == 503 and '"status":"error"' in r.text.replace(" ", ""):
                    raise DeployError(f"{url} failed to load its models: {r.text[:500]}")
            except httpx.TransportError as err:
                last = type(err).__name__
            time.sleep(0.2)
    tail = f"; log {proc.log_path}:\n{proc.log_tail()}" if proc else ""
    raise DeployError(f"{url}{path} not healthy after {timeout:.0f}s (last: {last}){tail}")


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class ServerOptions:
    """Arguments of ``python -m kdutils.serving.app`` (see kdutils.serving.app.parse_args)."""

    models: tuple[str, ...] | None = None  # None: the server's default set; ("all",): every model
    threads: int = 1
    max_texts: int = 64
    max_chars: int = 5000
    max_body_bytes: int | None = None  # None: what max_texts x max_chars take as escaped JSON
    batching: bool = True
    inline_ms: float | None = None  # None: the server's default
    body_timeout_s: float | None = None
    cpus: tuple[int, ...] | None = None  # pin the server to these CPUs
    log_level: str = "info"

    @property
    def body_limit(self) -> int:
        """The body limit the server enforces (nginx in front gets the same)."""
        return self.max_body_bytes or min_body_bytes(self.max_texts, self.max_chars)

    def args(self) -> list[str]:
        out = ["--threads", str(self.threads), "--max-texts", str(self.max_texts),
               "--max-chars", str(self.max_chars), "--log-level", self.log_level]
        if self.max_body_bytes is not None:
            out += ["--max-body-bytes", str(self.max_body_bytes)]
        out += ["--batching" if self.batching else "--no-batching"]
        if self.inline_ms is not None:
            out += ["--inline-ms", str(self.inline_ms)]
        if self.body_timeout_s is not None:
            out += ["--body-timeout", str(self.body_timeout_s)]
        if self.cpus:
            out += ["--cpus", ",".join(map(str, self.cpus))]
        if self.models is not None:
            out += ["--models", ",".join(self.models)]
        return out


def start_server(run_dir: str | Path, port: int, log_path: Path, options: ServerOptions = ServerOptions(),
                 name: str = "replica") -> ManagedProcess:
    """Start one uvicorn replica on 127.0.0.1:``port`` (returns at once; see :func:`wait_healthy`)."""
    cmd = [sys.executable, "-m", "kdutils.serving.app", "--run", str(run_dir), "--host", "127.0.0.1",
           "--port", str(port), *options.args()]
    env = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    return spawn(name, cmd, log_path, env=env, cwd=REPO_ROOT, url=f"http://127.0.0.1:{port}")


# --------------------------------------------------------------------------- nginx


def nginx_binary() -> str | None:
    """Path of the nginx binary, or None when it is not installed.

    ``KDUTILS_NGINX`` overrides the lookup: a path, or empty to run without nginx.
    """
    if "KDUTILS_NGINX" in os.environ:
        chosen = os.environ["KDUTILS_NGINX"]
        return chosen if chosen and os.access(chosen, os.X_OK) else None
    found = shutil.which("nginx")
    if found:
        return found
    return NGINX_FALLBACK if os.access(NGINX_FALLBACK, os.X_OK) else None


def nginx_config(workdir: Path, listen_port: int, upstream_ports: Sequence[int], max_body_bytes: int,
                 tries: int | None = None, keepalive: int = 32) -> str:
    """An nginx config for a least-connections upstream of loopback replicas with retry on failure.

    ``proxy_next_upstream ... non_idempotent`` lets nginx retry a POST on another
    replica when the first one fails (refused connection, reset, 502/503): POST is
    non-idempotent and is otherwise never retried. ``keepalive`` reuses upstream
    connections, which needs HTTP/1.1 and an empty Connection header.
    """
    tries = tries or len(upstream_ports) + 1
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstream_ports)
    w = workdir
    return f"""# generated by kdutils.serving.deploy
daemon off;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
    log_format upstream '$msec|$request|$status|$request_time|$upstream_addr|$upstream_status';
    access_log {w}/access.log upstream;
    client_max_body_size {max_body_bytes};
    client_body_buffer_size {max_body_bytes};

    upstream kd_replicas {{
        least_conn;
{servers}
        keepalive {keepalive};
    }}

    server {{
        listen 127.0.0.1:{listen_port};
        location / {{
            proxy_pass http://kd_replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # $http_host is the Host the client sent, port included ($host drops it): a redirect the
            # app builds from it (a trailing slash's 307) must lead back to this nginx, not port 80.
            proxy_set_header Host $http_host;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries {tries};
            proxy_next_upstream_timeout 10s;
            proxy_connect_timeout 1s;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def start_nginx(workdir: Path, listen_port: int, upstream_ports: Sequence[int], max_body_bytes: int,
                binary: str | None = None) -> ManagedProcess:
    """Write the config into ``workdir``, check it with ``nginx -t`` and start nginx in the foreground."""
    binary = binary or nginx_binary()
    if binary is None:
        raise DeployError("nginx is not installed (apt-get install nginx-light)")
    # nginx's worker may run as an unprivileged user: it must be able to enter workdir.
    workdir.chmod(0o755)
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(workdir, listen_port, upstream_ports, max_body_bytes))
    base = [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")]
    check = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise DeployError(f"nginx rejected {conf}: {check.stderr.strip()}")
    return spawn("nginx", base, workdir / "nginx.out", url=f"http://127.0.0.1:{listen_port}")


# --------------------------------------------------------------------------- deployment


@dataclass(eq=False)  # identity equality: instances live in a WeakSet
class Deployment:
    """``replicas`` model servers on loopback, optionally behind nginx; a context manager.

    ``url`` is where clients go: nginx when it runs, else the first replica.
    Everything started is stopped on exit, also when the block raises.
    """

    run_dir: str | Path
    replicas: int = 1
    nginx: bool = False
    options: ServerOptions = field(default_factory=ServerOptions)
    base_port: int | None = None
    log_dir: Path | None = None
    startup_timeout: float = 180.0

    servers: list[ManagedProcess] = field(default_factory=list, init=False)
    balancer: ManagedProcess | None = field(default=None, init=False)
    workdir: Path | None = field(default=None, init=False)
    nginx_skipped: str | None = field(default=None, init=False)

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        _OPEN_DEPLOYMENTS.add(self)
        self.workdir = Path(tempfile.mkdtemp(prefix="kd-deploy-"))
        logs = Path(self.log_dir) if self.log_dir else self.workdir
        want_nginx = self.nginx and nginx_binary() is not None
        if self.nginx and not want_nginx:
            self.nginx_skipped = "nginx is not installed"
        ports = free_ports(self.replicas + (1 if want_nginx else 0), self.base_port)
        for i, port in enumerate(ports[: self.replicas]):
            self.servers.append(start_server(self.run_dir, port, logs / f"replica{i}_{port}.log", self.options,
                                             name=f"replica{i}"))
        # Replicas load in parallel; wait for each in turn.
        for proc in self.servers:
            wait_healthy(proc.url, proc, self.startup_timeout)
        if want_nginx:
            self.balancer = start_nginx(self.workdir, ports[-1], ports[: self.replicas],
                                        self.options.body_limit)
            wait_healthy(self.balancer.url, self.balancer, 30.0)

    @property
    def url(self) -> str:
        return self.balancer.url if self.balancer else self.servers[0].url

    @property
    def processes(self) -> list[ManagedProcess]:
        return [*self.servers, *([self.balancer] if self.balancer else [])]

    def pgids(self) -> list[int]:
        return [p.pgid for p in self.processes]

    def kill_replica(self, index: int) -> None:
        """SIGKILL one replica (no graceful shutdown): the fault test."""
        self.servers[index].kill()

    def nginx_access_log(self) -> list[dict[str, Any]]:
        """nginx's log so far: one dict per request, ``upstreams`` lists every replica tried."""
        path = self.workdir / "access.log" if self.workdir else None
        if not path or not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            parts = line.split("|")
            if len(parts) != 6:
                continue
            msec, request, status, seconds, addrs, statuses = parts
            rows.append({"time": float(msec), "request": request, "status": int(status),
                         "seconds": float(seconds), "upstreams": [a.strip() for a in addrs.split(",")],
                         "upstream_statuses": [s.strip() for s in statuses.split(",")]})
        return rows

    def close(self) -> None:
        # nginx first, so no request is routed to a replica being stopped.
        for proc in reversed(self.processes):
            proc.stop()
        if self.workdir is not None:
            if self.log_dir is not None:
                for name in ("nginx.conf", "access.log", "error.log"):
                    if (self.workdir / name).exists():
                        shutil.copy(self.workdir / name, Path(self.log_dir) / f"nginx_{name}")
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        _OPEN_DEPLOYMENTS.discard(self)


def nginx_version(binary: str | None = None) -> str | None:
    """``nginx/1.22.1``-style version string of the nginx binary, or None without nginx."""
    binary = binary or nginx_binary()
    if binary is None:
        return None
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ") or None
