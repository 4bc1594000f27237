"""`python -m generator cost`: each environment's fixed monthly cost and the cost of one video, or a refresh of the
price snapshot from the AWS Price List bulk files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from generator import config, encode_speed
from generator.cost import calls, model, prices, render
from generator.errors import EXIT_OK, InputError

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
MAX_VIDEOS_PER_MONTH = 1e9
MIN_MINUTES, MAX_MINUTES = 0.01, 525600  # a year: the longest a Standard execution runs
MAX_GB_PER_VIDEO = 10000.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m generator cost",
        description="What each environment costs: its fixed monthly cost by tier and by resource, and the marginal "
                    "cost of one video (Fargate task time, state transitions counted from the state machine's "
                    "definition, Lambda, API and DynamoDB requests as job control's calls were recorded in the "
                    "tests, storage of the outputs), with the assumptions beside the figures. Quantities come from "
                    "templates/<env>/*.json; prices from the dated snapshot generator/cost/prices.json.",
        epilog="Exit status: 0 printed (or refreshed); 2 bad input, a resource without a price, or an unreachable "
               "Price List (one line on stderr). Writes nothing unless --refresh-prices.",
    )
    p.add_argument("--env", action="append", metavar="NAME",
                   help=f"limit to this environment (repeatable; default: all of {', '.join(config.ENVIRONMENTS)})")
    p.add_argument("--videos-per-month", default=str(model.DEFAULT_VIDEOS_PER_MONTH), metavar="N",
                   help=f"videos a month, for the monthly total (default: {model.DEFAULT_VIDEOS_PER_MONTH:g})")
    p.add_argument("--minutes-per-video", metavar="M",
                   help="task time of one video, in minutes (default: per environment, a "
                        f"{encode_speed.TYPICAL_SOURCE_MINUTES:g}-minute source at the measured encode speed on its "
                        "task, generator/encode_speed.py)")
    p.add_argument("--gb-per-video", default=str(model.DEFAULT_GB_PER_VIDEO), metavar="G",
                   help=f"GB of outputs one video writes (default: {model.DEFAULT_GB_PER_VIDEO:g})")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                   help="text (default), json, or markdown (the docs' generated cost block)")
    p.add_argument("--templates", type=Path, default=TEMPLATES, metavar="DIR",
                   help="read DIR/<env>/*.json instead of the repository's templates/")
    p.add_argument("--prices", type=Path, default=prices.SNAPSHOT, metavar="FILE",
                   help="the price snapshot (default: generator/cost/prices.json)")
    p.add_argument("--refresh-prices", action="store_true",
                   help="read every price of the snapshot afresh from the AWS Price List bulk offer files and "
                        "rewrite it (prices not found keep their value and status)")
    p.add_argument("--from", dest="source", default=prices.PRICE_LIST_BASE, metavar="URL_OR_DIR",
                   help="with --refresh-prices: where the offer files lie, as <offer>/current/<region>/index.json "
                        f"(default: {prices.PRICE_LIST_BASE})")
    return p.parse_args(argv)


def _number(text: str, option: str, low: float, high: float, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails too
        raise InputError(f"invalid {option} {config.shown(text)}; accepted: a number from {low:g} to {high:g}, "
                         f"such as {example}")
    return value


def usage_of(args: argparse.Namespace) -> model.Usage:
    return model.Usage(
        videos_per_month=_number(args.videos_per_month, "--videos-per-month", 0, MAX_VIDEOS_PER_MONTH, "1000"),
        minutes_per_video=None if args.minutes_per_video is None else
        _number(args.minutes_per_video, "--minutes-per-video", MIN_MINUTES, MAX_MINUTES, "10"),
        gb_per_video=_number(args.gb_per_video, "--gb-per-video", 0, MAX_GB_PER_VIDEO, "1.5"))


def load_templates(root: Path, env: str) -> dict[str, dict]:
    """tier -> template for templates/<env>/*.json (the parent included: its stacks are free)."""
    files = sorted((root / env).glob("*.json"))
    if not files:
        raise InputError(f"no templates for {env} in {root}: run `python -m generator` first, or pass --templates DIR")
    out = {}
    for f in files:
        try:
            out[f.stem] = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read template {f}: {e}") from None
    return out


def estimates_for(templates_by_env: dict[str, dict[str, dict]], usage: model.Usage,
                  snapshot: prices.Snapshot | None = None, job_calls: calls.JobCalls | None = None
                  ) -> list[model.Estimate]:
    """One Estimate per environment of `templates_by_env` (env -> tier -> template), in registry order."""
    snapshot = snapshot or prices.load()
    job_calls = job_calls or calls.load()
    return [model.estimate(env, config.get(env).region, tiers, usage, snapshot, job_calls)
            for env, tiers in templates_by_env.items()]


def run_estimates(args: argparse.Namespace) -> str:
    envs = [config.get(n).name for n in args.env] if args.env else list(config.ENVIRONMENTS)
    envs = [e for e in config.ENVIRONMENTS if e in envs]
    usage = usage_of(args)
    snapshot = prices.load(args.prices)
    estimates = estimates_for({env: load_templates(args.templates, env) for env in envs}, usage, snapshot)
    if args.format == "json":
        return render.to_json(estimates, snapshot, usage)
    if args.format == "markdown":
        return render.markdown(estimates, snapshot)
    return render.text(estimates, snapshot)


def refresh_prices(args: argparse.Namespace) -> str:
    raw = json.loads(args.prices.read_text(encoding="utf-8"))
    source = args.source if "://" in args.source else str(Path(args.source).resolve())
    if "://" not in source and not Path(source).is_dir():
        raise InputError(f"--from {args.source}: not a directory; accepted: a URL or a directory holding "
                         "<offer>/current/<region>/index.json offer files")
    refreshed, updated, missing = prices.refresh(raw, source)
    if not updated:
        raise InputError(f"no price of the snapshot was found in {args.source}; {args.prices} is unchanged")
    prices.write(refreshed, args.prices)
    lines = [f"refreshed {len(updated)} price(s) in {args.prices} from {args.source}"]
    if missing:
        lines.append(f"{len(missing)} not found, kept as they were: {', '.join(missing)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    print(refresh_prices(args) if args.refresh_prices else run_estimates(args), end="")
    return EXIT_OK
