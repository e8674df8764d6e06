"""The ``sessionkit`` command: maintenance a deployment runs from cron or a job scheduler,
and the load-balancer configs a local-mode deployment needs.

    sessionkit gc URL [--batch-size N]   delete the expired sessions of a SQL store
    sessionkit lb-config LB --instances a=HOST:PORT,...   print a load-balancer config

Redis and memory stores expire sessions by themselves; a SQL table only shrinks when
something deletes its expired rows, which is what ``gc`` does, in short transactions.
"""

from __future__ import annotations

import argparse
import sys

from . import lbconfig
from .errors import ConfigError, StoreUnavailable

PROG = "sessionkit"
#: Exit status of a usage error (argparse's own), and of a store that cannot be reached.
USAGE_ERROR = 2
UNAVAILABLE = 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Maintenance commands for sessionkit session stores, and "
        "load-balancer configs for local mode."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gc = commands.add_parser(
        "gc",
        help="delete expired sessions from a SQL store",
        description="Delete the expired sessions of a SQL store, oldest first, in batches "
        "(each its own transaction). Run it periodically, e.g. hourly from cron.",
    )
    gc.add_argument("url", metavar="URL", help="the store URL, as configured in the app "
                    "(e.g. postgresql+psycopg://user:password@host/db)")
    gc.add_argument("--batch-size", type=_positive_int, default=1000, metavar="N",
                    help="rows deleted per transaction (default: 1000)")
    _add_lb_config(commands)
    return parser


def _add_lb_config(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lb = commands.add_parser(
        "lb-config",
        help="print a load-balancer config that keeps clients on their instance",
        description="Print a complete config for a load balancer in front of sessionkit "
        "instances. nginx and haproxy route on the instance id at the end of the session "
        "cookie (<session-id>.<instance-id>); ingress-nginx, traefik and envoy use a cookie "
        "of their own; kubernetes-service sticks by client IP (the last resort).",
    )
    lb.add_argument("lb", choices=lbconfig.LOAD_BALANCERS, metavar="LB",
                    help="one of: " + ", ".join(lbconfig.LOAD_BALANCERS))
    lb.add_argument("--instances", required=True, metavar="ID=HOST:PORT,...",
                    help="each instance's SESSIONKIT_INSTANCE_ID and address, e.g. "
                    "a=127.0.0.1:8001,b=127.0.0.1:8002")
    lb.add_argument("--cookie", default=lbconfig.DEFAULT_COOKIE, metavar="NAME",
                    help=f"the session cookie's name (default: {lbconfig.DEFAULT_COOKIE})")
    lb.add_argument("--listen", default=lbconfig.DEFAULT_LISTEN, metavar="HOST:PORT",
                    help=f"where the load balancer listens (default: {lbconfig.DEFAULT_LISTEN})")
    lb.add_argument("--runtime-dir", metavar="DIR",
                    help="nginx only: keep its pid file, logs and temp files in DIR (to run "
                    "it without root)")


def _fail(command: str, message: str, status: int) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return status


def _gc(url: str, batch_size: int) -> int:
    try:
        from .stores.sql import SQLStore
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "sqlalchemy":
            raise
        return _fail("gc", "needs SQLAlchemy: pip install 'sessionkit[sql]'", USAGE_ERROR)
    try:
        store = SQLStore.from_url(url)
    except ConfigError as exc:  # not a SQL URL, or a bad store option; names no password
        return _fail("gc", str(exc), USAGE_ERROR)
    try:
        deleted = store.gc(batch_size=batch_size)
    except ConfigError as exc:  # create_table=false and no table
        return _fail("gc", str(exc), USAGE_ERROR)
    except StoreUnavailable as exc:
        return _fail("gc", str(exc), UNAVAILABLE)
    finally:
        store.close()
    print(f"deleted {deleted} expired sessions from {store.name}")
    return 0


def _lb_config(args: argparse.Namespace) -> int:
    try:
        instances = lbconfig.parse_instances(args.instances)
        if args.lb == "nginx":
            text = lbconfig.render_nginx(instances, args.cookie, args.listen,
                                         runtime_dir=args.runtime_dir)
        elif args.runtime_dir is not None:
            raise ConfigError("--runtime-dir applies to nginx only")
        else:
            text = lbconfig.render(args.lb, instances, args.cookie, args.listen)
    except ConfigError as exc:
        return _fail("lb-config", str(exc), USAGE_ERROR)
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else USAGE_ERROR
    if args.command == "lb-config":
        return _lb_config(args)
    return _gc(args.url, args.batch_size)


if __name__ == "__main__":
    sys.exit(main())
