"""The monitoring operations of the metadata store (see loopml.store.operations)."""
