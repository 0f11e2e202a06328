"""The domain: rooms, membership, power levels, sync, ephemeral state. No I/O of its own
beyond the store interface and the hub's publish."""
