"""One-line errors for every command: the root ``floe`` group turns what escapes a command into a single
``Error: …`` line naming the setting or flag to fix (FLOE_DEBUG=1 shows the traceback instead)."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from floe_stream.printable import printable


def one_line(exc: BaseException) -> str | None:
    """The message of an exception a user can fix, or None when it is a bug (then the type is named)."""
    from floe_stream.settings import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc)
    mod = type(exc).__module__
    name = type(exc).__name__
    if name in ("KafkaUnavailable", "DatabaseUnavailable"):
        return str(exc)
    if mod.startswith("aiokafka"):
        return f"Kafka: {name}: {exc} (check FLOE_KAFKA__BOOTSTRAP_SERVERS and that the broker is up)"
    if mod.startswith("asyncpg"):
        if name == "UndefinedTableError":
            return "the database has no floe tables (or an old schema): run `floe db migrate`"
        return f"PostgreSQL: {exc} (FLOE_DATABASE__DSN)"
    if isinstance(exc, PermissionError | FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return "timed out (is the broker / database reachable?)"
    return None


class OneLineUsageError(click.ClickException):
    exit_code = 2


class FloeGroup(click.Group):
    """The root group: every error a command raises reaches the user as one ``Error: …`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.protected_args and ctx.protected_args[0] not in ("run", "dev"):
            # one-shot commands: the client libraries' own retry/connection logs would repeat the one error line
            logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
            logging.getLogger("floe_stream.client").setLevel(logging.ERROR)
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "floe"
            raise OneLineUsageError(f"{exc.format_message()} (see `{where} --help`)") from None
        except click.ClickException as exc:  # its message may quote input (a contract, an asset id)
            clean = printable(exc.message)
            if clean is exc.message:
                raise
            shown = click.ClickException(clean)
            vars(shown)["exit_code"] = (
                exc.exit_code
            )  # the same exit status (a class variable in click's types)
            raise shown from None
        except (click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("FLOE_DEBUG"):
                raise
            msg = one_line(exc)
            if msg is None:
                msg = f"unexpected {type(exc).__name__}: {exc} (FLOE_DEBUG=1 shows the traceback)"
            raise click.ClickException(printable(" ".join(msg.split()))) from None
