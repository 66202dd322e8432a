"""The HTTP API's OpenAPI document: committed = generated, valid OpenAPI, exactly the template's routes."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import yaml
from openapi_spec_validator import validate

from localcloud.httpapi import ApiServer
from tools import openapi

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !GetAtt, !Sub ...) read as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def committed() -> dict[str, Any]:
    return json.loads(DOCUMENT.read_text())  # type: ignore[no-any-return]


def template_routes() -> set[tuple[str, str]]:
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)
    routes = set()
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                routes.add((event["Properties"]["Method"].lower(), event["Properties"]["Path"]))
    return routes


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_committed_document_is_what_the_code_generates() -> None:
    assert DOCUMENT.read_text() == openapi.render(), "docs/openapi.json is stale: run `make openapi`"


def test_check_mode_names_the_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text(openapi.render().replace('"title": "Converge HTTP API"', '"title": "old"'))
    assert openapi.main([str(stale), "--check"]) == 1
    out = capsys.readouterr().out
    assert '-    "title": "old",' in out
    assert '+    "title": "Converge HTTP API",' in out
    assert openapi.main([str(DOCUMENT), "--check"]) == 0


def test_document_is_valid_openapi() -> None:
    validate(committed())  # raises OpenAPIValidationError naming the fault


def test_every_template_route_and_nothing_else() -> None:
    documented = set(operations(committed()))
    assert template_routes(), "no HttpApi events found in template.yaml"
    assert documented == template_routes()


def test_every_operation_documents_its_errors() -> None:
    document = committed()
    schemas = document["components"]["schemas"]
    assert {"Error", "FieldError"} <= set(schemas)
    declared = openapi.errors()  # 400, 413/415 where there is a body, what the contracts declare
    for (method, path), operation in operations(document).items():
        errors = {status for status in operation["responses"] if re.fullmatch(r"4\d\d", status)}
        assert "400" in errors, f"{method.upper()} {path} does not document 400"
        # the authorizer's 401 on every route, 403 where the security requirement names the admin role
        admin = any("admin" in roles for requirement in operation.get("security", []) for roles in requirement.values())
        assert errors == {str(s) for s in declared[(method, path)]} | {"401"} | ({"403"} if admin else set())
        if "requestBody" in operation:
            assert "415" in errors, f"{method.upper()} {path} takes a body but does not document 415"
            assert "413" in errors, f"{method.upper()} {path} takes a body but does not document 413"
        for status in errors:
            ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in schemas
        assert operation["tags"]
        assert operation["tags"][0] in {tag["name"] for tag in document["tags"]}


def test_servers_are_localcloud_and_the_deployed_api() -> None:
    servers = committed()["servers"]
    assert servers[0]["url"] == "http://127.0.0.1:3000"
    assert set(servers[1]["variables"]) == set(re.findall(r"{(\w+)}", servers[1]["url"]))


class _NoCloud:
    """/docs never reaches the cloud: the server only logs the request."""

    def log(self, message: str) -> None:
        pass


def test_localcloud_serves_swagger_ui_at_docs_from_local_assets() -> None:
    # GIVEN the localcloud HTTP server
    server = ApiServer(cast("LocalCloud", _NoCloud()), port=0).start()
    base = f"http://127.0.0.1:{server.port}"

    def get(path: str) -> tuple[str, bytes]:
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return str(response.headers["content-type"]), response.read()

    try:
        page_type, page = get("/docs")
        js_type, js = get("/docs/swagger-ui-bundle.min.js")
        css_type, css = get("/docs/swagger-ui.min.css")
        spec_type, spec = get("/docs/openapi.json")
        _, spec_again = get("/docs?format=json")
    finally:
        server.stop()
    # THEN the page links the assets the server itself serves (no CDN) and embeds the committed document
    assert page_type.startswith("text/html")
    html = page.decode()
    assert "src='/docs/swagger-ui-bundle.min.js'" in html
    assert "href='/docs/swagger-ui.min.css'" in html
    assert "cdn" not in html.lower()
    assert '"title": "Converge HTTP API"' in html
    assert js_type.startswith("text/javascript")
    assert b"SwaggerUIBundle" in js
    assert css_type.startswith("text/css")
    assert b".swagger-ui" in css
    assert spec_type == "application/json"
    assert spec == spec_again == DOCUMENT.read_bytes()
