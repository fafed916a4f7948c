"""Two reference servers for one model, to measure our server against: the floor and the peer.

    python -m kdutils.serving.peers {floor,naive} --run outputs/<profile>
        --model student_distilled@onnx [--port 8001] [--threads 1] [--cpus 0]

* ``floor``: a bare ASGI app on the same uvicorn stack as ``kdutils.serving.app`` (httptools,
  uvloop), the model called inline on the event loop, no validation, no framework: the
  least a Python server can spend on one ``POST /predict/<model>``.
* ``naive``: the FastAPI app a user would write in twenty lines: a pydantic request model,
  a sync handler that calls the model (FastAPI runs it on its thread pool), response
  objects; uvicorn with its defaults.

Both answer ``POST /predict/<model>`` with ``{"texts": [...]}`` and ``GET /healthz``, with
the same predictions as ``kdutils.serving.app`` (the same predictor class), so a client can send
the three identical requests. Neither is meant for users: they lack the limits, error
bodies and hostile-input handling of ``kdutils.serving.app``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from kdutils.inference.predictors import Predictor, load_predictor
from kdutils.metrics import softmax
from kdutils.serving.app import pin_cpus

PEERS = ("floor", "naive")


def floor_app(predictor: Predictor, model: str) -> Any:
    """A bare ASGI app: ``POST /predict/<model>`` -> predictions; ``GET /healthz`` -> 200. 400 otherwise."""
    names = predictor.label_names
    predict_path = f"/predict/{model}"

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, out = 200, b'{"status":"ok"}'
        if scope["path"] == predict_path and scope["method"] == "POST":
            try:
                probs = softmax(predictor.predict_logits(json.loads(body)["texts"])).tolist()
                preds = [{"label": names[max(range(len(p)), key=p.__getitem__)],
                          "probabilities": dict(zip(names, p, strict=True))} for p in probs]
                out = json.dumps({"model": model, "predictions": preds}).encode()
            except Exception as err:  # noqa: BLE001 - a measuring tool: say what failed
                status, out = 400, json.dumps({"detail": f"{type(err).__name__}: {err}"}).encode()
        elif scope["path"] != "/healthz":
            status, out = 404, b'{"detail":"Not Found"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


class NaiveRequest(BaseModel):
    texts: list[str]


class NaivePrediction(BaseModel):
    label: str
    probabilities: dict[str, float]


class NaiveResponse(BaseModel):
    model: str
    predictions: list[NaivePrediction]


def naive_app(predictor: Predictor, model: str) -> Any:
    """The FastAPI app a user would write: pydantic in and out, the model in a sync handler."""
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # The schemas live at module level: FastAPI resolves these (string) annotations there.
    @app.post(f"/predict/{model}")
    def predict(request: NaiveRequest) -> NaiveResponse:
        probs = softmax(predictor.predict_logits(request.texts))
        names = predictor.label_names
        return NaiveResponse(model=model, predictions=[
            NaivePrediction(label=names[int(p.argmax())],
                            probabilities={n: float(v) for n, v in zip(names, p, strict=True)})
            for p in probs])

    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m kdutils.serving.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("peer", choices=PEERS)
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--model", required=True, help="a served name, e.g. student_distilled@onnx")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpus", default=None, help="pin to these CPU numbers, e.g. 0")
    args = p.parse_args(argv)
    pin_cpus({int(c) for c in args.cpus.split(",")} if args.cpus else None)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch  # after the thread variables: its pools read them once

    torch.set_num_threads(args.threads)
    # Loaded before the port opens: a peer that answers /healthz is ready.
    predictor = load_predictor(args.run, args.model, threads=args.threads)
    if args.peer == "floor":
        uvicorn.run(floor_app(predictor, args.model), host="127.0.0.1", port=args.port, log_level="warning",
                    access_log=False, http="httptools", loop="uvloop")
    else:
        # uvicorn's defaults, as a user would start it (with httptools and uvloop installed,
        # as they are here, "auto" picks them).
        uvicorn.run(naive_app(predictor, args.model), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
