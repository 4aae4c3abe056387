"""Dataset exports: COCO, YOLO and Parquet archives of a dataset as of a log position.

``modomo export`` writes one to a file; ``modomo exporter`` serves the export queue the
API's ``POST /datasets/:id/exports`` feeds. Never imported by the API, which only appends
requests and reads the ``exports`` read model.
"""
