"""How long a consumer's fetch may wait at the broker: each hop's latency on Tansu.

A Kafka fetch names a longest wait (``fetch.max.wait.ms``). Apache Kafka answers as soon as
there is data; the embedded Tansu does not: new records wait for its answer to a fetch
already under way, which takes up to the whole wait. Measured here with aiokafka, one
record every 137 ms: median delivery 379 ms with faust's hard-coded 1,500 ms wait, 132 ms
with aiokafka's default 500 ms, 10 ms with 50 ms. Every hop of the hub (publisher
to router, router to recipient, router to audit sink) paid it, so a quiet hub took more than
half a second to deliver. A 50 ms wait costs an idle consumer at most 20 empty fetches a
second, on either broker.
"""

from __future__ import annotations

__all__ = ["FETCH_WAIT_MS"]

#: ``fetch_max_wait_ms`` for every consumer the hub and its SDK open
FETCH_WAIT_MS = 50
