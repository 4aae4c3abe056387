"""The read side: the queries the API runs on the read models, and the shapes they return.

One module per resource (``scenes``, ``jobs``, ``datasets``, ``reviews``, ``stats``, plus
``progress`` for read-your-writes). Each offers async functions that take a connection or
a pool (anything with ``fetch``/``fetchrow``/``fetchval``) and return msgspec Structs, or
JSON built by PostgreSQL and decoded straight into them. The column names here are the
read side's own: a projector renaming a column breaks a query here (and its tests), it
never silently changes what the API returns.

Imports run one way: this package imports only :mod:`modomo.domain`. A new view (say a
review queue) is a new module here and a controller in :mod:`modomo.api` over it.
"""
