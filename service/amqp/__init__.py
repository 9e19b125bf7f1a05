"""Everything that speaks AMQP, in the order a delivery meets it.

connection.py   the connection over a cluster's nodes: the first that answers, followed on failover
corked.py       under it, the frames of one loop turn in one write (a speed-up, aiormq's writer)
topology.py     exchanges and queues: input, outcomes, the quorum queue, its delay and dead queues
headers.py      reading a delivery: its message, first routing key, the counters kept in headers
publisher.py    every publish, confirmed: outcomes, results, dead letters, delayed copies
acks.py         acknowledgements through one ordered queue, batched into multiple acks
"""
