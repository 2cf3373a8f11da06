"""Reads hex-encoded SBE messages (one per line) on stdin and decodes each with the `sbe`
package from PyPI, an SBE implementation independent of ours, given nothing but the schema
file named on the command line. Writes one JSON line per message:
{"message": <name>, "header": {...}, "value": {...}}.
"""
import json
import sys

import sbe


def to_json_value(v):
    if isinstance(v, bytes):
        return v.rstrip(b"\0 ").decode("latin-1")
    if isinstance(v, dict):
        return {k: to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    return v


with open(sys.argv[1], "r", encoding="utf-8") as schema_file:
    schema = sbe.Schema.parse(schema_file)
for line in sys.stdin:
    line = line.strip()
    if line:
        decoded = schema.decode(bytes.fromhex(line))
        print(json.dumps({
            "message": decoded.message_name,
            "header": decoded.header,
            "value": to_json_value(decoded.value),
        }))
