"""Golden-set evaluation: a job's results scored against ground truth.

``modomo eval --golden GROUND_TRUTH --job JOB`` (:mod:`modomo.evaluate.run`): detection
and mask AP by pycocotools, macro-F1 by scikit-learn, palette ΔE00 by scikit-image,
caption sanity; recorded as an ``evaluation_recorded`` event (``GET /evaluations``).
"""
