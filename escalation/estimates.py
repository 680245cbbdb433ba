"""Wait estimates from measured take times. Pure: no database, no I/O.

The model: while a visitor waits, the queue moves one place each time an agent takes a chat.
Takes are treated as a Poisson process whose rate is measured over the recent window, so the
wait of the visitor at place k is the time until k more takes. The range shown is a predictive
interval for that wait: it covers both the randomness of the next k takes and the uncertainty of
a rate measured from only n takes (fewer takes, wider range).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist

# Quantiles of the predicted wait shown as the range. The high end is deliberately far out:
# a promise that runs out erodes trust more than a wait that ends early. The
# low end is far down too, because the measured rate runs slow (see estimate_wait), so real waits
# end early more often than the model says; tuned by tests/escalation/test_estimates.py.
LOW_QUANTILE = 0.10
HIGH_QUANTILE = 0.85

_MINUTE = 60
_HOUR = 3600
# From this high end on the text speaks in hours, where "about 50 to 80 minutes" reads worse.
_HOURS_FROM_SECONDS = 75 * _MINUTE
# Above ten minutes, whole minutes are false precision; speak in steps of five.
_FIVE_MINUTE_STEPS_FROM = 10


@dataclass(frozen=True)
class WaitRange:
    low_seconds: int
    high_seconds: int

    def as_text(self) -> str:
        """The range as a visitor reads it, e.g. "about 2\u20134 minutes", "about 1 hour"."""
        low, high = self.low_seconds, max(self.low_seconds, self.high_seconds)
        if high < _MINUTE:
            return "less than a minute"
        if high >= _HOURS_FROM_SECONDS:
            unit, step = "hour", 1
            lo, hi = _round_half_up(low / _HOUR, step), _round_half_up(high / _HOUR, step)
        else:
            unit = "minute"
            step = 5 if high / _MINUTE >= _FIVE_MINUTE_STEPS_FROM else 1
            lo, hi = _round_half_up(low / _MINUTE, step), _round_half_up(high / _MINUTE, step)
        # A low end that rounds to nothing would read "about 0-3 minutes"; the smallest unit is 1.
        lo, hi = max(lo, 1), max(hi, 1)
        if lo >= hi:
            return f"about {hi} {unit}{'' if hi == 1 else 's'}"
        return f"about {lo}\u2013{hi} {unit}s"


def estimate_wait(
    *,
    position: int,
    take_times: Sequence[datetime],
    now: datetime,
    window_seconds: int = 3600,
    min_samples: int = 3,
    floor_seconds: int = 30,
    default: WaitRange | None = None,
) -> WaitRange | None:
    """The likely wait of the visitor at `position` (1 = next), from recent take times.

    `take_times` are aware datetimes at which chats of the queue went to an agent; only those in
    the `window_seconds` before `now` count, and their order does not matter. With fewer than
    `min_samples` of them the data is too thin and `default` is returned (None: say nothing
    numeric). Both ends are at least `floor_seconds`. O(len(take_times)).
    """
    if position < 1:
        raise ValueError("position starts at 1")
    if window_seconds <= 0:
        raise ValueError("window_seconds must be positive")
    if min_samples < 1:
        raise ValueError("min_samples must be at least 1")

    count = 0
    oldest_age = 0.0
    for taken_at in take_times:
        # Clamped at 0: a take stamped a moment after `now` (clocks of two workers) still counts.
        age = max((now - taken_at).total_seconds(), 0.0)
        if age <= window_seconds:
            count += 1
            oldest_age = max(oldest_age, age)
    if count < min_samples:
        return default

    # Measured from the oldest take to now, not over the whole window: a queue that only started
    # being served ten minutes ago has a ten-minute history, and the idle time since the last take
    # is included, so a stalled queue slows its own estimate. Looking back from now, that span is
    # `count` whole gaps between takes, so span / count estimates the mean gap (without bias as
    # long as the window is not full).
    # It runs slow for a visitor who waits: it also counts quiet spells when agents were free and
    # took chats as they came, while a queue that is backed up moves at full speed. That errs long.
    # 1 s keeps a burst of takes stamped at the same instant from dividing by zero.
    mean_gap = max(oldest_age, 1.0) / count
    expected = position * mean_gap

    # Wait ~ Gamma(position, rate), span ~ Gamma(count, rate); their scaled ratio
    # wait / expected is F(2 * position, 2 * count) distributed, whatever the rate is.
    low = expected * _f_quantile(LOW_QUANTILE, 2 * position, 2 * count)
    high = expected * _f_quantile(HIGH_QUANTILE, 2 * position, 2 * count)
    low_seconds = max(floor_seconds, math.floor(low))
    high_seconds = max(low_seconds, floor_seconds, math.ceil(high))
    return WaitRange(low_seconds=low_seconds, high_seconds=high_seconds)


def _f_quantile(p: float, d1: int, d2: int) -> float:
    """Quantile p of the F(d1, d2) distribution, by Paulson's cube-root normal approximation.

    Closed form (O(1), no SciPy); within about 2 % of the exact quantile for d1 >= 4, d2 >= 6
    and the quantiles used here. For d1 = 2 (position 1, the commonest case and the one where
    the approximation is weakest, 7 % off) the exact closed form is used instead.
    """
    if d1 == 2:
        # P(F > x) = (1 + 2x / d2) ** (-d2 / 2) for F(2, d2), solved for x.
        return d2 / 2 * (math.pow(1 - p, -2 / d2) - 1)
    z = NormalDist().inv_cdf(p)
    a, q = 1 - 2 / (9 * d2), 2 / (9 * d2)
    b, r = 1 - 2 / (9 * d1), 2 / (9 * d1)
    # Solving (a u - b)^2 = z^2 (r + q u^2) for u = F^(1/3), on the side of the sign of z. For
    # d2 >= 2 and |z| < 2 both the denominator and the discriminant are positive.
    root = math.sqrt(max(a * a * r + b * b * q - z * z * r * q, 0.0))
    u = (a * b + z * root) / max(a * a - z * z * q, 1e-9)
    return math.pow(max(u, 0.0), 3)


def _round_half_up(value: float, step: int) -> int:
    """`value` to the nearest multiple of `step`; halves go up (round() would go to even)."""
    return math.floor(value / step + 0.5) * step
