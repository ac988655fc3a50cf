"""End offsets a reader can stop at, on the embedded broker as on Kafka.

The embedded Tansu answers ListOffsets (latest) with the base offset of a partition's last
record batch, not one past its last record; fetch responses carry the true high watermark.
Measured with aiokafka: 250 records acknowledged in batches (5 ms linger), ``end_offsets``
said 178, and still said so later, while a fetch's high watermark said 250. A reader that
stops at ``end_offsets`` misses the last batch of every partition: ``hub audit reconcile``'s
raw reader missed 5-20% of the deliveries on the broker, and a ``hub consume`` without
``--follow`` could stop one batch short. A partition written by one batch looks empty.
Single-record batches (a publisher's ``send_and_wait``) are not affected, which is why it
showed only as a few missing deliveries once the router's producer batched.

Apache Kafka gives the same answer to both, so taking the larger of the two is exact there
and corrects the embedded broker. ``tests/integration/test_end_offsets.py`` reproduces it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from hub.errors import BrokerError

__all__ = ["end_offsets"]

#: how long a fetch may take to bring every partition's high watermark
PROBE_TIMEOUT_S = 10.0
#: how often the probe looks whether the fetch has answered: ``getmany`` returns early only
#: for records, and an answer without any (a partition at its end: the usual case) updates
#: the high watermark silently, so one long ``getmany`` waited out its whole timeout
#: (0.5 s on every non-following read, each ``hub consume`` and each reconcile)
PROBE_POLL_S = 0.05


async def end_offsets(
    consumer: Any, tps: Sequence[Any], *, within: float = PROBE_TIMEOUT_S
) -> dict[Any, int]:
    """One past the last record of each partition, as of now.

    ``consumer`` (an ``AIOKafkaConsumer``) must have ``tps`` assigned. It is moved to each
    partition's listed end and fetched from once, for the high watermark of the answer;
    whatever that fetch returns is dropped, and the positions are left there: the caller
    seeks to where it reads from.

    Raises:
        BrokerError: no fetch answered for some partition within ``within`` seconds.
    """
    if not tps:
        return {}
    listed: dict[Any, int] = await consumer.end_offsets(list(tps))
    since_ms = int(time.time() * 1000) - 1
    for tp in tps:
        consumer.seek(tp, listed[tp])
    deadline = time.monotonic() + within
    waiting = set(tps)
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            names = ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in waiting))
            raise BrokerError(
                f"end offsets: expected a fetch answer for {names} within {within:.0f}s, "
                "got none; is the broker overloaded or gone?"
            )
        await asyncio.wait_for(
            consumer.getmany(*waiting, timeout_ms=int(min(left, PROBE_POLL_S) * 1000)), left + 1
        )
        waiting = {
            tp
            for tp in waiting
            if consumer.highwater(tp) is None or (consumer.last_poll_timestamp(tp) or 0) < since_ms
        }
    return {tp: max(int(listed[tp]), int(consumer.highwater(tp))) for tp in tps}
