"""Run a study's trials inside a training framework.

- :mod:`lrsearch.integrations.lightning` - PyTorch Lightning
  (``pip install 'lrsearch[lightning]'``);
- :mod:`lrsearch.integrations.transformers` - the Hugging Face ``Trainer``
  (``pip install 'lrsearch[transformers]'``).

Each module imports its framework; this package imports neither.
"""
