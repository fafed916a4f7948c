"""Issue 23.7: through nginx, a redirect the app builds (a trailing slash's 307) leads back to
nginx's own host and port: nginx passes on the Host the client sent, port included."""

from __future__ import annotations

import httpx
import pytest
from serving_fixtures import LiveServer

from kdutils.serving.deploy import nginx_config

pytest_plugins = ("serving_fixtures",)

MODEL = "student_distilled@onnx"


def test_the_config_passes_on_the_clients_host_with_its_port(tmp_path) -> None:
    conf = nginx_config(tmp_path, 8080, [9001], max_body_bytes=5000)
    assert "proxy_set_header Host $http_host;" in conf and "$host;" not in conf


@pytest.mark.parametrize("method, path", [("POST", f"/predict/{MODEL}/"), ("GET", "/healthz/"),
                                          ("GET", "/models/"), ("POST", "/noop/")])
def test_a_trailing_slash_redirect_keeps_nginxs_port(nginx_front: str, live_server: LiveServer,
                                                     method: str, path: str) -> None:
    body = {"texts": [live_server.fixture.texts[0]]} if method == "POST" else None
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        r = client.request(method, nginx_front + path, json=body)
        assert r.status_code == 307, (r.status_code, r.text[:200])
        assert r.headers["location"] == nginx_front + path.rstrip("/")
        # Followed, the redirect reaches the route through nginx (307 keeps the method and body).
        followed = client.request(method, r.headers["location"], json=body)
        assert followed.status_code == 200, followed.text[:200]


def test_a_host_name_and_port_the_client_sent_come_back_as_sent(nginx_front: str) -> None:
    # A client that reached nginx under another name (a DNS name, a forwarded port) is sent back there.
    r = httpx.get(nginx_front + "/healthz/", headers={"Host": "models.example.test:8443"}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "http://models.example.test:8443/healthz"
