"""The console's banner for an information sharing agreement due for review or suspended.

Headless Chromium over a console whose clock is a file the test moves: the banner names the
MARAC agreement 30 days before its review date, on every page, says "suspended" once the date
has passed, and goes only when the protocol names a new review date (the agreement renewed).
Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from hub.clock import FileClock
from hub.policies.loader import load_protocol
from hub.settings import HubSettings, default_protocol_path
from hub.web import Accounts, Console, ConsoleServer, Role, create_app
from tests.browser.conftest import ARTIFACTS, PASSWORD, _browser_binaries

pytestmark = [pytest.mark.browser, pytest.mark.integration]

AGREEMENT = "NW-CSP-ISA-MARAC-2025"
REVIEW = next(a for a in load_protocol(default_protocol_path()).agreements if a.id == AGREEMENT)
WAIT = 15.0


@dataclass(frozen=True)
class Served:
    url: str
    clock: FileClock
    protocol: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A console over its own data dir and a copy of the reference protocol, clock in a file."""
    _browser_binaries()  # skip before starting anything
    root = tmp_path_factory.mktemp("agreement-banner")
    protocol = root / "protocol.yaml"
    protocol.write_text(default_protocol_path().read_text())
    clock = FileClock(root / "clock")
    clock.set(dt.datetime.combine(REVIEW.review_date, dt.time(9), tzinfo=dt.UTC))
    settings = HubSettings(data_dir=root / "data", protocol=protocol)
    accounts = Accounts(settings.console_accounts_path)
    accounts.add(name="ig.officer", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    console = Console(settings=settings, accounts=accounts, clock=clock)
    server = ConsoleServer(create_app(console), host="127.0.0.1", port=0)
    url = server.start()
    try:
        yield Served(url=url, clock=clock, protocol=protocol)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[webdriver.Chrome]:
    chromium, chromedriver = _browser_binaries()
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1024",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _shoot(browser: webdriver.Chrome, step: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"agreement-banner-{step}.png"
    browser.save_screenshot(str(path))
    print(f"screenshot: {path}")


def _banner(browser: webdriver.Chrome, url: str) -> str | None:
    """What the banner on the page at ``url`` says of the agreement, or None: not named."""
    browser.get(url)
    WebDriverWait(browser, WAIT).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    found = browser.find_elements(
        By.CSS_SELECTOR, f'#agreements-alert li[data-agreement="{AGREEMENT}"]'
    )
    return found[0].text if found else None


def test_the_banner_stays_on_every_page_until_the_agreement_is_renewed(
    browser: webdriver.Chrome, served: Served
) -> None:
    served.clock.set(dt.datetime.combine(REVIEW.review_date, dt.time(9), tzinfo=dt.UTC)
                     - dt.timedelta(days=31))  # fmt: skip
    browser.get(served.url + "/sign-in")
    browser.find_element(By.ID, "name").send_keys("ig.officer")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "password").submit()
    WebDriverWait(browser, WAIT).until(ec.url_contains("/dashboard"))
    assert _banner(browser, served.url + "/dashboard") is None  # 31 days ahead: nothing yet

    served.clock.set(served.clock() + dt.timedelta(days=1))  # 30 days before the review date
    for page in ("/dashboard", "/protocol"):
        text = _banner(browser, served.url + page)
        assert text is not None, page
        assert f"{AGREEMENT} is due for review on {REVIEW.review_date} (30 days)" in text
    _shoot(browser, "due")

    served.clock.set(dt.datetime.combine(REVIEW.review_date, dt.time(9), tzinfo=dt.UTC)
                     + dt.timedelta(days=1))  # fmt: skip
    text = _banner(browser, served.url + "/dashboard")
    assert text is not None
    assert f"{AGREEMENT} is suspended" in text
    assert "rules relying on it would share" in text
    _shoot(browser, "suspended")

    renewed = served.protocol.read_text().replace(
        f"review_date: {REVIEW.review_date}", "review_date: 2028-09-30", 1
    )
    assert renewed != served.protocol.read_text()
    served.protocol.write_text(renewed)
    assert _banner(browser, served.url + "/dashboard") is None
    _shoot(browser, "renewed")
