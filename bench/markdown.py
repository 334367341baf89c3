"""Replaces (or appends) a marked section of a markdown file, atomically."""
import os


def update_section(path, key, title, table):
    text = open(path).read()
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    if begin in text:
        a, b = text.index(begin), text.index(end) + len(end)
        text = text[:a] + begin + "\n" + table + "\n" + end + text[b:]
    else:
        text += f"\n## {title}\n\n" + begin + "\n" + table + "\n" + end + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
