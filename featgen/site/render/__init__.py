"""The render side of the gallery build: config → plan → jobs → executors → renderer → cache.

``config`` reads ``galleries.yml``; ``plan`` turns a profile into ``RenderJob``\\ s (``jobs``);
``executors`` run the jobs the cache lacks with a ``renderer.Renderer`` (the only site module that
loads a model); ``cache`` stores each job's arrays, checked against ``entries``. ``estimate`` times a
calibration; ``examples`` scans photos for each unit's top and bottom examples.
"""
