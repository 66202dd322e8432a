"""HTTP API helpers: a Powertools resolver whose validation errors are 400s naming the field."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from converge.observability import logger


class NotFoundError(Exception):
    """The addressed resource does not exist (404)."""


class ConflictError(Exception):
    """The request conflicts with the resource's state (409)."""


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def error_response(status: HTTPStatus, message: str, **extra: Any) -> Response[Any]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body={"message": message, **extra},
    )


def _not_an_object(app: APIGatewayHttpResolver) -> Response[Any] | None:
    """400 naming the body if it is JSON but not an object. Powertools' validation unwraps a list for a
    non-sequence parameter (it model-validates the first element), so `[order, 5]` would place `order`."""
    try:
        # The event's cached json_body: the body the validator already parsed (base64 decoded), not a second parse.
        parsed = app.current_event.json_body
    except ValueError:
        return None  # not JSON: the validator answers 400 naming the body
    if parsed is None or isinstance(parsed, dict):
        return None
    error = {"field": "body", "message": "Input should be a JSON object", "type": "dict_type"}
    logger.info("rejected request", extra={"errors": [error]})
    return error_response(HTTPStatus.BAD_REQUEST, "invalid request: body", errors=[error])


def _json_object_body(app: APIGatewayHttpResolver, next_middleware: Any) -> Response[Any]:
    # Runs after validation succeeded (on the list's first element): refuse the list itself.
    rejected = _not_an_object(app)
    return rejected if rejected is not None else next_middleware(app)  # type: ignore[no-any-return]


def make_resolver() -> APIGatewayHttpResolver:
    """An HTTP API v2 resolver that validates bodies with Pydantic and maps errors in one place."""
    app = APIGatewayHttpResolver(enable_validation=True)
    app.use(middlewares=[_json_object_body])

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[Any]:
        # Validation failed on a list's first element: the error is the list, not that element's fields.
        if (not_an_object := _not_an_object(app)) is not None:
            return not_an_object
        errors = [
            {
                # A JSON decode error's loc is ("body", <offset>): the field at fault is the body itself.
                "field": "body" if err.get("type") == "json_invalid" else _field(err.get("loc", ())),
                "message": str(err.get("msg", "invalid")),
                "type": err.get("type"),
            }
            for err in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors)
        logger.info("rejected request", extra={"errors": errors})
        return error_response(HTTPStatus.BAD_REQUEST, f"invalid request: {fields}", errors=errors)

    @app.exception_handler(NotFoundError)
    def _not_found(exc: NotFoundError) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, str(exc))

    @app.exception_handler(ConflictError)
    def _conflict(exc: ConflictError) -> Response[Any]:
        return error_response(HTTPStatus.CONFLICT, str(exc))

    return app
