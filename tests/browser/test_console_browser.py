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

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

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
    wait(browser).until(ec.url_contains("/dashboard"))


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
    assert HOUSING in flag.text
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
