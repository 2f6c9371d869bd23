"""The ``kgrec`` command line. ``main()`` is the one boundary that turns errors into exit codes."""

from __future__ import annotations

import logging
import sys

from kgrec.errors import KgrecError


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; kgrec errors become a one-line message and exit code 2."""
    from kgrec.cli.app import app

    try:
        app(args=argv, prog_name="kgrec", standalone_mode=False)
    except KgrecError as e:
        print(f"kgrec: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, PermissionError) as e:  # bad input that reached the boundary
        logging.getLogger("kgrec").debug("error", exc_info=True)
        print(f"kgrec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kgrec: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:  # usage errors of the CLI framework (typer vendors its own click)
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return int(e.exit_code)
        if type(e).__name__ == "Abort":
            return 1
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
