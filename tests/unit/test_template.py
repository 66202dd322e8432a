"""template.yaml is the map: it lints clean, and every function in it has importable code and a fixture."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

from converge.contracts import SERVICES, with_inboxes, with_tables
from localcloud.deploy import load_and_translate
from localcloud.loader import load_handler
from localcloud.template import ROOT, TEMPLATE_PATH, function_specs, load_template, resources_of_type
from reconciler.health import pass_metrics
from reconciler.passes import ReconcilerState
from tests.support.alarms import Alarm

FUNCTIONS = sorted(function_specs())


def test_template_lints_clean_with_cfn_lint() -> None:
    # WHEN cfn-lint (the linter behind `sam validate --lint`) checks the template, warnings included
    matches = lint_file(Path(TEMPLATE_PATH), config=ManualArgs(regions=["us-east-1"]))
    # THEN it reports nothing
    assert [str(m) for m in matches] == []


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_every_function_has_an_importable_handler(logical_id: str) -> None:
    spec = function_specs()[logical_id]
    # WHEN the handler named in the template is imported from its CodeUri (as Lambda does)
    handler = load_handler(spec.code_dir, spec.handler)
    # THEN it is a callable taking (event, context)
    assert callable(handler)


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_every_handler_lives_in_its_services_package_inside_its_code_uri(logical_id: str) -> None:
    # GIVEN a function's Handler: "<package>.<module>.<function>"
    spec = function_specs()[logical_id]
    package = spec.handler.split(".", 1)[0]
    # THEN its package is the one directory of that name in its CodeUri, so every module has one import name
    #      project-wide, and the artifact sam build makes of the CodeUri holds that service's code only
    assert package == spec.code_dir.name, spec.handler
    assert (spec.code_dir / package / "__init__.py").is_file()
    assert sorted(p.name for p in spec.code_dir.iterdir() if not p.name.startswith((".", "__"))) == [package]


def test_every_service_loads_beside_the_others_with_one_set_of_types() -> None:
    # GIVEN every function's handler imported into this one interpreter
    for spec in function_specs().values():
        load_handler(spec.code_dir, spec.handler)
    # THEN each module of functions/ was imported once, under its package's name (no copy under another name,
    #      so a class is the same class wherever it is used)
    functions = ROOT / "functions"
    names_by_file: dict[str, list[str]] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(functions):
            names_by_file.setdefault(path, []).append(name)
    assert len(names_by_file) >= 15
    for path, names in names_by_file.items():
        (name,) = names
        assert name.split(".")[0] == Path(path).parent.name, (path, name)


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_every_function_has_a_sam_local_invoke_fixture(logical_id: str) -> None:
    fixtures = sorted((ROOT / "events").glob(f"{logical_id}.*.json"))
    assert fixtures, f"no events/{logical_id}.<case>.json for `sam local invoke -e`"


def test_tables_have_streams_encryption_and_point_in_time_recovery() -> None:
    tables = resources_of_type(load_template(), "AWS::DynamoDB::Table")
    assert set(tables) == {str(s.table) for s in with_tables()} | {"ReconcilerStateTable"}
    for name, table in tables.items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
        if name != "ReconcilerStateTable":  # the reconciler's own bookkeeping is not published
            assert props["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES", name
        assert props["SSESpecification"]["SSEEnabled"] is True, name
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name


def test_stream_mappings_are_bounded_and_report_partial_failures() -> None:
    for logical_id, spec in function_specs().items():
        for event in spec.events.values():
            if event["Type"] != "DynamoDB":
                continue
            props = event["Properties"]
            assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], logical_id
            assert props["BisectBatchOnFunctionError"] is True, logical_id
            assert 0 <= props["MaximumRetryAttempts"] <= 10, logical_id
            assert 60 <= props["MaximumRecordAgeInSeconds"] <= 86400, logical_id
            assert props["DestinationConfig"]["OnFailure"]["Type"] == "SQS", logical_id


def test_inboxes_feed_consumers_in_batches_of_ten_and_redrive_to_a_dlq() -> None:
    template = load_template()
    queues = resources_of_type(template, "AWS::SQS::Queue")
    consumers = {lid: s for lid, s in function_specs(template).items() if lid.endswith("ConsumerFunction")}
    assert set(consumers) == {s.functions()["consumer"] for s in with_inboxes()}
    for logical_id, spec in consumers.items():
        (event,) = spec.events.values()
        assert event["Type"] == "SQS"
        assert event["Properties"]["BatchSize"] == 10
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        inbox = queues[event["Properties"]["Queue"]["Fn::GetAtt"][0]]["Properties"]
        assert 1 <= inbox["RedrivePolicy"]["maxReceiveCount"] <= 10, logical_id
        # AWS: the visibility timeout should be at least six times the function timeout.
        assert inbox["VisibilityTimeout"] >= 6 * spec.timeout, logical_id


# pytest's pythonpath (the layer and every CodeUri), as pyproject.toml declares it, its globs expanded (conftest.py)
PYTHONPATH = [
    path
    for entry in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["pythonpath"]
    for path in sorted(glob.glob(str(ROOT / entry)))
]
PURE_TESTS = [
    *sorted(p.stem for p in (ROOT / "tests" / "unit").glob("test_*_domain.py")),
    "test_projections",
    "test_reconciler_health",
]


@pytest.mark.parametrize("module", PURE_TESTS)
def test_pure_domain_tests_load_without_the_sam_translator(module: str) -> None:
    # GIVEN a unit test of pure domain rules WHEN it is imported alone in a fresh interpreter
    code = f"import sys, tests.unit.{module}; print('samtranslator' in sys.modules, 'boto3' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(PYTHONPATH)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    # THEN neither the SAM translator nor the AWS SDK came with it (domain code and its tests need neither)
    assert out.stdout.split() == ["False", "False"], (module, out.stdout, out.stderr)


def test_description_names_the_four_services() -> None:
    # GIVEN the services the contracts declare with a table of their own
    services = [s.name for s in with_tables()]
    # WHEN the template's description is read
    description = " ".join(load_template()["Description"].split())
    # THEN it counts them and names each
    assert len(services) == 4
    assert f"four services ({', '.join(services)})" in description


def test_tables_and_dlqs_survive_a_stack_deletion_or_a_replacement() -> None:
    # GIVEN every table and every dead-letter queue of the template
    template = load_template()
    queues = resources_of_type(template, "AWS::SQS::Queue")
    dlqs = {name: q for name, q in queues.items() if name.endswith("DLQ")}
    assert set(dlqs) == {s.dlq for s in with_inboxes()} | {"DeliveryDLQ", "ReconcilerScheduleDLQ", "AlarmEmailDLQ"}
    kept = {**resources_of_type(template, "AWS::DynamoDB::Table"), **dlqs}
    # THEN each is retained when the stack is deleted and when an update replaces it
    for name, resource in kept.items():
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("Retain", "Retain"), name
    # AND the tables' deletion protection is on unless a throwaway stack turns it off
    assert template["Parameters"]["DeletionProtection"]["Default"] == "true"
    for name, table in resources_of_type(template, "AWS::DynamoDB::Table").items():
        assert table["Properties"]["DeletionProtectionEnabled"] == {"Ref": "DeletionProtection"}, name


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_every_function_logs_to_a_declared_log_group_with_retention(logical_id: str) -> None:
    # GIVEN a function of the template
    template = load_template()
    props = template["Resources"][logical_id]["Properties"]
    # WHEN its log group is looked up from its LoggingConfig
    (group_id,) = props["LoggingConfig"]["LogGroup"].values()
    group = resources_of_type(template, "AWS::Logs::LogGroup")[group_id]["Properties"]
    # THEN it is declared under /aws/lambda/ with the function's name in it, and keeps logs LogRetentionDays
    assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{logical_id}"}
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_logs_are_kept_a_year_unless_a_stack_asks_for_less() -> None:
    # GIVEN the retention parameter every log group keeps its logs for
    parameter = load_template()["Parameters"]["LogRetentionDays"]
    # THEN its default is the year AWS Control Tower's log group control (and checkov's CKV_AWS_338) asks for
    assert parameter["Default"] == 365
    # AND shorter values stay allowed, for throwaway stacks (samconfig's dev passes 14)
    assert {14, 30, 365} <= set(parameter["AllowedValues"])
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert 'LogRetentionDays="14"' in samconfig["dev"]["deploy"]["parameters"]["parameter_overrides"]


def test_every_log_group_keeps_logs_for_the_retention_parameter() -> None:
    # GIVEN every log group of the template, the API's access logs included
    groups = resources_of_type(load_template(), "AWS::Logs::LogGroup")
    assert "ApiAccessLogs" in groups
    # THEN each keeps its logs LogRetentionDays
    assert {name: g["Properties"]["RetentionInDays"] for name, g in groups.items()} == {
        name: {"Ref": "LogRetentionDays"} for name in groups
    }


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    # GIVEN the topic every alarm notifies
    template = load_template()
    resources = template["Resources"]
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert alarms
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())
    # WHEN its encryption key is looked up
    key_ref = resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    key = resources[key_ref["Ref"]]
    # THEN it is a customer-managed key of the template, rotated yearly (not alias/aws/sns, whose policy is fixed)
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    # AND the account administers it (so IAM policies can grant its use) and CloudWatch may encrypt with it
    admin, cloudwatch = statements["AccountAdministersTheKey"], statements["CloudWatchPublishesAlarms"]
    assert admin["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert {"kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"} <= set(admin["Action"])
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(cloudwatch["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    # AND the account may create grants only for AWS resources, and SNS of this account may use it (AlarmEmailDLQ)
    grant, sns = statements["AccountGrantsOnlyToAwsResources"], statements["SnsDeadLettersAlarms"]
    assert "kms:CreateGrant" not in admin["Action"]
    assert (grant["Action"], grant["Condition"]) == (["kms:CreateGrant"], {"Bool": {"kms:GrantIsForAWSResource": True}})
    assert sns["Principal"] == {"Service": "sns.amazonaws.com"}
    # AND no action is a wildcard. A key policy's Resource is always "*", meaning this key (exempt for that reason).
    for sid, statement in statements.items():
        assert statement["Effect"] == "Allow", sid
        assert not [a for a in statement["Action"] if "*" in a], sid
        assert statement["Resource"] == "*", sid


def test_alarms_reach_the_alarm_email_only_when_one_is_given() -> None:
    # GIVEN the AlarmEmail parameter, empty by default
    template = load_template()
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    # WHEN the template's email subscriptions are read
    subscriptions = resources_of_type(template, "AWS::SNS::Subscription")
    # THEN there is one, to the alarm topic by email at AlarmEmail, created only when AlarmEmail is not empty
    (subscription,) = subscriptions.values()
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["AlarmEmailDLQ", "Arn"]}},
    }
    condition = template["Conditions"][subscription["Condition"]]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    # AND an alarm it cannot deliver is kept 14 days in its DLQ, which exists under the same condition
    dlq = template["Resources"]["AlarmEmailDLQ"]
    assert dlq["Condition"] == subscription["Condition"]
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert template["Resources"]["AlarmEmailDLQPolicy"]["Condition"] == subscription["Condition"]


def _checkov_skips(resource: dict[str, Any]) -> set[str]:
    return {s["id"] for s in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}


def test_the_http_api_throttles_every_route() -> None:
    # GIVEN the template, translated as CloudFormation receives it
    template = load_template()
    _, translated = load_and_translate(TEMPLATE_PATH)
    (stage,) = resources_of_type(translated.template, "AWS::ApiGatewayV2::Stage").values()
    # THEN the API's default stage limits every route's burst and rate by parameters, 100 and 50 by default
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
    }
    parameters = template["Parameters"]
    assert (parameters["ApiThrottlingBurstLimit"]["Default"], parameters["ApiThrottlingRateLimit"]["Default"]) == (
        100,
        50,
    )
    # AND POST /orders, whose every request fans out into the pipeline, tighter: 40 at once, 20 a second
    assert stage["Properties"]["RouteSettings"] == {
        "POST /orders": {
            "ThrottlingBurstLimit": {"Ref": "OrderThrottlingBurstLimit"},
            "ThrottlingRateLimit": {"Ref": "OrderThrottlingRateLimit"},
        }
    }
    order = (parameters["OrderThrottlingBurstLimit"]["Default"], parameters["OrderThrottlingRateLimit"]["Default"])
    assert order == (40, 20)
    assert order[0] < parameters["ApiThrottlingBurstLimit"]["Default"]
    routes = {f"{e['Properties']['Method']} {e['Properties']['Path']}" for f in function_specs(template).values()
              for e in f.events.values() if e["Type"] == "HttpApi"}  # fmt: skip
    assert set(stage["Properties"]["RouteSettings"]) <= routes


def test_every_sqs_event_source_bounds_its_consumers_concurrency() -> None:
    # GIVEN every SQS event source of the template
    template = load_template()
    sources = {
        (logical_id, name): event["Properties"]
        for logical_id, spec in function_specs(template).items()
        for name, event in spec.events.items()
        if event["Type"] == "SQS"
    }
    assert len(sources) == len(with_inboxes())
    # THEN each caps its concurrent invocations by InboxMaximumConcurrency, within what Lambda accepts (2..1000)
    for where, props in sources.items():
        assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "InboxMaximumConcurrency"}}, where
    parameter = template["Parameters"]["InboxMaximumConcurrency"]
    assert (parameter["MinValue"], parameter["MaxValue"]) == (2, 1000)
    assert 2 <= parameter["Default"] <= 1000


def test_api_functions_reserve_their_concurrency_and_the_others_say_what_bounds_theirs() -> None:
    # GIVEN the functions behind the HTTP API
    template = load_template()
    resources = template["Resources"]
    api = {
        lid
        for lid, spec in function_specs(template).items()
        if any(e["Type"] == "HttpApi" for e in spec.events.values())
    }
    assert api == {s.functions()["api"] for s in SERVICES if s.api}
    for logical_id in FUNCTIONS:
        function = resources[logical_id]
        if logical_id in api:
            # THEN each reserves ApiReservedConcurrency (10 by default; 0 reserves none) and skips no CKV_AWS_115
            assert function["Properties"]["ReservedConcurrentExecutions"] == {
                "Fn::If": ["HasApiReservedConcurrency", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
            }, logical_id
            assert "CKV_AWS_115" not in _checkov_skips(function), logical_id
        else:
            # AND every other function, bounded by its event source or schedule instead, says so beside it
            assert "ReservedConcurrentExecutions" not in function["Properties"], logical_id
            assert "CKV_AWS_115" in _checkov_skips(function), logical_id
    assert template["Parameters"]["ApiReservedConcurrency"]["Default"] == 10
    assert template["Conditions"]["HasApiReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ApiReservedConcurrency"}, "0"]}]
    }


def _alarms_on(template: dict[str, Any], metric: str) -> dict[str, dict[str, Any]]:
    """Each alarm on `metric` -> its properties, keyed by the queue (SQS) or service (custom metric) it watches."""
    found = {}
    for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props["MetricName"] == metric:
            (dimension,) = props["Dimensions"]
            value = dimension["Value"]
            found[value["Fn::GetAtt"][0] if isinstance(value, dict) else value] = props
    return found


def test_every_dlq_alarms_on_messages_the_reconciler_has_not_judged() -> None:
    # GIVEN every DLQ the reconciler drains, and how often its incremental pass runs
    template = load_template()
    reconciler = function_specs(template)["ReconcilerFunction"]
    (minutes,) = [
        int(e["Properties"]["Schedule"].removeprefix("rate(").split()[0])
        for e in reconciler.events.values()
        if e["Properties"]["Schedule"].endswith("minutes)")
    ]
    dlqs = {s.dlq for s in with_inboxes()} | {"DeliveryDLQ"}
    # WHEN the alarms on the age of each DLQ's oldest message are read
    ages = _alarms_on(template, "ApproximateAgeOfOldestMessage")
    # THEN every DLQ has one, to the alarm topic, past the three passes that leave a parked message out of the metric
    assert set(ages) == dlqs
    for dlq, props in ages.items():
        assert props["Namespace"] == "AWS/SQS", dlq
        assert (props["Statistic"], props["ComparisonOperator"]) == ("Maximum", "GreaterThanThreshold"), dlq
        assert 3 * minutes * 60 < props["Threshold"] <= 3600, dlq
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], dlq
    # AND no alarm is on the depth of a DLQ the reconciler drains, which a parked message (it stays in its DLQ) would
    # hold in ALARM for good: the one depth alarm is on the schedule's DLQ, where nothing is parked
    assert set(_alarms_on(template, "ApproximateNumberOfMessagesVisible")) == {"ReconcilerScheduleDLQ"}


def test_every_newly_parked_poison_message_notifies() -> None:
    # GIVEN the reconciler's metrics namespace and service name
    template = load_template()
    environment = function_specs(template)["ReconcilerFunction"].environment
    # WHEN the alarms on the count of poison messages it parked are read
    parked = _alarms_on(template, "PoisonMessagesParked")
    # THEN one watches the reconciler's count (a message is counted once, when first parked) and notifies the topic
    props = parked[environment["POWERTOOLS_SERVICE_NAME"]]
    assert props["Namespace"] == environment["POWERTOOLS_METRICS_NAMESPACE"]
    assert (props["Statistic"], props["Threshold"], props["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]


# ---------------------------------------------------------------- the reconciler is watched (issue 20)
def _translated_alarm(name: str) -> tuple[Alarm, dict[str, Any]]:
    """The alarm as CloudFormation receives it (after the SAM transform), its threshold parameter resolved."""
    _, translated = load_and_translate(TEMPLATE_PATH)
    template = translated.template
    return Alarm.from_properties(template["Resources"][name]["Properties"], template["Parameters"]), template


def _reconciler_metric_dimension() -> tuple[str, dict[str, str]]:
    environment = function_specs()["ReconcilerFunction"].environment
    return environment["POWERTOOLS_METRICS_NAMESPACE"], {"service": environment["POWERTOOLS_SERVICE_NAME"]}


def _every_5_minutes_rule(template: dict[str, Any]) -> dict[str, Any]:
    rules = resources_of_type(template, "AWS::Events::Rule")
    (rule,) = [r for r in rules.values() if r["Properties"].get("ScheduleExpression") == "rate(5 minutes)"]
    return rule


def test_the_heartbeat_fires_when_no_incremental_pass_succeeded_for_two_schedule_periods() -> None:
    # GIVEN the heartbeat alarm as deployed, and the metrics a completed incremental pass reports
    alarm, template = _translated_alarm("ReconcilerHeartbeatAlarm")
    namespace, dimensions = _reconciler_metric_dimension()
    reported = {m.name: m.value for m in pass_metrics(ReconcilerState(), None, datetime.now(UTC), completed=True)}
    schedule = _every_5_minutes_rule(template)["Properties"]["ScheduleExpression"]
    # THEN it watches the count those passes report, over two of the schedule's periods
    assert (alarm.namespace, alarm.metric, alarm.dimensions) == (namespace, "IncrementalPassesCompleted", dimensions)
    assert reported[alarm.metric] == 1
    assert schedule == "rate(5 minutes)"
    assert (alarm.statistic, alarm.period, alarm.evaluation_periods) == ("Sum", 300, 2)
    # AND it fires when neither period has a pass (passes that raised send nothing) or only full sweeps ran (0)
    assert alarm.state([None, None]) == "ALARM"
    assert alarm.state([0, 0]) == "ALARM"
    # AND one period without a pass (a schedule's jitter) does not fire it, nor do passes that keep completing
    assert alarm.state([1, None]) == "OK"
    assert alarm.state([1, 1]) == "OK"


def test_a_sweep_that_stopped_advancing_fires_past_the_stall_parameter() -> None:
    # GIVEN the sweep-stalled alarm and its threshold parameter
    alarm, template = _translated_alarm("ReconcilerSweepStalledAlarm")
    namespace, dimensions = _reconciler_metric_dimension()
    stall = template["Parameters"]["SweepStallSeconds"]["Default"]
    # THEN it watches the progress age each pass reports, against the parameter
    assert (alarm.namespace, alarm.metric, alarm.dimensions) == (namespace, "SweepProgressAgeSeconds", dimensions)
    assert (alarm.statistic, alarm.comparison, alarm.threshold) == ("Maximum", "GreaterThanThreshold", stall)
    assert stall == 1800  # half an hour: a worker advances its segment at least once per invocation (<= 300 s)
    assert alarm.state([stall + 1]) == "ALARM"
    # AND a sweep that advanced recently, no sweep (0), or no pass at all (the heartbeat's case) does not fire it
    assert alarm.state([60]) == alarm.state([0]) == alarm.state([None]) == "OK"


def test_a_failed_reconciler_invocation_fires_its_errors_alarm() -> None:
    alarm, _ = _translated_alarm("ReconcilerErrorsAlarm")
    assert (alarm.namespace, alarm.metric) == ("AWS/Lambda", "Errors")
    assert alarm.dimensions == {"FunctionName": {"Ref": "ReconcilerFunction"}}
    assert alarm.state([1]) == "ALARM"
    assert alarm.state([0]) == alarm.state([None]) == "OK"


def test_the_5_minute_schedule_retries_for_less_than_a_period_then_dead_letters_to_an_alarmed_queue() -> None:
    # GIVEN the translated template
    alarm, template = _translated_alarm("ReconcilerScheduleDLQAlarm")
    resources = template["Resources"]
    rule = _every_5_minutes_rule(template)["Properties"]
    (target,) = rule["Targets"]
    # THEN the tick is retried for less than one period (a later tick supersedes it), then sent to the DLQ
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] < 300
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ReconcilerScheduleDLQ", "Arn"]}}
    # AND the DLQ is encrypted, keeps messages 14 days, and accepts them from that rule only
    queue = resources["ReconcilerScheduleDLQ"]["Properties"]
    assert (queue["SqsManagedSseEnabled"], queue["MessageRetentionPeriod"]) == (True, 14 * 24 * 3600)
    policy = resources["ReconcilerScheduleDLQPolicy"]["Properties"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    # (the two schedules' rules: this one's and the daily sweep's)
    rule_arns = [arn["Fn::Sub"] for arn in statements["ScheduleRuleToDLQ"]["Condition"]["ArnEquals"]["aws:SourceArn"]]
    assert any(arn.endswith(":rule/" + rule["Name"]["Fn::Sub"]) for arn in rule_arns)
    assert statements["ScheduleRuleToDLQ"]["Principal"] == {"Service": "events.amazonaws.com"}
    denied = statements["ScheduleDLQOnlyFromTheRule"]
    assert (denied["Effect"], denied["Principal"]) == ("Deny", "*")
    assert [arn["Fn::Sub"] for arn in denied["Condition"]["ArnNotEquals"]["aws:SourceArn"]] == rule_arns
    # AND any message in it fires the alarm on its depth
    assert (alarm.namespace, alarm.metric, alarm.statistic) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
    )
    assert alarm.dimensions == {"QueueName": {"Fn::GetAtt": ["ReconcilerScheduleDLQ", "QueueName"]}}
    assert alarm.state([1]) == "ALARM"
    assert alarm.state([0]) == "OK"


def test_the_repairs_alarm_keeps_its_state_when_no_pass_reports() -> None:
    # GIVEN the alarm on repairs, which every pass that ends reports (0 when none was needed)
    alarm, _ = _translated_alarm("ReconcilerRepairsAlarm")
    # THEN silence (no pass ended) neither clears it nor fires it: the heartbeat fires for that
    assert alarm.treat_missing_data == "ignore"
    assert alarm.state([None]) == "UNCHANGED"
    assert alarm.state([2]) == "ALARM"


def test_the_dashboard_graphs_the_heartbeat_and_the_sweeps_progress() -> None:
    # GIVEN the dashboard's body WHEN the reconciler's health metrics are looked for THEN each is graphed
    body = load_template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for metric in (
        "IncrementalPassesCompleted", "LastPassAgeSeconds", "WatermarkAgeSeconds",
        "SweepSegmentsDone", "SweepSegmentsTotal", "SweepProgressAgeSeconds",
    ):  # fmt: skip
        assert f'"{metric}"' in body, metric
    assert "${SweepStallSeconds}" in body  # the stall alarm's threshold, drawn on the graph
