"""The command-line kit every `python -m eval.*` shares: checks, flags, result files, restoring."""
