"""The ``lrsearch`` command line: dispatches to the service, the workers and the client."""
