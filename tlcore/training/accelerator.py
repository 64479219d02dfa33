"""Use a GPU well when there is one: mixed precision, XLA, several GPUs.

On a laptop CPU none of this applies and everything stays in float32 without
XLA (compiling costs more start-up time than it saves on small runs). On a GPU,
float16 compute with float32 weights roughly doubles throughput on tensor cores,
and XLA fuses the many small ops of mobile backbones. With more than one GPU
visible, `tf.distribute.MirroredStrategy` replicates the model across them
(DEVELOPERS.md: tf.distribute strategies, not a home-made scheduler).

Environment overrides, for experiments and tests: `TLCORE_MIXED_PRECISION`,
`TLCORE_XLA` and `TLCORE_MIRRORED` set to 0 or 1; `TLCORE_CPU_DEVICES=N`
splits the CPU into N logical devices that `MirroredStrategy` replicates
over (the tested stand-in for several GPUs).

More than one machine: `TLCORE_DISTRIBUTION=multi_worker` with the usual
`TF_CONFIG` trains under `tf.distribute.MultiWorkerMirroredStrategy`. Tested
with one worker; with two, Keras 3's `fit` fails in its first step under that
strategy (tensorflow/tensorflow#72388), so a TF_CONFIG of several workers is
refused in words (`refuse_more_than_one_worker`). Keras 3's own route over
machines is `keras.distribution` on JAX, not built here. tlcore itself
schedules nothing across machines.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import keras

from tlcore.errors import InputError


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
    """A `tf.distribute` strategy over the GPUs (or the machines), or None for one device.

    Build and compile inside `strategy.scope()`; `fit` then splits each batch
    across the replicas.
    """
    distribution = os.environ.get("TLCORE_DISTRIBUTION", "").strip()
    if not plan.mirrored and distribution != "multi_worker":
        return None
    import tensorflow as tf

    if distribution == "multi_worker":
        return start_multi_worker()
    cpus = _logical_cpu_devices(tf)
    if plan.gpus > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy(devices=cpus or ["/cpu:0"])  # the CPU form exists for tests


def _logical_cpu_devices(tf) -> list[str]:
    """`TLCORE_CPU_DEVICES=N`: the CPU split into N logical devices (only before TensorFlow has started)."""
    try:
        count = int(os.environ.get("TLCORE_CPU_DEVICES", "0"))
    except ValueError:
        return []
    if count < 2:
        return []
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # TensorFlow already started: keep the devices it has
        pass
    return [device.name for device in tf.config.list_logical_devices("CPU")]


_multi_worker = None  # made once per process, at its start: TensorFlow's collective ops allow nothing else


def start_multi_worker():
    """The process's `MultiWorkerMirroredStrategy` (from `TF_CONFIG`), made before TensorFlow runs anything else.

    The command line calls this right after importing TensorFlow when
    `TLCORE_DISTRIBUTION=multi_worker`; training then uses the same strategy.
    """
    global _multi_worker
    if _multi_worker is None:
        refuse_more_than_one_worker(os.environ.get("TF_CONFIG", ""))
        import tensorflow as tf

        _multi_worker = tf.distribute.MultiWorkerMirroredStrategy()
    return _multi_worker


def refuse_more_than_one_worker(tf_config: str) -> None:
    """Say now, in words, that Keras 3 cannot train over several TensorFlow workers.

    With two workers on one machine, `fit` under `MultiWorkerMirroredStrategy`
    fails in its first step, in the strategy's reduction of the metrics
    ("Invalid reduction dimension 0 for input with 0 dimensions"): a known
    incompatibility of `tf.distribute` with Keras 3 (tensorflow/tensorflow
    issue 72388), which Keras 2 did not have. One worker trains, as tested.

    Raises:
        InputError: TF_CONFIG names more than one worker.
    """
    try:
        cluster = json.loads(tf_config or "{}").get("cluster", {})
    except (ValueError, AttributeError):
        raise InputError(f"TF_CONFIG is not JSON: {tf_config[:80]!r}; expected the usual "
                         '{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": 0}}.') from None
    tasks = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    if tasks > 1:
        raise InputError(
            f"TF_CONFIG names {tasks} workers, but Keras 3 cannot yet train over several TensorFlow workers "
            "(tf.distribute's MultiWorkerMirroredStrategy fails in its first step: tensorflow/tensorflow#72388). "
            "Train on one machine (its GPUs are used together), or unset TLCORE_DISTRIBUTION."
        )
