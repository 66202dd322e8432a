"""Where localcloud runs no state machine (`execute_state_machines=False`, as under sam local, which has no Step
Functions), an execution a function starts is accepted and stays RUNNING, and nothing waits for it."""

from __future__ import annotations

import pytest

from localcloud.cloud import DeployError, LocalCloud
from tests.localcloud.real import REAL_TEMPLATE


def test_a_sweep_a_pass_starts_stays_running_where_no_state_machine_runs() -> None:
    # GIVEN the real template deployed with its state machines not executed
    with LocalCloud(REAL_TEMPLATE, execute_state_machines=False) as cloud:
        # WHEN an operator asks the reconciler for a full sweep
        invocation = cloud.invoke("ReconcilerFunction", {"mode": "full"})
        # THEN the pass started an execution of the sweep's state machine, which nothing runs
        assert invocation.ok, invocation.error
        arn = invocation.response["sweep_started"]
        described = cloud.describe_execution(arn)
        state_machine = cloud.physical("ReconcilerSweepStateMachine")
        assert (described["stateMachineArn"], described["status"]) == (state_machine, "RUNNING")
        # AND pumping does not wait for it, and running one is refused with the reason
        cloud.run_until_quiet()
        assert cloud.running_executions() == [arn]
        with pytest.raises(DeployError, match="runs no state machine"):
            cloud.sweep()
