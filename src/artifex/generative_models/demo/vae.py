"""A small variational autoencoder for 8x8 digit images, in Flax NNX."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["VAE", "vae_loss"]


class VAE(nnx.Module):
    """A multilayer-perceptron VAE with a Bernoulli decoder over pixel intensities.

    The reparameterisation noise comes from the module's own ``noise`` RNG stream, and
    the encoder's dropout masks from its ``dropout`` stream, so both are part of the model
    state: saved in checkpoints and restored exactly on resume. Dropout is on in
    training steps and off in validation (the trainer evaluates in evaluation mode).
    """

    def __init__(
        self,
        *,
        features: int = 64,
        hidden: int = 128,
        latent: int = 8,
        dropout: float = 0.1,
        seed: int = 0,
    ) -> None:
        """Build the encoder and decoder.

        Args:
            features: Pixels per image (64 for 8x8 digits).
            hidden: Width of the hidden layers.
            latent: Dimension of the latent space.
            dropout: The dropout rate of the encoder's hidden layer, in ``[0, 1)``.
            seed: Seed of the parameter initialisation and the noise and dropout streams.
        """
        for name, value in (("features", features), ("hidden", hidden), ("latent", latent)):
            if value < 1:
                raise ValueError(f"VAE {name} must be >= 1, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"VAE dropout must be in [0, 1), got {dropout!r}")
        rngs = nnx.Rngs(params=seed, noise=seed + 1, dropout=seed + 2)
        self.latent = latent
        self.encoder = nnx.Linear(features, hidden, rngs=rngs)
        self.encoder_dropout = nnx.Dropout(dropout, rngs=rngs)
        self.mean = nnx.Linear(hidden, latent, rngs=rngs)
        self.log_var = nnx.Linear(hidden, latent, rngs=rngs)
        self.decoder_hidden = nnx.Linear(latent, hidden, rngs=rngs)
        self.decoder_out = nnx.Linear(hidden, features, rngs=rngs)
        self.rngs = rngs

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Return the mean and log-variance of q(z | x)."""
        h = self.encoder_dropout(nnx.relu(self.encoder(x)))
        return self.mean(h), self.log_var(h)

    def decode_logits(self, z: jax.Array) -> jax.Array:
        """Return the Bernoulli logits of p(x | z)."""
        return self.decoder_out(nnx.relu(self.decoder_hidden(z)))

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Encode, sample with the reparameterisation trick, and decode.

        Args:
            x: A batch of images, shape ``(batch, features)``, values in ``[0, 1]``.

        Returns:
            The reconstruction logits, the posterior mean and the log-variance.
        """
        mean, log_var = self.encode(x)
        eps = jax.random.normal(self.rngs.noise(), mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * log_var) * eps
        return self.decode_logits(z), mean, log_var

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """Draw ``n`` images (pixel probabilities) from the prior."""
        z = jax.random.normal(key, (n, self.latent))
        return nnx.sigmoid(self.decode_logits(z))


def vae_loss(model: VAE, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The negative ELBO per image, with its reconstruction and KL terms as metrics.

    Args:
        model: The VAE.
        batch: ``{"image": (batch, features)}`` with values in ``[0, 1]``.

    Returns:
        The mean loss, and ``{"reconstruction": ..., "kl": ...}``.
    """
    x = batch["image"]
    logits, mean, log_var = model(x)
    # Bernoulli log-likelihood with soft targets, written stably.
    reconstruction = jnp.sum(jnp.logaddexp(0.0, logits) - x * logits, axis=-1)
    kl = -0.5 * jnp.sum(1.0 + log_var - mean**2 - jnp.exp(log_var), axis=-1)
    rec, kld = jnp.mean(reconstruction), jnp.mean(kl)
    return rec + kld, {"reconstruction": rec, "kl": kld}
