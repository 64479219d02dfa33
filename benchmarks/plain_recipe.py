"""The plain transfer-learning recipe, written plainly, as the baseline for `speed.py`.

Frozen pretrained backbone inside `model.fit`, pooling + dense head, Adam, a
fixed number of epochs, every image decoded and pushed through the backbone again
in every epoch. It uses the same train/validation files as tlcore (from tlcore's
audit) so that the two accuracies are comparable; everything else is the recipe
from the Keras transfer-learning guide.

Usage: python benchmarks/plain_recipe.py DATA [--epochs 10] [--trainable-blocks 0|2]
Prints one JSON line: wall_s (inside the process), val_accuracy, epochs.
"""

from __future__ import annotations

import argparse
import json
import time

started = time.time()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tlcore.data.audit import audit_dataset  # noqa: E402

IMAGE_SIZE = 224


def load(path, label):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.image.resize(image, [IMAGE_SIZE, IMAGE_SIZE]), label


def dataset(records, class_names, shuffle):
    paths = [record.path for record in records]
    labels = [class_names.index(record.label) for record in records]
    data = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle:
        data = data.shuffle(len(paths), seed=0)
    return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(32).prefetch(tf.data.AUTOTUNE)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trainable-blocks", type=int, default=0, help="0, or 2 for block_16 + the final conv")
    parser.add_argument("--seed", type=int, default=42, help="seeds the split (the same as tlcore's) and the model")
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    audit = audit_dataset(args.data, 0.2, args.seed, find_duplicates=False)
    train = dataset(audit.split_records("train"), audit.class_names, shuffle=True)
    val = dataset(audit.split_records("val"), audit.class_names, shuffle=False)

    base = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights="imagenet", input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    base.trainable = args.trainable_blocks > 0
    if args.trainable_blocks:
        top_layers = ("block_16_", "Conv_1", "out_relu")
        for layer in base.layers:
            unfrozen = layer.name.startswith(top_layers) and not isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = unfrozen
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(audit.class_names), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train, validation_data=val, epochs=args.epochs, verbose=0)
    print(json.dumps({
        "wall_s": time.time() - started,
        "val_accuracy": history.history["val_accuracy"][-1],
        "best_val_accuracy": max(history.history["val_accuracy"]),
        "epochs": len(history.epoch),
    }))


if __name__ == "__main__":
    main()
