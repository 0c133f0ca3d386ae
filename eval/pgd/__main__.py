"""PGD accuracy against epsilon of a trained model: `python -m eval.pgd`.

One run gives the whole accuracy-vs-epsilon curve::

    python -m eval.pgd --model_dir DIR --data_dir CIFAR_DIR --norm linf --epsilons 0,2,8,32

`--dataset=imagenet` reads the validation TFRecords through the ImageNet
trainer's input pipeline (section 3.2: targeted, eps 16, n 20, step 2:
`--targeted --epsilons 16 --step_size 2`). `--pgd_space=normalized` measures
the epsilons and the step in the model's normalized input units instead of
pixels (eval.pgd.space; docs/IMAGENET.md gives the numbers each implies). With `--random_start`,
`--num_restarts` keeps the worst case per example (robust only if correct
under every restart; a target counts as hit if any restart hits it).

Results go to a resumable result file with one item per epsilon; its header
leaves the epsilons out, so a later run with more epsilons extends the same
file, and its summary covers every epsilon the file holds.
"""

from eval import settings
from eval.attacks import examples
from eval.attacks import threat_model
from eval.kit import cli
from eval.kit import results
from eval.kit import runner
from eval.pgd import space
from eval.pgd import sweep


def build_parser():
  """The `python -m eval.pgd` flags."""
  parser = cli.ArgumentParser(prog='python -m eval.pgd',
                              description='PGD accuracy against epsilon of a trained model.')
  cli.add_model_flags(parser)
  cli.add_precision_flag(parser, attack=True)
  examples.add_flags(parser)
  add = parser.add_argument
  add('--norm', choices=threat_model.NORMS, default='linf', help='Threat model.')
  add('--epsilons', required=True,
      help='Comma list of radii in --pgd_space units, e.g. 0,2,8.')
  add('--pgd_space', choices=space.PGD_SPACES, default='pixels',
      help='Where epsilon and the step are measured: pixels [0, 255] or the '
           "model's normalized inputs (x - mean_c) / std_c.")
  add('--num_steps', type=int, default=settings.PGD_NUM_STEPS,
      help='PGD steps n (paper: %d).' % settings.PGD_NUM_STEPS)
  add('--step_size', type=float, help="Default: the paper's 4/3*eps/num_steps.")
  add('--targeted', action='store_true', help='Aim at seeded random wrong classes.')
  add('--target_seed', type=int, default=0, help='Seeds the targets.')
  add('--random_start', action='store_true', help='Start at a random point of the ball.')
  add('--seed', type=int, default=0, help='Seeds the random starts.')
  add('--num_restarts', type=int, default=1, help='Worst case over restarts.')
  add('--num_examples', type=int, help='Attack only the first N test examples.')
  add('--batch_size', type=int, default=100, help='Examples per session.run.')
  cli.add_output_flag(parser)
  return parser


def _config_from_args(args):
  config = sweep.PgdConfig(
      norm=args.norm, num_steps=args.num_steps, step_size=args.step_size,
      targeted=args.targeted, target_seed=args.target_seed,
      random_start=args.random_start, seed=args.seed,
      num_restarts=args.num_restarts, batch_size=args.batch_size,
      pgd_space=args.pgd_space)
  config.validate()
  return config


def prepare(args):
  """Checks everything that can fail before any result is written.

  Returns:
    (model, examples_fn, epsilons, config, result_file).
  """
  config = _config_from_args(args)
  epsilons = cli.parse_epsilons(args.epsilons)
  model = runner.load_model(args.model_dir, args.checkpoint)
  sweep.model_num_classes(model, config)
  space.channel_scale(config.pgd_space, model.params)
  dataset = examples.dataset_for(args.dataset, model, 'PGD')
  examples_fn = examples.load_examples(dataset, args.data_dir, args.fake_data,
                                       args.num_examples, config.batch_size,
                                       model.params.get('image_size', 224))
  flags = dict(config.header_flags(), num_examples=args.num_examples,
               data_dir=args.data_dir,
               fake_data=args.fake_data)
  header = results.header_for(model, flags, dataset)
  path = cli.output_path(args, model, config.evaluation)
  return model, examples_fn, epsilons, config, results.ResultFile(
      path, config.evaluation, header)


def format_table(summary, evaluation):
  """A small text table of accuracy (and target hit rate) by epsilon."""
  targeted = 'target_hit_rate' in summary
  lines = ['%s: clean accuracy %.4f' % (evaluation, summary['clean_accuracy']),
           '%10s %9s%s' % ('epsilon', 'accuracy', '  target_hit' if targeted else '')]
  for i, epsilon in enumerate(summary['epsilons']):
    line = '%10g %9.4f' % (epsilon, summary['accuracy'][i])
    if targeted:
      line += '  %10.4f' % summary['target_hit_rate'][i]
    lines.append(line)
  return '\n'.join(lines)


def run(args):
  """Runs the sweep the flags describe; returns its summary."""
  model, examples_fn, epsilons, config, result_file = prepare(args)
  summary = sweep.evaluate_pgd(model, examples_fn, epsilons, config, result_file)
  print(format_table(summary, config.evaluation))
  print('results: %s' % result_file.path)
  return summary


def main(argv=None):
  """Runs the command; bad input exits 2 with `error: ...` on stderr."""
  return cli.run_cli(build_parser(), run, argv)


if __name__ == '__main__':
  main()
