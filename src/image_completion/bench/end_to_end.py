"""Measurements of whole paths: the input pipeline against what a step consumes, a fill of a
large photo through ``app.fill`` (model against Telea), and TensorFlow's import time."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from image_completion.bench.machine import usable_cores
from image_completion.bench.measure import Settings, time_calls
from image_completion.bench.networks import build_generator_of, dtype_policy, recipes, train_stream
from image_completion.core.cards import GENERATOR_FILE


def photo_manifest(photos: Path, folder: Path) -> tuple[Path, str]:
    """(manifest, description) of the training photos: ``photos/manifest.csv`` when present,
    else 8 of scikit-image's bundled photos enlarged to 1024x768 with sensor-like noise (so the
    PNGs are as large and as slow to decode as real photos), written to ``folder``."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415
    from skimage import data, transform  # noqa: PLC0415

    from image_completion.data.manifest import ManifestRow, write_manifest  # noqa: PLC0415

    if (Path(photos) / "manifest.csv").is_file():
        return Path(photos) / "manifest.csv", f"{photos} (the download stage's training photos)"
    rng = np.random.default_rng(0)
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel"]
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
                for p in ("float32", training.get("training_precision"))
                if (recipe, 1, p) in steps
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
    path = Path(folder) / GENERATOR_FILE
    generator.save(path)
    card = {"image_size": params.base.image_size, "hole_value": params.base.hole_value}
    if recipe is not None:
        from image_completion.training.runner import input_spec  # noqa: PLC0415

        card["input"] = input_spec(params, recipe).as_card()
    from image_completion.core.cards import CARD_FILE, card_text  # noqa: PLC0415
    from image_completion.images import write_text_atomic  # noqa: PLC0415

    write_text_atomic(Path(folder) / CARD_FILE, card_text(card))
    return path


def measure_fill(params, model: Path | None, settings: Settings) -> dict:
    """Fill latency through ``fill.py`` on a synthetic photo of ``settings.fill_size`` with one
    large hole: loading the generator, the model's first and later fills, and OpenCV Telea.
    The generator is ``model`` when that file exists, else a fresh one of the params' size."""
    from image_completion.app import fill  # noqa: PLC0415

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
        "photo": f"{width}x{height}",
        "megapixels": width * height / 1e6,
        "hole_share": float(hole.mean()),
        "generator": str(path) if trained else "fresh (untrained) generator of the params' size",
        "load_s": load_s,
        "model_first_s": timed["warmup_s"],
        "model_s": timed["best_s"],
        "telea_s": telea["best_s"],
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
