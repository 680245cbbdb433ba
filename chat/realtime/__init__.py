"""Realtime infrastructure, independent of the chat domain: it imports no model, service or page.

- `fanout`: the default channel layer with Redis (one subscription per process, bounded
  per-socket inboxes, overrun detection);
- `inmemory`: the embedded default's in-memory layer, safe to call from other threads;
- `writer`: the coalescing writer (concurrent posts of a process share one transaction);
- `limits`: the per-address websocket connection cap.
"""
