"""Use a GPU well when there is one: mixed precision, XLA, several GPUs.

On a laptop CPU none of this applies and everything stays in float32 without
XLA (compiling costs more start-up time than it saves on small runs). On a GPU,
float16 compute with float32 weights roughly doubles throughput on tensor cores,
and XLA fuses the many small ops of mobile backbones. With more than one GPU
visible, `tf.distribute.MirroredStrategy` replicates the model across them
(DEVELOPERS.md: tf.distribute strategies, not a home-made scheduler).

Environment overrides, for experiments and tests: `TLCORE_MIXED_PRECISION`,
`TLCORE_XLA` and `TLCORE_MIRRORED` set to 0 or 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class AcceleratorPlan:
    """How this process will train."""

    gpus: int
    mixed_precision: bool
    jit_compile: bool
    mirrored: bool

    def describe(self) -> str:
        if not self.gpus and not self.mixed_precision and not self.mirrored:
            return "CPU"
        parts = [f"{self.gpus} GPU(s)" if self.gpus else "CPU"]
        if self.mixed_precision:
            parts.append("mixed precision")
        if self.jit_compile:
            parts.append("XLA")
        if self.mirrored:
            parts.append("MirroredStrategy")
        return ", ".join(parts)


def visible_gpus() -> int:
    """Number of GPUs the current Keras backend can use."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return len(tf.config.list_physical_devices("GPU"))
        if backend == "jax":
            import jax

            return len([device for device in jax.devices() if device.platform == "gpu"])
        if backend == "torch":
            import torch

            return torch.cuda.device_count()
    except Exception:  # a broken driver means no usable GPU
        return 0
    return 0


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip() not in ("0", "false", "no", "")


def plan_accelerator() -> AcceleratorPlan:
    gpus = visible_gpus()
    return AcceleratorPlan(
        gpus=gpus,
        mixed_precision=_flag("TLCORE_MIXED_PRECISION", gpus > 0),
        jit_compile=_flag("TLCORE_XLA", gpus > 0),
        mirrored=_flag("TLCORE_MIRRORED", gpus > 1) and keras.backend.backend() == "tensorflow",
    )


def apply_precision(plan: AcceleratorPlan) -> None:
    """Set the global dtype policy before any layer is built."""
    keras.mixed_precision.set_global_policy("mixed_float16" if plan.mixed_precision else "float32")


def make_strategy(plan: AcceleratorPlan):
    """A `tf.distribute.MirroredStrategy` over the GPUs, or None for one device.

    Build and compile inside `strategy.scope()`; `fit` then splits each batch
    across the replicas.
    """
    if not plan.mirrored:
        return None
    import tensorflow as tf

    devices = None if plan.gpus > 1 else ["/cpu:0"]  # the CPU form exists for tests
    return tf.distribute.MirroredStrategy(devices=devices)
