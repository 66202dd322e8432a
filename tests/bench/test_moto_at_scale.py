"""bench/moto_at_scale.py answers as moto does: the same Scan pages (segments, limits, keys) and Query results."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.moto_at_scale import at_scale, main, served
from converge.dynamo import to_item

TABLE = "items"
_TABLE_SPEC: dict[str, Any] = {
    "TableName": TABLE,
    "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "BillingMode": "PAY_PER_REQUEST",
}


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**_TABLE_SPEC)
        for i in range(120):
            item = {"pk": f"P#{i % 37:03d}", "sk": f"S#{i:04d}", "n": i, "tags": {"a", "b"}, "m": {"x": [1, "y"]}}
            dynamodb.put_item(TableName=TABLE, Item=to_item(item))
        yield dynamodb


def _pages(client: Any, segment: int, total: int) -> list[tuple[list[Any], Any]]:
    pages, key = [], None
    while True:
        kwargs: dict[str, Any] = {"TableName": TABLE, "Limit": 7, "Segment": segment, "TotalSegments": total}
        page = client.scan(**kwargs, **({"ExclusiveStartKey": key} if key else {}))
        key = page.get("LastEvaluatedKey")
        pages.append((page["Items"], key))
        if key is None:
            return pages


@pytest.mark.parametrize("total", [1, 4])
def test_scan_pages_are_moto_s_own(client: Any, total: int) -> None:
    # GIVEN a table WHEN every segment is scanned in pages with moto's own code and then at scale
    plain = [_pages(client, segment, total) for segment in range(total)]
    with at_scale():
        fast = [_pages(client, segment, total) for segment in range(total)]
        # AND an item is added while the index is built: the next scan sees it
        client.put_item(TableName=TABLE, Item=to_item({"pk": "P#000", "sk": "S#9999"}))
        after = [i for segment in range(total) for page, _ in _pages(client, segment, total) for i in page]
    # THEN the pages, their items and their continuation keys are the same
    assert fast == plain
    assert {"pk": {"S": "P#000"}, "sk": {"S": "S#9999"}} in after


def test_query_of_a_partition_is_moto_s_own(client: Any) -> None:
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "P#003"}},
    }
    plain = client.query(**query)["Items"]
    with at_scale():
        fast = client.query(**query)["Items"]
        batch = client.batch_get_item(RequestItems={TABLE: {"Keys": [{"pk": {"S": "P#003"}, "sk": {"S": "S#0003"}}]}})
    assert fast == plain
    assert len(fast) > 1
    assert batch["Responses"][TABLE] == [i for i in plain if i["sk"] == {"S": "S#0003"}]


def test_served_answers_the_same_pages_from_its_own_process(client: Any) -> None:
    # GIVEN the pages moto gives in this process
    plain = [_pages(client, segment, 4) for segment in range(4)]
    items = [i for pages in plain for page, _ in pages for i in page]
    # WHEN the same items are written to the benchmark's moto server and scanned through it
    with served() as url:
        remote = boto3.client("dynamodb", region_name="us-east-1")
        assert remote.meta.endpoint_url == url
        assert remote.list_tables()["TableNames"] == []  # its own backend, not this process's
        remote.create_table(**_TABLE_SPEC)
        for item in items:
            remote.put_item(TableName=TABLE, Item=item)
        served_pages = [_pages(remote, segment, 4) for segment in range(4)]
    # THEN its pages, items and continuation keys are moto's, and it is gone afterwards
    assert served_pages == plain
    assert "AWS_ENDPOINT_URL" not in os.environ or os.environ["AWS_ENDPOINT_URL"] != url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2)


def test_the_server_command_refuses_a_bad_port_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the server is started with a port that is not one THEN it says so in one line and exits 2
    assert main(["http"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
