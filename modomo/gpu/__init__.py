"""The GPU worker: model registry, the nine pipeline stages, the pipeline and the worker process.

Importing this package imports no model library; :mod:`modomo.gpu.runtime` prepares the
process (offline switches, thread counts) before anything heavy is imported.
"""
