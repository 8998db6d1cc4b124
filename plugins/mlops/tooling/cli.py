"""The ``mlops`` command.

    mlops config check [--dir DIR] [--quick]   validate every pipeline config and print the errors
    mlops config reference [--check]          regenerate docs/pipeline-config.md and include/pipelines/pipeline.schema.json
    mlops config infer DATA --target COL [--task T] [-o FILE]
                                                 propose features and expectations from a sample batch
    mlops baseline show|reset PIPELINE           the recorded baseline of a pipeline without expectations
    mlops demo [--home DIR] [--keep] [--pipeline NAME ...]
                                                 the demo story through Airflow on the embedded default
    mlops ui [--home DIR]                        Airflow (standalone) and the MLflow UI on the demo's stores
    mlops env [--home DIR]                       shell exports to use the airflow/mlflow CLIs on those stores
                                                 (migrates the home's Airflow database first when needed)
    mlops serve PIPELINE [--host H] [--port P]   the model server of a pipeline's champion
    mlops rollback PIPELINE [--to-version N] --reason TEXT
    mlops history PIPELINE [--json]              gate verdicts, promotions and rollbacks, oldest first
    mlops audit PIPELINE [--format table|csv|json] [--output FILE]
                                                 every version: verdict, approvals, promotions, rollbacks
    mlops card PIPELINE [VERSION] [--html] [--output FILE]
                                                 a version's model card (default: the champion)
    mlops reproduce PIPELINE VERSION [--tolerance T] [--json]
                                                 rebuild a version from its lineage and compare
    mlops data generate PIPELINE --out DIR ...  write dated batches (drift, corruption on request; --help)
    mlops simulate [PIPELINE] [--windows N] [--onset K] [--feature-drift S] [--concept-drift C] ...
                                                 replay a drifting stream through the model server and
                                                 compare retraining policies (never, periodic, on drift)
    mlops stack up|down|status [--home DIR]     the production stack on 127.0.0.1, without Docker
    mlops stack compose                          print docker-compose.yaml (generated from mlops.tooling.stack)
    mlops stack env-file                         print an .env with fresh random secrets

Airflow reads its settings when first imported, so nothing here imports it before the environment is set.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.config import settings
from mlops.tooling import data_commands, stack_commands

if TYPE_CHECKING:
    from mlops.config import PipelineConfig


def _config_check(args: argparse.Namespace) -> int:
    from mlops.config import check_config_deep, load_all

    directory = Path(args.dir) if args.dir else settings.pipelines_dir()
    files = sorted(directory.glob("*.y*ml"))
    if not files:
        print(f"No pipeline configs (*.yaml) in {directory}")
        return 1
    configs, errors = load_all(directory)
    failed = len(errors)
    for error in errors.values():
        print(f"FAIL {error}")
    for name, config in sorted(configs.items()):
        problems = [] if args.quick else check_config_deep(config)
        if problems:
            failed += 1
            listed = "\n".join(f"  - {p}" for p in problems)
            print(f"FAIL {directory / (name + '.yaml')}: {len(problems)} problem(s):\n{listed}")
        else:
            print(f"ok   {name}: {config.task}, {len(config.features)} features, {config.model.estimator}")
    print(f"{len(files) - failed} of {len(files)} pipeline config(s) valid.")
    return 1 if failed else 0


def _config_reference(args: argparse.Namespace) -> int:
    from mlops.config import reference
    from mlops.errors import MlopsError

    try:
        docs, schema = reference.default_paths()
    except MlopsError as exc:
        print(f"cannot regenerate the config reference: {exc}")
        return 1
    if args.check:
        stale = reference.stale_files(docs, schema)
        for path in stale:
            print(f"stale: {path} differs from the schema; run `mlops config reference`")
        return 1 if stale else 0
    changed = reference.write(docs, schema)
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print(f"up to date: {docs}, {schema}")
    return 0


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home).expanduser().resolve() if args.home else settings.mlops_home()


def _apply_env(home: Path, *, migrate: bool = True) -> dict[str, str]:
    """Point this process at ``home``'s stores and, with ``migrate``, bring its Airflow database up to date."""
    os.environ["MLOPS_HOME"] = str(home)
    env = settings.airflow_env(home)
    os.environ.update(env)
    if migrate:
        _ensure_airflow_db(env)
    return env


def _ensure_airflow_db(env: dict[str, str]) -> None:
    from mlops.tooling.airflow_db import ensure_airflow_db

    # On stderr: `mlops env` prints only the exports on stdout, for eval.
    ensure_airflow_db(env, say=lambda line: print(line, file=sys.stderr))


def _demo(args: argparse.Namespace) -> int:
    home = _home(args)
    _apply_env(home, migrate=False)  # the demo clears the home first, then migrates (demo._prepare_home)
    from mlops.tooling.demo import run_demo

    return run_demo(home, pipelines=args.pipeline or None, keep=args.keep)


def _env(args: argparse.Namespace) -> int:
    home = _home(args)
    env = settings.airflow_env(home)
    home.mkdir(parents=True, exist_ok=True)
    _ensure_airflow_db(env)  # once: then `airflow dags test` works on a fresh home
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    home = _home(args)
    bin_dir = Path(sys.executable).parent
    # Files of `mlops ui` are its user's only (Airflow writes the admin password in plain text with a bare
    # open()): set before anything is written, inherited by Airflow's and MLflow's processes.
    os.umask(0o077)
    env = {**os.environ, **_apply_env(home), "AIRFLOW__API__PORT": str(args.airflow_port)}
    # airflow standalone starts its components as `airflow ...` subprocesses: they must find ours.
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    mlflow_cmd = [
        str(bin_dir / "mlflow"), "ui", "--backend-store-uri", env["MLFLOW_TRACKING_URI"],
        "--host", "127.0.0.1", "--port", str(args.mlflow_port),
    ]  # fmt: skip
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    if passwords.exists():
        passwords.chmod(0o600)  # from a run before the mask: Airflow rewrites it in place, keeping its mode
    print(f"MLflow UI   http://127.0.0.1:{args.mlflow_port}   (store {env['MLFLOW_TRACKING_URI']})")
    print(f"Airflow UI  http://127.0.0.1:{args.airflow_port}   user 'admin', password in {passwords}")
    print("Ctrl-C stops both.")
    mlflow = subprocess.Popen(mlflow_cmd, env=env)
    try:
        return subprocess.call([str(bin_dir / "airflow"), "standalone"], env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        mlflow.terminate()
        mlflow.wait(timeout=30)


def _data_generate(args: argparse.Namespace) -> int:
    from mlops_datagen.__main__ import main as generate

    return generate(args.generator_args)


def _pipeline(name: str) -> PipelineConfig:
    from mlops.config import load_all

    configs, errors = load_all(settings.pipelines_dir())
    if name not in configs:
        broken = [str(e) for path, e in errors.items() if Path(path).stem == name]
        raise SystemExit(broken[0] if broken else f"no pipeline '{name}' in {settings.pipelines_dir()}")
    return configs[name]


def _serve(args: argparse.Namespace) -> int:
    from mlops.airflow.alerts import model_server_alert
    from mlops.serving.app import run

    config = _pipeline(args.pipeline)
    run(
        config,
        host=args.host or config.serving.host,
        port=args.port or config.serving.port,
        alert=model_server_alert(config),
    )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from mlops.errors import MlopsError
    from mlops.services.deploy import rollback

    config = _pipeline(args.pipeline)
    actor = f"cli:{getpass.getuser()}"
    try:
        entry = rollback(config, to_version=args.to_version, actor=actor, reason=args.reason)
    except MlopsError as exc:
        print(f"rollback refused: {exc}")
        return 1
    from mlops.registry.cards import refresh_cards

    refresh_cards(config.name, [entry["to_version"], entry.get("from_version")])
    print(f"{config.name}: champion v{entry['from_version']} -> v{entry['to_version']} ({args.reason})")
    return 0


def _history(args: argparse.Namespace) -> int:
    from mlops.registry.governance import SEMVER_TAG, versions
    from mlops.services.deploy import history

    name = _pipeline(args.pipeline).name
    entries = history(name)
    semvers = {int(v.version): v.tags.get(SEMVER_TAG) or "-" for v in versions(name)}
    for entry in entries:
        entry["semver"] = semvers.get(entry["version"], "-")
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    print(f"{'when (UTC)':<24} {'version':>7} {'semver':<8}  {'event':<16} {'by':<28} details")
    for entry in entries:
        moved = ""
        if entry.get("to_version") is not None:
            moved = f"v{entry.get('from_version') or '-'} -> v{entry['to_version']}  "
        why = entry.get("reason") or "; ".join(entry.get("reasons") or [])
        print(
            f"{entry['at'][:23]:<24} {'v' + str(entry['version']):>7} {entry['semver']:<8}  {entry['event']:<16} {str(entry.get('by'))[:28]:<28} {moved}{why}"
        )
    return 0


def _write_or_print(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text if text.endswith("\n") else text + "\n")
        print(f"wrote {output}")
    else:
        print(text.rstrip("\n"))


def _audit(args: argparse.Namespace) -> int:
    from mlops.registry.governance import audit_report, render_audit

    records = audit_report(_pipeline(args.pipeline).name)
    _write_or_print(render_audit(records, args.format), args.output)
    return 0


def _card(args: argparse.Namespace) -> int:
    from mlops import registry
    from mlops.registry.cards import build_card

    name = _pipeline(args.pipeline).name
    version = args.version or registry.alias_version(name, registry.CHAMPION)
    if version is None:
        version = registry.alias_version(name, registry.CHALLENGER)
    if version is None:
        print(f"{name}: no champion and no challenger; give a version")
        return 1
    try:
        card = build_card(name, int(version))
    except Exception as exc:  # MLflow says "version not found" in its own words
        print(f"{name} v{version}: no model card ({type(exc).__name__}: {exc})")
        return 1
    _write_or_print(card.to_html() if args.html else card.to_markdown(), args.output)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from mlops.errors import MlopsError
    from mlops.tooling.simulation import SimulationSettings, run_simulation

    config = _pipeline(args.pipeline)
    out = Path(args.out).expanduser() if args.out else settings.mlops_home() / "simulation"
    options = SimulationSettings(
        out=out,
        windows=args.windows,
        onset=args.onset,
        feature_drift=args.feature_drift,
        concept_drift=args.concept_drift,
        rows_per_window=args.rows_per_window,
        initial_rows=args.initial_rows,
        period=args.period,
        label_delay=args.label_delay,
        seed=args.seed,
        reports=args.reports,
        check_agreement=args.check_agreement,
        port=args.port,
    )
    try:
        result = run_simulation(config, options, progress=print)
    except MlopsError as exc:
        print(f"simulation failed: {exc}")
        return 1
    print()
    print(result.table_markdown())
    print()
    print(result.goals_markdown())
    print(f"\nWrote {result.csv_path}, {result.markdown_path} and {result.plot_path}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from mlops.errors import MlopsError
    from mlops.services.reproduce import DIFFERENT, reproduce

    name = _pipeline(args.pipeline).name
    try:
        result = reproduce(name, args.version, tolerance=args.tolerance, actor=f"cli:{getpass.getuser()}")
    except MlopsError as exc:
        print(f"cannot reproduce {name} v{args.version}: {exc}")
        return 1
    print(json.dumps(result.to_dict(), indent=2, default=str) if args.json else result.summary())
    return 1 if result.outcome == DIFFERENT else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description="MLOps pipelines on Apache Airflow.")
    commands = parser.add_subparsers(dest="command", required=True)

    config = commands.add_parser("config", help="pipeline configs").add_subparsers(
        dest="action", required=True
    )
    check = config.add_parser("check", help="validate every pipeline config and print the errors")
    check.add_argument("--dir", help="folder of pipeline YAML files (default: include/pipelines)")
    check.add_argument("--quick", action="store_true", help="schema only: do not import the estimators")
    check.set_defaults(func=_config_check)
    config_reference = config.add_parser(
        "reference",
        help="generate docs/pipeline-config.md and include/pipelines/pipeline.schema.json from the schema",
    )
    config_reference.add_argument(
        "--check", action="store_true", help="exit 1, naming the stale files, instead of writing them"
    )
    config_reference.set_defaults(func=_config_reference)
    data_commands.add_infer_parser(config)
    data_commands.add_baseline_parser(commands)

    demo = commands.add_parser("demo", help="run the demo story through Airflow on the embedded default")
    demo.add_argument("--home", help="state folder (default: MLOPS_HOME or .mlops in the checkout)")
    demo.add_argument("--pipeline", action="append", help="only this pipeline (repeatable)")
    demo.add_argument(
        "--keep", action="store_true", help="keep the state of an earlier demo instead of starting fresh"
    )
    demo.set_defaults(func=_demo)

    ui = commands.add_parser("ui", help="start airflow standalone and mlflow ui on the demo's stores")
    ui.add_argument("--home", help="state folder (default: MLOPS_HOME or .mlops in the checkout)")
    ui.add_argument("--airflow-port", type=int, default=8080)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.set_defaults(func=_ui)

    serve = commands.add_parser("serve", help="serve the pipeline's champion over HTTP (follows the alias)")
    serve.add_argument("pipeline")
    serve.add_argument("--host", help="default: the config's serving.host (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default: the config's serving.port (8000)")
    serve.set_defaults(func=_serve)

    roll = commands.add_parser("rollback", help="point the champion back at an earlier version")
    roll.add_argument("pipeline")
    roll.add_argument("--to-version", type=int, help="default: the version the current champion replaced")
    roll.add_argument("--reason", required=True, help="why (kept in the audit)")
    roll.set_defaults(func=_rollback)

    hist = commands.add_parser("history", help="every gate verdict, promotion and rollback of a pipeline")
    hist.add_argument("pipeline")
    hist.add_argument("--json", action="store_true", help="machine-readable output")
    hist.set_defaults(func=_history)

    audit = commands.add_parser(
        "audit", help="every version with its verdict, approvals, promotions and rollbacks (who, when)"
    )
    audit.add_argument("pipeline")
    audit.add_argument("--format", choices=("table", "csv", "json"), default="table")
    audit.add_argument("--output", help="write to this file instead of the terminal")
    audit.set_defaults(func=_audit)

    card = commands.add_parser("card", help="a model version's card (Markdown, or HTML with --html)")
    card.add_argument("pipeline")
    card.add_argument("version", nargs="?", type=int, help="default: the champion (else the challenger)")
    card.add_argument("--html", action="store_true", help="self-contained HTML instead of Markdown")
    card.add_argument("--output", help="write to this file instead of the terminal")
    card.set_defaults(func=_card)

    repro = commands.add_parser(
        "reproduce", help="rebuild a version from its lineage and compare it with the original"
    )
    repro.add_argument("pipeline")
    repro.add_argument("version", type=int)
    repro.add_argument(
        "--tolerance", type=float, default=1e-6, help="largest numeric difference for 'within tolerance'"
    )
    repro.add_argument("--json", action="store_true", help="the whole report as JSON")
    repro.set_defaults(func=_reproduce)

    env = commands.add_parser(
        "env", help="print shell exports for the airflow and mlflow CLIs (migrates once)"
    )
    env.add_argument("--home", help="state folder (default: MLOPS_HOME or .mlops in the checkout)")
    env.set_defaults(func=_env)

    sim = commands.add_parser(
        "simulate",
        help="replay a drifting stream through the model server; compare never / periodic / on-drift retraining",
    )
    sim.add_argument("pipeline", nargs="?", default="demand_forecast", help="default: demand_forecast")
    sim.add_argument(
        "--windows", type=int, default=30, help="windows (simulated days) to replay (default 30)"
    )
    sim.add_argument("--onset", type=int, default=20, help="first drifted window, 0-based (default 20)")
    sim.add_argument(
        "--feature-drift", type=float, default=1.0, metavar="SIZE", help="input shift (default 1.0)"
    )
    sim.add_argument(
        "--concept-drift",
        type=float,
        default=0.5,
        metavar="SIZE",
        help="target-rule change, 0-1 (default 0.5)",
    )
    sim.add_argument(
        "--rows-per-window", type=int, default=1000, help="predictions per window (default 1000)"
    )
    sim.add_argument(
        "--initial-rows", type=int, default=3000, help="the first champion's batch (default 3000)"
    )
    sim.add_argument(
        "--period", type=int, default=3, help="the periodic policy retrains every N windows (default 3)"
    )
    sim.add_argument(
        "--label-delay", type=int, default=1, help="windows until feedback labels arrive (default 1)"
    )
    sim.add_argument("--out", help="output folder (default: <MLOPS_HOME>/simulation)")
    sim.add_argument("--seed", type=int, default=7, help="seed of the generated stream (default 7)")
    sim.add_argument(
        "--reports", action="store_true", help="draw Evidently's HTML report of every window (slow)"
    )
    sim.add_argument(
        "--check-agreement",
        action="store_true",
        help="also run a plain Evidently DataDriftPreset per window and count per-feature disagreements",
    )
    sim.add_argument("--port", type=int, help="the model servers' port (default: a free one)")
    sim.set_defaults(func=_simulate)

    stack_commands.add_stack_parser(commands)

    data = commands.add_parser("data", help="sample data").add_subparsers(dest="action", required=True)
    generate = data.add_parser(
        "generate",
        help="write dated batches of an example pipeline (same options as python -m mlops_datagen)",
        add_help=False,
    )
    generate.add_argument("generator_args", nargs=argparse.REMAINDER)
    generate.set_defaults(func=_data_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["data", "generate"]:  # the generator's own CLI, options and --help included
        return _data_generate(argparse.Namespace(generator_args=argv[2:]))
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
