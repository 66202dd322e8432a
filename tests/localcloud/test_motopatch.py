"""localcloud's patch of moto's TransactWriteItems: same observable semantics, rollback of the touched items only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud import motopatch

TABLE = "t"


@pytest.fixture(params=["patched", "moto"])
def dynamodb(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    """A table with a stream, under moto's own transactions or the patched ones (every test runs with both)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        monkeypatch.setenv(key, value)
    was_installed = motopatch.installed()
    if request.param == "patched":
        motopatch.install()
    else:
        motopatch.uninstall()
    try:
        with mock_aws():
            config = Config(account_id_endpoint_mode="disabled")
            client = boto3.client("dynamodb", config=config)
            streams = boto3.client("dynamodbstreams", config=config)
            stream_arn = client.create_table(
                TableName=TABLE,
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )["TableDescription"]["LatestStreamArn"]
            yield client, streams, stream_arn
    finally:
        if was_installed:
            motopatch.install()
        else:
            motopatch.uninstall()


def _put(pk: str, n: int) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": {"pk": {"S": pk}, "n": {"N": str(n)}}}}


def _add(pk: str, by: int, at_most: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": "SET n = n + :by",
            "ConditionExpression": "n <= :at_most",
            "ExpressionAttributeValues": {":by": {"N": str(by)}, ":at_most": {"N": str(at_most)}},
        }
    }


def _items(client: Any) -> dict[str, int]:
    return {i["pk"]["S"]: int(i["n"]["N"]) for i in client.scan(TableName=TABLE)["Items"]}


def _stream(streams: Any, arn: str, after: str | None = None) -> list[tuple[str, str]]:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    position: dict[str, Any] = (
        {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        if after
        else {"ShardIteratorType": "TRIM_HORIZON"}
    )
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, **position)["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    return [(r["eventName"], r["dynamodb"]["SequenceNumber"]) for r in records]


def test_a_cancelled_transaction_changes_nothing_and_leaves_no_stream_record(dynamodb: tuple[Any, Any, str]) -> None:
    client, streams, arn = dynamodb
    # GIVEN two items
    client.transact_write_items(TransactItems=[_put("a", 1), _put("b", 9)])
    before_stream = _stream(streams, arn)
    # WHEN a transaction updates a, creates c, and fails its condition on b
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=[_add("a", 1, 5), _put("c", 3), _add("b", 1, 5)])
    # THEN it is cancelled with one reason per operation, and no item or stream record changed
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert _items(client) == {"a": 1, "b": 9}
    assert _stream(streams, arn) == before_stream


def test_a_successful_transaction_writes_every_item_and_its_stream_records(dynamodb: tuple[Any, Any, str]) -> None:
    client, streams, arn = dynamodb
    # GIVEN one item
    client.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    # WHEN a transaction updates it and creates another
    client.transact_write_items(TransactItems=[_add("a", 2, 5), _put("b", 4)])
    # THEN both are written, and the stream has INSERT, MODIFY, INSERT in order
    assert _items(client) == {"a": 3, "b": 4}
    assert [name for name, _ in _stream(streams, arn)] == ["INSERT", "MODIFY", "INSERT"]


def test_a_rejected_transaction_naming_an_item_twice_is_rolled_back(dynamodb: tuple[Any, Any, str]) -> None:
    client, _, _ = dynamodb
    # GIVEN an item
    client.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    # WHEN a transaction names it twice (moto writes the first operation before it notices)
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=[_add("a", 1, 5), _put("a", 7)])
    # THEN the request is refused and the item is as before
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert _items(client) == {"a": 1}


def test_a_stream_reader_keeps_reading_after_a_cancelled_transaction(dynamodb: tuple[Any, Any, str]) -> None:
    client, streams, arn = dynamodb
    # GIVEN a reader positioned after the first write
    client.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    position = _stream(streams, arn)[-1][1]
    # WHEN a transaction is cancelled and then a later write succeeds
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=[_put("b", 1), _add("a", 1, 0)])
    client.put_item(TableName=TABLE, Item={"pk": {"S": "c"}, "n": {"N": "2"}})
    # THEN the reader sees exactly the later write, not the cancelled one
    assert [name for name, _ in _stream(streams, arn, after=position)] == ["INSERT"]
    assert _items(client) == {"a": 1, "c": 2}


def test_the_patch_keeps_the_table_object(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the patch, a table and a cancelled transaction on it
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert motopatch.install()
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        table = backend.tables[TABLE]
        with pytest.raises(ClientError):
            client.transact_write_items(TransactItems=[_put("a", 1), _add("missing", 1, 0)])  # type: ignore[list-item]
        # THEN the backend holds the same table object (moto's rollback would have swapped in a copy)
        assert backend.tables[TABLE] is table
