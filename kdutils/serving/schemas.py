"""The server's request and response schemas (they make the OpenAPI docs at ``/docs``).

:func:`request_model` builds the request schema with a server's limits; :func:`error_responses`
documents the error statuses of its routes.
"""

# No `from __future__ import annotations`: pydantic and FastAPI read these annotations at runtime.

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
    create_model,
)

EXAMPLE_TEXTS = ["a gripping , beautifully acted film .", "the plot is thin and the jokes fall flat ."]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text is empty after stripping whitespace")
    return text


def request_model(max_texts: int, max_chars: int) -> type[BaseModel]:
    """The request schema with this server's limits (they appear in the OpenAPI docs)."""
    text = Annotated[StrictStr, StringConstraints(max_length=max_chars), AfterValidator(_not_blank)]
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": EXAMPLE_TEXTS}]}),
        texts=(Annotated[list[text], Field(min_length=1, max_length=max_texts,
                                           description=f"1 to {max_texts} texts of at most {max_chars} "
                                                       "characters each, each with at least one token "
                                                       "(word, number or punctuation mark)")], ...),
    )


class Prediction(BaseModel):
    label: str = Field(description="predicted label name")
    label_id: int = Field(description="index of the predicted label")
    probabilities: dict[str, float] = Field(description="softmax probability of every label")


class PredictResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model": "student_distilled",
        "predictions": [{"label": "positive", "label_id": 1, "probabilities": {"negative": 0.08, "positive": 0.92}}],
        "latency_ms": 0.9, "model_ms": 0.7}]})
    model: str
    predictions: list[Prediction] = Field(description="one prediction per input text, in input order")
    latency_ms: float = Field(description="time spent in the server on tokenizing and the model call(s), "
                                          "waiting for a worker thread or a batch included")
    model_ms: float = Field(description="time of the model call that answered these texts (tokenizing and "
                                        "the forward pass), without any wait; when the server ran this "
                                        "request in one batch with others, the time of that whole batch")


class NoopResponse(BaseModel):
    model: str = "noop"
    n: int = Field(description="number of texts received (validated, not processed)")
    latency_ms: float


class ModelInfo(BaseModel):
    name: str = Field(description="served name: <model> (eager PyTorch) or <model>@onnx / @onnx-int8")
    model: str
    runtime: str
    kind: str
    params: int
    size_mb: float = Field(description="size on disk of the weight file, MiB")
    label_names: list[str]
    max_length: int


class Health(BaseModel):
    status: str = Field(description="ok, loading or error")
    models: list[str]
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str


def error_responses(body_timeout_s: float, max_body_bytes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the error statuses, with this server's limits in their words."""
    return {
        404: {"model": ErrorBody, "description": "unknown model"},
        408: {"model": ErrorBody, "description": f"body not received within {body_timeout_s:g} s"},
        413: {"description": f"request body over {max_body_bytes} bytes"},
        415: {"model": ErrorBody, "description": "body not sent as application/json"},
        500: {"model": ErrorBody, "description": "the model failed; no prediction is returned"},
        503: {"model": ErrorBody, "description": "models are still loading"},
    }
