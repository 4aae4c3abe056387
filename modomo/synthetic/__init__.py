"""Synthetic data shared by the demo, the golden-set evaluation, tests and benchmarks.

:mod:`~modomo.synthetic.rooms` paints room photos and knows what it painted (ground
truth); :mod:`~modomo.synthetic.golden` writes a golden set from them;
:mod:`~modomo.synthetic.log` makes seeded event logs shaped like real ones.
"""
