"""`python -m localcloud demo|chaos|rebuild|invoke|serve|token`: run template.yaml locally, no Docker, no AWS."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path
from types import FrameType
from typing import Any

from localcloud.cli import Parser, port, rate, refuse, whole
from localcloud.faults import DRIFT_RATE, FaultPlan
from localcloud.overrides import env_vars_file, parameter_overrides, parameter_problem, unknown_functions
from localcloud.template import TEMPLATE_PATH, load_template, resources_of_type

FAULT_FLAGS = {
    "handler_exception": "fraction of event-driven invocations that raise",
    "handler_timeout": "fraction of event-driven invocations that time out",
    "dynamodb_throttle": "fraction of DynamoDB request attempts throttled",
    "events_throttle": "fraction of EventBridge request attempts throttled",
    "throttle_scope": "throttle each request attempt (SDK retries) or the whole call",
    "put_events_entry_failure": "fraction of PutEvents entries failed individually",
    "lost_delivery": "fraction of inbox messages lost before their first delivery",
    "duplicate_delivery": "fraction of inbox messages delivered twice",
    "delayed_delivery": "fraction of inbox messages held back some polls",
    "max_delay_polls": "longest delay, in polls",
    "reorder": "shuffle every inbox batch",
    "poison_rate": "fraction of inbox polls that also get a poison message",
}

# The chaos command's drift faults (localcloud/faults/drift.py): rates are fractions of the scenario's operations.
DRIFT_FLAGS = {
    "source_rollback": "fraction of operations after which a source item is put back to an earlier image (restore)",
    "projection_corruption": "fraction of operations after which a projection item is rewritten with wrong data",
    "projection_deletion": "fraction of operations after which a projection item is deleted",
    "forged_event": "fraction of operations after which a forged event is sent straight into an inbox",
    "orphan_saga_event": "fraction of operations after which a saga event of a missing order is sent into an inbox",
}

CHAOS_DOC = "docs/RELIABILITY.md"  # the tracked report, written only with --update-docs (`make chaos`)
PUMP_INTERVAL = 0.25  # Lambda polls a stream shard about four times a second


def fault_plan(args: argparse.Namespace) -> FaultPlan | None:
    """The FaultPlan of the fault flags: `--faults chaos` (the chaos mix) or `none`, then any rate flag on top."""
    base = FaultPlan.chaos(args.fault_seed) if args.faults == "chaos" else None
    if getattr(args, "drift", False):
        base = (base or FaultPlan(seed=args.fault_seed)).with_drift()
    flags = [*FAULT_FLAGS, *DRIFT_FLAGS]
    overrides = {name: getattr(args, name) for name in flags if getattr(args, name, None) is not None}
    if not overrides:
        return base
    return replace(base or FaultPlan(seed=args.fault_seed), seed=args.fault_seed, **overrides)


NEXT_STEPS = """
next:
  make serve      the HTTP API on http://127.0.0.1:3000 (Swagger UI at http://127.0.0.1:3000/docs; docs/api.md)
  make chaos      faults injected at scale, convergence measured (docs/RELIABILITY.md)
  make test       every test;  make help  every target"""


def _demo(args: argparse.Namespace) -> int:
    from localcloud.demo import run_demo, summary

    report = run_demo(
        args.products,
        args.orders,
        args.seed,
        Path(args.out),
        template=args.template,
        endpoint=args.endpoint,
        faults=fault_plan(args),
    )
    print(summary(report))
    print(f"  wrote           {Path(args.out) / 'demo-report.json'}, {Path(args.out) / 'convergence.png'}")
    print(NEXT_STEPS)
    return 0 if report.total_divergent == 0 else 1


def _rebuild(args: argparse.Namespace) -> int:
    from localcloud.rebuild import plot, run_rebuild, summary

    plan = fault_plan(args)
    runs = run_rebuild(
        args.projection,
        tuple(args.source or ("archive", "snapshot")),
        args.orders,
        args.products,
        args.seed,
        plan=plan or FaultPlan(seed=args.fault_seed),
        template=args.template,
        progress=not args.quiet,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m localcloud " + " ".join(sys.argv[1:] if args.argv is None else args.argv)
    document = {"command": command, "runs": [asdict(run) | {"ok": run.ok} for run in runs]}
    (out / "rebuild-report.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    plot(runs, out / "rebuild.png")
    print(summary(runs))
    print(f"rebuild: report {out / 'rebuild-report.json'}, plot {out / 'rebuild.png'}")
    return 0 if all(run.ok for run in runs) else 1


def _chaos(args: argparse.Namespace) -> int:
    from localcloud.chaos import ChaosReport, run_chaos, write

    # Tracked docs only when asked: a run of its own goes under out/.
    markdown = args.out if args.out is not None else (CHAOS_DOC if args.update_docs else "out/RELIABILITY.md")
    markdown_path = Path(markdown) if markdown else None
    json_path = Path(args.json) if args.json else None
    if args.render_from:
        # Render the Markdown of an earlier run again (its JSON keeps the command that produced it).
        report = ChaosReport.from_dict(json.loads(Path(args.render_from).read_text()))
        write(report, markdown_path, None, report.command)
        print(f"chaos: wrote {markdown_path}" if markdown_path else "chaos: wrote nothing (--out '')")
        return 0 if report.ok else 1
    plan = fault_plan(args)
    report = run_chaos(
        args.orders,
        args.products,
        args.seed,
        plan or FaultPlan(seed=args.fault_seed),
        pass_mode=args.pass_mode,
        template=args.template,
        endpoint=args.endpoint,
        progress=not args.quiet,
    )
    command = "python -m localcloud " + " ".join(sys.argv[1:] if args.argv is None else args.argv)
    write(report, markdown_path, json_path, command)
    passes = ", ".join(f"pass {p.number}: {p.divergent}" for p in report.passes)
    print(
        f"chaos: {report.orders} orders, {report.products} products, seed {report.seed}, pass mode "
        f"{report.pass_mode}: divergent after faults "
        f"{report.divergent_after_faults}; {passes}; events lost {report.events_lost}; poison injected/parked "
        f"{report.poison_injected}/{report.poison_parked}; {report.seconds.get('total', 0):.0f} s -> "
        f"{'OK' if report.ok else 'FAILED'}"
    )
    written = [str(path) for path in (markdown_path, json_path) if path is not None]
    print(f"chaos: wrote {' and '.join(written) or 'nothing (--out and --json empty)'}")
    return 0 if report.ok else 1


def invoke_file(cloud: Any, function: str, event_path: Path) -> Any:
    """Invoke `function` of a deployed LocalCloud with the event in `event_path` (the `invoke` command's core)."""
    event = json.loads(Path(event_path).read_text())
    return cloud.invoke(function, event)


def _read_event(source: str) -> tuple[Any, str | None]:
    """The event of `--event` (a file, or `-`: stdin, as `sam local invoke --event -` reads it), or why it cannot be
    used (one line)."""
    where = "the event on stdin" if source == "-" else f"the event file {source}"
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        return None, f"cannot read {where}: {exc.strerror or exc}"
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"{where} is not JSON: {exc}"


def _invoke(args: argparse.Namespace) -> int:
    from localcloud.cloud import LocalCloud

    prog = "python -m localcloud invoke"
    template = load_template(args.template)
    functions = sorted(resources_of_type(template, "AWS::Serverless::Function"))
    if args.function not in functions:
        return refuse(prog, f"no function {args.function!r}; the template has {', '.join(functions)}")
    parameters = {key: value for overrides in args.parameter_overrides or [] for key, value in overrides.items()}
    problem = parameter_problem(parameters, template.get("Parameters") or {})
    unknown = unknown_functions(args.env_vars, functions) if args.env_vars is not None else []
    if problem is None and unknown:
        problem = f"the env-vars file names {', '.join(unknown)}, not a function of the template"
    if problem is not None:
        return refuse(prog, problem)
    event, problem = _read_event(args.event)
    if problem is not None:
        return refuse(prog, problem)
    with LocalCloud(args.template, endpoint=args.endpoint, parameters=parameters) as cloud:
        if args.env_vars is not None:
            _override_environment(cloud, args.function, args.env_vars.for_function(args.function))
        invocation = cloud.invoke(args.function, event)
    # Like `sam local invoke`: logs on stderr, the response (or Lambda's error payload) on stdout.
    sys.stderr.write(invocation.logs)
    sys.stderr.write(
        f"END RequestId: {invocation.request_id}\nREPORT RequestId: {invocation.request_id}\t"
        f"Duration: {invocation.duration_ms:.2f} ms\n"
    )
    sys.stderr.flush()
    payload = invocation.response if invocation.error is None else invocation.error.payload()
    print(json.dumps(payload, indent=2, default=str))
    # As `sam local invoke` does: a function that raised is a failed command.
    return 0 if invocation.ok else 1


def _override_environment(cloud: Any, function: str, variables: dict[str, str]) -> None:
    """The env-vars file's values for the variables the template gives `function`; the others are ignored, as
    `sam local invoke` ignores them (said on stderr)."""
    declared = cloud.runtime.functions[function].environment
    cloud.set_environment(function, **{name: value for name, value in variables.items() if name in declared})
    ignored = sorted(name for name in variables if name not in declared)
    if ignored:
        print(
            f"python -m localcloud invoke: {', '.join(ignored)} not in {function}'s environment in the template: "
            "ignored, as sam local invoke ignores it",
            file=sys.stderr,
        )


def _serve(args: argparse.Namespace) -> int:
    from localcloud.cloud import LocalCloud
    from localcloud.httpapi import ApiServer

    try:  # listen first: a port in use is said in one line, before anything is deployed
        server = ApiServer(None, args.host, args.port)
    except OSError as exc:
        return refuse("python -m localcloud serve", f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with LocalCloud(args.template, endpoint=args.endpoint, verbose=True, echo_logs=args.logs) as cloud:
        server.start(cloud)
        print(f"localcloud: HTTP API on http://{args.host}:{server.port}", file=sys.stderr, flush=True)
        print(token_hint(f"http://{args.host}:{server.port}"), file=sys.stderr, flush=True)
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


def token_hint(base_url: str) -> str:
    """How to call the API under its JWT authorizer (localcloud/auth.py)."""
    return (
        "  every route but /docs needs a token from localcloud's issuer (401 without one); for a customer:\n"
        f'  curl -H "Authorization: Bearer $(.venv/bin/python -m localcloud token --customer c-1)" '
        f"{base_url}/customers/c-1/notifications\n"
        "  an admin's: .venv/bin/python -m localcloud token --admin"
    )


def _token(args: argparse.Namespace) -> int:
    from localcloud import auth

    subject = args.customer if args.customer is not None else args.subject
    print(auth.issue(subject, admin=args.admin, expires_in=args.expires_in))
    return 0


class HelpFormat(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default; an option without one (None) says so in its own help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    root = Parser(prog="python -m localcloud", description=__doc__, formatter_class=HelpFormat)
    root.add_argument("--template", type=Path, default=TEMPLATE_PATH, help="SAM template")
    root.add_argument(
        "--endpoint",
        help="deploy into this moto server (e.g. http://127.0.0.1:5000; 'server' starts one on a free port) "
        "instead of in-process moto",
    )
    commands = root.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", formatter_class=HelpFormat, help="run a scenario end to end and report convergence"
    )
    demo.add_argument("--products", type=whole(1), default=10, help="products in the storefront")
    demo.add_argument("--orders", type=whole(1), default=80, help="orders placed (with cancellations, dispatches, ...)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the scenario (same seed, same operations)")
    demo.add_argument("--out", default="out", help="directory of demo-report.json and convergence.png")
    add_fault_flags(demo, "none")
    demo.set_defaults(run=_demo)

    chaos = commands.add_parser(
        "chaos", formatter_class=HelpFormat, help="many orders under injected faults; report convergence"
    )
    chaos.add_argument("--orders", type=whole(1), default=10_000, help="orders placed under faults")
    chaos.add_argument("--products", type=whole(1), default=200, help="products in the storefront")
    chaos.add_argument("--seed", type=int, default=7, help="seed of the scenario (same seed, same operations)")
    chaos.add_argument(
        "--pass-mode",
        choices=("scheduled", "full", "operator"),
        default=None,
        help="each reconciliation pass is the 5-minute schedule's invocation ('scheduled', the default without "
        "drift faults), a full sweep ('full'), or the full sweep first, as an operator runs it after a restore, then "
        "scheduled passes ('operator', the default when drift faults are on)",
    )
    reports = chaos.add_mutually_exclusive_group()
    reports.add_argument(
        "--out",
        default=None,
        help="Markdown report ('' for none; default: out/RELIABILITY.md)",
    )
    reports.add_argument("--update-docs", action="store_true", help=f"write the Markdown report to {CHAOS_DOC}")
    chaos.add_argument("--json", default="out/chaos-report.json", help="JSON report ('' for none)")
    chaos.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    chaos.add_argument("--render-from", help="no run: write the Markdown of the JSON report of an earlier run")
    add_fault_flags(chaos, "chaos")
    add_drift_flags(chaos)
    chaos.set_defaults(run=_chaos)

    rebuild = commands.add_parser(
        "rebuild",
        formatter_class=HelpFormat,
        help="drop and rebuild one projection from each source under traffic and faults (tools.rebuild)",
    )
    rebuild.add_argument(
        "--projection", choices=("availability", "order_outcome"), default="availability", help="projection rebuilt"
    )
    rebuild.add_argument(
        "--source",
        choices=("archive", "snapshot"),
        nargs="+",
        help="where the rebuild reads history: the bus archive (a replay) or the sources' state (a backfill); "
        "each is run on a stack of its own (default: both, side by side)",
    )
    rebuild.add_argument("--orders", type=whole(1), default=300, help="orders placed while the projection is rebuilt")
    rebuild.add_argument("--products", type=whole(1), default=100, help="products in the storefront")
    rebuild.add_argument("--seed", type=int, default=7, help="seed of the scenario (same seed, same operations)")
    rebuild.add_argument("--out", default="out", help="directory of rebuild-report.json and rebuild.png")
    rebuild.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_fault_flags(rebuild, "chaos")
    rebuild.set_defaults(run=_rebuild)

    invoke = commands.add_parser(
        "invoke", formatter_class=HelpFormat, help="invoke one function with an event file (sam local invoke)"
    )
    invoke.add_argument("function", help="logical id of the function, e.g. OrdersApiFunction")
    invoke.add_argument(
        "--event",
        "-e",
        required=True,
        help="event JSON file, e.g. events/OrdersApiFunction.get-order.json; '-' reads it from stdin",
    )
    invoke.add_argument(
        "--env-vars",
        "-n",
        type=env_vars_file,
        help='JSON file of environment variables, as sam local invoke takes it: {"FunctionLogicalId": {"VAR": '
        '"value"}} and/or {"Parameters": {"VAR": "value"}} for every function; only variables the template gives '
        "the function are overridden",
    )
    invoke.add_argument(
        "--parameter-overrides",
        type=parameter_overrides,
        action="append",
        metavar="'KEY=VALUE ...'",
        help="template parameters, as sam local invoke takes them: 'Key=Value Key2=Value2' or "
        "'ParameterKey=Key,ParameterValue=Value ...'",
    )
    invoke.set_defaults(run=_invoke)

    serve = commands.add_parser(
        "serve", formatter_class=HelpFormat, help="serve the HTTP API and pump the pipeline (sam local start-api)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only by default)")
    serve.add_argument("--port", type=port, default=3000, help="port (0: any free port, printed at start)")
    serve.add_argument("--logs", action="store_true", help="echo function logs")
    serve.set_defaults(run=_serve)

    token = commands.add_parser(
        "token",
        formatter_class=HelpFormat,
        help="print a token from localcloud's issuer for the HTTP API's JWT authorizer (a customer's or an admin's)",
    )
    who = token.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer", metavar="ID", help="a customer's token: its sub is this customer id")
    who.add_argument("--admin", action="store_true", help="an admin's token: scope converge/admin, group admin")
    token.add_argument("--subject", metavar="ID", default="admin-1", help="the admin's sub (with --admin)")
    token.add_argument("--expires-in", type=whole(1), default=3600, help="seconds until the token expires")
    token.set_defaults(run=_token)
    return root


def add_fault_flags(command: argparse.ArgumentParser, mix: str) -> None:
    """The fault flags of a command whose faults start from `mix` ("none" or "chaos") unless --faults says."""
    group = command.add_argument_group(
        "fault injection (localcloud/faults.py; rates are fractions 0..1; a flag left out keeps the --faults mix's "
        f"value; this command starts from {'no faults' if mix == 'none' else 'the chaos mix'})"
    )
    group.add_argument("--faults", choices=("none", "chaos"), default=mix, help="start from no faults or the chaos mix")
    group.add_argument("--fault-seed", type=int, default=0, help="seed of the fault decisions")
    for name, help_text in FAULT_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        if name == "reorder":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif name == "throttle_scope":
            group.add_argument(flag, choices=("attempt", "call"), default=None, help=help_text)
        elif name == "max_delay_polls":
            group.add_argument(flag, type=whole(1), default=None, help=help_text)
        else:
            group.add_argument(flag, type=rate, default=None, help=help_text)


def add_drift_flags(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group(
        "drift faults (localcloud/faults.py; the state goes wrong: restores, consumer bugs, forged messages; rates "
        "are fractions of the scenario's operations)"
    )
    group.add_argument(
        "--drift",
        action="store_true",
        help=f"add every drift fault to the mix, each at {DRIFT_RATE} (a rate flag below overrides its kind)",
    )
    for name, help_text in DRIFT_FLAGS.items():
        group.add_argument("--" + name.replace("_", "-"), type=rate, default=None, help=help_text)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = argv
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
