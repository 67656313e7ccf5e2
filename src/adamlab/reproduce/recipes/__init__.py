"""The built-in recipes (importing this package registers them, in this order)."""

from adamlab.reproduce.recipes import (  # noqa: F401, I001
    noisy_quadratic,
    wilson,
    adam_mnist_logreg,
    adam_imdb_bow,
    adam_mnist_mlp,
    adam_vae_bias_correction,
    dissect_p1_fmnist,
    dissect_p4_tolstoi,
    adam_cifar10_cnn,
    dissect_p2_cifar10,
    dissect_p3_cifar100,
    reddi_counterexample,
    adam_slides,
)
