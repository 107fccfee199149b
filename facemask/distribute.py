"""train.distribute: where a model trains. `mirrored` keeps one copy of the model per device
(tf.distribute.MirroredStrategy), each taking an equal share of every batch; `none` trains on one device."""
import tensorflow as tf


def training_strategy(mode: str) -> tf.distribute.Strategy:
    """MirroredStrategy over the visible GPUs (else over the logical CPU devices, as a test sets up) for
    `mirrored`; TensorFlow's default strategy for `none`, or when only one device can be seen (said so)."""
    if mode == "none":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        print(f"train.distribute: mirrored needs two devices or more, and only {devices[0].name} is visible; "
              "training on it")
        return tf.distribute.get_strategy()
    print(f"train.distribute: mirrored over {len(devices)} devices ({', '.join(d.name for d in devices)})")
    return tf.distribute.MirroredStrategy([device.name for device in devices])
