"""localcloud's HTTP API builds its events as API Gateway's HTTP API does (payload format 2.0): the sender's headers
as sent, lowercased and never merged with a content-type of its own, and path parameters URL-decoded (AWS: "API
Gateway decodes URL-encoded request parameters before passing them to your backend integration")."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from localcloud.httpapi import ApiServer

ORDER = {"lines": [{"product_id": "p-1", "quantity": 1}]}


def exchange(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
    """One request with exactly these headers (http.client adds only host, content-length and accept-encoding)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


@pytest.fixture
def served(cloud: LocalCloud) -> Iterator[int]:
    server = ApiServer(cloud, port=0).start()
    try:
        yield server.port
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["Content-Type", "content-type", "CONTENT-TYPE"])
def test_the_senders_content_type_reaches_the_function_alone(served: int, name: str) -> None:
    # GIVEN a body sent as text/plain, the header's name in any case
    # WHEN it is posted to a route of the fixture API
    status, echoed = exchange(served, "POST", "/things", b'{"name": "x"}', {name: "text/plain"})
    # THEN the function's event has the sender's content-type, lowercased by name, and nothing of localcloud's
    assert (status, echoed["contentType"]) == (201, "text/plain")


def test_a_body_sent_without_a_content_type_reaches_the_function_without_one(served: int) -> None:
    # GIVEN a body sent with no content-type header WHEN it is posted
    status, echoed = exchange(served, "POST", "/things", b'{"name": "x"}', {})
    # THEN the event has no content-type either (API Gateway adds none)
    assert (status, echoed["contentType"]) == (201, None)


@pytest.mark.parametrize(("sent", "decoded"), [("p%3A1", "p:1"), ("a%20b", "a b"), ("p:1", "p:1"), ("x%25y", "x%y")])
def test_path_parameters_are_url_decoded_and_the_raw_path_is_as_sent(served: int, sent: str, decoded: str) -> None:
    # GIVEN a path variable sent percent-encoded (or not)
    # WHEN the route with that variable is called
    status, echoed = exchange(served, "GET", f"/things/{sent}", None, {})
    # THEN the function's pathParameters hold the decoded value, and rawPath the path as it was sent
    assert (status, echoed["pathParameters"], echoed["rawPath"]) == (200, {"thing_id": decoded}, f"/things/{sent}")


@pytest.fixture(scope="module")
def storefront() -> Iterator[tuple[int, str]]:
    with LocalCloud() as deployed:
        server = ApiServer(deployed, port=0).start()
        try:
            yield server.port, deployed.token("c-1")
        finally:
            server.stop()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "text/plain"),
        ("content-type", "text/plain"),
        ("CONTENT-TYPE", "Text/Plain"),
    ],
)
def test_an_order_not_sent_as_json_is_a_415_in_the_projects_error_shape(
    storefront: tuple[int, str], name: str, value: str
) -> None:
    # GIVEN a valid order, sent with a content-type that is not JSON, the header's name and value in any case
    port, token = storefront
    headers = {name: value, "Authorization": f"Bearer {token}"}
    # WHEN it is posted to the real API
    status, body = exchange(port, "POST", "/orders", json.dumps(ORDER).encode(), headers)
    # THEN it is refused with 415, naming the content-type, in the project's one error shape
    assert status == 415, body
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("content-type", "unsupported_content_type")]
    assert value.lower() in body["message"].lower()


def test_an_order_sent_as_json_in_any_case_is_placed(storefront: tuple[int, str]) -> None:
    # GIVEN the same order sent as Application/JSON (media types are case-insensitive)
    port, token = storefront
    headers = {"CONTENT-TYPE": "Application/JSON", "Authorization": f"Bearer {token}"}
    # WHEN it is posted THEN it is accepted
    status, body = exchange(port, "POST", "/orders", json.dumps(ORDER).encode(), headers)
    assert status == 201, body


def test_an_order_sent_as_a_form_as_curl_d_sends_it_is_refused_not_placed(storefront: tuple[int, str]) -> None:
    # GIVEN the order's JSON sent with the content-type `curl -d` gives it
    port, token = storefront
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Bearer {token}"}
    # WHEN it is posted
    status, body = exchange(port, "POST", "/orders", json.dumps(ORDER).encode(), headers)
    # THEN it is not read as JSON: Powertools parses a form, whose one field is not an order, so it is a 400 naming
    # the missing lines, in the project's error shape (as on AWS, where the event carries the same content-type)
    assert status == 400, body
    assert ("lines", "missing") in [(e["field"], e["type"]) for e in body["errors"]]
