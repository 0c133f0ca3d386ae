"""The paper's evaluation settings, in one place (sections 2.4, 3.1, 3.2).

Every suite, study and report reads its attack grids from here, as MadryLab's
`cifar10_challenge` reads one `config.json`. Radii are in pixel units [0, 255].
"""

# PGD (section 2.4): n = 20 steps of alpha = 4/3 * eps / n.
PGD_NUM_STEPS = 20
PGD_STEP_FACTOR = 4.0 / 3.0


def pgd_step_size(epsilon, num_steps=PGD_NUM_STEPS):
  """The paper's PGD step size 4/3 * eps / n."""
  return PGD_STEP_FACTOR * epsilon / num_steps


# CIFAR-10 (Figures 1-2): the paper names no grid; these cover its plotted ranges.
CIFAR_LINF_EPSILONS = (0, 1, 2, 4, 8, 16, 32)
CIFAR_L2_EPSILONS = (0, 16, 32, 64, 128, 256, 512, 1024)
EPSILONS = {'linf': CIFAR_LINF_EPSILONS, 'l2': CIFAR_L2_EPSILONS}

# Figure 1 plots accuracy against rho at one radius per norm.
FIGURE1_EPSILONS = {'linf': 8.0, 'l2': 128.0}

# ImageNet (section 3.2, Table 1): targeted PGD, eps = 16, n = 20, eps_i = 2, both norms.
IMAGENET_PGD = {'epsilon': 16.0, 'num_steps': 20, 'step_size': 2.0, 'targeted': True}

# The miniature and the studies attack a prefix of the test set at these radii.
STUDY_LINF_EPSILONS = (2, 4, 8)
STUDY_L2_EPSILONS = (32, 128, 512)
