"""Training checkpoints in one file, written atomically; a checkpoint from other inputs is never resumed."""
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from facemask.core.files import md5sum


def fingerprint(settings: dict, files) -> str:
    """A digest of the settings and the files' contents: what a checkpoint is only valid for."""
    digest = hashlib.md5(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(md5sum(path).encode())
    return digest.hexdigest()


class Checkpoint:
    """A JSON `state` plus named lists of arrays, saved as one .npz (no pickles) in `directory`.

    Saving writes a temp file and renames it, so a kill mid-write leaves the previous checkpoint
    whole. A checkpoint saved for another fingerprint (other params, data or code), or one that
    cannot be read, is ignored (`unusable`) and replaced by the next save.
    """

    def __init__(self, directory, valid_for: str):
        self.path = Path(directory) / "checkpoint.npz"
        self.fingerprint = valid_for
        self.state, self._arrays, self.unusable = {}, {}, False
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as saved:
                    state = json.loads(str(saved["state"]))
                    arrays = {k: saved[k] for k in saved.files if k != "state"}
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                state, arrays = {}, {}
            if state.get("fingerprint") == valid_for:
                self.state, self._arrays = state, arrays
            else:
                self.unusable = True

    def arrays(self, name: str) -> list[np.ndarray]:
        """The list of arrays saved under `name`, in order."""
        return [self._arrays[k] for k in sorted(self._arrays) if k.rsplit("_", 1)[0] == name]

    def save(self, state: dict, **arrays: list) -> None:
        """Replace the checkpoint with `state` and the named lists of arrays."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state = {**state, "fingerprint": self.fingerprint}
        self._arrays = {f"{name}_{i:06d}": np.asarray(a) for name, values in arrays.items() for i, a in enumerate(values)}
        tmp = self.path.with_name("checkpoint.tmp.npz")
        np.savez(tmp, state=np.array(json.dumps(self.state)), **self._arrays)
        os.replace(tmp, self.path)
