"""The built-in recipes: one module per paper figure or table, each registering its ``RECIPE``.

:data:`adamlab.reproduce.base.REGISTRY` imports every module of this package on first use; a module's
``register(RECIPE, order=...)`` places it in ``adamlab reproduce --list``. Shared building blocks
(``common``, ``adam_paper``, ``dissect_paper``, ``standalone``) register nothing.
"""
