"""FLOPs of a training step, counted from the layers (forward, backward, optimizer)."""

from __future__ import annotations

from image_completion.training.hardware import CPU_FLAGS, cpu_features, cpu_type, native_bf16  # noqa: F401 - re-exported

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
    generator,
    discriminator,
    batch: int,
    *,
    train_discriminator: bool = True,
    adversarial_weight: float = 0.1,
    style_weight: float = 0.0,
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
    from image_completion.core.models import backbone_of  # noqa: PLC0415

    d = network_layers(discriminator)
    need_fake = train_discriminator or adversarial_weight > 0
    d_calls = int(train_discriminator) + int(need_fake)
    d_back = backward_macs(d, False, True) * (adversarial_weight > 0) * need_fake
    d_back += 2 * backward_macs(d, True, False) * train_discriminator
    d_parts = {
        "discriminator_forward": d_calls * sum(m for _, m, _ in d),
        "discriminator_backward": d_back,
        "style": 0,
    }
    if style_weight > 0:
        vgg = network_layers(backbone_of(discriminator), False)
        d_parts["style"] = 2 * sum(m for _, m, _ in vgg) + backward_macs(vgg, False, True)
    g = generator_step_flops(generator, batch)
    flops = {part: g[part] for part in ("generator_forward", "generator_backward")}
    flops |= {name: 2 * batch * macs for name, macs in d_parts.items()}
    flops["total"] = sum(flops.values())
    return flops


def generator_step_flops(generator, batch: int) -> dict:
    """FLOPs of one generator-only training step (the ``compare`` stage's): G(x) forward and its
    backward for G's own weights (``train_step_flops``' counting rule), by part and ``total``."""
    g = network_layers(generator)
    forward, backward = 2 * batch * sum(m for _, m, _ in g), 2 * batch * backward_macs(g, True, False)
    return {"generator_forward": forward, "generator_backward": backward, "total": forward + backward}
