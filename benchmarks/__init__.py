"""Speed measured side by side in one process; ratios, never timed tests."""
