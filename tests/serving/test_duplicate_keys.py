"""Issue 23 (minor): a JSON body that names a key twice is refused with 422 naming the key
(json.loads would keep the last one and answer for it alone), at any depth, on every POST route."""

from __future__ import annotations

import httpx
import pytest
from serving_fixtures import LiveServer

pytest_plugins = ("serving_fixtures",)

BODIES = {
    "top level": '{"texts": ["a fine film"], "texts": ["a dull film"]}',
    "nested": '{"texts": ["a fine film"], "x": {"k": 1, "k": 2}}',
}


@pytest.mark.parametrize("route", ["/predict/student_distilled", "/noop"])
@pytest.mark.parametrize("where", BODIES)
def test_a_duplicate_key_is_refused_naming_it(live_server: LiveServer, route: str, where: str) -> None:
    r = httpx.post(live_server.url + route, content=BODIES[where], headers={"Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["type"] == "json_invalid" and "duplicate key" in error["msg"]
    assert ("'texts'" if where == "top level" else "'k'") in error["msg"]


def test_distinct_keys_and_equal_values_still_work(live_server: LiveServer) -> None:
    r = httpx.post(live_server.url + "/predict/student_distilled",
                   content='{"texts": ["a fine film", "a fine film"]}', headers={"Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    # Unknown keys were refused before (422) and still are.
    r = httpx.post(live_server.url + "/noop", json={"texts": ["fine"], "other": 1}, timeout=30)
    assert r.status_code == 422
