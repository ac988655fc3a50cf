"""The console's integrity page in one sentence (issue 18): every state says what it is."""

from __future__ import annotations

import datetime as dt

from hub.web.pages_ops import integrity_summary

NOW = dt.datetime(2026, 12, 4, 10, 45, tzinfo=dt.UTC)
SIGNER = "north-worcestershire-csp.hub/audit (key 0a1b2c3d)"


def good(size: int = 12_345) -> dict[str, object]:
    return {"note": "...", "size": size, "ok": True, "error": None, "as_of": NOW.replace(minute=42)}


def checked(tree_size: int = 12_300, *, ok: bool = True) -> dict[str, object]:
    return {"at": NOW.replace(minute=40).isoformat(), "ok": ok, "tree_size": tree_size}


def test_intact_as_of_last_check_signed_by() -> None:
    text = integrity_summary(size=12_345, latest=good(), last=checked(), signer=SIGNER, now=NOW)
    assert text == (
        "The log's 12,345 records are intact as of 10:42 UTC; last independent check "
        "10:40 UTC (12,300 records); signed by north-worcestershire-csp.hub/audit "
        "(key 0a1b2c3d)."
    )


def test_records_since_the_checkpoint_and_no_check_yet() -> None:
    text = integrity_summary(size=12_400, latest=good(), last=None, signer=SIGNER, now=NOW)
    assert text.startswith(
        "The log's 12,345 records are intact as of 10:42 UTC (55 written since, not yet "
        "in a checkpoint); not yet checked independently (Verify now); signed by "
    )


def test_another_day_names_the_date() -> None:
    latest = good() | {"as_of": dt.datetime(2026, 12, 1, 23, 5, tzinfo=dt.UTC)}
    text = integrity_summary(size=12_345, latest=latest, last=None, signer=SIGNER, now=NOW)
    assert "intact as of 23:05 UTC on 2026-12-01;" in text


def test_failures_come_first() -> None:
    failed = checked(ok=False) | {"first": "leaf 17 does not match its hash at index 17"}
    text = integrity_summary(size=12_345, latest=good(), last=failed, signer=SIGNER, now=NOW)
    assert text.startswith("The log does NOT verify: the independent check at 10:40 UTC found")
    assert "leaf 17" in text
    bad = good() | {"ok": False, "error": "signed note: signature does not verify"}
    text = integrity_summary(size=12_345, latest=bad, last=None, signer=SIGNER, now=NOW)
    assert text.startswith("The newest checkpoint (tree size 12,345) does NOT verify: signed")
    none = integrity_summary(size=3, latest=None, last=None, signer=SIGNER, now=NOW)
    assert none == "The log holds 3 records; no checkpoint has been signed yet."
