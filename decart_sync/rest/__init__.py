"""The service's REST API: one authenticated request and its error codes
(``http``), uploaded reference images (``files``), client tokens (``tokens``).
"""
