"""The public contract as documents: JSON Schemas and the AsyncAPI description.

schemas.py      JSON Schemas of the templates file, events, outcomes, decisions and results
decision.py     the decision `render` prints, as models for its schema
identity.py     what they share: the event's identity, a local time
asyncapi.py     the AsyncAPI 3.0 document of the exchanges, queues and messages
"""
