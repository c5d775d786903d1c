"""Transport: authenticated msgpack channels over TCP and Unix sockets."""
from ._addr import Address as Address
from ._addr import addr_to_wire as addr_to_wire
from ._addr import format_addr as format_addr
from ._addr import normalize_addr as normalize_addr
from ._addr import parse_addr as parse_addr
from ._channel import Channel as Channel
from ._channel import open_channel as open_channel
from ._handshake import NoAnswerError as NoAnswerError
from ._handshake import handshake as handshake
from ._listener import serve_listener as serve_listener
from ._secret import load_secret as load_secret
from ._tls import TLS as TLS
from ._transport import connect as connect
from ._transport import open_listener as open_listener
from ._transport import open_memory_channel_pair as open_memory_channel_pair
from ._transport import open_stream_to as open_stream_to
