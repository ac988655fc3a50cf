"""Events of one case stay on one partition (issue 22): what lets one worker own a case.

A worker of the ``hub-router`` group owns partition i of every ``hub.in.*`` topic at once
(faust assigns the router's inbound topics, one subscription with one partition count, as a
co-partitioned group), so every event of a case must reach partition i whichever party
publishes it. That holds when each event is keyed by its case (ban, intel) reference and the
partition is a function of the key alone: the SDK's producer hashes the key (murmur2, as
Kafka's Java clients do) over the topic's partitions, and every hub topic has the same count
(``HUB_PARTITIONS``).
"""

from __future__ import annotations

from collections import defaultdict

from aiokafka.partitioner import DefaultPartitioner

from hub.scenarios.north_worcs import Scenario


def reference(data: dict[str, object]) -> str:
    for field in ("case_ref", "ban_ref", "intel_ref"):
        if data.get(field):
            return str(data[field])
    raise AssertionError(f"no reference in {sorted(data)}")


def test_every_event_of_a_case_has_the_case_as_its_key() -> None:
    keys: dict[str, set[str]] = defaultdict(set)
    publishers: dict[str, set[str]] = defaultdict(set)
    for event in Scenario(seed=22).events(600):
        keys[reference(event.data)].add(str(event.key))
        publishers[reference(event.data)].add(event.publisher)
    assert all(found == {ref} for ref, found in keys.items())
    # cases whose events come from several parties, so several topics: the point of the test
    assert any(len(parties) > 1 for parties in publishers.values())


def test_one_key_is_one_partition_index_on_every_topic() -> None:
    partition = DefaultPartitioner()
    for count in (3, 12, 24):
        indices = list(range(count))
        for ref in ("MARAC-2025-0042", "PW-REDDITCH-0007", "INT-9"):
            chosen = {partition(ref.encode(), indices, indices) for _ in range(3)}
            assert len(chosen) == 1  # a function of the key and the count alone
