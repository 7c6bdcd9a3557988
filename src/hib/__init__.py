"""hib: which attention heads of a speech transformer matter for a task, and which can go.

Layers, each talking only to the one below it:
data -> upstream -> heads -> methods -> prune / evaluate -> report; cli is a thin shell.
"""

__version__ = "0.1.0"
