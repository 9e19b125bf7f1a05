"""Call results (CONTRACT.md §9): records in, result events out.

recorder.py     what the event path tells the result side: a call accepted, or maybe made
store.py        where open calls and their results' marks live (memory); redis_store.py in Redis
listener.py     the webhook listener: the provider posts call records here
kept.py         the last webhook bodies, masked, for `results recent`
poller.py       reconciliation: the call history searched for what no webhook brought
sources.py      each account's history (OMICall) or call log (Stringee); Stringee's callbacks
pipeline.py     a record's way to a result event: match it to its call, keep it single, publish
calls.py        open calls as the store keeps them, and the result events made of them
published.py    the results the broker has, read back to mark each one done
metrics.py      the call-result metrics
runtime.py      the result side in one context, started and stopped with the service
"""
