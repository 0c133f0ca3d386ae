"""The shared base (CEB objective, training utilities) and the ImageNet ResNet trainer."""
