"""SQS mappings (partial failures, visibility timeout, moto's redrive), schedules, pattern-rule targets, serve."""

from __future__ import annotations

import http.client
import json
import socket
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from localcloud.cloud import LocalCloud
from localcloud.httpapi import MAX_PAYLOAD_BYTES, ApiServer
from localcloud.schedules import Cron, Schedule, ScheduleTarget
from tests.localcloud.helpers import FIXTURE_TEMPLATE, batches, put_records, request


def _send(cloud: LocalCloud, *behaviours: str) -> None:
    for behaviour in behaviours:
        cloud.send_message("WorkQueue", json.dumps({"behaviour": behaviour}))


def _queue_batches(cloud: LocalCloud) -> list[list[tuple[str, str]]]:
    return [
        [(json.loads(r["body"])["behaviour"], r["attributes"]["ApproximateReceiveCount"]) for r in i.event["Records"]]
        for i in cloud.invocations("QueueFunction")
    ]


def test_sqs_partial_failures_reappear_after_the_visibility_timeout_then_reach_the_dlq(cloud: LocalCloud) -> None:
    # GIVEN a queue (VisibilityTimeout 30, maxReceiveCount 2) holding two good messages and one that fails
    _send(cloud, "ok", "fail", "ok")
    # WHEN pumped: the good ones are deleted, the failed one waits out its visibility timeout
    cloud.run_until_quiet()
    cloud.advance(29)
    cloud.run_until_quiet()
    # THEN it has not reappeared yet
    assert sorted(b for b, _ in _queue_batches(cloud)[0]) == ["fail", "ok", "ok"]
    assert len(_queue_batches(cloud)) == 1
    # WHEN the timeout passes: it is delivered alone, received for the second time, and fails again
    cloud.advance(2)
    cloud.run_until_quiet()
    assert _queue_batches(cloud)[1] == [("fail", "2")]
    # WHEN the timeout passes again: SQS's redrive policy moves it to the DLQ instead of a third delivery
    cloud.advance(31)
    cloud.run_until_quiet()
    assert len(_queue_batches(cloud)) == 2
    assert cloud.queue_depth("WorkDLQ") == 1
    assert cloud.queue_depth("WorkQueue") == 0


def test_sqs_function_error_leaves_the_whole_batch_on_the_queue(cloud: LocalCloud) -> None:
    # GIVEN a batch one of whose messages makes the function raise
    _send(cloud, "ok", "crash")
    # WHEN pumped, and the visibility timeout passes
    cloud.run_until_quiet()
    cloud.advance(31)
    cloud.run_until_quiet()
    # THEN both messages were delivered again (nothing was deleted after the error)
    assert [sorted(b) for b in _queue_batches(cloud)] == [[("crash", "1"), ("ok", "1")], [("crash", "2"), ("ok", "2")]]


def test_the_schedule_fires_on_advance_and_not_before(cloud: LocalCloud) -> None:
    # GIVEN the fixture's rate(10 minutes) schedule
    schedule = cloud.schedules["ScheduledFunctionEvery10Minutes"]
    # WHEN the clock moves 599 seconds THEN nothing fires
    assert cloud.advance(599) == []
    # WHEN it passes 600 seconds THEN the function gets EventBridge's Scheduled Event for its rule
    [invocation] = cloud.advance(2)
    event = invocation.response["received"]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == [schedule.arn]
    assert event["detail"] == {}
    # WHEN the clock jumps two periods THEN it fires twice
    assert len(cloud.advance(1200)) == 2


def test_cron_expressions_follow_aws_fields() -> None:
    # GIVEN cron(0 12 ? * MON-FRI *) (weekdays at noon UTC) created on Saturday 2026-11-28 13:00 UTC
    created = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    cron = Cron.parse("0 12 ? * MON-FRI *")
    # WHEN the next firing is computed THEN it is Monday 12:00
    assert cron.next_after(created) == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    schedule = Schedule("r", "arn:r", "cron(*/15 * * * ? *)", [ScheduleTarget("f", "t")], created.timestamp())
    assert list(schedule.due(created.timestamp() + 1800)) == [created.timestamp() + 900, created.timestamp() + 1800]


def test_a_pattern_rule_with_a_function_target_invokes_it_asynchronously(cloud: LocalCloud) -> None:
    # GIVEN a rule on the bus whose target is a function
    # WHEN a matching and a non-matching event are put on the bus and the mappings pumped
    cloud.put_events(
        {"EventBusName": cloud.bus_name(), "Source": "fixture.pinger", "DetailType": "Ping", "Detail": "{}"},
        {"EventBusName": cloud.bus_name(), "Source": "fixture.other", "DetailType": "Ping", "Detail": "{}"},
    )
    cloud.run_until_quiet()
    # THEN the function received the matching EventBridge event only
    received = [i.response["received"] for i in cloud.invocations("BusFunction")]
    assert [(e["source"], e["detail-type"]) for e in received] == [("fixture.pinger", "Ping")]


def test_functions_get_the_environment_the_stack_resolves(cloud: LocalCloud) -> None:
    # GIVEN a function whose environment refers to a table and a queue
    # WHEN it is called through the HTTP API
    response = cloud.http("GET", "/things/t-1")
    # THEN it saw their physical names, the Globals variables, and a context honouring its Timeout
    body = response.json()
    assert body["table"] == cloud.table_name("PartialTable")
    assert body["queue"] == cloud.queue_url("WorkQueue")
    assert body["fixture"] == "localcloud"
    assert 6000 < body["remaining_ms"] <= 7000


def test_serve_routes_requests_by_path_template_as_payload_v2_events(cloud: LocalCloud) -> None:
    # GIVEN the HTTP API served on a free port
    server = ApiServer(cloud, port=0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        # WHEN requests are sent
        get_status, got = request(f"{base}/things/abc?colour=red")
        post_status, posted = request(f"{base}/things", "POST", {"name": "x"})
        missing_status, missing = request(f"{base}/nothing/here")
        crash_status, _ = request(f"{base}/crash")
    finally:
        server.stop()
    # THEN each reached the function of its route with a v2 event
    assert (get_status, got["routeKey"], got["pathParameters"], got["query"]) == (
        200,
        "GET /things/{thing_id}",
        {"thing_id": "abc"},
        {"colour": "red"},
    )
    assert (post_status, posted["routeKey"], posted["body"]) == (201, "POST /things", {"name": "x"})
    assert missing_status == 404
    assert missing["message"] == "Not Found: no route for GET /nothing/here"
    assert crash_status == 500


def _raw_exchange(port: int, request_bytes: bytes) -> tuple[int, dict[str, str], Any]:
    """Send bytes as they are (no client to tidy them) and read one response: (status, headers, JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_bytes)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())


def _assert_error_shape(body: Any, status: int, problem: str) -> None:
    # The project's error body (converge.http.error_response): a message, and errors naming what is at fault.
    assert set(body) <= {"message", "errors"}, body
    assert problem in body["message"], body
    if status < 500:
        assert [set(e) for e in body["errors"]] == [{"field", "message", "type"}], body


def test_every_router_error_has_the_project_error_shape_and_names_the_problem(cloud: LocalCloud) -> None:
    # GIVEN the HTTP API served on a free port
    server = ApiServer(cloud, port=0).start()
    try:
        # WHEN requests no route serves, malformed ones and oversized ones are sent, byte for byte
        cases = {
            "no route": (b"GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no route for GET /nothing/here"),
            "a method no route has": (b"DELETE /things HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no route for DELETE"),
            "a method http.server does not know": (b"BREW /things HTTP/1.1\r\nHost: x\r\n\r\n", 404, "BREW"),
            "a function error": (b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n", 500, "Internal Server Error"),
            "more headers than http.server reads": (
                b"GET /things HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n",
                431, "Too many headers",
            ),
            "a content-length that is no number": (
                b"POST /things HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "content-length",
            ),
            "a body over API Gateway's quota": (
                b"POST /things HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_PAYLOAD_BYTES + 1),
                413, "Request Entity Too Large",
            ),
        }  # fmt: skip
        answers = {name: _raw_exchange(server.port, raw) for name, (raw, _, _) in cases.items()}
    finally:
        server.stop()
    # THEN each is answered (not a dropped connection or an HTML page) with its status, as JSON in the one shape
    for name, (_, status, problem) in cases.items():
        got_status, headers, body = answers[name]
        assert (name, got_status, headers["content-type"]) == (name, status, "application/json")
        _assert_error_shape(body, status, problem)


def test_the_router_404_has_the_shape_of_the_functions_404(cloud: LocalCloud) -> None:
    # GIVEN the router's 404 and the project's (converge.http.error_response) for a request at fault
    from converge.http import RequestRejected

    project = RequestRejected(HTTPStatus.NOT_FOUND, "route", "no_route", "x").response().body
    assert isinstance(project, dict)
    # WHEN the router answers a path no route serves
    router = cloud.http("GET", "/nothing/here").json()
    # THEN both have the same keys, and their errors the same fields
    assert set(router) == set(project) == {"message", "errors"}
    assert set(router["errors"][0]) == set(project["errors"][0])


@pytest.mark.slow
def test_deploys_into_a_moto_server_endpoint() -> None:
    # GIVEN a moto server on a free port
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        # WHEN the fixture template is deployed there and a stream record is written
        with LocalCloud(FIXTURE_TEMPLATE, endpoint=f"http://{host}:{port}") as cloud:
            put_records(cloud, "PartialTable", ["ok"])
            cloud.run_until_quiet()
            # THEN the emulated mapping delivered it from the server's stream
            assert batches(cloud, "PartialStreamFunction") == [["k0"]]
    finally:
        server.stop()
