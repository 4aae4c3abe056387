"""The nine pipeline stages, each a small function over decoded images and earlier results.

Every model-backed function takes a list of images (one per scene) and makes one model call
for the whole list, so the sequential pipeline calls them with one scene and the optimized
one with a batch. They are blocking: the pipeline runs them off the event loop.
"""
