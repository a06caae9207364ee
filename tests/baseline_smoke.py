"""Smoke-size overrides of the baselines scripts' configs, shared by their in-process tests
(tests/baselines/test_scripts.py) and the console-script runs (tests/e2e/test_workflows.py):
2 epochs of 2 steps, a small CNN at 16 x 16 for ImageNet, WRN-10-1 for CIFAR, 16 MC samples."""

COMMON = [
    "--config.seed=3",
    "--config.per_core_batch_size=2",
    "--config.train_epochs=2",
    "--config.steps_per_epoch=2",
    "--config.eval_steps=2",
]
IMAGENET = ["--config.model=small_cnn", "--config.image_size=16", "--config.use_bfloat16=False"]
CIFAR = ["--config.model_kwargs.depth=10", "--config.model_kwargs.width_multiplier=1"]
HET = ["--config.train_mc_samples=16", "--config.test_mc_samples=16"]
# script (under baselines/) -> its overrides beyond COMMON
SCRIPTS = {
    "imagenet/deterministic": IMAGENET,
    "imagenet/heteroscedastic": IMAGENET + HET,
    "cifar/deterministic": CIFAR,
    "cifar/heteroscedastic": CIFAR + HET,
}
