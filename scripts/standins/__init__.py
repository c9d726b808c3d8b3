"""Stand-in models and pictures with the real file formats, for tests and demos without the real weights."""
