"""The GPU switches (mixed precision, XLA, MirroredStrategy), checked for correctness on the CPU.

CI has no GPU, so each switch is forced on through its environment override and
a tiny run must still train, save a loadable model and leave the process as it
found it.
"""

import keras
import pytest

from tlcore.results.prediction import load_run_model
from tlcore.training import accelerator
from tlcore.training.run import train


def test_cpu_plan_turns_everything_off(monkeypatch):
    for name in ("TLCORE_MIXED_PRECISION", "TLCORE_XLA", "TLCORE_MIRRORED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(accelerator, "visible_gpus", lambda: 0)

    plan = accelerator.plan_accelerator()

    assert (plan.mixed_precision, plan.jit_compile, plan.mirrored) == (False, False, False)
    assert plan.describe() == "CPU"


def test_gpu_plan_turns_on_mixed_precision_and_xla_and_mirrors_several(monkeypatch):
    for name in ("TLCORE_MIXED_PRECISION", "TLCORE_XLA", "TLCORE_MIRRORED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(accelerator, "visible_gpus", lambda: 2)

    plan = accelerator.plan_accelerator()

    assert (plan.mixed_precision, plan.jit_compile, plan.mirrored) == (True, True, True)
    assert "mixed precision" in plan.describe() and "MirroredStrategy" in plan.describe()


@pytest.mark.parametrize("switch", ["TLCORE_MIXED_PRECISION", "TLCORE_XLA", "TLCORE_MIRRORED"])
def test_each_switch_trains_correctly_on_the_cpu(switch, shared_tiny_dataset, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv(switch, "1")

    result = train(tiny_config(shared_tiny_dataset, epochs=2), runs_dir=tmp_path / "runs")

    assert result.status == "completed" and result.epochs_run == 2
    assert result.val_accuracy is not None
    model, labels = load_run_model(result.run_dir)
    assert model.get_layer("classifier").dtype_policy.compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32", "the process is left in float32"


def _train_in_a_fresh_process(data, runs_dir, extra_env) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, **extra_env}
    done = subprocess.run(
        [sys.executable, "-m", "tlcore", "train", str(data), "--runs-dir", str(runs_dir), "--json", "--weights", "none",
         "--image-size", "32", "--backbone", "mobilenet_025", "--epochs", "2", "--batch-size", "8"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mirrored_over_two_logical_cpu_devices_trains_a_run(shared_tiny_dataset, tmp_path):
    # The stand-in for several GPUs: the CPU split into two devices, the model replicated over both.
    result = _train_in_a_fresh_process(shared_tiny_dataset, tmp_path / "runs",
                                       {"TLCORE_MIRRORED": "1", "TLCORE_CPU_DEVICES": "2"})
    assert result["status"] == "completed" and result["epochs_run"] == 2


def test_multi_worker_with_one_worker_on_this_machine_trains_a_run(shared_tiny_dataset, tmp_path):
    import json
    import socket

    with socket.socket() as probe:  # a free port on the loopback address for the one worker
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}}
    result = _train_in_a_fresh_process(shared_tiny_dataset, tmp_path / "runs",
                                       {"TLCORE_DISTRIBUTION": "multi_worker", "TF_CONFIG": json.dumps(tf_config)})
    assert result["status"] == "completed" and result["epochs_run"] == 2


def test_several_workers_are_refused_in_words_since_keras_3_cannot_train_over_them():
    import json

    import pytest

    from tlcore.errors import InputError
    from tlcore.training.accelerator import refuse_more_than_one_worker

    two = {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 0}}
    with pytest.raises(InputError, match="names 2 workers.*72388"):
        refuse_more_than_one_worker(json.dumps(two))
    with pytest.raises(InputError, match="not JSON"):
        refuse_more_than_one_worker("{cluster")
    refuse_more_than_one_worker(json.dumps({"cluster": {"worker": ["127.0.0.1:2222"]}}))  # one worker trains
