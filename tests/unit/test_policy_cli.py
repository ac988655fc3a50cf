"""``hub policy check`` and ``hub policy explain`` through typer's CliRunner."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.cli.policy import app
from hub.settings import default_protocol_path
from tests.unit.test_policy_engine import marac_flag

LINE = re.compile(r"^.+:\d+: (error|warning): [a-z-]+: .+$")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray hub.toml
    monkeypatch.delenv("HUB_PROTOCOL", raising=False)
    return CliRunner()


@pytest.fixture
def broken_protocol(tmp_path: Path) -> Path:
    text = default_protocol_path().read_text()
    text = text.replace("retention: P2Y", "retention: two-years", 1)
    text = text.replace("review_date: 2027-11-01", "review_date: 2020-01-01")
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return path


def write_event(tmp_path: Path, event: Any) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return path


def marac_event(**data: Any) -> dict[str, Any]:
    return {
        "type": "uk.csp.marac.flag.raised.v1",
        "source": "/parties/marac.north-worcs",
        "data": marac_flag("redditch", **data),
    }


def test_main_app_has_the_policy_commands(runner: CliRunner) -> None:
    from hub.cli.main import app as main_app

    result = runner.invoke(main_app, ["policy", "--help"])
    assert result.exit_code == 0, result.output
    assert "check" in result.stdout
    assert "explain" in result.stdout


def test_check_reference_protocol_exits_0(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", str(default_protocol_path())])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].endswith(": ok: 0 errors, 0 warnings")


def test_check_defaults_to_the_configured_protocol(
    runner: CliRunner, broken_protocol: Path
) -> None:
    result = runner.invoke(app, ["check"], env={"HUB_PROTOCOL": str(broken_protocol)})
    assert result.exit_code == 1
    *findings, summary = result.stdout.strip().splitlines()
    assert summary == f"{broken_protocol}: FAILED: 1 error, 1 warning"
    assert len(findings) == 2
    assert all(LINE.match(line) for line in findings)
    assert findings[0].startswith(f"{broken_protocol}:")
    assert ": error: bad-retention: " in findings[0]
    assert ": warning: review-overdue: " in findings[1]


def test_check_warnings_alone_exit_0(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "stale.yaml"
    path.write_text(
        default_protocol_path()
        .read_text()
        .replace("review_date: 2027-11-01", "review_date: 2020-01-01")
    )
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0
    assert "warning: review-overdue" in result.stdout


def test_check_json(runner: CliRunner, broken_protocol: Path) -> None:
    result = runner.invoke(app, ["check", str(broken_protocol), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [f["code"] for f in report["errors"]] == ["bad-retention"]
    assert report["errors"][0]["path"].endswith(".retention")
    assert [f["code"] for f in report["warnings"]] == ["review-overdue"]


def test_check_missing_protocol_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1
    assert ": error: unreadable: " in result.stdout


def test_explain_department_view_has_no_notes(runner: CliRunner, tmp_path: Path) -> None:
    event = write_event(tmp_path, marac_event())
    args = ["explain", "--event", str(event), "--as", "redditch-bc.housing-repairs"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "outcome: deliver" in out
    assert "rule marac-flag-district-departments" in out
    assert "UK GDPR Art 6(1)(e) public task" in out
    assert "gateway: Crime and Disorder Act 1998 s115" in out  # the gateway itself (issue 17)
    assert '"notes"' not in out
    assert "confidential" not in out
    assert '"dash_score"' not in out
    payload = json.loads(out[out.index("receives:\n") + len("receives:\n") :])
    assert set(payload) == {
        "case_ref",
        "subject_ref",
        "markers",
        "risk_level",
        "address",
        "marac_date",  # the flag-only notice promises the MARAC date (issue 17)
        "review_date",
        "contact",
    }


def test_explain_json(runner: CliRunner, tmp_path: Path) -> None:
    event = write_event(tmp_path, marac_event())
    args = ["explain", "--event", str(event), "--as", "redditch-bc.housing-repairs", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.stdout)
    assert explanation["outcome"] == "deliver"
    assert explanation["rule_id"] == "marac-flag-district-departments"
    assert "notes" not in explanation["payload"]
    assert "notes" in explanation["removed"]


def test_explain_from_stdin_with_bare_source(runner: CliRunner) -> None:
    event = {**marac_event(), "source": "marac.north-worcs"}
    result = runner.invoke(
        app, ["explain", "--event", "-", "--as", "bromsgrove-dc.housing"], input=json.dumps(event)
    )
    assert result.exit_code == 0, result.output
    assert "outcome: withhold (receives nothing)" in result.stdout
    assert "party.district == event.address.district" in result.stdout


def test_explain_rejected_event(runner: CliRunner, tmp_path: Path) -> None:
    event = {
        "type": "uk.csp.pubwatch.ban.v1",
        "source": "pubwatch.redditch.crown-inn",
        "data": {
            "ban_ref": "BAN-1",
            "scheme": "redditch",
            "subject": {"name": "A Person", "date_of_birth": "1990-01-02"},
            "premises": "The Crown Inn",
            "incident_type": "violence",
            "ban_start": "2026-11-20",
            "ban_end": "2027-11-19",
            "decided_by": "police",
        },
    }
    path = write_event(tmp_path, event)
    result = runner.invoke(
        app, ["explain", "--event", str(path), "--as", "pubwatch.redditch.rising-sun", "--json"]
    )
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.stdout)
    assert explanation["outcome"] == "rejected"
    assert explanation["rule_id"] == "ban-decided-by-police"


def test_explain_with_explicit_protocol(runner: CliRunner, tmp_path: Path) -> None:
    event = write_event(tmp_path, marac_event())
    args = ["explain", "--event", str(event), "--as", "west-mercia-police"]
    result = runner.invoke(app, [*args, "--protocol", str(default_protocol_path()), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["payload"]["notes"].startswith("confidential")


@pytest.mark.parametrize(
    ("content", "party", "expected"),
    [
        (None, "west-mercia-police", "cannot read"),
        ("{not json", "west-mercia-police", "not valid JSON"),
        ("[1, 2]", "west-mercia-police", "expected a JSON object"),
        ('{"type": "x", "data": {}}', "west-mercia-police", "missing source"),
        (json.dumps({**marac_event(), "data": []}), "west-mercia-police", "data: expected"),
        (json.dumps(marac_event()), "no-such-party", "got 'no-such-party'"),
        (json.dumps({**marac_event(), "source": "nobody"}), "west-mercia-police", "publisher"),
        (json.dumps({**marac_event(), "type": "uk.csp.nope.v1"}), "hwfrs", "unknown event type"),
        (json.dumps(marac_event(risk_level="extreme")), "hwfrs", "does not match its schema"),
        (json.dumps(marac_event(marac_date="soon")), "hwfrs", "expected a date"),
    ],
)
def test_explain_bad_input_is_one_line(
    runner: CliRunner, tmp_path: Path, content: str | None, party: str, expected: str
) -> None:
    path = tmp_path / "event.json"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["explain", "--event", str(path), "--as", party])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
