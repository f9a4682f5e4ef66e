"""The dashboard at /ui in a real browser (Debian's chromium through its chromedriver, driven by selenium): it
loads without a console error, signs in with an admin key, shows numbers that move while traffic flows through the
emulated clouds, and shows a deployment's breaker open once its cloud fails. A screenshot is kept in the test's
tmp dir (and written to $SKYRELAY_DASHBOARD_SCREENSHOT when set, which is how docs/images/dashboard.png is made)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from .harness import HELLO, openai_deployment

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ADMIN_KEY = "sk-dashboard-admin"
TEAM_KEY = "sk-dashboard-research"
SECTIONS = {
    "health": {"failure_threshold": 1},  # cloud-a's first failure opens its breaker
    "teams": {"research": {}},
    "keys": [{"name": "ops", "key": ADMIN_KEY, "role": "admin"},
             {"name": "notebook", "key": TEAM_KEY, "team": "research"}],
    "commitments": [{"name": "alpha-2026", "kind": "spend", "vendor": "alpha", "amount_usd": 1000,
                     "start": "2026-01-01", "end": "2027-01-01"}],
}


def groups(clouds):
    price = {"input_per_mtok": 2.5, "output_per_mtok": 10.0}
    return {"chat": {"max_attempts": 2, "concentration": {"max_share": 0.8},
                     "deployments": [
                         openai_deployment("east", clouds["cloud-a"], vendor="alpha", price=price, rpm=600),
                         openai_deployment("west", clouds["cloud-b"], vendor="beta", price=price)]}}


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def send(stack, count: int) -> None:
    client = stack.openai(api_key=TEAM_KEY)
    for _ in range(count):
        client.chat.completions.create(model="chat", messages=HELLO)


# Read in one script call: the page redraws its panels every 2 s, so an element found by one WebDriver call may be
# replaced before the next one reads it.
def text(driver, element_id: str) -> str:
    return driver.execute_script("return document.getElementById(arguments[0]).innerText", element_id)


def health(driver, deployment: str) -> dict:
    return driver.execute_script(
        "const r = document.querySelector(`#health tr[data-deployment=\"${arguments[0]}\"]`);"
        "return r ? {...r.dataset} : {};", deployment)


def test_dashboard_signs_in_shows_traffic_and_a_breaker_opening(make_stack, browser, tmp_path):
    stack = make_stack(groups=groups, sections=SECTIONS)
    wait = WebDriverWait(browser, 20, poll_frequency=0.2)
    browser.get(stack.origin + "/ui")
    assert browser.find_element(By.ID, "login").is_displayed()
    assert not browser.find_element(By.ID, "dashboard").is_displayed()

    browser.find_element(By.ID, "key").send_keys(ADMIN_KEY)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait.until(lambda d: d.find_element(By.ID, "dashboard").is_displayed())
    assert browser.execute_script("return sessionStorage.getItem('skyrelay.key')") == ADMIN_KEY

    send(stack, 6)
    wait.until(lambda d: int(text(d, "total-served")) >= 6)
    first = int(text(browser, "total-served"))
    assert float(text(browser, "total-rps")) > 0
    traffic = threading.Thread(target=send, args=(stack, 10))
    traffic.start()
    wait.until(lambda d: int(text(d, "total-served")) > first)  # the numbers move while traffic flows
    traffic.join()
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#share tr[data-deployment]')].map(r => r.dataset.deployment)")
    assert set(rows) == {"east", "west"}
    assert "research" in text(browser, "spend")
    assert "alpha-2026" in text(browser, "commitments")
    assert "beta" in text(browser, "concentration")
    assert health(browser, "east")["breaker"] == "closed"

    stack.set_faults("cloud-a", [{"status": 500, "rate": 1.0}])
    send(stack, 12)  # west answers them all; east's first failure (routing picks it at random) opens its breaker
    wait.until(lambda d: health(d, "east").get("breaker") == "open")
    assert health(browser, "east")["available"] == "false"
    wait.until(lambda d: "UpstreamUnavailable" in text(d, "errors"))
    assert console_errors(browser) == []

    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    target = os.environ.get("SKYRELAY_DASHBOARD_SCREENSHOT")
    if target:
        shutil.copyfile(shot, Path(target))

    browser.find_element(By.ID, "logout").click()  # and a wrong key is refused with the gateway's reason
    browser.find_element(By.ID, "key").send_keys("sk-wrong")
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait.until(lambda d: "invalid API key" in text(d, "login-error"))
    assert browser.execute_script("return sessionStorage.getItem('skyrelay.key')") is None
