"""The time estimate, on recorded figures: no TensorFlow, no training."""

import json

import pytest

from tlcore.data.records import DatasetAudit, ImageRecord
from tlcore.runs import folder as run_folder
from tlcore.training import estimate as estimate_module
from tlcore.training.callbacks import RunClock
from tlcore.training.config import TrainConfig
from tlcore.training.estimate import (
    GUESS_FEATURE_IMAGES_PER_S,
    MachineSpeed,
    estimate_run,
    guessed_images_per_s,
    measured_speed,
    remaining_after,
)


def _audit(train: int, val: int) -> DatasetAudit:
    records = [ImageRecord(f"/x/{split}{i}.png", f"{split}{i}.png", "a" if i % 2 else "b", split, "PNG", 32, 32, False)
               for split, count in (("train", train), ("val", val)) for i in range(count)]
    return DatasetAudit("x", "x", "class_folders", ["a", "b"], records)


SPEED = MachineSpeed(images_per_s=250.0, epoch_s_per_image={"all": 0.0001, "top:2": 0.001}, trace_s={"all": 0.5, "top:2": 0.9},
                     set_up_s=1.0, finish_s=0.4, start_s=2.0)


def test_a_frozen_run_is_set_up_a_pass_a_trace_its_epochs_and_finishing():
    config = TrainConfig(data="x", epochs=10)
    estimate = estimate_run(config, _audit(200, 50), speed=SPEED)
    per_epoch = 0.0001 * 200 + estimate_module.GUESS_EPOCH_OVERHEAD_S
    assert estimate.cached and estimate.measured
    assert estimate.total_s == pytest.approx(1.0 + 250 / 250.0 + 0.5 + 10 * per_epoch + 0.4)
    assert estimate.command_line_total_s == pytest.approx(estimate.total_s + 2.0)
    assert "measured on this computer" in estimate.describe()


def test_two_phases_pay_two_passes_and_the_blocks_cost_their_own_measured_rate():
    config = TrainConfig(data="x", freeze="top:2", two_phase=True, head_epochs=15, epochs=40, augment="flip")
    estimate = estimate_run(config, _audit(200, 50), speed=SPEED)
    head, blocks = estimate.phases
    assert (head.learns, head.epochs, blocks.learns, blocks.epochs) == ("all", 15, "top:2", 25)
    assert head.pass_images == blocks.pass_images == 200 * 2 + 50  # as is and mirrored, plus validation
    assert blocks.per_epoch_s == pytest.approx(0.001 * 200 + estimate_module.GUESS_EPOCH_OVERHEAD_S)
    assert (head.trace_s, blocks.trace_s) == (0.5, 0.9), "each kind of phase has its own tracing time"
    only_frozen_runs = MachineSpeed(images_per_s=250.0, epoch_s_per_image={"all": 0.0001}, trace_s={"all": 0.3})
    _, guessed = estimate_run(config, _audit(200, 50), speed=only_frozen_runs).phases
    # This computer's pass ran at 250 pictures/s where the first guess says 450: its guesses are as much slower.
    assert guessed.trace_s == pytest.approx(estimate_module.GUESS_BLOCK_TRACE_S * GUESS_FEATURE_IMAGES_PER_S / 250.0)


def test_a_computer_measured_slower_at_the_pass_is_guessed_as_much_slower_at_the_rest():
    config = TrainConfig(data="x", backbone="mobilenetv2_100", freeze="top:2", two_phase=True, head_epochs=15, epochs=40)
    guessed_rate = guessed_images_per_s("mobilenetv2_100", 224)
    as_guessed = estimate_run(config, _audit(200, 50), speed=MachineSpeed()).phases[1]
    busy = estimate_run(config, _audit(200, 50), speed=MachineSpeed(images_per_s=guessed_rate / 4)).phases[1]

    assert busy.pass_s == pytest.approx(4 * as_guessed.pass_s)
    assert busy.trace_s == pytest.approx(4 * as_guessed.trace_s)
    overhead = estimate_module.GUESS_EPOCH_OVERHEAD_S
    assert busy.per_epoch_s - overhead == pytest.approx(4 * (as_guessed.per_epoch_s - overhead))


def test_the_second_phase_check_is_counted_before_the_blocks_epochs():
    from tlcore.training import second_phase

    plain = TrainConfig(data="x", freeze="top:2", two_phase=True, head_epochs=15, epochs=40)
    checked = plain.replace(second_phase_check=True)
    _, blocks = estimate_run(plain, _audit(200, 50), speed=SPEED).phases
    _, after_check = estimate_run(checked, _audit(200, 50), speed=SPEED).phases
    overhead = estimate_module.GUESS_EPOCH_OVERHEAD_S
    check = (0.001 * 200 / estimate_module.GUESS_TRAINING_COST
             + (second_phase.HEAD_EPOCHS + second_phase.TRIAL_EPOCHS) * (0.0001 * 160 + overhead)
             + second_phase.TRIAL_EPOCHS * (0.001 * 160 + overhead) + 0.5 + 0.9)
    assert after_check.trace_s - blocks.trace_s == pytest.approx(check)
    assert after_check.epochs == blocks.epochs and after_check.per_epoch_s == blocks.per_epoch_s


def test_kept_features_skip_the_first_pass_and_the_words_say_so():
    config = TrainConfig(data="x", epochs=5)
    estimate = estimate_run(config, _audit(200, 50), kept_images=250, speed=SPEED)
    assert estimate.phases[0].pass_s == 0
    assert "kept from an earlier run" in estimate.describe()


def test_before_any_run_the_default_backbone_is_guessed_from_its_measured_rate():
    config = TrainConfig(data="x")
    assert guessed_images_per_s(config.backbone, config.resolved_image_size) == pytest.approx(GUESS_FEATURE_IMAGES_PER_S)
    estimate = estimate_run(config, _audit(90, 10), speed=MachineSpeed())
    assert not estimate.measured and "first guess" in estimate.describe()


def test_a_machine_without_runs_has_measured_nothing():
    assert measured_speed("mobilenetv2_035") == MachineSpeed()


def _record_run(runs_dir, name, config: dict, train: int, started: float, rows: list[dict], ended: float):
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    (run_dir / run_folder.CONFIG_FILE).write_text(json.dumps({"data": "x", "backbone": "mobilenetv2_035", **config}))
    (run_dir / run_folder.SPLIT_FILE).write_text(json.dumps({"train": [["a", "a", "/a"]] * train, "val": []}))
    (run_dir / run_folder.STATUS_FILE).write_text(json.dumps({
        "state": "completed", "started_at": started, "ended_at": ended, "process_started_at": started - 2.2}))
    (run_dir / run_folder.METRICS_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_figures_of_a_recorded_two_phase_run_are_read_back_part_by_part(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_HOME", str(tmp_path))
    rows = [{"type": "feature_pass", "split": "train", "images": 400, "seconds": 1.0, "images_per_s": 400.0, "time": 102.0}]
    rows += [{"type": "epoch", "phase": "head", "epoch_s": 0.6 if i == 0 else 0.02, "time": 103.0 + i} for i in range(5)]
    rows += [{"type": "epoch", "phase": "fine_tune", "epoch_s": 0.9 if i == 0 else 0.2, "time": 110.0 + i} for i in range(5)]
    _record_run(tmp_path / "runs", "20260101-000000-mobilenetv2_035-x",
                {"freeze": "top:2", "two_phase": True, "head_epochs": 5, "epochs": 10}, 200, 100.0, rows, 114.5)

    speed = measured_speed("mobilenetv2_035")

    assert speed.images_per_s == 400.0
    assert speed.epoch_s_per_image == {"all": pytest.approx(0.0001), "top:2": pytest.approx(0.001)}
    assert speed.set_up_s == pytest.approx(1.0) and speed.finish_s == pytest.approx(0.5)
    assert speed.start_s == pytest.approx(2.2)
    assert speed.trace_s == {"all": pytest.approx(0.58), "top:2": pytest.approx(0.7)}
    # The same run again, part by part: set-up, two passes of 400 pictures with a trace each, 5 + 5 steady epochs
    # (plus the per-epoch overhead), finishing.
    config = TrainConfig(data="x", freeze="top:2", two_phase=True, head_epochs=5, epochs=10)
    overhead = estimate_module.GUESS_EPOCH_OVERHEAD_S
    expected = 1.0 + (1.0 + 0.58) + (1.0 + 0.7) + 5 * (0.02 + overhead) + 5 * (0.2 + overhead) + 0.5
    assert estimate_run(config, _audit(200, 200), speed=speed).total_s == pytest.approx(expected)


def test_after_the_first_epoch_the_time_left_ignores_its_tracing(monkeypatch):
    # A phase of 30 epochs of 0.02 s each, whose first epoch also traced for 0.5 s, then finishing.
    estimate = estimate_run(TrainConfig(data="x", epochs=30), _audit(200, 50), speed=SPEED)
    clock = RunClock(30, steps_per_epoch=7, estimate=estimate)
    clock.start_phase(0)
    now = [0.0]
    monkeypatch.setattr("time.monotonic", lambda: now[0])
    clock.epoch_started()
    now[0] = 0.45  # the first batch traced
    clock.batch_ended()
    for _ in range(6):
        now[0] += 0.002
        clock.batch_ended()
    now[0] += 0.06  # validation traced: two batches
    clock.batch_ended(testing=True)
    now[0] += 0.001
    clock.batch_ended(testing=True)
    clock.epoch_ended(now[0])

    true_left = 29 * 0.02 + estimate.finish_s
    left = clock.remaining_seconds(1, 0)
    assert true_left / 1.5 <= left <= 1.5 * true_left


def test_later_phases_come_from_the_estimate():
    estimate = estimate_run(TrainConfig(data="x", freeze="top:2", two_phase=True, head_epochs=5, epochs=10),
                            _audit(200, 50), speed=SPEED)
    head, blocks = estimate.phases
    assert remaining_after(estimate, 0, 5, 0.02) == pytest.approx(blocks.total_s + estimate.finish_s)
    assert remaining_after(estimate, 1, 2, 0.3) == pytest.approx(3 * 0.3 + estimate.finish_s)
