"""The `hub` command as a user runs it: the real console script in a subprocess.

The session hub's data dir holds the ``hub.json`` its supervisor wrote, so `hub publish`,
`hub consume` and `hub audit` find the broker and the audit store through ``HUB_DATA_DIR``
exactly as they would next to `hub up`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from hub.models import AuditDecision, AuditRecord
from tests.conftest import RunningHub, unique, wait_for
from tests.factories import BAN, MARAC_RAISED, marac_flag, pubwatch_ban

pytestmark = pytest.mark.integration

HUB = Path(sys.executable).parent / "hub"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "events"
COORDINATOR = "marac.north-worcs"
DEPARTMENT = "redditch-bc.housing-repairs"
DEPARTMENT_FIELDS = {
    "case_ref",
    "subject_ref",
    "markers",
    "risk_level",
    "address",
    "marac_date",  # the flag-only definition promises it (issue 17)
    "review_date",
    "contact",
}
REDDITCH_RECIPIENTS = {
    "west-mercia-police",
    "redditch-bc.housing-repairs",
    "redditch-bc.neighbourhood-tenancy",
    "redditch-bc.community-safety",
    # health's urgent-care path (CP-IS): flag-only notices
    "hw-icb",
    "wah-nhs.alexandra-ed",
    "wah-nhs.kidderminster-miu",
    "wah-nhs.safeguarding",
}

Run = Callable[..., subprocess.CompletedProcess[str]]


def run_hub(
    *args: str, env: Mapping[str, str], stdin: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run the installed `hub` console script and capture everything it printed."""
    return subprocess.run(
        [str(HUB), *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli(hub: RunningHub) -> Run:
    """`hub ...` against the session hub; ``extra_env`` adds or overrides settings."""

    def run(
        *args: str,
        stdin: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        return run_hub(*args, env={**hub.env(), **(extra_env or {})}, stdin=stdin, timeout=timeout)

    return run


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line a failed command printed, with no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def published_id(result: subprocess.CompletedProcess[str]) -> str:
    """The one line `hub publish --no-wait` prints on stdout: the event id, a UUID."""
    assert result.stdout.endswith("\n"), result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert str(uuid.UUID(lines[0])) == lines[0]
    return lines[0]


def answered_id(result: subprocess.CompletedProcess[str]) -> str:
    """The event id at the head of `hub publish`'s answer: "event ID (TYPE from PARTY): ..."."""
    assert "Traceback" not in result.stderr, result.stderr
    head = result.stdout.splitlines()[0]
    assert head.startswith("event "), result.stdout
    event_id = head.split()[1]
    assert str(uuid.UUID(event_id)) == event_id
    return event_id


def delivered(records: list[AuditRecord]) -> set[str]:
    return {
        r.recipient
        for r in records
        if r.decision == AuditDecision.DELIVERED and r.recipient is not None
    }


# -- publish -----------------------------------------------------------------------------------


def test_publish_no_wait_prints_only_the_event_id(
    cli: Run, hub: RunningHub, tmp_path: Path
) -> None:
    data = write_json(tmp_path / "flag.json", marac_flag(unique("MARAC")))
    result = cli(
        "publish", "--as", COORDINATOR, "--type", MARAC_RAISED, "--data", str(data), "--no-wait"
    )
    assert result.returncode == 0, result.stderr
    event_id = published_id(result)
    records = hub.wait_records(event_id, at_least=8)
    assert delivered(records) == REDDITCH_RECIPIENTS


def test_publish_waits_and_answers_with_id_and_decisions_on_stdout(
    cli: Run, hub: RunningHub, tmp_path: Path
) -> None:
    data = write_json(tmp_path / "flag.json", marac_flag(unique("MARAC")))
    result = cli(
        "publish",
        "--as",
        COORDINATOR,
        "--type",
        MARAC_RAISED,
        "--data",
        str(data),
        "--timeout",
        "30",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    event_id = answered_id(result)
    head, *rows = result.stdout.splitlines()
    assert head == (
        f"event {event_id} ({MARAC_RAISED} from {COORDINATOR}): accepted by the hub, "
        f"delivered to {len(REDDITCH_RECIPIENTS)} parties"
    )
    decisions = [line.split() for line in rows]
    assert {d[1] for d in decisions if d[0] == "delivered"} == REDDITCH_RECIPIENTS
    withheld = [line for line in rows if line.split()[0] == "withheld"]
    assert withheld
    assert all(len(line.split()) > 3 for line in withheld)  # each says why
    # the answer came after the decision was in the store: no waiting needed here
    assert delivered(hub.records(event_id)) == REDDITCH_RECIPIENTS


def test_publish_without_the_hubs_audit_store_prints_the_id_and_says_why(
    cli: Run, hub: RunningHub, tmp_path: Path
) -> None:
    # an agency host: the party's keys and the broker's address, not the hub's data dir
    agency = tmp_path / "agency"
    agency.mkdir()
    (agency / "keys").symlink_to(hub.settings.keys_dir)
    data = write_json(tmp_path / "flag.json", marac_flag(unique("MARAC")))
    result = cli(
        "publish", "--as", COORDINATOR, "--type", MARAC_RAISED, "--data", str(data),
        extra_env={"HUB_DATA_DIR": str(agency), "HUB_KAFKA_BOOTSTRAP": hub.bootstrap},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    event_id = published_id(result)
    assert "no audit store at" in result.stderr
    assert not (agency / "audit.sqlite3").exists()  # waiting created nothing here
    assert delivered(hub.wait_records(event_id, at_least=8)) == REDDITCH_RECIPIENTS


def test_publish_json_is_one_object(cli: Run, hub: RunningHub, tmp_path: Path) -> None:
    data = write_json(tmp_path / "flag.json", marac_flag(unique("MARAC")))
    result = cli(
        "publish", "--as", COORDINATOR, "--type", MARAC_RAISED, "--data", str(data), "--json"
    )
    assert result.returncode == 0, result.stderr
    (answer,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert answer["status"] == "accepted"
    assert answer["source"] == COORDINATOR
    assert answer["origin"].startswith(f"hub.in.{COORDINATOR}/")
    got = {d["recipient"] for d in answer["decisions"] if d["decision"] == "delivered"}
    assert got == REDDITCH_RECIPIENTS
    assert delivered(hub.records(answer["id"])) == REDDITCH_RECIPIENTS


def test_publish_reads_stdin(cli: Run, hub: RunningHub) -> None:
    payload = json.dumps(marac_flag(unique("MARAC")))
    result = cli(
        "publish", "--as", COORDINATOR, "--type", MARAC_RAISED, "--data", "-", stdin=payload
    )
    assert result.returncode == 0, result.stderr
    assert delivered(hub.records(answered_id(result))) == REDDITCH_RECIPIENTS


def test_publish_accepts_an_example_wrapper_file(cli: Run, hub: RunningHub) -> None:
    example = EXAMPLES / "marac-flag-raised-redditch.json"
    wrapper = json.loads(example.read_text())
    result = cli(
        "publish", "--as", wrapper["source"], "--type", wrapper["type"], "--data", str(example)
    )
    assert result.returncode == 0, result.stderr
    records = hub.records(answered_id(result))
    assert all(r.publisher == wrapper["source"] for r in records)
    assert "redditch-bc.housing-repairs" in delivered(records)


# -- consume -----------------------------------------------------------------------------------


def consume_json(cli: Run, party: str) -> list[dict[str, Any]]:
    result = cli("consume", "--as", party, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(isinstance(o, dict) for o in objects)
    return objects


def test_consume_prints_json_once_and_acknowledges(
    cli: Run, hub: RunningHub, tmp_path: Path
) -> None:
    data = write_json(tmp_path / "flag.json", marac_flag(unique("MARAC")))
    published = cli("publish", "--as", COORDINATOR, "--type", MARAC_RAISED, "--data", str(data))
    assert published.returncode == 0, published.stderr
    event_id = answered_id(published)

    seen: list[dict[str, Any]] = []

    def mine() -> dict[str, Any] | None:
        # each run prints what is new for the party's group; the delivery may land a moment
        # after its audit records, so keep consuming until it shows up
        seen.extend(consume_json(cli, DEPARTMENT))
        return next((o for o in seen if o["id"] == event_id), None)

    got = wait_for(mine, timeout=30, what=f"{event_id} from hub consume")
    for obj in seen:
        assert {"id", "type", "source", "time", "data"} <= set(obj), obj
    assert got["type"] == MARAC_RAISED
    assert got["source"] == f"/parties/{COORDINATOR}"
    assert got["recipient"] == DEPARTMENT
    assert "notes" not in got["data"]
    assert got["data"]["case_ref"] == json.loads(data.read_text())["case_ref"]
    assert sum(o["id"] == event_id for o in seen) == 1

    again = consume_json(cli, DEPARTMENT)
    assert all(o["id"] != event_id for o in again)

    ack = wait_for(
        lambda: [
            r
            for r in hub.records(event_id)
            if r.decision == AuditDecision.ACKNOWLEDGED and r.recipient == DEPARTMENT
        ],
        timeout=30,
        what=f"acknowledgement of {event_id}",
    )
    assert len(ack) == 1
    assert ack[0].ack_event_id is not None
    assert ack[0].ack_event_id != event_id


# -- audit -------------------------------------------------------------------------------------

AUDIT_KEYS = {"event_id", "recipient", "decision", "rule", "lawful_basis", "fields", "time"}


#: who reads the audit log and why: `hub audit query` shows personal data (DPA 2018 s62)
AUDIT_READER = ("--operator", "Tester", "--purpose", "assurance", "--reason", "CLI audit test")


def audit_json(cli: Run, *args: str) -> list[dict[str, Any]]:
    result = cli("audit", "query", *args, "--json", *AUDIT_READER)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_audit_query_by_event_and_by_subject(cli: Run, hub: RunningHub, tmp_path: Path) -> None:
    flag = marac_flag(unique("MARAC"))
    data = write_json(tmp_path / "flag.json", flag)
    published = cli("publish", "--as", COORDINATOR, "--type", MARAC_RAISED, "--data", str(data))
    assert published.returncode == 0, published.stderr
    event_id = answered_id(published)
    stored = hub.wait_records(event_id, at_least=8)

    by_event = audit_json(cli, "--event", event_id)
    assert len(by_event) == len(stored)
    for obj in by_event:
        assert AUDIT_KEYS <= set(obj), obj
        assert obj["event_id"] == event_id
    police = next(o for o in by_event if o["recipient"] == "west-mercia-police")
    assert police["decision"] == "delivered"
    assert police["rule"]
    assert police["lawful_basis"]
    assert "notes" in police["fields"]  # the whole event, each field named
    assert "dash_score" in police["fields"]
    dept = next(o for o in by_event if o["recipient"] == DEPARTMENT)
    assert dept["fields"] == sorted(DEPARTMENT_FIELDS)

    subject = flag["subject_ref"]
    by_subject = audit_json(cli, "--subject", subject)
    assert {o["event_id"] for o in by_subject} == {event_id}
    assert {o["record_id"] for o in by_subject} == {r.record_id for r in stored}

    # the store holds only the keyed pseudonym, never the subject reference itself
    assert subject not in json.dumps(by_event + by_subject)
    for path in hub.settings.data_dir.glob(hub.settings.audit_db_path.name + "*"):
        assert subject.encode() not in path.read_bytes(), path


# -- bad input ---------------------------------------------------------------------------------


def _bad_cases(tmp: Path) -> dict[str, tuple[list[str], str | None, dict[str, str], str]]:
    """name -> (arguments, stdin, extra env, fragment the error line must contain)."""
    good = write_json(tmp / "good.json", marac_flag("MARAC-BAD-000001"))
    malformed = tmp / "malformed.json"
    malformed.write_text('{"case_ref": "MARAC-1",')
    extreme = write_json(tmp / "extreme.json", marac_flag("MARAC-BAD-000002", risk_level="extreme"))
    large = write_json(tmp / "large.json", marac_flag("MARAC-BAD-000003", notes="x" * 5000))
    publish = ["publish", "--as", COORDINATOR, "--type", MARAC_RAISED, "--data"]
    return {
        "unknown party": (
            ["publish", "--as", "nobody", "--type", MARAC_RAISED, "--data", str(good)],
            None,
            {},
            "nobody",
        ),
        "unknown consumer": (["consume", "--as", "nobody"], None, {}, "nobody"),
        "unknown type": (
            ["publish", "--as", COORDINATOR, "--type", "uk.csp.nothing.v1", "--data", str(good)],
            None,
            {},
            "uk.csp.nothing.v1",
        ),
        "malformed json": ([*publish, str(malformed)], None, {}, "not valid JSON"),
        "malformed stdin": ([*publish, "-"], "{nope", {}, "not valid JSON"),
        "missing file": ([*publish, str(tmp / "absent.json")], None, {}, "absent.json"),
        "not an object": ([*publish, "-"], "[1, 2]", {}, "expected a JSON object"),
        "wrapper from another party": (
            [
                "publish",
                "--as",
                "west-mercia-police",
                "--type",
                MARAC_RAISED,
                "--data",
                str(EXAMPLES / "marac-flag-raised-redditch.json"),
            ],
            None,
            {},
            "source names marac.north-worcs, but --as is west-mercia-police",
        ),
        "wrapper of another type": (
            [
                "publish",
                "--as",
                COORDINATOR,
                "--type",
                BAN,
                "--data",
                str(EXAMPLES / "marac-flag-raised-redditch.json"),
            ],
            None,
            {},
            MARAC_RAISED,
        ),
        "schema mismatch": ([*publish, str(extreme)], None, {}, "field /risk_level: expected"),
        "oversized": ([*publish, str(large)], None, {"HUB_MAX_EVENT_BYTES": "1024"}, "1024"),
    }


BAD_CASES = [
    "unknown party",
    "unknown consumer",
    "unknown type",
    "malformed json",
    "malformed stdin",
    "missing file",
    "not an object",
    "wrapper of another type",
    "wrapper from another party",
    "schema mismatch",
    "oversized",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_error_line(cli: Run, tmp_path: Path, case: str) -> None:
    args, stdin, env, fragment = _bad_cases(tmp_path)[case]
    result = cli(*args, stdin=stdin, extra_env=env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    line = one_error_line(result)
    assert fragment in line, line


@pytest.mark.parametrize(
    ("publisher", "data", "fragment"),
    [
        (  # the protocol's own rejection: the scheme decides a ban, not the police
            "pubwatch.redditch.crown-inn",
            pubwatch_ban("PW-LOCAL-REFUSED-1", decided_by="police"),
            "pubwatch.redditch.crown-inn",
        ),
        (  # a publisher no rule permits
            "redditch-bc.housing-repairs",
            marac_flag("MARAC-LOCAL-REFUSED-1"),
            "redditch-bc.housing-repairs may not publish",
        ),
        (  # a SafeLives criterion that holds whatever the subject's history
            COORDINATOR,
            marac_flag("MARAC-LOCAL-REFUSED-2", dash_score=20, risk_level="medium"),
            "a DASH score of 20 is visible high risk",
        ),
    ],
    ids=["protocol rejection", "publisher not permitted", "dash level"],
)
def test_what_the_hub_would_refuse_is_refused_before_sending(
    cli: Run, hub: RunningHub, tmp_path: Path, publisher: str, data: dict[str, Any], fragment: str
) -> None:
    path = write_json(tmp_path / "event.json", data)
    event_type = BAN if "ban_ref" in data else MARAC_RAISED
    result = cli("publish", "--as", publisher, "--type", event_type, "--data", str(path))
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stdout == ""
    line = one_error_line(result)
    assert "the hub would refuse it, so it was not sent" in line, line
    assert fragment in line, line
    as_json = cli("publish", "--as", publisher, "--type", event_type, "--data", str(path), "--json")
    assert as_json.returncode == 3
    (answer,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert answer["status"] == "refused"
    assert answer["id"] is None
    assert fragment in answer["reason"]


@pytest.mark.parametrize(
    ("publisher", "event_type", "make", "expected"),
    [
        (
            COORDINATOR,
            MARAC_RAISED,
            lambda ref: marac_flag(ref),
            "flag for case {ref} already raised on {day} (event {first}) and still active; "
            "publish uk.csp.marac.flag.updated.v1 to change it",
        ),
        (
            "pubwatch.redditch.crown-inn",
            BAN,
            lambda ref: pubwatch_ban(ref),
            "ban {ref} already in force from",
        ),
    ],
    ids=["marac flag", "pubwatch ban"],
)
def test_raising_what_is_already_active_is_refused_with_why(
    cli: Run,
    hub: RunningHub,
    tmp_path: Path,
    publisher: str,
    event_type: str,
    make: Callable[[str], dict[str, Any]],
    expected: str,
) -> None:
    ref = unique("DUP")
    data = write_json(tmp_path / "event.json", make(ref))
    args = ("publish", "--as", publisher, "--type", event_type, "--data", str(data))
    first = cli(*args)
    assert first.returncode == 0, (first.stdout, first.stderr)
    first_id = answered_id(first)
    day = hub.records(first_id)[0].time.date()

    again = cli(*args)  # the same event once more, under a new id
    assert again.returncode == 3, (again.stdout, again.stderr)
    second_id = answered_id(again)
    reason = again.stdout.splitlines()[0].split(": refused by the hub: ", 1)[1]
    assert reason.startswith("policy_rejected: "), reason
    assert expected.format(ref=ref, day=day, first=first_id) in reason
    if event_type == BAN:
        assert "publish uk.csp.pubwatch.ban.updated.v1 to change it" in reason
    # no party was told twice: the second event was delivered to nobody
    assert [r.decision for r in hub.records(second_id)] == [AuditDecision.REJECTED]


def test_duplicate_event_id_is_quarantined(cli: Run, hub: RunningHub, tmp_path: Path) -> None:
    data = write_json(tmp_path / "flag.json", marac_flag(unique("MARAC")))
    event_id = str(uuid.uuid4())
    args = (
        "publish",
        "--as",
        COORDINATOR,
        "--type",
        MARAC_RAISED,
        "--data",
        str(data),
        "--id",
        event_id,
    )
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert answered_id(first) == event_id
    original = hub.wait_records(event_id, at_least=8)

    second = cli(*args)
    # the answer is the decision about this very record (matched by its Kafka origin), not
    # the original's decisions that carry the same id
    assert second.returncode == 3, second.stderr
    assert second.stderr == ""
    assert second.stdout.startswith(
        f"event {event_id} ({MARAC_RAISED} from {COORDINATOR}): refused by the hub: "
        "duplicate_event_id"
    ), second.stdout

    def quarantine() -> list[AuditRecord]:
        with hub.store() as store:
            rows = store.query(decision=AuditDecision.REJECTED, limit=100_000)
        return [
            r for r in rows if r.reason.startswith("duplicate_event_id") and event_id in r.reason
        ]

    [record] = wait_for(quarantine, timeout=30, what=f"quarantine record of {event_id}")
    assert record.event_id.startswith("duplicate:hub.in.")
    assert record.publisher == COORDINATOR
    # the original keeps its records unchanged and is delivered once
    assert hub.records(event_id) == original
    # read until the original is there (its delivery is produced after its audit records)
    deliveries = hub.deliveries(DEPARTMENT, until=lambda ds: event_id in {d.id for d in ds})
    assert sum(d.id == event_id for d in deliveries) == 1


# -- no hub running ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["publish", "consume"])
def test_without_a_running_hub_says_hub_up(tmp_path: Path, command: str) -> None:
    data = write_json(tmp_path / "flag.json", marac_flag("MARAC-NOHUB-000001"))
    empty = tmp_path / "empty"
    empty.mkdir()
    args = (
        ["publish", "--as", COORDINATOR, "--type", MARAC_RAISED, "--data", str(data)]
        if command == "publish"
        else ["consume", "--as", DEPARTMENT]
    )
    result = run_hub(*args, env={"HUB_DATA_DIR": str(empty)})
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "`hub up`" in one_error_line(result)


# -- help --------------------------------------------------------------------------------------

COMMANDS = ["up", "demo", "broker", "publish", "consume", "policy", "audit"]


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    result = run_hub("--help", env={"HUB_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    listed = {line.strip("│ ").split(" ", 1)[0] for line in result.stdout.splitlines()}
    assert set(COMMANDS) <= listed, result.stdout


@pytest.mark.parametrize("command", [*COMMANDS, "policy check", "policy explain", "audit query"])
def test_every_command_has_help(tmp_path: Path, command: str) -> None:
    result = run_hub(*command.split(), "--help", env={"HUB_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
