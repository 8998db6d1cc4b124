"""The data-protection commands of ``mlops``: proposing expectations and handling the recorded baseline.

    mlops config infer DATA --target COL [--task T] [--format F] [-o FILE]
                                  propose task, features and expectations (YAML to review) from a sample batch
    mlops baseline show PIPELINE [--json]   what the pipeline's recorded baseline holds and whether it is used
    mlops baseline reset PIPELINE           retire it; the next accepted batch is recorded anew

The engines are :mod:`mlops.data.infer` and :mod:`mlops.data.baseline`; :mod:`mlops.tooling.cli` adds these
parsers to its own. Nothing heavy is imported before a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.config import settings

if TYPE_CHECKING:
    from mlops.config import PipelineConfig
    from mlops.data.baseline import Baseline

__all__ = ["add_baseline_parser", "add_infer_parser", "baseline", "config_infer"]


def add_infer_parser(config_actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``mlops config infer``, under the ``config`` command's actions."""
    infer = config_actions.add_parser(
        "infer",
        help="propose features and expectations (YAML to review) from a sample batch",
        description="Propose task, target, features and expectations from a sample CSV or Parquet batch. "
        "Review the output (lines marked `review` first), add name, data, model and gate, and commit it.",
    )
    infer.add_argument("data", help="a local CSV or Parquet file: a typical batch")
    infer.add_argument("--target", required=True, help="the column to predict")
    infer.add_argument(
        "--task", choices=("classification", "regression"), help="default: inferred from the target"
    )
    infer.add_argument("--format", choices=("auto", "csv", "parquet"), default="auto")
    infer.add_argument("-o", "--output", help="write the YAML to this file instead of the terminal")
    infer.set_defaults(func=config_infer)


def add_baseline_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``mlops baseline show|reset``."""
    actions = commands.add_parser(
        "baseline", help="the recorded baseline of a pipeline without expectations"
    ).add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="what the baseline holds and whether it is used")
    show.add_argument("pipeline")
    show.add_argument("--json", action="store_true", help="the stored JSON")
    show.set_defaults(func=baseline)
    reset = actions.add_parser(
        "reset", help="retire the baseline; the next accepted batch is recorded as the new one"
    )
    reset.add_argument("pipeline")
    reset.set_defaults(func=baseline)


def config_infer(args: argparse.Namespace) -> int:
    """Print (or write with ``-o``) the proposal; exit status 1 with the reason when there is none."""
    from mlops.data.infer import infer_file
    from mlops.errors import MlopsError

    try:
        proposal = infer_file(args.data, args.target, args.task, args.format)
    except MlopsError as exc:
        print(f"cannot infer a config: {exc}", file=sys.stderr)
        return 1
    text = proposal.to_yaml()
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def baseline(args: argparse.Namespace) -> int:
    """``show``: exit status 1 when there is no baseline; ``reset``: 0, whether there was one or not."""
    from mlops.data import baseline as baselines

    config = _pipeline(args.pipeline)
    where = baselines.baseline_uri(config.name)
    if args.action == "reset":
        retired = baselines.reset_baseline(config.name)
        if retired is None:
            print(f"{config.name}: no baseline at {where}; nothing to reset")
        else:
            print(f"{config.name}: baseline retired to {retired}; the next accepted batch is recorded anew")
        return 0
    recorded = baselines.load_baseline(config.name)
    if recorded is None:
        print(f"{config.name}: no baseline yet at {where}")
        return 1
    if args.json:
        print(recorded.to_json())
        return 0
    print(f"{config.name}: baseline of batch {recorded.batch[:12]} ({recorded.rows} rows, {recorded.source})")
    print(f"recorded {recorded.recorded_at}; {_state(config, recorded)}")
    for name, bounds in recorded.numeric.items():
        checked = f"{bounds['min']:.6g} .. {bounds['max']:.6g}"
        print(
            f"  {name:<24} numeric      {checked}  (seen {bounds['seen_min']:.6g} .. {bounds['seen_max']:.6g})"
        )
    for name, values in recorded.categorical.items():
        shown = ", ".join(map(str, values[:10])) + (f", ... ({len(values)})" if len(values) > 10 else "")
        print(f"  {name:<24} categorical  {shown}")
    for name, why in recorded.skipped.items():
        print(f"  {name:<24} not checked  {why}")
    return 0


def _state(config: PipelineConfig, recorded: Baseline) -> str:
    from mlops.data import baseline as baselines

    if not baselines.applies(config):
        if config.expectations.baseline == "off":
            return "not used (expectations.baseline: off)"
        return "not used: the config has expectations.columns rules"
    if recorded.fingerprint != baselines.config_fingerprint(config):
        return "stale (the features, target or task changed): the next accepted batch replaces it"
    return f"checked in {config.expectations.baseline} mode"


def _pipeline(name: str) -> PipelineConfig:
    from mlops.config import load_all

    configs, errors = load_all(settings.pipelines_dir())
    if name not in configs:
        broken = [str(e) for path, e in errors.items() if Path(path).stem == name]
        raise SystemExit(broken[0] if broken else f"no pipeline '{name}' in {settings.pipelines_dir()}")
    return configs[name]
