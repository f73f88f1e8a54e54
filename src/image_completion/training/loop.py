"""The training loop of the inpainting GAN: strategies, precision, seeding, per-epoch
checkpoints with exact resume, progress.

A hand-written loop (``strategy.run(model.train_step)`` in a ``tf.function``) because Keras 3's
``fit()`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585); each epoch's data
is a pure function of (seed, epoch), so a resumed run sees the same stream. Checkpoint and
fingerprint rules: ``docs/architecture.md``, "Training stages: outputs and resume".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from image_completion.config import PRECISIONS, STRATEGIES
from image_completion.core.gan import InpaintingGAN
from image_completion.errors import InputError, clip
from image_completion.images import write_text_atomic
from image_completion.training.hardware import native_bf16

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"
CHECKPOINT_PREFIX = "ckpt"
_SEED_TAG = 201  # keeps the per-epoch data seeds apart from other uses of base.seed


class TrainingError(InputError, RuntimeError):
    """Training cannot start or continue; the message says why and what to do."""


class NonFiniteLossError(TrainingError):
    """A loss became NaN or infinite; training stopped and nothing of that epoch was saved."""


# ------------------------------------------------------------------------------------------
# Strategy, precision, determinism
# ------------------------------------------------------------------------------------------


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy ``name``: default | mirrored | multiworker.

    ``mirrored`` mirrors over all local GPUs, or over all logical CPU devices when there is no
    GPU. ``multiworker`` reads the cluster from the ``TF_CONFIG`` environment variable and must
    be created before TensorFlow runs any op.
    """
    assert name in STRATEGIES, name  # config.Strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    raw = os.environ.get("TF_CONFIG")  # multiworker
    if not raw:
        raise TrainingError(
            "strategy 'multiworker' needs the cluster in the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}; '
            "TF_CONFIG is not set"
        )
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as err:
        raise TrainingError(
            f"TF_CONFIG is not a valid cluster description ({err!r}); it needs 'cluster' with a "
            f"'worker' list and 'task' with 'type' and 'index', got {raw!r}"
        ) from None
    if not workers:
        raise TrainingError(f"TF_CONFIG lists no workers: {raw!r}")
    return tf.distribute.MultiWorkerMirroredStrategy()


def resolve_precision(name: str) -> str:
    """The precision to train in: ``auto`` = mixed_float16 on a GPU, mixed_bfloat16 on a CPU with
    native bf16, else float32. An explicit mixed_bfloat16 on a CPU without native bf16 warns."""
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if name == "auto":
        chosen = "mixed_float16" if gpu else "mixed_bfloat16" if native_bf16() else "float32"
        log.info(
            "precision auto -> %s (%s)",
            chosen,
            "GPU" if gpu else "CPU native bf16" if native_bf16() else "CPU without native bf16",
        )
        return chosen
    if name == "mixed_bfloat16" and not gpu and not native_bf16():
        log.warning(
            "precision mixed_bfloat16 on a CPU without AVX512_BF16/AMX-BF16: bfloat16 is emulated and "
            "much slower than float32 here; train.precision: auto picks float32 on this CPU"
        )
    return name


def set_precision(name: str) -> None:
    """Sets Keras' global dtype policy: float32 | mixed_bfloat16 | mixed_float16 (GPU only)."""
    assert name in PRECISIONS and name != "auto", name
    if name == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        raise TrainingError(
            "precision 'mixed_float16' needs a GPU (float16 on CPU is slow and unsupported by many "
            "kernels), and no GPU is visible; use 'auto', 'mixed_bfloat16' or 'float32' on CPU"
        )
    keras.config.set_dtype_policy(name)


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras, and makes TF ops deterministic."""
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def epoch_seed(seed: int, epoch: int) -> int:
    """The data seed of one epoch: a pure function of (seed, epoch), fits in 31 bits."""
    return int(np.random.SeedSequence([int(seed), _SEED_TAG, int(epoch)]).generate_state(1)[0] >> 1)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the worker that writes checkpoints and outputs (always True without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def fingerprint_of(obj) -> str:
    """sha256 of the canonical JSON of ``obj`` (params as plain data)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ------------------------------------------------------------------------------------------
# Data distribution
# ------------------------------------------------------------------------------------------


def distribute_dataset(strategy, dataset: tf.data.Dataset, global_batch_size: int):
    """Distributes a dataset of global batches: each input pipeline (worker) takes its
    contiguous share of every batch and splits it into per-replica batches.

    Done by hand (auto-sharding off) so that every strategy sees the same examples per step
    as a single device, whatever the dataset's ops (the training stream uses a
    ``numpy_function`` that tf.data's auto-sharding cannot rewrite).
    """

    def dataset_fn(ctx: tf.distribute.InputContext):
        if global_batch_size % ctx.num_input_pipelines:
            raise TrainingError(f"the global batch {global_batch_size} is not divisible by the {ctx.num_input_pipelines} workers")
        per_worker = global_batch_size // ctx.num_input_pipelines
        per_replica = ctx.get_per_replica_batch_size(global_batch_size)
        lo = ctx.input_pipeline_id * per_worker

        def share(batch):
            first = tf.nest.flatten(batch)[0]
            check = tf.debugging.assert_equal(
                tf.shape(first)[0],
                global_batch_size,
                message=f"every batch must hold exactly the global batch size {global_batch_size}",
            )
            with tf.control_dependencies([check]):
                return tf.nest.map_structure(lambda v: v[lo : lo + per_worker], batch)

        ds = dataset.map(share)
        if per_replica != per_worker:
            ds = ds.rebatch(per_replica, drop_remainder=True)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        options.deterministic = True
        return ds.with_options(options)

    return strategy.distribute_datasets_from_function(dataset_fn)


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------


def _checkpoint_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name == "checkpoint" or p.name.startswith(CHECKPOINT_PREFIX + "-"))


def _read_fingerprint(directory: Path) -> str | None:
    try:
        return json.loads((directory / FINGERPRINT_FILE).read_text())["fingerprint"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return "<unreadable>"


def _saved_epoch(path: str) -> int:
    return int(tf.train.load_variable(path, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))


# What TensorFlow raises reading a truncated, zero-length, bit-flipped or missing checkpoint file.
_CHECKPOINT_READ_ERRORS = (tf.errors.OpError, ValueError, IndexError)


def _damaged(directory: Path, problem: object) -> TrainingError:
    text = str(problem).strip()
    first = text.splitlines()[0] if text else type(problem).__name__
    return TrainingError(f"{directory}: damaged checkpoint ({clip(first)}); remove {directory} to train from epoch 0")


def _readable_latest(directory: Path) -> str | None:
    """The latest checkpoint, every tensor read (checksums verified); None when the folder holds
    none. A checkpoint that cannot be read, or checkpoint files with no latest one, is a
    ``TrainingError`` naming the folder: never a silent restart from epoch 0."""
    try:
        latest = tf.train.latest_checkpoint(str(directory))
        if latest is None:
            if _checkpoint_files(directory):
                raise _damaged(directory, "its 'checkpoint' file names no checkpoint that exists")
            return None
        reader = tf.train.load_checkpoint(latest)
        for name in reader.get_variable_to_dtype_map():
            reader.get_tensor(name)
    except _CHECKPOINT_READ_ERRORS as err:
        raise _damaged(directory, err) from None
    return latest


def _remove_killed_saves(directory: Path) -> None:
    """Removes the ``ckpt-N_temp/`` folders of saves that were killed (TensorFlow writes there first)."""
    for path in directory.glob(f"{CHECKPOINT_PREFIX}-*_temp"):
        if path.is_dir() and not path.is_symlink():
            log.warning("removing %s, left by a checkpoint save that was killed", path)
            shutil.rmtree(path)


def prepare_checkpoint_dir(directory: str | Path, fingerprint: str, params, epochs: int) -> None:
    """Chief only: deletes checkpoints that do not belong to ``fingerprint`` (or that went past
    ``epochs``), with a logged warning, and records the fingerprint and params. A damaged
    checkpoint of this fingerprint is a ``TrainingError`` saying what to remove."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise TrainingError(f"{directory}: the checkpoint folder is a file; remove it or choose another folder")
    directory.mkdir(parents=True, exist_ok=True)
    _remove_killed_saves(directory)
    files = _checkpoint_files(directory)
    if files:
        found = _read_fingerprint(directory)
        reason = None
        if found != fingerprint:
            reason = f"they were made with other params (fingerprint {found}, now {fingerprint})"
        elif (latest := _readable_latest(directory)) is not None and _saved_epoch(latest) > epochs:
            reason = f"the latest is at epoch {_saved_epoch(latest)}, beyond the {epochs} epochs asked"
        if reason:
            log.warning("discarding the checkpoints in %s: %s; training starts from epoch 0", directory, reason)
            for p in files:
                p.unlink()
    write_text_atomic(
        directory / FINGERPRINT_FILE,
        json.dumps({"fingerprint": fingerprint, "params": params}, indent=2, sort_keys=True) + "\n",
    )


def synchronize_batch_norm(model: keras.Model, strategy) -> list[str]:
    """With several replicas, makes every BatchNormalization use global-batch statistics
    (``synchronized=True``): the paper's batch of 8 then normalises over 8 examples whatever the
    strategy, and a distributed step equals a single-device step. Returns the layers changed."""
    if strategy.num_replicas_in_sync <= 1:
        return []
    changed = []

    def visit(layer):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            changed.append(layer.path if hasattr(layer, "path") else layer.name)
        for sub in getattr(layer, "layers", []):
            visit(sub)

    for network in (model.generator, model.discriminator):
        visit(network)
    if changed:
        log.info(
            "%d replicas: %d BatchNormalization layers switched to synchronized (global-batch) statistics",
            strategy.num_replicas_in_sync,
            len(changed),
        )
    return changed


def _barrier(strategy) -> None:
    """Blocks until every worker arrives (a cross-worker all-reduce); a no-op on one worker."""
    if getattr(strategy.extended, "_num_workers", 1) <= 1:
        return

    def one():
        return tf.constant(1.0)

    @tf.function(autograph=False)
    def all_reduce():
        return strategy.reduce("SUM", strategy.run(one), axis=None)

    all_reduce()


# ------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------


class Progress:
    """Per-step progress: a tqdm bar on an interactive stderr; otherwise a log line at least every
    ``interval`` seconds with steps/s and the ETA (``dvc repro`` output is not a terminal)."""

    def __init__(self, total: int, desc: str, enabled: bool, interval: float = 30.0):
        self.total, self.desc, self.enabled, self.interval = total, desc, enabled, interval
        self.done, self.start = 0, time.perf_counter()
        self.last = self.start
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm  # noqa: PLC0415 - only for interactive runs

            self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(self, losses: dict) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(losses)
            return
        now = time.perf_counter()
        if self.enabled and now - self.last >= self.interval:
            self.last = now
            rate = self.done / (now - self.start)
            log.info(
                "%s: step %d/%d, %.2f steps/s, ETA %.0f s, %s",
                self.desc,
                self.done,
                self.total,
                rate,
                (self.total - self.done) / rate,
                " ".join(f"{k}={v:.4g}" for k, v in losses.items()),
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_finite(losses: dict, where: str, last_epoch: int) -> dict:
    values = {k: float(v) for k, v in losses.items()}
    bad = {k: v for k, v in values.items() if not np.isfinite(v)}
    if bad:
        raise NonFiniteLossError(
            f"non-finite loss at {where}: {', '.join(f'{k}={v}' for k, v in values.items())}. "
            f"Training stopped; nothing of this epoch was saved (the last checkpoint is epoch "
            f"{last_epoch}). Check the input data, or lower the learning rates."
        )
    return values


def _restore(model: InpaintingGAN, strategy, checkpoint_dir: Path, fingerprint: str, fingerprint_params, epochs: int):
    """(manager, epoch variable, history variable, history so far), resumed from the last
    checkpoint of ``checkpoint_dir`` made with the same ``fingerprint``."""
    chief = is_chief(strategy)
    # Bookkeeping variables live outside the strategy (plain, not mirrored).
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    history_var = tf.Variable("[]", dtype=tf.string, trainable=False, name="history")
    checkpoint = tf.train.Checkpoint(
        generator=model.generator, discriminator=model.discriminator, g_optimizer=model.g_optimizer,
        d_optimizer=model.d_optimizer, epoch=epoch_var, history=history_var,
    )  # fmt: skip
    if chief:
        prepare_checkpoint_dir(checkpoint_dir, fingerprint, fingerprint_params, epochs)
    _barrier(strategy)  # non-chief workers read the directory only after the chief settled it
    latest = _readable_latest(checkpoint_dir)
    if latest is not None:
        checkpoint.restore(latest).assert_existing_objects_matched()
        log.info("resuming from %s (epoch %d of %d)", latest, int(epoch_var.numpy()), epochs)
    history: list[dict] = json.loads(history_var.numpy().decode())
    if len(history) != int(epoch_var.numpy()):
        raise TrainingError(f"{latest}: the checkpoint holds {len(history)} epoch records for epoch {int(epoch_var.numpy())}")
    # Only the chief writes to checkpoint_dir; other workers save to a private temp dir.
    write_dir = str(checkpoint_dir) if chief else tempfile.mkdtemp(prefix="ckpt-worker-")
    manager = tf.train.CheckpointManager(checkpoint, write_dir, max_to_keep=1, checkpoint_name=CHECKPOINT_PREFIX)
    return manager, epoch_var, history_var, history


def _step_functions(model: InpaintingGAN, strategy):
    """(train_fn, test_fn, results): compiled distributed steps and the epoch's metrics reader."""

    @tf.function
    def train_fn(batch):
        losses = strategy.run(model.train_step, args=(batch,))
        return {k: strategy.reduce("SUM", v, axis=None) for k, v in losses.items()}

    @tf.function
    def test_fn(batch):
        losses = strategy.run(model.test_step, args=(batch,))
        return {k: strategy.reduce("SUM", v, axis=None) for k, v in losses.items()}

    @tf.function
    def read_metrics():
        return {t.name: (t.result(), t.count) for t in model.metrics}

    def results() -> dict:
        """The metrics the epoch computed (a training step skips those it does not need)."""
        return {k: float(v) for k, (v, count) in read_metrics().items() if float(count) > 0}

    return train_fn, test_fn, results


def _reset(model: InpaintingGAN) -> None:
    for t in model.metrics:
        t.reset_state()


def _save_epoch(manager, epoch_var, history_var, history: list, record: dict) -> None:
    """Appends ``record`` to the history and checkpoints it with the weights."""
    history.append(record)
    epoch_var.assign(record["epoch"] + 1)
    history_var.assign(json.dumps(history))
    manager.save(checkpoint_number=record["epoch"] + 1)


def _log_epoch(record: dict, epochs: int, phases: dict) -> None:
    """Logs the epoch's metrics with the seconds of each phase (train, validation, save), so a
    slow epoch shows where its time went."""
    metrics = [f"{k}={v:.4g}" for k, v in record["train"].items()] + [f"val_{k}={v:.4g}" for k, v in record["val"].items()]
    timing = ", ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items())
    log.info("epoch %d/%d (%.1f s: %s): %s", record["epoch"] + 1, epochs, record["seconds"], timing, " ".join(metrics))


def train_gan(
    model: InpaintingGAN,
    strategy: tf.distribute.Strategy,
    *,
    train_dataset_fn: Callable[[int], tf.data.Dataset],
    steps_per_epoch: int,
    epochs: int,
    global_batch_size: int,
    checkpoint_dir: str | Path,
    fingerprint: str,
    fingerprint_params=None,
    val_dataset_fn: Callable[[], tf.data.Dataset] | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Trains ``model`` (compiled, built under ``strategy.scope()``) up to ``epochs`` epochs,
    resuming from the last checkpoint in ``checkpoint_dir`` made with the same ``fingerprint``.

    ``train_dataset_fn(epoch)``: that epoch's dataset of global batches; ``val_dataset_fn()``:
    the fixed validation batches, scored with ``test_step`` after each epoch. ``on_epoch_end(record)``
    is called for every epoch in order, restored ones included, with ``record = {"epoch": e,
    "train": {metric: value}, "val": {...}, "seconds": s}``. Returns the records. Raises
    ``NonFiniteLossError`` on a NaN/inf loss.
    """
    assert epochs >= 0 and steps_per_epoch >= 1, (epochs, steps_per_epoch)
    chief = is_chief(strategy)
    synchronize_batch_norm(model, strategy)
    with strategy.scope():
        model.build_optimizers()
    manager, epoch_var, history_var, history = _restore(
        model, strategy, Path(checkpoint_dir), fingerprint, fingerprint_params, epochs
    )
    train_fn, test_fn, results = _step_functions(model, strategy)
    for record in history:
        if on_epoch_end:
            on_epoch_end(record)

    for epoch in range(len(history), epochs):
        t0 = time.perf_counter()
        _reset(model)
        bar = Progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress and chief)
        dataset = train_dataset_fn(epoch).take(steps_per_epoch)
        for batch in distribute_dataset(strategy, dataset, global_batch_size):
            bar.update(_check_finite(train_fn(batch), f"epoch {epoch + 1}, step {bar.done + 1}", epoch))
        bar.close()
        if bar.done != steps_per_epoch:
            raise TrainingError(f"the training data of epoch {epoch + 1} ended after {bar.done} of {steps_per_epoch} steps")
        train_metrics = _check_finite(results(), f"the end of epoch {epoch + 1} (train metrics)", epoch)
        t_val = time.perf_counter()
        val_metrics = {}
        if val_dataset_fn is not None:
            _reset(model)
            for batch in distribute_dataset(strategy, val_dataset_fn(), global_batch_size):
                _check_finite(test_fn(batch), f"epoch {epoch + 1}, validation", epoch)
            val_metrics = results()
        t_end = time.perf_counter()
        record = {"epoch": epoch, "train": train_metrics, "val": val_metrics, "seconds": round(t_end - t0, 3)}
        _save_epoch(manager, epoch_var, history_var, history, record)
        _log_epoch(record, epochs, {"train": t_val - t0, "validation": t_end - t_val, "save": time.perf_counter() - t_end})
        if on_epoch_end:
            on_epoch_end(record)
    if not chief:
        shutil.rmtree(manager.directory, ignore_errors=True)
    return history
