"""The distribution's version, in a module of its own: any module may read it without the package."""

__version__ = "0.1.0"
