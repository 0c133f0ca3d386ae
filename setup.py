"""Installs the CEB robustness reproduction: resnet_ceb, wrn_cifar and eval."""
import setuptools

# These pins install and import together on Python 3.9-3.11. Estimators and
# tf.compat.v1.layers were removed after TensorFlow 2.15, so do not upgrade.
INSTALL_REQUIRES = [
    'tensorflow==2.15.1',
    'tensorflow-probability==0.23.0',
    'tensorflow-datasets==4.9.4',
    'tensorflow-metadata==1.14.0',
    'absl-py',
    'numpy<2',
    'Pillow',
    # CIFAR-10-C-like corruptions (eval.make_cifar10_c); 1.1.2 is the last release.
    'imagecorruptions==1.1.2',
    # eval.make_cifar10_c's three blurs use scipy.ndimage directly (imagecorruptions
    # needs it too; left to pip's choice for the Python at hand).
    'scipy',
]

setuptools.setup(
    name='ceb-robustness',
    version='0.1.0',
    description='Reproduction of "CEB Improves Model Robustness" (Fischer & Alemi 2020).',
    packages=setuptools.find_packages(include=['resnet_ceb*', 'wrn_cifar*', 'eval*', 'studies*']),
    package_data={'resnet_ceb': ['data/*.txt']},
    python_requires='>=3.9,<3.12',
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'test': ['pytest', 'ruff==0.17.6'],
        'plots': ['matplotlib'],
        # The same TensorFlow with the CUDA and cuDNN libraries it was built
        # against, as pip wheels (Linux x86-64; docs/GPU.md).
        'gpu': ['tensorflow[and-cuda]==2.15.1'],
    },
)
