"""Helpers of the localcloud tests: write stream records, read what functions received and what queues hold."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from localcloud.cloud import LocalCloud

FIXTURES = Path(__file__).parent / "fixtures"
# A new shell with no venv activated: the PATH of a fresh login, and a HOME (documented commands run in it).
FRESH_SHELL = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
FIXTURE_TEMPLATE = FIXTURES / "template.yaml"


def put_records(cloud: LocalCloud, table: str, behaviours: list[str], prefix: str = "k") -> None:
    """One stream record per behaviour ("ok", "fail" = reported failure, "crash" = function error), in order."""
    for index, behaviour in enumerate(behaviours):
        cloud.put_item(table, {"pk": {"S": f"{prefix}{index}"}, "behaviour": {"S": behaviour}})


def put_item(cloud: LocalCloud, table: str, item: dict[str, Any]) -> None:
    """Write a plain item straight into a table (as a restore or a person would), bypassing every service."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    cloud.put_item(table, {k: serializer.serialize(v) for k, v in item.items()})


def batches(cloud: LocalCloud, function: str) -> list[list[str]]:
    """The keys of the stream records of each invocation of `function`, in order."""
    return [
        [r["dynamodb"]["Keys"]["pk"]["S"] for r in invocation.event["Records"]]
        for invocation in cloud.invocations(function)
    ]


def drain(cloud: LocalCloud, queue: str) -> list[Any]:
    """Every message body on `queue` (JSON-decoded), deleting them."""
    bodies: list[Any] = []
    while messages := cloud.receive_messages(queue):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            cloud.delete_message(queue, message["ReceiptHandle"])
    return bodies


def request(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    """An HTTP request to a served API: (status, JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    sent = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


ADMIN = "ops-1"  # the warehouse's admin in these tests


def admin_token(cloud: LocalCloud) -> str:
    """A token of the warehouse's admin: sets and adjusts stock, dispatches, reads any order or product."""
    return cloud.token(ADMIN, admin=True)


def refused(responses: dict[str, int]) -> dict[str, int]:
    """The "<operation> <status>" counts of a run's responses that the authorizer or a handler refused for who
    called (401, 403): a driver that sends a request without the right token."""
    return {key: n for key, n in responses.items() if key.rsplit(" ", 1)[-1] in ("401", "403")}


def customer_token(cloud: LocalCloud, customer_id: str) -> str:
    """A token of customer `customer_id`: places orders as that customer, reads and cancels only its own."""
    return cloud.token(customer_id)


def fenced_blocks(path: Path) -> list[tuple[str, str]]:
    """Every fenced code block of a Markdown file: (its language, or "" for none; its text), in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)


def bash_blocks(path: Path) -> list[str]:
    return [text for language, text in fenced_blocks(path) if language == "bash"]


def commands(block: str) -> list[str]:
    """The block's commands: comments (whole lines, or after two spaces) dropped, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = (line.split("  # ")[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
