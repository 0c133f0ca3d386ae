"""`python -m eval.audit`: see eval.audit.command."""
from eval.audit import command

if __name__ == '__main__':
  command.main()
