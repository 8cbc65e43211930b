"""The build: catalogs (catalog.py), the runner of stages (builder.py: ``build()``),
shard tasks (shards.py) and the dataset card (card.py). Kept free of imports so the
shard runner's fingerprint does not depend on the driver's code."""
