"""loop.py: strategies, precision, the distributed loop, checkpoints, resume, NaN stop,
determinism, and equality across strategies (mirrored on 2 logical CPUs, two local workers).

The tiny run (32x32, base_filters 4, random VGG16, batch 4, 2 epochs x 2 steps) is
``multiworker_worker.run_tiny_training``; strategies that must be configured before TensorFlow
starts run it in subprocesses.
"""

import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

import multiworker_worker as tiny
from image_completion.core.gan import METRIC_NAMES
from image_completion.data import dataset as D  # noqa: N812 - the module's short alias in the tests
from image_completion.training import loop

WORKER = Path(__file__).parents[1] / "multiworker_worker.py"
# Cross-strategy tolerances, from an error analysis rather than one machine's maximum.
# - Losses: the strategies sum the same float32 terms in another order (per-replica sums, then
#   an all-reduce): each sum is off by at most ~n * eps ~ 1e-6 relative; a few steps of training
#   compound that into < 1e-4 relative on every logged loss.
# - Weights: Adam's update is m / (sqrt(v) + eps) * lr, at most about lr per step whatever the
#   gradient's size. For an element whose true gradient is ~0, float32 rounding noise decides the
#   sign of every step, so two correct runs can drift apart by up to 2 * lr * steps, on any CPU
#   (which elements are noise-dominated depends on the CPU's kernels: AVX2 and AVX-512 differ).
#   The worst such elements, conv biases right before BatchNormalization (an exact 0 gradient),
#   are gone (models._conv_bn_act builds those convolutions without a bias); the bound stays as
#   the ceiling. For every other element the gradient's relative error (~1e-6) moves the step by
#   ~1e-6 * lr: the bulk of the weights agree far below 1e-6, which a real bug (a wrong batch
#   split, a missing all-reduce) would break.
LR, TINY_STEPS = 1e-3, 2 * 2  # run_tiny_training: Adam(1e-3), 2 epochs x 2 steps
LOSS_RTOL = 1e-4
# - The validation `sharpness` is a ratio of gradient energies of the output: it amplifies the
#   output differences that the noise-dominated weights above leave in inference mode (the conv
#   biases before BatchNormalization shift the moving means), so it is held to 1e-2 relative.
RTOL = {"sharpness": 1e-2}
WEIGHT_ATOL = 2 * LR * TINY_STEPS
BULK_ATOL = 1e-6


@pytest.fixture(scope="module")
def deterministic():
    was = tf_config.is_op_determinism_enabled()
    loop.seed_everything(7)
    yield
    if not was:
        tf_config.disable_op_determinism()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return tiny.write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory, deterministic):
    """The uninterrupted default-strategy run: (weights, history, checkpoint dir)."""
    ckpt = tmp_path_factory.mktemp("reference_ckpt")
    model, history = tiny.run_tiny_training(tf.distribute.get_strategy(), photos, ckpt)
    return tiny.weights_of(model), history, ckpt


def records(history):
    return [{k: r[k] for k in ("epoch", "train", "val")} for r in history]


def assert_close_runs(weights_a, history_a, weights_b, history_b):
    assert len(weights_a) == len(weights_b)
    for a, b in zip(records(history_a), records(history_b)):
        for split in ("train", "val"):
            assert a[split].keys() == b[split].keys()
            for k in a[split]:
                assert b[split][k] == pytest.approx(a[split][k], rel=RTOL.get(k, LOSS_RTOL), abs=1e-6), (a["epoch"], split, k)
    diffs = np.concatenate([np.abs(a - b).ravel() for a, b in zip(weights_a, weights_b)])
    assert diffs.max() <= WEIGHT_ATOL
    assert np.median(diffs) <= BULK_ATOL


# ------------------------------------------------------------------------------------------ factories


def test_make_strategy_default_and_errors(monkeypatch):
    assert loop.make_strategy("default") is tf.distribute.get_strategy()
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(loop.TrainingError, match="TF_CONFIG is not set"):
        loop.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(loop.TrainingError, match="not a valid cluster"):
        loop.make_strategy("multiworker")


def test_set_precision():
    try:
        loop.set_precision("mixed_bfloat16")
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        if not tf.config.list_physical_devices("GPU"):
            with pytest.raises(loop.TrainingError, match="needs a GPU"):
                loop.set_precision("mixed_float16")
    finally:
        keras.config.set_dtype_policy("float32")


AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
NATIVE_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n"


def test_native_bf16_reads_the_cpu_flags():
    assert not loop.native_bf16(AVX2_ONLY)
    assert loop.native_bf16(NATIVE_BF16)
    assert loop.native_bf16("flags : avx2 amx_bf16\n")


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="CPU rules; a GPU picks mixed_float16")
def test_auto_precision_follows_the_cpu_and_an_emulated_bf16_warns(monkeypatch, caplog):
    monkeypatch.setattr(loop, "native_bf16", lambda cpuinfo=None: False)
    assert loop.resolve_precision("auto") == "float32"
    with caplog.at_level(logging.WARNING, logger="image_completion.training.loop"):
        assert loop.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert "emulated" in caplog.text
    monkeypatch.setattr(loop, "native_bf16", lambda cpuinfo=None: True)
    assert loop.resolve_precision("auto") == "mixed_bfloat16"
    assert loop.resolve_precision("float32") == "float32"


def test_epoch_seed_is_a_pure_function_of_seed_and_epoch():
    seeds = [loop.epoch_seed(1234, e) for e in range(50)]
    assert seeds == [loop.epoch_seed(1234, e) for e in range(50)]
    assert len(set(seeds)) == 50 and all(0 <= s < 2**31 for s in seeds)
    assert loop.epoch_seed(1235, 0) != seeds[0]


def test_checkpoints_of_other_params_are_discarded_with_a_message(tmp_path, caplog):
    variable = tf.Variable(1.0)
    epoch = tf.Variable(3, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable, epoch=epoch), tmp_path, max_to_keep=1)
    loop.prepare_checkpoint_dir(tmp_path, "params-a", {"lr": 1}, epochs=5)
    manager.save(checkpoint_number=3)
    # Same params: kept (a later run resumes from them).
    loop.prepare_checkpoint_dir(tmp_path, "params-a", {"lr": 1}, epochs=5)
    assert tf.train.latest_checkpoint(str(tmp_path)) is not None
    # Other params: deleted, with a warning naming the directory and both fingerprints.
    with caplog.at_level(logging.WARNING, logger="image_completion.training.loop"):
        loop.prepare_checkpoint_dir(tmp_path, "params-b", {"lr": 2}, epochs=5)
    assert tf.train.latest_checkpoint(str(tmp_path)) is None
    assert not list(tmp_path.glob("ckpt-*"))
    assert "discarding the checkpoints" in caplog.text and "params-a" in caplog.text and "params-b" in caplog.text
    assert json.loads((tmp_path / loop.FINGERPRINT_FILE).read_text())["params"] == {"lr": 2}


def test_an_epoch_is_checkpointed_with_its_history(tmp_path):
    epoch, history_var = tf.Variable(0, dtype=tf.int64), tf.Variable("[]")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(epoch=epoch, history=history_var), tmp_path, max_to_keep=1)
    record = {"epoch": 1, "train": {"g_loss": 0.5}, "val": {"g_loss": 0.25}, "seconds": 12.5}
    history = []
    loop._save_epoch(manager, epoch, history_var, history, record)
    assert history == [record] and int(epoch.numpy()) == 2
    assert json.loads(history_var.numpy()) == [record]
    assert loop._saved_epoch(tf.train.latest_checkpoint(str(tmp_path))) == 2


def test_the_epoch_log_names_the_seconds_of_each_phase(caplog):
    record = {"epoch": 1, "train": {"g_loss": 0.5}, "val": {"g_loss": 0.25}, "seconds": 12.5}
    with caplog.at_level(logging.INFO, logger="image_completion.training.loop"):
        loop._log_epoch(record, 4, {"train": 9.25, "validation": 3.0, "save": 0.4})
    assert "epoch 2/4 (12.5 s: train 9.2, validation 3.0, save 0.4): g_loss=0.5 val_g_loss=0.25" in caplog.text


def test_the_distributed_training_stream_keeps_autotuning_off():
    # dataset._options turns it off (an iterator's deletion waited for the autotune thread);
    # distribute_dataset merges options of its own, which must not turn it back on.
    stream = tf.data.Dataset.range(8).batch(4).with_options(D._options())
    distributed = loop.distribute_dataset(tf.distribute.get_strategy(), stream, 4)
    assert distributed.options().autotune.enabled is False
    assert [b.numpy().tolist() for b in distributed] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGES = {  # how a checkpoint folder gets damaged (kill -9, full disk, bad disk, a user's edit)
    "truncated data": lambda d: os.truncate(d / "ckpt-3.data-00000-of-00001", 100),
    "zero-length data": lambda d: os.truncate(d / "ckpt-3.data-00000-of-00001", 0),
    "bit-flipped data": lambda d: _flip_a_byte(d / "ckpt-3.data-00000-of-00001"),
    "truncated index": lambda d: os.truncate(d / "ckpt-3.index", 50),
    "missing data": lambda d: (d / "ckpt-3.data-00000-of-00001").unlink(),
    "garbage checkpoint file": lambda d: (d / "checkpoint").write_bytes(bytes(range(256))),
    "checkpoint file naming a missing checkpoint": lambda d: [p.unlink() for p in d.glob("ckpt-3.*")],
}


@pytest.mark.parametrize("damage", [*DAMAGES, "killed save", "a file"])
def test_damaged_checkpoints_are_refused_naming_the_folder_and_killed_saves_are_cleaned(tmp_path, damage, caplog):
    """A checkpoint of these params is read whole (checksums) before training: damaged -> one line
    saying what to remove, never a silent restart from epoch 0; a killed save's ckpt-N_temp/ goes."""
    folder = tmp_path / "ckpt"
    variables = {"v": tf.Variable(tf.random.normal([4000])), "epoch": tf.Variable(3, dtype=tf.int64)}
    loop.prepare_checkpoint_dir(folder, "params-a", {"lr": 1}, epochs=5)
    tf.train.CheckpointManager(tf.train.Checkpoint(**variables), folder, max_to_keep=1).save(checkpoint_number=3)
    if damage == "a file":
        (tmp_path / "file").write_text("not a folder")
        with pytest.raises(loop.TrainingError, match=f"{tmp_path / 'file'}: the checkpoint folder is a file"):
            loop.prepare_checkpoint_dir(tmp_path / "file", "params-a", {"lr": 1}, epochs=5)
        return
    if damage == "killed save":
        (folder / "ckpt-4_temp").mkdir()
        (folder / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
        with caplog.at_level(logging.WARNING, logger="image_completion.training.loop"):
            loop.prepare_checkpoint_dir(folder, "params-a", {"lr": 1}, epochs=5)
        assert not (folder / "ckpt-4_temp").exists() and "ckpt-4_temp" in caplog.text
        assert tf.train.latest_checkpoint(str(folder)) == str(folder / "ckpt-3")  # the finished save resumes
        return
    DAMAGES[damage](folder)
    with pytest.raises(loop.TrainingError, match=f"{folder}: damaged checkpoint .*; remove {folder} to train from epoch 0"):
        loop.prepare_checkpoint_dir(folder, "params-a", {"lr": 1}, epochs=5)
    loop.prepare_checkpoint_dir(folder, "params-b", {"lr": 2}, epochs=5)  # other params: discarded, as before
    assert not list(folder.glob("ckpt-*"))


# ------------------------------------------------------------------------------------------ the loop


def test_two_runs_with_the_same_params_are_identical(reference, photos, tmp_path):
    weights, history, ckpt = reference
    assert [r["epoch"] for r in history] == [0, 1]
    # Validation computes every measure; a training step skips the style distance (weight 0) and the sharpness.
    assert set(history[0]["val"]) == set(METRIC_NAMES)
    assert set(history[0]["train"]) == set(METRIC_NAMES) - {"g_style", "sharpness", "g_hole_log_mse"}
    assert sorted(p.name for p in ckpt.glob("ckpt-*.index")) == ["ckpt-2.index"]  # max_to_keep=1
    model, again = tiny.run_tiny_training(tf.distribute.get_strategy(), photos, tmp_path)
    assert records(again) == records(history)
    assert all(np.array_equal(a, b) for a, b in zip(weights, tiny.weights_of(model)))


def test_nan_stops_training_and_a_rerun_resumes_to_the_uninterrupted_result(reference, photos, tmp_path, caplog):
    weights, history, _ = reference
    # The first run "crashes" in the middle of epoch 2 (its 2nd batch is NaN).
    with pytest.raises(loop.NonFiniteLossError, match=r"non-finite loss at epoch 2, step 2: g_loss=nan") as err:
        tiny.run_tiny_training(tf.distribute.get_strategy(), photos, tmp_path, poison_epoch=1)
    assert "nothing of this epoch was saved (the last checkpoint is epoch 1)" in str(err.value)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-1.index"]
    # Rerun: resumes after epoch 1 and ends exactly where the uninterrupted run ended.
    with caplog.at_level(logging.INFO, logger="image_completion.training.loop"):
        model, resumed = tiny.run_tiny_training(tf.distribute.get_strategy(), photos, tmp_path)
    assert "resuming from" in caplog.text and "(epoch 1 of 2)" in caplog.text
    # The epoch log gives the seconds of each phase, so a slow epoch shows where its time went.
    assert re.search(r"epoch 2/2 \(\d+\.\d s: train \d+\.\d, validation \d+\.\d, save \d+\.\d\): g_\w+=", caplog.text)
    assert records(resumed) == records(history)
    assert all(np.array_equal(a, b) for a, b in zip(weights, tiny.weights_of(model)))


# ------------------------------------------------------------------------------------------ strategies


def run_worker(args, env):
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        env={**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker timed out after {timeout} s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    return out


def load_result(path):
    result = np.load(path)
    weights = [result[f"w{i}"] for i in range(len([k for k in result.files if k.startswith("w")]))]
    return weights, json.loads(str(result["history"])), int(result["replicas"]), bool(result["chief"])


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_default(reference, photos, tmp_path):
    weights, history, _ = reference
    photo_dir = str(Path(photos[0]).parent)
    out = tmp_path / "mirrored.npz"
    args = ["--strategy", "mirrored", "--logical-cpus", "2", "--photos", photo_dir]
    proc = run_worker([*args, "--checkpoints", str(tmp_path / "ckpt"), "--out", str(out)], {})
    finish(proc, 240)
    m_weights, m_history, replicas, _ = load_result(out)
    assert replicas == 2
    assert_close_runs(weights, history, m_weights, m_history)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_two_local_processes_end_with_equal_weights(reference, photos, tmp_path):
    _, history, _ = reference
    photo_dir = str(Path(photos[0]).parent)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    ckpt = tmp_path / "ckpt"
    procs = [
        run_worker(
            [
                "--strategy",
                "multiworker",
                "--epochs",
                "1",
                "--photos",
                photo_dir,
                "--checkpoints",
                str(ckpt),
                "--out",
                str(tmp_path / f"w{i}.npz"),
            ],  # fmt: skip
            {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
        )
        for i in range(2)
    ]
    try:
        for proc in procs:
            finish(proc, 300)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    w0, h0, replicas, chief0 = load_result(tmp_path / "w0.npz")
    w1, h1, _, chief1 = load_result(tmp_path / "w1.npz")
    assert replicas == 2 and chief0 and not chief1
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    assert h0 == h1
    # Only the chief wrote checkpoints (non-chief temp dirs are removed).
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "checkpoint",
        "ckpt-1.data-00000-of-00001",
        "ckpt-1.index",
        "fingerprint.json",
    ]
    # One epoch (kept short: two processes on a small machine): its metrics equal the
    # single-device run's first epoch.
    assert len(h0) == 1
    for split in ("train", "val"):
        for k, v in history[0][split].items():
            assert h0[0][split][k] == pytest.approx(v, rel=RTOL.get(k, LOSS_RTOL), abs=1e-6), (split, k)


def test_progress_logs_steps_per_second_and_eta_when_not_a_terminal(caplog):
    bar = loop.Progress(total=10, desc="epoch 1/1", enabled=True, interval=0.0)
    with caplog.at_level(logging.INFO, logger="image_completion.training.loop"):
        bar.update({"g_loss": 0.5})
        bar.update({"g_loss": 0.4})
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # pytest's stderr is not a terminal: log lines, no bar
    assert "step 2/10" in lines[-1] and "steps/s" in lines[-1] and "ETA" in lines[-1] and "g_loss=0.4" in lines[-1]
    quiet = loop.Progress(total=10, desc="x", enabled=True, interval=3600.0)
    with caplog.at_level(logging.INFO, logger="image_completion.training.loop"):
        quiet.update({"g_loss": 0.5})
    assert len(caplog.records) == 2  # nothing new within the interval
