"""Entry-point helper for stage modules: user errors and Ctrl-C become one clear line, no traceback."""
import sys

from facemask import UserError


def run(main, name: str) -> None:
    try:
        main()
    except UserError as err:
        sys.exit(f"{name}: error: {err}")
    except KeyboardInterrupt:
        print(f"{name}: interrupted; run `dvc repro` again to finish (training resumes from its last checkpoint)",
              file=sys.stderr)
        sys.exit(130)
