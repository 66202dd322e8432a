"""Schedule rules (`rate(...)`/`cron(...)`), fired on localcloud's clock with EventBridge's "Scheduled Event".

moto stores scheduled rules but never fires them. Here each rule keeps its next due time on the clock; `due(now)`
yields the firings that have come due (every one of them, in time order, if the clock jumped several periods).
A rate schedule first fires one period after the rule is created; a cron schedule at its next matching minute (UTC).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from localcloud.clock import iso

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {
    m: i
    for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}  # AWS: 1 = Sunday


class ScheduleExpressionError(ValueError):
    """A schedule expression localcloud cannot evaluate."""


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int] | None:
    """Values of one cron field; None for `?` (no constraint)."""
    if text == "?":
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if any(c in part for c in "LW#"):
            raise ScheduleExpressionError(f"cron field {text!r}: L, W and # are not supported by localcloud")
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step != 1 else start
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: dict[str, int] | None) -> int:
    return names[text.upper()] if names and text.upper() in names else int(text)


@dataclass(frozen=True)
class Cron:
    minutes: set[int]
    hours: set[int]
    days_of_month: set[int] | None
    months: set[int]
    days_of_week: set[int] | None
    years: set[int] | None

    @classmethod
    def parse(cls, body: str) -> Cron:
        parts = body.split()
        if len(parts) != 6:
            raise ScheduleExpressionError(f"cron({body}) needs 6 fields")
        minutes, hours, dom, month, dow, year = parts
        return cls(
            minutes=_field(minutes, 0, 59) or set(range(60)),
            hours=_field(hours, 0, 23) or set(range(24)),
            days_of_month=_field(dom, 1, 31),
            months=_field(month, 1, 12, _MONTHS) or set(range(1, 13)),
            days_of_week=_field(dow, 1, 7, _DAYS),
            years=None if year == "*" else _field(year, 1970, 2199),
        )

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months or (self.years is not None and day.year not in self.years):
            return False
        if self.days_of_month is not None and day.day not in self.days_of_month:
            return False
        aws_weekday = (day.isoweekday() % 7) + 1  # Monday=1..Sunday=7 -> Sunday=1..Saturday=7
        return self.days_of_week is None or aws_weekday in self.days_of_week

    def next_after(self, after: datetime) -> datetime:
        start = (after + timedelta(minutes=1)).replace(second=0, microsecond=0)
        day = start.replace(hour=0, minute=0)
        for _ in range(366 * 5):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        moment = day.replace(hour=hour, minute=minute)
                        if moment >= start:
                            return moment
            day += timedelta(days=1)
        raise ScheduleExpressionError("cron expression never fires in the next five years")


@dataclass
class ScheduleTarget:
    function: str  # logical id of the function, or of the state machine when `state_machine`
    target_id: str
    input: str | None = None
    state_machine: bool = False  # a Step Functions target: the rule starts an execution with the input


@dataclass
class Schedule:
    rule: str  # logical id
    arn: str
    expression: str
    targets: list[ScheduleTarget]
    created: float
    enabled: bool = True
    next_due: float = 0.0
    fired: int = 0
    _cron: Cron | None = field(default=None, repr=False)
    _period: int = 0

    def __post_init__(self) -> None:
        rate = _RATE.match(self.expression.strip())
        cron = _CRON.match(self.expression.strip())
        if rate:
            self._period = int(rate.group(1)) * _UNIT_SECONDS[rate.group(2).rstrip("s")]
            self.next_due = self.created + self._period
        elif cron:
            self._cron = Cron.parse(cron.group(1))
            self.next_due = self._cron.next_after(datetime.fromtimestamp(self.created, UTC)).timestamp()
        else:
            raise ScheduleExpressionError(f"unsupported schedule expression {self.expression!r}")

    def due(self, now: float) -> Iterator[float]:
        """Every firing time up to `now`, advancing the schedule past each."""
        while self.enabled and self.next_due <= now:
            moment = self.next_due
            if self._cron is not None:
                self.next_due = self._cron.next_after(datetime.fromtimestamp(moment, UTC)).timestamp()
            else:
                self.next_due = moment + self._period
            self.fired += 1
            yield moment

    def event(self, moment: float, target: ScheduleTarget, account: str, region: str) -> Any:
        """What the target receives: its constant Input, or EventBridge's "Scheduled Event"."""
        if target.input is not None:
            return json.loads(target.input)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": iso(moment),
            "region": region,
            "resources": [self.arn],
            "detail": {},
        }
