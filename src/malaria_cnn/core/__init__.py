"""What every stage shares: params, paths, errors, atomic writes and checksums, the class labels."""
