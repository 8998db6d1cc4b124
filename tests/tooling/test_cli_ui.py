"""`mlops ui` as a user starts it: Airflow standalone and the MLflow UI on a fresh home, files private."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from receivers import free_port

pytestmark = pytest.mark.e2e

STARTUP_SECONDS = 240


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ui_leaves_the_generated_password_file_private(tmp_path: Path) -> None:
    """Airflow's SimpleAuthManager writes the admin password in plain text with a bare ``open()``: it used to
    be 0644 (world-readable); under ``mlops ui``'s umask it is 0600, and so is ``airflow.cfg``."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "MLOPS_"))}
    env.update(MLOPS_HOME=str(home), PYTHONUNBUFFERED="1")
    log = (tmp_path / "ui.log").open("w")
    ui = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlops"), "ui", "--home", str(home),
         "--airflow-port", str(free_port()), "--mlflow-port", str(free_port())],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    passwords = home / "airflow" / "simple_auth_manager_passwords.json.generated"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (passwords.exists() and passwords.read_text().strip()):
            assert ui.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "ui.log").read_text()[-3000:]
            time.sleep(1)
        assert '"admin"' in passwords.read_text()
        assert _mode(passwords) == 0o600
        assert _mode(home / "airflow" / "airflow.cfg") == 0o600
        assert _mode(home / "airflow") == 0o700
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(timeout=30)
        log.close()
