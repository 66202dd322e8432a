"""`python -m bench [--quick] [--out out/BENCHMARKS.md | --update-docs] [--json out/bench.json] [--only a,b]`.

The report goes under out/ unless `--update-docs` (`make bench`) writes docs/BENCHMARKS.md, which only a full run may.

Sizes per mode:
- full:  cold init 9 runs, publisher 10 000 records, 30 of each operation, pipeline 1 000/3 000/10 000 operations,
         reconciliation at 100 000 entities, the segmented full sweep at 20 000 and 200 000 entities.
- quick (< 5 minutes, and about 10 more for the sweep): cold init 5 runs, 2 000 records, 10 of each operation,
         pipeline 100/300 operations, reconciliation at 10 000 entities, the sweep at 1 000 and 10 000 entities.
- tiny (the smoke test in `make test`): one run of two functions, 200 records, 2 of each operation,
         one pipeline of 20 operations, the sweep at 40 and 400 entities; it checks that every table is produced,
         never a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from localcloud.cli import Parser, whole
from localcloud.loader import ensure_layer_on_path
from localcloud.template import ROOT

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def _fake_aws() -> None:
    """Fake credentials before anything creates a client: nothing here may reach a real account."""
    os.environ.update(FAKE_AWS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    ensure_layer_on_path()


SECTIONS = ("coldstart", "publisher", "requests", "cost", "pipeline", "reconcile", "sweep")

MODES: dict[str, dict[str, Any]] = {
    "full": {
        "cold_runs": 9,
        "cold_only": None,
        "records": 10_000,
        "rounds": 7,
        "operations": 30,
        "load_sizes": [1000, 3000, 10_000],
        "profile_ops": 300,
        "entities": 100_000,
        "sweep_sizes": [20_000, 200_000],
    },
    "quick": {
        "cold_runs": 5,
        "cold_only": None,
        "records": 2000,
        "rounds": 5,
        "operations": 10,
        "load_sizes": [100, 300],
        "profile_ops": 100,
        "entities": 10_000,
        "sweep_sizes": [1_000, 10_000],
    },
    "tiny": {
        "cold_runs": 1,
        "cold_only": ["OrdersApiFunction", "OrdersPublisherFunction"],
        "records": 200,
        "rounds": 1,
        "operations": 2,
        "load_sizes": [20],
        "profile_ops": 10,
        "entities": 100,
        "sweep_sizes": [40, 400],
    },
}


def load_in_subprocess(operations: int) -> dict[str, Any]:
    """One pipeline size in a fresh interpreter, so its peak RSS is its own."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--load-size", str(operations)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pipeline run of {operations} operations failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(
    mode: str,
    only: set[str],
    command: str,
    sweep_sizes: list[int] | None = None,
    sweep_pages: int = 20,
    sweep_segments: tuple[int, ...] = (1, 4),
) -> dict[str, Any]:
    from bench import machine

    sizes = {**MODES[mode], **({"sweep_sizes": sweep_sizes} if sweep_sizes else {})}
    started = time.perf_counter()
    results: dict[str, Any] = {"mode": mode, "machine": machine.describe(command)}
    if "coldstart" in only:
        from bench import analysis, coldstart

        results["coldstart"] = coldstart.measure(runs=sizes["cold_runs"], only=sizes["cold_only"])
        results["coldstart"]["analysis"] = analysis.coldstart(results["coldstart"])
    if "publisher" in only:
        from bench import analysis, publisher_cpu

        results["publisher"] = publisher_cpu.measure(records=sizes["records"], rounds=sizes["rounds"])
        results["publisher"]["analysis"] = analysis.publisher(results["publisher"])
    if only & {"requests", "cost"}:
        from bench import cost, pipeline

        ours = pipeline.count_operations(sizes["operations"], capture=True)
        baseline = pipeline.count_operations(sizes["operations"], baseline=True)
        results["requests"] = {"converge": ours, "baseline": baseline}
        if "cost" in only:
            first = ours["idempotency_baseline"]["first delivery"]["dynamodb_requests_per_event"] or 1.0
            guard = round(first - 1, 2)  # the guard's writes: everything but the projection write
            results["cost"] = cost.compare(ours, baseline, guard)
            results["cost"]["guard_writes_per_event"] = guard
            results["cost"]["prices"] = cost.load_prices()["prices"]
    if "pipeline" in only:
        from bench import analysis, pipeline

        loads = [load_in_subprocess(n) for n in sizes["load_sizes"]]
        results["pipeline"] = {"burst": 10, "sizes": loads}
        results["pipeline"]["profile"] = pipeline.profile_load(sizes["profile_ops"])
        results["pipeline"]["growth"] = analysis.growth(loads)
        results["pipeline"]["not_run"] = analysis.not_run(loads)
        results["pipeline"]["analysis"] = analysis.pipeline(results["pipeline"])
    if "reconcile" in only:
        from bench import reconcile

        results["reconcile"] = reconcile.measure(sizes["entities"])
    if "sweep" in only:
        from bench import sweep

        results["sweep"] = sweep.measure(sizes["sweep_sizes"], sweep_pages, sweep_segments)
    results["seconds"] = time.perf_counter() - started
    from bench import analysis

    results["goals"] = analysis.goals(results)
    return results


BENCH_DOC = "docs/BENCHMARKS.md"  # the tracked report: a full run's, written only with --update-docs


def sections(text: str) -> set[str]:
    """An argparse type: a comma-separated subset of SECTIONS."""
    only = {s.strip() for s in text.split(",") if s.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown sections {', '.join(sorted(unknown))} (of {','.join(SECTIONS)})")
    return only


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="python -m bench",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, finishes in under 5 minutes")
    size.add_argument("--tiny", action="store_true", help="the smoke test's sizes (checks tables, not times)")
    report_path = parser.add_mutually_exclusive_group()
    report_path.add_argument("--out", default="out/BENCHMARKS.md", help="the Markdown report")
    report_path.add_argument(
        "--update-docs", action="store_true", help=f"write the Markdown report to {BENCH_DOC} (a full run only)"
    )
    parser.add_argument("--json", default="out/bench.json", help="every figure, machine-readable")
    parser.add_argument(
        "--only", type=sections, default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--sweep-sizes",
        type=whole(1),
        nargs=2,
        metavar=("SMALLER", "LARGER"),
        help="the sweep's two sizes, in entities",
    )
    parser.add_argument("--sweep-pages", type=whole(1), default=20, help="pages a sweep worker reads per invocation")
    parser.add_argument(
        "--sweep-segments",
        type=whole(1),
        nargs="+",
        default=[1, 4],
        metavar="N",
        help="the segment counts the sweep runs with at each size",
    )
    parser.add_argument("--load-size", type=whole(1), help=argparse.SUPPRESS)  # internal: one pipeline size, JSON out
    args = parser.parse_args(argv)
    if args.update_docs and (args.quick or args.tiny):
        parser.error(f"--update-docs writes {BENCH_DOC}, which only a full run may (not --quick or --tiny)")
    _fake_aws()
    if args.load_size is not None:
        from bench import pipeline

        print(json.dumps(pipeline.run_load(args.load_size)))
        return 0
    only = args.only
    mode = "tiny" if args.tiny else ("quick" if args.quick else "full")
    command = shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])])
    results = run(mode, only, command, args.sweep_sizes, args.sweep_pages, tuple(args.sweep_segments))
    from bench import report

    out, out_json = Path(BENCH_DOC if args.update_docs else args.out), Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.render(results))
    out_json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out} and {out_json} in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
