"""The ``sessionkit`` command: moving and inspecting session data, maintenance a deployment
runs from cron, and the load-balancer configs a local-mode deployment needs.

    sessionkit export URL -o dump.jsonl       every live session, one JSON line each
    sessionkit import URL < dump.jsonl        write them (keys already there are kept)
    sessionkit migrate --from URL --to URL    copy every live session [--dry-run] [--batch N]
                                              (--from a Flask-Session or starsessions store:
                                              flask-session+redis://..., with --secret-key)
    sessionkit stats URL                      count, bytes, per instance, per expiry
    sessionkit inspect URL COOKIE_OR_ID       one session (values redacted; --show-values)
    sessionkit gc URL [--batch-size N]        delete the expired sessions of a SQL store
    sessionkit lb-config LB --instances a=HOST:PORT,...   print a load-balancer config

Built on argparse, not click: the command works wherever sessionkit is installed, with no
extra dependency. Errors are one line on stderr: exit status 2 for a bad URL or argument,
1 for a store that cannot be reached. Store URLs are shown with their secrets redacted
(``sessionkit.redact``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import stat
import sys
import time
from typing import TextIO

from . import deploy, peers, tools
from .deploy.nginx import render_nginx
from .errors import ConfigError, StoreUnavailable
from .redact import redact_text
from .stores import Store

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
    _add_data_commands(commands)
    return parser


def _add_data_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    url_help = "a store URL, as configured in the app (redis://..., postgresql+psycopg://...)"
    source_help = ("a store URL as configured in the app (redis://..., postgresql+psycopg://...),"
                   " or a peer library's store as in migrate_from (flask-session+redis://...,"
                   " starsessions+redis://...)")
    key_help = ("not taken here (every local user sees arguments in ps): with a peer library's "
                "store the app's secret_key comes from $SESSIONKIT_SECRET_KEY or is asked for")
    export = commands.add_parser(
        "export", help="write every live session to stdout as JSON lines",
        description="Write every live session (hashed key, lifetime, user, data) to stdout, "
        "one JSON object per line. The keys are HMACs: a dump holds no usable cookie, but it "
        "holds session data, so treat it as secret.")
    export.add_argument("url", metavar="URL", help=source_help)
    export.add_argument("--secret-key", metavar="KEY", help=key_help)
    export.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE, created readable by its owner only (it must not "
                        "exist yet); without it, stdout (a file there is made private too)")
    importer = commands.add_parser(
        "import", help="read JSON lines (from export) on stdin into a store",
        description="Write the sessions of an export (stdin) into a store, each with its "
        "remaining lifetime. Sessions already there are left alone, expired ones skipped.")
    importer.add_argument("url", metavar="URL", help=url_help)
    migrate = commands.add_parser(
        "migrate", help="copy every live session from one store to another",
        description="Copy every live session with its remaining lifetime. Sessions already in "
        "the target are left alone, so an interrupted run can simply be run again. The source "
        "is not changed: keep migrate_from=<source> in the app until every instance runs on "
        "the target, so sessions written meanwhile move on their next request. From a peer "
        "library's store (Flask-Session, starsessions), each session is copied under the key "
        "its old cookie leads to, derived with the app's secret key; the app, with "
        "migrate_from=<that store>, then finds it by that cookie.")
    migrate.add_argument("--from", dest="source", required=True, metavar="URL",
                         help=source_help)
    migrate.add_argument("--secret-key", metavar="KEY", help=key_help)
    migrate.add_argument("--to", dest="target", required=True, metavar="URL", help=url_help)
    migrate.add_argument("--dry-run", action="store_true", help="read and count, write nothing")
    migrate.add_argument("--batch", type=_positive_int, default=1000, metavar="N",
                         help="sessions per read and write (default: 1000)")
    stats = commands.add_parser(
        "stats", help="count sessions, bytes, per instance and per expiry",
        description="Count the live sessions of a store, their data size, the instance that "
        "made them (uneven load shows here) and when they expire.")
    stats.add_argument("url", metavar="URL", help=url_help)
    inspect = commands.add_parser(
        "inspect", help="show one session (values redacted unless --show-values)",
        description="Show one session, found by its cookie value or id. The app's secret key "
        "turns the id into the store's key: it is read from SESSIONKIT_SECRET_KEY "
        "(comma-separated for several) or asked for at the terminal, never taken as an "
        "argument (every local user sees arguments in ps).")
    inspect.add_argument("url", metavar="URL", help=url_help)
    inspect.add_argument("session", metavar="COOKIE_OR_ID")
    inspect.add_argument("--secret-key", metavar="KEY", help=argparse.SUPPRESS)
    inspect.add_argument("--show-values", action="store_true",
                         help="print the values too (they may be personal data)")


def _add_lb_config(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lb = commands.add_parser(
        "lb-config",
        help="print a load-balancer config that keeps clients on their instance",
        description="Print a complete config for a load balancer in front of sessionkit "
        "instances. nginx and haproxy route on the instance id at the end of the session "
        "cookie (<session-id>.<instance-id>); ingress-nginx, traefik and envoy use a cookie "
        "of their own; kubernetes-service sticks by client IP (the last resort).",
    )
    lb.add_argument("lb", choices=deploy.LOAD_BALANCERS, metavar="LB",
                    help="one of: " + ", ".join(deploy.LOAD_BALANCERS))
    lb.add_argument("--instances", required=True, metavar="ID=HOST:PORT,...",
                    help="each instance's SESSIONKIT_INSTANCE_ID and address, e.g. "
                    "a=127.0.0.1:8001,b=127.0.0.1:8002")
    lb.add_argument("--cookie", default=deploy.DEFAULT_COOKIE, metavar="NAME",
                    help=f"the session cookie's name (default: {deploy.DEFAULT_COOKIE})")
    lb.add_argument("--listen", default=deploy.DEFAULT_LISTEN, metavar="HOST:PORT",
                    help=f"where the load balancer listens (default: {deploy.DEFAULT_LISTEN})")
    lb.add_argument("--health-path", metavar="PATH",
                    help="an endpoint of the app that answers 2xx while the instance may take "
                    "traffic, e.g. /healthz (default: a check that needs nothing from the app: "
                    "any HTTP answer to OPTIONS /, where the balancer can check one)")
    lb.add_argument("--runtime-dir", metavar="DIR",
                    help="nginx only: keep its pid file, logs and temp files in DIR (to run "
                    "it without root)")


def _fail(command: str, message: str, status: int) -> int:
    """One line on stderr; any URL in it shown by the one redaction rule."""
    print(f"{PROG} {command}: error: {redact_text(message)}", file=sys.stderr)
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
        instances = deploy.parse_instances(args.instances)
        if args.lb == "nginx":
            text = render_nginx(instances, args.cookie, args.listen,
                                health_path=args.health_path, runtime_dir=args.runtime_dir)
        elif args.runtime_dir is not None:
            raise ConfigError("--runtime-dir applies to nginx only")
        else:
            text = deploy.render(args.lb, instances, args.cookie, args.listen,
                                 health_path=args.health_path)
    except ConfigError as exc:
        return _fail("lb-config", str(exc), USAGE_ERROR)
    sys.stdout.write(text)
    return 0


def _open(url: str) -> Store:
    from .stores import open_store

    if peers.is_peer_url(url):
        raise ConfigError(f"sessionkit only reads {url.split('+', 1)[0]} sessions: give its "
                          f"store as the source (migrate --from, export), not as a target")
    store = open_store(url)
    if not store.shared:
        raise ConfigError(f"{store.name} lives inside the app's process, out of this command's "
                          f"reach; to keep its sessions, set drain_to=<a shared store URL>")
    return store


#: Why ``--secret-key`` is refused.
KEY_REFUSED = ("the secret key is not taken as an argument (every local user sees arguments "
               "in ps): set SESSIONKIT_SECRET_KEY, or run without it at a terminal to be asked")


def _secret_keys() -> list[bytes]:
    """The app's secret keys (comma-separated), from the environment or the terminal."""
    secret = _secret_key() or ""
    return [k.strip().encode() for k in secret.split(",") if k.strip()]


def _open_source(url: str) -> Store:
    """A store to copy sessions from; a peer library's store lists them under the keys their
    old cookies lead to, derived with the app's secret key."""
    if not peers.is_peer_url(url):
        return _open(url)
    keys = _secret_keys()
    if not keys:
        raise ConfigError("copying a peer library's sessions needs the app's secret key "
                          "(SESSIONKIT_SECRET_KEY, or typed at a terminal): the keys they get "
                          "here are derived from it, so that the app finds them by their old "
                          "cookies")
    return peers.for_copy(url, keys)


def _progress(report: tools.CopyReport) -> None:
    if sys.stderr.isatty():
        print(f"\r{report.seen} sessions read: {report.line()}", end="", file=sys.stderr,
              flush=True)
    elif report.seen % 10_000 < 1000:
        print(f"{report.seen} sessions read", file=sys.stderr, flush=True)


def _migrate(args: argparse.Namespace) -> int:
    if args.secret_key is not None:
        return _fail("migrate", KEY_REFUSED, USAGE_ERROR)
    source, target = _open_source(args.source), _open(args.target)
    started = time.monotonic()
    try:
        report = tools.copy(source, target, batch=args.batch, dry_run=args.dry_run,
                            progress=_progress)
    finally:
        source.close()
        target.close()
    if sys.stderr.isatty():
        print(file=sys.stderr)
    verb = "would copy" if args.dry_run else "migrated"
    print(f"{verb} {source.name} -> {target.name} in {time.monotonic() - started:.1f}s: "
          f"{report.line()}")
    return 1 if report.failed else 0


def _export(args: argparse.Namespace) -> int:
    if args.secret_key is not None:
        return _fail("export", KEY_REFUSED, USAGE_ERROR)
    try:
        out = _private_output(args.output)
    except OSError as exc:
        return _fail("export", f"{args.output}: {exc.strerror}", USAGE_ERROR)
    except ValueError as exc:
        return _fail("export", str(exc), USAGE_ERROR)
    try:
        store = _open_source(args.url)
        try:
            report = tools.export(store, out)
        finally:
            store.close()
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {report.copied} sessions from {store.name} "
          f"(skipped {report.skipped_expired} expired)", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    store = _open(args.url)

    def bad_line(number: int, message: str) -> None:
        print(f"{PROG} import: line {number}: {message}", file=sys.stderr)

    try:
        report = tools.import_lines(sys.stdin, store, errors=bad_line)
    finally:
        store.close()
    print(f"imported into {store.name}: {report.line()}")
    return 1 if report.failed else 0


def _stats(args: argparse.Namespace) -> int:
    store = peers.open_source(args.url) if peers.is_peer_url(args.url) else _open(args.url)
    try:
        found = tools.stats(store)
    finally:
        store.close()
    print(f"{store.name}: {found.live} live sessions, {found.data_bytes} bytes of data, "
          f"{found.users} users, {found.expired} expired not yet removed")
    for name, count in sorted(found.per_instance.items()):
        print(f"  instance {name}: {count}")
    for _, bucket in (*tools.EXPIRY_BUCKETS, (0, ">=7d")):
        print(f"  expiring {bucket}: {found.per_expiry.get(bucket, 0)}")
    return 0


def _private_output(path: str | None) -> TextIO:
    """Where an export goes, readable by its owner only: a dump holds session data. A new
    file at ``path`` (never an existing one, never through a link), or stdout, made private
    when it is a file (``> dump.jsonl`` creates it with the shell's umask)."""
    if path is None:
        try:
            fd = sys.stdout.fileno()
        except (OSError, ValueError):  # not a file descriptor at all (an in-memory stream)
            return sys.stdout
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
            try:
                os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o700)
            except OSError:
                raise ValueError("the file stdout goes to is readable by others and cannot "
                                 "be made private; use --output FILE") from None
        return sys.stdout
    if os.path.lexists(path):
        raise ValueError(f"{path} exists; remove it or choose another --output")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def _secret_key() -> str | None:
    """The app's secret key, from the environment or typed at the terminal (not echoed)."""
    secret = os.environ.get("SESSIONKIT_SECRET_KEY")
    if secret:
        return secret
    if not sys.stdin.isatty():
        return None
    try:
        return getpass.getpass("secret key (input hidden): ")
    except (EOFError, KeyboardInterrupt):
        return None


def _inspect(args: argparse.Namespace) -> int:
    if args.secret_key is not None:
        return _fail("inspect", KEY_REFUSED, USAGE_ERROR)
    keys = _secret_keys()
    if not keys:
        return _fail("inspect", "needs the app's secret key: set SESSIONKIT_SECRET_KEY, or "
                     "run it at a terminal to be asked", USAGE_ERROR)
    store = _open(args.url)
    try:
        key, record = tools.find(store, args.session, keys)
    except ValueError as exc:
        return _fail("inspect", str(exc), USAGE_ERROR)
    finally:
        store.close()
    if record is None:
        print(f"no session {key} in {store.name}")
        return 1
    print(f"session {key} in {store.name}")
    for line in tools.describe(record, show_values=args.show_values):
        print(line)
    return 0


_COMMANDS = {"migrate": _migrate, "export": _export, "import": _import, "stats": _stats,
             "inspect": _inspect}


def _values_last(argv: list[str]) -> list[str]:
    """Session ids are base64url, so one in 64 starts with ``-``, which argparse would take
    for an option: after ``inspect``, an argument like ``-AgQ…`` (not ``--…``, longer than a
    short option) is moved behind ``--``, where it is a value."""
    if not argv or argv[0] != "inspect" or "--" in argv:
        return argv
    values = [a for a in argv[1:] if a.startswith("-") and not a.startswith("--") and len(a) > 2]
    if not values:
        return argv
    return [a for a in argv if a not in values] + ["--", *values]


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    try:
        args = _parser().parse_args(_values_last(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else USAGE_ERROR
    if args.command == "lb-config":
        return _lb_config(args)
    if args.command == "gc":
        return _gc(args.url, args.batch_size)
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:  # a bad URL, a store that cannot list its sessions
        return _fail(args.command, str(exc), USAGE_ERROR)
    except StoreUnavailable as exc:
        return _fail(args.command, str(exc), UNAVAILABLE)
    except BrokenPipeError:  # export | head
        return 0


if __name__ == "__main__":
    sys.exit(main())
