"""CSV renderings of the IG reports, shared by ``hub audit ... --csv`` and the web console.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return
as a formula (OWASP CSV injection); officers' free-text reasons end up in these files, so
such cells get a leading quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hub.audit.reports import Chronology, SubjectAccessReport

__all__ = ["chronology_csv", "sar_csv", "to_csv"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_SAR_HEADER = (
    "status",
    "record_id",
    "time",
    "event_id",
    "event_type",
    "publisher",
    "recipient",
    "rule",
    "lawful_basis",
    "fields",
    "exemption_reason",
)
_CHRONOLOGY_HEADER = (
    "event_time",
    "event_id",
    "event_type",
    "publisher",
    "recipient",
    "outcome",
    "time",
    "rule",
    "lawful_basis",
    "fields",
    "acknowledged_at",
    "reason",
)


def to_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A header row and rows as CSV text (newline line ends, formula cells quoted)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def sar_csv(report: SubjectAccessReport) -> str:
    """A subject access report: one row per disclosure, then one per withheld delivery."""
    rows: list[Sequence[Any]] = [
        (
            "disclosed",
            d.record_id,
            d.time,
            d.event_id,
            d.event_type,
            d.publisher,
            d.recipient,
            d.rule,
            d.lawful_basis,
            ",".join(d.fields),
            "",
        )
        for d in report.disclosures
    ]
    rows += [
        ("withheld", w.delivery_record_id, *[""] * 8, "; ".join(e.reason for e in w.exemptions))
        for w in report.withheld_from_response
    ]
    return to_csv(_SAR_HEADER, rows)


def chronology_csv(report: Chronology) -> str:
    """A DHR chronology: one row per party that received or was not sent each event."""
    rows: list[Sequence[Any]] = []
    for e in report.entries:
        head = (e.event_time, e.event_id, e.event_type, e.publisher)
        rows += [
            (
                *head,
                r.recipient,
                "received",
                r.time,
                r.rule,
                r.lawful_basis,
                ",".join(r.fields),
                r.acknowledged_at,
                "",
            )
            for r in e.received
        ]
        rows += [
            (*head, w.recipient, "withheld", w.time, w.rule, "", "", "", w.reason)
            for w in e.withheld
        ]
    return to_csv(_CHRONOLOGY_HEADER, rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
