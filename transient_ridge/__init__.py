"""Transient ridge: in-context linear regression transformers, their idealized
predictors, joint trajectory PCA and local learning coefficients.

The package holds pure, tested functions; the Snakemake workflow in
``workflow/`` only routes files and logs to them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("transient-ridge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
