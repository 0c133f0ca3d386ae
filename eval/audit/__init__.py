"""The robustness audit: real robustness, or gradient masking?

`run_audit` (api.py) is the library entry point SPEC section 7 names; the
attack specs and the standard sequence are in specs.py, the engine that runs
them on survivors with checked witnesses in engine.py, the masking indicators
and the verdict in indicators.py, the ascending sweep over radii in sweep.py,
and `python -m eval.audit` in command.py.
"""
from eval.audit.api import AuditResult
from eval.audit.api import run_audit

__all__ = ['AuditResult', 'run_audit']
