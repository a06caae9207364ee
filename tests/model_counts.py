"""Closed-form parameter counts of the ResNet trunks (He et al. 2016, Table 1), shared by
tests/models/test_models.py (ResNet-50) and tests/models/test_paper_backbones.py (ResNet-152)."""

RESNET_FILTERS = ((64, 64, 256), (128, 128, 512), (256, 256, 1024), (512, 512, 2048))
RESNET50_BLOCKS = (3, 4, 6, 3)
RESNET152_BLOCKS = (3, 8, 36, 3)


def resnet_trunk_counts(stage_blocks=RESNET50_BLOCKS):
    """(trainable, batch-norm channels) of a bottleneck ResNet trunk with `stage_blocks`
    blocks per stage: a 7x7 conv, bias-free convs, batch norm gamma and beta per channel."""
    conv = 7 * 7 * 3 * 64
    bn_channels = 64
    channels = 64
    for (f1, f2, f3), blocks in zip(RESNET_FILTERS, stage_blocks):
        for block in range(blocks):
            conv += channels * f1 + 3 * 3 * f1 * f2 + f2 * f3
            bn_channels += f1 + f2 + f3
            if block == 0:  # projection shortcut
                conv += channels * f3
                bn_channels += f3
            channels = f3
    return conv + 2 * bn_channels, bn_channels
