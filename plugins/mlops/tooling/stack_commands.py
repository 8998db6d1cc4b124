"""The ``mlops stack`` commands: the production stack natively on 127.0.0.1, or its docker-compose.yaml.

    mlops stack up|down|status|env [--home DIR]   the native stack (:mod:`mlops.tooling.stack_native`)
    mlops stack compose | env-file | auth-file    docker-compose.yaml, a fresh .env, the Airflow password file

Without ``--home`` the stack is found from ``MLOPS_HOME``: that folder itself when it holds a ``stack.env`` (as
after ``eval "$(mlops stack env)"``), else ``$MLOPS_HOME/stack``. :mod:`mlops.tooling.cli` adds the parser to its
own; nothing heavy is imported before a command runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from mlops.config import settings

__all__ = ["add_stack_parser", "stack", "stack_home"]


def stack_home(args: argparse.Namespace) -> Path:
    """The native stack's folder: ``--home``, else found from ``MLOPS_HOME`` (see ``locate_home``)."""
    from mlops.tooling.stack_native import locate_home

    return locate_home(args.home, settings.mlops_home())


def stack(args: argparse.Namespace) -> int:
    """Run ``mlops stack <action>``; the exit code."""
    from mlops.errors import StackError
    from mlops.tooling import stack
    from mlops.tooling.stack_native import NativeStack, drop_databases, env_file_text, is_stack_home

    if args.action == "compose":
        print(stack.render_compose(), end="")
        return 0
    if args.action == "env-file":
        print(env_file_text(), end="")
        return 0
    if args.action == "auth-file":
        print(f"wrote {stack.write_auth_file()}")
        return 0
    home = stack_home(args)
    try:
        if args.action == "up":
            native = NativeStack.prepare(home, args.env_file)
            native.up(workers=args.workers, progress=print)
            s = native.settings
            login = f"user {s.airflow_admin_user!r}, password in {home / 'stack.env'}"
            print(f"Airflow  http://127.0.0.1:{s.airflow_port}  {login}")
            print(f"MLflow   http://127.0.0.1:{s.mlflow_port}  model server http://127.0.0.1:{s.model_port}")
            print(f"Logs and pids in {home}; `mlops stack down --home {home}` stops it.")
            return 0
        if not is_stack_home(home):
            # On stderr: `eval "$(mlops stack env)"` must not run the message as a command.
            print(
                f"no native stack in {home} (no stack.env there): nothing to {args.action}. "
                "Pass the folder `mlops stack up` used with --home.",
                file=sys.stderr,
            )
            return 1
        native = NativeStack.load(home)
        if args.action == "down":
            print(f"stopping the stack in {home}")
            if not native.down(progress=print):
                print(f"nothing to stop: no process started by `mlops stack up` in {home} is running")
            if args.purge:
                drop_databases(native.settings)
                print(f"dropped databases {native.settings.airflow_db}, {native.settings.mlflow_db}")
            return 0
        if args.action == "env":
            for key, value in native.client_env().items():
                print(f"export {key}={shlex.quote(value)}")
            return 0
        statuses = native.status()
        if args.json:
            print(json.dumps([s.__dict__ for s in statuses], indent=2))
        else:
            for st in statuses:
                print(f"{st.label:<22} {st.state:<10} {st.pid or '-':>7}  {st.detail}")
        return 0 if all(st.state in ("healthy", "external") for st in statuses) else 1
    except StackError as exc:
        print(f"stack {args.action} failed: {exc}")
        return 1


def add_stack_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``mlops stack ...``, under the ``mlops`` command's commands."""
    stack_cmd = commands.add_parser(
        "stack", help="the production stack: natively on 127.0.0.1 (up/down/status) or docker-compose.yaml"
    ).add_subparsers(dest="action", required=True)
    for action, text in (
        ("up", "start Postgres databases, Redis, S3, SMTP, MLflow, Airflow (Celery) and the model server"),
        ("down", "stop every process `up` started"),
        ("status", "each service's health"),
        ("env", "shell exports for clients of the native stack (MLflow, S3, mlops)"),
    ):
        sub = stack_cmd.add_parser(action, help=text)
        sub.add_argument(
            "--home",
            help="state folder (default: $MLOPS_HOME if it holds a stack.env, else $MLOPS_HOME/stack)",
        )
        sub.set_defaults(func=stack)
        if action == "up":
            sub.add_argument("--env-file", default=".env", help="settings and secrets (default: .env)")
            sub.add_argument("--workers", type=int, default=1, help="Celery workers (default 1)")
        if action == "down":
            sub.add_argument("--purge", action="store_true", help="also drop the two databases")
        if action == "status":
            sub.add_argument("--json", action="store_true")
    for action, text in (
        ("compose", "print docker-compose.yaml, generated from mlops.tooling.stack"),
        ("env-file", "print an .env with fresh random secrets"),
        ("auth-file", "write the Airflow user's password file from the environment (compose uses it)"),
    ):
        stack_cmd.add_parser(action, help=text).set_defaults(func=stack)
