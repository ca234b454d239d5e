"""Worked examples of networks the paper did not use, run through the same workflow
(``config/examples/``): :mod:`sgdvi.examples.resnet`, a ResNet-20 with BatchNorm."""
