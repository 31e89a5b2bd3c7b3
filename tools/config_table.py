#!/usr/bin/python3
"""config_table.py — print the README's configuration table (markdown) from
the key table in daemon/config.c and the defaults in config/grokwatchd.json.

usage: tools/config_table.py [SRCDIR]

tests/cli/test_readme.sh checks that the README lists every key of the
shipped file; run this and paste its output when keys change.
"""
import json
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
text = open(os.path.join(src, "daemon", "config.c")).read()
table = text[text.index("const struct config_key config_keys[]"):]
rows = re.findall(r'\{\s*\.path = "([^"]+)",(.*?)\.help = ((?:"(?:[^"\\]|\\.)*"\s*)+)\}', table,
                  re.S)
defaults = {}


def flatten(o, prefix=""):
    for k, v in o.items():
        if isinstance(v, dict):
            flatten(v, prefix + k + ".")
        else:
            defaults[prefix + k] = v


flatten(json.load(open(os.path.join(src, "config", "grokwatchd.json"))))
print("| key | default | SIGHUP | meaning |")
print("| --- | --- | --- | --- |")
for path, body, helps in rows:
    if path not in defaults:
        continue  # a field of an object-array element
    h = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', helps)).replace('\\"', '"')
    d = json.dumps(defaults[path])
    print("| `%s` | `%s` | %s | %s |" % (path, d.replace("|", "\\|"),
                                         "yes" if ".reload = true" in body else "",
                                         h.replace("|", "\\|")))
