"""One module per study: the functions its rules call."""
