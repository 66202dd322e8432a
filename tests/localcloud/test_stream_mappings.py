"""DynamoDB stream event source mappings, emulated from the fixture template's own mapping properties."""

from __future__ import annotations

from localcloud.cloud import LocalCloud
from tests.localcloud.helpers import batches, drain, put_records


def test_batches_hold_at_most_the_mapping_batch_size_in_stream_order(cloud: LocalCloud) -> None:
    # GIVEN 10 records on a stream whose mapping has BatchSize 4
    put_records(cloud, "PartialTable", ["ok"] * 10)
    # WHEN the mappings are pumped until quiet
    cloud.run_until_quiet()
    # THEN the function saw batches of 4, 4 and 2, in write order, and nothing went to OnFailure
    assert batches(cloud, "PartialStreamFunction") == [
        ["k0", "k1", "k2", "k3"],
        ["k4", "k5", "k6", "k7"],
        ["k8", "k9"],
    ]
    assert drain(cloud, "FailuresQueue") == []


def test_a_reported_failure_retries_that_record_and_later_ones_never_earlier(cloud: LocalCloud) -> None:
    # GIVEN a batch whose third record the function reports as failed (ReportBatchItemFailures, 2 retries)
    put_records(cloud, "PartialTable", ["ok", "ok", "fail", "ok", "ok", "ok"])
    # WHEN pumped
    cloud.run_until_quiet()
    # THEN the checkpoint moved to the failed record: k2 and k3 are retried twice, k0/k1 never again,
    # and the next batch is processed after the retries are exhausted
    assert batches(cloud, "PartialStreamFunction") == [
        ["k0", "k1", "k2", "k3"],
        ["k2", "k3"],
        ["k2", "k3"],
        ["k4", "k5"],
    ]
    [failure] = drain(cloud, "FailuresQueue")
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 2


def test_a_function_error_bisects_the_batch_and_isolates_the_poison_record(cloud: LocalCloud) -> None:
    # GIVEN a batch of 4 whose third record makes the function raise (BisectBatchOnFunctionError, 2 retries)
    put_records(cloud, "PartialTable", ["ok", "ok", "crash", "ok"])
    # WHEN pumped
    cloud.run_until_quiet()
    # THEN the batch is split in halves until the poison record is alone; it is retried twice, then skipped
    assert batches(cloud, "PartialStreamFunction") == [
        ["k0", "k1", "k2", "k3"],
        ["k0", "k1"],
        ["k2", "k3"],
        ["k2"],
        ["k2"],
        ["k2"],
        ["k3"],
    ]
    [failure] = drain(cloud, "FailuresQueue")
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert failure["responseContext"]["functionError"] == "Unhandled"


def test_exhausted_retries_send_aws_shaped_metadata_to_on_failure_and_processing_continues(cloud: LocalCloud) -> None:
    # GIVEN a mapping without bisect or partial responses (MaximumRetryAttempts 1) and a batch with a poison record
    put_records(cloud, "WholeTable", ["ok", "crash", "ok"])
    # WHEN pumped, then more records arrive and are pumped
    cloud.run_until_quiet()
    put_records(cloud, "WholeTable", ["ok", "ok"], prefix="later")
    cloud.run_until_quiet()
    # THEN the whole batch was tried twice, its metadata (not its records) went to the OnFailure queue,
    # and the records written afterwards were processed
    assert batches(cloud, "WholeStreamFunction") == [["k0", "k1", "k2"], ["k0", "k1", "k2"], ["later0", "later1"]]
    [failure] = drain(cloud, "FailuresQueue")
    mapping = cloud.stream_mappings["WholeStreamFunctionStream"]
    function = cloud.function("WholeStreamFunction")
    assert set(failure) == {"requestContext", "responseContext", "version", "timestamp", "DDBStreamBatchInfo"}
    assert failure["version"] == "1.0"
    assert failure["requestContext"]["functionArn"] == function.arn
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert set(failure["requestContext"]) == {"requestId", "functionArn", "condition", "approximateInvokeCount"}
    info = failure["DDBStreamBatchInfo"]
    assert set(info) == {
        "shardId",
        "startSequenceNumber",
        "endSequenceNumber",
        "approximateArrivalOfFirstRecord",
        "approximateArrivalOfLastRecord",
        "batchSize",
        "streamArn",
    }
    assert info["batchSize"] == 3
    assert info["streamArn"] == mapping.config.stream_arn
    assert info["shardId"] in mapping.shards
    assert int(info["startSequenceNumber"]) < int(info["endSequenceNumber"])


def test_records_older_than_the_maximum_age_are_skipped_to_on_failure_without_an_invocation(
    cloud: LocalCloud,
) -> None:
    # GIVEN records on a stream whose mapping has MaximumRecordAgeInSeconds 120
    put_records(cloud, "PartialTable", ["ok", "ok"])
    # WHEN the clock passes the maximum age before the mapping polls
    cloud.advance(121)
    cloud.run_until_quiet()
    # THEN the function never saw them and the OnFailure queue says why
    assert batches(cloud, "PartialStreamFunction") == []
    [failure] = drain(cloud, "FailuresQueue")
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 2


def test_records_younger_than_the_maximum_age_are_delivered(cloud: LocalCloud) -> None:
    # GIVEN records one second short of the maximum age
    put_records(cloud, "PartialTable", ["ok"])
    cloud.advance(118)
    # WHEN pumped
    cloud.run_until_quiet()
    # THEN they were delivered
    assert batches(cloud, "PartialStreamFunction") == [["k0"]]
