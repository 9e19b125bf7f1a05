"""One delivery, in order: consume → decide → call → settle → ack.

consumer.py     the data path in one place: decode, route, decide, call, then settle
control.py      a suppression-list control event applied instead of a call
hold.py         `on_exhausted: hold`: stop consuming while the account cannot call, probe, resume
holds.py        holds by account, when there are several: a held account's events wait or go on
failover.py     which of an event's accounts to try, and which failures prove no call was made
caller.py       the idempotent call: throttle, pace, claim the key, budget, call once, complete
guard.py        the customer protections a claim checks; the provider's do-not-call list
pace.py         AUTOCALL_RATE_LIMIT across replicas
throttle.py     the slow-down after the provider throttles a request: wait, one goes first
budget.py       the day's TTS budget, shared through the store
retry.py        what follows a failure in which no call was made (pure)
actions.py      what to do with a processed delivery: publish, delay, put back, requeue (data)
outcomes.py     the outcome event of one consumed event (data)
settle.py       the one place that acks: publish what an action says, confirmed, then ack;
                the one log line per settled event
"""
