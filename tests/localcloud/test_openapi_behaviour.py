"""What the API answers is what docs/openapi.json says it answers: the cases a newcomer found out of step, each
sent to localcloud's API and looked up in the document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from localcloud.cloud import LocalCloud
from tests.unit.test_openapi import committed


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as deployed:
        yield deployed


def documented_statuses(method: str, path: str) -> set[int]:
    return {int(status) for status in committed()["paths"][path][method]["responses"]}


def body_schema(name: str) -> dict[str, Any]:
    """A request body's schema from the document, its references resolvable."""
    document = committed()
    return {**document["components"]["schemas"][name], "components": document["components"]}


def test_another_customers_notifications_are_a_documented_404(cloud: LocalCloud) -> None:
    # GIVEN customer c-1's token WHEN it reads customer c-2's notifications
    response = cloud.http("GET", "/customers/c-2/notifications", token=cloud.token("c-1"))
    # THEN the answer is a 404, and the document lists a 404 for that route
    assert response.status == 404
    assert 404 in documented_statuses("get", "/customers/{customer_id}/notifications")


def test_a_zero_adjustment_is_refused_and_the_schema_refuses_it_too(cloud: LocalCloud) -> None:
    # GIVEN an adjustment of zero
    body = {"delta": 0}
    # WHEN an admin posts it
    response = cloud.http("POST", "/products/p-1/stock/adjustments", body=body, token=cloud.token("ops-1", admin=True))
    # THEN it is a 400 naming delta, and the document's schema for the body does not accept it either
    assert response.status == 400
    assert [e["field"] for e in response.json()["errors"]] == ["delta"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, body_schema("AdjustStock"))
    jsonschema.validate({"delta": 3}, body_schema("AdjustStock"))


def test_a_whole_number_float_is_refused_as_the_document_says(cloud: LocalCloud) -> None:
    # GIVEN a stock level sent as 53.0, which JSON Schema counts as an integer
    body = json.dumps({"on_hand": 53.0})
    jsonschema.validate({"on_hand": 53.0}, body_schema("SetStock"))
    # WHEN an admin puts it
    response = cloud.http("PUT", "/products/p-1/stock", body=body, token=cloud.token("ops-1", admin=True))
    # THEN it is a 400 naming on_hand, and the document says in words that 53.0 is refused
    assert response.status == 400
    assert [e["field"] for e in response.json()["errors"]] == ["on_hand"]
    assert "`53.0` is refused with a 400" in committed()["info"]["description"]
