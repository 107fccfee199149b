"""Build the classifier: raw RGB in, class probabilities out, all preprocessing inside."""
import keras

from facemask import CLASSES
from facemask.backbones import get_backbone, scaling_layers
from facemask.images import resizer

FEATURES_LAYER = "features"
HEAD_LAYERS = ("dropout", "classifier")


def build_classifier(backbone_name: str, image_size: int, weights_file: str | None, dropout: float = 0.2) -> keras.Model:
    """resize -> backbone scaling -> backbone -> GlobalAveragePooling2D -> dropout -> softmax.

    A pretrained backbone keeps BatchNorm in inference mode (also when fine-tuned); a backbone
    trained from scratch (no weights) needs BatchNorm to learn its statistics.
    """
    backbone = get_backbone(backbone_name)
    if image_size < backbone.min_size:
        raise ValueError(f"{backbone_name}: image_size {image_size} is below its minimum of {backbone.min_size}")
    base = backbone.constructor(include_top=False, weights=weights_file, input_shape=(image_size, image_size, 3))
    base.trainable = False
    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = resizer(image_size)(inputs)
    for layer in scaling_layers(backbone):
        x = layer(x)
    x = base(x, training=None if weights_file is None else False)
    x = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)
    x = keras.layers.Dropout(dropout, name=HEAD_LAYERS[0])(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name=HEAD_LAYERS[1])(x)
    return keras.Model(inputs, outputs, name=f"facemask_{backbone_name}")


def feature_extractor(model: keras.Model) -> keras.Model:
    """The model up to the pooled backbone features (shares layers with `model`)."""
    return keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output)


def head(model: keras.Model) -> keras.Model:
    """A model over pooled features that shares the dropout and classifier layers with `model`."""
    features = keras.Input(shape=model.get_layer(FEATURES_LAYER).output.shape[1:], name="pooled")
    x = features
    for name in HEAD_LAYERS:
        x = model.get_layer(name)(x)
    return keras.Model(features, x)


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested keras.applications model inside `model`."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def load(path) -> keras.Model:
    """Load a saved classifier in Keras safe mode (no arbitrary code is deserialised)."""
    return keras.saving.load_model(path, safe_mode=True)
