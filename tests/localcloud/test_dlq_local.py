"""tools.dlq on localcloud: an operator learns list, show, park and redrive on a local stack, the commands they run
against a deployed one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from converge.dynamo import from_item
from localcloud.cloud import LocalCloud
from tests.localcloud.real import REAL_TEMPLATE
from tools.dlq import main


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(REAL_TEMPLATE) as deployed:
        yield deployed


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`python -m tools.dlq ARGV`: its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parked_records(cloud: LocalCloud) -> list[dict[str, Any]]:
    """The reconciler's parked records of poison messages, in its state table."""
    items = [from_item(item) for item in cloud.scan_items("ReconcilerStateTable")]
    return [item for item in items if item["pk"] == "PARKED"]


def listed(out: str, queue: str) -> str:
    """The line `list` printed for the queue."""
    (line,) = [line for line in out.splitlines() if line.split()[0] == queue]
    return " ".join(line.split())


def test_a_poison_message_is_listed_shown_parked_once_and_redriven(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a poison message in the orders DLQ of a localcloud stack
    message_id = cloud.send_message("OrdersDLQ", "not json at all")
    stack = ["--stack", cloud.stack_name]
    # WHEN an operator lists the DLQs and shows the orders one
    _, listing, _ = run(capsys, *stack, "list")
    _, shown, _ = run(capsys, *stack, "show", "OrdersDLQ")
    # THEN the list counts it (not parked), and show prints its id and body as not parked
    assert listed(listing, "OrdersDLQ") == "OrdersDLQ 1 messages, 0 parked as poison"
    assert listed(listing, "InventoryDLQ") == "InventoryDLQ 0 messages, 0 parked as poison"
    assert message_id in shown
    assert "not json at all" in shown
    assert "(not parked" in shown
    # WHEN the operator parks it with a reason
    code, said, _ = run(capsys, *stack, "park", "OrdersDLQ", message_id, "--reason", "customer typo, ticket 42")
    # THEN it is parked: show prints the reason, list counts it, and the record is the reconciler's
    assert code == 0
    assert said.splitlines() == [f"parked {message_id} in OrdersDLQ: customer typo, ticket 42"]
    _, shown, _ = run(capsys, *stack, "show", "OrdersDLQ")
    _, listing, _ = run(capsys, *stack, "list")
    assert "customer typo, ticket 42" in shown
    assert "(not parked" not in shown
    assert listed(listing, "OrdersDLQ") == "OrdersDLQ 1 messages, 1 parked as poison"
    (record,) = parked_records(cloud)
    queue_name = cloud.queue_url("OrdersDLQ").rsplit("/", 1)[-1]
    assert record["sk"] == f"{queue_name}#{message_id}"
    assert (record["message_id"], record["body"]) == (message_id, "not json at all")
    assert record["queue_url"] == cloud.queue_url("OrdersDLQ")
    assert record["parked_at"].endswith("+00:00")
    # WHEN it is parked a second time, with another reason
    code, said, _ = run(capsys, *stack, "park", "OrdersDLQ", message_id, "--reason", "something else")
    # THEN the tool says it already was, and the first reason is kept
    assert code == 0
    assert said.startswith(f"already parked {message_id} in OrdersDLQ at ")
    assert "customer typo, ticket 42 (kept)" in said
    assert [r["reason"] for r in parked_records(cloud)] == ["customer typo, ticket 42"]
    # WHEN the operator redrives the DLQ
    code, said, _ = run(capsys, *stack, "redrive", "OrdersDLQ")
    # THEN the message is back in the orders inbox, the DLQ is empty and the parked record is gone
    assert code == 0
    assert said.splitlines() == ["redrove 1 message(s) from OrdersDLQ"]
    assert [m["Body"] for m in cloud.receive_messages("OrdersInbox")] == ["not json at all"]
    assert cloud.queue_depth("OrdersDLQ") == 0
    assert parked_records(cloud) == []


def test_park_refuses_an_id_the_dlq_does_not_hold_and_leaves_its_messages_visible(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a message in the orders DLQ
    cloud.send_message("OrdersDLQ", "not json at all")
    # WHEN an operator parks an id that is not in it
    code, out, err = run(capsys, "--stack", cloud.stack_name, "park", "OrdersDLQ", "no-such-id", "--reason", "r")
    # THEN one line on stderr, exit 2, nothing recorded, and the DLQ's message is visible at once
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "tools.dlq: park: OrdersDLQ holds no message 'no-such-id' (`show OrdersDLQ` lists its ids)"
    ]
    assert parked_records(cloud) == []
    assert [m["Body"] for m in cloud.receive_messages("OrdersDLQ")] == ["not json at all"]


def test_the_local_flag_reads_localcloud_served_into_a_moto_server(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN localcloud deployed into a moto server of its own, and a poison message in its orders DLQ
    with LocalCloud(REAL_TEMPLATE, endpoint="server") as served:
        assert served.endpoint is not None
        message_id = served.send_message("OrdersDLQ", "not json at all")
        os.environ.pop("AWS_ENDPOINT_URL")  # only --local points the tool there (LocalCloud restores it when it stops)
        # WHEN the operator parks it and lists the DLQs with --local URL (no --stack: localcloud's is converge)
        parked, _, _ = run(capsys, "--local", served.endpoint, "park", "OrdersDLQ", message_id, "--reason", "r")
        code, listing, err = run(capsys, "--local", served.endpoint, "list")
    # THEN the tool read that server's stack
    assert (parked, code, err) == (0, 0, "")
    assert listed(listing, "OrdersDLQ") == "OrdersDLQ 1 messages, 1 parked as poison"
