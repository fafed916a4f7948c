"""Locust load for the model server: closed-loop users posting one real test sentence per request.

Run by :func:`kdutils.serving.loadtest.run_load` in its own process::

    locust -f kdutils/serving/locustfile.py --headless -u C -r C -t 10s --host http://127.0.0.1:8000 --csv PREFIX

Environment:

* ``KD_MODEL``: a served model name, or ``noop`` for the validation-only endpoint.
* ``KD_TEXTS``: a JSON file with a list of sentences (a user cycles through them
  from a random offset).
* ``KD_RUN_SECONDS``: stop this many seconds after the first request was sent.
* ``KD_STARTED``: a file given the Unix start time of the first request, once it answers.
* ``KD_RECORD``: where to write every request as a JSON line ``[start_unix_s,
  response_ms, ok]`` when the run ends. Locust's own percentiles are rounded
  (to whole milliseconds below 100 ms, tens above); the raw record gives exact
  percentiles and lets the fault test split the run at the moment of the kill.

Users send the next request as soon as the previous one answers (no wait), so
the number of users is the number of requests in flight. A response other than
200, or one whose prediction count is wrong, is a failure.
"""

from __future__ import annotations

import json
import os
import random
import time

import gevent
from locust import FastHttpUser, constant, events, task

MODEL = os.environ.get("KD_MODEL", "noop")
TEXTS: list[str] = json.loads(open(os.environ["KD_TEXTS"], encoding="utf-8").read()) if "KD_TEXTS" in os.environ else ["a fine film ."]
RECORD = os.environ.get("KD_RECORD")
STARTED = os.environ.get("KD_STARTED")
RUN_SECONDS = float(os.environ.get("KD_RUN_SECONDS", "0"))
PATH = "/noop" if MODEL == "noop" else f"/predict/{MODEL}"
_records: list[tuple[float, float, bool]] = []


def _stop_after_run_seconds(environment) -> None:  # noqa: ANN001
    # Locust's -t clock starts before the first user connects (a second or more on a busy
    # machine); the measured run is timed from the first request instead. -t stays a backstop.
    while not _records:
        gevent.sleep(0.01)
    gevent.sleep(max(0.0, _records[0][0] + RUN_SECONDS - time.time()))
    environment.runner.quit()


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, start_time=None, **kw):  # noqa: ANN001, ANN003
    if not _records and STARTED:
        with open(STARTED, "w", encoding="utf-8") as f:
            f.write(repr(start_time))
    _records.append((start_time or 0.0, response_time, exception is None))


@events.test_start.add_listener
def _start(environment, **kw):  # noqa: ANN001, ANN003
    if RUN_SECONDS:
        gevent.spawn(_stop_after_run_seconds, environment)


@events.quitting.add_listener
def _write(environment, **kw):  # noqa: ANN001, ANN003
    if RECORD:
        with open(RECORD, "w", encoding="utf-8") as f:
            for row in _records:
                f.write(json.dumps(row) + "\n")


class ModelUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.i = random.randrange(len(TEXTS))

    @task
    def predict(self) -> None:
        text = TEXTS[self.i % len(TEXTS)]
        self.i += 1
        with self.client.post(PATH, json={"texts": [text]}, name=MODEL, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
            elif MODEL != "noop" and len(resp.json().get("predictions", [])) != 1:
                resp.failure("wrong number of predictions")
            else:
                resp.success()
