"""The supported backbones (ImageNet's, and TinyNet for smoke runs), their input scaling, and where their weights
come from.

Plain data: Keras is imported only to download weights (facemask.core.model builds the networks)."""
from dataclasses import dataclass
from pathlib import Path

from facemask.core import UserError
from facemask.core.project import project_path


class WeightsUnavailable(UserError):
    """ImageNet weights were asked for but are neither on disk nor downloadable."""


@dataclass(frozen=True)
class Backbone:
    constructor: str         # the function that builds it, "module.function" (imported by facemask.core.model.network)
    keras_file: str          # the file Keras downloads for weights="imagenet", include_top=False ("": none exist)
    local_names: tuple       # other file names accepted in the weights directory
    scaling: str             # "tf": [-1, 1]; "torch": [0, 1] then ImageNet mean/std
    min_size: int


_MOBILENET_SIZES = (224, 192, 160, 128, 96)

BACKBONES = {
    "MobileNetV2": Backbone(
        "keras.applications.MobileNetV2",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        (*(f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{s}_no_top.h5" for s in _MOBILENET_SIZES),
         "mobilenet_v2_1.0_notop_imagenet_int8_dequantized_bnfolded.h5"),
        "tf",
        32,
    ),
    "Xception": Backbone(
        "keras.applications.Xception",
        "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        (),
        "tf",
        71,
    ),
    "DenseNet169": Backbone(
        "keras.applications.DenseNet169",
        "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
        (),
        "torch",
        32,
    ),
    # Three convolution blocks in MobileNetV2's idiom, no ImageNet weights (facemask.core.model.tiny_net): a smoke
    # run or a test of the pipeline itself fine-tunes it in seconds on a CPU. It learns little; not a product model.
    "TinyNet": Backbone("facemask.core.model.tiny_net", "", (), "tf", 32),
}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name, listing the valid names if it is unknown."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def resolve_weights(name: str, weights: str, weights_dir) -> str | None:
    """Turn the `weights` param (imagenet | a file path | none) into what keras.applications takes.

    imagenet: a matching file in weights_dir first, else Keras's own download (cached in ~/.keras).
    """
    backbone = get_backbone(name)
    if weights is None or str(weights).lower() == "none":
        return None
    if not backbone.keras_file and str(weights).lower() == "imagenet":
        raise WeightsUnavailable(f"{name} has no ImageNet weights (it is a small network for smoke runs); "
                                 "set weights: none")
    if str(weights).lower() != "imagenet":
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailable(f"{name}: weights file '{weights}' does not exist; fix the path or set weights: none")
        return str(path)
    if weights_dir:
        for file_name in (backbone.keras_file, *backbone.local_names):
            candidate = project_path(weights_dir) / file_name  # from the project root, as in a queued run
            if candidate.is_file():
                return str(candidate)
    import keras  # only for a download

    try:
        return keras.utils.get_file(
            backbone.keras_file,
            f"https://storage.googleapis.com/tensorflow/keras-applications/{_keras_subdir(name)}/{backbone.keras_file}",
            cache_subdir="models",
        )
    except Exception as err:  # any download failure: offline, proxy, HTTP error
        raise WeightsUnavailable(
            f"{name}: ImageNet weights are not available offline and the download failed ({err}). "
            f"Put '{backbone.keras_file}' into the weights directory ({weights_dir or 'features.weights_dir'}), "
            f"point weights: at a local .h5 file, or set weights: none to train from scratch."
        ) from None


def _keras_subdir(name: str) -> str:
    return {"MobileNetV2": "mobilenet_v2", "Xception": "xception", "DenseNet169": "densenet"}[name]
