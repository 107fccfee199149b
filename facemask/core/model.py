"""Build the classifier: raw RGB in, class probabilities out, all preprocessing inside."""
import importlib

import numpy as np

from facemask.core import CLASSES, UserError
from facemask.core.backbones import Backbone, get_backbone
from facemask.core.quiet_tf import keras
from facemask.core.resize import load_batch, resizer

FEATURES_LAYER = "features"
HEAD_LAYERS = ("dropout", "classifier")


def pooled_layers(backbones: list[str]) -> dict[str, str]:
    """{backbone name: the layer that pools its features} in a model from build_ensemble."""
    return {backbones[0]: FEATURES_LAYER} if len(backbones) == 1 else {name: f"{name}_pool" for name in backbones}


def scaling_layers(backbone: Backbone, prefix: str = "") -> list:
    """Built-in layers that do the backbone's preprocess_input (no Lambda, so safe-mode loading works)."""
    if backbone.scaling == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name=f"{prefix}scale")]
    std = (0.229, 0.224, 0.225)
    return [
        keras.layers.Rescaling(1 / 255.0, name=f"{prefix}scale"),
        keras.layers.Normalization(mean=(0.485, 0.456, 0.406), variance=[s * s for s in std], name=f"{prefix}normalize"),
    ]


def build_classifier(backbone_name: str, image_size: int, weights_file: str | None, dropout: float = 0.2) -> keras.Model:
    """resize -> backbone scaling -> backbone -> GlobalAveragePooling2D -> dropout -> softmax."""
    return build_ensemble({backbone_name: weights_file}, image_size, dropout, name=f"facemask_{backbone_name}")


def build_ensemble(members: dict, image_size: int, dropout: float = 0.2, name: str = "facemask_ensemble") -> keras.Model:
    """One classifier over several backbones ({name: weights file or None}): their pooled features
    are concatenated before the head, so the ensemble is still one model with one softmax.

    A pretrained backbone is called with training=False, so its BatchNorm runs in inference mode in
    predict and in the head's training; when fine-tuning, Keras 3's fit() ignores that flag and
    stages.train freezes those BatchNorm layers instead. A backbone trained from scratch (no weights)
    needs BatchNorm to learn its statistics.
    """
    inputs = keras.Input(shape=(None, None, 3), name="image")
    resized = resizer(image_size)(inputs)
    pooled, pool_names = [], pooled_layers(list(members))
    for backbone_name, weights_file in members.items():
        backbone = get_backbone(backbone_name)
        if image_size < backbone.min_size:
            raise UserError(f"{backbone_name}: image_size {image_size} is below its minimum of {backbone.min_size}")
        base = network(backbone)(include_top=False, weights=weights_file, input_shape=(image_size, image_size, 3))
        base.trainable = False
        x = resized
        for layer in scaling_layers(backbone, prefix=f"{backbone_name}_" if len(members) > 1 else ""):
            x = layer(x)
        x = base(x, training=None if weights_file is None else False)
        pooled.append(keras.layers.GlobalAveragePooling2D(name=pool_names[backbone_name])(x))
    features = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name=FEATURES_LAYER)(pooled)
    x = keras.layers.Dropout(dropout, name=HEAD_LAYERS[0])(features)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name=HEAD_LAYERS[1])(x)
    return keras.Model(inputs, outputs, name=name)


def network(backbone: Backbone):
    """The function that builds `backbone` (its row names it: a keras.applications network, or tiny_net below)."""
    module, _, name = backbone.constructor.rpartition(".")
    return getattr(importlib.import_module(module), name)


def tiny_net(include_top: bool = False, weights: str | None = None, input_shape: tuple = (32, 32, 3)) -> keras.Model:
    """The TinyNet backbone, called as keras.applications' are: convolution, depthwise convolution and a 1x1
    projection, each with BatchNorm and ReLU6 as in MobileNetV2; its feature map has 32 channels."""
    if include_top:
        raise ValueError("TinyNet has no classification top")
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for index, layer in enumerate((keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False),
                                   keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False),
                                   keras.layers.Conv2D(32, 1, use_bias=False))):
        x = layer(x)
        x = keras.layers.BatchNormalization(name=f"block{index}_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"block{index}_relu")(x)
    model = keras.Model(inputs, x, name="tiny_net")
    if weights:
        model.load_weights(weights)
    return model


def feature_extractor(model: keras.Model, layer: str = FEATURES_LAYER) -> keras.Model:
    """The model up to its pooled backbone features, or up to one backbone's `layer` from pooled_layers
    (shares layers with `model`)."""
    return keras.Model(model.inputs, model.get_layer(layer).output)


def head(model: keras.Model) -> keras.Model:
    """A model over pooled features that shares the dropout and classifier layers with `model`."""
    features = keras.Input(shape=model.get_layer(FEATURES_LAYER).output.shape[1:], name="pooled")
    x = features
    for name in HEAD_LAYERS:
        x = model.get_layer(name)(x)
    return keras.Model(features, x)


def average(models: dict[str, keras.Model], name: str) -> keras.Model:
    """One model whose probabilities are the mean of `models`' ({member name: classifier}), e.g. one
    backbone trained with several seeds; each member keeps its own preprocessing inside."""
    inputs = keras.Input(shape=(None, None, 3), name="image")
    outputs = [keras.Model(model.input, model.output, name=member)(inputs) for member, model in models.items()]
    return keras.Model(inputs, keras.layers.Average(name="mean_probabilities")(outputs), name=name)


def members(model: keras.Model) -> list[keras.Model]:
    """The classifiers a model from average() averages; [model] for a single classifier."""
    if any(layer.name == "resize" for layer in model.layers):
        return [model]
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def input_size(model: keras.Model) -> int:
    """The square image size the model's built-in resize step produces (its first member's)."""
    return members(model)[0].get_layer("resize").height


def predict_labels(model: keras.Model, paths: list, batch_size: int = 32, view: str | None = None) -> np.ndarray:
    """Top-1 class index for each image file (re-framed as `view` says), through the full saved-model path."""
    batch = load_batch(paths, input_size(model), view)
    return model.predict(batch, batch_size=batch_size, verbose=0).argmax(axis=1)



def load(path) -> keras.Model:
    """Load a saved classifier in Keras safe mode (no arbitrary code is deserialised)."""
    return keras.saving.load_model(path, safe_mode=True)
