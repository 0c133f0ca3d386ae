"""The floors hold: every import points down (or sideways within its floor), at the top.

resnet_ceb < wrn_cifar < eval < studies, benchmarks. An import inside a function or
through importlib would hide an upward edge from a reader, so neither is allowed.
"""
import ast
import glob
import os

from conftest import REPO_ROOT

FLOORS = {'resnet_ceb': 0, 'wrn_cifar': 1, 'eval': 2, 'studies': 3, 'benchmarks': 3}


def _modules():
  for package in FLOORS:
    for path in glob.glob(os.path.join(REPO_ROOT, package, '**', '*.py'), recursive=True):
      yield package, path


def _imported_packages(node):
  if isinstance(node, ast.Import):
    return [alias.name.split('.')[0] for alias in node.names]
  if isinstance(node, ast.ImportFrom) and node.module and not node.level:
    return [node.module.split('.')[0]]
  return []


def test_no_import_points_up_a_floor():
  upward = []
  for package, path in _modules():
    for node in ast.walk(ast.parse(open(path).read())):
      for imported in _imported_packages(node):
        if FLOORS.get(imported, -1) > FLOORS[package]:
          upward.append('%s imports %s' % (os.path.relpath(path, REPO_ROOT), imported))
  assert not upward, upward


def test_project_imports_sit_at_the_top_of_the_file():
  hidden = []
  for _, path in _modules():
    tree = ast.parse(open(path).read())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
      project = [p for p in _imported_packages(node) if p in FLOORS or p == 'importlib']
      if project and id(node) not in top:
        hidden.append('%s:%d' % (os.path.relpath(path, REPO_ROOT), node.lineno))
      if isinstance(node, ast.Attribute) and node.attr == 'import_module':
        hidden.append('%s:%d importlib' % (os.path.relpath(path, REPO_ROOT), node.lineno))
  assert not hidden, hidden



# Inside eval/: each package may import only the packages and modules listed
# (and itself); what it does not list sits above it. The audit is on top of the
# attacks and the paper's PGD, which sit on the command-line kit.
EVAL_PACKAGES = {
    'kit': set(),
    'attacks': {'kit'},
    'pgd': {'kit', 'attacks', 'settings'},
    'audit': {'kit', 'attacks', 'pgd', 'settings'},
    'report': {'kit', 'settings', 'corruption_metrics'},
}


def _eval_part(node):
  """The eval/ package or module an import statement names, or None."""
  if isinstance(node, ast.ImportFrom) and node.module and not node.level:
    parts = node.module.split('.')
    if parts[0] != 'eval':
      return []
    if len(parts) > 1:
      return [parts[1]]
    return [alias.name for alias in node.names]
  if isinstance(node, ast.Import):
    return [alias.name.split('.')[1] for alias in node.names
            if alias.name.startswith('eval.')]
  return []


def test_eval_packages_import_only_what_sits_below_them():
  upward = []
  for package, allowed in EVAL_PACKAGES.items():
    for path in glob.glob(os.path.join(REPO_ROOT, 'eval', package, '**', '*.py'), recursive=True):
      for node in ast.walk(ast.parse(open(path).read())):
        for part in _eval_part(node):
          if part != package and part not in allowed:
            upward.append('%s imports eval.%s' % (os.path.relpath(path, REPO_ROOT), part))
  assert not upward, upward


def test_eval_top_level_stays_small_and_holds_the_audit_and_attacks_as_packages():
  entries = [name for name in os.listdir(os.path.join(REPO_ROOT, 'eval'))
             if name != '__init__.py' and not name.startswith(('.', '__pycache__'))]
  assert len(entries) <= 18, sorted(entries)
  for package in ('audit', 'attacks', 'kit', 'pgd', 'report'):
    assert os.path.isfile(os.path.join(REPO_ROOT, 'eval', package, '__init__.py')), package
