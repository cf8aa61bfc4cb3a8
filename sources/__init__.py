"""dlt sources for the four usage providers: one package per provider.

Shared pieces live beside them: `windows` decides UTC days and request windows,
`http` builds the API clients and turns HTTP failures into one-line errors.
"""
