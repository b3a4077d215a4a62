"""The loopml command line: thin commands over the Python API."""
