"""The BatchNorm-free Wide-ResNet CIFAR-10 trainer (section 3.1, appendix A.1)."""
