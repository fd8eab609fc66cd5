"""The worker side of the sandbox: standard library only, reviewable on its own.

The pool starts a worker as `python -I -c WORKER_COMMAND SETTINGS` (`siked.sandbox.pool`), which
loads this directory by path as the package `siked_sandbox_worker` (without importing siked) and
runs `launcher.main`. Relative imports only, so the same files also import as `siked.sandbox.worker`.
"""
