"""The ``smlocal`` command line: parses, delegates, prints. Nothing else lives here.

One typer app; each capability registers its commands from its own module
(``service``, ``serve``, ``endpoints``, ``contract``, ``loadtest``, ``promote``, ``monitor``),
and every command prints through ``output``, whose exit code table
(:class:`~smlocal.emulator.errors.ExitCode`) holds for all of them. Commands import their
package when they run, so ``smlocal --help`` stays fast.
"""

from __future__ import annotations

import typer

from smlocal.cli import (
    contract,
    endpoints,
    loadtest,
    monitor,
    promote,
    serve,
    service,
    transform,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="smlocal",
    help=(
        "Run, test and load-test Amazon SageMaker bring-your-own-container inference images "
        "locally, exactly as SageMaker hosting runs them.\n\n"
        "Exit codes (every command): 0 done; 1 it ran and failed (endpoint Failed, contract "
        "check failed, AWS or promote step failed); 2 bad input or nothing could run (flag, "
        "name, spec, missing image or model, port in use, no Docker); 3 promote refused "
        "(no contract pass, quality gate missed); 130 interrupted."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)

for _capability in (service, serve, endpoints, contract, loadtest, promote, monitor, transform):
    _capability.register(app)


def main() -> None:
    app()
