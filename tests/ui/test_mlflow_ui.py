"""MLflow 3's UI over three real versions of breast_cancer, in Chromium: our experiments open in its machine-learning
view, the registry shows the versions with their aliases, and the docs' screenshots (docs/mlflow-ui.md) come
from here.

The screenshots go to a temporary folder; ``MLOPS_UPDATE_SCREENSHOT=1`` writes them to docs/images/mlflow/.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium
from mlflow_server import PIPELINE, REPO, MlflowServer, start_mlflow_server

pytestmark = pytest.mark.browser
DOCS_IMAGES = REPO / "docs" / "images" / "mlflow"
ML_VIEW = "workflowType=machine_learning"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    yield from start_mlflow_server(tmp_path_factory.mktemp("mlflow-ui"))


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with chromium("1600,900") as browser:
        yield browser


def _open(driver: Any, url: str, text: str) -> str:
    """Load ``url``, wait until the page shows ``text``, close the assistant panel; the page's text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)
    _close_assistant(driver)
    time.sleep(1.5)  # charts and tables settle
    return driver.find_element(By.TAG_NAME, "body").text


def _close_assistant(driver: Any) -> None:
    """MLflow 3.17 opens its assistant on a browser's first visit; its close button is remembered."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(
        By.CSS_SELECTOR, "[data-component-id='mlflow.assistant.chat_panel.close']"
    ):
        if button.is_displayed():
            button.click()


def _choose_columns(driver: Any, base: str, experiment_id: str) -> None:
    """What "Columns" in the runs table does by hand: the primary metric, the estimator, the data and config
    hashes and the trigger reason next to each run (the table keeps its choice in the browser's storage)."""
    state = {
        "searchFilter": "",
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": [
            "attributes.`Models`",
            "metrics.`roc_auc`",
            "metrics.`f1`",
            "params.`estimator`",
            "tags.`mlops.data_hash`",
            "tags.`mlops.config_hash`",
            "tags.`mlops.trigger_reason`",
        ],
    }
    driver.get(f"{base}/#/")
    key = f'MLflowLocalStorage-1.1-ExperimentPage-["{experiment_id}"]-ReactComponentState'
    driver.execute_script("localStorage.setItem(arguments[0], arguments[1])", key, json.dumps(state))


def _shot(driver: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 20_000
    return path


def test_experiment_is_an_ml_experiment_and_versions_compare_in_the_ui(
    mlflow_server: MlflowServer, driver: Any, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from selenium.webdriver.common.by import By

    client = MlflowClient(f"sqlite:///{mlflow_server.home / 'mlflow.db'}")
    experiment = client.get_experiment(mlflow_server.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    folder = DOCS_IMAGES if os.environ.get("MLOPS_UPDATE_SCREENSHOT") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    base = mlflow_server.url

    _choose_columns(driver, base, experiment.experiment_id)
    text = _open(driver, f"{base}/#/experiments/{experiment.experiment_id}/runs?{ML_VIEW}", "matching runs")
    assert "3 matching runs" in text and "/overview" not in driver.current_url  # not the GenAI overview
    _shot(driver, folder, "runs-table")

    runs = json.dumps(list(mlflow_server.run_ids.values()))
    experiments = json.dumps([experiment.experiment_id])
    text = _open(
        driver, f"{base}/#/compare-runs?runs={runs}&experiments={experiments}&{ML_VIEW}", "Comparing"
    )
    assert "Comparing 3 Runs" in text
    _shot(driver, folder, "compare-runs")

    # A version's row holds every tag of the version: a tall window shows two rows and their aliases.
    driver.set_window_size(1600, 1800)
    text = _open(driver, f"{base}/#/models/{PIPELINE}?{ML_VIEW}", "Versions")
    assert "@ champion" in text and "@ challenger" in text
    driver.execute_script(
        "arguments[0].scrollIntoView()",
        driver.find_element(By.XPATH, "//*[normalize-space(text())='Versions']"),
    )
    _shot(driver, folder, "model-versions")
    driver.set_window_size(1600, 900)

    text = _open(driver, f"{base}/#/models/{PIPELINE}/versions/2?{ML_VIEW}", "Version 2")
    assert "champion" in text and "gate.verdict" in text
    _shot(driver, folder, "model-version")
