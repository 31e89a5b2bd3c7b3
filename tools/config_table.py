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
import subprocess
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
# Through the preprocessor, so rows built by macros are seen; then adjacent
# string literals are joined as the compiler would.
cflags = subprocess.run(["pkg-config", "--cflags", "libuv", "libzmq", "libcjson", "openblas"],
                        capture_output=True, text=True).stdout.split()
text = subprocess.run(["cc", "-E", "-P", "-D_GNU_SOURCE", "-I" + os.path.join(src, "include"),
                       "-I" + os.path.join(src, "daemon")] + cflags +
                      [os.path.join(src, "daemon", "config.c")],
                      capture_output=True, text=True, check=True).stdout
text = re.sub(r'"\s*\n?\s*"', "", text)
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
