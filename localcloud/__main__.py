"""`python -m localcloud demo|invoke|serve`: run template.yaml locally, no Docker, no AWS account."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from localcloud.template import TEMPLATE_PATH

PUMP_INTERVAL = 0.25  # Lambda polls a stream shard about four times a second


def _demo(args: argparse.Namespace) -> int:
    from localcloud.demo import run_demo, summary

    report = run_demo(
        args.products, args.orders, args.seed, Path(args.out), template=args.template, endpoint=args.endpoint
    )
    print(summary(report))
    print(f"  wrote           {Path(args.out) / 'demo-report.json'}, {Path(args.out) / 'convergence.png'}")
    return 0 if report.total_divergent == 0 else 1


def invoke_file(cloud: Any, function: str, event_path: Path) -> Any:
    """Invoke `function` of a deployed LocalCloud with the event in `event_path` (the `invoke` command's core)."""
    event = json.loads(Path(event_path).read_text())
    return cloud.invoke(function, event)


def _invoke(args: argparse.Namespace) -> int:
    from localcloud.cloud import LocalCloud

    with LocalCloud(args.template, endpoint=args.endpoint) as cloud:
        if args.function not in cloud.runtime.functions:
            print(f"no function {args.function!r}; the template has {sorted(cloud.runtime.functions)}", file=sys.stderr)
            return 2
        invocation = invoke_file(cloud, args.function, Path(args.event))
    # Like `sam local invoke`: logs on stderr, the response (or Lambda's error payload) on stdout.
    sys.stderr.write(invocation.logs)
    sys.stderr.write(
        f"END RequestId: {invocation.request_id}\nREPORT RequestId: {invocation.request_id}\t"
        f"Duration: {invocation.duration_ms:.2f} ms\n"
    )
    sys.stderr.flush()
    payload = invocation.response if invocation.ok else invocation.error.payload()
    print(json.dumps(payload, indent=2, default=str))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from localcloud.cloud import LocalCloud
    from localcloud.httpapi import ApiServer

    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with LocalCloud(args.template, endpoint=args.endpoint, verbose=True, echo_logs=args.logs) as cloud:
        server = ApiServer(cloud, args.host, args.port).start()
        print(f"localcloud: HTTP API on http://{args.host}:{server.port}", file=sys.stderr, flush=True)
        for route in cloud.routes:
            print(f"  {route.route_key:45} -> {route.function}", file=sys.stderr)
        try:
            # The pipeline pumps here; schedules fire on the wall clock.
            while not stopping.wait(PUMP_INTERVAL):
                while cloud.pump():
                    pass
                cloud.tick()
        finally:
            server.stop()
            print("localcloud: stopped", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    root.add_argument("--template", type=Path, default=TEMPLATE_PATH, help="SAM template (default: template.yaml)")
    root.add_argument(
        "--endpoint",
        help="deploy into this moto server (e.g. http://127.0.0.1:5000; 'server' starts one on a free port) "
        "instead of in-process moto",
    )
    commands = root.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a scenario end to end and report convergence")
    demo.add_argument("--products", type=int, default=10)
    demo.add_argument("--orders", type=int, default=80)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--out", default="out")
    demo.set_defaults(run=_demo)

    invoke = commands.add_parser("invoke", help="invoke one function with an event file (sam local invoke)")
    invoke.add_argument("function", help="logical id of the function, e.g. OrdersApiFunction")
    invoke.add_argument(
        "--event", "-e", required=True, help="event JSON file, e.g. events/OrdersApiFunction.get-order.json"
    )
    invoke.set_defaults(run=_invoke)

    serve = commands.add_parser("serve", help="serve the HTTP API and pump the pipeline (sam local start-api)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--logs", action="store_true", help="echo function logs")
    serve.set_defaults(run=_serve)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
