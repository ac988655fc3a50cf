"""The console in headless Chromium: sign-in by keyboard, an audit search, a SAR with its CSV
export, the MARAC board, and an agency user refused another party's event.

Screenshots of each step go to ``test-artifacts/browser/`` (named in the test report).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from hub.audit.actions import audit_case_action
from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog
from hub.audit.sqlite import SQLiteAuditStore
from hub.models import AuditDecision
from hub.settings import HubSettings
from tests.browser.conftest import HOUSING, PASSWORD, Seeded

pytestmark = [pytest.mark.browser, pytest.mark.integration]

Shoot = Callable[[str], Path]
WAIT = 15.0


def wait(browser: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(browser, WAIT)


def expect_heading(browser: webdriver.Chrome, text: str) -> None:
    """Wait for the page whose h1 holds ``text`` (a click may leave the old page up a while)."""
    wait(browser).until(
        ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), text),
        f"expected a page headed {text!r}",
    )


def sign_in(browser: webdriver.Chrome, seeded: Seeded, name: str) -> None:
    """Sign in with the keyboard only: type, Tab, type, Enter."""
    browser.get(seeded.url + "/")
    wait(browser).until(ec.url_contains("/sign-in"))
    field = browser.find_element(By.ID, "name")
    field.click()
    field.send_keys(name, Keys.TAB)
    active = browser.switch_to.active_element
    assert active.get_attribute("id") == "password"  # Tab order follows the form
    active.send_keys(PASSWORD, Keys.ENTER)
    # the dashboard's own heading, not its URL: the URL changes when the navigation starts,
    # while the sign-in page may still be the document (no nav on it: a find_element then
    # failed under load), and a browser.get() then would cut the navigation short
    wait(browser).until(ec.url_contains("/dashboard"))
    expect_heading(browser, "Live counters")


def justify(browser: webdriver.Chrome, purpose: str, reason: str) -> None:
    expect_heading(browser, "Why do you need to see this?")
    Select(browser.find_element(By.ID, "purpose")).select_by_visible_text(purpose)
    browser.find_element(By.ID, "reason").send_keys(reason)
    browser.find_element(By.ID, "justify").click()


def test_sign_in_and_search_the_audit(
    browser: webdriver.Chrome, seeded: Seeded, shoot: Shoot
) -> None:
    browser.get(seeded.url + "/audit")
    expect_heading(browser, "Sign in")
    shoot("sign-in")
    sign_in(browser, seeded, "ig.officer")
    expect_heading(browser, "Live counters")
    delivered = int(browser.find_element(By.ID, "count-delivered").text)
    assert delivered >= 4  # two flags, each to at least two parties
    shoot("dashboard")
    browser.find_element(By.LINK_TEXT, "Audit search").click()
    expect_heading(browser, "Audit search")
    browser.find_element(By.ID, "party").send_keys(HOUSING)
    Select(browser.find_element(By.ID, "decision")).select_by_value("delivered")
    browser.find_element(By.ID, "search").click()
    justify(browser, "Audit and assurance", "Monthly check of the housing repairs feed")
    results = wait(browser).until(ec.visibility_of_element_located((By.ID, "results")))
    assert results.text == "1 record"
    link = browser.find_element(By.LINK_TEXT, seeded.redditch_event)
    shoot("audit-search")
    link.click()
    justify(browser, "Audit and assurance", "Monthly check of the housing repairs feed")
    expect_heading(browser, seeded.redditch_event)
    assert HOUSING in browser.page_source
    shoot("event-detail")


def test_subject_access_report_and_csv_export(
    browser: webdriver.Chrome, seeded: Seeded, shoot: Shoot
) -> None:
    sign_in(browser, seeded, "ig.officer")
    browser.find_element(By.LINK_TEXT, "Subject access").click()
    expect_heading(browser, "Subject access report")
    browser.find_element(By.ID, "subject").send_keys(seeded.subject)
    browser.find_element(By.ID, "run-sar").click()
    shoot("justification")
    justify(browser, "Subject access request", "SAR 2026/117 received 20 November")
    expect_heading(browser, "Subject access report")
    disclosures = browser.find_element(By.ID, "disclosures").text
    assert disclosures.startswith("Disclosures (")
    assert disclosures != "Disclosures (0)"
    assert seeded.redditch_event in browser.page_source
    shoot("sar")
    browser.find_element(By.ID, "sar-csv").click()
    exported = seeded.downloads / "subject-access.csv"
    # poll for the finished download (Chromium writes *.crdownload first)
    deadline = time.monotonic() + WAIT
    while not exported.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert exported.exists(), (
        f"no download in {seeded.downloads}: {list(seeded.downloads.iterdir())}"
    )
    rows = list(csv.DictReader(io.StringIO(exported.read_text(encoding="utf-8"))))
    assert {r["event_id"] for r in rows} == {seeded.redditch_event}
    assert HOUSING in {r["recipient"] for r in rows}
    browser.find_element(By.ID, "sar-print").click()
    wait(browser).until(ec.url_contains("print=1"))
    assert not browser.find_element(By.CLASS_NAME, "nav").is_displayed()
    shoot("sar-printable")


def test_marac_board_shows_the_flag_and_its_departments(
    browser: webdriver.Chrome, seeded: Seeded, shoot: Shoot
) -> None:
    sign_in(browser, seeded, "marac.coord")
    browser.find_element(By.LINK_TEXT, "MARAC board").click()
    justify(browser, "MARAC case management", "Preparing the MARAC meeting on 26 November")
    expect_heading(browser, "MARAC board")
    flag = browser.find_element(By.XPATH, f"//section[.//h2[contains(., '{seeded.case}')]]")
    # the coordinator reads names; the id stays in the title for whoever needs it
    housing = flag.find_element(By.XPATH, f".//td[@class='department']/span[@title='{HOUSING}']")
    assert housing.text == "Redditch BC, Housing Repairs"
    assert "awaiting" in flag.text  # nobody has acknowledged yet, and none is overdue
    assert browser.find_element(By.ID, "overdue-count").text == "0"
    shoot("marac-board")


def test_an_agency_user_cannot_open_another_partys_event(
    browser: webdriver.Chrome, seeded: Seeded, shoot: Shoot
) -> None:
    sign_in(browser, seeded, "housing.desk")
    nav = browser.find_element(By.CLASS_NAME, "nav").text
    assert "MARAC board" not in nav
    assert "Subject access" not in nav
    browser.get(f"{seeded.url}/events/{seeded.bromsgrove_event}")
    expect_heading(browser, "Access denied")
    assert (
        "not one your party published or received"
        in browser.find_element(By.ID, "error-detail").text
    )
    shoot("denied")
    browser.get(seeded.url + "/audit")
    party = browser.find_element(By.ID, "party")
    assert party.get_attribute("readonly") is not None
    assert party.get_attribute("value") == HOUSING
    browser.get(seeded.url + "/marac")
    expect_heading(browser, "Access denied")
    shoot("denied-board")


# -- the "why" of every audit row, names for ids, the integrity page in words (issue 18) -----


def audit_rows(browser: webdriver.Chrome) -> list[tuple[str, str, str]]:
    """(decision, who, why) of each row of the audit search results."""
    wait(browser).until(ec.visibility_of_element_located((By.ID, "results")))
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.audit-row")
    return [
        (
            row.find_element(By.CSS_SELECTOR, ".tag").text,
            row.find_element(By.CSS_SELECTOR, "td.who").text,
            row.find_element(By.CSS_SELECTOR, "td.why").text,
        )
        for row in rows
    ]


def search(browser: webdriver.Chrome, seeded: Seeded, **query: str) -> None:
    browser.get(f"{seeded.url}/audit?{urlencode(query)}")
    justify(browser, "Audit and assurance", "Checking why the flag went where it went")


def test_audit_rows_say_who_and_why(
    browser: webdriver.Chrome, seeded: Seeded, shoot: Shoot
) -> None:
    sign_in(browser, seeded, "ig.officer")
    search(browser, seeded, event=seeded.bromsgrove_event, decision="withheld")
    withheld = audit_rows(browser)
    shoot("withheld-why")
    housing = [r for r in withheld if "Redditch BC, Housing Repairs" in r[1]]
    assert housing, withheld
    decision, who, why = housing[0]
    assert decision == "withheld"
    # names first, the ids on a second line for an IG officer quoting the protocol
    assert who.splitlines() == [
        "North Worcs MARAC, Coordinator",
        "marac.north-worcs",
        "→ Redditch BC, Housing Repairs",
        HOUSING,
    ]
    assert "condition not met" in why  # the reason, which was only in --json

    search(browser, seeded, event=seeded.redditch_event, decision="delivered")
    delivered = {r[1].splitlines()[-1]: r for r in audit_rows(browser)}
    assert delivered[HOUSING][2].startswith("rule marac-flag-district-departments: address, ")

    search(browser, seeded, decision="consulted")
    consulted = audit_rows(browser)
    shoot("consulted-why")
    assert consulted
    mine = [r for r in consulted if r[1] == "ig.officer (ig-officer)"]
    assert mine, consulted  # the viewer, not "-"
    assert any(
        why.endswith("Audit and assurance: Checking why the flag went where it went")
        for _, _, why in mine
    ), mine


def test_hold_rows_say_what_was_held_by_whom(
    browser: webdriver.Chrome, seeded: Seeded, shoot: Shoot
) -> None:
    audit_case_action(
        HubSettings(data_dir=seeded.data_dir),
        case_ref=seeded.case,
        decision=AuditDecision.HOLD_PLACED,
        reason="legal hold: Domestic Homicide Review",
        by="dhr.chair",
    )
    sign_in(browser, seeded, "ig.officer")
    search(browser, seeded, case=seeded.case, decision="hold_placed")
    rows = audit_rows(browser)
    shoot("hold-why")
    assert len(rows) == 1, rows
    decision, who, why = rows[0]
    assert (decision, who) == ("hold_placed", "dhr.chair")
    assert why.startswith("case ")
    assert why.endswith(": legal hold: Domestic Homicide Review")
    assert " - -> - " not in browser.page_source


def test_integrity_page_says_it_in_words(
    browser: webdriver.Chrome, seeded: Seeded, shoot: Shoot
) -> None:
    settings = HubSettings(data_dir=seeded.data_dir)
    with SQLiteAuditStore(settings.audit_db_path) as store:
        AuditLog(store, signer=log_signer(settings)).checkpoint()
        size = store.size()
    sign_in(browser, seeded, "ig.officer")
    browser.find_element(By.LINK_TEXT, "Log integrity").click()
    expect_heading(browser, "Log integrity")
    summary = browser.find_element(By.ID, "integrity-summary").text
    assert summary.startswith(f"The log's {size:,} records are intact as of "), summary
    assert "not yet checked independently" in summary
    assert "signed by north-worcestershire-csp.hub/audit (key " in summary
    note = browser.find_element(By.ID, "checkpoint")
    assert not note.is_displayed()  # the raw note is behind a disclosure
    shoot("integrity-words")
    browser.find_element(By.ID, "verify-now").click()
    wait(browser).until(
        ec.text_to_be_present_in_element((By.ID, "integrity-summary"), "last independent check")
    )
    after = browser.find_element(By.ID, "integrity-summary").text
    assert "; last independent check " in after
    assert "records); signed by " in after
    browser.find_element(By.CSS_SELECTOR, "#checkpoint-details summary").click()
    wait(browser).until(ec.visibility_of_element_located((By.ID, "checkpoint")))
    assert browser.find_element(By.ID, "checkpoint").text.startswith(
        "north-worcestershire-csp.hub/audit"
    )
    shoot("integrity-note-open")
