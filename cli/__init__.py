"""The ``crawler`` command line: the one place that puts the packages together.

It sits above every other package (``crawler``, ``storage``, ``seeds``, ``workers``) and nothing
imports it, so the packages below never import each other in a circle.
"""
