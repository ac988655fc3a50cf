"""The decode guard: records aiokafka cannot decode are handed on marked, not raised."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from hub.broker import decode_guard
from hub.broker.decode_guard import UNDECODABLE, GuardedMemoryRecords
from hub.envelope import wire
from hub.models import QuarantineReason


class RawName(str):
    """A header name whose UTF-8 encoding is the given raw bytes (to build what partners can)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def batch(records: list[tuple[bytes, list[tuple[str, bytes]]]], *, base: int = 0) -> bytes:
    """One v2 record batch (aiokafka's pure-Python builder, which takes ``RawName``)."""
    builder = _DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, (value, headers) in enumerate(records):
        builder.append(
            delta, timestamp=1_700_000_000_000, key=b"case", value=value, headers=headers
        )
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")  # the broker assigns the base offset
    return bytes(data)


def unpack(data: bytes) -> list[Any]:
    """What aiokafka's fetcher hands a consumer for these bytes."""
    records = fetcher.MemoryRecords(data)
    unpacked = fetcher.PartitionRecords(
        TopicPartition("hub.in.x", 0), records, None, 0, None, None, True, fetcher.READ_UNCOMMITTED
    )
    return list(unpacked)


BAD = [(b"bad", [(RawName(b"\xff\xfeid"), b"1"), ("ce_id", b"2")])]
GOOD = [(b"one", [("ce_id", b"a")]), *BAD, (b"three", [("ce_id", b"c")])]


def test_aiokafka_alone_raises_on_a_header_name_not_utf8() -> None:
    with pytest.raises(UnicodeDecodeError):
        list(MemoryRecords(batch(GOOD)).next_batch())


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetcher, "MemoryRecords", fetcher.MemoryRecords)  # restored after
    decode_guard.install()
    decode_guard.install()  # idempotent
    assert fetcher.MemoryRecords is GuardedMemoryRecords


@pytest.mark.usefixtures("guarded")
def test_a_header_name_not_utf8_is_handed_on_marked_with_the_rest_of_the_batch() -> None:
    records = unpack(batch(GOOD, base=40))
    assert [r.offset for r in records] == [40, 41, 42]
    assert [r.value for r in records] == [b"one", b"bad", b"three"]
    assert list(records[0].headers) == [("ce_id", b"a")]
    assert list(records[2].headers) == [("ce_id", b"c")]
    name, detail = records[1].headers[0]
    assert name == UNDECODABLE
    assert b"0xfffe6964" in detail
    assert list(records[1].headers[1:]) == [("\\xff\\xfeid", b"1"), ("ce_id", b"2")]
    assert records[1].key == b"case"
    for _name, _value in records[1].headers:
        _name.encode()  # safe to produce again (the quarantine copy)


@pytest.mark.usefixtures("guarded")
def test_decode_headers_refuses_the_marker_as_undecodable_record() -> None:
    record = unpack(batch(BAD))[0]
    with pytest.raises(wire.HeaderError) as caught:
        wire.decode_headers(record.headers)
    assert caught.value.reason == QuarantineReason.UNDECODABLE_RECORD.value
    assert "not UTF-8" in str(caught.value)


@pytest.mark.usefixtures("guarded")
def test_a_batch_failing_its_crc_becomes_one_marked_placeholder_per_offset() -> None:
    data = bytearray(batch(GOOD, base=7))
    data[-1] ^= 0xFF  # flip a bit in the last record: the CRC no longer matches
    records = unpack(bytes(data))
    assert [r.offset for r in records] == [7, 8, 9]
    for record in records:
        assert record.value == b""
        assert record.headers[0][0] == UNDECODABLE
        assert b"CRC" in record.headers[0][1]


@pytest.mark.usefixtures("guarded")
def test_a_record_structure_unreadable_marks_it_and_the_rest_of_its_batch() -> None:
    good = batch([(b"one", [("ce_id", b"a")])], base=3)
    data = bytearray(batch(GOOD, base=3))
    data[len(good) + 1 :] = b"\x7f" * (len(data) - len(good) - 1)  # garbage after record 1
    data[21 - 4 : 21] = b"\x00\x00\x00\x00"  # CRC not checked: consumer with check_crcs off
    records = fetcher.PartitionRecords(
        TopicPartition("hub.in.x", 0),
        fetcher.MemoryRecords(bytes(data)),
        None,
        0,
        None,
        None,
        False,
        fetcher.READ_UNCOMMITTED,
    )
    out = list(records)
    assert [r.offset for r in out] == [3, 4, 5]
    assert out[0].value == b"one"
    assert all(r.headers[0][0] == UNDECODABLE for r in out[1:])


@pytest.mark.usefixtures("guarded")
def test_compressed_batches_are_salvaged_too() -> None:
    builder = _DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=1,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, (value, headers) in enumerate(GOOD):
        builder.append(delta, timestamp=None, key=None, value=value, headers=headers)
    records = unpack(bytes(builder.build()))
    assert [r.value for r in records] == [b"one", b"bad", b"three"]
    assert records[1].headers[0][0] == UNDECODABLE
    assert gzip  # the codec is the stdlib's


@pytest.mark.usefixtures("guarded")
def test_good_batches_pass_unchanged() -> None:
    records = unpack(batch([(b"x", [("ce_id", b"1")]), (b"y", [])]) + batch([(b"z", [])], base=2))
    assert [(r.offset, r.value, list(r.headers)) for r in records] == [
        (0, b"x", [("ce_id", b"1")]),
        (1, b"y", []),
        (2, b"z", []),
    ]
