"""The page side of the gallery build: cache → pages, with no model and no framework imported.

``write`` reads the cache and writes the pages (``templates``, rendered through ``templating``);
``verdict``, ``navigation`` and ``reproduce`` compute what a page says from plain data.
"""
