"""When to write the time-based cost fields, so that steady state stays cheap.

Spend, tokens, $/1M, the API equivalent and idle GPU-hours change on every scrape; writing them
each time would cost a status write per deployment per resync. They are written when

- nothing was written yet, or a field appears or disappears (e.g. $/1M without traffic), or
- a field changed by RELATIVE_CHANGE (1%) or more of its last written value (from zero: any
  change), or
- WRITE_PERIOD_SECONDS (5 minutes) passed since the last write and anything changed at all.

Nothing changed, nothing written, however long ago. A clock behind the last write (another
leader's clock) counts as the period passed, so a skewed clock delays no write for long.
Fields that are not time-based (hourly cost, replicas) are written on change by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping

WRITE_PERIOD_SECONDS = 300.0
RELATIVE_CHANGE = 0.01

Values = Mapping[str, float | None]


def _changed_by(old: float, new: float) -> float:
    """Relative change; any change from zero is infinite."""
    if new == old:
        return 0.0
    return abs(new - old) / abs(old) if old else float("inf")


def should_write(
    written: Values | None,
    new: Values,
    last_write: float | None,
    now: float,
    period: float = WRITE_PERIOD_SECONDS,
    relative: float = RELATIVE_CHANGE,
) -> bool:
    """True when the time-based fields `new` should be written over `written` (written at
    `last_write`; None: never). Times in seconds, any one clock."""
    if written is None or last_write is None:
        return True
    changes = []
    for key in written.keys() | new.keys():
        old, value = written.get(key), new.get(key)
        if (old is None) != (value is None):
            return True
        if old is not None and value is not None:
            changes.append(_changed_by(old, value))
    if any(change >= relative for change in changes):
        return True
    elapsed = now - last_write
    return any(change > 0 for change in changes) and (elapsed >= period or elapsed < 0)
