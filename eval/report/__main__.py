"""`python -m eval.report`: see eval.report.cli."""
import sys

from eval.report import cli

sys.exit(cli.main())
