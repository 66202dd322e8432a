"""The fault injector of one LocalCloud: its plan, its SDK hooks, its delivery faults and its drift, together."""

from __future__ import annotations

from localcloud.faults.delivery import DeliveryFaults
from localcloud.faults.drift import DriftFaults
from localcloud.faults.sdk import SdkFaults


class FaultInjector(SdkFaults, DeliveryFaults, DriftFaults):
    """Decides and counts the faults of one LocalCloud; inactive until started (LocalCloud starts it)."""
