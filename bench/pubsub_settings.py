"""The product's settings with channels-redis's RedisPubSubChannelLayer (bench/pubsub_layer.py)
instead of the fan-out layer: for bench/realtime's comparison only."""

from helpdesk.settings import *  # noqa: F403
from helpdesk.settings import CHANNEL_LAYERS, REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "bench.pubsub_layer.PubSubChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "capacity": CHANNEL_LAYERS["default"]["CONFIG"]["capacity"],
            "prefix": "tierline-bench",
        },
    }
}
