"""Where the package leans on another library's internals or on a behaviour it does not promise.

One module per library. Each name here says which public behaviour it stands in for, so an upgrade that
moves an internal fails the tests of one module (CI runs them on the oldest and the newest versions
``pyproject.toml`` allows), not users.
"""
