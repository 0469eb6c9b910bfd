"""Real-data loaders, each tested on small files made in the dataset's exact on-disk format."""
