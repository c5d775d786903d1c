"""The public surface: everything a user needs, exported from the top."""
import tractorish

EXPECTED = {
    'Actor', 'ActorCrashed', 'ActorNursery', 'AuthenticationError',
    'BroadcastReceiver', 'Channel', 'Context', 'ContextCancelled',
    'ModuleNotExposed', 'MsgStream', 'MsgTypeError', 'NoResult', 'NoRuntime',
    'Portal', 'ProtocolError', 'RemoteActorError', 'RuntimeConfig',
    'SecretError', 'TractorishError', 'TransportClosed', 'context',
    'current_actor', 'is_root_process', 'open_nursery', 'open_root_actor',
    'find_actor', 'find_actors', 'get_registry', 'list_actors', 'query_actor',
    'wait_for_actor', 'wait_for_actors',
    'ActorPool', 'Supervisor', 'SupervisorError', 'open_actor_pool', 'open_supervisor',
    'open_job_queue', 'JobQueue', 'Job', 'JobError', 'JobConflict', 'JobNotFound',
    'JobStoreError',
    'open_entity_cluster', 'connect_entity_cluster', 'EntityCluster', 'EntityClient',
    'EntityError', 'EntityTimeout', 'EntityOwnerLost',
    # tractor's names
    'ActorFailure', 'ActorTooSlowError', 'BaseExceptionGroup', 'InternalError',
    'MessagingError', 'RuntimeFailure', 'RuntimeVars', 'StreamOverrun', 'current_ipc_ctx',
    'debug_mode', 'get_arbiter', 'get_runtime_vars', 'stream', 'open_actor_cluster',
    'run_daemon', 'pause', 'pause_from_sync', 'post_mortem', 'breakpoint',
}
# tractor's submodules, loaded on first use
SUBMODULES = {'asyncio', 'devx', 'log', 'to_asyncio', 'trionics'}


def test_exported_names():
    # dir(): pools and supervisors are imported on first use
    public = {name for name in dir(tractorish) if not name.startswith('_')}
    modules = {'msg', 'ipc', 'runtime', 'spawn', 'supervise', 'discovery', 'workers',
               'entities',
               'jobs', 'testing'}  # (the pytest plugin: an attribute once this suite loads it)
    assert public - modules - SUBMODULES == EXPECTED
    assert SUBMODULES <= public


def test_a_star_import_brings_every_public_name():
    namespace: dict = {}
    exec('from tractorish import *', namespace)
    assert set(namespace) - {'__builtins__'} == EXPECTED
    assert set(tractorish.__all__) == EXPECTED


def test_nurseries_pools_and_supervisors_load_on_first_use():
    import subprocess
    import sys
    code = ('import sys, tractorish; assert "tractorish.workers" not in sys.modules; '
            'assert "tractorish.supervise" not in sys.modules; '
            'assert "tractorish.spawn" not in sys.modules; '
            'from tractorish import open_actor_pool, SupervisorError; '
            'assert "tractorish.workers" in sys.modules; '
            'assert tractorish.open_supervisor is sys.modules["tractorish.workers"].open_supervisor; '
            'from tractorish import open_nursery; '
            'assert open_nursery is sys.modules["tractorish.supervise"].open_nursery; '
            'assert tractorish.ActorNursery is sys.modules["tractorish.supervise"].ActorNursery')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_every_public_error_derives_from_the_root():
    for name in EXPECTED:
        obj = getattr(tractorish, name)
        if name == 'BaseExceptionGroup':  # the builtin, as tractor exports it
            assert obj is tractorish._compat.BaseExceptionGroup
        elif isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, tractorish.TractorishError), name


def test_builtin_bases_where_they_help():
    assert issubclass(tractorish.TransportClosed, ConnectionError)
    assert issubclass(tractorish.ModuleNotExposed, ModuleNotFoundError)
    assert issubclass(tractorish.ContextCancelled, tractorish.RemoteActorError)


def test_a_new_uid_is_a_fresh_version_4_uuid_in_hex():
    import uuid

    from tractorish.runtime import new_uid_tail
    tails = [new_uid_tail() for _ in range(200)]
    assert len(set(tails)) == len(tails)
    for tail in tails:
        parsed = uuid.UUID(hex=tail)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, tail)
    assert len(tractorish.Actor('named').uid[1]) == 32
