r"""The hub's guard around aiokafka's record decoding: no record can stop a consumer.

Why: aiokafka 0.14 decodes each record of a fetched batch while the consumer hands records
out (``PartitionRecords._unpack_records`` in ``aiokafka/consumer/fetcher.py`` iterates
``DefaultRecordBatch``). Its C extension (``aiokafka/record/_crecords/default_records.pyx``,
``_read_msg``) decodes every header *name* with ``bytes.decode("utf-8")`` and lets the
``UnicodeDecodeError`` escape; the pure-Python twin (``default_records.py``,
``_DefaultRecordBatchPy._read_msg``) turns it into ``CorruptRecordException``. Either way the
exception leaves ``Fetcher.fetched_records`` (faust's ``getmany``, the audit sink's and the
SDK's ``getmany``), the consumer dies, restarts from the committed offset, fetches the same
record and dies again. A batch whose CRC check fails (``PartitionRecords`` raises
``CorruptRecordException("Invalid CRC")``) or whose records cannot be parsed does the same.
Kafka itself stores such records (a header name is a Kafka ``STRING`` but brokers do not
check it), and ``hub acl`` lets each party write its own ``hub.in.<party>``: one partner's
bad record would stop every worker, and so sharing for everyone.

What: ``install()`` replaces ``MemoryRecords`` in aiokafka's fetcher module (the name
``Fetcher._proc_fetch_request`` builds each partition's fetched bytes with) by
``GuardedMemoryRecords``. Its batches are aiokafka's own (the C decoder, at full speed);
only when one raises does the guard parse that batch again itself and hand on

- a record whose header names are not UTF-8 whole, its names made safe with
  ``backslashreplace`` (the byte 0xff becomes the four characters ``\xff``), key and value
  untouched;
- for records it cannot parse at all (and every record of a batch whose CRC fails), one
  placeholder per offset with no key and an empty value;

each with a first header ``hub-undecodable`` (``UNDECODABLE``) whose value says what was
wrong. The router refuses it as ``undecodable_record`` (``hub.envelope.wire.decode_headers``):
quarantined, audited, its publisher told, and its offset committed only once those are on the
broker, like any rejected record. A publisher who sets the header itself only has its own
record refused.

The patch is process-wide (aiokafka has no per-consumer hook for record decoding): every
consumer in a process that installed it, the hub's or not, receives marked records where
aiokafka would have raised. Records aiokafka decodes are handed on unchanged. It relies on
aiokafka 0.14's fetcher layout; ``install`` refuses a fetcher module without the hook, and
``tests/unit/test_decode_guard.py`` pins the behaviour.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from aiokafka.consumer import fetcher as _fetcher
from aiokafka.record.default_records import (
    DefaultRecordBatch,
    _DefaultRecordBatchPy,
    _DefaultRecordPy,
)
from aiokafka.record.legacy_records import LegacyRecordBatch
from aiokafka.record.util import decode_varint

from hub.log import get_logger

__all__ = ["UNDECODABLE", "GuardedMemoryRecords", "install"]

_log = get_logger("decode_guard")

#: the header the guard puts first on a record it could not decode whole (value: what failed)
UNDECODABLE = "hub-undecodable"

# Kafka log framing: BaseOffset Int64, Length Int32, then the batch (magic at byte 16)
_LOG_OVERHEAD = 12
_MAGIC_AT = 16
#: the smallest slice aiokafka accepts as a batch (a legacy v0 record's overhead)
_MIN_SLICE = _LOG_OVERHEAD + 14
#: a record batch v2 header (``DefaultRecordBase.HEADER_STRUCT``)
_HEADER = struct.Struct(">qiibIhiqqqhii")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_TIMESTAMP_TYPE_MASK = 0x08
_CONTROL_MASK = 0x20
_TRANSACTIONAL_MASK = 0x10
#: how much of a bad header name the marker quotes (hex), so a huge name stays a short notice
_QUOTE_BYTES = 64


def install() -> None:
    """Guard every aiokafka consumer in this process (idempotent)."""
    current = getattr(_fetcher, "MemoryRecords", None)
    if current is GuardedMemoryRecords:
        return
    if current is None:  # pragma: no cover - a different aiokafka layout
        raise RuntimeError(
            "decode guard: aiokafka.consumer.fetcher has no MemoryRecords to guard "
            "(written for aiokafka 0.14)"
        )
    _fetcher.MemoryRecords = GuardedMemoryRecords  # the hook, see the module docstring


class GuardedMemoryRecords:
    """The record batches of one fetched partition (aiokafka's ``MemoryRecords``), guarded."""

    def __init__(self, bytes_data: bytes) -> None:
        self._buffer = bytes_data
        self._pos = 0
        self._next: memoryview | None = None
        self._cache_next()

    def _cache_next(self) -> None:
        # as aiokafka's ``_MemoryRecordsPy``: a partial last batch ends the set (the fetcher
        # checks the remaining bytes itself)
        buffer, pos = self._buffer, self._pos
        self._next = None
        if len(buffer) - pos < _LOG_OVERHEAD:
            return
        (length,) = struct.unpack_from(">i", buffer, pos + 8)
        end = pos + _LOG_OVERHEAD + length
        if end > len(buffer):
            return
        self._next = memoryview(buffer)[pos:end]
        self._pos = end

    def size_in_bytes(self) -> int:
        """Bytes fetched (the fetcher's "too large to return" check)."""
        return len(self._buffer)

    def has_next(self) -> bool:
        """Whether another whole batch follows."""
        return self._next is not None

    def next_batch(self) -> Any:
        """The next batch: v2 batches guarded, legacy ones (no headers) as aiokafka's."""
        raw = self._next
        if raw is None:
            return None
        if len(raw) < _MIN_SLICE:
            from aiokafka.errors import CorruptRecordException

            raise CorruptRecordException(
                f"Record size is less than the minimum record overhead ({_MIN_SLICE - 12})"
            )
        self._cache_next()
        magic = raw[_MAGIC_AT]
        if magic >= 2:
            return _GuardedBatch(raw)
        return LegacyRecordBatch(raw, magic)


class _GuardedBatch:
    """A v2 record batch: aiokafka's decoder first, the guard's own where it fails."""

    def __init__(self, raw: memoryview) -> None:
        self._raw = raw
        self._base = struct.unpack_from(">q", raw)[0]
        self._broken: str | None = None
        self._batch: Any = None
        try:
            self._batch = DefaultRecordBatch(raw)
            header = _HEADER.unpack_from(raw)
        except Exception as exc:  # a header too short to read: every offset it claims is lost
            self._broken = f"record batch header unreadable ({type(exc).__name__})"
            delta = _LAST_OFFSET_DELTA.unpack_from(raw, 23)[0] if len(raw) >= 27 else 0
            self._last_delta, self._first_ts, self._attributes = max(delta, 0), -1, 0
            self._producer_id = -1
        else:
            self._attributes, self._last_delta = header[5], header[6]
            self._first_ts, self._producer_id = header[7], header[9]

    # -- what ``PartitionRecords`` reads -------------------------------------------------------

    @property
    def base_offset(self) -> int:
        """Offset of the first record."""
        return int(self._base)

    @property
    def next_offset(self) -> int:
        """Offset after the last record (the fetcher moves its position here)."""
        return int(self._base + self._last_delta + 1)

    @property
    def producer_id(self) -> int:
        """The idempotent producer's id (-1: none)."""
        return int(self._producer_id)

    @property
    def is_control_batch(self) -> bool:
        """Transaction markers (skipped by the fetcher)."""
        return self._broken is None and bool(self._attributes & _CONTROL_MASK)

    @property
    def is_transactional(self) -> bool:
        """Written in a transaction."""
        return bool(self._attributes & _TRANSACTIONAL_MASK)

    def validate_crc(self) -> bool:
        """True: a batch that fails its CRC is handed on as placeholders, not raised."""
        if self._broken is None and not self._batch.validate_crc():
            self._broken = (
                f"record batch at offsets {self.base_offset}-{self.next_offset - 1} "
                "failed its CRC check"
            )
        return True

    def __next__(self) -> Any:
        """One record (only control batches are read this way, for their markers)."""
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        """The batch's records; a record aiokafka cannot decode arrives marked."""
        if self._broken is not None:
            yield from self._placeholders(self.base_offset, self._broken)
            return
        records = iter(self._batch)
        after = self.base_offset
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as exc:  # UnicodeDecodeError (C), CorruptRecordException (Py)
                error = type(exc).__name__
                break
            after = record.offset + 1
            yield record
        if after >= self.next_offset:
            return  # every record was handed on; aiokafka objected only to trailing bytes
        _log.warning(
            "record_undecodable",
            base_offset=self.base_offset,
            at_or_after=after,
            error=error,
        )
        yield from self._salvage(after)

    # -- the guard's own reading ----------------------------------------------------------------

    def _salvage(self, after: int) -> Iterator[Any]:
        """Records from offset ``after`` on, parsed leniently; placeholders where that fails."""
        try:
            batch = _DefaultRecordBatchPy(self._raw)
            batch._maybe_uncompress()  # aiokafka's own decompression
            buffer, pos, count = batch._buffer, batch._pos, batch._num_records
        except Exception as exc:
            yield from self._placeholders(after, f"records unreadable ({type(exc).__name__})")
            return
        offset = after
        for _ in range(count):
            try:
                record, pos = self._read(buffer, pos)
            except Exception as exc:  # the structure itself: the rest cannot be located
                detail = f"record structure unreadable at offset {offset} ({type(exc).__name__})"
                yield from self._placeholders(offset, detail)
                return
            if record.offset < after:
                continue  # handed on already by aiokafka's decoder
            offset = record.offset + 1
            yield record

    def _read(self, buffer: bytearray, pos: int) -> tuple[Any, int]:
        """One record as ``_DefaultRecordPy`` (aiokafka's record layout, header names lenient)."""
        length, pos = decode_varint(buffer, pos)
        start = pos
        _attrs, pos = decode_varint(buffer, pos)
        ts_delta, pos = decode_varint(buffer, pos)
        offset_delta, pos = decode_varint(buffer, pos)
        key, pos = _nullable_bytes(buffer, pos)
        value, pos = _nullable_bytes(buffer, pos)
        count, pos = decode_varint(buffer, pos)
        if count < 0:
            raise ValueError(f"negative header count {count}")
        headers: list[tuple[str, bytes | None]] = []
        bad: list[str] = []
        for index in range(count):
            name_len, pos = decode_varint(buffer, pos)
            if name_len < 0 or pos + name_len > len(buffer):
                raise ValueError(f"header name length {name_len} out of range")
            raw_name = bytes(buffer[pos : pos + name_len])
            pos += name_len
            h_value, pos = _nullable_bytes(buffer, pos)
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                name = raw_name.decode("utf-8", "backslashreplace")
                bad.append(f"header {index} name is not UTF-8 (0x{raw_name[:_QUOTE_BYTES].hex()})")
            headers.append((name, h_value))
        if pos - start != length:
            raise ValueError(f"record length {length}, read {pos - start}")
        if bad:
            headers.insert(0, (UNDECODABLE, "; ".join(bad).encode()))
        timestamp = self._first_ts + ts_delta  # LogAppendTime batches: the producer's time
        record = _DefaultRecordPy(
            self._base + offset_delta, timestamp, self._ts_type, key, value, headers
        )
        return record, pos

    def _placeholders(self, start: int, detail: str) -> Iterator[Any]:
        """One marked, empty record per offset from ``start`` to the batch's last."""
        _log.warning("records_unreadable", first=start, last=self.next_offset - 1, detail=detail)
        marker = [(UNDECODABLE, detail.encode())]
        for offset in range(start, self.next_offset):
            yield _DefaultRecordPy(offset, self._first_ts, self._ts_type, None, b"", list(marker))

    @property
    def _ts_type(self) -> int:
        return 1 if self._attributes & _TIMESTAMP_TYPE_MASK else 0


def _nullable_bytes(buffer: bytearray, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(buffer, pos)
    if size < 0:
        return None, pos
    if pos + size > len(buffer):
        raise ValueError(f"field of {size} bytes runs past the batch")
    return bytes(buffer[pos : pos + size]), pos + size
