"""The submission token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from service.errors import RateLimited
from service.ratelimit import TokenBucket


def test_burst_then_refill() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_minute=30, burst=2, clock=lambda: now[0])
    bucket.take("u")
    bucket.take("u")
    with pytest.raises(RateLimited) as info:
        bucket.take("u")
    assert info.value.retry_after == pytest.approx(2.0)  # 30/min = one token every 2 s
    bucket.take("other")  # buckets are per user
    now[0] = 2.0
    bucket.take("u")
