"""The HTTP API: routes from the template's HttpApi events, API Gateway payload format 2.0, a local server.

Routing follows API Gateway HTTP APIs: an exact route wins over a route with path variables, `{name+}` is a greedy
variable, `ANY` matches every method, `$default` catches what no route matches; no match (whatever the method,
as API Gateway, which has no 405) is a 404. A function error is 500 `Internal Server Error`. Every error body has
the project's shape (converge.http.error_response): `{"message": ...}`, and for a request at fault `errors` naming
it (`field`, `message`, `type`), the server's own refusals too (a bad request line, a body over API Gateway's
10 MB quota: 413, an invalid content-length). A response without `statusCode` is a 200 whose body is the JSON of
what the function returned (payload format 2.0's inference rule).

The server (not `LocalCloud.http`) also answers GET `/docs`: Swagger UI for docs/openapi.json, with the swagger-ui
assets Powertools ships (no CDN), at `/docs/swagger-ui-bundle.min.js`, `/docs/swagger-ui.min.css` and the
document at `/docs/openapi.json` (and `/docs?format=json`, where the page looks for it).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from localcloud.ports import ApiHost, Response

ACCOUNT = "123456789012"
# API Gateway HTTP APIs' payload quota: a larger request is refused with a 413 before any function sees it.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
JSON_TYPE = {"content-type": "application/json"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # logical id

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def _pattern(self) -> re.Pattern[str]:
        parts = []
        for segment in self.path.strip("/").split("/"):
            greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
            variable = re.fullmatch(r"\{(\w+)\}", segment)
            if greedy:
                parts.append(f"(?P<{greedy.group(1)}>.+)")
            elif variable:
                parts.append(f"(?P<{variable.group(1)}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        return re.compile("^/" + "/".join(parts) + "$")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.path == "$default":
            return {}
        if self.method not in ("ANY", method.upper()):
            return None
        found = self._pattern().match(path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}

    @property
    def specificity(self) -> tuple[int, int, int]:
        # exact routes first, then more literal segments, greedy last, $default never before a real route
        variables = self.path.count("{")
        return (self.path == "$default", "+}" in self.path, variables - len(self.path.split("/")))


def routes_from_template(template: dict[str, Any]) -> list[Route]:
    """Every HttpApi event of every AWS::Serverless::Function of the (SAM) template."""
    routes = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties", {})
            method = str(props.get("Method", "ANY")).upper()
            path = str(props.get("Path", "$default"))
            routes.append(Route("ANY" if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method, path, logical_id))
    return sorted(routes, key=lambda r: r.specificity)


def find_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
        params = route.match(method, path)
        if params is not None:
            return route, params
    return None


def v2_event(
    route: Route,
    params: dict[str, str],
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes | None,
    api_id: str,
) -> dict[str, Any]:
    """An API Gateway HTTP API request, payload format 2.0."""
    now = datetime.now(UTC)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    cookies = [c.strip() for c in lowered.pop("cookie", "").split(";") if c.strip()]
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": lowered.get("host", "localhost").split(".")[0].split(":")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", "localcloud"),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def error(status: int, message: str, field: str | None = None, type_: str | None = None) -> HttpResponse:
    """An error in the project's shape: `message`, and `errors` naming what of the request is at fault."""
    body: dict[str, Any] = {"message": message}
    if field is not None:
        body["errors"] = [{"field": field, "message": message, "type": type_}]
    return HttpResponse(status, dict(JSON_TYPE), json.dumps(body).encode())


def to_http_response(response: Any, error_: bool) -> HttpResponse:
    """A function's payload format 2.0 response -> the HTTP response API Gateway sends."""
    if error_:
        return error(500, "Internal Server Error")
    if not isinstance(response, dict) or "statusCode" not in response:
        return HttpResponse(200, dict(JSON_TYPE), json.dumps(response).encode())
    headers = {str(k).lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[str(name).lower()] = ",".join(str(v) for v in values)
    if response.get("cookies"):
        headers["set-cookie"] = "; ".join(response["cookies"])
    raw = response.get("body")
    if raw is None:
        body = b""
    elif response.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = str(raw).encode()
    return HttpResponse(int(response["statusCode"]), headers, body)


def not_found(method: str = "", path: str = "") -> HttpResponse:
    """No route: API Gateway's 404 (`Not Found`), naming the request when it is known."""
    request = f"{method.upper()} {path[:200]}".strip()
    return error(404, f"Not Found: no route for {request}" if request else "Not Found", "route", "no_route")


OPENAPI_DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def docs_response(method: str, path: str, raw_query: str = "") -> HttpResponse | None:
    """Swagger UI at /docs for docs/openapi.json, from local assets; None for any other request."""
    if method.upper() != "GET" or not (path == "/docs" or path.startswith("/docs/")):
        return None
    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

    assets = Path(swagger_ui.__file__).parent
    files = {
        "/docs/swagger-ui-bundle.min.js": (assets / "swagger-ui-bundle.min.js", "text/javascript; charset=utf-8"),
        "/docs/swagger-ui.min.css": (assets / "swagger-ui.min.css", "text/css; charset=utf-8"),
        "/docs/openapi.json": (OPENAPI_DOCUMENT, "application/json"),
    }
    if path in ("/docs", "/docs/") and "format=json" in raw_query:
        path = "/docs/openapi.json"
    if path in files:
        file, content_type = files[path]
        return HttpResponse(200, {"content-type": content_type}, file.read_bytes())
    if path in ("/docs", "/docs/"):
        html = generate_swagger_html(
            spec=OPENAPI_DOCUMENT.read_text(),
            swagger_js="/docs/swagger-ui-bundle.min.js",
            swagger_css="/docs/swagger-ui.min.css",
            swagger_base_url="/docs",  # non-empty: link the assets instead of inlining them
            oauth2_config=None,
        )
        return HttpResponse(200, {"content-type": "text/html; charset=utf-8"}, html.encode())
    return not_found(method, path)


class _Handler(BaseHTTPRequestHandler):
    cloud: ApiHost
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        url = urlsplit(self.path)
        declared = self.headers.get("content-length") or "0"
        if not declared.isdigit():  # int() would raise on "x" and read to EOF (hang) on "-1"
            self.close_connection = True  # the body's end is unknown: it cannot be skipped
            self._send(error(400, f"invalid content-length {declared[:40]!r}", "content-length", "invalid"))
            return
        length = int(declared)
        if length > MAX_PAYLOAD_BYTES:
            self.close_connection = True  # not read: the connection cannot carry another request
            message = f"Request Entity Too Large: {length} bytes, more than {MAX_PAYLOAD_BYTES}"
            self._send(error(413, message, "body", "body_too_large"))
            return
        body = self.rfile.read(length) if length else None
        response = docs_response(self.command, url.path, url.query) or self.cloud.http(
            self.command, url.path, raw_query=url.query, headers=dict(self.headers.items()), body=body
        )
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def __getattr__(self, name: str) -> Any:
        # http.server dispatches to do_<METHOD> and answers a 501 (an HTML page) without one: every other method
        # is routed too, as API Gateway does (no route for it: a 404).
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, headers too long, ...) in the project's shape,
        not its HTML page."""
        self.close_connection = True
        reason = message or self.responses.get(code, ("Error",))[0]
        self._send(error(code, f"{reason}: {explain}" if explain else reason, "request", "malformed_request"))

    def log_message(self, format: str, *args: Any) -> None:
        # A request line too malformed to parse leaves no command and no path, only the line itself.
        request = f"{self.command} {self.path}" if self.command else repr(self.requestline[:80])
        self.cloud.log(f"{request} -> {args[1] if len(args) > 1 else ''}")


class ApiServer:
    """The HTTP API on 127.0.0.1, like `sam local start-api`, served from a thread."""

    def __init__(self, cloud: ApiHost | None, host: str = "127.0.0.1", port: int = 3000) -> None:
        """Listens at once (an OSError if the port is taken); with `cloud` None, give it to `start`."""
        self.handler: type[_Handler] = type("Handler", (_Handler,), {"cloud": cloud})
        self.server = ThreadingHTTPServer((host, port), self.handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="localcloud-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self, cloud: ApiHost | None = None) -> ApiServer:
        if cloud is not None:
            self.handler.cloud = cloud
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
