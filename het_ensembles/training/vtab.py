"""VTAB-1k fine-tuning configs: Collier et al. (CVPR 2021) Table 6 with BiT-HyperRule.

Where it sits: configs/vtab/finetune.py -> **vtab** -> trainer (`init_from_member`). Table 6
fine-tunes the backbones of pre-trained Hom and Het members, each with a new plain softmax
head, on the 19 tasks of VTAB-1k (Zhai et al. 2019, "A Large-scale Study of Representation
Learning with the Visual Task Adaptation Benchmark"); the score is the mean test accuracy over
tasks (`het_ensembles.experiments.vtab_score`).

`vtab_config(task)` is the trainer config of one task. Its values and their sources:

- Data, VTAB-1k (google-research/task_adaptation `data/*.py`, `train800` / `val200`): 1,000
  training examples, the first 1,000 of the TFDS train split (after a test carve-out for sets
  with no test split), of which `validation_fraction=0.2` holds out 200 (a seeded random 200)
  for monitoring: train800 / val200. VTAB draws val200 from the set's validation split (or
  the tail of train) instead, see `TASKS`. The final runs train on all 1,000
  (`--config.validation_fraction=0.0`: train800val200) and report the test split's accuracy.
- Schedule, BiT-HyperRule (Kolesnikov et al. 2020, "Big Transfer"; big_transfer
  `bit_hyperrule.py`, which we follow where it is more precise than the paper): SGD with
  momentum 0.9, not Nesterov (`bit_tf2/train.py`: `tf.keras.optimizers.SGD(momentum=0.9)`),
  learning rate 0.003 at batch 512, 500 steps for a dataset under 20,000 examples, linear
  warm-up over the first 100 steps, then x0.1 at steps 200, 300 and 400 (`get_schedule`:
  `[100, 200, 300, 400, 500]`; the paper's text says at 30%, 60% and 90% of the steps), no
  weight decay, no MixUp (`get_mixup`: alpha 0.1 only from 20,000 examples). Here 500 steps
  are 10 epochs of 50 steps (`steps_per_epoch=50`), so the warm-up is 2 epochs and the decays
  at epochs 4, 6 and 8 of 10; the validation split is evaluated every 50 steps.
- Resolution, BiT-HyperRule (`get_resolution`): an image under 96 x 96 pixels in area is
  resized to 160 and randomly cropped to 128; larger ones to 448 and 384 (the paper; the code
  says 512 and 480). Eval resizes to the crop size. Random left-right flip for training, except
  where it changes the label (smallNORB azimuth), as the paper says.
- Model: the config's backbone must be the pre-trained member's (`init_from_member` refuses
  another); the head is `head="deterministic"` (Dense + softmax), new, for the task's classes.
"""

import dataclasses

from het_ensembles.training.config import ConfigError, default_config

TRAIN_EXAMPLES = 1000  # VTAB-1k: train800val200
VALIDATION_FRACTION = 0.2  # 200 of the 1,000: val200
STEPS = 500  # bit_hyperrule.get_schedule: dataset_size < 20_000
STEPS_PER_EPOCH = 50  # how often the validation split is evaluated and a checkpoint written
WARMUP_STEPS = 100
DECAY_STEPS = (200, 300, 400)
BASE_LEARNING_RATE = 0.003  # bit_common.py --base_lr
BATCH_SIZE = 512  # bit_common.py --batch
MOMENTUM = 0.9  # bit_tf2/train.py, bit_pytorch/train.py
SMALL_AREA = 96 * 96  # bit_hyperrule.get_resolution: area < 96*96 -> (160, 128)
RESOLUTIONS = {"small": (160, 128), "large": (448, 384)}  # (resize, crop), the BiT paper


@dataclasses.dataclass(frozen=True)
class Task:
    """One VTAB-1k task as a `tfds:` set.

    Attributes:
      tfds_name: TFDS `NAME[/CONFIG]`.
      native_size: (height, width) of its images (the largest, for sets of several sizes),
        which picks BiT's resolution.
      options: extra `tfds:` options (`label_key`, `image_key`, `test_fraction`).
      flip: whether training images are flipped at random.
      vtab_splits: how task_adaptation cuts val200 and test, where we differ.
    """

    tfds_name: str
    native_size: tuple
    options: str = ""
    flip: bool = True
    vtab_splits: str = "val200 = validation[:200]; test = test"

    @property
    def resolution(self):
        """(resize, crop) by BiT-HyperRule."""
        area = self.native_size[0] * self.native_size[1]
        return RESOLUTIONS["small" if area < SMALL_AREA else "large"]


# The 19 tasks, VTAB-1k's order (natural, specialized, structured). Sizes from TFDS' catalogue.
TASKS = {
    "caltech101": Task("caltech101", (300, 300), vtab_splits="val200 = train[90%:][:200]"),
    "cifar100": Task("cifar100", (32, 32), "label_key=label", vtab_splits="val200 = train[90%:]"),
    "dtd": Task("dtd", (640, 640)),
    "oxford_flowers102": Task("oxford_flowers102", (500, 500)),
    "oxford_iiit_pet": Task(
        "oxford_iiit_pet",
        (500, 500),
        "image_key=image&label_key=label",
        vtab_splits="val200 = train[80%:][:200]",
    ),
    "svhn": Task("svhn_cropped", (32, 32), vtab_splits="val200 = train[90%:][:200]"),
    "sun397": Task("sun397/tfds", (500, 500)),
    "patch_camelyon": Task("patch_camelyon", (96, 96)),
    "eurosat": Task(
        "eurosat/rgb",
        (64, 64),
        "test_fraction=0.2",
        vtab_splits="train/val/test = train 60/20/20% in order; ours: a seeded random 20% test",
    ),
    "resisc45": Task(
        "resisc45",
        (256, 256),
        "test_fraction=0.2",
        vtab_splits="train/val/test = train 60/20/20% in order; ours: a seeded random 20% test",
    ),
    "diabetic_retinopathy": Task("diabetic_retinopathy_detection/btgraham-300", (300, 300)),
    "dmlab": Task("dmlab", (360, 480)),
    "smallnorb_azimuth": Task(
        "smallnorb",
        (96, 96),
        "image_key=image&label_key=label_azimuth",
        flip=False,  # a mirrored object has another azimuth
        vtab_splits="val200 = test[:200]; test = test[50%:]",
    ),
    "smallnorb_elevation": Task(
        "smallnorb",
        (96, 96),
        "image_key=image&label_key=label_elevation",
        vtab_splits="val200 = test[:200]; test = test[50%:]",
    ),
}
# The VTAB-1k tasks that a `tfds:` name cannot express, and why.
NOT_EXPRESSED = {
    "clevr_count_all": "label = number of objects - 3 (from the objects sequence, not a "
    "ClassLabel); test = TFDS validation",
    "clevr_closest_object_distance": "label = bin of the smallest object depth "
    "(objects/pixel_coords[:, 2], thresholds 0, 8, 8.5, 9, 9.5, 10, 100)",
    "kitti_closest_vehicle_distance": "label = bin of the nearest Car/Van/Truck's depth "
    "(objects/location[:, 2], thresholds -100, 8, 20, 999; 'no vehicle' a class)",
    "dsprites_x_position": "label_x_position's 32 values binned into 16 (floor(label / 2)); "
    "VTAB also scales the 0/1 pixels by 255 and carves 80/10/10% splits",
    "dsprites_orientation": "label_orientation's 40 values binned into 16 "
    "(floor(label / 2.5)); the same pixel scaling and splits",
}


def dataset_name(task):
    """The `tfds:` name of `task`: its first 1,000 train examples, BiT's preprocessing."""
    spec = TASKS[task]
    resize, _ = spec.resolution
    options = [f"train_examples={TRAIN_EXAMPLES}", "preprocessing=bit", f"bit_resize={resize}"]
    if not spec.flip:
        options.append("flip=false")
    if spec.options:
        options.append(spec.options)
    return f"tfds:{spec.tfds_name}?" + "&".join(options)


def vtab_config(task, *, model="resnet50"):
    """The trainer config that fine-tunes a member on VTAB-1k `task` (see the module docstring).

    Set `init_from_member` (the pre-trained member) and `seed` on it; the backbone fields
    (`model`, `model_kwargs`) must be the member's.

    Args:
      task: a key of `TASKS`.
      model: the backbone architecture.

    Returns:
      A `ConfigDict` with every field of `default_config()`.

    Raises:
      ConfigError: for a task not in `TASKS`, naming the tasks and those not expressed.
    """
    if task not in TASKS:
        why = (
            f"{task} is not expressible as a tfds: name ({NOT_EXPRESSED[task]})"
            if task in NOT_EXPRESSED
            else "Unknown VTAB-1k task"
        )
        raise ConfigError(
            f"{why}. Received: task={task!r}; allowed: {sorted(TASKS)} (not expressible as a "
            f"tfds: name: {sorted(NOT_EXPRESSED)})"
        )
    _, crop = TASKS[task].resolution
    config = default_config()
    config.dataset = dataset_name(task)
    config.image_size = crop
    config.model = model
    config.head = "deterministic"  # Table 6: a new homoscedastic (softmax) head
    config.validation_fraction = VALIDATION_FRACTION
    config.per_core_batch_size = BATCH_SIZE  # one device; divide it by the replicas on more
    config.base_batch_size = BATCH_SIZE  # the learning rate is 0.003 at batch 512
    config.base_learning_rate = BASE_LEARNING_RATE
    config.one_minus_momentum = 1.0 - MOMENTUM
    config.nesterov = False
    config.l2 = 0.0  # BiT: no weight decay when fine-tuning
    config.steps_per_epoch = STEPS_PER_EPOCH
    config.train_epochs = STEPS // STEPS_PER_EPOCH
    config.warmup_epochs = WARMUP_STEPS // STEPS_PER_EPOCH
    config.lr_decay_epochs = tuple(s // STEPS_PER_EPOCH for s in DECAY_STEPS)
    config.lr_decay_base_epochs = config.train_epochs
    config.lr_decay_ratio = 0.1
    config.label_smoothing = 0.0
    config.checkpoint_interval = 1
    return config


def task_of_dataset(dataset):
    """The `TASKS` key whose `dataset_name` is `dataset` (config.json's), else None."""
    return next((task for task in TASKS if dataset_name(task) == dataset), None)
