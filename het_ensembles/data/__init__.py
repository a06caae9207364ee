"""Datasets by name: TFDS sets with uncertainty-baselines preprocessing, embedded sets, npz.

Every dataset is reached through `get_info(name)` and `load(name, split, ...)`, so the trainer,
the evaluator and the demo never special-case one. Names:

- TFDS: `imagenet2012`, `imagenet2012_corrupted/<corruption>_<severity>`, `cifar10`, `cifar100`,
  `cifar10_n` (noisy label field chosen with `label_field`).
- Embedded (no download): `noisy_digits`, `synthetic`.
- Bring your own: `npz:<path>` with arrays `x_train, y_train, x_test, y_test` (optional
  `y_test_clean`).

Splits: `train`, `test`, and `test_clean` (test inputs with clean labels) where a set has them.
Batches are `(x, y)` with integer labels `y` [B] (or multi-hot [B, K] for multilabel sets).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model and the evaluator need to know about a dataset.

    Attributes:
      name: the dataset name as given to `load`.
      num_classes: number of classes K.
      input_shape: shape of one example, e.g. (224, 224, 3) or (64,).
      num_examples: split name -> number of examples.
      class_names: optional names of the K classes (used by the covariance analysis).
      multilabel: whether labels are multi-hot [K] instead of one integer.
    """

    name: str
    num_classes: int
    input_shape: tuple
    num_examples: dict
    class_names: tuple | None = None
    multilabel: bool = False
