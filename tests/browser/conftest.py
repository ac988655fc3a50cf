"""One console for the browser tests, over an audit store a real hub wrote, and one Chromium.

The hub is the real supervisor on the session's embedded broker: the tests publish MARAC
flags through it, wait for the audit sink to write their records, stop it, and serve the
console over the same data dir. Chromium is Debian's ``chromium`` with ``chromium-driver``
(``make test`` installs them when it can); without them these tests skip, loudly, with the
command that installs them.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from hub.broker import EmbeddedBroker
from hub.web import Accounts, Console, ConsoleServer, Role, create_app
from tests.conftest import start_hub, unique
from tests.factories import MARAC_RAISED, marac_flag

PASSWORD = "correct horse battery"
COORDINATOR = "marac.north-worcs"
HOUSING = "redditch-bc.housing-repairs"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


@dataclass(frozen=True)
class Seeded:
    """What the hub wrote: a Redditch flag (housing receives it), a Bromsgrove one (not)."""

    url: str
    case: str
    subject: str
    redditch_event: str
    bromsgrove_event: str
    downloads: Path
    #: the hub's data dir (audit store, keys), for tests that add IG actions to the log
    data_dir: Path


def _browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "BROWSER TESTS NOT RUN: chromium and chromedriver are not installed; run "
            "`apt-get install -y chromium chromium-driver` (as root), or `make test`, which "
            "does it when it can"
        )
    return chromium, driver


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A console's data dir seeded by a hub of its own, on its own broker: on the session
    broker this hub would join the shared hub's consumer groups and route (and audit, in
    its own store) events of other tests while it runs."""
    _browser_binaries()  # skip before starting anything
    data_dir = tmp_path_factory.mktemp("console-hub")
    own_broker = EmbeddedBroker()
    own_broker.start()
    try:
        hub = start_hub(own_broker.bootstrap, data_dir, console_port=0)
    except BaseException:
        own_broker.stop()
        raise
    try:
        case, other = unique("MARAC"), unique("MARAC")
        flag = marac_flag(case)
        redditch = hub.publish(COORDINATOR, MARAC_RAISED, flag)
        bromsgrove = hub.publish(
            COORDINATOR, MARAC_RAISED, marac_flag(other, district="bromsgrove")
        )
        hub.wait_records(redditch, at_least=2)
        hub.wait_records(bromsgrove, at_least=2)
    finally:
        hub.supervisor.stop()
        own_broker.stop()  # the console reads the data dir only
    settings = hub.settings
    accounts = Accounts(settings.console_accounts_path)
    accounts.add(name="ig.officer", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    accounts.add(
        name="marac.coord", role=Role.MARAC_COORDINATOR, party=COORDINATOR, password=PASSWORD
    )
    accounts.add(name="housing.desk", role=Role.AGENCY_USER, party=HOUSING, password=PASSWORD)
    server = ConsoleServer(create_app(Console.from_settings(settings)), host="127.0.0.1", port=0)
    url = server.start()
    try:
        yield Seeded(
            url=url,
            case=case,
            subject=str(flag["subject_ref"]),
            redditch_event=redditch,
            bromsgrove_event=bromsgrove,
            downloads=tmp_path_factory.mktemp("downloads"),
            data_dir=settings.data_dir,
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def driver(seeded: Seeded) -> Iterator[webdriver.Chrome]:
    chromium, chromedriver = _browser_binaries()
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace sandbox
        "--disable-dev-shm-usage",
        "--window-size=1280,1024",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(seeded.downloads),
            "download.prompt_for_download": False,
        },
    )
    browser = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def browser(driver: webdriver.Chrome, seeded: Seeded) -> webdriver.Chrome:
    """The shared browser, signed out (each test signs in as its own role)."""
    driver.get(seeded.url + "/sign-in")
    driver.delete_all_cookies()
    return driver


@pytest.fixture
def shoot(browser: webdriver.Chrome, request: pytest.FixtureRequest) -> Iterator[object]:
    """``shoot("step")`` saves a screenshot to test-artifacts/browser/ and names it in the
    test's report; a failing test also gets one of where it stopped."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []

    def take(step: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{len(taken):02}-{step}.png"
        browser.save_screenshot(str(path))
        taken.append(path)
        request.node.user_properties.append(("screenshot", str(path)))
        print(f"screenshot: {path}")
        return path

    yield take
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        take("failed")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]  # read by the shoot fixture
    return report
