"""CloudWatch alarms as tests read them: the definition (from the template or as deployed) and its evaluation.

moto stores alarms but never evaluates them, and localcloud does not either; this is the part of CloudWatch's
evaluation the tests need (docs: "Evaluating an alarm", "Configuring how CloudWatch alarms treat missing data"):
the last EvaluationPeriods periods, each a statistic's value or None when no datapoint exists, and ALARM when at
least DatapointsToAlarm of them breach.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@dataclass(frozen=True)
class Alarm:
    namespace: str
    metric: str
    dimensions: dict[str, Any]  # name -> value (an intrinsic in the template, a string once deployed)
    statistic: str
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing_data: str

    @classmethod
    def from_properties(cls, props: Mapping[str, Any], parameters: Mapping[str, Any] | None = None) -> Alarm:
        """From an AWS::CloudWatch::Alarm's properties or a DescribeAlarms entry (the same names); a threshold that
        is a `Ref` to a parameter takes the parameter's default."""
        threshold = props["Threshold"]
        if isinstance(threshold, dict):
            threshold = (parameters or {})[threshold["Ref"]]["Default"]
        evaluation_periods = int(props["EvaluationPeriods"])
        return cls(
            namespace=props["Namespace"],
            metric=props["MetricName"],
            dimensions={d["Name"]: d["Value"] for d in props.get("Dimensions", [])},
            statistic=props["Statistic"],
            period=int(props["Period"]),
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=int(props.get("DatapointsToAlarm", evaluation_periods)),
            threshold=float(threshold),
            comparison=props["ComparisonOperator"],
            treat_missing_data=props.get("TreatMissingData", "missing"),
        )

    def breaches(self, value: float) -> bool:
        return COMPARISONS[self.comparison](value, self.threshold)

    def state(self, periods: Sequence[float | None]) -> str:
        """ALARM, OK, INSUFFICIENT_DATA (missing data treated as missing) or UNCHANGED (ignored) after `periods`
        (oldest first; only the last EvaluationPeriods count)."""
        breaching = known = 0
        for value in list(periods)[-self.evaluation_periods :]:
            if value is None:
                if self.treat_missing_data in ("breaching", "notBreaching"):
                    known += 1
                    breaching += self.treat_missing_data == "breaching"
                continue
            known += 1
            breaching += self.breaches(value)
        if breaching >= self.datapoints_to_alarm:
            return "ALARM"
        if known == 0:
            return "UNCHANGED" if self.treat_missing_data == "ignore" else "INSUFFICIENT_DATA"
        return "OK"


def statistic(statistic_name: str, values: Sequence[float]) -> float | None:
    """One period's statistic of the datapoints in it; None when the period has none (missing data)."""
    if not values:
        return None
    if statistic_name == "Sum":
        return float(sum(values))
    return float({"Maximum": max, "Minimum": min}[statistic_name](values))
