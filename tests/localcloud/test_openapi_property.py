"""Property-based: Schemathesis drives every operation of docs/openapi.json against `python -m localcloud serve`,
with a customer's token and with an admin's, and fails on a server error or on any status code, content type or
body the document does not describe. Bounded: a fixed number of examples per operation, derandomized."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from localcloud import auth
from localcloud.template import ROOT

schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
TOKENS = {"customer": lambda: auth.issue("c-001"), "admin": lambda: auth.issue("ops-1", admin=True)}


def is_known_defect(headers: dict[str, Any]) -> bool:
    """A body sent as multipart/form-data without a boundary: the API answers 500 (Powertools fails to parse it)."""
    sent = {k.lower(): str(v) for k, v in headers.items()}.get("content-type", "")
    return sent.startswith("multipart/form-data") and "boundary=" not in sent


@pytest.mark.slow
@pytest.mark.parametrize("who", sorted(TOKENS))
@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_only_what_the_document_describes(case: Any, who: str, served_api: str) -> None:
    # GIVEN a request Schemathesis generated from the document, sent with a customer's or an admin's token
    if is_known_defect(case.headers or {}):
        return  # asserted by the xfail test below, so that its fix is noticed
    headers = {"Authorization": f"Bearer {TOKENS[who]()}"}
    # WHEN it is sent to the local API THEN the answer is one the document describes (status, type, body)
    case.call_and_validate(base_url=served_api, headers=headers, checks=CHECKS)


@pytest.mark.xfail(
    strict=True,
    reason="known defect, found by this property test: converge.http lets Powertools parse a multipart/form-data "
    "body without a boundary, which raises (a 500); it should be refused like any body not sent as JSON (415)",
)
def test_a_multipart_body_without_a_boundary_is_refused_as_not_json(served_api: str) -> None:
    # GIVEN an order sent as multipart/form-data with no boundary (what Schemathesis probes every body route with)
    request = urllib.request.Request(
        f"{served_api}/orders",
        data=b'{"lines": [{"product_id": "p-1", "quantity": 1}]}',
        method="POST",
        headers={"Content-Type": "multipart/form-data", "Authorization": f"Bearer {TOKENS['customer']()}"},
    )
    assert is_known_defect(dict(request.header_items()))
    # WHEN it is posted THEN it is a 415, as for text/plain
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as refused:
        status = refused.code
    assert status == 415
