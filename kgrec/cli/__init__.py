"""The ``kgrec`` command line. ``main()`` is the one boundary that turns errors into exit codes."""

from __future__ import annotations

import logging
import sys
from typing import Any

from kgrec.errors import KgrecError


def usage_error(e: Exception) -> str:
    """A usage error of the CLI framework in kgrec's one style: ``kgrec: error: …`` and where to read the options."""
    message = " ".join(e.format_message().split())  # type: ignore[attr-defined]  # click/typer usage errors, recognised by the caller
    ctx = getattr(e, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"kgrec: error: {message}{hint}"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; kgrec errors become a one-line message and exit code 2."""
    from kgrec.cli.app import app

    try:
        app(args=argv, prog_name="kgrec", standalone_mode=False)
    except KgrecError as e:
        print(f"kgrec: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:  # bad input that reached the boundary, or a disk that cannot take the write
        from kgrec._fs import is_disk_error, os_error_message

        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and not is_disk_error(e):
            raise
        logging.getLogger("kgrec").debug("error", exc_info=True)
        print(f"kgrec: error: {os_error_message(e) if is_disk_error(e) else e}", file=sys.stderr)  # type: ignore[arg-type]  # is_disk_error(e) implies an OSError
        return 2
    except KeyboardInterrupt:
        print("kgrec: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:  # usage errors of the CLI framework (typer vendors its own click)
        if type(e).__name__ == "NoArgsIsHelpError":  # `kgrec` or a group alone: the help, as --help shows it
            help_error: Any = e  # click's error type, not imported here (start-up time)
            help_error.show()
            return int(help_error.exit_code)
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            print(usage_error(e), file=sys.stderr)
            return int(e.exit_code)
        if type(e).__name__ == "Abort":
            return 1
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
