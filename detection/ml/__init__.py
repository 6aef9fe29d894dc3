"""The analysis pipeline: face detection, real/fake scoring and Grad-CAM explanations.

Pure PyTorch, Pillow and numpy: nothing in this package imports Django, so the worker, the
management commands and the benchmark share one implementation. This file imports nothing
heavy, so importing the package (as `detection.tasks` does) does not load torch; the models
load lazily, once per process, through `detection.ml.pipeline.get_analyzer`.
"""
