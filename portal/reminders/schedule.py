"""When a reminder goes: the merchant's rules on the merchant's clock, outside quiet hours.

A rule is ``due-3`` (3 days before the due date), ``due+0`` (on it), ``due+7`` (7 days
after it) or ``expiry-3`` (3 days before the day the link expires). Each reminder goes
at :data:`SEND_HOUR` (09:00) on the merchant's clock on its day, a time zone's daylight
saving change included; one that would fall in the merchant's quiet hours goes when they
end (08:00 by default) instead. Pure functions: the clock is passed in.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from portal.dates import zone

SEND_HOUR = 9
RULE = re.compile(r"^(due)([+-])(\d{1,2})$|^(expiry)-(\d{1,2})$")
RULE_PATTERN = r"^(due[+-]\d{1,2}|expiry-\d{1,2})$"
MAX_DAYS = 60


def parse_rule(rule: str) -> tuple[str, int]:
    """``due-3`` → ("due", -3); ``expiry-3`` → ("expiry", -3). ValueError otherwise."""
    match = RULE.match(rule)
    if not match:
        raise ValueError(rule)
    if match.group(1):
        days = int(match.group(3)) * (-1 if match.group(2) == "-" else 1)
        anchor = "due"
    else:
        days, anchor = -int(match.group(5)), "expiry"
    if abs(days) > MAX_DAYS or (anchor == "expiry" and days == 0):
        raise ValueError(rule)
    return anchor, days


def in_quiet_hours(local: datetime, start: int, end: int) -> bool:
    """Whether a moment of the merchant's clock falls in [start:00, end:00), which may
    span midnight (21 → 8); equal hours mean no quiet hours."""
    if start == end:
        return False
    hour = local.hour
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def after_quiet_hours(local: datetime, start: int, end: int) -> datetime:
    """``local`` itself outside quiet hours, else the next end of them (the same day or
    the next), on the merchant's clock."""
    if not in_quiet_hours(local, start, end):
        return local
    moment = datetime.combine(local.date(), time(end), tzinfo=local.tzinfo)
    if moment <= local:
        moment = datetime.combine(local.date() + timedelta(days=1), time(end), tzinfo=local.tzinfo)
    return moment


def reminder_moment(
    rule: str,
    due_date: date | None,
    expires_at: datetime,
    zone_name: str | None,
    quiet: tuple[int, int],
) -> datetime | None:
    """The UTC moment of one rule for one request, or None when the rule does not apply
    (a due-date rule without a due date, or a moment at or after the link's expiry)."""
    anchor, days = parse_rule(rule)
    tz = zone(zone_name)
    if anchor == "due" and due_date is None:
        return None
    try:
        if anchor == "due":
            assert due_date is not None
            day = due_date + timedelta(days=days)
        else:
            day = expires_at.astimezone(tz).date() + timedelta(days=days)
        local = after_quiet_hours(datetime.combine(day, time(SEND_HOUR), tzinfo=tz), *quiet)
        moment = local.astimezone(UTC)
    except OverflowError:  # a due date at the end of the calendar (9999-12-31)
        return None
    return None if moment >= expires_at else moment


def next_allowed(now: datetime, zone_name: str | None, quiet: tuple[int, int]) -> datetime:
    """``now``, or the end of the quiet hours it falls in (UTC)."""
    local = now.astimezone(zone(zone_name))
    return after_quiet_hours(local, *quiet).astimezone(UTC)
