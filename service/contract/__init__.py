"""The public contract as documents: JSON Schemas and the AsyncAPI description.

models.py       the public messages as pydantic models
schemas.py      JSON Schemas of the templates file, events, outcomes, decisions and results
asyncapi.py     the AsyncAPI 3.0 document of the exchanges, queues and messages
"""
