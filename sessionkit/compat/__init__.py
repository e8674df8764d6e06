"""Modules an app imports instead of another session library's, to run on sessionkit with its
code unchanged: ``sessionkit.compat.starsessions`` stands in for starsessions 2.x.

Each gives the other library's public names with that library's meaning wherever sessionkit
can, built on sessionkit's public API only; where it cannot, the module's docstrings say so
and docs/coming-from-peers.md lists the difference.
"""
