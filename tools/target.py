"""Which stack an operator tool reads: a deployed one (`--stack NAME`, `--endpoint-url` for LocalStack), or localcloud
deployed into a moto server (`--local [URL]`, `python -m localcloud --endpoint URL serve`; its stack is named
converge). Shared by tools.reconcile and tools.dlq."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection
from typing import Any

import boto3

LOCAL_ENDPOINT = "http://127.0.0.1:5000"
LOCAL_STACK_NAME = "converge"  # localcloud.cloud.LocalCloud's default
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class BadInput(Exception):
    """The command line cannot be used (one line, for stderr)."""


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """--stack, --endpoint-url, --local [URL] and --region."""
    parser.add_argument("--stack", help=f"CloudFormation stack name (with --local: {LOCAL_STACK_NAME})")
    parser.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:4566 for LocalStack")
    parser.add_argument(
        "--local",
        nargs="?",
        const=LOCAL_ENDPOINT,
        metavar="URL",
        help=f"localcloud deployed into the moto server at URL ({LOCAL_ENDPOINT} if none is given)",
    )
    parser.add_argument("--region", default=None, help="the stack's region (default: the AWS configuration's)")


def local_default(argv: list[str] | None, commands: Collection[str]) -> list[str]:
    """The command line, with a bare `--local` right before a command (`--local list`) spelt `--local=DEFAULT`:
    argparse would otherwise take the command for --local's URL and then miss the command."""
    given = sys.argv[1:] if argv is None else list(argv)
    return [
        f"--local={LOCAL_ENDPOINT}" if arg == "--local" and given[i + 1 : i + 2] and given[i + 1] in commands else arg
        for i, arg in enumerate(given)
    ]


def resolve(args: argparse.Namespace) -> str:
    """The stack's name. With --local, moto's fake credentials are set unless some are already (a real profile must
    not be sent there); an endpoint (--local's or --endpoint-url) is set for every client boto3 creates.

    Raises BadInput when neither --stack nor --local is given."""
    if args.local is None and args.stack is None:
        raise BadInput("say which stack: --stack NAME, or --local [URL] for localcloud")
    for flag, url in (("--local", args.local), ("--endpoint-url", args.endpoint_url)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise BadInput(f"{flag}: {url!r} is not a URL (http://HOST:PORT)")
    if args.local is not None:
        for name, value in LOCAL_CREDENTIALS.items():
            os.environ.setdefault(name, value)
    endpoint = args.local or args.endpoint_url
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    return str(args.stack or LOCAL_STACK_NAME)


def session(args: argparse.Namespace) -> Any:
    """A boto3 session in --region (after `resolve`). Raises botocore's errors (a profile that does not exist), which
    the tool answers in one line with the stack it was to read."""
    return boto3.session.Session(region_name=args.region)
