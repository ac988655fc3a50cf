"""`hub strategic status|export` and the console's Strategic Assessment page, over a register."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub.cli.main import app as cli
from hub.clock import FileClock
from hub.policies.loader import load_protocol
from hub.settings import HubSettings
from hub.strategic.dataset import build_dataset
from hub.strategic.periods import Quarter
from hub.strategic.register import Release, StrategicRegister
from hub.web import Accounts, Console, Role, create_app

NOW = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)  # 2026Q3 was due by 2026-12-31
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: Redditch's outward codes; B98 is small every quarter, so it and a partner are suppressed
REDDITCH = {"B96": 40, "B97": 22, "B98": 3}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> HubSettings:
    """Police crime for eight quarters; in 2026Q3 everyone but the ICB and Wyre Forest."""
    data_dir = tmp_path_factory.mktemp("strategic-views")
    clock = FileClock(data_dir / "clock")
    clock.set(NOW)
    settings = HubSettings(data_dir=data_dir, clock_file=clock.path)
    at = dt.datetime(2026, 10, 15, tzinfo=dt.UTC)
    with StrategicRegister(settings.register_path) as register:
        for i, quarter in enumerate(Quarter.parse("2026Q3").last(8)):
            register.keep(
                submitter="west-mercia-police", period=str(quarter),
                category="police_recorded_crime", submission_id=f"WMP-{quarter}",
                event_id=f"e-{quarter}", received_at=at,
                counts={**REDDITCH, "B96": 40 + i, "DY10": 30 + i},
            )  # fmt: skip
        keep = [
            ("west-mercia-police", "police_incidents", {"B96": 50, "B97": 31, "B98": 12}),
            ("hwfrs", "fire_deliberate_fires", {"B97": 6, "DY10": 4}),
            ("hwfrs", "fire_assaults_on_staff", {"B97": 0}),
            ("redditch-bc.community-safety", "council_asb", {"E05007866": 14, "E05007867": 2}),
            ("redditch-bc.community-safety", "council_environmental_crime", {"E05007868": 9}),
            ("redditch-bc.community-safety", "council_racial_incidents", {"E05007869": 1}),
            ("bromsgrove-dc.community-safety", "council_asb", {"E05007806": 8}),
            ("bromsgrove-dc.community-safety", "council_environmental_crime", {"E05007807": 5}),
            ("bromsgrove-dc.community-safety", "council_racial_incidents", {"E05007808": 0}),
        ]
        for submitter, category, counts in keep:
            register.keep(
                submitter=submitter, period="2026Q3", category=category,
                submission_id=f"{submitter[:20]}-1", event_id=f"e-{submitter}-{category}",
                received_at=at, counts=counts,
            )  # fmt: skip
        # every quarter but the last was released; the console charts what releases carried
        policy = load_protocol(settings.protocol).strategic
        assert policy is not None
        for quarter in Quarter.parse("2026Q2").last(7):
            dataset = build_dataset(policy, quarter, register.submissions(str(quarter)))
            release = Release(dataset.release_id(), dataset.period, dataset.sha256,
                              f"e-r-{quarter}", at.isoformat(), ("nwcsp.analysts",))  # fmt: skip
            register.record_release(release)
            register.keep_released_cells(
                release.release_id, period=dataset.period, threshold=5, cells=dataset.cells
            )
        # a correction after 2026Q2 was released: the chart keeps the released figure
        register.keep(
            submitter="west-mercia-police", period="2026Q2",
            category="police_recorded_crime", submission_id="WMP-2026Q2-fix",
            event_id="e-2026Q2-fix", received_at=at + dt.timedelta(days=1),
            counts={**REDDITCH, "B96": 500, "DY10": 36},
        )  # fmt: skip
    accounts = Accounts(settings.console_accounts_path)
    accounts.add(name="ig", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    return settings


def run(settings: HubSettings, *args: str) -> Any:
    env = {"HUB_DATA_DIR": str(settings.data_dir), "HUB_CLOCK_FILE": str(settings.clock_file)}
    return CliRunner().invoke(cli, list(args), env=env)


def test_status_names_who_is_late_for_each_period(seeded: HubSettings) -> None:
    result = run(seeded, "strategic", "status", "--json")
    assert result.exit_code == 1, result.output  # someone is late
    states = {(s["period"], s["submitter"]): s for s in json.loads(result.stdout)["submitters"]}
    assert states[("2026Q3", "west-mercia-police")]["state"] == "complete"
    assert states[("2026Q3", "hw-icb")]["state"] == "late"
    assert states[("2026Q3", "hw-icb")]["missing"] == ["health_assault_admissions"]
    assert states[("2026Q3", "wyre-forest-dc.community-safety")]["state"] == "late"
    assert states[("2026Q4", "hwfrs")]["state"] == "open"  # due by 2027-03-31
    text = run(seeded, "strategic", "status", "--period", "2026Q3").stdout
    assert "2026Q3  due by 2026-12-31" in text
    assert re.search(r"hw-icb\s+LATE  missing health_assault_admissions", text)
    bad = run(seeded, "strategic", "status", "--period", "2026-09")
    assert bad.exit_code == 1
    assert "expected a quarter like 2026Q3, got '2026-09'" in bad.output
    assert "Traceback" not in bad.output


def test_export_writes_the_csv_whose_digest_it_prints_and_parquet(
    seeded: HubSettings, tmp_path: Path
) -> None:
    result = run(
        seeded, "strategic", "export", "--period", "2026Q3", "--out", str(tmp_path), "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    csv_path = Path(report["files"]["csv"])
    assert hashlib.sha256(csv_path.read_bytes()).hexdigest() == report["sha256"]
    assert Path(report["files"]["parquet"]).stat().st_size > 0
    assert report["suppressed"] > 0
    assert report["missing"] == ["wyre-forest-dc.community-safety", "hw-icb"]
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "period,district,level,area,category,count,status"
    assert "2026Q3,redditch,outward_code,B98,police_recorded_crime,,suppressed" in rows
    for row in rows[1:]:
        count = row.split(",")[5]
        assert count == "" or int(count) >= 5
    assert report["release_id"] is None  # not released: built from what is kept now
    # a released period is written as released, not as corrected since (2026Q2's fix)
    as_released = run(seeded, "strategic", "export", "--period", "2026Q2", "--out", str(tmp_path))
    assert as_released.exit_code == 0, as_released.output
    assert "as released in S17A-2026Q2-" in as_released.stdout
    b96 = "2026Q2,redditch,outward_code,B96,police_recorded_crime,46,released"
    assert b96 in (tmp_path / "s17a-2026Q2.csv").read_text().splitlines()
    rebuilt = run(
        seeded, "strategic", "export", "--period", "2026Q2", "--rebuild", "--out", str(tmp_path)
    )
    assert "rebuilt from the submissions kept now: not what was released" in rebuilt.stdout
    assert ",B96,police_recorded_crime,500," in (tmp_path / "s17a-2026Q2.csv").read_text()
    nothing = run(seeded, "strategic", "export", "--period", "2024Q1", "--out", str(tmp_path))
    assert nothing.exit_code == 1
    assert "period 2024Q1: expected submissions kept by the hub, found none" in nothing.output


@pytest.fixture
def client(seeded: HubSettings) -> Iterator[TestClient]:
    console = Console(
        settings=seeded,
        accounts=Accounts(seeded.console_accounts_path),
        clock=lambda: NOW,
        wall=lambda: 1_000_000.0,
    )
    with TestClient(create_app(console), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, name: str) -> None:
    match = CSRF.search(client.get("/sign-in").text)
    assert match
    client.post(
        "/sign-in",
        data={"name": name, "password": PASSWORD, "csrf_token": match.group(1), "next": "/"},
    )


def test_the_page_draws_each_districts_trend_over_eight_quarters_as_svg(
    client: TestClient,
) -> None:
    assert client.get("/strategic").status_code in (302, 303)  # sign in first
    sign_in(client, "ig")
    assert 'href="/strategic"' in client.get("/dashboard").text
    page = client.get("/strategic")
    assert page.status_code == 200
    html = page.text
    assert "cdn" not in html.lower()
    charts = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert len(charts) == 3  # Redditch, Bromsgrove, Wyre Forest
    redditch = charts[0]
    assert "Redditch: released totals by quarter" in redditch
    # the eight quarters to the last that ended (2026Q4, on 4 January 2027) on the axis
    for quarter in Quarter.parse("2026Q4").last(8):
        assert str(quarter) in redditch
    assert "Police recorded crime" in redditch  # the protocol's label
    assert "Not released yet: 2026Q3, 2026Q4." in html
    assert 'class="submitter open"' in html  # 2026Q4 is due by 2027-03-31
    # an earlier period: its eight quarters, and who was late with it
    earlier = client.get("/strategic?period=2026Q3").text
    assert "2024Q4" in earlier
    assert re.search(r'class="submitter late"><td><span class="party" title="hw-icb">', earlier)
    bad = client.get("/strategic?period=soon")
    assert bad.status_code == 200
    assert "expected a quarter like 2026Q3" in bad.text


def test_release_without_a_running_hub_says_so_in_one_line(seeded: HubSettings) -> None:
    result = run(seeded, "strategic", "release", "--period", "2026Q3")
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "Traceback" not in result.output
    dry = run(seeded, "strategic", "sweep", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)["planned"]
    assert {(p["kind"], p.get("submitter")) for p in planned} == {
        ("submission_late", "wyre-forest-dc.community-safety"),
        ("submission_late", "hw-icb"),
        ("release", None),
    }


def test_a_period_released_with_other_figures_is_released_again_only_on_purpose(
    tmp_path: Path,
) -> None:
    """Two releases of one period can be differenced: a second one needs --supersede."""
    clock = FileClock(tmp_path / "clock")
    clock.set(NOW)
    settings = HubSettings(data_dir=tmp_path / "data", clock_file=clock.path)
    with StrategicRegister(settings.register_path) as register:
        register.keep(
            submitter="hwfrs", period="2026Q3", category="fire_deliberate_fires",
            submission_id="F-1", event_id="e-f", received_at=NOW, counts={"B97": 12},
        )  # fmt: skip
        register.record_release(
            Release("S17A-2026Q3-old", "2026Q3", "0" * 64, "e-r", NOW.isoformat(), ("a",))
        )
    again = run(settings, "strategic", "release", "--period", "2026Q3")
    assert again.exit_code == 1
    assert "released already as S17A-2026Q3-old, with other figures" in again.output
    assert "--supersede" in again.output
    assert "Traceback" not in again.output


def test_the_chart_shows_what_was_released_not_what_was_corrected_since(
    seeded: HubSettings,
) -> None:
    from hub.strategic.chart import trends

    policy = load_protocol(seeded.protocol).strategic
    assert policy is not None
    with StrategicRegister(seeded.register_path) as register:
        released = register.released()
    [redditch, *_] = trends(policy, released, end=Quarter.parse("2026Q3"))
    # B96 + B97 + B98 as released in 2026Q2 (40 + 6 + 22 + 3), not the correction's 525
    assert redditch.series["police_recorded_crime"][-2] == 71
    assert redditch.series["police_recorded_crime"][-1] is None  # 2026Q3: not released
    assert redditch.released == (True,) * 7 + (False,)
