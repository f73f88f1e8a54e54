"""Measurements of the steps: GEMM peaks, training and validation steps in each precision, where a
step's time goes (per network and kernel), inference (the input pipeline and a fill: `end_to_end`)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from image_completion.bench.flops import network_layers
from image_completion.bench.networks import (
    build_gan,
    build_generator_of,
    dtype_policy,
    gan_step_flops,
    recipes,
    training_precision,
)
from image_completion.bench.projection import GEMM_DTYPE, TARGET_FRACTION
from image_completion.training.hardware import CPU_FLAGS, cpu_features, cpu_type, native_bf16  # noqa: F401 - re-exported


@dataclass(frozen=True)
class Settings:
    """Sizes and repeat counts of one bench run (``FULL`` under 3 minutes on 2 cores)."""

    gemm_sizes: tuple = (1024, 2048)
    gemm_repeats: int = 6
    step_repeats: int = 10
    warmup: int = 2
    pipeline_seconds: float = 3.0  # per recipe, after warm-up
    fill_size: tuple = (4000, 3000)  # width, height: 12 megapixels
    fill_repeats: int = 2
    import_repeats: int = 2  # 0: not measured


FULL = Settings()
QUICK = Settings((256,), 2, 2, 1, 0.3, (800, 600), 1, 0)


# ------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------


def time_calls(fn, repeats: int, warmup: int = 1) -> dict:
    """Times ``fn()`` (which must block until done) ``repeats`` times after ``warmup`` calls:
    wall seconds of the warm-up, best and median call, and this process's mean CPU seconds per
    call (CPU seconds well below wall x cores: other jobs took the cores)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    warm = time.perf_counter() - start
    times, cpu = [], time.process_time()
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu) / repeats
    return {"warmup_s": warm, "best_s": min(times), "median_s": statistics.median(times), "cpu_s": cpu}


def measure_gemm(dtype: str, n: int, repeats: int) -> float:
    """Best FLOP rate (FLOP/s) of an n x n x n ``tf.linalg.matmul`` in ``dtype`` inside a tf.function."""
    import tensorflow as tf  # noqa: PLC0415

    a = tf.cast(tf.random.stateless_uniform((n, n), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_uniform((n, n), seed=(3, 4)), dtype)
    matmul = tf.function(lambda x, y: tf.linalg.matmul(x, y)[:1, :1])
    return 2 * n**3 / time_calls(lambda: matmul(a, b).numpy(), repeats)["best_s"]


def measure_gemm_rates(dtypes, sizes, repeats: int) -> dict:
    """{dtype: {"flops_per_s": the best over ``sizes``, "by_size": {n: FLOP/s}}}."""
    out = {}
    for dtype in dtypes:
        by_size = {str(n): measure_gemm(dtype, n, repeats) for n in sizes}
        out[dtype] = {"flops_per_s": max(by_size.values()), "by_size": by_size}
    return out


def random_batch(batch: int, size: int, channels: int = 3, seed: int = 0) -> dict:
    """A training batch of random images with one box hole each; ``masked`` has ``channels``: the
    masked image repeated to fill all but the last channel, then the mask (4 or 3K + 1 channels)."""
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    image = rng.random((batch, size, size, 3), dtype=np.float32)
    mask = np.zeros((batch, size, size, 1), np.float32)
    mask[:, size // 4 : size // 2, size // 8 : size // 2] = 1.0
    masked = np.where(mask > 0, np.float32(1.0), image)
    if channels > 3:
        assert channels % 3 == 1, channels  # K fills of 3 channels + the mask
        masked = np.concatenate([np.tile(masked, (channels - 1) // 3), mask], axis=-1)
    return {"masked": tf.constant(masked), "image": tf.constant(image), "mask": tf.constant(mask)}


def gan_batch(gan, params) -> dict:
    return random_batch(params.train.batch_size, params.base.image_size, gan.generator.input_shape[-1])


def measure_train_step(params, recipe: str, stage: int, precision: str, settings: Settings):
    """Seconds of one compiled ``train_step`` (median and best) and its FLOPs; returns
    (record, gan, batch, step function)."""
    import tensorflow as tf  # noqa: PLC0415

    with dtype_policy(precision):
        gan = build_gan(params, recipe, stage)
        gan.build_optimizers()
        batch = gan_batch(gan, params)
        step = tf.function(gan.train_step)
        timed = time_calls(lambda: step(batch)["g_loss"].numpy(), settings.step_repeats, settings.warmup)
    flops = gan_step_flops(gan)
    record = {
        "recipe": recipe,
        "stage": stage,
        "precision": precision,
        "discriminator_trained": gan.train_discriminator,
        "seconds": timed["median_s"],
        "best_s": timed["best_s"],
        "cpu_s": timed["cpu_s"],
        "trace_s": timed["warmup_s"],
        "flops": flops["total"],
        "flops_by_part": flops,
    }
    return record, gan, batch, step


def measure_val_step(gan, batch, settings: Settings) -> float:
    """Median seconds of one compiled ``test_step`` (a validation batch)."""
    import tensorflow as tf  # noqa: PLC0415

    with dtype_policy(gan.generator.dtype_policy.name):
        step = tf.function(gan.test_step)
        return time_calls(lambda: step(batch)["g_loss"].numpy(), max(2, settings.step_repeats // 2), 1)["median_s"]


def fraction_of_gemm(flops: float, seconds: float, gemm: dict, precision: str = "float32"):
    """The FLOP rate ``flops / seconds`` as a fraction of the GEMM peak of ``precision``."""
    peak = gemm.get(GEMM_DTYPE[precision], {}).get("flops_per_s") if isinstance(gemm, dict) else None
    return flops / seconds / peak if peak and seconds > 0 else None


def generator_step_fn(generator, learning_rate: float):
    """A compiled generator-only training step (L1 valid + 6 x L1 hole, Adam), the ``compare``
    stage's step; ``fn(batch)`` returns the loss."""
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from image_completion.core import losses  # noqa: PLC0415

    variables = generator.trainable_variables
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(variables)

    @tf.function
    def step(batch):
        image, mask = batch["image"], batch["mask"]
        with tf.GradientTape() as tape:
            pred = tf.cast(generator(batch["masked"], training=True), tf.float32)
            valid = losses.contextual_loss_valid(image, pred, mask)
            hole = losses.contextual_loss_hole(image, pred, mask)
            loss = tf.reduce_mean(losses.reconstruction_loss(valid, hole, losses.LossWeights()))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


def measure_compare_steps(params, settings: Settings) -> dict:
    """The ``compare`` stage's generator step for every kind, in the precision the stage trains in
    (``train.precision`` resolved): {kind: {"precision", "seconds" (median), "best_s", "flops"}}."""
    from image_completion.bench.flops import generator_step_flops  # noqa: PLC0415
    from image_completion.core.models import generator_from_params  # noqa: PLC0415

    c, m = params.compare, params.model
    batch = random_batch(c.batch_size, c.image_size)
    precision = training_precision(params)
    out = {}
    with dtype_policy(precision):
        for kind in c.kinds:
            generator = generator_from_params(m, c.image_size, kind=kind, base_filters=c.base_filters)
            step = generator_step_fn(generator, c.learning_rate)
            timed = time_calls(lambda: step(batch).numpy(), settings.step_repeats, settings.warmup)  # noqa: B023 - called in this iteration
            flops = generator_step_flops(generator, c.batch_size)["total"]
            out[kind] = {"precision": precision, "seconds": timed["median_s"], "best_s": timed["best_s"], "flops": flops}
    return out


def _discriminator_fns(d):
    """Compiled D(x) forward, and D(x) forward + the gradient with respect to x."""
    import tensorflow as tf  # noqa: PLC0415

    @tf.function
    def input_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(tf.cast(d(x, training=False), tf.float32))
        return tape.gradient(y, x)[:1, :1, :1]

    return tf.function(lambda x: d(x, training=False)[:1]), input_grad


def time_breakdown(gan, batch, record: dict, settings: Settings) -> dict:
    """Where a training step's time goes (best times, each part compiled and run alone): the
    generator's forward + backward + Adam, the discriminator forward calls, the input gradient
    through D for G's adversarial term, and the rest (D's update, losses, metrics, overheads)."""
    flops = record["flops_by_part"]
    image = batch["image"]
    d_one = 2 * int(image.shape[0]) * sum(m for _, m, _ in network_layers(gan.discriminator))
    d_calls = flops["discriminator_forward"] // d_one if d_one else 0
    d_forward, d_input_grad = _discriminator_fns(gan.discriminator)
    g_step = generator_step_fn(gan.generator, 1e-4)
    repeats = (settings.step_repeats, settings.warmup)
    out = {}
    with dtype_policy(record["precision"]):
        g_s = time_calls(lambda: g_step(batch).numpy(), *repeats)["best_s"]
        out["generator forward+backward+Adam"] = (g_s, flops["generator_forward"] + flops["generator_backward"])
        if d_calls:
            forward_s = time_calls(lambda: d_forward(image).numpy(), *repeats)["best_s"]
            out[f"discriminator forward x{d_calls}"] = (d_calls * forward_s, flops["discriminator_forward"])
        if d_calls and gan.loss_weights.adversarial > 0:
            grad_s = time_calls(lambda: d_input_grad(image).numpy(), *repeats)["best_s"] - forward_s
            out["discriminator input gradient (adversarial term)"] = (grad_s, d_one)
    parts_s, parts_flops = sum(s for s, _ in out.values()), sum(f for _, f in out.values())
    out["rest"] = (record["best_s"] - parts_s, record["flops"] - parts_flops)
    return {name: {"seconds": s, "flops": f, "share_of_step": s / record["best_s"]} for name, (s, f) in out.items()}


def _kernel_part(name: str) -> tuple[str, str] | None:
    """(part, kernel type) of a profiler event ``scope/op:Kernel``, or None for other events."""
    scope, _, kernel = name.rpartition(":")
    if not scope or "::" in name or " " in name:
        return None
    backward = scope.startswith("gradient_tape/")
    root = scope.removeprefix("gradient_tape/").split("/", 1)[0]
    network = next((n for n in ("generator", "discriminator") if root.startswith(n)), "other")
    direction = "" if network == "other" else " backward" if backward else " forward"
    return network + direction, kernel


def profile_ops(fn, calls: int, top: int = 8) -> dict:
    """A ``tf.profiler`` trace of ``calls`` calls of ``fn``: shares of the TensorFlow kernel
    time by network and direction, and the ``top`` kernel types by time."""
    from collections import Counter  # noqa: PLC0415

    import tensorflow as tf  # noqa: PLC0415
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(calls):
                fn()
        finally:
            tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(sorted(Path(logdir).glob("plugins/profile/*/*.xplane.pb"))[-1].read_bytes())
    by_part, by_kernel = Counter(), Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                found = _kernel_part(plane.event_metadata[event.metadata_id].name)
                if found:
                    by_part[found[0]] += event.duration_ps
                    by_kernel[found[1]] += event.duration_ps
    total = sum(by_part.values()) or 1
    return {
        "by_part": {k: v / total for k, v in by_part.most_common()},
        "top_kernels": {k: v / total for k, v in by_kernel.most_common(top)},
    }


def measure_precision_steps(params, precisions, train_precision: str, gemm: dict, settings: Settings, breakdown: bool) -> dict:
    """The first recipe's stage-1 step in every precision. In float32 and in the training
    precision, below the target fraction of the GEMM rate (or with ``breakdown``): where the
    time goes (``time_breakdown``, ``profile_ops``). Keeps the GANs for the validation step."""
    first = recipes(params)[0]
    out = {"steps": [], "gans": {}, "breakdown": {}, "profile": {}, "gemm_samples": []}
    for precision in precisions:
        # The peak again next to the step: a sample taken while other jobs ran is not the peak.
        dtype = GEMM_DTYPE[precision]
        sample = measure_gemm_rates([dtype], settings.gemm_sizes[-1:], settings.gemm_repeats)
        out["gemm_samples"].append(sample)
        peak = max(r[dtype]["flops_per_s"] for r in (gemm, sample) if dtype in r)
        record, gan, batch, step = measure_train_step(params, first, 1, precision, settings)
        out["steps"].append(record)
        out["gans"][precision] = (gan, batch)
        fraction = record["flops"] / record["best_s"] / peak
        if precision in ("float32", train_precision) and (fraction < TARGET_FRACTION or breakdown):
            out["breakdown"][precision] = guarded(time_breakdown, gan, batch, record, settings)
            with dtype_policy(precision):
                calls = max(2, settings.step_repeats // 3)
                out["profile"][precision] = guarded(profile_ops, lambda: step(batch)["g_loss"].numpy(), calls)  # noqa: B023 - called in this iteration
    return out


def measure_training(params, precisions, train_precision: str, gemm: dict, settings: Settings, breakdown: bool) -> dict:
    """Training steps: every usable precision (first recipe, stage 1), then every other recipe
    and stage at the training precision, and one validation step per recipe."""
    first = recipes(params)[0]
    out = measure_precision_steps(params, precisions, train_precision, gemm, settings, breakdown)
    gans = out.pop("gans")
    out["training_precision"] = train_precision
    out["validation_step_s"] = {first: measure_val_step(*gans[train_precision], settings)}
    for recipe in recipes(params):
        for stage in (1, 2):
            if (recipe, stage) == (first, 1):
                continue
            record, gan, batch, _ = measure_train_step(params, recipe, stage, train_precision, settings)
            out["steps"].append(record)
            if stage == 1:
                out["validation_step_s"][recipe] = measure_val_step(gan, batch, settings)
    return out


def measure_claims_steps(params, settings: Settings) -> dict:
    """Each training run's step (``claim_runs.RUNS``) and validation step of one claims seed, at
    the claims' scale (``claim_params``) and in the training precision: ``train_steps``
    {"<recipe>/stage<n>": {"precision", "seconds" (median), "best_s", "flops"}}, ``val_step_s``."""
    from image_completion.training.claim_runs import RUNS, claim_params  # noqa: PLC0415 - TensorFlow loads on use

    scaled = claim_params(params, params.claims.seeds[0])
    out = {"train_steps": {}, "val_step_s": {}}
    for recipe, stage in RUNS:
        record, gan, batch, _ = measure_train_step(scaled, recipe, stage, training_precision(params), settings)
        out["train_steps"][f"{recipe}/stage{stage}"] = {k: record[k] for k in ("precision", "seconds", "best_s", "flops")}
        out["val_step_s"].setdefault(recipe, measure_val_step(gan, batch, settings))
    return out


def measure_inference(params, settings: Settings) -> dict:
    """Images/s of a compiled float32 generator call (fill and evaluate predict in float32) at
    the training size, in batches of ``evaluate.batch_size``."""
    import tensorflow as tf  # noqa: PLC0415

    with dtype_policy("float32"):
        generator = build_generator_of(params, recipes(params)[0])
        n = params.evaluate.batch_size
        x = random_batch(n, params.base.image_size, generator.input_shape[-1])["masked"]
        call = tf.function(lambda batch: generator(batch, training=False))
        timed = time_calls(lambda: call(x).numpy(), settings.step_repeats, settings.warmup)
    flops = 2 * sum(m for _, m, _ in network_layers(generator))
    return {"batch": n, "seconds": timed["best_s"], "images_per_s": n / timed["best_s"], "flops_per_image": flops}


def merge_gemm(start: dict, end: dict, samples=()) -> dict:
    """The GEMM peak of the run: per dtype the best of the measurements at its start and end and
    of the ``samples`` taken before each training step (other jobs slow any of them down)."""
    runs = [r for r in (start, end, *samples) if isinstance(r, dict) and "error" not in r]
    if not runs:
        return start
    return {
        dtype: {
            "flops_per_s": max(r[dtype]["flops_per_s"] for r in runs if dtype in r),
            "start": start.get(dtype),
            "end": end.get(dtype) if isinstance(end, dict) else None,
            "samples": [r[dtype]["flops_per_s"] for r in samples if dtype in r],
        }
        for dtype in sorted({d for r in runs for d in r})
    }


def add_rates(result: dict, native: bool) -> None:
    """Adds FLOP rates and fractions of the run's GEMM peak (of the precision each step trains in)
    to every training step (training, compare, claims), the breakdown and the inference, and the
    ``emulated`` flag (bf16 without native bf16)."""
    gemm, training, inference = result["gemm"], result["training"], result["inference"]
    compare, claims = result.get("compare", {}), result.get("claims", {})
    steps = [*training.get("steps", []), *(compare.values() if "error" not in compare else ())]
    steps += claims.get("train_steps", {}).values() if "error" not in claims else ()
    for step in steps:
        step["flops_per_s"] = step["flops"] / step["best_s"]
        step["fraction_of_gemm"] = fraction_of_gemm(step["flops"], step["best_s"], gemm, step["precision"])
        step["emulated"] = step["precision"] == "mixed_bfloat16" and not native
    for precision, parts in training.get("breakdown", {}).items():
        for part in parts.values() if "error" not in parts else ():
            part["fraction_of_gemm"] = fraction_of_gemm(part["flops"], part["seconds"], gemm, precision)
    if "flops_per_image" in inference:
        flops = inference["batch"] * inference["flops_per_image"]
        inference["fraction_of_gemm"] = fraction_of_gemm(flops, inference["seconds"], gemm)


def guarded(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or ``{"error": ...}`` when it raises: one failed section must not
    lose the others' figures."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - reported in the output and the exit status
        print(f"bench: {getattr(fn, '__name__', 'section')} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return {"error": f"{type(err).__name__}: {err}"}
