"""Entry point of the ``bastion`` command.

Imports every module of ``bastion.cli`` (each attaches its commands to the groups in
``bastion.cli.groups``), mounts the groups, and turns a ``BastionError`` into a one-line
message with its exit code (2 unless the error says otherwise) — never a traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

import bastion.cli as cli_pkg
from bastion.cli.groups import GROUPS, app
from bastion.cli.output import console, errors
from bastion.core.errors import BastionError

_SKIP = {"main", "groups", "output", "options"}
_mounted = False


def _print_version(value: bool) -> None:
    if value:
        from bastion import __version__

        typer.echo(f"bastion {__version__}")
        raise typer.Exit(0)


_verbose = False


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", help="Print Bastion's version and exit.",
                                 is_eager=True, callback=_print_version),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only results and errors: no progress, notes or warnings."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what Bastion does (INFO) and show the "
                                                                "traceback behind an error."),
) -> None:
    """Bastion: secure ML models across their life — assess, harden, sign, serve, monitor, govern."""
    global _verbose
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose exclude each other")
    console.quiet = quiet
    _verbose = verbose
    if verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@app.command("version")
def version_cmd() -> None:
    """Print Bastion's version."""
    _print_version(True)


def build_app() -> typer.Typer:
    """Import the command modules and mount the groups (idempotent)."""
    global _mounted
    if _mounted:
        return app
    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        importlib.import_module(f"{cli_pkg.__name__}.{info.name}")
    for group in GROUPS:
        if group.registered_commands or group.registered_groups:
            app.add_typer(group)
    _mounted = True
    return app


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; ``BastionError`` → message on stderr and its exit code."""
    os.environ.setdefault("TLDEXTRACT_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "tldextract"))
    build_app()
    try:
        app(args=argv, prog_name="bastion", standalone_mode=True)
    except BastionError as exc:
        if _verbose:
            errors.print_exception()
        errors.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
