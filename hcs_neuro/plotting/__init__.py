"""Figures. One module per stage (``circuit``, ``network``, ``sweep``); matplotlib is imported
only inside those modules. Every plot function takes ``ax=None``, draws only on it, labels its axes
with units and returns it."""
