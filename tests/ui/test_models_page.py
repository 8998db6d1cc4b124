"""The Models page on a running Airflow API server: who may see it, what it shows, and the page in Chromium.

The plugin's app is mounted WITHOUT Airflow's authentication; these tests show that it checks the caller's
Airflow token itself: anonymous, forged and expired tokens are refused, a token from ``POST /auth/token`` and
the UI's login cookie are accepted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import jwt
import pytest
from ui_server import PIPELINE, REPO, ModelsServer

#: The docs' screenshot is refreshed only on request (MLOPS_UPDATE_SCREENSHOT=1, as for every screenshot test):
#: a test run leaves the tree clean.
DOCS_SCREENSHOT = REPO / "docs" / "images" / "models-page.png"


def _get(server: ModelsServer, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=60, **kwargs)


def _resigned(token: str, secret: str, **claims: object) -> str:
    """The same token's claims (changed by ``claims``), signed with ``secret``."""
    header = jwt.get_unverified_header(token)
    payload = {**jwt.decode(token, options={"verify_signature": False}), **claims}
    return jwt.encode(payload, secret, algorithm=header["alg"])


@pytest.mark.e2e
def test_anonymous_requests_are_refused(models_server: ModelsServer) -> None:
    response = _get(models_server, "/mlops/api/models")
    assert response.status_code == 401 and response.json() == {"detail": "Not authenticated"}
    page = _get(models_server, "/mlops/")
    assert page.status_code == 303 and page.headers["location"] == "/auth/login?next=%2Fmlops%2F"
    report = _get(models_server, f"/mlops/reports/{PIPELINE}/gate/2")
    assert report.status_code == 303 and report.headers["location"].startswith("/auth/login?next=")
    assert "Gate verdict" not in report.text


@pytest.mark.e2e
def test_forged_and_expired_tokens_are_refused(models_server: ModelsServer) -> None:
    token = models_server.token()
    forged = _resigned(token, "not-the-servers-secret-" + "x" * 64, sub="admin", role="admin")
    response = _get(models_server, "/mlops/api/models", forged)
    assert response.status_code == 403 and response.json() == {"detail": "Invalid JWT token"}
    expired = _resigned(
        token, models_server.jwt_secret, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
    )
    response = _get(models_server, "/mlops/api/models", expired)
    assert response.status_code == 401 and response.json() == {"detail": "Token Expired"}
    # The same claims re-signed with the server's secret are accepted: the refusals above are the signature's
    # and the expiry's doing, not a malformed token's.
    assert (
        _get(models_server, "/mlops/api/models", _resigned(token, models_server.jwt_secret)).status_code
        == 200
    )
    # A bad cookie on the page asks for a login again.
    page = httpx.get(f"{models_server.url}/mlops/", cookies={"_token": forged}, timeout=60)
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login")


@pytest.mark.e2e
def test_a_valid_token_sees_the_models(models_server: ModelsServer, tmp_path: Path) -> None:
    token = models_server.token()
    response = _get(models_server, "/mlops/api/models", token)
    assert response.status_code == 200, response.text
    data = response.json()
    assert {p["name"] for p in data["pipelines"]} == {"breast_cancer", "demand_forecast", "fraud_detection"}
    (pipeline,) = [p for p in data["pipelines"] if p["name"] == PIPELINE]
    assert pipeline["champion"]["version"] == 1 and pipeline["champion"]["semver"]
    assert pipeline["challenger"]["version"] == 2 and pipeline["challenger"]["status"] == "rejected"
    gate = pipeline["gate"]
    assert gate["verdict"] == "rejected" and gate["champion_version"] == 1
    assert any("below the minimum" in reason for reason in gate["reasons"])
    monitoring = pipeline["monitoring"]
    assert monitoring["decision"] == "warn" and monitoring["model_version"] == 1
    assert any("drift" in reason for reason in monitoring["reasons"])
    assert monitoring["window_start"].startswith("2026-11-01")

    report = _get(models_server, gate["report_url"], token)
    assert report.status_code == 200 and report.text.startswith("# Gate verdict: REJECTED")
    drift = _get(models_server, monitoring["report_url"], token)
    assert drift.status_code == 200 and "mean_radius" in drift.text and len(drift.content) > 100_000
    assert drift.headers["content-security-policy"].startswith("sandbox allow-scripts")
    summary = _get(models_server, monitoring["summary_url"], token).json()
    assert summary["decision"]["status"] == "warn"
    # A run of another pipeline's experiment, or of no monitoring experiment, is not served.
    other = _get(models_server, monitoring["report_url"].replace(PIPELINE, "fraud_detection"), token)
    assert other.status_code == 404

    # The Airflow UI's login cookie works too (the page is shown in the UI's iframe with it).
    page = httpx.get(f"{models_server.url}/mlops/", cookies={"_token": token}, timeout=60)
    assert page.status_code == 200 and 'data-pipeline="breast_cancer"' in page.text
    assert f"signed in as {models_server.username}" in page.text


@pytest.mark.browser
def test_models_page_in_chromium(models_server: ModelsServer, tmp_path: Path) -> None:
    """Log in through Airflow's login page, open "Models" in the Airflow UI, check it, take the screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 60)
    try:
        # Anonymous: the page sends the browser to Airflow's login, which comes back to it.
        driver.get(f"{models_server.url}/mlops/")
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(models_server.username)
        assert "/auth/login" in driver.current_url
        driver.find_element(By.NAME, "password").send_keys(models_server.password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(ec.url_to_be(f"{models_server.url}/mlops/"))
        assert "_token" in {cookie["name"] for cookie in driver.get_cookies()}

        # The page inside the Airflow UI: the nav entry "Models" and the page in its iframe.
        driver.get(f"{models_server.url}/plugin/models")
        frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title=Models]")))
        nav = driver.find_elements(By.CSS_SELECTOR, "a[href$='plugin/models']")
        assert nav and "Models" in nav[0].text, "no 'Models' entry in the Airflow nav"
        driver.switch_to.frame(frame)
        card = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"[data-pipeline={PIPELINE}]")))
        champion = card.find_element(By.CSS_SELECTOR, "[data-role=champion]").text
        challenger = card.find_element(By.CSS_SELECTOR, "[data-role=challenger]").text
        gate = card.find_element(By.CSS_SELECTOR, "[data-role=gate]").text
        monitoring = card.find_element(By.CSS_SELECTOR, "[data-role=monitoring]").text
        assert "v1" in champion and "champion" in champion
        assert "v2" in challenger and "rejected" in challenger
        assert "rejected" in gate and "below the minimum" in gate
        assert "warn" in monitoring and "2026-11-01" in monitoring and "drift" in monitoring
        assert len(driver.find_elements(By.CSS_SELECTOR, "[data-pipeline]")) == 3
        # The chart of the primary metric: one point per gated version, the champion's marked.
        points = card.find_elements(By.CSS_SELECTOR, "[data-role=trend] g.point")
        assert [p.get_attribute("data-version") for p in points] == ["1", "2"]
        assert [p.get_attribute("data-version") for p in points if p.get_attribute("data-champion")] == ["1"]
        # Pipelines with no registered model link nowhere in MLflow.
        empty = driver.find_element(By.CSS_SELECTOR, "[data-pipeline=fraud_detection]")
        assert "no version yet" in empty.text and not empty.find_elements(By.PARTIAL_LINK_TEXT, "MLflow")

        # A report link opens a new tab although the UI sandboxes the iframe without allow-popups.
        card.find_element(By.LINK_TEXT, "Gate report").click()
        wait.until(lambda d: len(d.window_handles) == 2)
        driver.switch_to.window(driver.window_handles[1])
        wait.until(ec.url_contains(f"/mlops/reports/{PIPELINE}/gate/2"))
        assert "Gate verdict: REJECTED" in driver.find_element(By.TAG_NAME, "body").text
        driver.close()
        driver.switch_to.window(driver.window_handles[0])

        driver.switch_to.default_content()
        refresh = os.environ.get("MLOPS_UPDATE_SCREENSHOT")
        screenshot = DOCS_SCREENSHOT if refresh else tmp_path / "models.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    assert screenshot.stat().st_size > 20_000
