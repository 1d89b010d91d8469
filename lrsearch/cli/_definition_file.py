"""Reading a study definition file (YAML or JSON) without letting it blow up.

A definition is a few hundred bytes. A hostile or broken file must fail fast
with a clear message rather than eat the machine: the file is refused above
:data:`MAX_BYTES` before it is parsed, and a YAML file whose aliases would
expand it beyond :data:`MAX_NODES` values (the "billion laughs" bomb: a few
hundred bytes that ``yaml.safe_load`` turns into a structure that
``json.dumps`` writes out as gigabytes) is refused after composing its node
graph, which is as small as the text, and before anything is expanded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_BYTES = 1 << 20
MAX_NODES = 100_000


class DefinitionFileError(Exception):
    """The file cannot be read as a study definition; the message says why."""


def load_definition(path: Path) -> Any:
    """The parsed content of a ``.yaml``, ``.yml`` or ``.json`` definition file.

    Raises:
        DefinitionFileError: Unreadable, too large, not valid YAML/JSON, an
            alias expansion beyond :data:`MAX_NODES`, or another extension.
    """
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise DefinitionFileError(f"{path}: expected a .yaml, .yml or .json file")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)  # not stat(): /dev/stdin and pipes have no size
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionFileError(f"cannot read {path}: {exc}") from None
    if len(raw) > MAX_BYTES:
        raise DefinitionFileError(
            f"{path} is larger than {MAX_BYTES // 1024} KiB; a study definition is a few lines"
        )
    if suffix == ".json":
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DefinitionFileError(f"{path} is not valid JSON: {exc}") from None
    return _load_yaml(path, text)


def _load_yaml(path: Path, text: str) -> Any:
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise DefinitionFileError(
                f"{path}: its aliases expand to more than {MAX_NODES} values; "
                "write the definition out instead of repeating anchors"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise DefinitionFileError(f"{path} is not valid YAML: {exc}") from None
    except RecursionError:
        raise DefinitionFileError(f"{path} is nested too deeply") from None
    finally:
        loader.dispose()


def _expanded_size(root: Any) -> int:
    """Values in the document once every alias is replaced by a copy of its anchor.

    Aliases share their anchor's node, so the composed graph stays small; the
    size is counted per distinct node (memoised), without expanding anything.
    A node that contains itself (``&a [*a]``) counts as infinitely large.
    """
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:  # recursive alias: expands forever
            return MAX_NODES + 1
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > MAX_NODES:
                    break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)
