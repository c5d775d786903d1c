"""Sharded entities: many small keyed actors spread over workers, routed by key.

``open_entity_cluster(Account, workers=4, name='accounts')`` runs the
entities of a class on supervised workers; ``await cluster.ask('alice',
'deposit', amount=10)`` goes straight to the worker that owns ``'alice'``
(rendezvous hashing over the live workers), where the entity handles its
messages one at a time. ``connect_entity_cluster('accounts')`` does the
same from another program, finding the workers through discovery. See
docs/entities.md.
"""
from ._client import EntityClient as EntityClient
from ._client import connect_entity_cluster as connect_entity_cluster
from ._cluster import EntityCluster as EntityCluster
from ._cluster import open_entity_cluster as open_entity_cluster
from ._errors import EntityError as EntityError
from ._errors import EntityOwnerLost as EntityOwnerLost
from ._errors import EntityTimeout as EntityTimeout
from ._placement import View as View
from ._placement import owner_of as owner_of
