"""Command line: ``python -m service [--host H] [--port P]`` and ``python -m service migrate``.

``migrate`` prepares the database for this release (see ``service.schema.prepare_for_release``):
it upgrades a database that is behind the release's revision, leaves one that is at or beyond
it as it is, and then checks that the schema has every column the release's code uses.

Exit status: 0 after a clean shutdown or migration, 2 for a bad setting (one line on stderr
naming the variable or option), 1 when the port cannot be opened, a migration fails, or the
database's schema does not serve this release.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from service.config import ServiceConfigError, load_config

EXIT_FAILURE = 1
EXIT_BAD_SETTING = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        if args.command == "migrate":
            return _migrate(args.revision)
        return _serve(args.host, args.port)
    except ServiceConfigError as exc:
        print(f"service: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTING


def _serve(host: str, port: int) -> int:
    config = load_config(os.environ)
    from service.listener import bind_listener

    try:
        sock = bind_listener(host, port)
    except OSError as exc:
        print(f"service: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    # The heavy imports come after the port is open (see service.listener).
    import asyncio

    from service.schema import all_revisions
    from service.server import serve

    known = all_revisions()
    if config.schema_revision is not None and config.schema_revision not in known:
        raise ServiceConfigError(
            f"SERVICE_SCHEMA_REVISION: expected one of {', '.join(known)}, "
            f"got {config.schema_revision!r}"
        )
    asyncio.run(serve(config, sock))
    return 0


def _migrate(revision: str | None) -> int:
    config = load_config(os.environ)
    from alembic.util.exc import CommandError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from service.migration_lock import MigrationLockTimeout
    from service.schema import SchemaMismatch, prepare_release_database, release_revision

    target = revision or release_revision(config)
    shown = make_url(config.database_url).render_as_string(hide_password=True)
    try:
        outcome = prepare_release_database(config, revision=target)
    except SchemaMismatch as exc:
        print(f"service: {shown}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (SQLAlchemyError, CommandError, MigrationLockTimeout) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"service: migration of {shown} to {target} failed: {type(exc).__name__}: {first}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    logging.getLogger("service").info(
        "%s for release %s (%s): %s",
        shown,
        config.version,
        target,
        outcome.detail,
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="The reference HTTP service; release variants come from SERVICE_* variables.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=8080, help="TCP port to listen on")
    commands = parser.add_subparsers(
        dest="command",
        metavar="[migrate]",
        title="commands",
        description="without a command, the service serves HTTP",
    )
    migrate = commands.add_parser(
        "migrate",
        help="bring SERVICE_DATABASE_URL to the revision this release needs, and check that "
        "its schema serves this release",
    )
    migrate.add_argument(
        "--revision",
        default=None,
        help="target revision (default: SERVICE_SCHEMA_REVISION, else the first revision)",
    )
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return port


if __name__ == "__main__":
    sys.exit(main())
