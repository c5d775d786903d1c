"""The wire protocol, sans-I/O: shapes, codec, framing, dialog, errors, and
``Protocol``, the object that holds a channel's framing, dialogs and credit.

tractor's ``tractor.msg`` names what its typed messages are; here messages
are plain msgpack maps (docs/protocol.md). ``Aid`` and ``NamespacePath``
exist as in tractor; its codec and message-type names raise, at use,
``NotImplementedError`` saying so.
"""
from ._aid import Aid as Aid
from ._codec import DEFAULT_MAX_MSG_SIZE as DEFAULT_MAX_MSG_SIZE
from ._codec import Decoder as Decoder
from ._codec import Encoder as Encoder
from ._codec import check_encodable as check_encodable
from ._dialog import Dialog as Dialog
from ._errors import MAIN_ALIAS as MAIN_ALIAS
from ._errors import pack_cancelled as pack_cancelled
from ._errors import pack_error as pack_error
from ._errors import resolve_type as resolve_type
from ._errors import unpack_error as unpack_error
from ._protocol import Protocol as Protocol
from ._ptr import NamespacePath as NamespacePath
from ._types import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._types import auth as auth
from ._types import check_message as check_message
from ._types import cmd as cmd
from ._types import credit as credit
from ._types import error as error
from ._types import functype as functype
from ._types import hello as hello
from ._types import info as info
from ._types import message_kind as message_kind
from ._types import return_ as return_
from ._types import started as started
from ._types import stop as stop
from ._types import yield_ as yield_

# tractor.msg's typed-message names: not here, and saying so at use
_TRACTOR_ONLY = frozenset({
    'Struct', 'pretty_struct', 'types', 'apply_codec', 'mk_codec', 'mk_dec',
    'MsgCodec', 'MsgDec', 'current_codec', 'PayloadMsg', 'Msg', 'SpawnSpec',
    'Start', 'StartAck', 'Started', 'Yield', 'Stop', 'Return', 'CancelAck', 'Error',
    'PayloadT', 'MsgType', 'limit_plds', 'maybe_limit_plds', 'drain_to_final_msg',
    '__msg_types__', '__msg_spec__', 'ptr', 'from_dict_msg', 'mk_msg_spec', 'PldRx',
    'validate_payload_msg'})


def __getattr__(name: str) -> object:
    if name in _TRACTOR_ONLY:
        raise NotImplementedError(
            f'tractor.msg.{name} belongs to tractor\'s typed messages (msgspec '
            f'structs and payload specs); tractorish sends plain msgpack maps, '
            f'described in docs/protocol.md: send dicts, lists and scalars')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
