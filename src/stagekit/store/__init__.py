"""store: codecs, fingerprints, the catalog and the run database, on the workspace's object store."""
