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


def make_resolver() -> APIGatewayHttpResolver:
    """An HTTP API v2 resolver that validates bodies with Pydantic and maps errors in one place."""
    app = APIGatewayHttpResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[Any]:
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
