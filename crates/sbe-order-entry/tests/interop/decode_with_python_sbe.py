"""Decodes SBE messages with an independent implementation: the `sbe` package from PyPI
(kizzx2/sbe-python), given only our schema file.

Usage: decode_with_python_sbe.py SCHEMA.xml < hex-lines
Prints one JSON object per input line: {"message": name, "header": {...}, "value": {...}}.
That decoder does not implement var-data, so var-data fields are left out of its output.
"""
import json
import sys

import sbe


def plain(v):
    if isinstance(v, bytes):
        return v.rstrip(b"\0 ").decode("latin-1")
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def main():
    with open(sys.argv[1], "r", encoding="utf-8") as f:
        schema = sbe.Schema.parse(f)
    data_names = set()
    for m in schema.messages.values():
        for f in m.fields:
            t = getattr(f, "type", None)
            if getattr(t, "name", "").startswith("var"):
                data_names.add(f.name)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        d = schema.decode(bytes.fromhex(line))
        value = {k: v for k, v in d.value.items() if k not in data_names}
        print(json.dumps({"message": d.message_name, "header": d.header, "value": plain(value)}))


if __name__ == "__main__":
    main()
