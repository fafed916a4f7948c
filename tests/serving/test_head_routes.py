"""Issue 23.6: HEAD on every GET route (RFC 9110), directly and through nginx: the status and
headers of the GET, no body. Routes that do not take GET still refuse HEAD, and say HEAD."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute
from serving_fixtures import LiveServer, ServingRun
from starlette.routing import Mount, Route

from kdutils.serving.app import create_app
from kdutils.serving.page import PAGE_ASSETS

pytest_plugins = ("serving_fixtures",)


# A value for each GET route that takes a parameter.
EXAMPLE_PATHS = {"/page/{asset}": f"/page/{sorted(PAGE_ASSETS)[0]}"}


def _flat(routes: list) -> list:
    """The routes with each included router's own routes in its place: FastAPI keeps an included
    router as one entry (``original_router``); the app's routers are included without a prefix."""
    out = []
    for route in routes:
        out += _flat(route.original_router.routes) if hasattr(route, "original_router") else [route]
    return out


def get_paths(serving_run: ServingRun) -> list[str]:
    """Every GET route of the app as built (one file of each static mount)."""
    app = create_app(serving_run.run.root, models=["all"])
    paths = []
    for route in _flat(app.routes):
        if isinstance(route, APIRoute | Route) and "GET" in (route.methods or ()):
            path = EXAMPLE_PATHS.get(route.path, route.path)
            assert "{" not in path, f"a GET route with a parameter needs a value here: {route.path}"
            paths.append(path)
        elif isinstance(route, Mount):
            files = sorted(p.name for p in route.app.directory.iterdir() if p.is_file())  # type: ignore[union-attr]
            paths.append(f"{route.path}/{files[0]}")
    return paths


def test_every_get_route_is_listed(serving_run: ServingRun) -> None:
    # The routes, so a route table that changed shape cannot make the next test vacuous.
    assert {"/", "/healthz", "/models", "/docs", "/openapi.json", "/ping"} <= set(get_paths(serving_run))


@pytest.mark.parametrize("where", ["server", "nginx"])
def test_head_answers_every_get_route_like_get_without_a_body(where: str, request: pytest.FixtureRequest,
                                                              live_server: LiveServer) -> None:
    url = live_server.url if where == "server" else request.getfixturevalue("nginx_front")
    with httpx.Client(base_url=url, timeout=30) as client:
        for path in get_paths(live_server.fixture):
            get, head = client.get(path), client.head(path)
            assert get.status_code == 200, (path, get.status_code)
            assert head.status_code == 200 and head.content == b"", (path, head.status_code, head.content[:100])
            assert head.headers["content-type"] == get.headers["content-type"], path
            if "content-length" in head.headers:
                assert int(head.headers["content-length"]) == len(get.content), path


def test_head_on_a_post_route_is_still_refused_by_name(live_server: LiveServer) -> None:
    r = httpx.head(live_server.url + "/predict/student_distilled")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    # An error to HEAD is sent without its body too.
    r = httpx.request("HEAD", live_server.url + "/no-such-route")
    assert r.status_code == 404 and r.content == b""


def test_the_request_log_records_head_as_head(live_server: LiveServer) -> None:
    httpx.head(live_server.url + "/ping?head-log-probe")
    log = live_server.proc.log_path.read_text()  # type: ignore[attr-defined]
    assert any(" HEAD /ping 200 " in line for line in log.splitlines()), log[-2000:]
