"""What the service accepts and returns, derived from the row contract (data/contract.py).

A row holds every feature and nothing else. Numbers must be JSON numbers (`true` or `"42"` is
not a number) in the range dataset.py sets for them; categories strings: a value outside the
training vocabulary is accepted, encoded as unseen, and left for drift monitoring to notice.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from ..data.contract import CATEGORICAL, FEATURES, MAX_CATEGORY_LENGTH, NUMERIC
from ..data.ranges import clip, shorten

STRICT_ROWS = ConfigDict(extra="forbid", strict=True)


def _row_type() -> Any:
    fields: dict[str, Any] = {
        name: Annotated[
            float,
            Field(
                allow_inf_nan=False,
                ge=valid.lowest,
                le=valid.highest,
                multiple_of=1 if valid.integer else None,
                description=f"number; valid: {valid}",
                examples=[valid.example],  # what the deploy workflow's smoke test sends
            ),
        ]
        for name, valid in NUMERIC.items()
    }
    for name, vocabulary in CATEGORICAL.items():
        known = ", ".join(vocabulary)
        fields[name] = Annotated[
            str,
            Field(
                max_length=MAX_CATEGORY_LENGTH,
                description=f"category; seen in training: {known}",
                examples=[vocabulary[0]],
            ),
        ]
    row = TypedDict("Row", fields)  # type: ignore[misc]
    row.__pydantic_config__ = STRICT_ROWS  # type: ignore[attr-defined]
    return row


Row = _row_type()
ROW = TypeAdapter(Row)
ROWS = TypeAdapter(list[Row])  # type: ignore[valid-type]


class ModelInfo(TypedDict):
    name: str | None
    version: str | None
    alias: str | None


class Prediction(TypedDict):
    probability: float  # of the positive class
    label: int


class PredictResponse(TypedDict):
    predictions: list[Prediction]
    model: ModelInfo


class RowError(TypedDict):
    row: int | None  # the row's index in the request; None for the request as a whole
    field: str | None
    message: str


class RequestError(ValueError):
    """A request the service cannot score, with what is wrong where."""

    def __init__(self, status: int, errors: list[RowError]) -> None:
        super().__init__("; ".join(error["message"] for error in errors))
        self.status = status
        self.errors = errors


def parse_rows(body: bytes, max_rows: int) -> list[dict[str, Any]]:
    """The rows of a request body: one JSON object or a list of them (pydantic reads the bytes
    once, in Rust). Raises RequestError: 400 malformed JSON, 413 too many rows, 422 bad rows."""
    start = body.lstrip()[:1]
    adapter = ROWS if start == b"[" else ROW
    try:
        parsed = adapter.validate_json(body)
    except ValidationError as error:
        raise _request_error(error, batched=adapter is ROWS) from None
    rows = cast("list[dict[str, Any]]", parsed if adapter is ROWS else [parsed])
    if not rows:
        raise RequestError(422, [row_error(None, None, "the list of rows is empty")])
    if len(rows) > max_rows:
        message = f"{len(rows)} rows in one request; at most {max_rows} (MAX_BATCH_ROWS)"
        raise RequestError(413, [row_error(None, None, message)])
    return rows


def row_error(row: int | None, field: str | None, message: str) -> RowError:
    return {"row": row, "field": field, "message": message}


def _request_error(error: ValidationError, batched: bool) -> RequestError:
    found: list[RowError] = []
    for detail in error.errors(include_url=False):
        if detail["type"] == "json_invalid":
            return RequestError(400, [row_error(None, None, f"malformed JSON: {detail['msg']}")])
        loc = list(detail["loc"])
        row: int | None = None if batched or not loc else 0
        if batched and loc and isinstance(loc[0], int):
            row = int(loc.pop(0))
        field = clip(str(loc[0]), 64) if loc else None  # an unknown key may be any size
        found.append(row_error(row, field, _message(detail, field)))
    return RequestError(422, found)


def _message(detail: Any, field: str | None) -> str:
    kind = detail["type"]
    if kind == "missing":
        return f"missing feature {field!r}"
    if kind == "extra_forbidden":
        return f"unknown feature {field!r}; features: {', '.join(FEATURES)}"
    if kind in ("dict_type", "list_type", "model_type"):
        return "expected a row (a JSON object of features) or a list of rows"
    got = shorten(detail.get("input"))
    if field in NUMERIC and kind in RANGE_ERRORS:
        return f"{got} is outside the valid range of {field} ({NUMERIC[field]})"
    return f"{detail['msg']} (got {got})"


# pydantic's error types for a number outside its Field limits.
RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "multiple_of"})


def columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows -> one list per feature, what the preprocessor reads."""
    return {name: [row[name] for row in rows] for name in FEATURES}
