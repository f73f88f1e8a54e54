"""Stage ``claims@<seed>``: the training runs behind the paper's claims (d) and (e), small scale.

Per seed, the paper recipe at ``claims.image_size`` with a discriminator that learns
(``claims.d_learning_rate``): ``learning_d`` runs stage 1 then stage 2 (claim d: does stage 2
raise perceptual accuracy?); ``style`` runs stage 1 with the style loss (claim e: does it sharpen
the fill?). Only the dvclive logs are kept; ``claims.py`` reads them.

The command line is ``image_completion.stages.claims``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

from image_completion.config import Params
from image_completion.training import runner

log = logging.getLogger("image_completion.training.claim_runs")


# The training runs of one seed, in order: (recipe of ``claim_params``, stage). Stage 2 starts from stage 1.
RUNS = (("learning_d", 1), ("learning_d", 2), ("style", 1))


def claim_params(params: Params, seed: int) -> Params:
    """``params`` at the claims' scale with the two recipes ``learning_d`` and ``style``."""
    c = params.claims
    paper = dataclasses.replace(
        params.recipe("paper"), d_learning_rate=c.d_learning_rate,
        stage1_epochs=c.stage1_epochs, stage2_epochs=c.stage2_epochs,
    )  # fmt: skip
    recipes = {"learning_d": paper, "style": dataclasses.replace(paper, style_weight=c.style_weight, stage2_epochs=0)}
    return dataclasses.replace(
        params,
        base=dataclasses.replace(params.base, seed=seed, image_size=c.image_size),
        model=dataclasses.replace(params.model, base_filters=c.base_filters),
        train=dataclasses.replace(
            params.train, images_per_epoch=c.images_per_epoch, recipes=list(recipes), default_recipe="learning_d"
        ),
        recipes={"paper": params.recipe("paper"), **recipes},
    )


def run_claims(params: Params, photos: Path, out: Path) -> None:
    """learning_d: stage 1 then stage 2; style: stage 1; dvclive logs in ``out/<recipe>/stage<N>``."""
    with tempfile.TemporaryDirectory(prefix="claims-") as tmp:
        for recipe, stage in RUNS:
            models = Path(tmp) / recipe
            runner.run_stage(
                params, recipe=recipe, stage=stage, photos=photos, out=models / f"stage{stage}",
                live_dir=out / recipe / f"stage{stage}", checkpoints=models / f"ckpt{stage}",
                init=models / "stage1" if stage == 2 else None,
            )  # fmt: skip
