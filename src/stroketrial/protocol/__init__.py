"""The protocol as code: a validated, immutable trial definition loaded from YAML."""

from .loader import BUILTIN_IDS, ProtocolError, builtin_ids, load_builtin, load_protocol, parse_protocol, \
    protocol_json_schema, resolve
from .model import Arm, Assumption, Criterion, Endpoint, Protocol, Visit
from .schemes import Factor, Randomization, RandomizationScheme

__all__ = [
           "BUILTIN_IDS",
           "Arm",
           "Assumption",
           "Criterion",
           "Endpoint",
           "Factor",
           "Protocol",
           "ProtocolError",
           "Randomization",
           "RandomizationScheme",
           "Visit",
           "builtin_ids",
           "load_builtin",
           "load_protocol",
           "parse_protocol",
           "protocol_json_schema",
           "resolve",
]
