"""Benchmark suite: how fast this machine runs the pipeline's work, against its own peak.

    python -m image_completion.bench [--params params.yaml] [--out reports/bench/<cpu-type>.json] [--quick]

Prints and writes as JSON: CPU type, GEMM peaks, training steps as a fraction of the peak,
inference, input pipeline, fill latency, projected ``dvc repro``. What each figure means:
``docs/architecture.md``, "The benchmark". A section that fails exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from image_completion.hardware import CPU_FLAGS, cpu_features, cpu_type, native_bf16  # noqa: F401 - re-exported

TARGET_FRACTION = 0.70  # issue 8: a float32 training step should reach 70 % of the fp32 GEMM rate
GEMM_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}

# Estimates, not measured by the bench. Stages without a cost model: rounded up from a real
# fresh-clone `dvc repro` on the 2-core AVX-512 BF16 machine (download + masks about 15 s with
# the photos' packages cached, evaluate 18 s, report 8 s). ``STAGE_OVERHEAD_S``: each modelled
# stage entry's time outside TensorFlow's import, tracing, steps and validation (dvc, other
# imports, data set-up, logging): a compare entry there took about 17 s against 11 s modelled.
FIXED_STAGE_SECONDS = {"download": 30.0, "masks": 5.0, "evaluate": 20.0, "report": 10.0}
UNKNOWN_STAGE_SECONDS = 30.0
STAGE_OVERHEAD_S = 5.0

# The pipeline's stages when there is no dvc.yaml to read them from, each with its matrix axes
# as in dvc.yaml: (item key, "${params path}" or a list). A stage that trains needs a cost
# function in ``STAGE_COSTS``; the others are fixed estimates.
PIPELINE = (
    ("download", ()),
    ("masks", ()),
    ("compare", (("kind", "${compare.kinds}"), ("seed", "${compare.seeds}"))),
    ("train_stage1", (("recipe", "${train.recipes}"),)),
    ("train_stage2", (("recipe", "${train.recipes}"),)),
    ("evaluate", ()),
    ("report", ()),
)


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
# CPU and machine load (no TensorFlow needed)
# ------------------------------------------------------------------------------------------


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_counters() -> dict:
    """Wall clock, the machine's busy CPU seconds (/proc/stat) and this process's own CPU seconds."""
    busy = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    own = sum(
        getattr(resource.getrusage(who), part)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for part in ("ru_utime", "ru_stime")
    )
    return {"wall": time.perf_counter(), "busy_s": busy, "own_s": own, "loadavg": os.getloadavg()}


def other_load(start: dict, end: dict) -> dict:
    """CPU seconds other processes used between two ``cpu_counters`` and their share of the machine."""
    wall = end["wall"] - start["wall"]
    out = {"seconds": round(wall, 1), "loadavg_start": start["loadavg"], "loadavg_end": end["loadavg"]}
    if start["busy_s"] is not None and end["busy_s"] is not None:
        others = max(0.0, (end["busy_s"] - start["busy_s"]) - (end["own_s"] - start["own_s"]))
        out |= {"other_cpu_s": round(others, 1), "other_share": round(others / (wall * usable_cores()), 3)}
    return out


# ------------------------------------------------------------------------------------------
# FLOPs counted from the layers
# ------------------------------------------------------------------------------------------


def layer_macs(layer) -> int:
    """Forward multiply-accumulates per example of a Conv2D, Conv2DTranspose or Dense layer:
    Conv2D H_out*W_out*C_out*kh*kw*C_in/groups; Conv2DTranspose H_in*W_in*C_in*kh*kw*C_out
    (every input pixel scatters a kh*kw*C_out patch); Dense inputs*units per position; 0 otherwise."""
    import keras  # noqa: PLC0415

    if isinstance(layer, keras.layers.Conv2DTranspose):
        h, w, c_in = layer.input.shape[1:]
        return h * w * c_in * layer.kernel_size[0] * layer.kernel_size[1] * layer.filters
    if isinstance(layer, keras.layers.Conv2D):
        h, w, c_out = layer.output.shape[1:]
        c_in = layer.input.shape[-1] // layer.groups
        return h * w * c_out * layer.kernel_size[0] * layer.kernel_size[1] * c_in
    if isinstance(layer, keras.layers.Dense):
        positions = 1
        for n in layer.input.shape[1:-1]:
            positions *= n
        return positions * layer.input.shape[-1] * layer.units
    return 0


def network_layers(model, trainable: bool = True) -> list[tuple[str, int, bool]]:
    """(name, forward MACs per example, weights trainable) of every counted layer of ``model``
    in topological order, nested models (the VGG16 backbone) expanded."""
    import keras  # noqa: PLC0415

    rows = []
    for layer in model.layers:
        trains = trainable and layer.trainable
        if isinstance(layer, keras.Model):
            rows += network_layers(layer, trains)
        elif macs := layer_macs(layer):
            rows.append((layer.name, macs, trains))
    return rows


def backward_macs(rows, trains: bool, input_grad: bool) -> int:
    """Backward MACs per example of one network call for one gradient: a layer whose weights
    the gradient trains costs 1x forward for its weight gradient, plus 1x for its input
    gradient when a trained layer lies before it or the call's input needs a gradient."""
    total, reached = 0, input_grad
    for _, macs, trainable in rows:
        target = trains and trainable
        total += macs * (int(reached) + int(target))
        reached = reached or target
    return total


def train_step_flops(
    generator, discriminator, batch: int, *, train_discriminator: bool = True,
    adversarial_weight: float = 0.1, style_weight: float = 0.0,
) -> dict:
    """FLOPs of one ``InpaintingGAN.train_step`` (1 MAC = 2 FLOPs), by part.

    Counting rule: forward MACs of Conv2D, Conv2DTranspose and Dense layers from their shapes
    (``layer_macs``; normalisation, activations, pooling, losses and Adam count 0). Every
    network call costs 1x forward; its backward (``backward_macs``) 2x forward for layers whose
    weights train, 1x for layers the gradient only passes through (input gradient, e.g. the
    frozen VGG16 under D(G(x))). The calls, as gan.py makes them: G(x) trained by G's gradient;
    D(x) only while D learns (stage 1); D(G(x)) while D learns or the adversarial weight is
    > 0, G's gradient passing through it when that weight is > 0; style features (2 backbone
    passes) when the style weight is > 0.
    """
    from image_completion.models import backbone_of  # noqa: PLC0415

    g, d = network_layers(generator), network_layers(discriminator)
    need_fake = train_discriminator or adversarial_weight > 0
    d_calls = int(train_discriminator) + int(need_fake)
    d_back = backward_macs(d, False, True) * (adversarial_weight > 0) * need_fake
    d_back += 2 * backward_macs(d, True, False) * train_discriminator
    parts = {
        "generator_forward": sum(m for _, m, _ in g),
        "generator_backward": backward_macs(g, True, False),
        "discriminator_forward": d_calls * sum(m for _, m, _ in d),
        "discriminator_backward": d_back,
        "style": 0,
    }
    if style_weight > 0:
        vgg = network_layers(backbone_of(discriminator), False)
        parts["style"] = 2 * sum(m for _, m, _ in vgg) + backward_macs(vgg, False, True)
    flops = {name: 2 * batch * macs for name, macs in parts.items()}
    flops["total"] = sum(flops.values())
    return flops


# ------------------------------------------------------------------------------------------
# The training code, as the training stages use it
# ------------------------------------------------------------------------------------------


def _param(params, path: str):
    """``params`` attribute at a dotted path (``compare.seeds``), or None when absent."""
    value = params
    for name in path.split("."):
        value = getattr(value, name, None)
    return value


def recipes(params) -> list[str]:
    """The trained recipes (``train.recipes``); the first is the reference of the bench."""
    return list(params.train.recipes)


def training_precision(params) -> str:
    """The precision the training stages use (``training.resolve_precision``: ``auto`` resolved)."""
    from image_completion.training import resolve_precision  # noqa: PLC0415

    return resolve_precision(params.train.precision)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` inside the block, restored after."""
    import keras  # noqa: PLC0415

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_gan(params, recipe: str, stage: int):
    """The training stage's compiled InpaintingGAN (``train.compile_gan``) with fresh networks
    under the current dtype policy (backbone weights ``none``: the same FLOPs, no file read)."""
    from image_completion import train  # noqa: PLC0415

    networks = train.build_networks(params, recipe, backbone_weights="none")
    return train.compile_gan(params, recipe, stage, *networks)


def gan_step_flops(gan) -> dict:
    """``train_step_flops`` of a compiled GAN (its batch, loss weights and stage)."""
    return train_step_flops(
        gan.generator, gan.discriminator, gan.global_batch_size, train_discriminator=gan.train_discriminator,
        adversarial_weight=gan.loss_weights.adversarial, style_weight=gan.loss_weights.style,
    )


def train_stream(params, recipe: str, manifest: Path):
    """The training stage's real input stream (``dataset.build_dataset(..., is_train=True)``
    through ``train.make_datasets``) over the manifest's ``train`` photos."""
    from image_completion import train  # noqa: PLC0415

    return train.make_datasets(params, recipe, manifest)[0](0)


def build_generator_of(params, recipe: str):
    """A fresh generator of the params' size and recipe under the current dtype policy."""
    from image_completion import train  # noqa: PLC0415

    return train.build_networks(params, recipe, backbone_weights="none")[0]


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
    """A training batch of random images with one box hole each; ``masked`` has ``channels``."""
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    image = rng.random((batch, size, size, 3), dtype=np.float32)
    mask = np.zeros((batch, size, size, 1), np.float32)
    mask[:, size // 4 : size // 2, size // 8 : size // 2] = 1.0
    masked = np.where(mask > 0, np.float32(1.0), image)
    if channels == 4:
        masked = np.concatenate([masked, mask], axis=-1)
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
        "recipe": recipe, "stage": stage, "precision": precision,
        "discriminator_trained": gan.train_discriminator, "seconds": timed["median_s"],
        "best_s": timed["best_s"], "cpu_s": timed["cpu_s"], "trace_s": timed["warmup_s"],
        "flops": flops["total"], "flops_by_part": flops,
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

    from image_completion import losses  # noqa: PLC0415

    variables = generator.trainable_variables
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(variables)

    @tf.function
    def step(batch):
        image, mask = batch["image"], batch["mask"]
        with tf.GradientTape() as tape:
            pred = tf.cast(generator(batch["masked"], training=True), tf.float32)
            valid = losses.contextual_loss_valid(image, pred, mask)
            loss = tf.reduce_mean(valid + 6.0 * losses.contextual_loss_hole(image, pred, mask))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


def measure_compare_steps(params, settings: Settings) -> dict:
    """Median seconds of the ``compare`` stage's float32 generator step for every kind."""
    from image_completion.models import build_generator  # noqa: PLC0415

    c, m = params.compare, params.model
    batch = random_batch(c.batch_size, c.image_size)
    out = {}
    with dtype_policy("float32"):
        for kind in c.kinds:
            generator = build_generator(
                kind, c.image_size, base_filters=c.base_filters, decoder_filters=m.decoder_filters,
                alpha=m.leaky_relu_alpha, skip_coefficients=tuple(m.skip_coefficients),
            )
            step = generator_step_fn(generator, c.learning_rate)
            out[kind] = time_calls(lambda: step(batch).numpy(), settings.step_repeats, settings.warmup)["median_s"]
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


def measure_precision_steps(
    params, precisions, train_precision: str, gemm: dict, settings: Settings, breakdown: bool
) -> dict:
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
                out["profile"][precision] = guarded(profile_ops, lambda: step(batch)["g_loss"].numpy(), calls)
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
            "start": start.get(dtype), "end": end.get(dtype) if isinstance(end, dict) else None,
            "samples": [r[dtype]["flops_per_s"] for r in samples if dtype in r],
        }
        for dtype in sorted({d for r in runs for d in r})
    }


def add_rates(result: dict, native: bool) -> None:
    """Adds FLOP rates and fractions of the run's GEMM peak to the training steps, the
    breakdown and the inference, and the ``emulated`` flag (bf16 without native bf16)."""
    gemm, training, inference = result["gemm"], result["training"], result["inference"]
    for step in training.get("steps", []):
        step["flops_per_s"] = step["flops"] / step["best_s"]
        step["fraction_of_gemm"] = fraction_of_gemm(step["flops"], step["best_s"], gemm, step["precision"])
        step["emulated"] = step["precision"] == "mixed_bfloat16" and not native
    for precision, parts in training.get("breakdown", {}).items():
        for part in parts.values() if "error" not in parts else ():
            part["fraction_of_gemm"] = fraction_of_gemm(part["flops"], part["seconds"], gemm, precision)
    if "flops_per_image" in inference:
        flops = inference["batch"] * inference["flops_per_image"]
        inference["fraction_of_gemm"] = fraction_of_gemm(flops, inference["seconds"], gemm)


def photo_manifest(photos: Path, folder: Path) -> tuple[Path, str]:
    """(manifest, description) of the training photos: ``photos/manifest.csv`` when present,
    else 8 of scikit-image's bundled photos enlarged to 1024x768 with sensor-like noise (so the
    PNGs are as large and as slow to decode as real photos), written to ``folder``."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415
    from skimage import data, transform  # noqa: PLC0415

    from image_completion.manifest import ManifestRow, write_manifest  # noqa: PLC0415

    if (Path(photos) / "manifest.csv").is_file():
        return Path(photos) / "manifest.csv", f"{photos} (the download stage's training photos)"
    rng = np.random.default_rng(0)
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
             "colorwheel"]
    rows = []
    for i, name in enumerate(names):
        big = transform.resize(getattr(data, name)()[..., :3], (768, 1024), order=1)
        big = np.clip(big * 255 + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8)
        Image.fromarray(big).save(folder / f"{name}.png")
        split = "validation" if i == len(names) - 1 else "train"
        rows.append(ManifestRow(f"{name}.png", "skimage", "0" * 64, 1024, 768, split))
    write_manifest(folder / "manifest.csv", rows)
    return folder / "manifest.csv", f"{len(names)} scikit-image photos at 1024x768 (no {photos}/manifest.csv)"


def measure_input_pipeline(params, recipe, manifest: Path, seconds: float) -> dict:
    """Examples/s and CPU milliseconds per example of the training stream, for about ``seconds``
    (at least 3 batches) after 5 warm-up batches."""
    stream = iter(train_stream(params, recipe, manifest))
    try:
        for _ in range(5):
            next(stream)  # tracing, autotune
        start, cpu, batches = time.perf_counter(), time.process_time(), 0
        while batches < 3 or time.perf_counter() - start < seconds:
            next(stream)
            batches += 1
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        del stream  # stop the pipeline's threads now, not at interpreter exit
    n = batches * params.train.batch_size
    return {"batches": batches, "examples_per_s": n / wall, "cpu_ms_per_example": 1000 * cpu / n}


def measure_pipelines(params, photos: Path, training: dict, settings: Settings) -> dict:
    """The input pipeline of every recipe against what a training step consumes (batch / step
    seconds, first stage, training precision and float32); ``cpu_share``: the share of the
    machine the pipeline takes at the training rate (it competes with the step for the cores)."""
    steps = {(s["recipe"], s["stage"], s["precision"]): s["seconds"] for s in training.get("steps", [])}
    batch, cores = params.train.batch_size, usable_cores()
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        manifest, source = photo_manifest(photos, Path(folder))
        out["photos"] = source
        for recipe in recipes(params):
            rates = measure_input_pipeline(params, recipe, manifest, settings.pipeline_seconds)
            consumed = {
                p: batch / steps[(recipe, 1, p)]
                for p in ("float32", training.get("training_precision")) if (recipe, 1, p) in steps
            }
            rates["consumed_examples_per_s"] = consumed
            rates["supply_over_demand"] = {p: rates["examples_per_s"] / c for p, c in consumed.items()}
            rates["cpu_share"] = {p: rates["cpu_ms_per_example"] / 1000 * c / cores for p, c in consumed.items()}
            out[recipe] = rates
    return out


def synthetic_photo(width: int, height: int):
    """A uint8 (height, width, 3) photo: scikit-image's astronaut enlarged (bicubic)."""
    import cv2  # noqa: PLC0415
    from skimage import data  # noqa: PLC0415

    return cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)


def one_large_hole(width: int, height: int):
    """A bool (height, width) mask: one ellipse, 30 % of each side across (about 7 % of the photo)."""
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width * 11 // 20, height * 9 // 20), (width * 3 // 20, height * 3 // 20), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def save_fresh_generator(params, recipe, folder: Path) -> Path:
    """A freshly built float32 generator of the params' size saved as ``folder/generator.keras``
    with its model card (what ``fill.load_generator`` reads)."""
    with dtype_policy("float32"):
        generator = build_generator_of(params, recipe)
    path = Path(folder) / "generator.keras"
    generator.save(path)
    card = {"image_size": params.base.image_size, "hole_value": params.base.hole_value}
    if recipe is not None:
        from image_completion.train import input_spec  # noqa: PLC0415

        card["input"] = input_spec(params, recipe).as_card()
    from image_completion.cards import CARD_FILE, card_text  # noqa: PLC0415
    from image_completion.images import write_text_atomic  # noqa: PLC0415

    write_text_atomic(Path(folder) / CARD_FILE, card_text(card))
    return path


def measure_fill(params, model: Path | None, settings: Settings) -> dict:
    """Fill latency through ``fill.py`` on a synthetic photo of ``settings.fill_size`` with one
    large hole: loading the generator, the model's first and later fills, and OpenCV Telea.
    The generator is ``model`` when that file exists, else a fresh one of the params' size."""
    from image_completion import fill  # noqa: PLC0415

    width, height = settings.fill_size
    image, hole = synthetic_photo(width, height), one_large_hole(width, height)
    with tempfile.TemporaryDirectory() as folder:
        trained = model is not None and Path(model).is_file()
        path = Path(model) if trained else save_fresh_generator(params, recipes(params)[0], Path(folder))
        start = time.perf_counter()
        generator = fill.load_generator(path)
        load_s = time.perf_counter() - start
    filler = fill.Filler(generator, inpaint_radius=params.evaluate.inpaint_radius)
    timed = time_calls(lambda: filler.fill(image, hole, "model"), settings.fill_repeats, 1)
    telea = time_calls(lambda: filler.fill(image, hole, "telea"), settings.fill_repeats, 0)
    return {
        "photo": f"{width}x{height}", "megapixels": width * height / 1e6, "hole_share": float(hole.mean()),
        "generator": str(path) if trained else "fresh (untrained) generator of the params' size",
        "load_s": load_s, "model_first_s": timed["warmup_s"], "model_s": timed["best_s"], "telea_s": telea["best_s"],
    }


def measure_tf_import(repeats: int) -> dict:
    """Seconds of ``python -c "import tensorflow"`` in a fresh process (first run and best);
    ``repeats`` 0 skips it (``--quick``)."""
    if repeats < 1:
        return {"skipped": "not measured (--quick)"}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - start)
    return {"first_s": times[0], "best_s": min(times)}


# ------------------------------------------------------------------------------------------
# Projection of `dvc repro`
# ------------------------------------------------------------------------------------------


def dvc_stages(dvc_yaml) -> list[tuple[str, tuple]] | None:
    """(stage, matrix axes) of every stage of a dvc.yaml, in its order; None when there is none."""
    import yaml  # noqa: PLC0415

    if dvc_yaml is None or not Path(dvc_yaml).is_file():
        return None
    stages = yaml.safe_load(Path(dvc_yaml).read_text()).get("stages") or {}
    return [(name, tuple(((spec or {}).get("matrix") or {}).items())) for name, spec in stages.items()]


def _axis_values(params, ref):
    """A matrix axis's values: a literal list, or the params list a ``${section.key}`` names."""
    if isinstance(ref, str) and ref.startswith("${") and ref.endswith("}"):
        ref = _param(params, ref[2:-1])
    return list(ref) if isinstance(ref, (list, tuple)) else None


def pipeline_entries(params, dvc_yaml="dvc.yaml") -> list[tuple[str, str, dict]]:
    """(stage, entry name, matrix item) of every stage entry of ``dvc_yaml`` (``PIPELINE`` when
    it is None or absent), the matrix axes read from params: ``compare@unet-1234``,
    ``train_stage1@paper``. An axis that params do not define is left out."""
    import itertools  # noqa: PLC0415

    entries = []
    for stage, axes in dvc_stages(dvc_yaml) or PIPELINE:
        present = [(key, values) for key, ref in axes if (values := _axis_values(params, ref)) is not None]
        for combo in itertools.product(*(values for _, values in present)):
            item = dict(zip((key for key, _ in present), combo))
            entries.append((stage, stage + ("@" + "-".join(map(str, combo)) if combo else ""), item))
    return entries


def step_key(recipe: str, stage: int) -> str:
    return f"{recipe}/stage{stage}"


def _compare_cost(params, item: dict, timings: dict) -> dict:
    c = params.compare
    steps = c.epochs * (c.images_per_epoch // c.batch_size)
    step = timings["compare_step_s"][item.get("kind", params.model.generator)]
    return {"steps": steps, "step_s": step, "seconds": timings["startup_s"] + STAGE_OVERHEAD_S + steps * step}


def _train_cost(stage: int):
    def cost(params, item: dict, timings: dict) -> dict:
        recipe = item.get("recipe", recipes(params)[0])
        batch, epochs = params.train.batch_size, getattr(params.recipes[recipe], f"stage{stage}_epochs")
        steps = epochs * (params.train.images_per_epoch // batch)
        step = timings["train_step_s"][step_key(recipe, stage)]
        input_s = batch * timings.get("input_cpu_s_per_example", {}).get(recipe, 0.0) / timings.get("cores", 1)
        val_steps = epochs * (params.train.validation_images // batch)
        val_s = val_steps * timings["val_step_s"][recipe]
        seconds = timings["startup_s"] + STAGE_OVERHEAD_S + steps * (step + input_s) + val_s
        return {"steps": steps, "step_s": step, "input_s_per_step": input_s, "validation_s": val_s,
                "seconds": seconds}

    return cost


STAGE_COSTS = {"compare": _compare_cost, "train_stage1": _train_cost(1), "train_stage2": _train_cost(2)}


def project_repro_seconds(params, timings: dict, dvc_yaml="dvc.yaml") -> dict:
    """The projected ``dvc repro`` time of ``params``: every stage entry of ``pipeline_entries``,
    a training stage as startup + ``STAGE_OVERHEAD_S`` + steps x (step + input pipeline share) +
    validation, a compare entry as startup + ``STAGE_OVERHEAD_S`` + steps x step; stages
    without a cost function in ``STAGE_COSTS`` are ``FIXED_STAGE_SECONDS`` (or
    ``UNKNOWN_STAGE_SECONDS``) estimates, flagged ``estimate: True``.

    ``timings``: ``train_step_s`` {"<recipe>/stage<n>": s} (``step_key``), ``val_step_s``
    {"<recipe>": s}, ``compare_step_s`` {kind: s}, ``startup_s`` (a stage process: TensorFlow
    import + build + tracing); optional ``input_cpu_s_per_example`` {"<recipe>": CPU s} and
    ``cores`` (the pipeline's CPU time, divided over the cores, is added to every step: an upper
    estimate, as part of it runs on cores the step leaves idle).
    Returns {"stages": [{"stage", "seconds", "estimate", "steps", ...}], "total_seconds"}.
    """
    stages = []
    for stage, name, item in pipeline_entries(params, dvc_yaml):
        cost = STAGE_COSTS.get(stage)
        if cost is not None:
            row = cost(params, item, timings) | {"estimate": False}
        else:
            row = {"seconds": FIXED_STAGE_SECONDS.get(stage, UNKNOWN_STAGE_SECONDS), "estimate": True}
        stages.append({"stage": name, **row})
    return {"stages": stages, "total_seconds": sum(s["seconds"] for s in stages)}


def timings_of(result: dict) -> dict:
    """The ``project_repro_seconds`` timings from a bench result."""
    training = result["training"]
    precision = training["training_precision"]
    steps = [s for s in training["steps"] if s["precision"] == precision]
    pipelines = {k: v for k, v in result["input_pipeline"].items() if isinstance(v, dict) and "cpu_ms_per_example" in v}
    return {
        "train_step_s": {step_key(s["recipe"], s["stage"]): s["seconds"] for s in steps},
        "val_step_s": training["validation_step_s"],
        "compare_step_s": result["compare"],
        "startup_s": result["tf_import"].get("best_s", 0.0) + statistics.median(s["trace_s"] for s in steps),
        "input_cpu_s_per_example": {k: v["cpu_ms_per_example"] / 1000 for k, v in pipelines.items()},
        "cores": usable_cores(),
    }


# ------------------------------------------------------------------------------------------
# The run, the report, the command
# ------------------------------------------------------------------------------------------


def guarded(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or ``{"error": ...}`` when it raises: one failed section must not
    lose the others' figures."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - reported in the output and the exit status
        print(f"bench: {getattr(fn, '__name__', 'section')} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return {"error": f"{type(err).__name__}: {err}"}


def _section(result: dict, name: str, fn, *args):
    """``result[name] = guarded(fn, *args)``, its wall seconds in ``result["section_seconds"]``."""
    start = time.perf_counter()
    result[name] = guarded(fn, *args)
    result.setdefault("section_seconds", {})[name] = round(time.perf_counter() - start, 1)
    return result[name]


def machine_info(features: dict, gpus: list) -> dict:
    import tensorflow as tf  # noqa: PLC0415

    return {
        **features, "cpu_type": cpu_type(features), "usable_cores": usable_cores(), "gpus": gpus,
        "tensorflow": tf.__version__, "python": platform.python_version(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }


def run_bench(params, settings: Settings, photos: Path, model: Path | None, breakdown: bool = False) -> dict:
    """Every measurement of the module docstring on this machine; returns the JSON-able result.
    ``model``: the generator for the fill latency (a fresh one when None or absent)."""
    import tensorflow as tf  # noqa: PLC0415

    # Every measurement compiles new tf.functions: TensorFlow's retracing warnings are expected.
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")
    try:
        return _run_bench(params, settings, photos, model, breakdown)
    finally:
        logger.setLevel(level)


def _run_bench(params, settings: Settings, photos: Path, model: Path | None, breakdown: bool) -> dict:
    import tensorflow as tf  # noqa: PLC0415

    from image_completion import training  # noqa: PLC0415

    features = cpu_features()
    native = cpu_type(features) == "native-bf16"
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    train_precision = training_precision(params)
    precisions = ["float32", "mixed_bfloat16"] + ["mixed_float16"] * bool(gpus)
    precisions += [train_precision] * (train_precision not in precisions)
    dtypes = sorted({GEMM_DTYPE[p] for p in precisions})
    training.seed_everything(params.base.seed)  # op determinism, as in the training stages
    result = {
        "machine": machine_info(features, gpus), "settings": settings.__dict__ | {"quick": settings == QUICK},
        "batch": params.train.batch_size,
    }
    gemm = _section(result, "gemm", measure_gemm_rates, dtypes, settings.gemm_sizes, settings.gemm_repeats)
    _section(result, "training", measure_training, params, precisions, train_precision, gemm, settings, breakdown)
    _section(result, "compare", measure_compare_steps, params, settings)
    _section(result, "inference", measure_inference, params, settings)
    _section(result, "input_pipeline", measure_pipelines, params, Path(photos), result["training"], settings)
    _section(result, "fill", measure_fill, params, model, settings)
    _section(result, "tf_import", measure_tf_import, settings.import_repeats)
    _section(result, "gemm_end", measure_gemm_rates, dtypes, settings.gemm_sizes, settings.gemm_repeats)
    samples = result["training"].pop("gemm_samples", []) if "error" not in result["training"] else []
    result["gemm"] = merge_gemm(gemm, result.pop("gemm_end"), samples)
    add_rates(result, native)
    result["projection"] = guarded(lambda: project_repro_seconds(params, timings_of(result)))
    return result


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def format_machine(result: dict) -> list[str]:
    m, gemm = result["machine"], result["gemm"]
    flags = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["flags"].items())
    lines = [f"CPU: {m['model']} ({m['usable_cores']} usable cores), type {m['cpu_type']}: {flags}"]
    if "error" in gemm:
        return lines + [f"GEMM: ERROR {gemm['error']}"]
    for dtype, g in gemm.items():
        runs = [
            f"{when}: " + ", ".join(f"n={n} {r / 1e9:.0f}" for n, r in g[when]["by_size"].items())
            for when in ("start", "end") if isinstance(g.get(when), dict)
        ]
        lines.append(f"GEMM peak {dtype}: {g['flops_per_s'] / 1e9:.0f} GFLOP/s ({'; '.join(runs)})")
    return lines


def format_training(result: dict) -> list[str]:
    t = result["training"]
    if "error" in t:
        return []  # listed with the other errors
    lines = [f"training step (batch {result.get('batch')}, precision used by training: {t['training_precision']}):"]
    for s in t["steps"]:
        flag = " EMULATED bf16 (no native bf16 on this CPU)" if s["emulated"] else ""
        lines.append(
            f"  {step_key(s['recipe'], s['stage'])} {s['precision']}: {s['seconds']:.3f} s/step "
            f"(best {s['best_s']:.3f}, {s['cpu_s']:.2f} CPU-s), {s['flops'] / 1e9:.1f} GFLOP, "
            f"{s['flops_per_s'] / 1e9:.0f} GFLOP/s "
            f"= {_pct(s['fraction_of_gemm'])} of GEMM{flag}"
        )
    lines += [f"  validation step {k}: {v:.3f} s" for k, v in t["validation_step_s"].items()]
    if any((s["fraction_of_gemm"] or 0) > 1 for s in t["steps"]):
        lines.append("  WARNING: a step above 100 % of GEMM: other jobs slowed every GEMM measurement; rerun")
    for precision, parts in t.get("breakdown", {}).items():
        lines += format_breakdown(precision, parts, t["profile"].get(precision, {}))
    return lines


def format_breakdown(precision: str, parts: dict, profile: dict) -> list[str]:
    lines = [f"  where the {precision} step's time goes (best times, each part run alone):"]
    if "error" in parts:
        return lines + [f"    ERROR {parts['error']}"]
    for name, p in parts.items():
        lines.append(
            f"    {name}: {p['seconds']:.3f} s ({_pct(p['share_of_step'])} of the step), "
            f"{p['flops'] / 1e9:.1f} GFLOP at {_pct(p['fraction_of_gemm'])} of GEMM"
        )
    if "by_part" in profile:
        lines.append("    kernel time by part: " + ", ".join(f"{k} {_pct(v)}" for k, v in profile["by_part"].items()))
        lines.append("    top kernels: " + ", ".join(f"{k} {_pct(v)}" for k, v in profile["top_kernels"].items()))
    return lines


def format_others(result: dict) -> list[str]:
    lines = []
    c, i, f, tfi = result["compare"], result["inference"], result["fill"], result["tf_import"]
    if "error" not in c:
        lines.append("compare step (float32): " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in c.items()))
    if "error" not in i:
        lines.append(
            f"generator inference (float32, batch {i['batch']}): {i['images_per_s']:.0f} images/s, "
            f"{_pct(i['fraction_of_gemm'])} of GEMM"
        )
    pipe = result["input_pipeline"]
    for recipe, p in pipe.items() if "error" not in pipe else []:
        if isinstance(p, dict):
            demand = "; ".join(
                f"a {k} step eats {p['consumed_examples_per_s'][k]:.0f}/s: supply x{v:.1f}, "
                f"the pipeline needs {_pct(p['cpu_share'][k])} of the CPU"
                for k, v in p["supply_over_demand"].items()
            )
            lines.append(
                f"input pipeline {recipe}: {p['examples_per_s']:.0f} examples/s, "
                f"{p['cpu_ms_per_example']:.1f} CPU-ms/example; {demand}"
            )
    if "photos" in pipe:
        lines.append(f"  photos: {pipe['photos']}")
    if "error" not in f:
        lines.append(
            f"fill {f['photo']} ({f['megapixels']:.0f} MP, hole {_pct(f['hole_share'])}): model {f['model_s']:.2f} s "
            f"(first {f['model_first_s']:.2f} s, load {f['load_s']:.2f} s) vs Telea {f['telea_s']:.2f} s; "
            f"{f['generator']}"
        )
    if "best_s" in tfi:
        lines.append(f"TensorFlow import (fresh process): {tfi['best_s']:.1f} s (first {tfi['first_s']:.1f} s)")
    errors = [f"{k}: ERROR {v['error']}" for k, v in result.items() if isinstance(v, dict) and "error" in v]
    return lines + errors


def format_projection(result: dict) -> list[str]:
    p = result["projection"]
    if "error" in p:
        return []
    lines = [f"projected dvc repro: {_minutes(p['total_seconds'])}"]
    for s in p["stages"]:
        known = s["stage"].split("@")[0] in FIXED_STAGE_SECONDS
        detail = f"{s['steps']} steps x {s['step_s']:.3f} s" if not s["estimate"] else (
            "estimate" if known else "estimate: no cost model for this stage in bench.STAGE_COSTS"
        )
        lines.append(f"  {s['stage']}: {_minutes(s['seconds'])} ({detail})")
    return lines


def format_report(result: dict) -> str:
    """The printed summary of a bench result."""
    load = result.get("load", {})
    lines = format_machine(result) + format_training(result) + format_others(result) + format_projection(result)
    if load:
        lines.append(
            f"bench took {load['seconds']:.0f} s; load average {load['loadavg_start'][0]:.2f} -> "
            f"{load['loadavg_end'][0]:.2f}; other processes used {load.get('other_cpu_s', 'n/a')} CPU-s "
            f"({_pct(load.get('other_share'))} of the machine)"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m image_completion.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default params.yaml)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON output (default reports/bench/<cpu-type>.json; --quick: none)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (tests)")
    parser.add_argument("--photos", type=Path, default=Path("data/photos"), help="training photos (manifest.csv)")
    parser.add_argument(
        "--model", type=Path, default=None,
        help="generator for the fill latency (default models/<first recipe>/stage2/generator.keras if present)",
    )
    parser.add_argument("--breakdown", action="store_true", help="where the float32 step's time goes, also above 70 %%")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from image_completion.config import load_stage_params  # noqa: PLC0415
    from image_completion.fill import model_path_of  # noqa: PLC0415

    params = load_stage_params(args.params, "bench")
    model = args.model or model_path_of(recipes(params)[0])
    start = cpu_counters()
    result = run_bench(params, QUICK if args.quick else FULL, args.photos, model, args.breakdown)
    result["load"] = other_load(start, cpu_counters())
    print(format_report(result))
    out = args.out or (None if args.quick else Path("reports/bench") / f"{result['machine']['cpu_type']}.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        from image_completion.images import write_text_atomic  # noqa: PLC0415 - numpy-only, but kept off the import path

        write_text_atomic(out, json.dumps(result, indent=2, default=str) + "\n")
        print(f"written {out}")
    return 1 if any(isinstance(v, dict) and "error" in v for v in result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
