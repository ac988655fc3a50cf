"""Issue 18, the first hour: `hub policy parties`, the unknown-party error, the demo's hint.

Each test runs the real CLI (typer's runner, or the installed script in a shell) on a
temporary data dir; none needs a broker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.cli.runtime import hub_command
from hub.client.sdk import publish_order
from hub.models import Delivery
from hub.policies.loader import load_protocol
from hub.policies.model import Party
from hub.settings import default_protocol_path
from tests.factories import marac_flag

REPO = Path(__file__).resolve().parents[2]
VENV_HUB = Path(sys.executable).parent / "hub"
MARAC = "uk.csp.marac.flag.raised.v1"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray hub.toml
    monkeypatch.delenv("HUB_PROTOCOL", raising=False)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def test_parties_lists_every_party_with_its_display_name(runner: CliRunner) -> None:
    protocol = load_protocol(default_protocol_path())
    result = runner.invoke(app, ["policy", "parties"])
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "KIND", "DISTRICT", "ROLES", "NAME"]
    assert "..." not in result.stdout
    by_id = {row.split()[0]: row for row in rows[:-1]}
    assert list(by_id) == list(protocol.party_ids)
    housing = by_id["redditch-bc.housing-repairs"].split(maxsplit=4)
    assert housing == [
        "redditch-bc.housing-repairs",
        "council",
        "redditch",
        "marac-department",
        "Redditch BC, Housing Repairs",
    ]
    assert by_id["west-mercia-police"].split()[2] == "-"  # no district
    assert rows[-1] == f"{len(protocol.parties)} parties in protocol {protocol.protocol.id}"


def test_parties_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["policy", "parties", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    housing = next(r for r in rows if r["id"] == "redditch-bc.housing-repairs")
    assert housing["label"] == "Redditch BC, Housing Repairs"
    assert housing["district"] == "redditch"
    assert housing["roles"] == ["marac-department"]
    assert housing["name"].startswith("Redditch Borough Council")


def test_every_reference_party_has_a_short_display_name() -> None:
    protocol = load_protocol(default_protocol_path())
    for party in protocol.parties:
        assert party.display_name, party.id
        assert len(party.display_name) <= 40, party.display_name


def test_label_falls_back_to_the_name_and_to_the_id() -> None:
    party = Party(id="x.y", name="X, department Y", kind="council")
    assert party.label == "X, department Y"
    protocol = load_protocol(default_protocol_path())
    assert protocol.label("redditch-bc.housing-repairs") == "Redditch BC, Housing Repairs"
    assert protocol.label("nobody.here") == "nobody.here"


@pytest.mark.parametrize(
    "args",
    [
        ["consume", "--as", "redditch-bc.housing"],
        ["publish", "--as", "redditch-bc.housing", "--type", MARAC, "--data", "-"],
        ["webhooks", "add", "--party", "redditch-bc.housing", "--url", "https://x.test/"],
    ],
)
def test_unknown_party_points_to_policy_parties(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(app, args, input="{}")
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert "redditch-bc.housing" in line
    count = len(load_protocol(default_protocol_path()).parties)
    assert f"`hub policy parties` lists its {count} parties" in line
    assert "..." not in line
    assert "policy check" not in line


# -- the demo's closing hint ---------------------------------------------------------------


def test_hub_command_names_the_venv_script_when_not_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert hub_command(str(REPO / ".venv/bin/hub"), cwd=REPO) == ".venv/bin/hub"
    assert hub_command(".venv/bin/hub", cwd=REPO) == ".venv/bin/hub"
    assert hub_command(str(REPO / ".venv/bin/hub"), cwd=tmp_path) == str(
        (REPO / ".venv/bin/hub").resolve()
    )


def test_hub_command_is_hub_when_path_finds_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{VENV_HUB.parent}:/usr/bin:/bin")
    assert hub_command(str(VENV_HUB), cwd=REPO) == "hub"


def test_make_shell_puts_hub_on_path() -> None:
    done = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "shell"],
        input="command -v hub\nexit\n",
        cwd=REPO,
        env={**os.environ, "SHELL": "/bin/sh"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(REPO / ".venv/bin/hub")


def test_schema_error_names_the_json_path(runner: CliRunner, tmp_path: Path) -> None:
    """`field /risk_level`, as the user wrote it, not `uk.csp.marac.FlagRaisedV1.risk_level`."""
    sample = {
        "type": MARAC,
        "source": "/parties/marac.north-worcs",
        "data": marac_flag("MARAC-2026-000001", risk_level="extreme"),
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(sample))
    args = ["policy", "explain", "--event", str(path), "--as", "redditch-bc.housing-repairs"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert "field /risk_level: expected one of standard, medium, high" in line
    assert "FlagRaisedV1" not in line


def test_publish_order_groups_cases_in_the_order_published() -> None:
    t0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)

    def delivery(key: str | None, minutes: int, name: str) -> Delivery:
        return Delivery(
            id=name,
            type=MARAC,
            source="/parties/marac.north-worcs",
            time=t0 + dt.timedelta(minutes=minutes),
            subject=key,
            recipient="redditch-bc.housing-repairs",
            rule=None,
            protocol_hash=None,
            data={},
            key=key,
        )

    arrived = [
        delivery("B", 3, "b3"),
        delivery(None, 5, "notice"),
        delivery("A", 2, "a2"),
        delivery("B", 1, "b1"),
        delivery("A", 0, "a0"),
        delivery("A", 2, "a2-again"),  # same time: arrival order
    ]
    assert [d.id for d in publish_order(arrived)] == ["a0", "a2", "a2-again", "b1", "b3", "notice"]
