"""Call results (CONTRACT.md §9): records in, result events out."""
