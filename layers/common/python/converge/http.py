"""HTTP API helpers: a Powertools resolver whose every refusal is a 4xx in one shape, naming the problem.

Every error body is the project's (`error_response`): `{"message": ..., "errors": [{"field", "message", "type"}]}`
for a request at fault, `{"message": ...}` (and what else the caller needs) for a domain error. That includes
what Powertools would answer in its own shapes (no route: 404, a body not sent as JSON: 415, a ServiceError).

A body is refused before it is parsed, at the limits below: too large (413), not valid base64 when the event
says it is, not UTF-8, nested deeper or holding a longer number than any valid request (400). Without them,
deep nesting (RecursionError), a 5,000-digit number (int's ValueError) or undecodable bytes were 500s.

Every route needs a caller (converge.authz): without the JWT authorizer's claims the answer is 401, before the
body is looked at. A route declares who may call it with Powertools' `security=` (converge.authz.ADMIN_ONLY for
the warehouse's routes), which is both its OpenAPI security requirement and the check: a customer on an admin
route is a 403, before the body is validated. Handlers take the customer from
`current_caller()`, and answer 404 for another customer's resource, so its existence is not revealed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from functools import cached_property
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder, Route
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as NoRouteError
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from converge.authz import Caller, allows, caller_of
from converge.entry import CORRELATION_HEADER
from converge.errors import ConflictError, ConvergeError, NotFoundError, UnexpectedEventError, UnprocessableError
from converge.observability import logger

# The largest valid body (POST /orders: 50 lines of 64-character ids) is about 5 KB, pretty-printed under 10 KB.
# 64 KiB leaves room for that and bounds what parsing and validation do per request, far below API Gateway's
# 10 MB and Lambda's 6 MB payload quotas (which are what an unbounded body is limited by otherwise).
MAX_BODY_BYTES = 64 * 1024
# Valid bodies nest 3 levels ({"lines": [{...}]}). 64 is .NET System.Text.Json's default MaxDepth, and far
# below the ~1,000 frames at which json's recursive decoder raises RecursionError (a 500 before this limit).
MAX_DEPTH = 64
# The longest valid number has 10 digits (quantities and stock are bounded by 1e9), a float's shortest repr is
# at most 24 characters. A longer number is refused before int() sees it: CPython refuses more than 4,300 digits
# with a ValueError (sys.get_int_max_str_digits, a 500 before this limit) and converts in quadratic time.
MAX_NUMBER_CHARS = 64
# The correlation header as a route parameter: bounded like the event envelope's correlation_id, so every write
# can be published.
CorrelationId = Annotated[str | None, Header(alias=CORRELATION_HEADER, min_length=1, max_length=128)]
HTTP_API_REQUEST = "an API Gateway HTTP API (payload format 2.0) request"
JSON = content_types.APPLICATION_JSON


class RequestRejected(Exception):
    """A request refused before routing reached the handler's code: answered as a 4xx naming the problem."""

    def __init__(self, status: HTTPStatus, field: str, type_: str, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field, self.type, self.message = status, field, type_, message
        self.summary = summary or f"invalid request: {field}: {message}"

    def response(self) -> Response[Any]:
        error = {"field": self.field, "message": self.message, "type": self.type}
        logger.info("rejected request", extra={"errors": [error]})
        return error_response(self.status, self.summary, errors=[error])


def _refused_caller(status: HTTPStatus, type_: str, message: str) -> RequestRejected:
    """401 (no verified caller) or 403 (a caller the route's security does not allow), naming the authorization."""
    return RequestRejected(status, "authorization", type_, message, summary=f"{type_}: authorization")


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def error_response(status: HTTPStatus, message: str, **extra: Any) -> Response[Any]:
    return Response(status_code=status.value, content_type=JSON, body={"message": message, **extra})


# ------------------------------------------------------------------------------------------ bounded body
def _bad_body(type_: str, message: str) -> RequestRejected:
    return RequestRejected(HTTPStatus.BAD_REQUEST, "body", type_, message)


def _too_large(size: str) -> RequestRejected:
    return RequestRejected(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body", "body_too_large", f"{size}, more than {MAX_BODY_BYTES} bytes"
    )


def _body_text(body: str, is_base64: bool) -> str:
    """The body as text, refused if larger than MAX_BODY_BYTES, not valid base64 (when it says so) or not UTF-8.

    Strict where Powertools is lenient: b64decode without validate=True drops what is not base64 (`!!!` reads as
    an empty body) and a failed decode raised binascii.Error or UnicodeDecodeError, answered as 500s."""
    if not is_base64:
        if len(body) > MAX_BODY_BYTES:  # a character is at least one byte: too large before encoding it
            raise _too_large(f"body of {len(body)} characters")
        try:
            size = len(body.encode("utf-8"))
        except UnicodeEncodeError as exc:  # a lone surrogate (a \ud800 escape the event's JSON decoded)
            raise _bad_body("invalid_utf8", f"body is not UTF-8: {exc.reason} at {exc.start}") from exc
        if size > MAX_BODY_BYTES:
            raise _too_large(f"body of {size} bytes")
        return body
    if len(body) > (MAX_BODY_BYTES + 2) // 3 * 4:  # the base64 length of MAX_BODY_BYTES
        raise _too_large(f"base64 body of {len(body)} characters")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: a non-ASCII character
        raise _bad_body("invalid_base64", f"body is not valid base64: {exc}") from exc
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large(f"body of {len(raw)} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad_body("invalid_utf8", f"body is not UTF-8: {exc.reason} at byte {exc.start}") from exc


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _check_depth(text: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH, counting brackets outside strings, before json parses it.

    json's decoder recurses per level, so it cannot be asked to stop; this scan is linear. An unterminated string
    is not stripped, so its brackets count: a bound can only be stricter than the parser, never looser."""
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            raise _bad_body("json_too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")


def _number(convert: type[int] | type[float]) -> Any:
    def parse(token: str) -> int | float:
        if len(token) > MAX_NUMBER_CHARS:
            raise _bad_body("number_too_long", f"a number of {len(token)} characters, more than {MAX_NUMBER_CHARS}")
        return convert(token)

    return parse


_INT, _FLOAT = _number(int), _number(float)


def bounded_json(text: str) -> Any:
    """Powertools' json_body_deserializer: json.loads within MAX_DEPTH and MAX_NUMBER_CHARS.

    Invalid JSON still raises json's JSONDecodeError, which Powertools' validation answers as `json_invalid`."""
    _check_depth(text)
    return json.loads(text, parse_int=_INT, parse_float=_FLOAT)


class HttpApiRequest(APIGatewayProxyEventV2):
    """Powertools' HTTP API event with a bounded, strictly decoded body and a case-insensitive media type."""

    @cached_property
    def decoded_body(self) -> str | None:
        body = self.body
        return _body_text(body, bool(self.is_base64_encoded)) if body else body

    @property
    def headers(self) -> dict[str, str]:
        # Media types are case-insensitive (RFC 9110 8.3.1); Powertools compares with "application/json" as is,
        # so `Application/JSON` was a 415. Parameters (charset, boundary) are kept as sent.
        headers = super().headers
        if (value := headers.get("content-type")) is not None:
            media_type, separator, parameters = value.partition(";")
            headers["content-type"] = media_type.strip().lower() + separator + parameters
        return headers


def _is_http_api_request(event: object) -> bool:
    if not isinstance(event, dict) or event.get("version") != "2.0":
        return False
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    return (
        isinstance(http, dict)
        and isinstance(http.get("method"), str)
        and isinstance(event.get("rawPath"), str)
        and isinstance(event.get("headers", {}), dict)
        and isinstance(event.get("body", ""), str | None)
    )


class HttpApiResolver(APIGatewayHttpResolver):
    """APIGatewayHttpResolver that refuses other events and reads bodies through HttpApiRequest.

    Another kind of event (an SQS batch, a REST v1 or ALB request, a list) raises UnexpectedEventError, and is
    not answered with a 400: no client sent it, a trigger or integration is miswired. A "handled" 400 would make
    an SQS mapping delete its messages and would hide the miswiring from Lambda's Errors metric; raising keeps
    the messages (retried, then dead-lettered) and API Gateway answers its own 5xx until the wiring is fixed."""

    def __init__(self) -> None:
        super().__init__(enable_validation=True, json_body_deserializer=bounded_json)

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        if not _is_http_api_request(event):
            raise UnexpectedEventError(HTTP_API_REQUEST, event)
        return super().resolve(event, context)

    def _to_proxy_event(self, event: dict[str, Any]) -> HttpApiRequest:
        # Powertools' one place where an event dict becomes its data class (with the json_body_deserializer).
        return HttpApiRequest(event, self._json_body_deserializer)

    def _resolve(self) -> ResponseBuilder:  # type: ignore[type-arg]
        # Who is calling comes first: an unauthenticated request learns nothing, not even that its body is bad.
        caller = caller_of(self.current_event.raw_event)
        if caller is None:
            refused = _refused_caller(HTTPStatus.UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
            return ResponseBuilder(refused.response(), serializer=self._serializer)
        self.append_context(caller=caller)  # type: ignore[no-untyped-call]
        return super()._resolve()

    def _call_route(self, route: Route, route_arguments: dict[str, str]) -> ResponseBuilder:  # type: ignore[type-arg]
        # The route's declared security, checked before its middlewares (Powertools validates the body first).
        if not allows(current_caller(self), route.security):
            needed = "this route needs the admin group or the converge/admin scope"
            refused = _refused_caller(HTTPStatus.FORBIDDEN, "forbidden", needed)
            return ResponseBuilder(refused.response(), serializer=self._serializer, route=route)
        return super()._call_route(route, route_arguments)


def current_caller(app: APIGatewayHttpResolver) -> Caller:
    """The request's verified caller (set by HttpApiResolver before any route runs)."""
    caller = app.context.get("caller")
    if not isinstance(caller, Caller):  # a resolver that is not an HttpApiResolver: refuse, never guess
        raise _refused_caller(HTTPStatus.UNAUTHORIZED, "unauthorized", "no verified caller")
    return caller


def correlation_id(app: APIGatewayHttpResolver, header: str | None) -> str:
    """The request's correlation id: its X-Correlation-Id header, else API Gateway's request id (as logged)."""
    return header or app.current_event.request_context.request_id


# ------------------------------------------------------------------------------------------ resolver
def _not_an_object(app: APIGatewayHttpResolver) -> Response[Any] | None:
    """400 naming the body if it is JSON but not an object. Powertools' validation unwraps a list for a
    non-sequence parameter (it model-validates the first element), so `[order, 5]` would place `order`."""
    try:
        # The event's cached json_body: the body the validator already parsed (base64 decoded), not a second parse.
        parsed = app.current_event.json_body
    except (ValueError, RequestRejected):
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


def _message(err: Mapping[str, Any]) -> str:
    # A JSON decode error's msg is only "JSON decode error": json's own reason is in its ctx.
    reason = (err.get("ctx") or {}).get("error") if err.get("type") == "json_invalid" else None
    message = str(err.get("msg", "invalid"))
    return f"{message}: {reason}" if reason else message


# The error families an API answers (each with its `http_status`). Any other error fails the invocation: API
# Gateway answers 500 and Lambda counts an error.
ANSWERED_ERRORS: tuple[type[ConvergeError], ...] = (NotFoundError, ConflictError, UnprocessableError)


def make_resolver() -> APIGatewayHttpResolver:
    """An HTTP API v2 resolver that validates bodies with Pydantic and maps errors in one place."""
    app = HttpApiResolver()
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
                "message": _message(err),
                "type": err.get("type"),
            }
            for err in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors)
        logger.info("rejected request", extra={"errors": errors})
        return error_response(HTTPStatus.BAD_REQUEST, f"invalid request: {fields}", errors=errors)

    @app.exception_handler(RequestRejected)
    def _rejected(exc: RequestRejected) -> Response[Any]:
        return exc.response()

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(exc: RequestUnsupportedContentType) -> Response[Any]:
        sent = app.current_event.headers.get("content-type", "")
        return RequestRejected(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "content-type",
            "unsupported_content_type",
            f"{sent[:100]!r} is not {JSON}",
        ).response()

    @app.not_found
    def _no_route(exc: NoRouteError) -> Response[Any]:
        # Powertools' own 404 is {"statusCode": 404, "message": "Not found"}; this one names the request.
        event = app.current_event
        message = f"no route for {event.http_method} {event.path[:200]}"
        error = {"field": "route", "message": message, "type": "no_route"}
        return error_response(HTTPStatus.NOT_FOUND, message, errors=[error])

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response[Any]:
        # Powertools' own HTTP errors (BadRequestError, ...) in the project's shape, not {"statusCode", "message"}.
        return error_response(HTTPStatus(exc.status_code), str(exc.msg))

    def _domain_error(exc: ConvergeError) -> Response[Any]:
        # Every service's errors, answered here and nowhere else (converge.errors).
        status = exc.http_status or HTTPStatus.INTERNAL_SERVER_ERROR
        return error_response(status, str(exc), **exc.http_body())

    for answered in ANSWERED_ERRORS:
        app.exception_handler(answered)(_domain_error)

    return app
