"""Where the package leans on another library's internals or on a behaviour it does not promise.

One module per library (:mod:`.requests`, :mod:`.urllib3`, :mod:`.redis`, :mod:`.stdlib`), and
:mod:`.classes`, the one place a class is made at run time. Each name here says which public behaviour it
stands in for, so an upgrade that moves an internal fails the tests of one module (CI runs them on the
oldest and the newest versions ``pyproject.toml`` allows), not users. ``tests/test_structure.py`` fails on
a private name of these libraries used anywhere else.
"""
