"""uncertainty-baselines' ImageNet and CIFAR preprocessing, and checks that name bad files.

One home for the crop, resize and normalisation that every ImageNet-style set uses: the TFDS
ImageNet family (`tfds_sets`) and the streaming sets read from files (`folder:`, `tfrecord:`,
`tfds:`, `webvision:`, in `streaming`). Source: uncertainty-baselines
`datasets/resnet_preprocessing.py` (`preprocess_for_train` / `preprocess_for_eval`) and
`datasets/imagenet.py` (mean / std):

- train: Inception-style random crop (area 8%-100%, aspect ratio 3/4-4/3, 10 attempts, else
  the eval crop), bicubic resize to `image_size`, random left-right flip;
- eval: central crop of 224/256 of the shorter side, bicubic resize to `image_size`;
- then scale to [0, 1] and normalise with the ImageNet mean / std.

CIFAR (`cifar_image`, uncertainty-baselines `datasets/cifar.py`): train pads 4 pixels, takes a
random crop of the native size and flips; both scale to [0, 1], resize to `image_size` when it
differs and normalise with the CIFAR-10 mean / std (used for CIFAR-100 and for out-of-
distribution sets scored against CIFAR models too, as uncertainty-baselines'
`normalize_by_cifar`). `cifar_image_any_format` first decodes and resizes an encoded image of
any size to the native size.

JPEG takes the fast path (`decode_and_crop_jpeg` decodes only the crop window); any other
format (PNG, BMP, GIF: its first frame) is decoded whole and then cropped, which gives the same
pixels. Grey images come out with 3 channels.

TensorFlow's decoders fail on a truncated or non-image file without naming it, so
`image_is_complete` checks the bytes first (the format's magic number and its end marker) and
`assert_image` raises with the file's path in the message; `skip_corrupt` sets filter with
the same check instead.
"""

import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # uncertainty-baselines datasets/imagenet.py
IMAGENET_STDDEV = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # uncertainty-baselines datasets/cifar.py
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR_IMAGE_SIZE = 32
EVAL_CROP_FRACTION = 224 / 256  # resnet_preprocessing: image_size / (image_size + CROP_PADDING)

# How far from the end a JPEG's end-of-image marker (FF D9) may sit: some cameras and editors
# append data after it. In entropy-coded data FF is always followed by 00 or a restart marker,
# so FF D9 there means the image is complete.
JPEG_TRAILER_WINDOW = 4096
_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF8", "bmp": b"BM"}
ACCEPTED_FORMATS = "JPEG, PNG, BMP or GIF"
_FIX_HINT = (
    ". Fix or remove it, or add skip_corrupt=true to the dataset name to skip and count such files."
)


def is_jpeg(image_bytes):
    """Whether encoded bytes start with the JPEG magic number (scalar bool tensor)."""
    return tf.equal(tf.strings.substr(image_bytes, 0, 3), _MAGIC["jpeg"])


def image_is_complete(image_bytes):
    """Whether `image_bytes` look like a whole JPEG, PNG, GIF or BMP file (scalar bool tensor).

    Checks the magic number and the end: JPEG's end-of-image marker within the last
    `JPEG_TRAILER_WINDOW` bytes, PNG's IEND chunk, GIF's trailer byte, BMP's file size field.
    It reads no pixels: a file that passes can still fail to decode (then TensorFlow's own error
    is raised), but a truncated or non-image file is caught here with its path.
    """
    length = tf.strings.length(image_bytes)

    def tail(size):
        start = tf.maximum(length - size, 0)
        return tf.io.decode_raw(tf.strings.substr(image_bytes, start, length - start), tf.uint8)

    def head_is(magic):
        return tf.equal(tf.strings.substr(image_bytes, 0, len(magic)), magic)

    def jpeg_ok():
        window = tf.cast(tail(JPEG_TRAILER_WINDOW), tf.int32)
        return tf.reduce_any(tf.logical_and(window[:-1] == 0xFF, window[1:] == 0xD9))

    def png_ok():
        return tf.equal(tf.strings.substr(image_bytes, length - 8, 4), b"IEND")

    def gif_ok():
        return tf.equal(tf.strings.substr(image_bytes, length - 1, 1), b";")

    def bmp_ok():
        size = tf.io.decode_raw(tf.strings.substr(image_bytes, 2, 4), tf.int32, little_endian=True)
        return tf.logical_and(length >= 26, tf.reduce_all(size <= length))

    checks = [(head_is(_MAGIC[f]), ok) for f, ok in zip(_MAGIC, (jpeg_ok, png_ok, gif_ok, bmp_ok))]
    result = tf.constant(False)
    for matches, ok in reversed(checks):
        result = tf.cond(matches, ok, lambda r=result: r)
    return tf.logical_and(length >= 8, result)


def assert_image(image_bytes, where):
    """`image_bytes`, after an assertion naming `where` (a path) that they are a whole image."""
    check = tf.debugging.Assert(
        image_is_complete(image_bytes),
        [
            tf.strings.join(
                [
                    "Not a complete ",
                    ACCEPTED_FORMATS,
                    " image (truncated, corrupt or another format): ",
                    where,
                    _FIX_HINT,
                ]
            )
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(image_bytes)


def center_crop_window(shape):
    """[offset_y, offset_x, size, size] of the central 224/256 square of the shorter side."""
    height, width = shape[0], shape[1]
    crop = tf.cast(EVAL_CROP_FRACTION * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    return tf.stack([(height - crop + 1) // 2, (width - crop + 1) // 2, crop, crop])


def _train_crop_window(shape, seed):
    """The Inception-style random crop [offset_y, offset_x, h, w] (resnet_preprocessing)."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    # All 10 attempts failed -> the whole image comes back; then use the eval crop.
    failed = tf.reduce_all(tf.equal(crop_size[:2], shape[:2]))
    return tf.cond(
        failed,
        lambda: center_crop_window(shape),
        lambda: tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]]),
    )


def _finish(image, image_size, flip_seed):
    """Cropped uint8 [h, w, 3] -> resized, (flipped,) normalised float32 [size, size, 3]."""
    image = tf.image.resize(image, [image_size, image_size], method="bicubic")
    if flip_seed is not None:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    image = tf.reshape(image, [image_size, image_size, 3]) / 255.0
    return (image - IMAGENET_MEAN) / IMAGENET_STDDEV


def _seeds(is_training, seed):
    if not is_training:
        return None, None
    return tf.unstack(tf.random.experimental.stateless_split(seed, 2))


def bit_image(image_bytes, image_size, is_training, seed=None, *, resize_size=None, flip=True):
    """Encoded image -> BiT's fine-tuning input, normalised float32 [image_size, image_size, 3].

    Source: big_transfer `input_pipeline_tf2_or_jax.py` `_pp` (Kolesnikov et al. 2020,
    BiT-HyperRule): train resizes the whole image to `resize_size` squared (default
    `image_size`; bilinear, `tf.image.resize`'s default there) and takes a random `image_size`
    crop, then flips left-right at random if `flip` (that code flips every image; the paper
    says random flips: we follow the paper); eval resizes to `image_size` ("usage of crop_size
    here is intentional"). Pixels are normalised with the ImageNet mean / std, not BiT's
    [-1, 1]: a fine-tuned backbone must see the inputs it was pre-trained on, and this
    project's members were trained on these.
    """
    crop_seed, flip_seed = _seeds(is_training, seed)
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.cast(image, tf.float32)
    if is_training:
        size = image_size if resize_size is None else resize_size
        image = tf.image.resize(image, [size, size])
        image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], seed=crop_seed)
    else:
        image = tf.image.resize(image, [image_size, image_size])
    if flip and flip_seed is not None:
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    image = tf.reshape(image, [image_size, image_size, 3]) / 255.0
    return (image - IMAGENET_MEAN) / IMAGENET_STDDEV


def imagenet_image(image_bytes, image_size, is_training, seed):
    """JPEG bytes -> normalised float32 [image_size, image_size, 3] (resnet_preprocessing).

    Decodes only the crop window (`decode_and_crop_jpeg`), as uncertainty-baselines does.
    """
    crop_seed, flip_seed = _seeds(is_training, seed)
    shape = tf.image.extract_jpeg_shape(image_bytes)  # [3]
    window = _train_crop_window(shape, crop_seed) if is_training else center_crop_window(shape)
    image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
    return _finish(image, image_size, flip_seed)


def imagenet_image_any_format(image_bytes, image_size, is_training, seed=None):
    """Encoded JPEG, PNG, BMP or GIF bytes -> the crop of `imagenet_image`, normalised.

    JPEG goes through `imagenet_image` (crop-window decode); other formats are decoded whole
    (GIF: the first frame) and cropped with the same window.
    """

    def other_format():
        crop_seed, flip_seed = _seeds(is_training, seed)
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        shape = tf.shape(image)
        window = _train_crop_window(shape, crop_seed) if is_training else center_crop_window(shape)
        top, left, height, width = tf.unstack(window)
        return _finish(image[top : top + height, left : left + width], image_size, flip_seed)

    return tf.cond(
        is_jpeg(image_bytes),
        lambda: imagenet_image(image_bytes, image_size, is_training, seed),
        other_format,
    )


def cifar_image(image, native_size, image_size, is_training, seed):
    """uint8 [native, native, 3] -> normalised float32 [image_size, image_size, 3] (cifar.py)."""
    if is_training:
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        image = tf.image.resize_with_crop_or_pad(image, native_size + 4, native_size + 4)
        image = tf.image.stateless_random_crop(image, (native_size, native_size, 3), seed=crop_seed)
        image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    image = tf.cast(image, tf.float32) / 255.0
    if image_size != native_size:
        image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return (image - CIFAR10_MEAN) / CIFAR10_STD


def cifar_image_any_format(image_bytes, image_size, is_training, seed=None):
    """Encoded bytes of any size -> `cifar_image` at `CIFAR_IMAGE_SIZE` native pixels.

    Images of another size are resized (bilinear, whole image: CIFAR has no crop) to 32x32 first.
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    native = CIFAR_IMAGE_SIZE
    image = tf.cast(tf.image.resize(image, [native, native], method="bilinear"), tf.uint8)
    return cifar_image(image, native, image_size, is_training, seed)
