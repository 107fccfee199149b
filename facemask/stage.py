"""Entry-point helper for stage modules: user errors become one clear line and exit status 1."""
import sys

from facemask import UserError


def run(main, name: str) -> None:
    try:
        main()
    except UserError as err:
        sys.exit(f"{name}: error: {err}")
