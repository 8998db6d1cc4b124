"""The first hour of a new user, in a real browser: every default works in the Airflow UI, the MLflow UI and the stack.

What a person does after reading docs/deploy.md, in order (the tests run in this order and share one stack):

1. ``mlops stack up``: the real command, as a subprocess, in a temporary home (free ports, databases, buckets and
   a Celery queue named after this module, so it shares the machine's Postgres and Redis with other stacks);
2. log in to Airflow in Chromium and look at the DAG list;
3. put the day's batch where the docs say (the stack's S3 landing prefix, the form's default ``data_uri``), open
   ``breast_cancer_training``'s trigger form, keep every default ("Unpause on trigger" ticked, as Airflow ticks
   it) and click Trigger: the form shows no error and the button is enabled;
4. the manual run starts at once (not queued behind the scheduled run that unpausing creates) and succeeds
   within a bound; the mailbox has no failure alert;
5. the Models page shows the champion;
6. the MLflow UI shows the registered model with its ``champion`` alias;
7. in a fresh shell, ``eval "$(mlops stack env --home ...)"`` then ``mlops stack down`` (no ``--home``, as the
   docs say) stops every process of the stack and says what it stopped.

The browser does what a person clicks; the REST API (``apache-airflow-client``) waits for run states. Screenshots
go to the test's temporary folder, or to docs/images/first-hour/ with ``MLOPS_UPDATE_SCREENSHOT=1`` (only the
screenshots of steps that passed: the docs never show a failure as the way things look). docs/deploy.md ("The
first hour in the UIs") walks through them.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import mailbox
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psutil
import pytest
from browser import chromium
from stack_helpers import eventually, stack_variables

from mlops.tooling.stack_native import NativeStack, drop_databases

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
MLOPS = REPO / ".venv" / "bin" / "mlops"
PIPELINE = "breast_cancer"
TRAINING = f"{PIPELINE}_training"
DOCS_IMAGES = REPO / "docs" / "images" / "first-hour"
#: How long a manual run with the defaults may take, from the click to success (about 1 min on an idle machine).
RUN_BOUND = 480
#: How long the manual run may sit before it starts running ("at once": the scheduler's next loops).
START_BOUND = 90


# The stack, started the way a user starts it ------------------------------------------------------------------
def _user_env(**extra: str) -> dict[str, str]:
    """A user's shell: the caller's environment without the test session's Airflow, MLflow, AWS and mlops
    settings (tests/conftest.py points those at a throw-away SQLite home), with ``.venv/bin`` first on PATH."""
    owned = ("AIRFLOW", "MLOPS_", "MLFLOW_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(owned)}
    env["PATH"] = f"{MLOPS.parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def _pids(home: Path) -> dict[str, int]:
    """The processes the stack recorded: ``run/<service>.pid``."""
    found = {}
    for file in sorted((home / "run").glob("*.pid")):
        with contextlib.suppress(ValueError, OSError):
            found[file.stem] = int(file.read_text().strip())
    return found


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    """The ``MLOPS_STACK_*`` variables of this module's stack: free ports, names with a random tag."""
    return stack_variables("first_hour")[1]


@pytest.fixture(scope="module")
def stack(settings: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """Step 1: ``mlops stack up --home <tmp>`` as a subprocess (the conftest's ``airflow_api``, ``s3`` and
    ``mlflow_client`` fixtures use this stack). Afterwards ``mlops stack down --home <tmp> --purge``, any
    process of ours still alive killed, the Celery queue deleted from the shared Redis."""
    home = tmp_path_factory.mktemp("first_hour") / "stack"
    started = time.monotonic()
    up = subprocess.run(
        [str(MLOPS), "stack", "up", "--home", str(home)],
        env=_user_env(**settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(f"step 1: mlops stack up took {time.monotonic() - started:.0f} s\n{up.stdout}")
    try:
        assert up.returncode == 0, f"mlops stack up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}"
        assert "Airflow  http://127.0.0.1:" in up.stdout, up.stdout
        yield NativeStack.load(home)
    finally:
        leftover = _pids(home)
        down = subprocess.run(
            [str(MLOPS), "stack", "down", "--home", str(home), "--purge"],
            env=_user_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for pid in leftover.values():  # only if `down` left one of the stack's own process groups running
            if _running(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        native = NativeStack.load(home)
        if down.returncode != 0 or "dropped databases" not in down.stdout:
            drop_databases(native.settings)
        import redis  # the Celery broker's client: leave no queue of ours behind in the shared Redis

        s = native.settings
        redis.Redis(host="127.0.0.1", port=s.redis_port, db=s.redis_db).delete(s.celery_queue)


@pytest.fixture(scope="module")
def story() -> dict[str, Any]:
    """What one step leaves for the next."""
    return {}


# The browser ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("first_hour_screenshots")


def _wait(driver: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout)


def _screenshot(driver: Any, shots: Path, name: str) -> Path:
    """Save the browser's window as ``name`` in the test's folder (shown in a failure's message)."""
    path = shots / name
    assert driver.save_screenshot(str(path)), path
    assert path.stat().st_size > 20_000, f"{path}: {path.stat().st_size} bytes, a blank page?"
    return path


def _publish(path: Path) -> None:
    """Copy a screenshot of a step that passed to docs/images/first-hour/ when MLOPS_UPDATE_SCREENSHOT is set."""
    if os.environ.get("MLOPS_UPDATE_SCREENSHOT"):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)


def _airflow(stack: NativeStack) -> str:
    return f"http://127.0.0.1:{stack.settings.airflow_port}"


# REST helpers --------------------------------------------------------------------------------------------------
def _safe(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:  # not there yet (404) or the API is still starting
        return None


def _run(api: Any, run_id: str) -> Any:
    from airflow_client.client.api.dag_run_api import DagRunApi

    return DagRunApi(api).get_dag_run(TRAINING, run_id)


def _runs(api: Any) -> list[Any]:
    from airflow_client.client.api.dag_run_api import DagRunApi

    return sorted(DagRunApi(api).get_dag_runs(TRAINING, limit=100).dag_runs, key=lambda r: r.run_after)


def _states(api: Any, run_id: str) -> dict[str, str | None]:
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    found = TaskInstanceApi(api).get_task_instances(TRAINING, run_id).task_instances
    return {ti.task_id: (ti.state.value if ti.state else None) for ti in found}


def _overview(api: Any) -> dict[str, Any]:
    """Every run of the training DAG: type, state and task states (for failure messages)."""
    return {
        r.dag_run_id: {"type": r.run_type.value, "state": r.state.value, "tasks": _states(api, r.dag_run_id)}
        for r in _runs(api)
    }


def _mails(stack: NativeStack) -> list[Any]:
    box = mailbox.Maildir(stack.home / "mail", factory=None, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]


# The first hour --------------------------------------------------------------------------------------------------
def test_1_mlops_stack_up_starts_the_stack(stack: NativeStack) -> None:
    s = stack.settings
    pids = _pids(stack.home)
    for service in ("s3", "smtp", "mlflow", "airflow-apiserver", "airflow-scheduler", "airflow-worker"):
        assert service in pids and _running(pids[service]), (service, pids)
    for port in (s.airflow_port, s.mlflow_port, s.s3_port, s.model_port, s.smtp_port):
        assert _listening(port), port


def test_2_log_in_and_see_the_dag_list(
    stack: NativeStack, airflow_api: Any, browser: Any, shots: Path
) -> None:
    from airflow_client.client.api.dag_api import DAGApi
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    # The DAG processor parses the DAG files once the stack is up: the list is empty until then.
    eventually(f"{TRAINING} parsed", lambda: _safe(lambda: DAGApi(airflow_api).get_dag(TRAINING)), 180)
    s = stack.settings
    browser.get(f"{_airflow(stack)}/")
    _wait(browser).until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(
        s.airflow_admin_user
    )
    assert "/auth/login" in browser.current_url, browser.current_url
    browser.find_element(By.NAME, "password").send_keys(s.airflow_admin_password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=nav-dags-link]")))

    browser.get(f"{_airflow(stack)}/dags")
    _wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=card-list]"), TRAINING)
    )
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid=dag-id]")]
    assert TRAINING in names, names
    _publish(_screenshot(browser, shots, "01-dag-list.png"))


def test_3_trigger_training_from_the_form_with_its_defaults(
    stack: NativeStack, s3: Any, browser: Any, shots: Path, story: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from mlops_datagen import generate_batches

    # The day's batch, where docs/deploy.md puts it: the stack's S3 landing prefix.
    day = datetime.now(UTC).date().isoformat()
    (batch,) = generate_batches(PIPELINE, tmp_path, batches=1, start_date=day)
    bucket = stack.settings.data_bucket
    s3.upload_file(str(batch), bucket, f"landing/{PIPELINE}/{day}.csv")

    browser.get(f"{_airflow(stack)}/dags/{TRAINING}")
    _wait(browser).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))
    ).click()
    form = _wait(browser).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".chakra-dialog__content[data-state=open]"))
    )
    data_uri = _wait(browser).until(ec.visibility_of_element_located((By.ID, "element_data_uri")))
    submit = _wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]"))
    )
    time.sleep(1)  # the form validates its defaults as it renders
    shot = _screenshot(browser, shots, "02-trigger-form.png")

    # What the form shows with its defaults: the S3 landing prefix, "Unpause" ticked, no error, Trigger enabled.
    assert data_uri.get_attribute("value") == f"s3://{bucket}/landing/{PIPELINE}/{{ds}}.csv", (
        data_uri.get_attribute("value"),
        shot,
    )
    unpause = form.find_element(
        By.XPATH, ".//label[@data-scope='checkbox'][contains(., 'Unpause')]//input[@type='checkbox']"
    )
    assert unpause.is_selected(), f"'Unpause on trigger' is not ticked by default ({shot})"
    # Airflow's form marks a field in error with data-invalid / aria-invalid and an error text under it.
    errors = form.find_elements(
        By.CSS_SELECTOR, "[data-invalid], [aria-invalid=true], [data-part=error-text]"
    )
    assert not errors, (
        f"the form opens with errors ({shot}): {[e.text or e.get_attribute('id') for e in errors]}"
    )
    assert submit.is_enabled(), f"Trigger is disabled with the defaults ({shot})"
    _publish(shot)

    submit.click()
    # The UI goes to the new run's page: /dags/<dag>/runs/<run id>.
    _wait(browser).until(ec.url_contains(f"/dags/{TRAINING}/runs/manual__"))
    story["run_id"] = unquote(browser.current_url.split("/runs/", 1)[1].split("?")[0].split("/")[0])
    story["clicked"] = time.monotonic()
    story["day"] = day


def test_4_the_manual_run_starts_at_once_and_succeeds_without_a_failure_alert(
    stack: NativeStack, airflow_api: Any, browser: Any, shots: Path, story: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    assert "run_id" in story, "step 3 did not trigger a run"
    run_id = story["run_id"]
    run = _run(airflow_api, run_id)
    assert run.run_type.value == "manual", run
    assert run.logical_date.astimezone(UTC).date().isoformat() == story["day"], run

    # Started at once: running (or already done) within the bound, not queued behind the scheduled run.
    try:
        eventually(
            f"{run_id} running",
            lambda: _run(airflow_api, run_id).state.value in ("running", "success", "failed"),
            START_BOUND,
            interval=1,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; runs: {_overview(airflow_api)}") from None
    run = _run(airflow_api, run_id)
    assert run.start_date and run.queued_at, run
    assert (run.start_date - run.queued_at).total_seconds() < START_BOUND, run

    def finished() -> str | None:
        state = str(_run(airflow_api, run_id).state.value)
        return state if state in ("success", "failed") else None

    remaining = RUN_BOUND - (time.monotonic() - story["clicked"])
    try:
        state = eventually(f"{run_id} finished", finished, max(remaining, 1))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; runs: {_overview(airflow_api)}") from None
    print(f"step 4: the manual run ended {state} {time.monotonic() - story['clicked']:.0f} s after the click")

    # Every other run the click started (unpausing makes the scheduler create today's run) ends too, so that
    # the mailbox holds whatever alert any of them sent.
    eventually(
        "every run of the training DAG finished",
        lambda: all(r.state.value in ("success", "failed") for r in _runs(airflow_api)),
        RUN_BOUND,
        interval=5,
    )
    overview = _overview(airflow_api)
    subjects = [str(m["Subject"]) for m in _mails(stack)]

    # The run's page, as a person watches it: the grid and the task list with their states.
    browser.get(f"{_airflow(stack)}/dags/{TRAINING}/runs/{run_id}")
    _wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=header-card]"), state.capitalize())
    )
    _wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"[data-testid='grid-{run_id}-deploy']"))
    )
    shot = _screenshot(browser, shots, "03-run.png")

    assert state == "success", (
        f"the manual run {run_id} {state} ({shot}); runs: {overview}; mails: {subjects}"
    )
    # Success may mean trained and promoted, or skipped as identical to the version that today's scheduled run
    # (same batch, config and code) registered first; either way no task failed.
    failed = {t: st for t, st in overview[run_id]["tasks"].items() if st in ("failed", "upstream_failed")}
    assert not failed, overview[run_id]
    assert not [s for s in subjects if "[FAILURE]" in s], f"failure alerts: {subjects}; runs: {overview}"
    _publish(shot)
    story["succeeded"] = True


def test_5_the_models_page_shows_the_champion(
    stack: NativeStack, mlflow_client: Any, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    champion = mlflow_client.get_model_version_by_alias(PIPELINE, "champion")
    browser.get(f"{_airflow(stack)}/plugin/models")
    frame = _wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title=Models]")))
    browser.switch_to.frame(frame)
    try:
        card = _wait(browser).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, f"[data-pipeline={PIPELINE}]"))
        )
        shown = card.find_element(By.CSS_SELECTOR, "[data-role=champion]").text
    finally:
        browser.switch_to.default_content()
    shot = _screenshot(browser, shots, "04-models-page.png")
    assert f"v{champion.version}" in shown and "champion" in shown, (shown, shot)
    _publish(shot)


def test_6_the_mlflow_ui_shows_the_registered_model_and_its_aliases(
    stack: NativeStack, mlflow_client: Any, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    champion = mlflow_client.get_model_version_by_alias(PIPELINE, "champion")
    browser.get(f"http://127.0.0.1:{stack.settings.mlflow_port}/#/models/{PIPELINE}")
    # MLflow 3's registered-model page: a row per version, aliases as "@ <alias>" tags.
    alias = _wait(browser, 90).until(
        ec.visibility_of_element_located(
            (By.CSS_SELECTOR, "[data-component-id*=modelversionaliastag][title=champion]")
        )
    )
    row = alias.find_element(By.XPATH, "./ancestor::*[@role='row'][1]")
    shot = _screenshot(browser, shots, "05-mlflow.png")
    assert f"Version {champion.version}" in row.text, (row.text[:300], shot)
    assert "@ champion" in alias.text.replace("\xa0", " "), (alias.text, shot)
    _publish(shot)


def test_7_mlops_stack_down_after_the_documented_eval_stops_everything(stack: NativeStack) -> None:
    s = stack.settings
    pids = _pids(stack.home)
    assert pids, "no pid files: the stack is not running"
    # A fresh shell, as docs/deploy.md types it: the eval makes it a client of the stack, then `down`
    # without --home must find the stack from what the eval set (MLOPS_HOME is the stack's home then).
    script = f'eval "$(mlops stack env --home {stack.home})" && mlops stack down'
    down = subprocess.run(
        ["bash", "-c", script], env=_user_env(), cwd=REPO, capture_output=True, text=True, timeout=300
    )
    print(f"step 7: {script}\n{down.stdout}{down.stderr}")
    assert down.returncode == 0, (down.returncode, down.stdout, down.stderr)
    for name, pid in pids.items():
        assert f"stopped {name} (pid {pid})" in down.stdout, (name, pid, down.stdout)
    alive = {name: pid for name, pid in pids.items() if _running(pid)}
    assert not alive, f"still running after `mlops stack down`: {alive}"
    open_ports = [
        p for p in (s.airflow_port, s.mlflow_port, s.s3_port, s.model_port, s.smtp_port) if _listening(p)
    ]
    assert not open_ports, f"ports still open after `mlops stack down`: {open_ports}"
    assert not list((stack.home / "run").glob("*.pid")), list((stack.home / "run").glob("*.pid"))
