"""The providers: each one's client and the records it sends, behind one door per provider.

edge.py         the HTTP edge both clients send through: time-outs, metrics, spans, errors mapped
session.py      the HTTP session a client calls over (sized to the concurrency, proxies read once)
records.py      what every provider's records become (CallRecord, LiveEvent, Contact), and the
                tolerant readers of their values
omicall/        OMICall: the auto-call client, its call records, its call-history search
stringee/       Stringee: the REST JWT, the callout, its signed callbacks, its call log
"""
