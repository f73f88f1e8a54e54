"""The benchmark suite: FLOP counting, the cpuinfo parser, the repro projection, one --quick run."""

import json
import subprocess
import sys
import types
from pathlib import Path

import keras
import pytest
import yaml

from image_completion.bench import __main__ as bench_main
from image_completion.bench import flops, networks, projection
from image_completion.config import load_params
from image_completion.training import hardware

ROOT = Path(__file__).resolve().parents[2]

# Excerpts of /proc/cpuinfo (two logical CPUs each; only the keys the parser reads matter).
AVX2_ONLY = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 sha_ni clzero
bogomips\t: 4900.00

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 sha_ni clzero
"""
AVX512_BF16 = """\
processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""


# ----------------------------------------------------------------------------- FLOPs


def test_layer_macs_match_a_hand_count():
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same")
    up = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")
    dense = keras.layers.Dense(5)
    keras.Model(inputs, dense(keras.layers.Flatten()(up(conv(inputs)))))
    assert flops.layer_macs(conv) == 8 * 8 * 4 * (3 * 3 * 3)  # output pixels x filters x kernel x input channels
    assert flops.layer_macs(up) == 8 * 8 * 4 * (3 * 3 * 2)  # input pixels x input channels x kernel x filters
    assert flops.layer_macs(dense) == (16 * 16 * 2) * 5
    assert flops.layer_macs(keras.layers.Flatten()) == 0


def test_backward_rule():
    rows = [("frozen_first", 10, False), ("trained", 20, True), ("after", 30, False)]
    # Nothing before the first trained layer; its weight gradient only; input gradients after it.
    assert flops.backward_macs(rows, trains=True, input_grad=False) == 20 + 30
    assert flops.backward_macs(rows, trains=False, input_grad=True) == 10 + 20 + 30
    assert flops.backward_macs(rows, trains=True, input_grad=True) == 10 + 2 * 20 + 30
    assert flops.backward_macs(rows, trains=False, input_grad=False) == 0


def _tiny_gan_networks():
    """G: two 1x1 convs on 8x8x3 (384 MACs each); D: a frozen nested 1x1 conv (384) + Dense(1) (128)."""
    x = keras.Input((8, 8, 3))
    generator = keras.Model(x, keras.layers.Conv2D(3, 1)(keras.layers.Conv2D(2, 1)(x)))
    inner_in = keras.Input((8, 8, 3))
    backbone = keras.Model(inner_in, keras.layers.Conv2D(2, 1)(inner_in), name="backbone")
    backbone.trainable = False
    y = keras.Input((8, 8, 3))
    discriminator = keras.Model(y, keras.layers.Dense(1)(keras.layers.Flatten()(backbone(y))))
    return generator, discriminator


@pytest.mark.parametrize(
    ("train_discriminator", "adversarial", "macs"),
    [
        # G: forward 768, backward 384 (first layer: weight gradient only) + 2 x 384 = 1152.
        # Stage 1: D(x) and D(G(x)) forward 2 x 512; input gradient through D(G(x)) 512;
        # D's update: the dense layer's weight gradient (128) for each of the two calls.
        (True, 0.1, 768 + 1152 + 2 * 512 + 512 + 2 * 128),
        # Stage 2: only D(G(x)), forward and input gradient.
        (False, 0.1, 768 + 1152 + 512 + 512),
        # No adversarial term and D frozen: D is not run.
        (False, 0.0, 768 + 1152),
    ],
)
def test_train_step_flops_match_a_hand_count(train_discriminator, adversarial, macs):
    generator, discriminator = _tiny_gan_networks()
    counted = flops.train_step_flops(
        generator, discriminator, 4, train_discriminator=train_discriminator, adversarial_weight=adversarial
    )
    assert counted["total"] == 2 * 4 * macs
    assert counted["total"] == sum(v for k, v in counted.items() if k != "total")


def test_generator_step_flops_match_a_hand_count():
    # The compare stage's step: G's forward 768 and backward 1152 MACs (as above), no D.
    generator, _ = _tiny_gan_networks()
    counted = flops.generator_step_flops(generator, 4)
    assert counted == {"generator_forward": 2 * 4 * 768, "generator_backward": 2 * 4 * 1152, "total": 2 * 4 * 1920}


# ----------------------------------------------------------------------------- CPU flags


def test_cpuinfo_avx2_only():
    features = hardware.cpu_features(AVX2_ONLY)
    assert features["model"] == "AMD EPYC 7B13"
    assert features["logical_cpus"] == 2
    assert features["flags"] == {"avx2": True, "avx512f": False, "avx512_bf16": False, "amx_bf16": False}
    assert not hardware.native_bf16(AVX2_ONLY)
    assert hardware.cpu_type(features) == "avx2-only"


def test_cpuinfo_avx512_bf16():
    features = hardware.cpu_features(AVX512_BF16)
    assert features["model"].startswith("Intel(R) Xeon(R) Platinum 8481C")
    assert features["flags"] == {"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": True}
    assert hardware.native_bf16(AVX512_BF16)
    assert hardware.cpu_type(features) == "native-bf16"


def test_cpuinfo_without_flags_means_no_native_bf16():
    features = hardware.cpu_features("")
    assert features["logical_cpus"] == 0 and not any(features["flags"].values())
    assert hardware.cpu_type(features) == "avx2-only"


# ----------------------------------------------------------------------------- projection


def _timings(params, step=0.5, val=0.25, compare=0.01):
    recipes = networks.recipes(params)
    return {
        "train_step_s": {projection.step_key(r, s): step * (1 + i) for i, r in enumerate(recipes) for s in (1, 2)},
        "val_step_s": {r: val for r in recipes},
        "compare_step_s": {k: compare for k in params.compare.kinds},
        "claims": {
            "train_step_s": {"learning_d/stage1": 0.2, "learning_d/stage2": 0.1, "style/stage1": 0.3},
            "val_step_s": {"learning_d": 0.05, "style": 0.05},
        },
        "startup_s": 7.0,
        "input_cpu_s_per_example": {r: 0.01 for r in recipes},
        "cores": 2,
    }


def test_projection_counts_every_stage_entry(tiny_params_file):
    params = load_params(tiny_params_file)
    timings = _timings(params)
    projected = projection.project_repro_seconds(params, timings, dvc_yaml=ROOT / "dvc.yaml")
    rows = {row["stage"]: row for row in projected["stages"]}
    c, t = params.compare, params.train
    compare_rows = [f"compare@{k}-{s}" for k in c.kinds for s in c.seeds]
    assert [name for name in rows if name.startswith("compare@")] == compare_rows
    for name in compare_rows:
        assert rows[name]["steps"] == c.epochs * c.images_per_epoch // c.batch_size
    for i, recipe in enumerate(t.recipes):
        for stage in (1, 2):
            row = rows[f"train_stage{stage}@{recipe}"]
            epochs = getattr(params.recipes[recipe], f"stage{stage}_epochs")
            steps = epochs * t.images_per_epoch // t.batch_size
            val = epochs * (t.validation_images // t.batch_size) * 0.25
            pool = params.recipes[recipe].crop_pool  # a pool is made once per stage, then no per-step input
            input_s, pool_s = (0.0, pool * 0.01 / 2) if pool and epochs else (t.batch_size * 0.01 / 2, 0.0)
            assert row["steps"] == steps and row["pool_s"] == pytest.approx(pool_s)
            startup = 7.0 + projection.STAGE_OVERHEAD_S
            assert row["seconds"] == pytest.approx(startup + pool_s + steps * (0.5 * (1 + i) + input_s) + val)
    cl = params.claims
    per_epoch = cl.images_per_epoch // t.batch_size
    val = (t.validation_images // t.batch_size) * 0.05
    runs = ((cl.stage1_epochs, 0.2), (cl.stage2_epochs, 0.1), (cl.stage1_epochs, 0.3))  # claim_runs.RUNS
    expected = sum(7.0 + projection.STAGE_OVERHEAD_S + e * per_epoch * step + e * val for e, step in runs)
    for seed in cl.seeds:
        assert rows[f"claims@{seed}"]["seconds"] == pytest.approx(expected)
    for name in ("download", "masks", "evaluate", "report"):
        assert rows[name]["estimate"] and rows[name]["seconds"] == projection.FIXED_STAGE_SECONDS[name]
    # Every stage of dvc.yaml is there; those without a cost model as flagged estimates.
    stages = {name.split("@")[0] for name in rows}
    assert stages == {name for name, _ in projection.dvc_stages(ROOT / "dvc.yaml")}
    for name, row in rows.items():
        assert row["estimate"] == (name.split("@")[0] not in projection.STAGE_COSTS)
    assert projected["total_seconds"] == pytest.approx(sum(r["seconds"] for r in rows.values()))


def test_a_new_stage_with_a_params_axis_appears_in_the_projection(tiny_params_file, tmp_path):
    params = load_params(tiny_params_file)
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(
        "stages:\n"
        "  train_stage1:\n    matrix:\n      recipe: ${train.recipes}\n    cmd: x\n"
        "  sweep:\n    matrix:\n      seed: ${compare.seeds}\n      size: [32, 64]\n    cmd: x\n"
    )
    rows = projection.project_repro_seconds(params, _timings(params), dvc_yaml=dvc_yaml)["stages"]
    seeds = params.compare.seeds
    assert [r["stage"] for r in rows] == [f"train_stage1@{r}" for r in params.train.recipes] + [
        f"sweep@{seed}-{size}" for seed in seeds for size in (32, 64)
    ]
    sweep = [r for r in rows if r["stage"].startswith("sweep@")]
    assert all(r["estimate"] and r["seconds"] == projection.UNKNOWN_STAGE_SECONDS for r in sweep)


def test_pipeline_entries_read_the_matrix_axes_present_in_params(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    stages = {"download": {}, "masks": {}, "compare": {"matrix": {"kind": "${compare.kinds}", "seed": "${compare.seeds}"}},
              "train_stage1": {"matrix": {"recipe": "${train.recipes}"}}, "train_stage2": {"matrix": {"recipe": "${train.recipes}"}},
              "evaluate": {}, "report": {}}  # fmt: skip
    dvc_yaml.write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    params = types.SimpleNamespace(
        compare=types.SimpleNamespace(kinds=["unet", "unet_scaled"]),  # no seeds axis
        train=types.SimpleNamespace(recipes=["paper"]),
    )
    names = [name for _, name, _ in projection.pipeline_entries(params, dvc_yaml=dvc_yaml)]
    assert names == [
        "download",
        "masks",
        "compare@unet",
        "compare@unet_scaled",
        "train_stage1@paper",
        "train_stage2@paper",
        "evaluate",
        "report",
    ]
    with pytest.raises(FileNotFoundError, match="nowhere/dvc.yaml"):
        projection.pipeline_entries(params, dvc_yaml=tmp_path / "nowhere" / "dvc.yaml")


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_quick_run_writes_valid_json(tiny_params_file, tmp_path, monkeypatch, capsys):
    # In an empty folder: no data/photos (scikit-image photos instead), no trained model.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench.json"
    status = bench_main.main(["--params", str(tiny_params_file), "--quick", "--breakdown", "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    result = json.loads(out.read_text())
    assert keras.config.dtype_policy().name == "float32"  # the bench restored the global policy
    assert result["machine"]["cpu_type"] in ("native-bf16", "avx2-only")
    assert result["gemm"]["float32"]["flops_per_s"] > 0 and result["gemm"]["bfloat16"]["flops_per_s"] > 0
    steps = {(s["recipe"], s["stage"], s["precision"]): s for s in result["training"]["steps"]}
    params = load_params(tiny_params_file)
    first = params.train.recipes[0]
    for precision in ("float32", "mixed_bfloat16"):
        step = steps[(first, 1, precision)]
        assert step["seconds"] > 0 and 0 < step["fraction_of_gemm"]
        assert step["emulated"] == (precision == "mixed_bfloat16" and not hardware.native_bf16())
    assert set(result["training"]["validation_step_s"]) == set(params.train.recipes)
    # compare and claims steps: in the training precision, as a fraction of that precision's peak
    trained_in = result["training"]["training_precision"]
    assert set(result["compare"]) == set(params.compare.kinds)
    for step in [*result["compare"].values(), *result["claims"]["train_steps"].values()]:
        assert step["precision"] == trained_in and step["flops"] > 0 and 0 < step["fraction_of_gemm"], step
    assert result["machine"]["onednn"].startswith(("on ", "off "))
    assert "rest" in result["training"]["breakdown"]["float32"]
    assert result["training"]["profile"]["float32"]["by_part"]
    assert result["inference"]["images_per_s"] > 0
    assert "scikit-image" in result["input_pipeline"]["photos"]
    assert result["input_pipeline"][first]["examples_per_s"] > 0
    assert result["fill"]["model_s"] > 0 and result["fill"]["telea_s"] > 0
    assert "fresh" in result["fill"]["generator"]
    projected = result["projection"]
    assert projected["total_seconds"] == pytest.approx(sum(s["seconds"] for s in projected["stages"]))
    assert "projected dvc repro" in printed and "where the float32 step's time goes" in printed
    assert "compare step (generator only):" in printed and "claims steps" in printed


def test_fill_memory_measures_the_weighing_model_fill_within_its_budget(tiny_params_file, tmp_path):
    """One case of `python -m image_completion.bench.fill_memory` in its own process (a fresh
    generator of the tiny params' refine, which weighs classical fills at full resolution)."""
    command = [sys.executable, "-m", "image_completion.bench.fill_memory", "--child", "model", "square"]
    command += ["--side", "256", "--strip", "1024", "--model", str(tmp_path / "absent.keras"), "--params", str(tiny_params_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["method"] == "model" and row["case"] == "square 256x256" and row["hole_pixels"] > 0 and row["within"], row
    assert row["generator"] == "fresh refine generator of the params' size"
