"""The sweep's counters when their products are written while it runs: re-tallied until they hold still.

The compare phase tallies every RESERVED reservation; a product written after the sweep started (less the overlap)
may have had a reservation change while the tally read, so its tally is no ledger. `confirm` reads those products'
versions, a Map re-tallies the reservations for them, and a product whose version did not move through a whole
re-tally is recounted; one written during every re-tally is left to a counters sweep (the next incremental pass
starts it: tests/localcloud/test_sweep.py), and counted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from converge.events import ReservedRecounted
from reconciler.sweeper import MAX_RETALLIES
from tests.integration.test_corrections import bus, counter_off_its_reservation, product_item, reservation_item
from tests.support.stack import FunctionRunner, Stack

SWEEP = "ReconcilerSweepFunction"


def just_written(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "updated_at": datetime.now(UTC).isoformat()}


def drifted_counter(stack: Stack) -> dict[str, Any]:
    """p1 with reserved 5 at version 3, written just now, while its only RESERVED reservation holds 2."""
    real = just_written(product_item("p1", 3, on_hand=10, reserved=5))
    counter_off_its_reservation(stack, real)
    return real


def run_segments(functions: FunctionRunner, tasks: list[dict[str, Any]]) -> None:
    for task in tasks:
        while not functions.invoke(SWEEP, task)["done"]:
            pass


def counters_done(functions: FunctionRunner) -> dict[str, Any]:
    """A sweep started and run up to its confirmation: every compare and counter segment done."""
    started = functions.invoke(SWEEP, {"action": "start", "request": {"reason": "test"}})
    run_segments(functions, started["segments"])
    run_segments(functions, started["counters"])
    return {"action": "confirm", "sweep_id": started["sweep_id"]}


def recounts(stack: Stack) -> list[tuple[str, int, int]]:
    return [
        (e.data.product_id, e.data.reserved, e.data.observed_version)
        for e in bus(stack)
        if isinstance(e.data, ReservedRecounted)
    ]


def test_a_counter_written_while_the_sweep_ran_is_recounted_after_one_retally(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN p1's reserved drifted (5 where its reservation holds 2), and p1 written just now
    drifted_counter(stack)
    # WHEN the sweep runs through its state machine's tasks
    report = functions.sweep()
    # THEN the tally could not vouch for p1 (written after the sweep began), a re-tally did: reserved set to 2
    assert recounts(stack) == [("p1", 2, 3)]
    assert report["recounts"] == 1
    assert report["corrections_unconfirmed"] == 0
    # AND the re-tally was one Map over the reservations' segments, all done
    assert report["status"] == "SUCCEEDED"


def test_a_counter_written_during_every_retally_is_left_to_a_counters_sweep(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN p1's reserved drifted, written just now
    real = drifted_counter(stack)
    confirm = counters_done(functions)
    rounds, waits = 0, []
    # WHEN p1 is written again while each re-tally reads (a product busy through the whole sweep)
    while (confirmed := functions.invoke(SWEEP, confirm))["more"]:
        rounds += 1
        waits.append(confirmed["wait_seconds"])
        stack.put_item("InventoryTable", just_written({**real, "version": real["version"] + rounds}))
        run_segments(functions, confirmed["retally"])
    report = functions.invoke(SWEEP, {"action": "finish", "sweep_id": confirm["sweep_id"]})
    # THEN every round was spent, each after a wait twice the last (the template's 30 s first), nothing was
    #      recounted on a tally that is no ledger, and p1 is counted as left, on the report and on the header
    assert rounds == MAX_RETALLIES
    assert waits == [30 * 2**n for n in range(MAX_RETALLIES)]
    assert recounts(stack) == []
    assert report["recounts"] == 0
    assert report["corrections_unconfirmed"] == 1
    assert report["status"] == "SUCCEEDED"
    assert (stack.get_item("ReconcilerStateTable", "SWEEP", "CURRENT") or {})["counters_left"] == 1


def test_a_counter_quiet_since_before_the_sweep_is_recounted_without_a_retally(
    stack: Stack, functions: FunctionRunner
) -> None:
    # GIVEN p1's reserved drifted, last written long before the sweep
    stack.put_item("InventoryTable", product_item("p1", 3, on_hand=10, reserved=5))
    stack.put_item("InventoryTable", reservation_item("o-1", "RESERVED", 1, [("p1", 2)]))
    confirm = counters_done(functions)
    # WHEN the counters are confirmed
    confirmed = functions.invoke(SWEEP, confirm)
    # THEN no re-tally was needed: the counters' phase recounted p1 on the first tally
    assert confirmed == {"more": False, "retally": [], "wait_seconds": 0}
    assert recounts(stack) == [("p1", 2, 3)]
