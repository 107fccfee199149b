"""train.distribute: where a model trains. `mirrored` keeps one copy of the model per device
(tf.distribute.MirroredStrategy), each taking an equal share of every batch; `none` trains on one device."""
from facemask.core import UserError
from facemask.core.quiet_tf import tf

KERAS_VALIDATION_BATCH = 32  # fit()'s validation batch size when it is given arrays and no batch_size


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


def require_even_first_batches(strategy: tf.distribute.Strategy, sets: dict[str, tuple[int, int]]) -> None:
    """A UserError when the first batch of a set {name: (images, batch size)} does not split evenly over the
    strategy's devices: Keras's fit() hangs on it (measured on two logical CPU devices with a batch of 7).
    Only a set smaller than one batch can have such a first batch."""
    devices = strategy.num_replicas_in_sync
    for name, (images, batch_size) in sets.items():
        if min(images, batch_size) % devices:
            raise UserError(f"train.distribute: mirrored splits every batch over {devices} devices, and the "
                            f"{name} set's first batch has {min(images, batch_size)} images; fit() hangs on a batch "
                            f"that does not split evenly. Use {name} images to at least one full batch "
                            f"({batch_size}), or train.distribute: none")
