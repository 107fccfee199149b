"""Progress bars (tqdm, on stderr, shown only on a terminal): counts, rate and time left for long steps."""
import sys

from tqdm import tqdm


def bar(iterable=None, desc: str = "", total: int | None = None, unit: str = "image", leave: bool = False) -> tqdm:
    """A tqdm bar on stderr; off when stderr is not a terminal (CI logs, pipes), so logs stay clean."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, file=sys.stderr, disable=None,
                dynamic_ncols=True)
