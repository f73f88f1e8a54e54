"""ablation and claim_runs: the variants' params and the scoring of a set (the training itself is
the training stage's, tested in test_train_stage.py)."""

from pathlib import Path

import numpy as np
import pytest

from image_completion.config import load_params
from image_completion.evaluation import validation
from image_completion.stages import claims as claims_stage
from image_completion.training import ablation, claim_runs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


def test_each_variant_changes_only_its_keys_of_refine(params):
    refine = params.recipes["refine"]
    for name, changes in ablation.VARIANTS.items():
        variant = ablation.variant_params(params, "refine", changes, epochs=3).recipes["variant"]
        assert (variant.stage1_epochs, variant.stage2_epochs) == (3, 0)
        for key in vars(refine):
            if key not in ("stage1_epochs", "stage2_epochs"):
                assert getattr(variant, key) == changes.get(key, getattr(refine, key)), (name, key)
    assert ablation.variant_params(params, "paper", {}, 3).recipes["paper"] == params.recipes["paper"]


def test_score_is_the_mean_per_bucket_and_overall():
    rng = np.random.default_rng(0)
    images = rng.random((4, 16, 16, 3)).astype(np.float32)
    masks = np.zeros((4, 16, 16), np.float32)
    masks[:, 4:10, 4:10] = 1
    outputs = images.copy()
    outputs[2:, 4:10, 4:10] = 0.5  # the last two crops filled badly
    result = validation.score(outputs, images, masks, ["a", "a", "b", "b"])
    assert result["a"]["l1_hole"] == 0.0 and result["b"]["l1_hole"] > 0.1
    assert result["all"]["l1_hole"] == pytest.approx(result["b"]["l1_hole"] / 2)


def test_correction_is_the_mean_change_over_the_hole_per_crop():
    start = np.zeros((2, 8, 8, 3), np.float32)
    masks = np.zeros((2, 8, 8), np.float32)
    masks[0, :2] = 1  # 16 hole pixels
    masks[1, :4] = 1  # 32
    output = start.copy()
    output[0, 0] = 0.4  # half of crop 0's hole moved by 0.4; a change outside the hole does not count
    output[1, 7] = 1.0
    assert ablation.correction(output, start, masks) == pytest.approx((0.2 + 0.0) / 2)
    assert ablation.correction(start, start, masks) == 0.0


def test_claim_params_scale_down_and_name_the_two_arms(params):
    small = claim_runs.claim_params(params, seed=1235)
    c = params.claims
    assert (small.base.seed, small.base.image_size, small.model.base_filters) == (1235, c.image_size, c.base_filters)
    assert small.train.recipes == ["learning_d", "style"] and small.train.images_per_epoch == c.images_per_epoch
    learning_d, style = small.recipes["learning_d"], small.recipes["style"]
    assert learning_d.d_learning_rate == c.d_learning_rate and learning_d.style_weight == 0.0
    assert (style.style_weight, style.stage2_epochs) == (c.style_weight, 0)
    assert learning_d.g_learning_rate == params.recipes["paper"].g_learning_rate  # otherwise the paper's


def test_claim_runs_refuses_a_seed_outside_claims_seeds(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        claims_stage.main(
            ["--params", str(ROOT / "params.yaml"), "--seed", "7", "--photos", str(tmp_path), "--out", str(tmp_path / "o")]
        )
    assert exit_info.value.code == 2 and "claims.seeds" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_params_name_only_known_variants(params):
    assert set(params.ablation.variants) <= {"paper", *ablation.VARIANTS}


def test_ablation_stage_refuses_a_variant_outside_ablation_variants(capsys, tmp_path):
    from image_completion.stages import ablation as ablation_stage

    args = ["--params", str(ROOT / "params.yaml"), "--photos", str(tmp_path), "--masks", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        ablation_stage.main([*args, "--out", str(tmp_path / "o"), "--variant", "nope"])
    assert exit_info.value.code == 2 and "ablation.variants" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("key", ["steps", "curve_steps"])
def test_ablation_steps_must_fill_whole_epochs(params, key):
    import dataclasses

    from image_completion.config import params_from_dict
    from image_completion.errors import ConfigError

    raw = dataclasses.asdict(params)
    raw["ablation"][key] = params.train.steps_per_epoch + 1
    with pytest.raises(ConfigError, match=f"ablation.{key}"):
        params_from_dict(raw)
