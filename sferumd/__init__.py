"""sferumd: the school messenger and online-lesson daemon."""

__version__ = "0.1.0"
