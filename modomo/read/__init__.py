"""The queries the API runs on the read models, and the shapes they return.

Imports only :mod:`modomo.domain`: a module here takes a connection and answers a question
about the tables the projectors keep; it never appends events and never presigns URLs.
"""
