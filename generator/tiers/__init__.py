"""The tiers, in the order the parent creates them: every tier comes after the tiers it consumes.

An explicit registry rather than discovery: adding a tier is one line here, and the order is visible.
"""

from generator.tiers import api, cache, compute, network, notification, storage, workflow

TIERS = (
    ("network", network.build),
    ("storage", storage.build),
    ("cache", cache.build),
    ("compute", compute.build),
    ("notification", notification.build),
    ("workflow", workflow.build),
    ("api", api.build),
)
