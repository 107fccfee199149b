"""Progress bars (tqdm, on stderr, shown only on a terminal): counts, rate and time left for long steps."""
import sys

import keras
from tqdm import tqdm


def bar(iterable=None, desc: str = "", total: int | None = None, unit: str = "image", leave: bool = False) -> tqdm:
    """A tqdm bar on stderr; off when stderr is not a terminal (CI logs, pipes), so logs stay clean."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, file=sys.stderr, disable=None,
                dynamic_ncols=True)


class BatchBar(keras.callbacks.Callback):
    """One bar per fit() over its training batches, with the running loss."""

    def __init__(self, desc: str, steps: int):
        super().__init__()
        self.desc, self.steps, self._bar = desc, steps, None

    def on_train_begin(self, logs=None):
        self._bar = bar(desc=self.desc, total=self.steps, unit="batch")

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(1)
        if logs and "loss" in logs:
            self._bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

    def on_train_end(self, logs=None):
        self._bar.close()
